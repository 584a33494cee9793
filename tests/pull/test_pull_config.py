"""``pull.yaml``: validated on load, every problem with its file:line:column, in Spanish;
the example of docs/difusores.md loads as written; ``extract: true`` publishes the CSVs of
each corte's ZIP beside the ZIP, which stays as the institute published it."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.exceptions import PullConfigError
from prepush.pull.config import load_pull_settings
from tests.conftest import BucketFactory, Workdir
from tests.support.crashes import Cortes
from tests.support.guide import snippet
from tests.support.pull import PullDifusor, institute_and_difusor, public_key_of
from tests.support.servers import read_tree

GUIDE_ROOT = Path(__file__).resolve().parents[2]


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PullConfigError) as caught:
        load_pull_settings(path)
    assert caught.value.path == str(path)
    return caught.value.problems


def test_every_problem_of_the_file_is_said_at_once_with_its_line_and_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pull.yaml"
    path.write_text(
        "difusor: Medio 01\n"
        "public_key: instituto.pub\n"
        "origin:\n"
        "  url: http://origen.example.mx/prep/\n"
        "destination:\n"
        "  directory: sitio\n"
        "interval_seconds: 0\n"
        "retencion: 3\n"
    )
    found = problems_of(path)
    where = [p.split(": ", 1)[0] for p in found]
    assert where == [f"{path}:1:10", f"{path}:4:8", f"{path}:7:19", f"{path}:8:1"], found
    assert "minúsculas" in found[0]
    assert "https://" in found[1]
    assert "al menos 0.05" in found[2]
    assert "campo desconocido" in found[3]
    assert "docs/difusores.md" in found[3]


def test_what_the_file_names_outside_itself_is_checked_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PREP_ORIGEN_USUARIO", raising=False)
    monkeypatch.setenv("PREP_ORIGEN_CLAVE", "x")
    (tmp_path / "ca.pem").write_text("esto no es un certificado\n")
    path = tmp_path / "pull.yaml"
    path.write_text(
        "difusor: medio01\n"
        "public_key: instituto.pub\n"
        "origin:\n"
        "  url: https://origen.example.mx/prep/\n"
        "  user_env: PREP_ORIGEN_USUARIO\n"
        "  password_env: PREP_ORIGEN_CLAVE\n"
        "  ca_file: ca.pem\n"
        "destination:\n"
        "  directory: no-existe\n"
    )
    found = problems_of(path)
    assert [p.split(": ", 2)[:2] for p in found] == [
        [f"{path}:2:13", "public_key"],
        [f"{path}:5:13", "origin.user_env"],
        [f"{path}:7:12", "origin.ca_file"],
        [f"{path}:9:14", "destination.directory"],
    ], found
    assert "Pídala al instituto" in found[0]
    assert "PREP_ORIGEN_USUARIO no está definida" in found[1]
    assert "no es un certificado PEM" in found[2]
    assert "no existe" in found[3]
    # The command says the same, exit 2, nothing fetched; --json with the list.
    capsys.readouterr()
    assert main(["pull", "--config", str(path), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["type"], error["problems"]) == ("PullConfigError", found)


def test_invalid_yaml_and_a_missing_file_are_said_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pull.yaml"
    path.write_text("difusor: a\n  b: [\n")
    assert problems_of(path)[0].startswith(f"{path}:2:4: YAML inválido")
    assert main(["pull", "--config", str(tmp_path / "otro.yaml")]) == 2
    assert "No se encontró la configuración de pull" in capsys.readouterr().err


VALID = (
    "difusor: medio01\n"
    "public_key: instituto.pub\n"
    "origin:\n"
    "  url: https://origen.example.mx/prep/\n"
    "destination:\n"
    "  directory: sitio\n"
)
# (file name, what follows VALID, where and which field it names, what it says)
MISTAKES = [
    (
        "pull.yaml",
        "interval_seconds: [15]\n",
        "7:19: interval_seconds",
        "debe ser un número",
    ),
    ("pull.yaml", "extract: [sí]\n", "7:10: extract", "debe ser true o false"),
    ("pull.yaml", "retention: 2.5\n", "7:12: retention", "debe ser un número entero"),
    (
        "medio01-pull.yaml",
        "destination2:\n  s3:\n    bucket: sitio-medio01\n    passphrase: secreto\n",
        "7:1: destination2",
        "campo desconocido (revise la ortografía; los campos válidos están en docs/difusores.md)",
    ),
]


@pytest.mark.parametrize(("name", "extra", "where", "said"), MISTAKES)
def test_each_mistake_names_the_file_loaded_and_the_field_never_the_roster(
    name: str,
    extra: str,
    where: str,
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / name
    path.write_text(VALID + extra)
    (problem,) = problems_of_the_file(path, capsys)
    assert problem == f"{path}:{where}: {said}", problem


SECRETS = [
    (
        VALID.replace("prep/\n", "prep/\n  password: secreto\n"),
        "5:3: origin.password",
        "use password_env con el nombre de una variable de entorno",
    ),
    (
        VALID.replace("directory: sitio", "s3:\n    bucket: sitio-medio01\n    passphrase: x"),
        "8:5: destination.s3.passphrase",
        "use access_key_id_env y secret_access_key_env con los nombres de variables de entorno",
    ),
]


@pytest.mark.parametrize(("text", "where", "hint"), SECRETS)
def test_a_secret_written_in_the_file_is_refused_naming_the_file_not_the_roster(
    text: str, where: str, hint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "medio01.yaml"
    path.write_text(text)
    (problem,) = problems_of_the_file(path, capsys)
    assert problem == f"{path}:{where}: no escriba secretos en medio01.yaml: {hint}", problem


def problems_of_the_file(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The problems of loading ``path``, after checking what the command says of them: the
    file, exit 2, nothing of the roster (difusores.yaml) and no English."""
    found = problems_of(path)
    capsys.readouterr()
    assert main(["pull", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"La configuración de pull {path} tiene {len(found)} error(es)" in err
    for text in [err, *found]:
        for wrong in ("padrón", "difusores.yaml", "docs/roster.md", "Input should", "roster"):
            assert wrong not in text, text
    return found


def test_the_guides_example_loads_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client_key: Path
) -> None:
    text = snippet("pull-yaml", {"/srv/prep-pull/": f"{tmp_path}/", "/var/www/prep": "sitio"})
    (tmp_path / "sitio").mkdir()
    public_key_of(client_key, tmp_path)
    for name in ("PREP_ORIGEN_USUARIO", "PREP_ORIGEN_CLAVE"):
        monkeypatch.setenv(name, "x")
    (tmp_path / "pull.yaml").write_text(text)
    settings = load_pull_settings(tmp_path / "pull.yaml")
    assert settings.config.origin.url is not None
    assert settings.config.origin.url.startswith("https://")
    assert settings.destination_description() == str(tmp_path / "sitio")
    # The unit the guide shows is the one in docs/systemd/.
    unit = (GUIDE_ROOT / "docs" / "systemd" / "prepush-pull.service").read_text()
    assert snippet("pull-unit") == unit
    assert "pull --config /srv/prep-pull/pull.yaml --watch" in unit
    assert "KillSignal=SIGINT" in unit


def extracting_difusor(s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path) -> PullDifusor:
    """A pull difusor with ``extract: true``, both ends keeping two cortes."""
    difusor = institute_and_difusor(
        s3_bucket, workdir, tmp_path, deadline=60, retention=2, rowless_actas={}
    )
    difusor.write_config(extract=True, retention=2)
    return difusor


def test_extract_publishes_the_csvs_of_the_zip_beside_it(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    difusor = extracting_difusor(s3_bucket, workdir, tmp_path)
    site = tmp_path / "sitio"
    cortes = Cortes("prep", workdir, tmp_path)
    published: list[str] = []
    for k in range(3):
        package = cortes.build(k)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(package.corte)
        code, result = difusor.run_json(capsys)
        assert (code, result["outcome"]) == (0, "delivered"), result
        tree = read_tree(site)
        expected: dict[str, bytes] = {}
        for corte in published[-2:]:
            institute = workdir.package_tree(corte)
            expected.update(institute)
            (zip_path,) = [p for p in institute if p.endswith(".zip")]
            # The ZIP as the institute published it; its CSVs under datos/csv/<corte>/.
            assert tree[zip_path] == institute[zip_path]
            for name, data in csvs(institute[zip_path]).items():
                expected[f"datos/csv/{corte}/{name}"] = data
        expected.update(workdir.package_tree(published[-1]))
        assert tree == expected, sorted(set(tree) ^ set(expected))
        assert any(p.startswith(f"datos/csv/{package.corte}/") for p in tree)


def csvs(zip_bytes: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for member in archive.infolist():
            if member.filename.lower().endswith(".csv"):
                found[member.filename] = archive.read(member)
            elif member.filename.lower().endswith(".zip"):
                stem = Path(member.filename).stem
                for name, data in csvs(archive.read(member)).items():
                    found[f"{stem}/{name}"] = data
    return found


def test_an_extracted_csv_lost_from_the_cache_is_extracted_again_before_it_is_published(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    difusor = extracting_difusor(s3_bucket, workdir, tmp_path)
    site = tmp_path / "sitio"
    corte = Cortes("prep", workdir, tmp_path).build(0).corte
    assert main(["-C", str(workdir.path), "publish"]) == 0
    # A first pass downloads and extracts the corte, and fails at the destination.
    (site / ".prepush").write_text("no es un directorio")
    code, result = difusor.run_json(capsys)
    assert (code, result["outcome"], result["error_class"]) == (3, "failed", "RemoteError")
    (site / ".prepush").unlink()
    # Before the next pass, this disk loses one extracted CSV and damages another (same size).
    extracted = difusor.path / "paquetes" / corte / ".prepush" / "extraido"
    lost, damaged = sorted(extracted.rglob("*.csv"))[:2]
    kept = {p: p.read_bytes() for p in (lost, damaged)}
    lost.unlink()
    damaged.write_bytes(b"x" * len(kept[damaged]))
    code, result = difusor.run_json(capsys)
    assert (code, result["outcome"], result["corte"]) == (0, "delivered", corte), result
    # Extracted again: the site holds every CSV of the ZIP, as the ZIP has it.
    assert {p: p.read_bytes() for p in kept} == kept
    institute = workdir.package_tree(corte)
    (zip_path,) = [p for p in institute if p.endswith(".zip")]
    expected = institute | {
        f"datos/csv/{corte}/{name}": data for name, data in csvs(institute[zip_path]).items()
    }
    assert read_tree(site) == expected, sorted(set(read_tree(site)) ^ set(expected))

"""prepush build: every real Campeche corte, determinism, reuse, bad inputs, signatures."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.corte.inputs import collect_sources, parse_sources
from prepush.corte.summary import compute_summary
from prepush.package import MANIFEST, SIGNATURE, Package, sha256_bytes
from tests.conftest import Workdir
from tests.support.prepdata import CORTES, campeche_dir, cortes_dir


def test_truncation_matches_the_prep() -> None:
    from prepush.corte.summary import truncated_percentage

    assert truncated_percentage(1050, 1190) == "88.2352"
    assert truncated_percentage(2, 271) == "0.738"
    assert truncated_percentage(0, 10) == "0"
    assert truncated_percentage(10, 10) == "100"


def test_every_corte_builds_and_the_original_nested_zip_too(
    workdir: Workdir, tmp_path: Path
) -> None:
    workdir.write_roster([])
    for corte in CORTES:
        package = Package.open(workdir.build(corte))
        assert package.corte == corte
        assert package.verify(None) == []
    zipped = campeche_dir() / "original_zip" / "20210601_1852_PREP_CAMP.zip"
    other = Workdir(tmp_path / "zip", workdir.signing_key)
    other.path.mkdir()
    other.write_roster([])
    assert main(["-C", str(other.path), "build", str(zipped)]) == 0
    from_zip = Package.open(other.path / "paquetes" / "20210601_1852").manifest
    from_dirs = Package.open(workdir.path / "paquetes" / "20210601_1852").manifest
    # Same data, same objects: only the database ZIP (which keeps the LEEME files) differs.
    objects = {f.path: f.sha256 for f in from_zip.files if f.path.startswith("json/o/")}
    assert objects == {f.path: f.sha256 for f in from_dirs.files if f.path.startswith("json/o/")}


def test_the_prep_zip_is_published_byte_for_byte(workdir: Workdir) -> None:
    """The original nested ZIP as the PREP published it: datos/ holds that very file, and
    main.json its sha256, for the public to compare with the one the institute publishes."""
    workdir.write_roster([])
    zipped = campeche_dir() / "original_zip" / "20210601_1852_PREP_CAMP.zip"
    assert main(["-C", str(workdir.path), "build", str(zipped)]) == 0
    package = workdir.path / "paquetes" / "20210601_1852"
    main_json = json.loads((package / "json/main.json").read_bytes())
    assert main_json["zip"] == "datos/20210601_1852_PREP.zip"
    published = (package / main_json["zip"]).read_bytes()
    assert sha256_bytes(published) == sha256_bytes(zipped.read_bytes())
    assert main_json["zip_sha256"] == sha256_bytes(published)
    entry = Package.open(package).manifest.by_path()[main_json["zip"]]
    assert entry.sha256 == main_json["zip_sha256"]


def test_build_is_deterministic_and_reuses_unchanged_objects(
    workdir: Workdir, tmp_path: Path
) -> None:
    workdir.write_roster([])
    first = Package.open(workdir.build("20210606_2320")).manifest
    again_dir = tmp_path / "otra"
    shutil.copytree(workdir.path, again_dir, ignore=shutil.ignore_patterns("paquetes"))
    again = Workdir(again_dir, workdir.signing_key)
    assert Package.open(again.build("20210606_2320")).manifest.to_bytes() == first.to_bytes()
    assert again.package_tree("20210606_2320") == workdir.package_tree("20210606_2320")
    # Rebuilt from the CSV directories, the ZIP is prepush's deterministic one.
    tree = workdir.package_tree("20210606_2320")
    main_json = json.loads(tree["json/main.json"])
    assert main_json["zip_sha256"] == sha256_bytes(tree[main_json["zip"]])
    second = Package.open(workdir.build("20210606_2340")).manifest
    first_objects = {f.path for f in first.files if f.path.startswith("json/o/")}
    second_objects = {f.path for f in second.files if f.path.startswith("json/o/")}
    shared = first_objects & second_objects
    # 21 + 21 + 13 + juntas groups: the ones without new actas keep their object.
    assert len(shared) >= 40, len(shared)
    assert len(second_objects - first_objects) >= 10
    # Building an existing corte again is a no-op; different content is refused.
    assert main(["-C", str(workdir.path), "build", *_inputs("20210606_2340")]) == 0


def _inputs(corte: str) -> list[str]:
    return [str(p) for p in sorted(cortes_dir().glob(f"{corte}_PREP_*"))]


def test_main_json_names_the_corte_and_its_figures(workdir: Workdir) -> None:
    workdir.write_roster([])
    path = workdir.build("20210607_2000", "--simulacro")
    main_json = json.loads((path / "json/main.json").read_bytes())
    assert main_json["corte"] == "20210607_2000"
    assert main_json["corte_time"] == "2021-06-07T20:00:00-05:00"
    assert main_json["kind"] == "simulacro"
    assert (path / main_json["index"]).is_file()
    assert (path / main_json["zip"]).is_file()
    gob = next(e for e in main_json["elections"] if e["code"] == "GOB")
    # The PREP's figures as printed, and the rows' beside them.
    assert gob["summary"]["actas_contabilizadas"] == "1050"
    assert gob["summary"]["porcentaje_actas_contabilizadas"] == "88.2352"
    assert gob["summary_rows"]["actas_contabilizadas"] == 1050
    assert gob["summary_from_rows"] == []
    index = json.loads((path / main_json["index"]).read_bytes())
    # An election's page needs no index: main.json names its resumen.
    assert gob["resumen_object"] == index["objects"]["gob/resumen.json"]
    resumen = json.loads((path / index["objects"]["gob/resumen.json"]).read_bytes())
    assert resumen["summary"] == gob["summary"]
    assert resumen["total"] == gob["summary_rows"]["total_votos_c_cs"]
    assert sum(g["total"] for g in resumen["groups"]) == resumen["total"]
    groups = [n for n in index["objects"] if n.startswith("gob/distrito/")]
    assert len([n for n in groups if n.endswith("/catalogo.json")]) == 21
    assert len(groups) == 42  # results and catálogo of each distrito
    results = json.loads((path / index["objects"]["gob/distrito/001.json"]).read_bytes())
    catalogue = json.loads((path / index["objects"]["gob/distrito/001/catalogo.json"]).read_bytes())
    casillas = [c["clave"] for s in catalogue["secciones"] for c in s["casillas"]]
    assert len(casillas) == results["esperadas"]
    assert {a["clave"] for a in results["actas"]} <= set(casillas)
    assert sum(a["total"] for a in results["actas"] if a["contabilizada"] == 1) == results["total"]


def test_results_objects_only_grow_at_the_end_from_corte_to_corte(workdir: Workdir) -> None:
    """The PREP publishes an acta once and never changes it; listed in publication order,
    each results object is the previous corte's actas followed by the new ones, so the
    next corte's object starts with the previous one's bytes up to its last acta."""
    workdir.write_roster([])
    previous: dict[str, bytes] = {}
    grown = 0
    for corte in CORTES[1:]:
        package = workdir.build(corte)
        main_json = json.loads((package / "json/main.json").read_bytes())
        index = json.loads((package / main_json["index"]).read_bytes())["objects"]
        current = {
            name: (package / path).read_bytes()
            for name, path in index.items()
            if name.count("/") == 2 and not name.endswith("resumen.json")
        }
        for name, data in current.items():
            old = previous.get(name)
            if old is None or old == data:
                continue
            old_actas = json.loads(old)["actas"]
            assert json.loads(data)["actas"][: len(old_actas)] == old_actas, (corte, name)
            if old_actas:
                # The old object's bytes up to its last acta are the new object's first bytes.
                cut = old.index(b'],"contabilizadas"')
                assert data.startswith(old[:cut]), (corte, name)
                grown += 1
        previous = current
    assert grown >= 50


def _corrupt(tmp_path: Path, name: str, change: object) -> Path:
    source = next(cortes_dir().glob("20210607_2000_PREP_GOB_CAMP"))
    target = tmp_path / name
    shutil.copytree(source, target)
    csv = target / "CAMP_GOB_2021.csv"
    csv.chmod(stat.S_IRUSR | stat.S_IWUSR)
    text = csv.read_text()
    assert callable(change)
    csv.write_text(change(text))
    return target


BAD_INPUTS = {
    "truncado": (lambda t: t[: len(t) // 2], "campos"),
    "sin_columna": (lambda t: t.replace("CONTABILIZADA,", "CONTABILIZ,", 1), "CONTABILIZADA"),
    "voto_no_numerico": (lambda t: t.replace(",180,69,2,1,1,", ",18o,69,2,1,1,", 1), "no numérico"),
    "delimitador": (lambda t: t.replace(",", ";"), "delimitador"),
    "vacio": (lambda _t: "", "vacío"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_exit_2_naming_file_line_column_and_build_nothing(
    case: str, workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, words = BAD_INPUTS[case]
    workdir.write_roster([])
    bad = _corrupt(tmp_path, case, change)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "build", str(bad)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "CAMP_GOB_2021.csv" in err
    assert words in err
    if case in ("truncado", "voto_no_numerico"):
        assert "CAMP_GOB_2021.csv:" in err  # with line and column
    packages = workdir.path / "paquetes"
    assert not packages.exists() or list(packages.iterdir()) == []


def test_signed_package_verifies_and_one_changed_byte_is_named(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    path = workdir.build("20210606_2340")
    assert main(["-C", str(workdir.path), "verify-package", str(path)]) == 0
    manifest = json.loads((path / MANIFEST).read_bytes())
    for entry in manifest["files"][:: max(1, len(manifest["files"]) // 5)]:
        target = path / entry["path"]
        original = target.read_bytes()
        target.write_bytes(bytes([original[0] ^ 1]) + original[1:])
        capsys.readouterr()
        assert main(["-C", str(workdir.path), "verify-package", str(path)]) == 2
        assert entry["path"] in capsys.readouterr().out
        target.write_bytes(original)
    (path / MANIFEST).write_bytes((path / MANIFEST).read_bytes().replace(b"oficial", b"simulacro"))
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "verify-package", str(path)]) == 2
    assert "firma" in capsys.readouterr().out


def test_keygen_writes_0600_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(tmp_path), "keygen", "--out", "claves/prepush.pem", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    private = Path(info["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert info["public_line"].startswith("ssh-ed25519 ")
    before = private.read_bytes()
    assert main(["-C", str(tmp_path), "keygen", "--out", "claves/prepush.pem"]) == 2
    assert private.read_bytes() == before


@pytest.mark.parametrize("variant", ["bom", "crlf", "cr", "pipe", "latin1"])
def test_encoding_line_end_and_delimiter_variants_parse_alike(variant: str, tmp_path: Path) -> None:
    """Other PREPs publish with a BOM, CR line ends, pipes or Latin-1: same result."""
    real = cortes_dir() / "20210607_2000_PREP_AYUN_CAMP" / "CAMP_AYUN_2021.csv"
    # A non-ASCII name, so that the Latin-1 variant really differs from UTF-8.
    text = real.read_text(encoding="utf-8").replace("SEYBAPLAYA", "SEYBÁPLAYA")
    reference = tmp_path / "utf8"
    reference.mkdir()
    source = reference / "CAMP_AYUN_2021.csv"
    source.write_text(text, encoding="utf-8")
    if variant == "bom":
        data = b"\xef\xbb\xbf" + text.encode()
    elif variant == "crlf":
        data = text.replace("\n", "\r\n").encode()
    elif variant == "cr":
        data = text.replace("\n", "\r").encode()
    elif variant == "pipe":
        data = text.replace(",", "|").encode()
    else:
        data = text.encode("latin-1")
    target = tmp_path / "CAMP_AYUN_2021.csv"
    target.write_bytes(data)
    (original,) = parse_sources(collect_sources([source]))
    (changed,) = parse_sources(collect_sources([target]))
    assert changed.actas == original.actas
    assert compute_summary(changed) == compute_summary(original)
    assert changed.vote_columns == original.vote_columns
    assert any(a.group_name.startswith("SEYBÁPLAYA") for a in changed.actas)


def test_documents_carry_votes_by_candidatura_leads_secciones_and_each_actas_image(
    workdir: Workdir,
) -> None:
    pattern = "https://prep.example.mx/actas/{clave_acta}.jpg"
    workdir.write_roster([], acta_image_url=pattern)
    path = workdir.build("20210607_1320")
    main_json = json.loads((path / "json/main.json").read_bytes())
    assert main_json["acta_image_url"] == pattern
    objects = json.loads((path / main_json["index"]).read_bytes())["objects"]

    def document(name: str) -> dict:  # type: ignore[type-arg]
        return json.loads((path / objects[name]).read_bytes())  # type: ignore[no-any-return]

    gob = document("gob/resumen.json")
    assert gob["contest"] == "election"
    figures = gob["por_candidatura"]
    layda = next(r for r in figures["candidaturas"] if r["key"] == "SUM-PT-MOR")
    assert layda == {"key": "SUM-PT-MOR", "votes": 108862, "percentage": "33.1046"}
    assert figures["leader"] == "SUM-PT-MOR"
    assert figures["total"] == gob["total"]
    definition = next(c for c in gob["candidaturas"] if c["key"] == "SUM-PT-MOR")
    assert definition["name"] == "LAYDA ELENA SANSORES SAN ROMAN"
    assert definition["columns"] == ["PT", "MOR", "C_PT_MOR"]
    assert definition["lines"] == [8]
    assert len(gob["percentages"]) == len(gob["columns"])
    # Each distrito of the one-contest GOB: the same candidaturas, its own figures.
    distrito = document("gob/distrito/001.json")
    assert distrito["por_candidatura"]["total"] == distrito["total"]
    assert document("gob/distrito/001/catalogo.json")["candidaturas"] == gob["candidaturas"]
    # DIP_LOC: each distrito a contest, and how many each candidatura leads.
    dip = document("dip_loc/resumen.json")
    assert dip["contest"] == "group"
    assert dip["candidaturas"] == []
    assert dip["por_candidatura"] is None
    led = sum(lead["contests"] for lead in dip["leads"])
    assert led == sum(1 for g in dip["groups"] if g["leader"] is not None)
    assert led == 21
    keys = {lead["key"] for lead in dip["leads"]}
    assert {"SUM-PAN-PRI-PRD", "MOR", "MC"} <= keys
    first = dip["groups"][0]
    own = document(f"dip_loc/distrito/{first['id']}/catalogo.json")["candidaturas"]
    assert first["leader"]["key"] in {c["key"] for c in own}
    # The index of secciones and each acta's digitized image.
    secciones = document("gob/secciones.json")["secciones"]
    assert secciones["0001"] == ["007"]
    acta = next(
        a for a in document("gob/distrito/007.json")["actas"] if a["clave"] == "040003B0100"
    )
    assert acta["sha256"] == "37746298f14d71a5a09725eff32e6f0b669bd0fcb24b311084a77caf71f06c27"
    assert (acta["digitalizacion"], acta["origen"]) == ("ESCANER", "CATD")
    assert (acta["clave_acta"], acta["tipo_documento"]) == ("040003B010005", "ACTA PREP")
    # Sección 0333 C01 is in two municipios of AYUN: each acta gets its own row's image.
    champoton = document("ayun/municipio/004.json")["actas"]
    (shared_key,) = [a for a in champoton if a["clave"] == "040333C0100"]
    assert shared_key["sha256"].startswith("1d28c717")
    seybaplaya = document("ayun/municipio/013.json")["actas"]
    assert "040333C0100" not in {a["clave"] for a in seybaplaya}  # not captured at 13:20


def test_two_machines_build_the_same_package_from_the_same_prep_files(
    tmp_path: Path, client_key: Path
) -> None:
    """A publisher and its standby each build every corte from the files the PREP hands
    them: in other directories, at other moments, one of them joining late (without the
    night's earlier cortes), the packages are the same byte for byte, signature included,
    so either machine can publish any corte."""
    zipped = campeche_dir() / "original_zip" / "20210601_1852_PREP_CAMP.zip"
    machines = []
    for place in ("maquina-a/trabajo", "contingencia/prep/maquina-b"):
        workdir = Workdir(tmp_path / place, client_key)
        workdir.path.mkdir(parents=True)
        workdir.write_roster([])
        machines.append(workdir)
    a, b = machines
    assert main(["-C", str(a.path), "build", str(zipped)]) == 0
    for corte in ("20210606_2320", "20210606_2340"):
        a.build(corte)
    # The standby joins late: the last corte first, then the pre-election ZIP.
    b.build("20210606_2340")
    assert main(["-C", str(b.path), "build", str(zipped)]) == 0
    for corte in ("20210601_1852", "20210606_2340"):
        ours, theirs = (Package.open(m.path / "paquetes" / corte) for m in machines)
        assert ours.manifest.digest == theirs.manifest.digest, corte
        assert (ours.path / MANIFEST).read_bytes() == (theirs.path / MANIFEST).read_bytes()
        assert (ours.path / SIGNATURE).read_bytes() == (theirs.path / SIGNATURE).read_bytes()
        assert a.package_tree(corte) == b.package_tree(corte), corte

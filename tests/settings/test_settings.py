"""The roster: validated once on load, every error located as file:line:column."""

from __future__ import annotations

import stat
from importlib import resources
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.settings import load_settings, parse_roster, pin_host_key
from tests.support.rosters import HOST_KEY, VALID, problems_of

REPO = Path(__file__).resolve().parents[2]


def test_valid_roster_applies_defaults() -> None:
    roster = parse_roster(VALID, "difusores.yaml")
    assert [d.name for d in roster.difusores] == ["uno", "dos"]
    assert roster.difusores[1].port == 2222
    assert roster.difusores[0].port == 22
    assert roster.difusores[0].key_file == "claves/prepush.pem"
    assert roster.election.retention == 3
    assert roster.election.max_failed_cortes == 3
    start, end = roster.election.window()
    assert start.utcoffset() is not None
    assert str(start.tzinfo) == "America/Mazatlan"
    assert end > start


def test_example_roster_is_the_init_template_and_validates() -> None:
    template = (resources.files("prepush") / "templates" / "difusores.yaml").read_text()
    assert (REPO / "difusores.yaml").read_text() == template
    roster = parse_roster(template, "difusores.yaml")
    assert len(roster.difusores) == 2


def test_duplicate_names_are_located() -> None:
    text = VALID.replace("name: dos", "name: uno")
    (problem,) = problems_of(text)
    assert problem.startswith("difusores.yaml:12:11: difusores[uno].name")
    assert "repetido" in problem


def test_bad_port_is_located_on_its_line() -> None:
    text = VALID.replace("port: 2222", "port: 70000")
    (problem,) = problems_of(text)
    assert problem.startswith("difusores.yaml:14:11: difusores[dos].port")
    assert "65535" in problem


def test_bad_port_in_defaults_points_at_defaults_once() -> None:
    text = VALID.replace("  user: prep\n", "  user: prep\n  port: 0\n")
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("difusores.yaml:7:9: defaults.port")


def test_missing_host_key_is_an_error_naming_the_difusor() -> None:
    text = VALID.replace(f'    host_key: "{HOST_KEY}"\n  - name: dos', "  - name: dos")
    (problem,) = problems_of(text)
    assert problem.startswith("difusores.yaml:9:5: difusores[uno]:")
    assert "llave de host" in problem


def test_unknown_key_points_at_the_key() -> None:
    text = VALID.replace("    port: 2222\n", "    port: 2222\n    prot: 22\n")
    (problem,) = problems_of(text)
    assert problem.startswith("difusores.yaml:15:5: difusores[dos].prot")
    assert "desconocido" in problem


def test_every_error_is_reported_at_once() -> None:
    text = VALID.replace("port: 2222", "port: nada").replace("name: uno", "name: Uno!")
    problems = problems_of(text)
    assert len(problems) == 2
    assert any("difusores[Uno!].name" in p for p in problems)
    assert any("difusores[dos].port" in p and "entero" in p for p in problems)


def test_secrets_in_yaml_are_refused_with_advice() -> None:
    text = VALID.replace("    port: 2222\n", "    port: 2222\n    password: hunter2\n")
    (problem,) = problems_of(text)
    assert "password_env" in problem
    assert "hunter2" not in problem


def test_bad_host_key_and_timezone() -> None:
    text = VALID.replace("America/Mazatlan", "America/Atlantida").replace(
        f'host_key: "{HOST_KEY}"\n  - name: dos', 'host_key: "ssh-ed25519 nada"\n  - name: dos'
    )
    problems = problems_of(text)
    assert any("election.timezone" in p and "IANA" in p for p in problems)
    assert any("difusores[uno].host_key" in p for p in problems)


def test_duplicate_yaml_keys_are_errors() -> None:
    text = VALID.replace("    port: 2222\n", "    port: 2222\n    port: 2223\n")
    (problem,) = problems_of(text)
    assert "difusores.yaml:15:5" in problem
    assert "repetida" in problem


def test_invalid_yaml_is_located() -> None:
    (problem,) = problems_of("election: [\n")
    assert problem.startswith("difusores.yaml:2:1")


def test_learn_host_keys_mode_accepts_missing_pins(tmp_path: Path) -> None:
    text = VALID.replace(f'    host_key: "{HOST_KEY}"\n', "")
    (tmp_path / "difusores.yaml").write_text(text)
    settings = load_settings(tmp_path, learn_host_keys=True)
    assert settings.roster.difusores[0].host_key is None


def test_cli_exits_2_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("port: 2222", "port: 70000").replace("name: dos", "name: uno")
    (tmp_path / "difusores.yaml").write_text(text)
    code = main(["-C", str(tmp_path), "publish", "--dry-run"])
    assert code == 2
    err = capsys.readouterr().err
    assert "difusores.yaml:12:11" in err
    assert "difusores.yaml:14:11" in err


def test_cli_without_roster_says_how_to_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(tmp_path), "publish"]) == 2
    assert "prepush init" in capsys.readouterr().err


def test_init_writes_a_valid_roster_and_refuses_to_overwrite(tmp_path: Path) -> None:
    assert main(["-C", str(tmp_path), "init"]) == 0
    assert (tmp_path / "paquetes").is_dir()
    settings = load_settings(tmp_path)
    assert settings.packages_dir == tmp_path.resolve() / "paquetes"
    assert main(["-C", str(tmp_path), "init"]) == 2


def test_init_creates_the_signing_key_its_roster_names_and_never_overwrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prepush.package import Package, load_public_key
    from tests.support.prepdata import cortes_dir

    assert main(["-C", str(tmp_path), "init"]) == 0
    key = load_settings(tmp_path).signing_key_path
    assert key == tmp_path.resolve() / "claves" / "firma.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # init then build: the package is signed with the key the roster names.
    gob = cortes_dir() / "20210607_2000_PREP_GOB_CAMP"
    assert main(["-C", str(tmp_path), "build", str(gob)]) == 0
    package = Package.open(tmp_path / "paquetes" / "20210607_2000")
    assert package.verify(load_public_key(key)) == []
    before = key.read_bytes()
    (tmp_path / "difusores.yaml").unlink()
    capsys.readouterr()
    assert main(["-C", str(tmp_path), "init"]) == 0
    assert "Se conserva la llave de firma" in capsys.readouterr().out
    assert key.read_bytes() == before


def test_pin_host_key_keeps_comments_and_validates(tmp_path: Path) -> None:
    text = VALID.replace(f'    host_key: "{HOST_KEY}"\n  - name: dos', "  # segundo\n  - name: dos")
    roster = tmp_path / "difusores.yaml"
    roster.write_text(text)
    pin_host_key(roster, "uno", HOST_KEY)
    updated = roster.read_text()
    assert "  # segundo\n" in updated
    assert parse_roster(updated, "difusores.yaml").difusores[0].host_key == HOST_KEY
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
    pin_host_key(roster, "dos", other)
    assert parse_roster(roster.read_text(), "difusores.yaml").difusores[1].host_key == other


def test_the_acta_image_url_pattern_is_kept() -> None:
    pattern = "https://prep.ieec.org.mx/actas/{eleccion}/{clave_acta}.jpg?h={sha256}"
    text = VALID.replace("  timezone:", f'  acta_image_url: "{pattern}"\n  timezone:')
    assert parse_roster(text, "difusores.yaml").election.acta_image_url == pattern
    assert parse_roster(VALID, "difusores.yaml").election.acta_image_url is None


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("http://prep.ieec.org.mx/{clave_acta}.jpg", "https://"),
        ("https://prep.ieec.org.mx/actas/{seccion}.jpg", "{clave_acta}"),
        ("https://prep.ieec.org.mx/{clave}.jpg", "campo desconocido {clave}"),
        ("https://{eleccion}.ieec.org.mx/{clave_acta}.jpg", "fijo"),
        ("https://prep.ieec.org.mx/{clave_acta.jpg", "sin cerrar"),
        ("https://prep.ieec.org.mx/a b/{clave_acta}.jpg", "espacios"),
        ('https://prep.ieec.org.mx/"/{clave_acta}.jpg', "caracteres"),
    ],
)
def test_a_bad_acta_image_url_is_refused_on_load_and_located(pattern: str, words: str) -> None:
    escaped = pattern.replace('"', '\\"')
    text = VALID.replace("  timezone:", f'  acta_image_url: "{escaped}"\n  timezone:')
    (problem,) = problems_of(text)
    assert problem.startswith("difusores.yaml:3:19: election.acta_image_url"), problem
    assert words in problem

"""S3 difusores in the roster: their s3: map, validated with file:line:column like the rest;
SSH's fields and checks apply to SSH difusores only; credentials are variable names."""

from __future__ import annotations

from pathlib import Path

import pytest

from prepush.settings import load_settings, parse_roster
from tests.support.rosters import VALID, problems_of


def with_s3(entry: str) -> str:
    return VALID + entry


GOOD = """\
  - name: bcs-medio
    transport: s3
    url: https://d111111abcdef8.cloudfront.net/
    s3:
      bucket: prep-bcs-2027
      prefix: sitio/prep
      region: us-west-2
      access_key_id_env: PREP_S3_LLAVE
      secret_access_key_env: PREP_S3_SECRETO
      cloudfront_distribution_id: E2QWRUHAPOMQZL
"""


def test_an_s3_difusor_needs_no_host_user_nor_host_key() -> None:
    roster = parse_roster(with_s3(GOOD), "difusores.yaml")
    s3 = roster.difusor("bcs-medio")
    assert s3.transport == "s3"
    assert s3.s3 is not None
    assert s3.s3.bucket == "prep-bcs-2027"
    assert s3.s3.prefix == "sitio/prep"
    assert s3.s3.env_names == ("PREP_S3_LLAVE", "PREP_S3_SECRETO")
    assert not s3.over_ssh
    assert roster.difusor("uno").over_ssh


@pytest.mark.parametrize(
    ("entry", "line", "said"),
    [
        ("  - name: sin-mapa\n    transport: s3\n", 16, "necesita el mapa s3:"),
        (
            "  - name: mal\n    transport: s3\n    s3:\n      bucket: Mal_Nombre\n",
            19,
            "no es un nombre de bucket",
        ),
        (
            "  - name: mal\n    transport: s3\n    s3:\n      bucket: prep\n"
            "      access_key_id_env: PREP_S3_LLAVE\n",
            19,
            "access_key_id_env y secret_access_key_env juntos",
        ),
        (
            "  - name: mal\n    transport: s3\n    s3:\n      bucket: prep\n"
            "      secret_access_key_env: wJalrXUtnFEMI/K7MDENG\n      access_key_id_env: A\n",
            20,
            "NOMBRE de una variable de entorno",
        ),
        (
            "  - name: mal\n    transport: s3\n    s3:\n      bucket: prep\n      prefix: /raiz\n",
            20,
            "sin '/' inicial",
        ),
        (
            "  - name: mal\n    transport: s3\n    s3:\n      bucket: prep\n      secret: x\n",
            20,
            "campo desconocido",
        ),
        (
            '  - name: mal\n    host: 127.0.0.1\n    host_key: "' + VALID.split('"')[1] + '"\n'
            "    s3:\n      bucket: prep\n",
            16,
            "s3: sólo va en un difusor con transport: s3",
        ),
    ],
)
def test_s3_mistakes_are_located(entry: str, line: int, said: str) -> None:
    problems = problems_of(with_s3(entry))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"difusores.yaml:{line}:"), problems
    assert said in problems[0], problems


def test_an_ssh_difusor_without_host_is_still_refused() -> None:
    problems = problems_of(VALID.replace("    host: 127.0.0.1\n    port: 2222\n", ""))
    assert any("falta host" in p and "difusores[dos]" in p for p in problems), problems


def test_missing_credential_variables_are_found_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREP_S3_LLAVE", raising=False)
    monkeypatch.setenv("PREP_S3_SECRETO", "x")
    only_s3 = VALID.split("difusores:\n")[0] + "difusores:\n" + GOOD
    (tmp_path / "difusores.yaml").write_text(only_s3)
    settings = load_settings(tmp_path)  # the structure is fine: the secret is the difusor's
    (problem,) = settings.credential_problems(settings.roster.difusores[0])
    assert "difusores[bcs-medio].s3.access_key_id_env" in problem
    assert "PREP_S3_LLAVE no está definida" in problem
    assert problem.startswith(f"{tmp_path / 'difusores.yaml'}:16:")

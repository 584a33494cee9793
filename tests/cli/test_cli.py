"""Every command, as automation sees it (issue 14, items 11 to 13).

With --json, stdout carries exactly one JSON document, on success and on error. Bad
arguments get a Spanish message and exit 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.cli import cli
from prepush.ledger import Ledger
from tests.conftest import Workdir
from tests.support.prepdata import cortes_dir
from tests.support.pull import write_pull_config
from tests.support.servers import Endpoint, Nginx

CORTE = "20210606_2320"
EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 1, "probe_size_mb": 1}
ENGLISH = ("Missing", "Invalid value", "No such", "Usage:", "Error: invalid input", "Try '")


def one_document(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, object]:
    capsys.readouterr()
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    # json.loads refuses anything after the first document.
    return code, json.loads(out)


def test_every_command_prints_one_json_document_on_success_and_on_error(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root)
    difusor = dataclasses.replace(sshd_plain, url=web.url)
    workdir.write_roster([difusor], requirements=EASY)
    here = ["-C", str(workdir.path)]
    fresh = ["-C", str(tmp_path / "nuevo")]
    inputs = [str(p) for p in sorted(cortes_dir().glob(f"{CORTE}_PREP_*"))]
    package = str(workdir.path / "paquetes" / CORTE)
    other_key = tmp_path / "otra.pem"
    pull_config = write_pull_config(tmp_path / "difusor-descarga", workdir.signing_key)
    # The ledger an earlier pull left: --report reads one, and never makes it.
    Ledger(pull_config.parent / "prepush-pull.db").close()
    successes = [
        ("init", [*fresh, "init"]),
        ("keygen", [*here, "keygen", "--out", "claves/acceso.pem"]),
        ("build", [*here, "build", *inputs]),
        ("verify-package", [*here, "verify-package", package]),
        ("publish", [*here, "publish"]),
        ("status", [*here, "status"]),
        ("report", [*here, "report"]),
        ("verify", [*here, "verify"]),
        ("check", [*here, "check"]),
        ("suspend", [*here, "suspend", difusor.name, "--motivo", "prueba"]),
        ("resume", [*here, "resume", difusor.name]),
        ("rollback", [*here, "rollback", "--to", CORTE]),
        ("resume-latest", [*here, "resume-latest"]),
        ("pull", ["pull", "--config", str(pull_config), "--report", "--format", "json"]),
        (
            "simulate",
            [
                "-C",
                str(tmp_path / "simulacro"),
                "simulate",
                "--difusores",
                "1",
                "--cortes",
                "1",
                "--seconds-per-corte",
                "0.5",
            ],
        ),
    ]
    for name, args in successes:
        code, document = one_document(capsys, args)
        assert code == 0, (name, document)
        assert isinstance(document, dict)
        assert "error" not in document, (name, document)
    assert main(["keygen", "--out", str(other_key)]) == 0
    failures = [
        ("init", [*fresh, "init"]),
        ("keygen", [*here, "keygen", "--out", "claves/acceso.pem"]),
        ("build", [*here, "build", "/nonexistent"]),
        ("verify-package", [*here, "verify-package", package, "--public-key", f"{other_key}.pub"]),
        ("publish", [*here, "publish", "20990101_0000"]),
        ("status", ["-C", str(tmp_path / "sin-padron"), "status"]),
        ("report", [*here, "report", "--desde", "anoche"]),
        ("verify", [*here, "verify", "--difusor", "nadie"]),
        ("check", [*here, "check", "--difusor", "nadie"]),
        ("suspend", [*here, "suspend", "nadie", "--motivo", "prueba"]),
        ("resume", [*here, "resume", difusor.name]),
        ("rollback", [*here, "rollback", "--to", "20990101_0000"]),
        ("resume-latest", [*here, "resume-latest"]),
        ("simulate", [*here, "simulate", "--fault", "nada"]),
        ("pull", ["pull", "--config", str(tmp_path / "no-existe.yaml")]),
    ]
    for name, args in failures:
        code, document = one_document(capsys, args)
        assert code == 2, (name, document)
        assert isinstance(document, dict)
        if name == "verify-package":
            assert document["ok"] is False  # the verdict is the document
        else:
            assert document["error"]["exit_code"] == 2, (name, document)
            assert document["error"]["message"], (name, document)
    covered = {name for name, _ in successes} & {name for name, _ in failures}
    assert covered == set(cli.commands)


BAD_ARGUMENTS = [
    ["init", "--nada"],
    ["keygen", "--type", "dsa"],
    ["build", "--site", ".", "--corte", "20211399_2599"],
    ["verify-package"],
    ["publish", "--watch", "pronto"],
    ["publish", "hoy"],
    ["rollback"],
    ["resume-latest", "de-más"],
    ["suspend"],
    ["resume"],
    ["check", "--learn-host-keys=sí"],
    ["status", "--interval", "cero"],
    ["report", "--format", "pdf"],
    ["simulate", "--cortes", "0"],
    ["verify", "--watch", "-1"],
    ["pull", "--format", "pdf"],
    ["nada"],
]


def test_every_command_with_bad_arguments_gets_a_spanish_message_and_no_traceback(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = {args[0] for args in BAD_ARGUMENTS}
    assert set(cli.commands) <= commands
    for args in BAD_ARGUMENTS:
        capsys.readouterr()
        code = main(["-C", str(workdir.path), *args])
        out, err = capsys.readouterr()
        assert code == 2, args
        assert "Traceback" not in out + err, args
        assert "Error: " in err, args
        for english in ENGLISH:
            assert english not in err, (args, err)


def test_help_is_in_spanish(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["publish", "--help"], ["report", "-h"]):
        capsys.readouterr()
        assert main(args) == 0
        out = capsys.readouterr().out
        assert out.startswith("Uso: prepush")
        assert "Opciones:" in out
        assert "Muestra esta ayuda y termina." in out
        for english in ENGLISH:
            assert english not in out, (args, english)
    capsys.readouterr()
    main(["publish", "--help"])
    assert "--watch [SEGUNDOS]" in capsys.readouterr().out

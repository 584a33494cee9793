"""``prepush pull --report``: the difusor's report from its ledger, as an operator meets it.

Without a ledger (no pull has run with this configuration yet) it creates nothing and says
so, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepush.__main__ import main
from tests.test_cli import write_pull_config


def files_under(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_report_without_a_ledger_creates_nothing_and_says_there_is_none_yet(
    client_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_pull_config(tmp_path / "difusor", client_key)
    before = files_under(tmp_path)
    code, out, err = run(["pull", "--config", str(config), "--report"], capsys)
    assert code == 2, (out, err)
    assert out == ""
    ledger = tmp_path / "difusor" / "prepush-pull.db"
    assert f"No hay bitácora de pull en {ledger}" in err
    assert "todavía no ha corrido" in err
    assert files_under(tmp_path) == before
    # In JSON too, and with a ledger named elsewhere: not even its directory is made.
    with config.open("a") as text:
        text.write("paths:\n  ledger: registros/pull.db\n")
    code, out, _ = run(["pull", "--config", str(config), "--report", "--json"], capsys)
    error = json.loads(out)["error"]
    assert (code, error["exit_code"], error["type"]) == (2, 2, "ConfigError")
    assert str(tmp_path / "difusor" / "registros" / "pull.db") in error["message"]
    assert files_under(tmp_path) == before

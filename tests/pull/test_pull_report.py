"""``prepush pull --report``: the difusor's report from its ledger, as an operator meets it.

Without a ledger (no pull has run with this configuration yet) it creates nothing and says
so, exit 2. Options that would be silently ignored are refused the way ``prepush report``
refuses them (exit 2, a Spanish message); the ones it can honour are honoured as there: with
``--json`` and another ``--format`` the document goes to ``-o`` and stdout carries one JSON
document that says what was written; ``-o``'s extension picks the format.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from prepush.__main__ import main
from tests.conftest import BucketFactory, Workdir
from tests.support.prepdata import CORTES
from tests.support.pull import institute_and_difusor, write_pull_config


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


IGNORED_TOGETHER = [
    (["--json", "--format", "md"], "Con --json y --format md, indique -o ARCHIVO"),
    (["--json", "--format", "csv"], "Con --json y --format csv, indique -o ARCHIVO"),
    (["--tabla", "incidencias"], "--tabla es para --format csv"),
    (["--tabla", "cortes", "--format", "md"], "--tabla es para --format csv"),
    (["--tabla", "incidencias", "--format", "json", "-o", "r.json"], "--tabla es para"),
    (["--json", "--tabla", "incidencias"], "--tabla es para --format csv"),
    (["-o", "informe.txt"], "Indique --format (md, csv o json) para escribir informe.txt"),
]


@pytest.mark.parametrize(("options", "said"), IGNORED_TOGETHER)
def test_report_options_that_would_be_ignored_are_refused_as_report_refuses_them(
    options: list[str],
    said: str,
    client_key: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative -o would land
    config = write_pull_config(tmp_path / "difusor", client_key)
    before = files_under(tmp_path)
    refusal = refused(["pull", "--config", str(config), "--report", *options], capsys)
    assert said in refusal
    assert files_under(tmp_path) == before
    # publish's own report says the same of the same options.
    report_options = [o.replace("cortes", "difusores") for o in options]
    assert said in refused(["-C", str(tmp_path / "sin-padron"), "report", *report_options], capsys)


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The message of a refusal (exit 2): from the JSON document with --json."""
    code, out, err = run(args, capsys)
    assert code == 2, (args, out, err)
    if "--json" in args:
        return str(json.loads(out)["error"]["message"])
    assert err.startswith("Error: "), err
    return err


def test_report_options_it_can_honour_are_honoured_as_report_honours_them(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    difusor = institute_and_difusor(s3_bucket, workdir, tmp_path, deadline=60)
    difusor.write_config()
    workdir.build(CORTES[0])
    assert main(["-C", str(workdir.path), "publish"]) == 0
    assert difusor.run() == 0
    report = ["pull", "--config", str(difusor.config), "--report"]

    # --json with --format md and -o: the Markdown to the file, one JSON document on stdout.
    informe = tmp_path / "informe.md"
    code, out, err = run([*report, "--json", "--format", "md", "-o", str(informe)], capsys)
    document = json.loads(out)
    assert code == 0, err
    assert document["written"] == [str(informe)]
    assert [c["corte"] for c in document["cortes"]] == [CORTES[0]]
    assert informe.read_text().startswith("# Reporte del difusor medio01")
    assert f"Reporte escrito en {informe}" in err

    # --json and -o with the JSON itself: the file and stdout, never an empty stdout.
    written = tmp_path / "reporte.json"
    code, out, _ = run([*report, "--json", "-o", str(written)], capsys)
    assert code == 0
    assert json.loads(out)["written"] == [str(written)]
    assert json.loads(written.read_text())["cortes"] == document["cortes"]

    # -o's extension picks the format, --tabla with it.
    table = tmp_path / "incidencias.csv"
    code, out, _ = run([*report, "--tabla", "incidencias", "-o", str(table)], capsys)
    assert (code, out) == (0, "")
    header = next(csv.reader(io.StringIO(table.read_text())))
    assert header == ["inicio", "fin", "duracion_s", "causa", "cortes"]
    cortes = tmp_path / "cortes.csv"
    assert main([*report, "-o", str(cortes)]) == 0
    rows = list(csv.DictReader(io.StringIO(cortes.read_text())))
    assert [(r["corte"], r["verificacion"]) for r in rows] == [(CORTES[0], "verificado")]

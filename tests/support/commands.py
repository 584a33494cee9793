"""prepush's commands run in the test's process, their ``--json`` output read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prepush.__main__ import main
from tests.conftest import Workdir


def run_json(workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    """``prepush -C WORKDIR ARGS --json``: its exit code and what it printed, parsed."""
    capsys.readouterr()
    code = main(["-C", str(workdir.path), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def publish(
    workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """``prepush publish --json``: its exit code and its report."""
    code, report = run_json(workdir, capsys, "publish", *args)
    return code, report


def deliveries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A publish report's deliveries, by difusor."""
    return {str(d["difusor"]): d for d in report["deliveries"]}


def checks_of(report: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """``check --json``'s checks of the difusor ``name``, by check."""
    (difusor,) = [d for d in report["difusores"] if d["difusor"] == name]
    return {c["name"]: c for c in difusor["checks"]}

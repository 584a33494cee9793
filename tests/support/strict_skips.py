"""Under CI a skipped test is a failure: a green run must not hide a missing install step.

A test skips when its real part is missing (sshd, nginx, Chromium, root, the shared PREP
data). On a developer's machine that is a notice; under ``CI=true`` (``.ci/run`` sets it) it
fails the run, naming what was missing, so CI cannot pass without running it.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"omitida en CI (CI=true), y en CI ninguna prueba se omite: {reason}."
            " Falta instalar algo en 'make test' o en .ci/run."
        )
    return report

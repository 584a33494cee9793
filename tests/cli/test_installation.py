"""The installed set is the locked set, every file checked by its hash; and what the operator
sees on the console is prepush's own, never a library's warnings."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from prepush.installation import check_installation, installed_versions, parse_pins
from tests.support.guide import README, snippet
from tests.support.prepdata import cortes_dir

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = ROOT / "prepush" / "lock"
ENTRY = re.compile(
    r"^(?P<pin>[A-Za-z0-9][^\s\\]*==[^\s;\\]+)(?P<rest>[^\n]*(?:\n[ \t]+[^\n]*)*)", re.M
)


def _entries(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Each locked package: its version and the sha256 of every file the lock allows."""
    entries = {}
    for match in ENTRY.finditer((LOCK_DIR / name).read_text()):
        pin = parse_pins(match["pin"])[0]
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", match["rest"]))
        entries[pin.name] = (pin.version, hashes)
    return entries


@pytest.mark.locked
def test_the_virtualenv_is_exactly_the_lock() -> None:
    locked = {
        pin.name: pin.version
        for pin in parse_pins((LOCK_DIR / "dev.txt").read_text())
        if pin.applies()
    }
    installed = installed_versions()
    # pip comes with the virtualenv itself; prepush is the project, installed from the tree.
    installed.pop("pip")
    installed.pop("prepush")
    assert installed == locked


@pytest.mark.locked
def test_prepush_says_its_installation_matches_the_runtime_lock() -> None:
    report = check_installation()
    assert report.matches, report.differences
    assert report.checked >= 30


@pytest.mark.parametrize("name", ["dev.txt", "runtime.txt", "uv.txt"])
def test_every_locked_file_carries_its_sha256(name: str) -> None:
    entries = _entries(name)
    assert entries
    for package, (_version, hashes) in entries.items():
        assert hashes, f"{name}: {package} sin --hash"


def test_the_runtime_and_bootstrap_locks_are_the_dev_lock_narrowed() -> None:
    dev = _entries("dev.txt")
    for name in ("runtime.txt", "uv.txt"):
        for package, entry in _entries(name).items():
            assert dev[package] == entry, f"{name}: {package} difiere de dev.txt"


def test_the_lock_covers_pyproject_and_its_build_backend() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = _entries("runtime.txt")
    dev = _entries("dev.txt")
    needed = [
        *(Requirement(r) for r in project["project"]["dependencies"]),
        *(Requirement(r) for r in project["build-system"]["requires"]),
    ]
    for requirement in needed:
        for lock in (runtime, dev):
            version = lock[requirement.name.lower()][0]
            assert requirement.specifier.contains(version), (requirement, version)
    for extra in ("test", "bench"):
        for text in project["project"]["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if requirement.name != "prepush":
                assert requirement.name.lower().replace("_", "-") in dev, requirement


def test_an_altered_hash_in_the_lock_makes_make_venv_fail(tmp_path: Path) -> None:
    """One package's hashes changed: the installer refuses it and installs nothing."""
    text = (LOCK_DIR / "dev.txt").read_text()
    block = re.search(r"^idna==.*?(?=^\S)", text, re.M | re.S)
    assert block is not None
    altered_block = re.sub(
        r"sha256:([0-9a-f]{63})[0-9a-f]",
        lambda m: f"sha256:{m[1]}{'0' if m[0][-1] != '0' else '1'}",
        block[0],
    )
    altered = tmp_path / "dev.txt"
    altered.write_text(text.replace(block[0], altered_block))
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "venv", f"VENV={venv}", f"LOCK={altered}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "Hash mismatch for `idna==" in done.stderr
    assert not (venv / ".installed").exists()
    assert not list(venv.glob("lib/python*/site-packages/idna"))


def test_a_real_build_writes_nothing_to_stderr_but_its_own(tmp_path: Path) -> None:
    """Every warning Python can raise is let through (PYTHONWARNINGS=always): none of a
    library's reaches the operator's console. Under 'make test-latest' this runs on the
    newest versions, where deprecations appear first."""
    prepush = shutil.which("prepush", path=str(Path(sys.executable).parent))
    assert prepush is not None
    subprocess.run([prepush, "-C", str(tmp_path), "init"], check=True, capture_output=True)
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    corte = sorted(cortes_dir().glob("20210607_2000_PREP_*"))
    done = subprocess.run(
        [prepush, "-C", str(tmp_path), "build", "--simulacro", *map(str, corte)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "20210607_2000" in done.stdout


def test_library_warnings_go_to_the_log_shown_only_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prepush.cli.logs import setup_logging

    # Another test's run of the CLI may have left logging's capture on, pointing at a warnings
    # hook pytest has since restored: start from none, as a new process does.
    logging.captureWarnings(False)
    for verbose in (False, True):
        setup_logging(verbose)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn_explicit(
                "DSA is deprecated", DeprecationWarning, "asyncssh/crypto/dsa.py", 1
            )
        shown = capsys.readouterr().err
        assert ("DSA is deprecated" in shown) is verbose
    logging.captureWarnings(False)
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize(("ci", "returncode"), [("true", 1), ("", 0)])
def test_a_skip_fails_the_run_under_ci(tmp_path: Path, ci: str, returncode: int) -> None:
    (tmp_path / "test_needs_sshd.py").write_text(
        "import pytest\n\ndef test_sshd():\n    pytest.skip('requiere /usr/sbin/sshd')\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.strict_skips",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == returncode, done.stdout
    if ci:
        assert "omitida en CI" in done.stdout
        assert "requiere /usr/sbin/sshd" in done.stdout


@pytest.mark.locked
def test_the_readme_production_install_installs_the_lock(tmp_path: Path) -> None:
    """The README's commands, as written, from the source package: the lock's hash and
    'conforme al candado' at the end."""
    uv = Path(sys.executable).parent / "uv"
    subprocess.run(
        [str(uv), "build", "--sdist", "--no-build-isolation", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"},
        timeout=120,
    )
    (sdist,) = tmp_path.glob("prepush-*.tar.gz")
    script = snippet(
        "install",
        {"prepush-0.1.0.tar.gz": str(sdist), "/opt/prepush": str(tmp_path / "prod")},
        document=README,
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lock_sha256 = hashlib.sha256((LOCK_DIR / "runtime.txt").read_bytes()).hexdigest()
    assert f"sha256 {lock_sha256}" in done.stdout
    assert "Instalado conforme al candado" in done.stdout

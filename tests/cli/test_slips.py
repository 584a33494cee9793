"""Issue 29: what one small operator mistake must never do to the public sites.

One test (or a few) per item of the issue, through the CLI. Items 1 to 5 run end to end
against the real OpenSSH sshd difusores of conftest.py: what the public would read is the
difusor's own ``json/main.json`` on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import itertools
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from prepush.__main__ import main
from prepush.cli.console import PublishView
from prepush.ledger import Ledger
from prepush.package import Package
from prepush.publish.protocol_types import Event
from prepush.publish.publisher import RUN_LOCK_FILE, publish
from prepush.publish.request import PublishRequest
from prepush.publish.runlock import RunLock
from prepush.settings import load_settings
from prepush.sim.fleet import LocalDifusor
from tests.conftest import BucketFactory, ProxyFactory, Workdir
from tests.support.commands import run_json
from tests.support.guide import README, snippet
from tests.support.prepdata import cortes_dir
from tests.support.pull import PullDifusor, institute_and_difusor, public_key_of
from tests.support.s3 import CREDENTIALS
from tests.support.servers import Endpoint

OLD, MIDDLE, NEW = "20210606_2340", "20210607_1320", "20210607_1440"
CLOSED = {"start": "2021-06-06T19:00:00", "end": "2021-06-08T00:00:00"}


def run(workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """prepush in this process: exit code and everything it said (stdout and stderr)."""
    capsys.readouterr()
    code = main(["-C", str(workdir.path), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def timer(workdir: Workdir, *args: str, env: dict[str, str] | None = None) -> Any:
    """prepush as cron runs it: its own process, no terminal."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "prepush", "-C", str(workdir.path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, **(env or {})},
    )


def served(endpoint: Endpoint) -> str | None:
    """The corte the public reads on this difusor: its json/main.json, as served."""
    main_json = endpoint.local_root / "json" / "main.json"
    if not main_json.is_file():
        return None
    return str(json.loads(main_json.read_bytes())["corte"])


def inputs(corte: str, pattern: str = "*") -> list[str]:
    return [str(p) for p in sorted(cortes_dir().glob(f"{corte}_PREP_{pattern}"))]


# --- 1. an older corte goes out only through rollback -------------------------------------------


def test_1_publish_of_a_corte_older_than_the_one_served_is_refused(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir.write_roster([sshd_plain, sshd_chroot])
    for corte in (OLD, NEW):
        workdir.build(corte)
        assert run(workdir, capsys, "publish")[0] == 0
    assert served(sshd_plain) == served(sshd_chroot) == NEW
    refusals = [
        ("publish", OLD),
        ("publish", OLD, "--override-embargo", "ensayo"),
        ("publish", OLD, "--dry-run"),
        ("publish", OLD, "--difusor", sshd_plain.name),
    ]
    for args in refusals:
        code, said = run(workdir, capsys, *args)
        assert code == 2, args
        assert OLD in said, said
        assert NEW in said, said
        assert f"prepush rollback --to {OLD}" in said, said
        assert served(sshd_plain) == served(sshd_chroot) == NEW
    # From a timer (no terminal), and outside the window too: never a silent exit 0.
    for publication in (None, CLOSED):
        if publication:
            workdir.write_roster([sshd_plain, sshd_chroot], publication=publication)
        for extra in ((), ("--override-embargo", "ensayo")):
            done = timer(workdir, "publish", OLD, *extra)
            assert done.returncode == 2, (publication, extra, done.stderr)
            assert f"prepush rollback --to {OLD}" in done.stderr
            assert served(sshd_plain) == served(sshd_chroot) == NEW
    code, document = run_json(workdir, capsys, "publish", OLD)
    assert code == 2
    assert document["error"]["exit_code"] == 2
    assert OLD in document["error"]["message"]
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert [d.corte for d in ledger.deliveries(dry_runs=True)] == [OLD, OLD, NEW, NEW]
    # The way that says it: rollback, which holds the difusores there.
    workdir.write_roster([sshd_plain, sshd_chroot])
    assert run(workdir, capsys, "rollback", "--to", OLD)[0] == 0
    assert served(sshd_plain) == served(sshd_chroot) == OLD
    # A held difusor serving OLD may get OLD again: nothing goes back.
    assert run(workdir, capsys, "publish", OLD)[0] == 0


def test_1_rollback_to_a_corte_no_longer_retained_does_not_suggest_publish(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain], retention=2)
    for corte in (OLD, MIDDLE, NEW):
        workdir.build(corte)
        assert run(workdir, capsys, "publish")[0] == 0
    code, said = run(workdir, capsys, "rollback", "--to", OLD)
    assert code == 3
    assert "ya no está retenido" in said
    assert "prepush publish" not in said
    assert served(sshd_plain) == NEW


# --- 2. a build with fewer elections, and a rebuild of a corte ----------------------------------

LAST = "20210607_2000"
ELECTIONS = ["AYUN", "DIP_LOC", "GOB", "JUNTAS"]


def elections_of(package: Path) -> list[str]:
    main_json = json.loads((package / "json" / "main.json").read_bytes())
    return sorted(e["code"] for e in main_json["elections"])


def served_elections(endpoint: Endpoint) -> list[str]:
    return elections_of(endpoint.local_root)


def test_2_fewer_elections_than_the_previous_corte_is_refused_unless_said(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(NEW)
    assert run(workdir, capsys, "publish")[0] == 0
    package = workdir.path / "paquetes" / LAST
    # The glob that matched one election of four.
    code, said = run(workdir, capsys, "build", *inputs(LAST, "GOB_CAMP"))
    assert code == 2
    assert f"{NEW}" in said
    for missing in ("AYUN", "DIP_LOC", "JUNTAS"):
        assert missing in said
    assert "--allow-fewer-elections" in said
    assert not package.exists()
    # Nothing new to publish: the public keeps the four elections.
    assert run(workdir, capsys, "publish")[0] == 0
    assert served(sshd_plain) == NEW
    # Said explicitly, it builds, and the ledger says so.
    code, said = run(workdir, capsys, "build", "--allow-fewer-elections", *inputs(LAST, "GOB_CAMP"))
    assert code == 0, said
    assert elections_of(package) == ["GOB"]
    # The correct build of the same corte, not yet published anywhere, replaces it.
    code, said = run(workdir, capsys, "build", *inputs(LAST))
    assert code == 0, said
    assert "reemplaz" in said
    assert elections_of(package) == ELECTIONS
    with Ledger(workdir.path / "prepush.db") as ledger:
        kinds = [e.kind for e in ledger.events() if e.kind.startswith("build_")]
    assert "build_refused" in kinds
    assert "build_fewer_elections" in kinds
    assert "build_replaced" in kinds
    assert main(["-C", str(workdir.path), "verify-package", str(package)]) == 0
    assert run(workdir, capsys, "publish")[0] == 0
    assert served(sshd_plain) == LAST
    assert served_elections(sshd_plain) == ELECTIONS
    # The report lists what the builds did to the data.
    code, document = run_json(workdir, capsys, "report")
    assert code == 0
    assert {"build_refused", "build_fewer_elections", "build_replaced"} <= {
        n["kind"] for n in document["fidelity"]
    }


def test_2_a_published_corte_is_replaced_only_when_said_naming_who_serves_it(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir.write_roster([sshd_plain, sshd_chroot])
    code, said = run(workdir, capsys, "build", *inputs(LAST, "GOB_CAMP"))
    assert code == 0, said  # the first corte of the night: no previous corte to compare
    assert run(workdir, capsys, "publish")[0] == 0
    assert served_elections(sshd_plain) == ["GOB"]
    package = workdir.path / "paquetes" / LAST
    before = (package / ".prepush" / "manifest.json").read_bytes()
    code, said = run(workdir, capsys, "build", *inputs(LAST))
    assert code == 2
    assert sshd_plain.name in said
    assert sshd_chroot.name in said
    assert "--replace-published" in said
    assert (package / ".prepush" / "manifest.json").read_bytes() == before
    code, said = run(workdir, capsys, "build", "--replace-published", *inputs(LAST))
    assert code == 0, said
    assert elections_of(package) == ELECTIONS
    with Ledger(workdir.path / "prepush.db") as ledger:
        (replaced,) = ledger.events("build_replaced")
    assert sshd_plain.name in replaced.message
    assert run(workdir, capsys, "publish")[0] == 0
    assert served_elections(sshd_plain) == served_elections(sshd_chroot) == ELECTIONS


# --- 5. a rebuild repairs a damaged package ----------------------------------------------------


def test_5_a_rebuild_checks_the_existing_package_and_repairs_it(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    package = workdir.build(NEW)
    manifest = json.loads((package / ".prepush" / "manifest.json").read_bytes())
    damaged = [e["path"] for e in manifest["files"] if e["path"].startswith("json/o/")][:2]
    for path in damaged:
        target = package / path
        target.write_bytes(b"x" + target.read_bytes()[1:])
    (package / "index.html").unlink()
    code, said = run(workdir, capsys, "verify-package", str(package))
    assert code == 2
    assert "vuelva a construirlo" in said
    # publish refuses the damaged package: nothing reaches the difusor.
    assert run(workdir, capsys, "publish")[0] == 2
    assert served(sshd_plain) is None
    code, said = run(workdir, capsys, "build", *inputs(NEW))
    assert code == 0, said
    assert "ya existía idéntico" not in said
    assert "reparado" in said
    for path in (*damaged, "index.html"):
        assert path in said
    assert run(workdir, capsys, "verify-package", str(package))[0] == 0
    code, document = run_json(workdir, capsys, "build", *inputs(NEW))
    assert code == 0
    assert document["already_built"] is True
    assert document["repaired"] == []
    with Ledger(workdir.path / "prepush.db") as ledger:
        (repaired,) = ledger.events("build_repaired")
    assert "index.html" in repaired.message
    assert run(workdir, capsys, "publish")[0] == 0
    assert served(sshd_plain) == NEW


# --- 3. a secret missing for one difusor fails that difusor alone --------------------------------

EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 0.01, "probe_size_mb": 0.1}


def test_3_a_missing_secret_is_that_difusors_failure_never_the_others(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREP_PASS_NO_DEFINIDA", raising=False)

    class Secretive(Endpoint):
        def roster_entry(self) -> dict[str, object]:
            return {**super().roster_entry(), "password_env": "PREP_PASS_NO_DEFINIDA"}

    secretive = Secretive(**dataclasses.asdict(sshd_chroot))
    roster = workdir.write_roster([sshd_plain, secretive], requirements=EASY)
    workdir.build(NEW)
    code, said = run(workdir, capsys, "publish")
    assert code == 1, said
    assert served(sshd_plain) == NEW
    assert served(sshd_chroot) is None
    assert "PREP_PASS_NO_DEFINIDA" in said
    assert f"{roster}:" in said
    assert "Corrija el archivo" not in said
    with Ledger(workdir.path / "prepush.db") as ledger:
        (failed,) = [d for d in ledger.deliveries() if d.difusor == sshd_chroot.name]
        assert failed.outcome == "failed"
        assert failed.error_class == "CredentialError"
        assert "PREP_PASS_NO_DEFINIDA" in (failed.error_message or "")
        assert ledger.attempts(failed.id) == []  # never contacted
    code, document = run_json(workdir, capsys, "publish")
    assert code == 1
    (failed_json,) = [d for d in document["deliveries"] if d["outcome"] == "failed"]
    assert "PREP_PASS_NO_DEFINIDA" in failed_json["error_message"]
    # Not selected: not even looked at.
    code, said = run(workdir, capsys, "publish", "--difusor", sshd_plain.name)
    assert code == 0
    assert "PREP_PASS_NO_DEFINIDA" not in said
    code, said = run(workdir, capsys, "check", "--difusor", sshd_plain.name)
    assert code == 0, said
    assert "PREP_PASS_NO_DEFINIDA" not in said
    # check tells it as that difusor's failure, and checks the other.
    code, document = run_json(workdir, capsys, "check")
    assert code == 1
    by_name = {d["difusor"]: d for d in document["difusores"]}
    assert by_name[sshd_plain.name]["status"] == "pass"
    (credentials,) = by_name[sshd_chroot.name]["checks"]
    assert credentials["name"] == "credentials"
    assert "PREP_PASS_NO_DEFINIDA" in credentials["detail"]
    # Suspended: not looked at either.
    assert run(workdir, capsys, "suspend", sshd_chroot.name, "--motivo", "sin clave")[0] == 0
    code, said = run(workdir, capsys, "publish")
    assert code == 0
    assert "PREP_PASS_NO_DEFINIDA" not in said
    assert run(workdir, capsys, "resume", sshd_chroot.name)[0] == 0
    # The only difusor of the run: exit 3, told.
    done = timer(workdir, "publish", "--difusor", sshd_chroot.name)
    assert done.returncode == 3, done.stderr
    assert "PREP_PASS_NO_DEFINIDA" in done.stdout + done.stderr
    # Given the secret, it is that difusor's turn (its password is not the way in, its key is).
    monkeypatch.setenv("PREP_PASS_NO_DEFINIDA", "x")
    workdir.write_roster([sshd_plain, sshd_chroot], requirements=EASY)
    assert run(workdir, capsys, "publish")[0] == 0
    assert served(sshd_chroot) == NEW


def test_3_a_missing_key_file_fails_its_difusor_and_structure_errors_still_stop_at_load(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    keyless = dataclasses.replace(sshd_chroot, key_file=tmp_path / "no-existe.pem")
    workdir.write_roster([sshd_plain, keyless])
    workdir.build(NEW)
    code, said = run(workdir, capsys, "publish")
    assert code == 1, said
    assert "no-existe.pem" in said
    assert served(sshd_plain) == NEW
    # The institute's configuration (the roster's structure) stops everything at load.
    roster = workdir.path / "difusores.yaml"
    roster.write_text(roster.read_text().replace("port:", "puerto:", 1))
    code, said = run(workdir, capsys, "publish")
    assert code == 2
    assert "Corrija el archivo" in said
    assert "campo desconocido" in said


# --- 4. a dry run against an up-to-date difusor -------------------------------------------------


def test_4_a_dry_run_against_an_up_to_date_difusor_says_so_and_exits_0(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(NEW)
    assert run(workdir, capsys, "publish")[0] == 0
    for publication in (None, CLOSED):
        if publication:
            workdir.write_roster([sshd_plain], publication=publication)
        for extra in ((), ("--override-embargo", "ensayo")):
            if publication and not extra:
                # Outside the window with nothing new: a timer is quiet, a dry run says so.
                assert timer(workdir, "publish").stdout == ""
                done = timer(workdir, "publish", "--dry-run")
                assert done.returncode == 0
                assert "Fuera de la ventana" in done.stdout, done.stdout
                continue
            code, document = run_json(workdir, capsys, "publish", "--dry-run", *extra)
            assert code == 0, document
            assert document["status"] == "ok"
            (delivery,) = document["deliveries"]
            assert delivery["outcome"] == "up_to_date"
            assert delivery["error_message"] is None
            code, said = run(workdir, capsys, "publish", "--dry-run", *extra)
            assert code == 0
            assert "FALLÓ" not in said
            # Asked for a plan, it is said even off a terminal (item 15): up to date.
            done = timer(workdir, "publish", "--dry-run", *extra)
            assert done.returncode == 0
            assert "al día" in done.stdout, done.stdout
    assert served(sshd_plain) == NEW


# --- 6. check against a slow difusor, and a clock that is off ------------------------------------

SLOW_LINK = 40_000  # bytes/s: the 40 KB/s of the issue
THE_CALLS = {"min_free_gb": 0.001}  # 40 MB/s over a 32 MB probe, ±5 s of clock: the defaults


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Prepush:
    """prepush in its own process, what it says read as it comes: through pipes, as cron
    runs it, or on a terminal (a pseudo-terminal of 250 columns)."""

    def __init__(self, workdir: Workdir, *args: str, terminal: bool = False) -> None:
        command = [sys.executable, "-m", "prepush", "-C", str(workdir.path), *args]
        self._raw = ""
        self._lock = threading.Lock()
        if terminal:
            leader, follower = pty.openpty()
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
            env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "250", "LINES": "50"}
            self.child = subprocess.Popen(
                command, stdin=follower, stdout=follower, stderr=follower, env=env
            )
            os.close(follower)
            self._source = leader
        else:
            self.child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert self.child.stdout is not None
            self._source = self.child.stdout.fileno()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._source, 65536)
            except OSError:  # the terminal closed with the child
                return
            if not chunk:
                return
            with self._lock:
                self._raw += chunk.decode(errors="replace")

    @property
    def said(self) -> str:
        """What it said so far, as a person reads it (without a terminal's escapes)."""
        return ANSI.sub("", self._raw)

    def wait_for(self, text: str, within: float = 30) -> str:
        """Everything said up to ``text``, which must come while the process runs. (One that
        never says it is stopped.)"""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                if text in self.said:
                    return self.said
            if self.child.poll() is not None:
                break
            time.sleep(0.05)
        said = self.said
        self.stop()
        raise AssertionError(f"prepush no dijo {text!r} a tiempo: {said}")

    def line_with(self, text: str, within: float = 30) -> str:
        """The first whole line that says ``text``, once said."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.wait_for(text, deadline - time.monotonic())
            with self._lock:
                for line in self.said.splitlines(keepends=True):
                    if text in line and line.endswith("\n"):
                        return line
            time.sleep(0.05)
        raise AssertionError(f"prepush no terminó la línea de {text!r}: {self.said}")

    def rest(self, within: float = 60) -> str:
        """Everything it said, once it ends."""
        self.child.wait(timeout=within)
        self.stop()
        return self.said

    def stop(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.reader.join(timeout=10)
        if self.child.stdout is not None:
            self.child.stdout.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._source)


def test_6_check_knows_within_seconds_that_a_link_is_far_too_slow(
    sshd_plain: Endpoint, workdir: Workdir, fault_proxy: ProxyFactory
) -> None:
    proxy, slow = fault_proxy(sshd_plain)
    proxy.faults.rate_bytes_per_s = SLOW_LINK
    workdir.write_roster([slow], requirements=THE_CALLS)
    started = time.monotonic()
    check = Prepush(workdir, "check")
    check.line_with("prueba de velocidad")
    assert check.child.poll() is None, "the progress is shown while check runs"
    progress = check.line_with("KB/s)")
    assert "prueba de velocidad: 64.0 KB en" in progress, progress
    said = check.rest()
    elapsed = time.monotonic() - started
    assert check.child.returncode == 3, said
    assert elapsed < 20, f"check took {elapsed:.1f} s on a 40 KB/s link"
    (throughput,) = [line for line in said.splitlines() if "throughput:" in line]
    assert "✗" in throughput
    assert "KB/s" in throughput
    assert not re.search(r"(?<![\d.])0\.0 MB/s", said), said
    assert "40 MB/s" in throughput  # what the calls require
    # The clock is measured on a small file of its own: the real clocks agree.
    (clock,) = [line for line in said.splitlines() if "clock:" in line]
    assert "✓" in clock, clock
    assert not list((sshd_plain.local_root / ".prepush").glob("throughput-*"))
    with Ledger(workdir.path / "prepush.db") as ledger:
        values = {c.name: c.value for c in ledger.checks()}
    assert values["throughput"] is not None
    assert values["throughput"] < 0.1  # MB/s
    assert values["clock"] is not None
    assert abs(values["clock"]) <= 5


def test_6_ctrl_c_during_the_speed_probe_is_answered_at_once_and_leaves_nothing(
    sshd_plain: Endpoint, workdir: Workdir, fault_proxy: ProxyFactory
) -> None:
    proxy, slow = fault_proxy(sshd_plain)
    proxy.faults.rate_bytes_per_s = SLOW_LINK
    workdir.write_roster([slow], requirements=THE_CALLS)
    check = Prepush(workdir, "check")
    check.wait_for("prueba de velocidad")
    interrupted = time.monotonic()
    check.child.send_signal(signal.SIGINT)
    check.child.wait(timeout=60)
    answered = time.monotonic() - interrupted
    rest = check.rest()
    assert check.child.returncode == 130, rest
    assert answered < 4, f"Ctrl-C answered after {answered:.1f} s"
    assert "Interrumpido" in rest
    assert not list((sshd_plain.local_root / ".prepush").glob("throughput-*"))


def test_6_a_server_clock_off_by_more_than_5_s_fails_check(
    asyncssh_server: LocalDifusor,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir.write_roster([asyncssh_difusor], requirements=EASY)
    for offset, status in ((0.0, "pass"), (819.9, "fail"), (-7.0, "fail")):
        asyncssh_server.faults.clock_offset_s = offset
        code, document = run_json(workdir, capsys, "check")
        checks = {c["name"]: c for c in document["difusores"][0]["checks"]}
        clock = checks["clock"]
        assert clock["status"] == status, (offset, clock)
        assert abs(clock["value"] - offset) <= 2.5, (offset, clock)
        assert code == (0 if status == "pass" else 3)
        if status == "fail":
            assert "NTP" in clock["detail"]
            assert "±5 s" in clock["detail"]


# --- 7. a publish waiting for another's run lock says for whom ----------------------------------


@pytest.mark.parametrize("terminal", [False, True], ids=["sin-terminal", "terminal"])
def test_7_a_publish_waiting_for_the_run_lock_says_for_whom_and_why(
    terminal: bool, sshd_plain: Endpoint, workdir: Workdir
) -> None:
    workdir.write_roster([sshd_plain], publish={"run_lock_wait_seconds": 60})
    workdir.build(NEW)
    with RunLock(workdir.path / RUN_LOCK_FILE, 0):  # another prepush, this test's process
        waiting = Prepush(workdir, "publish", terminal=terminal)
        said = waiting.wait_for(f"pid {os.getpid()}")
        assert waiting.child.poll() is None
        assert "Esperando a que termine otra ejecución" in said
        assert "60 s" in said
    said = waiting.rest()
    assert waiting.child.returncode == 0, said
    assert served(sshd_plain) == NEW


# --- 8. Ctrl-C during publish, and the live table ----------------------------------------------


def test_8_ctrl_c_during_publish_says_what_each_difusor_serves_now(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    fault_proxy: ProxyFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, slow = fault_proxy(sshd_chroot)
    workdir.write_roster([sshd_plain, slow], deadline=300)
    workdir.build(OLD)
    assert run(workdir, capsys, "publish")[0] == 0
    workdir.build(NEW)
    proxy.faults.rate_bytes_per_s = 20_000  # the new corte's megabyte takes a minute there
    publishing = Prepush(workdir, "publish")
    deadline = time.monotonic() + 60
    while served(sshd_plain) != NEW:
        assert time.monotonic() < deadline, publishing.said
        assert publishing.child.poll() is None, publishing.said
        time.sleep(0.05)
    interrupted = time.monotonic()
    publishing.child.send_signal(signal.SIGINT)
    said = publishing.rest()
    answered = time.monotonic() - interrupted
    assert publishing.child.returncode == 130, said
    assert answered < 10, answered
    assert served(sshd_plain) == NEW
    assert served(sshd_chroot) == OLD
    assert f"{sshd_plain.name}: el corte {NEW} (ya lo recibió)" in said
    assert f"{sshd_chroot.name}: sigue en el corte {OLD} completo" in said
    assert "Traceback" not in said
    with Ledger(workdir.path / "prepush.db") as ledger:
        last = [d for d in ledger.deliveries() if d.corte == NEW]
        outcomes = {d.difusor: d.outcome for d in last}
        assert outcomes == {sshd_plain.name: "delivered", sshd_chroot.name: "interrupted"}
        assert ledger.runs()[-1].status == "interrupted"
    shown = {d["difusor"]: d for d in run_json(workdir, capsys, "status")[1]["difusores"]}
    assert shown[sshd_plain.name]["serving_corte"] == NEW
    assert shown[sshd_chroot.name]["serving_corte"] == OLD
    # The report tells the interruption (item 13).
    code, document = run_json(workdir, capsys, "report")
    assert code == 0
    assert "interrupted" in [i["kind"] for i in document["incidents"]], document["incidents"]


def test_8_the_live_table_counts_bytes_as_they_flow_and_a_finished_speed_holds(
    sshd_chroot: Endpoint, workdir: Workdir, fault_proxy: ProxyFactory
) -> None:
    proxy, slow = fault_proxy(sshd_chroot)
    proxy.faults.rate_bytes_per_s = 400_000
    workdir.write_roster([slow], deadline=120)
    workdir.build(NEW)
    settings = load_settings(workdir.path)
    view = PublishView(Console(file=io.StringIO(), force_terminal=True, width=100), [])
    uploading: list[Event] = []

    def sink(event: Event) -> None:
        view(event)
        if event.stage == "uploading":
            uploading.append(event)

    report = publish(PublishRequest(settings, settings.roster.difusores), sink)
    assert report.exit_code == 0
    flowing = [
        (a.files_done, a.bytes_done, b.bytes_done)
        for a, b in itertools.pairwise(uploading)
        if a.files_done == b.files_done and b.bytes_done > a.bytes_done
    ]
    assert flowing, [(e.files_done, e.bytes_done) for e in uploading]
    row = view.rows[slow.name]
    speed = row.bytes_done / row.seconds()
    time.sleep(0.3)  # time passes after the difusor is done
    assert row.bytes_done / row.seconds() == speed


# --- 9. README "Primera noche", as written, as a script with set -e ---------------------------

# From Campeche's night until far ahead: the first night publishes a 2021 corte today.
CAMPECHE_WINDOW = {"start": "2021-06-06T19:00:00", "end": "2099-12-31T23:59:00"}


def editor(tmp_path: Path, endpoints: list[Endpoint], padron: str) -> Path:
    """The operator's $EDITOR: writes into the roster what the README says to write there
    (the election's window and difusores; for the Campeche rehearsal, README's own lines)."""
    edits = {
        "publication": CAMPECHE_WINDOW,
        "padron": yaml.safe_load(padron),
        "difusores": [e.roster_entry() for e in endpoints],
        "requirements": EASY,
    }
    script = tmp_path / "editor.py"
    script.write_text(
        f"""#!{sys.executable}
import json, sys, yaml
edits = json.loads({json.dumps(json.dumps(edits))})
with open(sys.argv[1], encoding="utf-8") as f:
    roster = yaml.safe_load(f)
roster["election"]["publication"] = edits["publication"]
roster["election"].update(edits["padron"].get("election", {{}}))
roster["requirements"] = edits["requirements"]
roster["difusores"] = edits["difusores"]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    yaml.safe_dump(roster, f, allow_unicode=True, sort_keys=False)
""",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def first_night(tmp_path: Path, workdir: Path, padron: str, endpoints: list[Endpoint]) -> str:
    """The README's two blocks, joined, with only their placeholder paths replaced."""
    cortes = cortes_dir()
    return (
        "set -e\n"
        + snippet(
            "primera-noche",
            {
                "mkdir -p /srv/prep && cd /srv/prep": f"mkdir -p {workdir} && cd {workdir}",
                "/ruta/20270606_2015_PREP.zip": f"{cortes}/20210606_2240_PREP_*",
            },
            document=README,
        )
        + snippet(
            "campeche",
            {"/ruta/a/shared/data/prep/campeche_2021/cortes": str(cortes)},
            document=README,
        )
    )


def run_script(script: str, tmp_path: Path, editor_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["EDITOR"] = str(editor_path)
    return subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_9_the_readmes_first_night_runs_as_written_with_set_e(
    sshd_plain: Endpoint, sshd_chroot: Endpoint, tmp_path: Path
) -> None:
    padron = snippet("campeche-padron", document=README)
    assert yaml.safe_load(padron) == {"election": {"rowless_actas": {"DIP_LOC": 10}}}
    workdir = tmp_path / "prep"
    endpoints = [sshd_plain, sshd_chroot]
    done = run_script(
        first_night(tmp_path, workdir, padron, endpoints),
        tmp_path,
        editor(tmp_path, endpoints, padron),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workdir / "claves" / "firma.pem").is_file()
    assert (workdir / "claves" / "prepush.pem.pub").is_file()
    assert served(sshd_plain) == served(sshd_chroot) == LAST
    assert (workdir / "informe.md").is_file()
    assert (workdir / "latencia.html").is_file()
    with Ledger(workdir / "prepush.db") as ledger:
        published = {d.corte for d in ledger.deliveries() if d.outcome == "delivered"}
    assert published == {"20210606_2240", "20210606_2320", OLD, MIDDLE, NEW, LAST}


def test_9_without_the_readmes_rowless_actas_the_first_campeche_corte_is_refused(
    sshd_plain: Endpoint, tmp_path: Path
) -> None:
    workdir = tmp_path / "prep"
    done = run_script(
        first_night(tmp_path, workdir, "{}", [sshd_plain]),
        tmp_path,
        editor(tmp_path, [sshd_plain], "{}"),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "DIP_LOC" in done.stderr
    assert "rowless_actas" in done.stderr


# --- 10. --json anywhere, and -C DIR like git -C -------------------------------------------------


def test_10_json_before_the_command_is_json_not_a_suggestion_of_version(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    capsys.readouterr()
    code = main(["--json", "-C", str(workdir.path), "status"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "--version" not in out + err
    assert json.loads(out)["difusores"][0]["difusor"] == "sin-contacto"
    code = main(["-C", str(workdir.path), "--json", "check", "--difusor", "nadie"])
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out)["error"]["exit_code"] == 2
    assert "--version" not in out + err


def test_10_dash_c_resolves_relative_paths_in_dir_like_git_and_errors_give_full_paths(
    workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "otro-lado"
    elsewhere.mkdir()
    roster = workdir.write_roster([])
    custom = roster.rename(workdir.path / "padron-noche.yaml")
    before = Path.cwd()
    os.chdir(elsewhere)
    try:
        capsys.readouterr()
        code = main(["-C", str(workdir.path), "--roster", custom.name, "status", "--json"])
        _, err = capsys.readouterr()
        assert code == 0, err
        code = main(["-C", str(workdir.path), "--roster", "no-esta.yaml", "status"])
        _, err = capsys.readouterr()
        assert code == 2
        assert str(workdir.path / "no-esta.yaml") in err
        # Every relative path of the command line is DIR's, as with git -C.
        here = ["-C", str(workdir.path), "--roster", custom.name]
        assert main([*here, "build", *inputs(NEW)]) == 0
        code = main([*here, "report", "-o", "r.json"])
        assert code == 0
        assert (workdir.path / "r.json").is_file()
        assert not (elsewhere / "r.json").exists()
        assert Path.cwd() == elsewhere  # the caller's directory is left as it was
        code = main(["-C", str(tmp_path / "no-existe"), "status"])
        _, err = capsys.readouterr()
        assert code == 2
        assert str(tmp_path / "no-existe") in err
    finally:
        os.chdir(before)


# --- 11. tables never cut a word; lag in human units; zones said -------------------------------

LONG_NAME = "universidad-autonoma-de-campeche-difusion"


def whole_words(output: str, words: list[str]) -> list[str]:
    """The words that the output does not show whole (a table that cut them in two)."""
    tokens = set(re.split(r"[\s│┃|,;:()—]+", output))
    return [w for w in words if w not in tokens]


@pytest.mark.parametrize("width", [80, 100])
def test_11_tables_never_cut_a_word_and_say_durations_and_zones_as_people_read_them(
    width: int,
    sshd_plain: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prepush.cli.console import print_publish_report, print_report, print_status
    from prepush.ops.report import ReportRequest, make_report
    from prepush.ops.status import current_status

    difusor = dataclasses.replace(sshd_plain, name=LONG_NAME)
    workdir.write_roster([difusor])
    for corte in (OLD, NEW):
        workdir.build(corte)
    settings = load_settings(workdir.path)
    zone = settings.roster.election.zone
    view = PublishView(Console(file=io.StringIO(), force_terminal=True, width=width), [])
    published = publish(PublishRequest(settings, settings.roster.difusores), view)
    words = [LONG_NAME, NEW, "entregado"]

    def shown(*draw: Any) -> str:
        console = Console(file=io.StringIO(), force_terminal=True, width=width)
        for renderable in draw:
            if callable(renderable):
                renderable(console)
            else:
                console.print(renderable)
        return ANSI.sub("", console.file.getvalue())  # type: ignore[attr-defined]

    said = shown(lambda c: print_publish_report(published, c), view.render())
    assert not whole_words(said, words), said
    status = shown(lambda c: print_status(current_status(settings), zone, c))
    assert not whole_words(status, [LONG_NAME, NEW, "America/Merida"]), status
    # A 2021 corte published today: its lag is years, said in days, never 173600775.9 s.
    assert re.search(r"\b\d{3,4} d \d{1,2} h\b", status), status
    assert not re.search(r"\d{6,}\.\d s", status), status
    # Every time of day says its zone.
    assert re.search(r"\d\d/\d\d\s+\d\d:\d\d:\d\d\s+[A-Z]{3}\b", status), status
    report = make_report(settings, ReportRequest())
    night = shown(lambda c: print_report(report, c))
    assert not whole_words(night, [LONG_NAME, NEW]), night
    assert not re.search(r"\d{6,}\.\d s", night), night
    assert re.search(r"\b\d{3,4} d \d{1,2} h\b", night), night


# --- 12. no English left ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "said"),
    [
        ("election:\n  process: x\n ? b\n", ":3:2:", "se esperaba"),
        ("election:\n  process: x\n  timezone: a: b\n", ":3:14:", "no se permite ':' aquí"),
        ("election:\n\tprocess: x\n", ":2:1:", "un tabulador no sirve de sangría"),
        ('election:\n  process: "x\n', ":3:1:", "comillas abiertas"),
        ("difusores: [1, 2\n", ":2:1:", "falta cerrar con ']'"),
        ("election: @x\n", ":1:11:", "póngalo entre comillas"),
    ],
)
def test_12_yaml_errors_are_spanish_with_file_line_and_column(
    text: str, where: str, said: str, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = workdir.path / "difusores.yaml"
    roster.write_text(text, encoding="utf-8")
    code, output = run(workdir, capsys, "status")
    assert code == 2
    assert f"{roster}{where} YAML inválido: " in output, output
    assert said in output, output
    for english in ("expected", "found", "mapping values", "token", "stream"):
        assert english not in output, output


def test_12_help_says_required_in_spanish(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("suspend", "rollback"):
        capsys.readouterr()
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "[obligatoria]" in out, out
        assert "required" not in out


def test_12_check_of_an_s3_difusor_speaks_of_s3_not_sftp(
    s3_bucket: Any, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket(cloudfront=True)
    workdir.write_roster([bucket], requirements={"probe_size_mb": 1, "min_throughput_mb_s": 0.1})
    code, said = run(workdir, capsys, "check")
    assert code == 0, said
    for foreign in ("SFTP", "sftp", "SSH", "ssh", "directorio remoto", "renombrar"):
        assert foreign not in said, said
    assert "en el bucket" in said


# --- 13. the report tells every departure; -o writes what is documented --------------------------


def test_13_the_report_lists_overrides_rollbacks_and_interruptions_as_incidents(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    workdir.write_roster([sshd_plain], publication=CLOSED)
    workdir.build(OLD)
    assert run(workdir, capsys, "publish", "--override-embargo", "ensayo de la noche")[0] == 0
    workdir.write_roster([sshd_plain])
    workdir.build(NEW)
    assert run(workdir, capsys, "publish")[0] == 0
    assert run(workdir, capsys, "rollback", "--to", OLD)[0] == 0
    code, document = run_json(workdir, capsys, "report")
    assert code == 0
    kinds = [i["kind"] for i in document["incidents"]]
    assert kinds == ["embargo_override", "rollback"], document["incidents"]
    override, rollback = document["incidents"]
    assert "ensayo de la noche" in override["cause"]
    assert override["cortes"] == [OLD]
    assert override["difusor"] == sshd_plain.name
    assert rollback["end"] is None  # still held
    assert rollback["recovered"] is False
    markdown = workdir.path / "informe.md"
    assert run(workdir, capsys, "report", "-o", str(markdown))[0] == 0
    text = markdown.read_text()
    assert "No hubo incidencias" not in text
    assert "publicado fuera de la ventana" in text
    assert "reversión" in text
    assert run(workdir, capsys, "resume-latest")[0] == 0
    code, document = run_json(workdir, capsys, "report")
    assert code == 0
    assert document["incidents"][1]["end"] is not None
    # -o informe.csv writes the three documented tables, and says so.
    csv_path = tmp_path / "informe.csv"
    code, said = run(workdir, capsys, "report", "-o", str(csv_path))
    assert code == 0
    written = sorted(p.name for p in tmp_path.glob("informe*.csv"))
    assert written == ["informe-fidelidad.csv", "informe-incidencias.csv", "informe.csv"]
    for name in written:
        assert str(tmp_path / name) in said
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "informe-fidelidad.csv" in docs
    incidents_csv = (tmp_path / "informe-incidencias.csv").read_text()
    assert incidents_csv.splitlines()[0].startswith("tipo,difusor,")
    assert "publicado fuera de la ventana" in incidents_csv


# --- 14. pull ----------------------------------------------------------------------------------

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]{3,5} ")


def pull_said(difusor: PullDifusor, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    code = difusor.run(*args)
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert code == 0, said
    return said


def test_14_pull_says_a_corte_went_back_counts_the_cache_and_stamps_its_lines(
    s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    difusor = institute_and_difusor(s3_bucket, workdir, tmp_path, deadline=60)
    difusor.write_config()
    for corte in (OLD, NEW):
        workdir.build(corte)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        said = pull_said(difusor, capsys)
        assert f"Corte {corte} publicado" in said
        assert all(STAMPED.match(line) for line in said.splitlines() if line), said
    # The institute rolls back: the origin goes from NEW to OLD, whose files the cache holds.
    assert main(["-C", str(workdir.path), "rollback", "--to", OLD]) == 0
    said = pull_said(difusor, capsys)
    assert f"volvió del corte {NEW} al {OLD}" in said, said
    files = len(Package.open(workdir.path / "paquetes" / OLD).manifest.files)
    assert f"0 archivos descargados (0.00 MB), {files} reutilizados del caché" in said, said
    # --report reads the ledger: it needs none of the origin's credentials.
    for name in CREDENTIALS:
        os.environ.pop(name)
    try:
        code, document = difusor.run_json(capsys, "--report")
    finally:
        os.environ.update(CREDENTIALS)
    assert code == 0, document
    assert {c["corte"] for c in document["cortes"]} == {OLD, NEW}


def test_14_a_refusal_on_an_empty_destination_does_not_claim_a_previous_corte(
    s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    difusor = institute_and_difusor(s3_bucket, workdir, tmp_path, deadline=60)
    other = tmp_path / "otra" / "firma.pem"
    assert main(["keygen", "--out", str(other), "--uso", "firma"]) == 0
    difusor = dataclasses.replace(difusor, public_key=public_key_of(other, tmp_path / "otra-pub"))
    difusor.write_config()
    workdir.build(OLD)
    assert main(["-C", str(workdir.path), "publish"]) == 0
    capsys.readouterr()
    assert difusor.run() == 2
    said = capsys.readouterr()
    said_all = said.out + said.err
    assert "firma" in said_all
    assert "corte anterior" not in said_all, said_all
    assert "ningún corte" in said_all, said_all
    assert difusor.site() == {}


# --- 15. docs and help -------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_15_the_roster_guide_documents_origin() -> None:
    roster = (DOCS / "roster.md").read_text(encoding="utf-8")
    assert "| `origin` |" in roster


def test_15_no_docs_paragraph_repeats_the_tail_of_a_sentence() -> None:
    """A copy-paste remnant: a sentence that only repeats how an earlier one ends."""
    for page in [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]:
        text = page.read_text(encoding="utf-8")
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph.lstrip().startswith(("```", "|", "<!--")):
                continue
            sentences = [
                " ".join(s.split()) for s in re.split(r"(?<=[.:;])\s+", paragraph) if s.strip()
            ]
            for i, sentence in enumerate(sentences):
                if len(sentence.split()) < 4:
                    continue
                for other in sentences[:i]:
                    assert not (other != sentence and other.endswith(sentence)), (
                        page.name,
                        sentence,
                    )


def test_15_help_names_every_transport_and_every_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert main(["--help"]) == 0
    assert "(SFTP, rsync o S3)" in capsys.readouterr().out
    assert main(["publish", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for code in ("0 todos entregados", "1 alguno falló", "3 el corte", "2 error de", "4 error"):
        assert code in help_text, help_text
    assert "130 interrumpido" in help_text


def test_15_verify_says_which_difusores_it_cannot_verify(
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    workdir: Workdir,
    nginx_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root)
    workdir.write_roster([dataclasses.replace(sshd_plain, url=web.url), sshd_chroot])
    workdir.build(NEW)
    assert run(workdir, capsys, "publish")[0] == 0
    code, said = run(workdir, capsys, "verify")
    assert code == 0, said
    assert f"No se verifican (no tienen url en el padrón): {sshd_chroot.name}." in said
    code, document = run_json(workdir, capsys, "verify")
    assert document["without_url"] == [sshd_chroot.name]


def test_15_the_man_page_is_generated_from_click_and_current(tmp_path: Path) -> None:
    from prepush.cli import cli
    from prepush.cli.man import man_page

    page = man_page(cli)
    committed = DOCS / "prepush.1"
    assert committed.read_text(encoding="utf-8") == page, "corra 'make man'"
    for name in cli.commands:
        assert f".SS {name.replace('-', chr(92) + '-')}\n" in page
    assert "\\-\\-override\\-embargo" in page
    rendered = subprocess.run(
        ["groff", "-k", "-man", "-Tutf8", "-ww", str(committed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert rendered.stderr == ""
    text = re.sub(r".\x08", "", rendered.stdout)
    assert "CÓDIGOS DE SALIDA" in text
    assert "publish" in text
    for english in ("Usage", "Options", "required", "INPUTS"):
        assert english not in text

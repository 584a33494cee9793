"""Operations with rsync difusores (issue 15): check, status, report, suspension, embargo,
verify, --watch over one SSH connection, and a mixed fleet where a failing rsync difusor
delays nobody. The difusores are a real rsync daemon and a real sshd with rrsync, set up
from docs/difusores.md, behind the fault proxy where a fault is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.ledger import Ledger
from prepush.publish.publisher import ConnectionPool, publish_async
from prepush.publish.request import PublishReport, PublishRequest
from prepush.publish.watch import watch
from prepush.settings import Difusor, Settings, load_settings
from prepush.transports.base import Transport
from prepush.transports.rsync.connect import open_rsync
from prepush.transports.rsync.transport import RsyncTransport
from tests.conftest import ProxyFactory, Workdir
from tests.support.commands import checks_of, run_json
from tests.support.rsync_servers import RsyncEndpoint, daemon_endpoint, guide_daemon
from tests.support.servers import Endpoint, Nginx

CORTES = ("20210606_2320", "20210606_2340", "20210607_1320", "20210607_1440")
EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 1, "probe_size_mb": 1}
FORMS = ["rsyncd", "rrsync"]


def served_corte(endpoint: Endpoint) -> str:
    return str(json.loads((endpoint.local_root / "json/main.json").read_bytes())["corte"])


def rsync_children_of(port: int) -> list[int]:
    """Processes still talking to ``port`` (an rsync or ssh prepush started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            words
            and words[0].endswith((b"rsync", b"ssh"))
            and any(f":{port}/".encode() in w or w == str(port).encode() for w in words)
        ):
            found.append(int(entry.name))
    return found


# --- check --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_check_passes_on_an_rsync_difusor_set_up_by_the_guide(
    form: str,
    request: pytest.FixtureRequest,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint: RsyncEndpoint = request.getfixturevalue(form)
    web = nginx_factory(endpoint.local_root)
    workdir.write_roster([dataclasses.replace(endpoint, url=web.url)], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    checks = checks_of(report, endpoint.name)
    assert code == 0, [c for c in checks.values() if c["status"] == "fail"]
    for name in ("tcp", "auth", "remote_dir", "extensions", "write", "throughput", "clock"):
        assert checks[name]["status"] == "pass", (name, checks[name])
    for name in ("http", "cache_control", "private_dir"):
        assert checks[name]["status"] == "pass", (name, checks[name])
    assert "cambio atómico" in checks["extensions"]["detail"]
    # rsync does not say how much space is free: check says so, and what it did prove.
    assert checks["space"]["status"] == "warn"
    assert "rsync no lo dice" in checks["space"]["detail"]
    if form == "rsyncd":
        assert checks["host_key"]["status"] == "warn"
        assert "no identifica al servidor" in checks["host_key"]["detail"]
        assert "el módulo prep" in checks["remote_dir"]["detail"]
    else:
        assert checks["host_key"]["status"] == "pass"
    assert not list((endpoint.local_root / "json").iterdir()), "the probes are removed"


def test_check_names_a_wrong_module_and_a_wrong_password(
    rsyncd: RsyncEndpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_module = dataclasses.replace(rsyncd, name="sin-modulo", module="otro")
    workdir.write_roster([rsyncd, wrong_module], requirements=EASY)
    monkeypatch.setenv("PREPUSH_PRUEBA_RSYNC", "no-es")
    code, report = run_json(workdir, capsys, "check")
    assert code == 3
    auth = checks_of(report, rsyncd.name)["auth"]
    assert auth["status"] == "fail"
    assert "rechazó la contraseña" in auth["detail"]
    module = checks_of(report, "sin-modulo")
    assert module["tcp"]["status"] == "pass"
    assert module["remote_dir"]["status"] == "fail"
    assert "no tiene el módulo 'otro'" in module["remote_dir"]["detail"]


def test_check_names_a_missing_remote_directory_behind_rrsync(
    rrsync: RsyncEndpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([dataclasses.replace(rrsync, remote_dir="no/existe")], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    checks = checks_of(report, rrsync.name)
    assert code == 3
    assert checks["host_key"]["status"] == "pass"
    assert checks["remote_dir"]["status"] == "fail"
    assert "remote_dir" in checks["remote_dir"]["detail"]


# --- suspension, embargo, status, report, verify -------------------------------------------


def test_three_failed_cortes_suspend_an_rsync_difusor_and_resume_brings_it_back(
    rsyncd: RsyncEndpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(rsyncd)
    workdir.write_roster([proxied], deadline=3)
    proxy.faults.reset_after_bytes = 20_000  # rsync's small requests pass, a corte does not
    outcomes = []
    for corte in CORTES[:3]:
        workdir.build(corte)
        _, report = run_json(workdir, capsys, "publish")
        outcomes.append(report["deliveries"][0]["outcome"])
    assert outcomes == ["failed", "failed", "failed"]
    assert not (rsyncd.local_root / "json/main.json").exists()
    with Ledger(workdir.path / "prepush.db") as ledger:
        suspension = ledger.active_suspension(proxied.name)
        assert suspension is not None
        assert "3 cortes consecutivos" in suspension.reason
    proxy.faults.reset_after_bytes = None
    # The 3 s deadline only had to fail fast; a whole corte by rsync may need more on a busy CI.
    workdir.write_roster([proxied], deadline=60)
    workdir.build(CORTES[3])
    _, report = run_json(workdir, capsys, "publish")
    assert report["deliveries"][0]["outcome"] == "skipped_suspended"
    assert main(["-C", str(workdir.path), "resume", proxied.name]) == 0
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0
    assert report["deliveries"][0]["outcome"] == "delivered"
    assert served_corte(rsyncd) == CORTES[3]


@pytest.mark.parametrize("form", FORMS)
def test_embargo_refuses_before_the_window_and_the_override_is_recorded(
    form: str, request: pytest.FixtureRequest, workdir: Workdir
) -> None:
    endpoint: RsyncEndpoint = request.getfixturevalue(form)
    workdir.write_roster([endpoint])
    workdir.build(CORTES[0])
    settings = load_settings(workdir.path)
    before = datetime(2021, 6, 6, 23, 59, 59, tzinfo=UTC)  # 18:59:59 in Mérida, before 19:00
    refused = PublishRequest(settings, settings.roster.difusores, clock=lambda: before)
    from prepush.exceptions import EmbargoError
    from prepush.publish.publisher import publish

    with pytest.raises(EmbargoError):
        publish(refused)
    assert list(endpoint.local_root.iterdir()) == []
    allowed = dataclasses.replace(refused, override_embargo="prueba autorizada por la Comisión")
    assert publish(allowed).exit_code == 0
    assert served_corte(endpoint) == CORTES[0]
    with Ledger(settings.ledger_location) as ledger:
        (event,) = ledger.events("embargo_override")
    assert "prueba autorizada por la Comisión" in event.message


def test_status_report_and_verify_for_rsync_difusores(
    rsyncd: RsyncEndpoint,
    rrsync: RsyncEndpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon_web, ssh_web = nginx_factory(rsyncd.local_root), nginx_factory(rrsync.local_root)
    difusores = [
        dataclasses.replace(rsyncd, url=daemon_web.url),
        dataclasses.replace(rrsync, url=ssh_web.url),
    ]
    workdir.write_roster(difusores)
    for corte in CORTES[:2]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    for row in status["difusores"]:
        assert row["serving_corte"] == CORTES[1], row
        assert row["cortes_behind"] == 0
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "report", "--format", "md"]) == 0
    table = capsys.readouterr().out
    for name in (rsyncd.name, rrsync.name):
        assert f"| {name} | 2 | 0 |" in table
    code, verified = run_json(workdir, capsys, "verify")
    assert code == 0, verified
    assert {r["status"] for r in verified["results"]} == {"pass"}
    tampered = rsyncd.local_root / "index.html"
    tampered.write_bytes(tampered.read_bytes().replace(b"<", b"<!-- x -->", 1))
    code, verified = run_json(workdir, capsys, "verify")
    assert code == 1
    failed = [r for r in verified["results"] if r["status"] == "fail"]
    assert [r["difusor"] for r in failed] == [rsyncd.name]
    assert "index.html" in json.dumps(failed)


# --- connections ----------------------------------------------------------------------------


def test_watch_keeps_one_ssh_connection_per_difusor_for_the_night(
    rrsync: RsyncEndpoint, workdir: Workdir
) -> None:
    workdir.write_roster([rrsync])
    workdir.build(CORTES[0])
    settings = load_settings(workdir.path)
    opened: list[RsyncTransport] = []

    async def connector(difusor: Difusor, settings: Settings) -> Transport:
        transport = await open_rsync(difusor, settings)
        opened.append(transport)
        return transport

    class Enough(Exception):
        pass

    masters: list[int] = []

    async def run(request: PublishRequest, pool: ConnectionPool) -> PublishReport:
        report = await publish_async(request, lambda _: None, pool)
        assert report.exit_code == 0
        master = opened[-1]._master
        assert master is not None
        assert master.process is not None
        masters.append(master.process.pid)
        if len(masters) < 3:
            workdir.build(CORTES[len(masters)])
            return report
        raise Enough

    request = PublishRequest(settings=settings, difusores=settings.roster.difusores)
    with pytest.raises(Enough):
        watch(request, 0.01, run, connector)
    assert len(opened) == 1, "every corte of the night goes over the same connection"
    assert len(set(masters)) == 1
    assert served_corte(rrsync) == CORTES[2]
    # Closed on exit: the master is gone, and its socket and scratch files with it.
    assert not opened[0]._runtime.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(masters[0], 0)


def test_a_mixed_fleet_publishes_in_one_run_and_a_failing_rsync_difusor_delays_nobody(
    asyncssh_difusor: Endpoint,
    rsyncd: RsyncEndpoint,
    rrsync: RsyncEndpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = guide_daemon()
    try:
        stalled, behind = fault_proxy(daemon_endpoint(broken, name="rsync-colgado"))
        stalled.set_stall(True)
        workdir.write_roster([asyncssh_difusor, rsyncd, rrsync, behind], deadline=10)
        workdir.build(CORTES[0])
        code, report = run_json(workdir, capsys, "publish")
        rows = {d["difusor"]: d for d in report["deliveries"]}
        assert code == 1
        for healthy in (asyncssh_difusor, rsyncd, rrsync):
            assert rows[healthy.name]["outcome"] == "delivered", rows[healthy.name]
            assert served_corte(healthy) == CORTES[0]

        def moment(row: dict[str, object], name: str) -> datetime:
            return datetime.fromisoformat(str(row[name]))

        stalled_row = rows[behind.name]
        assert stalled_row["outcome"] == "failed"
        assert stalled_row["error_class"] == "DeadlineError"
        cut_at = moment(stalled_row, "finished_at")
        assert (cut_at - moment(stalled_row, "started_at")).total_seconds() >= 10
        # The order of events, not a bet on a loaded machine's pace: every healthy difusor
        # flipped and finished while the stalled one was still waited for.
        for healthy in (asyncssh_difusor, rsyncd, rrsync):
            assert moment(rows[healthy.name], "flip_at") < cut_at, rows[healthy.name]
            assert moment(rows[healthy.name], "finished_at") < cut_at, rows[healthy.name]
        assert not (broken.root / "json").exists()
        # The deadline killed every rsync of the stalled difusor: none is left behind.
        assert rsync_children_of(behind.port) == []
    finally:
        stalled.set_stall(False)
        broken.stop()

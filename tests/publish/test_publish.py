"""publish against real servers: OpenSSH sshd (plain and chroot), asyncssh, paramiko.

Every tree is read back with paramiko, a client that is not the one that wrote it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.ledger import Ledger
from prepush.package import Package
from prepush.publish.runlock import RunLock
from prepush.sim.fleet import ServerThread
from tests.conftest import ProxyFactory, Workdir
from tests.support.commands import publish
from tests.support.prepdata import cortes_dir
from tests.support.servers import Endpoint, sftp_read_tree
from tests.support.trees import expected_tree

CORTES = ("20210606_2320", "20210606_2340", "20210607_1320")


def deliveries(report: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = report["deliveries"]
    assert isinstance(rows, list)
    return {str(d["difusor"]): d for d in rows}


def main_json_corte(tree: dict[str, bytes]) -> str:
    return str(json.loads(tree["json/main.json"])["corte"])


@pytest.mark.parametrize("server", ["sshd_plain", "sshd_chroot", "asyncssh_difusor"])
def test_three_cortes_are_byte_identical_on_the_server(
    server: str,
    request: pytest.FixtureRequest,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    workdir.write_roster([endpoint])
    published: list[str] = []
    for corte in CORTES:
        workdir.build(corte)
        code, report = publish(workdir, capsys)
        assert code == 0, [(d["error_class"], d["error_message"]) for d in report["deliveries"]]
        delivery = deliveries(report)[endpoint.name]
        assert delivery["outcome"] == "delivered"
        assert delivery["atomic"] is True
        published.append(corte)
        remote = sftp_read_tree(endpoint, endpoint.key_file)
        assert remote == expected_tree(workdir, published)
        assert main_json_corte(remote) == corte


def test_second_corte_sends_only_what_changed(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    assert publish(workdir, capsys)[0] == 0
    workdir.build(CORTES[1])
    old = Package.open(workdir.path / "paquetes" / CORTES[0]).manifest.by_path()
    new = Package.open(workdir.path / "paquetes" / CORTES[1]).manifest
    changed = [f for f in new.files if old.get(f.path) is None or old[f.path].sha256 != f.sha256]
    unchanged = len(new.files) - len(changed)
    assert unchanged > 30  # distritos without new actas keep their objects
    code, report = publish(workdir, capsys)
    assert code == 0
    delivery = deliveries(report)[asyncssh_difusor.name]
    changed_bytes = sum(f.size for f in changed)
    assert delivery["files_uploaded"] == len(changed)
    assert delivery["files_skipped"] == unchanged
    bytes_sent = delivery["bytes_sent"]
    assert isinstance(bytes_sent, int)
    assert changed_bytes <= bytes_sent <= changed_bytes * 1.05
    requests = delivery["requests"]
    assert isinstance(requests, int)
    # open + write + fsync + close per file, plus a fixed cost: lock, state, pending, flip.
    assert requests <= 4 * len(changed) + 25, requests
    again_code, again = publish(workdir, capsys)
    assert again_code == 0
    assert deliveries(again)[asyncssh_difusor.name]["outcome"] == "up_to_date"


@pytest.mark.parametrize("server", ["sshd_plain", "asyncssh_difusor", "paramiko_difusor"])
def test_changed_objects_are_rebuilt_from_the_previous_ones_where_the_server_copies(
    server: str,
    request: pytest.FixtureRequest,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    workdir.write_roster([endpoint])
    published = ["20210607_1320", "20210607_1440"]
    workdir.build(published[0])
    assert publish(workdir, capsys)[0] == 0
    workdir.build(published[1])
    old = Package.open(workdir.path / "paquetes" / published[0]).manifest.by_path()
    new = Package.open(workdir.path / "paquetes" / published[1]).manifest
    changed = sum(f.size for f in new.files if f.path not in old or old[f.path].sha256 != f.sha256)
    code, report = publish(workdir, capsys)
    assert code == 0
    delivery = deliveries(report)[endpoint.name]
    sent, reused = delivery["bytes_sent"], delivery["bytes_reused"]
    assert isinstance(sent, int)
    assert isinstance(reused, int)
    if server == "paramiko_difusor":  # no copy-data: every changed byte is sent
        assert delivery["files_rebuilt"] == 0
        assert reused == 0
        assert sent >= changed
    else:
        assert delivery["files_rebuilt"] >= 10
        assert sent + reused >= changed
        assert sent < changed - 50_000, (sent, reused, changed)
    remote = sftp_read_tree(endpoint, endpoint.key_file)
    assert remote == expected_tree(workdir, published)


def test_another_machine_without_the_packages_publishes_safely(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The backup publisher takes over without the cortes the first one published: the
    difusor's state names manifests it does not have. It sends the whole corte by temporary
    name and rename (a file may exist and be read), deletes nothing, and says so."""
    workdir.write_roster([sshd_plain])
    for corte in CORTES[:2]:
        workdir.build(corte)
        assert publish(workdir, capsys)[0] == 0
    state = json.loads((sshd_plain.local_root / ".prepush/state.json").read_bytes())
    assert len(state["manifests"]) == 2
    assert "json/o/" not in json.dumps(state["files"])  # the manifests explain them
    backup = Workdir(tmp_path / "respaldo", workdir.signing_key)
    backup.path.mkdir()
    backup.write_roster([sshd_plain])
    backup.build(CORTES[2])
    before = {p.name for p in (sshd_plain.local_root / "json" / "o").iterdir()}
    code, report = publish(backup, capsys)
    assert code == 0
    delivery = deliveries(report)[sshd_plain.name]
    assert delivery["files_deleted"] == 0
    after = {p.name for p in (sshd_plain.local_root / "json" / "o").iterdir()}
    assert before <= after  # nothing removed: the unknown cortes may use any file
    remote = sftp_read_tree(sshd_plain, sshd_plain.key_file)
    for path, data in backup.package_tree(CORTES[2]).items():
        assert remote[path] == data, path
    assert not [p for p in remote if p.endswith(".prepush-tmp")]
    with Ledger(backup.path / "prepush.db") as ledger:
        assert ledger.events("incomplete_state")


def test_site_mode_links_repeated_content_instead_of_sending_it(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    workdir.write_roster([sshd_plain])
    site = tmp_path / "sitio"
    (site / "json").mkdir(parents=True)
    (site / "index.html").write_text("<html>v1</html>")
    (site / "json" / "main.json").write_text('{"corte": 1}')
    (site / "json" / "a.json").write_text("A" * 5000)
    (site / "json" / "b.json").write_text("B" * 7000)
    assert (
        main(["-C", str(workdir.path), "build", "--site", str(site), "--corte", "20210606_2300"])
        == 0
    )
    assert publish(workdir, capsys)[0] == 0
    (site / "json" / "main.json").write_text('{"corte": 2}')
    (site / "json" / "a.json").write_text("a" * 5000)
    (site / "json" / "copia").mkdir()
    (site / "json" / "copia" / "b.json").write_text("B" * 7000)
    assert (
        main(["-C", str(workdir.path), "build", "--site", str(site), "--corte", "20210606_2315"])
        == 0
    )
    code, report = publish(workdir, capsys)
    assert code == 0
    delivery = deliveries(report)[sshd_plain.name]
    assert delivery["files_linked"] == 1
    assert delivery["files_uploaded"] == 2  # a.json replaced, main.json flipped
    bytes_sent = delivery["bytes_sent"]
    assert isinstance(bytes_sent, int)
    assert bytes_sent < 5000 + 100 + 3000  # the 7000-byte copy was not sent
    remote = sftp_read_tree(sshd_plain, sshd_plain.key_file)
    assert remote["json/copia/b.json"] == b"B" * 7000
    assert remote["json/a.json"] == b"a" * 5000
    assert os.stat(sshd_plain.local_root / "json/copia/b.json").st_nlink == 2


def test_server_without_openssh_extensions_uses_the_fallback(
    paramiko_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([paramiko_difusor])
    published = []
    for corte in CORTES[:2]:
        workdir.build(corte)
        code, report = publish(workdir, capsys)
        assert code == 0, [(d["error_class"], d["error_message"]) for d in report["deliveries"]]
        published.append(corte)
        assert deliveries(report)[paramiko_difusor.name]["atomic"] is False
    remote = sftp_read_tree(paramiko_difusor, paramiko_difusor.key_file)
    assert remote == expected_tree(workdir, published)
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.last_delivered(paramiko_difusor.name).atomic is False  # type: ignore[union-attr]


def test_wrong_host_key_fails_that_difusor_only(
    asyncssh_difusor: Endpoint,
    sshd_plain: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    impostor = Endpoint(**{**asyncssh_difusor.__dict__, "host_key_line": sshd_plain.host_key_line})
    workdir.write_roster([impostor, sshd_plain])
    workdir.build(CORTES[0])
    code, report = publish(workdir, capsys)
    assert code == 1
    rows = deliveries(report)
    assert rows[impostor.name]["outcome"] == "failed"
    assert rows[impostor.name]["error_class"] == "HostKeyError"
    assert "suplantación" in str(rows[impostor.name]["error_message"])
    assert rows[sshd_plain.name]["outcome"] == "delivered"
    assert list(impostor.local_root.iterdir()) == []


def test_a_cut_connection_leaves_the_previous_corte_and_the_retry_completes(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    workdir.write_roster([proxied], corte_interval_minutes=1)
    workdir.build(CORTES[0])
    assert publish(workdir, capsys)[0] == 0
    workdir.build(CORTES[1])
    # Every connection is cut after 60 KB: the corte can never arrive whole.
    proxy.faults.reset_after_bytes = 60_000
    code, report = publish(workdir, capsys, "--difusor", proxied.name)
    assert code == 3
    delivery = deliveries(report)[proxied.name]
    assert delivery["outcome"] == "failed"
    attempts = delivery["attempts"]
    assert isinstance(attempts, int)
    assert attempts >= 2
    served = json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes())
    assert served["corte"] == CORTES[0]
    for path in json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes()).values():
        if isinstance(path, str) and path.startswith(("json/o/", "datos/")):
            assert (asyncssh_difusor.local_root / path).is_file()
    with Ledger(workdir.path / "prepush.db") as ledger:
        row = ledger.deliveries(difusor=proxied.name)[-1]
        recorded = ledger.attempts(row.id)
        assert len(recorded) == attempts
        assert all(a.outcome == "failed" for a in recorded)
        assert ledger.events("retry")
    # One cut only: the retry inside the same publish completes it.
    proxy.faults.resets_left = 1
    code, report = publish(workdir, capsys)
    assert code == 0
    assert deliveries(report)[proxied.name]["attempts"] == 2
    remote = sftp_read_tree(asyncssh_difusor, asyncssh_difusor.key_file)
    assert remote == expected_tree(workdir, list(CORTES[:2]))


def test_a_slow_difusor_does_not_slow_the_others(
    servers_loop: ServerThread,
    client_key: Path,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncssh

    from prepush.sim.fleet import LocalDifusor

    key = asyncssh.read_private_key(client_key)
    servers = [
        LocalDifusor(f"difusor{i:02d}", tmp_path / f"d{i:02d}", client_key=key) for i in range(10)
    ]
    for server in servers:
        servers_loop.run(server.start())
    try:
        endpoints = [
            Endpoint(s.name, s.host, s.port, s.username, client_key, s.host_key_line, "/", s.root)
            for s in servers
        ]
        proxy, slow = fault_proxy(endpoints[0])
        proxy.faults.rate_bytes_per_s = 50_000
        workdir.write_roster([slow, *endpoints[1:]], deadline=60)
        workdir.build(CORTES[0])
        code, report = publish(workdir, capsys)
        assert code == 0
        rows = deliveries(report)

        def moment(row: dict[str, object], name: str) -> datetime:
            return datetime.fromisoformat(str(row[name]))

        slow_row = rows[slow.name]
        started, finished = moment(slow_row, "started_at"), moment(slow_row, "finished_at")
        slow_time = (finished - started).total_seconds()
        assert slow_time > 8  # 0.55 MB at 50 KB/s: about 11 s
        # The order of events, not a bet on a busy machine's pace (the ten servers share this
        # test's interpreter with the publisher): each of the others finished while the slow
        # one was still uploading, before its flip.
        for endpoint in endpoints[1:]:
            row = rows[endpoint.name]
            assert row["outcome"] == "delivered", row
            assert moment(row, "finished_at") < moment(slow_row, "flip_at"), (row, slow_row)
    finally:
        for server in servers:
            servers_loop.run(server.stop())


def test_two_publishes_never_run_at_once(asyncssh_difusor: Endpoint, workdir: Workdir) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    with RunLock(workdir.path / ".prepush-run.lock", 0):
        result = subprocess.run(
            [sys.executable, "-m", "prepush", "-C", str(workdir.path), "publish"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "Otra ejecución de prepush está en curso" in result.stderr


def test_waiting_for_the_run_lock_keeps_the_event_loop_running(tmp_path: Path) -> None:
    """publish --watch waits for a manual publish on its own event loop: its open
    connections keep answering keepalives meanwhile; a cancelled wait (Ctrl-C) closes what it
    opened."""
    path = tmp_path / ".prepush-run.lock"
    holder = RunLock(path, 0)
    holder.acquire()

    async def main() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        ticker = asyncio.create_task(tick())
        waiting = asyncio.create_task(RunLock(path, 10).acquire_async())
        await asyncio.sleep(0.5)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        during = ticks
        asyncio.get_running_loop().call_later(0.3, holder.release)
        async with RunLock(path, 10):
            after = ticks - during
        ticker.cancel()
        return during, after

    open_before = len(os.listdir("/proc/self/fd"))
    during, after = asyncio.run(main())
    assert during >= 10, "the loop stood still while waiting"
    assert after >= 5
    assert len(os.listdir("/proc/self/fd")) <= open_before


def test_ledger_rows_are_complete_and_a_killed_run_is_marked_interrupted(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    assert publish(workdir, capsys)[0] == 0
    with Ledger(workdir.path / "prepush.db") as ledger:
        (row,) = ledger.deliveries()
        for name in ("connected_at", "flip_at", "finished_at", "package_ready_at"):
            assert getattr(row, name) is not None, name
        assert row.started_at <= row.connected_at <= row.flip_at <= row.finished_at  # type: ignore[operator]
        assert row.latency_s is not None
        assert row.latency_s > 0
        assert row.lag_s is not None
        assert row.lag_s > 0
        assert row.files_uploaded > 0
        assert row.bytes_sent > 0
        assert row.requests > 0
        assert row.attempts == 1
        assert row.atomic is True
        assert row.outcome == "delivered"
        assert ledger.runs()[-1].status == "ok"

    proxy, stalled = fault_proxy(asyncssh_difusor)
    proxy.set_stall(True)
    workdir.write_roster([stalled], deadline=120)
    workdir.build(CORTES[1])
    child = subprocess.Popen(
        [sys.executable, "-m", "prepush", "-C", str(workdir.path), "publish"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Ledger(workdir.path / "prepush.db") as ledger:
                if len(ledger.deliveries()) == 2:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the stalled publish never started its delivery")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    proxy.set_stall(False)
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.runs()[-1].status == "running"
    workdir.write_roster([asyncssh_difusor])
    code, _report = publish(workdir, capsys)
    assert code == 0
    with Ledger(workdir.path / "prepush.db") as ledger:
        runs = [r for r in ledger.runs() if r.command == "publish"]
        assert [r.status for r in runs] == ["ok", "interrupted", "ok"]
        killed = [d for d in ledger.deliveries() if d.run_id == runs[1].id]
        assert [d.outcome for d in killed] == ["interrupted"]


def test_dry_run_prints_the_plan_and_writes_nothing(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    assert publish(workdir, capsys)[0] == 0
    before = sftp_read_tree(asyncssh_difusor, asyncssh_difusor.key_file)
    workdir.build(CORTES[1])
    code, report = publish(workdir, capsys, "--dry-run")
    assert code == 0
    delivery = deliveries(report)[asyncssh_difusor.name]
    assert delivery["outcome"] == "dry_run"
    plan = delivery["plan"]
    assert isinstance(plan, dict)
    assert plan["flip"] == ["json/main.json"]
    assert f"datos/{CORTES[1]}_PREP.zip" in plan["upload"]
    assert sftp_read_tree(asyncssh_difusor, asyncssh_difusor.key_file) == before
    assert not (asyncssh_difusor.local_root / ".prepush" / "lock").exists()


def test_a_retry_takes_the_newest_package(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    workdir.write_roster([proxied], deadline=30)
    workdir.build(CORTES[0])
    # Every attempt of corte 1 is cut at its first byte, so none can finish it (one cut
    # after some kilobytes lets each attempt keep a few more files, and on a busy machine
    # they could finish it before the newer corte is built)...
    proxy.faults.reset_after_bytes = 1
    state = {"built": False}
    real_sleep = time.sleep

    import threading

    def build_newer_then_heal() -> None:
        real_sleep(1.0)
        inputs = [str(p) for p in sorted(cortes_dir().glob(f"{CORTES[1]}_PREP_*"))]
        subprocess.run(  # ...a newer corte arrives meanwhile...
            [sys.executable, "-m", "prepush", "-C", str(workdir.path), "build", *inputs],
            check=True,
            capture_output=True,
        )
        proxy.faults.reset_after_bytes = None  # ...and the link heals.
        state["built"] = True

    helper = threading.Thread(target=build_newer_then_heal)
    helper.start()
    code, report = publish(workdir, capsys)
    helper.join()
    assert state["built"]
    assert code == 0
    delivery = deliveries(report)[proxied.name]
    assert delivery["corte"] == CORTES[1]
    served = json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes())
    assert served["corte"] == CORTES[1]

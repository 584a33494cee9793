"""Worker processes: the difusores of a run spread over processes, one ledger, one view.

Which process serves a difusor is read from the kernel (/proc: the process that holds the
connection to that difusor's server), not from prepush.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from prepush.exceptions import IntegrityError
from prepush.ledger import WORKER_LOST, Ledger
from prepush.package import MAIN_JSON, Package
from prepush.publish.protocol_types import Delivery, Event, LockOwner
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.publish.workers import Job, Workers, read_ahead, verified_copy
from prepush.settings import load_settings
from prepush.sim.fleet import LocalDifusor, ServerThread
from prepush.transports import connect
from tests.conftest import ProxyFactory, Workdir, interrupt
from tests.support.servers import Endpoint, read_tree

CORTE = "20210606_2320"


@pytest.fixture
def fleet(
    servers_loop: ServerThread, client_key: Path, tmp_path: Path
) -> Iterator[list[tuple[LocalDifusor, Endpoint]]]:
    key = asyncssh.read_private_key(client_key)
    servers = [
        LocalDifusor(f"difusor{i:02d}", tmp_path / f"d{i:02d}", client_key=key) for i in range(4)
    ]
    for server in servers:
        servers_loop.run(server.start())
    yield [
        (s, Endpoint(s.name, s.host, s.port, s.username, client_key, s.host_key_line, "/", s.root))
        for s in servers
    ]
    for server in servers:
        servers_loop.run(server.stop())


def pid_connected_to(port: int) -> int | None:
    """The process holding a TCP connection to 127.0.0.1:``port``, from /proc."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            inodes.add(f"socket:[{inode}]")
    for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
        if _links(pid) & inodes:
            return int(pid)
    return None


@contextlib.contextmanager
def connection_owners(ports: list[int]) -> Iterator[dict[int, int]]:
    """The process first seen holding a connection to each port, watched until the block
    ends."""
    owners: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for port in ports:
                if port not in owners and (pid := pid_connected_to(port)) is not None:
                    owners[port] = pid
            done.wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield owners
    finally:
        done.set()
        watcher.join()


def _links(pid: str) -> set[str]:
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def test_the_difusores_are_spread_over_processes_and_the_parent_keeps_one_ledger(
    fleet: list[tuple[LocalDifusor, Endpoint]], workdir: Workdir
) -> None:
    endpoints = [e for _, e in fleet]
    workdir.write_roster(endpoints, publish={"workers": 2})
    workdir.build(CORTE)
    settings = load_settings(workdir.path)
    seen: list[Event] = []
    # A worker does not wait for the parent to read its events, so by the time the parent
    # sees one the worker may have closed that connection: who holds each one is watched
    # from outside while the publish runs.
    with connection_owners([e.port for e in endpoints]) as owners:
        report = publish(PublishRequest(settings, settings.roster.difusores), seen.append)
    served_by = {e.name: owners.get(e.port) for e in endpoints}
    assert int(report.exit_code) == 0
    assert [d.difusor for d in report.deliveries] == [e.name for e in endpoints]
    assert {d.outcome for d in report.deliveries} == {"delivered"}
    me = os.getpid()
    assert served_by[endpoints[0].name] == me
    assert served_by[endpoints[2].name] == me
    worker = served_by[endpoints[1].name]
    assert worker is not None
    assert worker != me
    assert served_by[endpoints[3].name] == worker
    for endpoint in endpoints:
        assert read_tree(endpoint.local_root) == workdir.package_tree(CORTE)
    finals = {e.difusor for e in seen if e.stage == "delivered"}
    assert finals == {e.name for e in endpoints}, "the worker's events reach the one view"
    with Ledger(workdir.path / "prepush.db") as ledger:
        rows = ledger.deliveries()
        assert sorted(r.difusor for r in rows) == sorted(e.name for e in endpoints)
        assert all(r.outcome == "delivered" and r.flip_at is not None for r in rows)
        (run,) = [r for r in ledger.runs() if r.command == "publish"]
        assert run.status == "ok"
        assert all(len(ledger.attempts(r.id)) == 1 for r in rows)
    assert children_of(me) & {worker} == set(), "the worker ended with the run"


def test_a_worker_that_dies_fails_only_its_difusores(
    fleet: list[tuple[LocalDifusor, Endpoint]], fault_proxy: ProxyFactory, workdir: Workdir
) -> None:
    endpoints = [e for _, e in fleet]
    proxy, slow = fault_proxy(endpoints[1])  # served by the worker
    proxy.faults.rate_bytes_per_s = 50_000
    workdir.write_roster([endpoints[0], slow], publish={"workers": 2})
    workdir.build(CORTE)
    settings = load_settings(workdir.path)
    killed: list[int] = []

    def hook(event: Event) -> None:
        if event.difusor == slow.name and event.stage == "uploading" and not killed:
            worker = pid_connected_to(proxy.port)
            assert worker is not None
            assert worker != os.getpid()
            os.kill(worker, signal.SIGKILL)
            killed.append(worker)

    started = time.monotonic()
    report = publish(PublishRequest(settings, settings.roster.difusores), hook)
    assert killed
    assert time.monotonic() - started < 15
    outcomes = {d.difusor: d for d in report.deliveries}
    assert outcomes[endpoints[0].name].outcome == "delivered"
    lost = outcomes[slow.name]
    assert lost.outcome == "failed"
    assert lost.error_class == "InternalError"
    assert "terminó de forma inesperada" in (lost.error_message or "")
    assert int(report.exit_code) == 1
    with Ledger(workdir.path / "prepush.db") as ledger:
        (row,) = ledger.deliveries(difusor=slow.name)
        assert row.outcome == "failed"
        assert row.error_class == "InternalError"


def test_killing_prepush_kills_its_workers(
    fleet: list[tuple[LocalDifusor, Endpoint]], fault_proxy: ProxyFactory, workdir: Workdir
) -> None:
    endpoints = [e for _, e in fleet]
    proxy, slow = fault_proxy(endpoints[1])
    proxy.faults.rate_bytes_per_s = 20_000
    workdir.write_roster([endpoints[0], slow], publish={"workers": 2}, deadline=60)
    workdir.build(CORTE)
    parent = subprocess.Popen(
        [sys.executable, "-m", "prepush", "-C", str(workdir.path), "publish"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        workers: set[int] = set()
        while time.monotonic() < deadline and not workers:
            workers = children_of(parent.pid)
            time.sleep(0.05)
        assert workers, "the publish forked a worker"
        time.sleep(0.5)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone_by = time.monotonic() + 5
        while time.monotonic() < gone_by and any(Path(f"/proc/{p}").exists() for p in workers):
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "the workers died with prepush"
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_watch_keeps_its_workers_and_their_connections(
    fleet: list[tuple[LocalDifusor, Endpoint]], workdir: Workdir
) -> None:
    servers = [s for s, _ in fleet]
    endpoints = [e for _, e in fleet]
    watcher = watch_two_processes(workdir, endpoints)
    try:
        _wait_for(lambda: all((e.local_root / "json/main.json").exists() for e in endpoints))
        pids = {e.name: pid_connected_to(e.port) for e in endpoints}
        workdir.build("20210606_2340")
        _wait_for(lambda: all_serve(endpoints, "20210606_2340"))
        assert {e.name: pid_connected_to(e.port) for e in endpoints} == pids
        assert len(set(pids.values())) == 2
        assert all(len(s.connections) == 1 for s in servers), "one connection each, kept"
    finally:
        interrupt(watcher)
    assert watcher.returncode == 130


def watch_two_processes(workdir: Workdir, endpoints: list[Endpoint]) -> subprocess.Popen[str]:
    """``publish --watch`` of the first corte to ``endpoints`` with one worker; stderr kept."""
    workdir.write_roster(endpoints, publish={"workers": 2})
    workdir.build(CORTE)
    return workdir.watch()


def all_serve(endpoints: list[Endpoint], corte: str) -> bool:
    return all(
        json.loads((e.local_root / "json/main.json").read_bytes())["corte"] == corte
        for e in endpoints
    )


def _wait_for(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("no llegó a tiempo")


def test_a_worker_publishes_only_the_manifest_the_parent_verified(workdir: Workdir) -> None:
    """The parent verifies the package and names its manifest in the job; the worker's own
    copy, read ahead while the parent verified, is used only if it is that manifest."""
    workdir.write_roster([])
    path = workdir.build(CORTE)
    settings = load_settings(workdir.path)
    verified = Package.open(path)
    job = Job(
        corte=CORTE,
        names=(),
        explicit_corte=True,
        dry_run=False,
        override_embargo=None,
        rollback=False,
        owner=LockOwner("prueba", 1),
        manifest_digest=verified.manifest.digest,
        standing={},
    )
    prepared = read_ahead(settings, CORTE, 2)
    assert prepared is not None
    assert verified_copy(settings, job, prepared, 2) is prepared
    assert prepared.cache.held(prepared.local_path(MAIN_JSON)) is not None, "read and hashed"
    assert read_ahead(settings, "20210606_2340", 2) is None, "a corte not built yet"

    # The package changed on disk after the parent verified it: neither the copy read ahead
    # nor a fresh one is published.
    altered = dataclasses.replace(job, manifest_digest="0" * 64)
    with pytest.raises(IntegrityError, match="cambió después de verificarse"):
        verified_copy(settings, altered, prepared, 2)


def test_a_worker_that_dies_between_cortes_hands_its_difusores_to_the_parent(
    fleet: list[tuple[LocalDifusor, Endpoint]], workdir: Workdir
) -> None:
    """With --watch, a worker that dies does not take its difusores out of the night: the
    next corte reaches every difusor (the parent serves them), and the ledger says so."""
    endpoints = [e for _, e in fleet]
    watcher = watch_two_processes(workdir, endpoints)
    try:
        _wait_for(lambda: all((e.local_root / "json/main.json").exists() for e in endpoints))
        (worker,) = children_of(watcher.pid)
        os.kill(worker, signal.SIGKILL)
        _wait_for(lambda: not _alive(worker))
        workdir.build("20210606_2340")
        _wait_for(lambda: all_serve(endpoints, "20210606_2340"))
        assert watcher.poll() is None, "the night's publisher goes on"
    finally:
        stderr = interrupt(watcher)
    assert watcher.returncode == 130
    assert "El proceso de trabajo 1 terminó" in stderr
    with Ledger(workdir.path / "prepush.db") as ledger:
        (lost,) = ledger.run_events((WORKER_LOST,))
        assert all(e.name in lost.message for e in endpoints[1::2])
        latest = {r.difusor: r for r in ledger.deliveries() if r.corte == "20210606_2340"}
        assert {r.outcome for r in latest.values()} == {"delivered"}
        assert len(latest) == len(endpoints)


def test_a_worker_that_refuses_its_job_fails_its_share_with_the_reason_and_stays(
    fleet: list[tuple[LocalDifusor, Endpoint]], workdir: Workdir
) -> None:
    """A copy that is not the verified package fails the worker's difusores with the
    integrity error itself, not as a crash, and the worker takes the next job."""
    endpoints = [e for _, e in fleet][:1]
    workdir.write_roster(endpoints, publish={"workers": 2})
    path = workdir.build(CORTE)
    settings = load_settings(workdir.path)
    workers = Workers.start(1, settings, connect, keep=False)
    try:
        with Ledger(workdir.path / "prepush.db") as ledger:
            run_id = ledger.start_run("publish", CORTE, {})
            job = Job(
                corte=CORTE,
                names=(endpoints[0].name,),
                explicit_corte=True,
                dry_run=True,
                override_embargo=None,
                rollback=False,
                owner=LockOwner("prueba", run_id),
                manifest_digest="0" * 64,
                standing={endpoints[0].name: (None, None)},
            )
            unrecorded: list[Delivery] = []
            (refused,) = asyncio.run(
                workers.publish({1: job}, ledger, lambda _: None, unrecorded.append)
            )
            assert unrecorded == [refused], "no row of its own: the parent records it"
            assert refused.outcome == "failed"
            assert refused.error_class == "IntegrityError"
            assert "cambió después de verificarse" in (refused.error_message or "")
            assert workers.alive() == [True]

            verified = dataclasses.replace(job, manifest_digest=Package.open(path).manifest.digest)
            (planned,) = asyncio.run(
                workers.publish({1: verified}, ledger, lambda _: None, unrecorded.append)
            )
            assert planned.outcome == "dry_run", planned.error_message
    finally:
        workers.close()

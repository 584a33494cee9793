"""publish when things go wrong: a server without posix-rename that refuses the flip, a hung
server among healthy ones, a deleted state, another publisher's lock, a symlinked directory,
a damaged previous package, an unexpected failure inside prepush.

Each test names the defect it guards against (issue 12); the real servers are OpenSSH,
asyncssh, paramiko and the scripted SFTP server.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prepush.exceptions import PackageError
from prepush.ledger import Ledger
from prepush.package import Package, canonical_json, safe_relative_path
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import Difusor, Settings, load_settings
from prepush.sim.fleet import ServerThread
from prepush.transports.base import Transport
from prepush.transports.sftp.connect import open_sftp
from prepush.transports.sftp.transport import SFTPTransport
from tests.conftest import ProxyFactory, Workdir
from tests.support.commands import deliveries, run_json
from tests.support.crashes import Reader
from tests.support.scripted_sftp import Script, ScriptedServer
from tests.support.servers import (
    Endpoint,
    Nginx,
    ParamikoSftpServer,
    on_small_disk,
    read_tree,
    resize,
)
from tests.support.trees import expected_tree

CORTES = ("20210606_2320", "20210606_2340", "20210607_1320", "20210607_1440")


def served_corte(root: Path) -> str:
    return str(json.loads((root / "json/main.json").read_bytes())["corte"])


def serving(workdir: Workdir, capsys: pytest.CaptureFixture[str], name: str) -> str | None:
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    (row,) = [d for d in status["difusores"] if d["difusor"] == name]
    return row["serving_corte"]  # type: ignore[no-any-return]


# --- a server without posix-rename --------------------------------------------------------


@pytest.fixture
def plain_server(client_key: Path, tmp_path: Path) -> Iterator[tuple[ParamikoSftpServer, Endpoint]]:
    server = ParamikoSftpServer(tmp_path / "paramiko-root", client_key)
    endpoint = server.start(client_key)
    yield server, endpoint
    server.stop()


def test_without_posix_rename_cortes_arrive_exactly_and_a_refused_flip_is_a_failure(
    plain_server: tuple[ParamikoSftpServer, Endpoint],
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect 1: a refused rename or remove was taken as success, the corte reported
    delivered while the site kept the previous one, and the cleanup broke the live site."""
    server, endpoint = plain_server
    workdir.write_roster([endpoint])
    published: list[str] = []
    for corte in CORTES[:3]:
        workdir.build(corte)
        code, report = run_json(workdir, capsys, "publish")
        assert code == 0, deliveries(report)[endpoint.name]["error_message"]
        assert deliveries(report)[endpoint.name]["atomic"] is False
        published.append(corte)
        assert read_tree(endpoint.local_root) == expected_tree(workdir, published)
    workdir.build(CORTES[3])
    faults = {
        # The old one cannot be moved aside; the new one cannot take its name; the name of
        # an earlier old one cannot be freed.
        "aside": ("json/main.json.prepush-old", None),
        "into": ("json/main.json", None),
        "remove": (None, "json/main.json.prepush-old"),
    }
    for fault, (rename_onto, remove) in faults.items():
        server.faults.refuse_rename_onto = rename_onto
        server.faults.refuse_remove = remove
        code, report = run_json(workdir, capsys, "publish")
        assert code == 3, fault
        delivery = deliveries(report)[endpoint.name]
        assert delivery["outcome"] == "failed"
        assert "json/main.json" in delivery["error_message"]
        assert "código SFTP 3" in delivery["error_message"]
        assert served_corte(endpoint.local_root) == CORTES[2]
        served = read_tree(endpoint.local_root)
        assert {p: served[p] for p in expected_tree(workdir, published)} == expected_tree(
            workdir, published
        )
        assert serving(workdir, capsys, endpoint.name) == CORTES[2]
        with Ledger(workdir.path / "prepush.db") as ledger:
            assert ledger.deliveries(difusor=endpoint.name)[-1].outcome == "failed"
    server.faults.refuse_rename_onto = server.faults.refuse_remove = None
    assert run_json(workdir, capsys, "publish")[0] == 0
    assert read_tree(endpoint.local_root) == expected_tree(workdir, [*published, CORTES[3]])


# --- a hung server ------------------------------------------------------------------------


@pytest.fixture
def hung(servers_loop: ServerThread, client_key: Path, tmp_path: Path) -> Iterator[Endpoint]:
    server = ScriptedServer(Script(silent=True))
    servers_loop.run(server.start())
    yield Endpoint(
        name="colgado",
        host="127.0.0.1",
        port=server.port,
        user="prep",
        key_file=client_key,
        host_key_line=server.host_key_line,
        remote_dir="/",
        local_root=tmp_path / "nada",
    )
    servers_loop.run(server.stop())


# Room for the healthy difusores to deliver a Campeche corte on a loaded two-core machine.
HUNG_DEADLINE = 8.0


def moment(row: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(str(row[name]))


def test_a_hung_server_is_cut_at_the_deadline_and_the_others_deliver(
    hung: Endpoint,
    sshd_plain: Endpoint,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect 2: with SSH up and SFTP silent, publish outlived its deadline (45 s and more).

    The deadline leaves the healthy difusores room to deliver on a loaded machine; what is
    checked is the order of events: they flipped while the silent one was still waited for,
    the silent one was cut by the deadline (never earlier), and the run ended with it."""
    workdir.write_roster([sshd_plain, asyncssh_difusor, hung], deadline=HUNG_DEADLINE)
    workdir.build(CORTES[0])
    started = time.monotonic()
    code, report = run_json(workdir, capsys, "publish")
    elapsed = time.monotonic() - started
    assert elapsed < HUNG_DEADLINE + 4, elapsed
    assert code == 1
    rows = deliveries(report)
    assert rows[sshd_plain.name]["outcome"] == "delivered"
    assert rows[asyncssh_difusor.name]["outcome"] == "delivered"
    assert rows[hung.name]["outcome"] == "failed"
    assert rows[hung.name]["error_class"] == "DeadlineError"
    assert "sin respuesta" in rows[hung.name]["error_message"]
    cut_at = moment(rows[hung.name], "finished_at")
    assert (cut_at - moment(rows[hung.name], "started_at")).total_seconds() >= HUNG_DEADLINE
    for healthy in (sshd_plain.name, asyncssh_difusor.name):
        assert moment(rows[healthy], "finished_at") < cut_at, rows[healthy]


# --- a deleted state ------------------------------------------------------------------------


def test_a_deleted_state_rewrites_no_served_file_in_place(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect 5: without its state, prepush rewrote every live object in place (same inode,
    truncated first): readers got torn files."""
    web = nginx_factory(sshd_plain.local_root)
    workdir.write_roster([sshd_plain])
    reader = Reader(web.url)
    for corte in CORTES[:2]:
        reader.learn(Package.open(workdir.build(corte)))
        assert run_json(workdir, capsys, "publish")[0] == 0
    root = sshd_plain.local_root
    entries = {"index.html", "json/main.json"}
    inodes = {p: (root / p).stat().st_ino for p in read_tree(root) if p not in entries}
    (root / ".prepush/state.json").unlink()
    reader.learn(Package.open(workdir.build(CORTES[2])))
    reader.start()
    try:
        code, report = run_json(workdir, capsys, "publish")
    finally:
        reader.stop.set()
        reader.join(30)
    assert code == 0, deliveries(report)[sshd_plain.name]["error_message"]
    assert reader.torn == []
    assert served_corte(root) == CORTES[2]
    for path in workdir.package_tree(CORTES[2]):
        assert (root / path).read_bytes() == workdir.package_tree(CORTES[2])[path]
    unchanged = {p: ino for p, ino in inodes.items() if (root / p).exists()}
    assert unchanged == {p: (root / p).stat().st_ino for p in unchanged}
    shared = set(workdir.package_tree(CORTES[2])) & set(inodes)
    assert shared, "the next corte reuses files the previous ones served"
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.events("state_missing")


def test_a_damaged_state_is_recovered_without_rewriting_what_is_served(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    root = sshd_plain.local_root
    inodes = {p: (root / p).stat().st_ino for p in read_tree(root) if p.startswith("json/o/")}
    (root / ".prepush/state.json").write_text('{"format": 3, "histo')
    workdir.build(CORTES[1])
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0, deliveries(report)[sshd_plain.name]["error_message"]
    assert read_tree(root).items() >= workdir.package_tree(CORTES[1]).items()
    assert {p: (root / p).stat().st_ino for p in inodes if (root / p).exists()}.items() <= (
        inodes.items()
    )
    json.loads((root / ".prepush/state.json").read_bytes())  # written anew, whole
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.events("state_damaged")


# --- disk full, then space again --------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="montar tmpfs requiere root")
def test_a_full_disk_keeps_the_previous_corte_and_space_again_delivers(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    with on_small_disk(sshd_plain, "1900k") as small:
        disk = small.local_root
        workdir.write_roster([small])
        for corte in CORTES[:2]:
            workdir.build(corte)
            assert run_json(workdir, capsys, "publish")[0] == 0
        workdir.build(CORTES[2])
        code, report = run_json(workdir, capsys, "publish")
        assert code == 3
        delivery = deliveries(report)[small.name]
        assert "Sin espacio" in delivery["error_message"]
        assert served_corte(disk) == CORTES[1]
        previous = expected_tree(workdir, list(CORTES[:2]))
        served = read_tree(disk)
        assert {p: served[p] for p in previous} == previous
        resize(disk, "16m")
        code, report = run_json(workdir, capsys, "publish")
        assert code == 0, deliveries(report)[small.name]["error_message"]
        assert read_tree(disk) == expected_tree(workdir, list(CORTES[:3]))


# --- the lock ----------------------------------------------------------------------------------


def _lock(owner: str, since: datetime) -> bytes:
    return canonical_json(
        {"owner": owner, "host": "otra-maquina", "pid": 1, "run": 1, "since": since.isoformat()}
    )


def test_a_live_lock_is_respected_and_a_stale_one_taken_over(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 14: a stale lock was replaced blindly, a lock never refreshed, and any lock of
    the same host and directory taken for one's own."""
    workdir.write_roster([asyncssh_difusor], deadline=4)
    workdir.build(CORTES[0])
    lock = asyncssh_difusor.local_root / ".prepush/lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(_lock("f" * 32, datetime.now(UTC)))
    code, report = run_json(workdir, capsys, "publish")
    assert code == 3
    assert "Otro publicador" in deliveries(report)[asyncssh_difusor.name]["error_message"]
    assert lock.read_bytes().startswith(b'{"host":"otra-maquina"')
    assert not (asyncssh_difusor.local_root / "json/main.json").exists()
    lock.write_bytes(_lock("f" * 32, datetime.now(UTC) - timedelta(hours=1)))
    assert run_json(workdir, capsys, "publish")[0] == 0
    assert not lock.exists()
    with Ledger(workdir.path / "prepush.db") as ledger:
        (taken,) = ledger.events("lock_taken_over")
        assert "otra-maquina" in taken.message


def test_the_lock_is_refreshed_while_a_long_attempt_lasts(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    # Few files in flight: a refresh waits behind little on the slow link, as it must to
    # land within lock_stale_seconds (a late one refuses the flip, rightly).
    workdir.write_roster(
        [proxied], deadline=60, publish={"lock_stale_seconds": 2, "files_in_flight": 2}
    )
    workdir.build(CORTES[0])
    proxy.faults.rate_bytes_per_s = 150_000  # the corte takes several seconds
    lock = asyncssh_difusor.local_root / ".prepush/lock"
    seen: list[bytes] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and not (asyncssh_difusor.local_root / "json/main.json").exists()
        ):
            if lock.exists():
                data = lock.read_bytes()
                if data and (not seen or seen[-1] != data):
                    seen.append(data)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert run_json(workdir, capsys, "publish")[0] == 0
    watcher.join(30)
    held = [json.loads(d) for d in seen]
    assert len({h["since"] for h in held}) >= 2, "refreshed at least once"
    assert len({h["owner"] for h in held}) == 1


def test_only_ones_own_lock_is_released(asyncssh_difusor: Endpoint, workdir: Workdir) -> None:
    """A lock that someone else took over (after ours went stale) is left alone."""
    import asyncio

    from prepush.publish.protocol import RemoteLock
    from prepush.publish.protocol_types import Hooks, LockOwner, ProtocolSettings

    workdir.write_roster([asyncssh_difusor])
    settings = load_settings(workdir.path)
    theirs = _lock("e" * 32, datetime.now(UTC))
    lock_path = asyncssh_difusor.local_root / ".prepush/lock"

    async def scenario() -> bytes:
        transport = await open_sftp(settings.roster.difusores[0], settings)
        hooks = Hooks(event=lambda _e: None, record=lambda _k, _m: None, is_own_leftover=bool)
        lock = RemoteLock(
            transport, "asyncssh", LockOwner("d" * 32, 1), hooks, ProtocolSettings(3, 4, 900, 5)
        )
        await transport.prepare_dirs([".prepush"])
        await lock.take()
        lock_path.write_bytes(theirs)  # ours went stale and another publisher took over
        lock.refreshed_at -= 10_000
        await lock.release()
        await transport.close()
        return lock_path.read_bytes()

    assert asyncio.run(scenario()) == theirs


# --- paths --------------------------------------------------------------------------------------


def test_a_symlink_below_the_first_directory_is_never_written_through(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Defect 15: only the first component of a path was checked for a symbolic link."""
    outside = Path("/srv/prepush-sshd") / f"fuera-{os.getpid()}"
    outside.mkdir(parents=True, exist_ok=True)
    try:
        os.chown(outside, *_owner(sshd_plain.local_root))
        (sshd_plain.local_root / "json").mkdir()
        (sshd_plain.local_root / "json/o").symlink_to(outside)
        workdir.write_roster([sshd_plain])
        workdir.build(CORTES[0])
        code, report = run_json(workdir, capsys, "publish")
        assert code == 3
        message = deliveries(report)[sshd_plain.name]["error_message"]
        assert "json/o es un enlace simbólico" in message
        assert list(outside.iterdir()) == []
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


@pytest.mark.parametrize("path", ["C:/json/main.json", "json/a\x00b.json", "json/\nx", "a/../b"])
def test_paths_with_a_drive_a_control_character_or_dots_are_refused(path: str) -> None:
    with pytest.raises(PackageError):
        safe_relative_path(path)


# --- failures of this machine, not of the difusor --------------------------------------------


def test_an_unreadable_file_of_the_previous_package_only_costs_the_rebuild(
    sshd_plain: Endpoint,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defect 7: an unreadable base in the previous package raised out of publish and
    failed every difusor."""
    workdir.write_roster([sshd_plain, asyncssh_difusor])
    first = Package.open(workdir.build("20210607_1320"))
    assert run_json(workdir, capsys, "publish")[0] == 0
    for entry in first.manifest.files:
        if entry.path.startswith("json/o/"):
            target = first.path / entry.path
            target.unlink()
            target.mkdir()  # reading it fails with IsADirectoryError
    workdir.build("20210607_1440")
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0, report
    for endpoint in (sshd_plain, asyncssh_difusor):
        delivery = deliveries(report)[endpoint.name]
        assert delivery["outcome"] == "delivered"
        assert delivery["files_rebuilt"] == 0
        served = read_tree(endpoint.local_root)
        for path, data in workdir.package_tree("20210607_1440").items():
            assert served[path] == data


class _Breaking(SFTPTransport):
    """A real connection whose upload meets a bug of prepush's own."""

    async def upload(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("un defecto de prueba")


def test_an_unexpected_failure_fails_that_difusor_only(
    sshd_plain: Endpoint, asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    workdir.write_roster([sshd_plain, asyncssh_difusor])
    workdir.build(CORTES[0])
    settings = load_settings(workdir.path)

    async def connector(difusor: Difusor, s: Settings) -> Transport:
        transport = await open_sftp(difusor, s)
        if difusor.name == asyncssh_difusor.name:
            transport.__class__ = _Breaking
        return transport

    report = publish(PublishRequest(settings, settings.roster.difusores), connector=connector)
    outcomes = {d.difusor: d for d in report.deliveries}
    assert outcomes[sshd_plain.name].outcome == "delivered"
    broken = outcomes[asyncssh_difusor.name]
    assert broken.outcome == "failed"
    assert broken.error_class == "InternalError"
    assert "un defecto de prueba" in (broken.error_message or "")
    assert int(report.exit_code) == 1

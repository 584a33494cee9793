"""The lock of a difusor whose site is a directory of its machine (``prepush pull`` into a
directory, which may be an NFS mount), as another publish holding it makes it.

The local transport takes the lock's compare-and-swap under an ``flock`` of ``.prepush/``.
Held by another prepush, the flock is the remote lock being busy, as SFTP says it: a
``RemoteLockedError`` ("Otro publicador tiene el candado remoto"), retried within the
deadline, never a disk that did not answer (which closed the destination for the attempt).
Here the test itself holds that ``flock``, as the other prepush would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.exceptions import RemoteLockedError
from prepush.ledger import Ledger
from prepush.package import canonical_json
from prepush.publish.protocol import RemoteLock
from prepush.publish.protocol_types import Hooks, LockOwner, ProtocolSettings
from prepush.pull.puller import FAILED
from prepush.transports.local import LocalTransport
from tests.conftest import BucketFactory, Workdir
from tests.support.prepdata import CORTES
from tests.support.pull import institute_and_difusor

BUSY = "Otro publicador tiene el candado remoto"


@contextlib.contextmanager
def flock_held(directory: Path) -> Iterator[threading.Event]:
    """Hold the flock of ``directory`` (another open of it, as another process would) until
    the event is set or the block ends."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Event()

    def hold() -> None:
        release.wait(60)
        fcntl.flock(fd, fcntl.LOCK_UN)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        yield release
    finally:
        release.set()
        holder.join()
        os.close(fd)


def release_after_a_failed_attempt(ledger: Path, release: threading.Event) -> threading.Thread:
    """Let the flock go once the pull's ledger records an attempt that failed (or after 30 s,
    so a test that fails does not hang)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not release.is_set():
            if ledger.is_file():
                with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
                    try:
                        failed = db.execute(
                            "SELECT 1 FROM attempts WHERE outcome = 'failed'"
                        ).fetchone()
                    except sqlite3.OperationalError:
                        failed = None  # the schema is being created
                if failed:
                    break
            time.sleep(0.05)
        release.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


def stale_lock_of_another_machine() -> bytes:
    since = datetime.now(UTC) - timedelta(hours=1)
    return canonical_json(
        {"owner": "f" * 32, "host": "otra-maquina", "pid": 1, "run": 1, "since": since.isoformat()}
    )


def test_a_destination_flock_held_by_another_publish_is_the_lock_busy_and_retried_not_a_dead_disk(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    difusor = institute_and_difusor(s3_bucket, workdir, tmp_path)
    workdir.build(CORTES[0])
    assert main(["-C", str(workdir.path), "publish"]) == 0
    site = tmp_path / "sitio"
    # The flock is given up after half the request timeout.
    difusor.write_config(request_timeout_seconds=1, deadline_seconds=60)
    # A lock abandoned an hour ago (so it is taken over under the flock), and another
    # prepush in the middle of taking it over: it holds the flock.
    (site / ".prepush").mkdir(parents=True)
    (site / ".prepush" / "lock").write_bytes(stale_lock_of_another_machine())
    ledger = difusor.path / "prepush-pull.db"
    with flock_held(site / ".prepush") as release:
        watcher = release_after_a_failed_attempt(ledger, release)
        capsys.readouterr()
        code = difusor.run("--json")
        out, err = capsys.readouterr()
        watcher.join()
    result = json.loads(out)
    assert (code, result["outcome"], result["corte"]) == (0, "delivered", CORTES[0]), (result, err)
    assert f"[medio01] {BUSY}" in err
    assert "Reintento en" in err
    assert "disco" not in err
    with Ledger(ledger) as book:
        (delivery,) = book.deliveries(difusor="medio01")
        (failure,) = [e for e in book.events() if e.kind == FAILED]
        first, second = book.attempts(delivery.id)
    assert (delivery.outcome, delivery.attempts) == ("delivered", 2)
    assert (first.outcome, first.error_class) == ("failed", "RemoteLockedError")
    assert first.error_message is not None
    assert first.error_message.startswith(BUSY)
    assert (second.outcome, second.error_class) == ("delivered", None)
    assert failure.message.startswith(BUSY)
    assert json.loads((site / "json" / "main.json").read_bytes())["corte"] == CORTES[0]
    assert not (site / ".prepush" / "lock").exists()


def test_a_refresh_that_finds_the_flock_busy_gives_up_the_lock_and_keeps_the_disk(
    tmp_path: Path,
) -> None:
    """Busy while the lock is refreshed, the flock means another publish is taking the lock
    over: this attempt must not change main.json (it retries), and the disk is fine."""
    site = tmp_path / "sitio"
    site.mkdir()

    async def scenario() -> tuple[bool, RemoteLockedError | None]:
        transport = LocalTransport("medio01", site, timeout=0.4)
        hooks = Hooks(event=lambda _e: None, record=lambda _k, _m: None, is_own_leftover=bool)
        # Stale after 2 s: refreshed every second.
        settings = ProtocolSettings(
            retention=3, width=4, lock_stale_seconds=2, connect_timeout_seconds=5
        )
        lock = RemoteLock(transport, "medio01", LockOwner("d" * 32, 1), hooks, settings)
        await transport.prepare_dirs([".prepush"])
        await lock.take()
        with flock_held(site / ".prepush"):
            # Until the first refresh meets it (a second, on a busy machine maybe more).
            limit = time.monotonic() + 10
            while transport.alive and not lock.lost and time.monotonic() < limit:
                await asyncio.sleep(0.05)
        alive = transport.alive
        said: RemoteLockedError | None = None
        try:
            lock.ensure_held()
        except RemoteLockedError as exc:
            said = exc
        await lock.release_quietly()
        await transport.close()
        return alive, said

    alive, said = asyncio.run(scenario())
    assert alive, "a busy lock is not a dead disk"
    assert said is not None, "main.json must not change while another publish takes the lock"
    assert "Otro publicador" in said.message

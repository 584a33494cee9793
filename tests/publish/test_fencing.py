"""The epoch in each difusor's remote lock (issue 32's fencing), against a real SFTP server.

A publisher under a shared ledger writes its lease's epoch in ``.prepush/lock``. A lock from
an older epoch (a publisher that lost its turn) is taken over at once, however fresh; one from
a newer epoch stops the run (this machine lost its turn) and is left as it is; a lock without
an epoch (a publisher without a shared ledger) keeps the old rules: respected until stale.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from prepush.exceptions import LeaseLostError, RemoteLockedError
from prepush.package import canonical_json
from prepush.publish.protocol import RemoteLock
from prepush.publish.protocol_types import Hooks, LockOwner, ProtocolSettings
from prepush.settings import load_settings
from prepush.transports.sftp.connect import open_sftp
from tests.conftest import Workdir
from tests.support.servers import Endpoint


def _lock(owner: str, epoch: int | None) -> bytes:
    fields: dict[str, object] = {
        "owner": owner,
        "host": "maquina-a",
        "pid": 1,
        "run": 1,
        "since": datetime.now(UTC).isoformat(),
    }
    if epoch is not None:
        fields["epoch"] = epoch
    return canonical_json(fields)


def _take(endpoint: Endpoint, workdir: Workdir, epoch: int, recorded: list[str]) -> None:
    workdir.write_roster([endpoint])
    settings = load_settings(workdir.path)

    async def scenario() -> None:
        transport = await open_sftp(settings.roster.difusores[0], settings)
        hooks = Hooks(
            event=lambda _e: None,
            record=lambda _kind, message: recorded.append(message),
            is_own_leftover=lambda _owner: False,
        )
        lock = RemoteLock(
            transport,
            endpoint.name,
            LockOwner("b" * 32, 7, epoch=epoch),
            hooks,
            ProtocolSettings(3, 4, 900, 5),
        )
        try:
            await lock.take()
            await lock.release()
        finally:
            await transport.close()

    asyncio.run(scenario())


def test_a_fresh_lock_from_an_older_epoch_is_taken_at_once(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    lock = asyncssh_difusor.local_root / ".prepush/lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(_lock("a" * 32, epoch=1))
    recorded: list[str] = []
    _take(asyncssh_difusor, workdir, 2, recorded)
    assert not lock.exists()  # taken, then released
    (message,) = recorded
    assert "concesión 1, anterior a la 2 de esta máquina" in message


def test_a_lock_from_a_newer_epoch_stops_the_run_and_stays(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    lock = asyncssh_difusor.local_root / ".prepush/lock"
    lock.parent.mkdir(parents=True)
    theirs = _lock("c" * 32, epoch=3)
    lock.write_bytes(theirs)
    with pytest.raises(LeaseLostError, match="concesión 3"):
        _take(asyncssh_difusor, workdir, 2, [])
    assert lock.read_bytes() == theirs


def test_a_fresh_lock_without_an_epoch_is_still_respected(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    """A publisher without a shared ledger writes no epoch: the old rules apply to it."""
    lock = asyncssh_difusor.local_root / ".prepush/lock"
    lock.parent.mkdir(parents=True)
    lock.write_bytes(_lock("d" * 32, epoch=None))
    with pytest.raises(RemoteLockedError, match="Otro publicador"):
        _take(asyncssh_difusor, workdir, 2, [])

"""prepush's bulk-upload pump on its own, against OpenSSH's sftp-server and asyncssh's server.

What publish relies on: many files in flight, large files streamed, exclusive creation that
never truncates a file already there, server-side rebuilds with copy-data (and the whole file
when the base is gone), and a cut connection that fails every waiting request at once. The
protocol table against a scripted server is tests/transports/test_sftp_protocol.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import asyncssh
import pytest

from prepush.package import FileCache
from prepush.transports.sftp.pump import (
    COPY_DATA,
    LocalReadError,
    PumpSession,
    Put,
    PutError,
    SFTPConnectionLost,
    SFTPTimeout,
    start_pump,
)
from tests.conftest import ProxyFactory
from tests.support.servers import Endpoint

T = TypeVar("T")
SERVERS = ["sshd_plain", "asyncssh_difusor"]


@asynccontextmanager
async def session(endpoint: Endpoint) -> AsyncIterator[PumpSession]:
    connection = await asyncssh.connect(
        endpoint.host,
        endpoint.port,
        username=endpoint.user,
        client_keys=[str(endpoint.key_file)],
        known_hosts=([asyncssh.import_public_key(endpoint.host_key_line)], [], []),
        config=None,
        agent_path=None,
    )
    try:
        yield await start_pump(connection)
    finally:
        connection.close()
        await connection.wait_closed()


def run(endpoint: Endpoint, work: Callable[[PumpSession, bytes], Awaitable[T]]) -> T:
    async def main() -> T:
        async with session(endpoint) as client:
            root = b"" if endpoint.remote_dir == "/" else endpoint.remote_dir.encode() + b"/"
            return await work(client, root)

    return asyncio.run(main())


@pytest.mark.parametrize("server", SERVERS)
def test_many_files_and_a_large_one_arrive_whole(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    small = {f"f{i:04d}": os.urandom(i * 37 % 9000) for i in range(600)}
    large = tmp_path / "grande.bin"
    large.write_bytes(os.urandom(5_000_000 + 123))
    done: list[bytes] = []

    async def work(client: PumpSession, root: bytes) -> int:
        puts = [Put(root + name.encode(), len(data), data=data) for name, data in small.items()]
        puts.append(Put(root + b"grande.bin", large.stat().st_size, local=str(large)))
        # A budget far below the large file: it must be streamed a window at a time.
        await client.put_many(
            puts,
            width=64,
            fsync=True,
            timeout=30,
            on_done=lambda p: done.append(p.path),
            budget=256 * 1024,
        )
        return client.requests

    requests = run(endpoint, work)
    root = endpoint.local_root
    assert {name: (root / name).read_bytes() for name in small} == small
    assert (root / "grande.bin").read_bytes() == large.read_bytes()
    assert len(done) == 601
    # open, write(s), close and, where offered, fsync: about four requests per small file.
    assert requests < 5 * 600 + 100


@pytest.mark.parametrize("server", SERVERS)
def test_an_exclusive_put_never_truncates_a_file_already_there(
    server: str, request: pytest.FixtureRequest
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    served = b"lo que el publico lee" * 100
    (endpoint.local_root / "servido.json").write_bytes(served)
    done: list[bytes] = []

    async def work(client: PumpSession, root: bytes) -> list[tuple[Put, object]]:
        puts = [
            Put(root + b"servido.json", 5, data=b"nuevo", exclusive=True),
            Put(root + b"nuevo.json", 5, data=b"nuevo", exclusive=True),
        ]
        return await client.put_many(
            puts, width=4, fsync=True, timeout=10, on_done=lambda p: done.append(p.path)
        )

    conflicts = run(endpoint, work)
    assert [p.path.rsplit(b"/", 1)[-1] for p, _answer in conflicts] == [b"servido.json"]
    assert (endpoint.local_root / "servido.json").read_bytes() == served
    assert (endpoint.local_root / "nuevo.json").read_bytes() == b"nuevo"
    assert [p.rsplit(b"/", 1)[-1] for p in done] == [b"nuevo.json"]


@pytest.mark.parametrize("server", SERVERS)
def test_copy_data_rebuilds_a_file_from_its_base_and_a_lost_base_sends_it_whole(
    server: str, request: pytest.FixtureRequest
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    old = os.urandom(300_000)
    new = old[:200_000] + b"actas nuevas" * 1000 + old[-50_000:]
    (endpoint.local_root / "anterior.json").write_bytes(old)

    async def work(client: PumpSession, root: bytes) -> tuple[bool, int, int]:
        rebuilt = Put(
            root + b"nuevo.json",
            len(new),
            data=new,
            base=root + b"anterior.json",
            base_size=len(old),
            prefix=200_000,
            suffix=50_000,
        )
        lost = Put(
            root + b"otro.json",
            len(new),
            data=new,
            base=root + b"ya-no-existe.json",
            base_size=len(old),
            prefix=200_000,
            suffix=50_000,
        )
        await client.put_many([rebuilt], width=4, fsync=True, timeout=10)
        sent = client.bytes_written
        await client.put_many([lost], width=4, fsync=True, timeout=10)
        return client.supports(COPY_DATA), sent, client.bytes_written - sent

    copies, rebuilt_bytes, whole_bytes = run(endpoint, work)
    assert copies, "OpenSSH 9.2 and asyncssh offer copy-data"
    assert (endpoint.local_root / "nuevo.json").read_bytes() == new
    assert (endpoint.local_root / "otro.json").read_bytes() == new
    assert rebuilt_bytes == len(new) - 250_000
    assert whole_bytes == len(new)


def test_a_cut_connection_fails_every_waiting_request(
    sshd_plain: Endpoint, fault_proxy: ProxyFactory
) -> None:
    proxy, endpoint = fault_proxy(sshd_plain)
    data = os.urandom(2_000_000)
    done: list[Put] = []

    async def work(
        client: PumpSession, root: bytes
    ) -> tuple[BaseException | None, float | None, BaseException | None]:
        proxy.faults.reset_after_bytes = proxy.bytes_up + 600_000
        puts = [Put(root + f"f{i}".encode(), len(data), data=data) for i in range(8)]
        try:
            await asyncio.wait_for(
                client.put_many(puts, width=8, fsync=True, timeout=30, on_done=done.append), 30
            )
        except PutError as exc:
            return exc.error, client.silence(), client.lost()
        return None, client.silence(), client.lost()

    error, silence, lost = run(endpoint, work)
    assert proxy.resets >= 1, "the proxy never cut the connection"
    # The cut failed them, not the watchdog of a silent server (a timeout is also "lost").
    assert isinstance(error, SFTPConnectionLost)
    assert not isinstance(error, SFTPTimeout)
    assert lost is error, "every request failed with the session's one loss"
    assert silence is None, "no request was left waiting"
    assert done == [], "no file of the eight in flight was reported done"


def put_error(
    endpoint: Endpoint,
    name: bytes,
    local: Path,
    sha256: str,
    size: int,
    files: FileCache | None = None,
) -> BaseException | None:
    """Put one local file that the manifest says has ``sha256``: the error, if it failed."""

    async def work(client: PumpSession, root: bytes) -> BaseException | None:
        put = Put(root + name, size, local=str(local), sha256=sha256)
        try:
            await client.put_many([put], width=2, fsync=True, timeout=10, files=files)
        except PutError as exc:
            return exc.error
        return None

    return run(endpoint, work)


def test_a_streamed_file_that_changed_since_it_was_verified_fails(
    sshd_plain: Endpoint, tmp_path: Path
) -> None:
    """A large file is read from disk as it is sent: the bytes sent must still be the ones
    the signed manifest names, or the file fails before it is closed."""
    original = os.urandom(3_000_000)
    local = tmp_path / "datos.zip"
    local.write_bytes(original)
    digest = hashlib.sha256(original).hexdigest()
    local.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # changed after the check

    error = put_error(sshd_plain, b"datos.zip", local, digest, len(original))
    assert isinstance(error, LocalReadError)
    assert "cambió después de verificar" in str(error)


def test_a_small_file_read_from_disk_is_hashed_before_a_byte_is_sent(
    sshd_plain: Endpoint, tmp_path: Path
) -> None:
    """A file not held by the run (a worker's copy, or one evicted from the cache) is read
    whole and must still be what the signed manifest names."""
    original = b'{"corte": "20210606_2320"}'
    local = tmp_path / "main.json"
    local.write_bytes(original.replace(b"2320", b"2340"))  # same size, other bytes
    digest = hashlib.sha256(original).hexdigest()

    error = put_error(sshd_plain, b"main.json", local, digest, len(original))
    assert isinstance(error, LocalReadError)
    assert "cambió después de verificar" in str(error)
    assert (sshd_plain.local_root / "main.json").read_bytes() == b"", "opened, not a byte sent"


def test_a_large_file_the_run_verified_is_sent_from_memory(
    sshd_plain: Endpoint, tmp_path: Path
) -> None:
    """The bytes the package's verification hashed and kept are the bytes sent: no second
    read from disk (the file is gone) and no second hash, within the same budget."""
    original = os.urandom(3_000_000)
    local = tmp_path / "datos.zip"
    local.write_bytes(original)
    files = FileCache()
    files.vouch(str(local), files.read(str(local)))
    local.unlink()
    digest = hashlib.sha256(original).hexdigest()

    async def work(client: PumpSession, root: bytes) -> int:
        put = Put(root + b"datos.zip", len(original), local=str(local), sha256=digest)
        await client.put_many([put], width=2, fsync=True, timeout=10, files=files, budget=1 << 20)
        return client.bytes_written

    written = run(sshd_plain, work)
    assert (sshd_plain.local_root / "datos.zip").read_bytes() == original
    assert written == len(original)


def test_a_cached_file_nobody_verified_is_still_read_and_hashed_as_it_goes(
    sshd_plain: Endpoint, tmp_path: Path
) -> None:
    original = os.urandom(3_000_000)
    local = tmp_path / "datos.zip"
    local.write_bytes(original)
    files = FileCache()
    files.read(str(local))  # kept, but never vouched for
    local.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    digest = hashlib.sha256(original).hexdigest()

    error = put_error(sshd_plain, b"datos.zip", local, digest, len(original), files)
    assert isinstance(error, LocalReadError)
    assert "cambió después de verificar" in str(error)


def test_the_cache_holds_only_what_was_vouched_for_and_forgets_what_it_evicts(
    tmp_path: Path,
) -> None:
    size = 300_000
    paths = []
    for number in range(10):
        path = tmp_path / f"{number}.json"
        path.write_bytes(bytes([number]) * size)
        paths.append(str(path))
    files = FileCache(budget=8 * size)  # files up to budget/8 are kept: eight of them
    first = files.read(paths[0])
    files.vouch(paths[0], bytes([0]) * size)  # equal bytes, but not the ones kept
    assert files.held(paths[0]) is None
    files.vouch(paths[0], first)
    assert files.held(paths[0]) is first
    for path in paths[1:]:
        files.vouch(path, files.read(path))
    assert files.held(paths[0]) is None, "evicted, so no longer held"
    assert files.held(paths[-1]) == bytes([9]) * size

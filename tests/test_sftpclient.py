"""prepush's SFTP client on its own, against OpenSSH's sftp-server and asyncssh's server.

What publish relies on: many files in flight, large files streamed within the byte budget,
reads of files larger than one block, server-side rebuilds with copy-data (and the whole
file when the base is gone), and a cut connection that fails every waiting request at once.
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

from prepush.transports.sftpclient import (
    COPY_DATA,
    FX_NO_SUCH_FILE,
    Put,
    PutError,
    SFTPClient,
    SFTPConnectionLost,
    SFTPError,
    start_sftp,
)
from tests.conftest import ProxyFactory
from tests.servers import Endpoint

T = TypeVar("T")
SERVERS = ["sshd_plain", "asyncssh_difusor"]


@asynccontextmanager
async def session(endpoint: Endpoint) -> AsyncIterator[SFTPClient]:
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
        yield await start_sftp(connection)
    finally:
        connection.close()
        await connection.wait_closed()


def run(endpoint: Endpoint, work: Callable[[SFTPClient, bytes], Awaitable[T]]) -> T:
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

    async def work(client: SFTPClient, root: bytes) -> int:
        puts = [Put(root + name.encode(), len(data), data=data) for name, data in small.items()]
        puts.append(Put(root + b"grande.bin", large.stat().st_size, local=str(large)))
        # A budget far below the large file: it must be streamed a window at a time.
        await client.put_many(
            puts,
            width=64,
            fsync=True,
            posix_rename=True,
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
def test_a_read_spans_blocks_and_a_missing_file_says_so(
    server: str, request: pytest.FixtureRequest
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    data = os.urandom(700_000)
    (endpoint.local_root / "estado.json").write_bytes(data)

    async def work(client: SFTPClient, root: bytes) -> tuple[bytes, int]:
        read = await client.read_file(root + b"estado.json")
        try:
            await client.read_file(root + b"no-existe.json")
        except SFTPError as exc:
            return read, exc.code
        return read, -1

    read, code = run(endpoint, work)
    assert read == data
    assert code == FX_NO_SUCH_FILE


@pytest.mark.parametrize("server", SERVERS)
def test_copy_data_rebuilds_a_file_from_its_base_and_a_lost_base_sends_it_whole(
    server: str, request: pytest.FixtureRequest
) -> None:
    endpoint: Endpoint = request.getfixturevalue(server)
    old = os.urandom(300_000)
    new = old[:200_000] + b"actas nuevas" * 1000 + old[-50_000:]
    (endpoint.local_root / "anterior.json").write_bytes(old)

    async def work(client: SFTPClient, root: bytes) -> tuple[bool, int, int]:
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
        await client.put_many([rebuilt], width=4, fsync=True, posix_rename=True)
        sent = client.bytes_written
        await client.put_many([lost], width=4, fsync=True, posix_rename=True)
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

    async def work(client: SFTPClient, root: bytes) -> BaseException | None:
        proxy.faults.reset_after_bytes = proxy.bytes_up + 600_000
        puts = [Put(root + f"f{i}".encode(), len(data), data=data) for i in range(8)]
        try:
            await asyncio.wait_for(
                client.put_many(puts, width=8, fsync=True, posix_rename=True), 30
            )
        except PutError as exc:
            return exc.error
        return None

    error = run(endpoint, work)
    assert isinstance(error, SFTPConnectionLost)


def test_the_byte_budget_bounds_what_is_in_flight(sshd_plain: Endpoint, tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.bin" for i in range(4)]
    for path in files:
        path.write_bytes(os.urandom(3_000_000))
    peak = [0]

    async def work(client: SFTPClient, root: bytes) -> None:
        original = client._send

        def watching(ptype: int, reply: object, *parts: bytes) -> None:
            original(ptype, reply, *parts)  # type: ignore[arg-type]
            pending = sum(len(p) for p in client._outbox)
            peak[0] = max(peak[0], pending)

        client._send = watching  # type: ignore[method-assign]
        puts = [Put(root + p.name.encode(), p.stat().st_size, local=str(p)) for p in files]
        await client.put_many(puts, width=8, fsync=False, posix_rename=True, budget=1 << 20)

    run(sshd_plain, work)
    for path in files:
        remote = (sshd_plain.local_root / path.name).read_bytes()
        assert hashlib.sha256(remote).digest() == hashlib.sha256(path.read_bytes()).digest()
    # Never much more than the budget waits to be sent: one write block over it at most.
    assert peak[0] <= (1 << 20) + 300_000, peak[0]

"""A TCP proxy that breaks the network on purpose: latency, bandwidth caps, resets, stalls.

Put it between prepush and a difusor (in tests and in simulacros) to see what the operator
will see on a bad night. Settings can change while it runs; each chunk obeys the current ones.
netem is not available on these kernels, so faults are injected here, in user space.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass
class ProxyFaults:
    latency_s: float = 0.0
    rate_bytes_per_s: float | None = None
    reset_after_bytes: int | None = None
    resets_left: int | None = None
    # Downloads: a connection is reset once it has carried this many bytes from the server
    # (a download cut mid-body); only the first down_resets_left times, if set.
    reset_down_after_bytes: int | None = None
    down_resets_left: int | None = None
    reset_probability: float = 0.0
    stall: bool = False

    def clear(self) -> None:
        self.latency_s = 0.0
        self.rate_bytes_per_s = None
        self.reset_after_bytes = None
        self.resets_left = None
        self.reset_down_after_bytes = None
        self.down_resets_left = None
        self.reset_probability = 0.0
        self.stall = False


class _Reset(Exception):
    """Raised inside a pump to tear the connection down abruptly."""


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, seed: int = 0) -> None:
        self.target = (target_host, target_port)
        self.faults = ProxyFaults()
        self.port = 0
        self.connections = 0
        self.resets = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._unstall = asyncio.Event()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def set_refusing(self, refusing: bool) -> None:
        """Refused connections: nothing listens on the port while refusing."""
        if refusing and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif not refusing and self._server is None:
            await self._listen()

    async def cut(self) -> None:
        """Cut every open connection now, with a TCP reset, as a broken link would."""
        for writer in list(self._writers):
            _abort(writer)
        self.resets += 1

    @property
    def refusing(self) -> bool:
        return self._server is None

    def set_stall(self, stalled: bool) -> None:
        self.faults.stall = stalled
        if not stalled:
            self._unstall.set()
            self._unstall = asyncio.Event()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            self._writers.discard(writer)
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        sent = [0]
        received = [0]
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(reader, up_writer, upstream=True, sent=sent))
                group.create_task(self._pump(up_reader, writer, upstream=False, sent=received))
        except* _Reset:
            self.resets += 1
        except* (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                _abort(w)
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        upstream: bool,
        sent: list[int],
    ) -> None:
        while data := await source.read(CHUNK):
            f = self.faults
            while f.stall:
                await self._unstall.wait()
            if f.latency_s:
                await asyncio.sleep(f.latency_s)
            if f.rate_bytes_per_s:
                await asyncio.sleep(len(data) / f.rate_bytes_per_s)
            if upstream:
                data = self._maybe_reset(data, sent)
            else:
                data = self._maybe_cut_download(data, sent)
            sink.write(data)
            await sink.drain()
            if upstream:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)
        if sink.can_write_eof():
            sink.write_eof()

    def _maybe_reset(self, data: bytes, sent: list[int]) -> bytes:
        f = self.faults
        if f.reset_probability and self._rng.random() < f.reset_probability:
            raise _Reset
        limit = f.reset_after_bytes
        if limit is None or (f.resets_left is not None and f.resets_left <= 0):
            sent[0] += len(data)
            return data
        if sent[0] + len(data) <= limit:
            sent[0] += len(data)
            return data
        if f.resets_left is not None:
            f.resets_left -= 1
        raise _Reset

    def _maybe_cut_download(self, data: bytes, received: list[int]) -> bytes:
        """Past ``reset_down_after_bytes`` from the server on this connection, the chunk
        that crosses the limit is dropped and the connection reset."""
        f = self.faults
        limit = f.reset_down_after_bytes
        received[0] += len(data)
        if limit is None or received[0] <= limit:
            return data
        if f.down_resets_left is not None:
            if f.down_resets_left <= 0:
                return data
            f.down_resets_left -= 1
        raise _Reset


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a broken link or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

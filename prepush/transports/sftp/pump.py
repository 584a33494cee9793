"""Putting many files over one SFTP channel: prepush's own pipeline, and nothing else.

Every other SFTP request of a publish (reads, stat, remove, rename, links, directories) goes
through asyncssh's own client. asyncssh sends each request as an SSH packet of its own and
builds a future, a packet object and log records for each one; a publish puts thousands of
small files per difusor, and that per-request cost, not the bytes, was the publisher's CPU
(docs/performance.md: about four times less CPU per file here). So this module does only
what measured faster, putting files, in SFTP v3 (draft-ietf-secsh-filexfer-02) plus the
OpenSSH extensions fsync, posix-rename, copy-data and limits:

- requests made in one turn of the event loop leave together, in as few SSH packets as the
  channel allows;
- replies go to plain callbacks, no future per request;
- a pump drives many files at once: each file's writes, fsync and close leave right after
  its handle arrives; a file starts only when its bytes fit in the budget of bytes in flight
  and its handles (two with copy-data) fit in the width.

What it must do as well as asyncssh's client, and what tests/transports/test_sftp_protocol.py checks
against a scripted server: any reply other than OK fails the file that asked, with the SFTP
code kept; a packet longer than :data:`MAX_PACKET` or malformed ends the session; a server
silent for longer than the timeout fails every waiting request; a reply callback that raises
fails its file, never the connection; cancelling stops sending at once.
"""

from __future__ import annotations

import asyncio
import functools
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import asyncssh

from prepush.delivery.contract import SourceMismatch, StreamCheck, changed_size, verified_bytes
from prepush.exceptions import describe_os_error
from prepush.transports.base import DiskFiles, LocalFiles

# Packet types.
FXP_INIT = 1
FXP_VERSION = 2
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_WRITE = 6
FXP_REMOVE = 13
FXP_MKDIR = 14
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_EXTENDED = 200
FXP_EXTENDED_REPLY = 201

# Open flags.
FXF_READ = 0x01
FXF_WRITE = 0x02
FXF_CREAT = 0x08
FXF_TRUNC = 0x10
FXF_EXCL = 0x20

# Status codes. 11 comes from later drafts; some v3 servers (asyncssh's) send it.
FX_OK = 0
FX_EOF = 1
FX_NO_SUCH_FILE = 2
FX_PERMISSION_DENIED = 3
FX_FAILURE = 4
FX_BAD_MESSAGE = 5
FX_NO_CONNECTION = 6
FX_CONNECTION_LOST = 7
FX_OP_UNSUPPORTED = 8
FX_FILE_ALREADY_EXISTS = 11

POSIX_RENAME = b"posix-rename@openssh.com"
HARDLINK = b"hardlink@openssh.com"
FSYNC = b"fsync@openssh.com"
STATVFS = b"statvfs@openssh.com"
LIMITS = b"limits@openssh.com"
COPY_DATA = b"copy-data"
_EXTENSION_VERSIONS = {
    POSIX_RENAME: b"1",
    HARDLINK: b"1",
    FSYNC: b"1",
    STATVFS: b"2",
    LIMITS: b"1",
    COPY_DATA: b"1",
}

# Every SFTP server must take packets of 34,000 bytes; without the limits extension we
# write 32 KiB at a time.
DEFAULT_MAX_WRITE = 32768
# No reply to what this module sends is longer than a few hundred bytes; OpenSSH refuses
# packets over 256 KiB, and so does this client (plus room for the header).
MAX_PACKET = 256 * 1024 + 1024
# Bytes of file data in flight per connection: OpenSSH's channel window is 2 MiB, and more
# would only wait in our own buffers (100 difusores x 2 MiB stays well under 500 MB).
DEFAULT_BUDGET = 2 << 20
# Files up to this size are read whole and sent from memory; larger ones are streamed.
WHOLE_FILE_MAX = 1 << 20

_HEADER = struct.Struct(">IBI")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_LIMITS = struct.Struct(">4Q")
_EMPTY_ATTRS = b"\x00\x00\x00\x00"

Reply = Callable[[int, bytes], None]
# (packet type, extension name or None, the request's fields after the id)
Request = tuple[int, bytes | None, tuple[bytes, ...]]


class SFTPError(Exception):
    """The server answered with a status other than OK, or broke the protocol."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (código SFTP {code})")
        self.code = code
        self.reason = message


class SFTPConnectionLost(Exception):
    """The session ended (closed, cut, silent past the timeout) with requests waiting."""


class SFTPTimeout(SFTPConnectionLost):
    """The server stopped answering: nothing came back for longer than the timeout."""


class LocalReadError(Exception):
    """A file of the package could not be read here: not the difusor's fault."""


def why_lost(exc: BaseException | None) -> str:
    """What ended a connection, in Spanish and without Python's '[Errno N]'."""
    if exc is None:
        return "el canal SFTP se cerró"
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    reason = getattr(exc, "reason", None)  # asyncssh's errors carry the peer's words
    return str(reason or exc) or type(exc).__name__


def _string(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def _take_string(data: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = _U32.unpack_from(data, offset)
    start = offset + 4
    end = start + length
    if end > len(data):
        raise SFTPError(FX_BAD_MESSAGE, "respuesta SFTP truncada")
    return data[start:end], end


def link_request(source: bytes, target: bytes) -> Request:
    return (FXP_EXTENDED, HARDLINK, (_string(source), _string(target)))


def remove_request(path: bytes) -> Request:
    return (FXP_REMOVE, None, (_string(path),))


def mkdir_request(path: bytes) -> Request:
    return (FXP_MKDIR, None, (_string(path), _EMPTY_ATTRS))


def status_error(payload: bytes) -> SFTPError:
    """The error a STATUS reply carries (``payload`` starts after the request id)."""
    if len(payload) < 4:
        return SFTPError(FX_BAD_MESSAGE, "respuesta de estado truncada")
    (code,) = _U32.unpack_from(payload, 0)
    try:
        message, _ = _take_string(payload, 4)
        text = message.decode("utf-8", "replace")
    except (SFTPError, struct.error):
        text = ""
    return SFTPError(code, text or "error")


def _is_ok(ptype: int, payload: bytes) -> bool:
    return ptype == FXP_STATUS and len(payload) >= 4 and _U32.unpack_from(payload, 0)[0] == FX_OK


@dataclass(frozen=True)
class Put:
    """One file to put: from memory (``data``) or from a local file (``local``)."""

    path: bytes
    size: int
    data: bytes | None = None
    local: str | None = None
    # Open with O_EXCL. A path that exists comes back as a conflict for the caller to
    # verify, never as a failure and never truncated. Without it the path is truncated:
    # only ever a temporary name nobody reads.
    exclusive: bool = False
    # After the close, move the file here with posix-rename (atomic on OpenSSH).
    rename_to: bytes | None = None
    # Build it on the server from ``base``, a file already there: its first ``prefix`` and
    # last ``suffix`` bytes are copied with copy-data, only the bytes between are sent.
    base: bytes | None = None
    base_size: int = 0
    prefix: int = 0
    suffix: int = 0
    # A file streamed from disk is hashed as it goes: if it changed since the package was
    # verified, it fails before it is closed (and never renamed into place).
    sha256: str | None = None


class PutError(Exception):
    """A put failed: which file, what we were doing, and the server's (or the disk's) error."""

    def __init__(
        self, put: Put, error: SFTPError | SFTPConnectionLost | LocalReadError, doing: str
    ) -> None:
        super().__init__(f"{doing} {put.path!r}: {error}")
        self.put = put
        self.error = error
        self.doing = doing


class PumpSession(asyncssh.SSHClientSession[bytes]):
    """One SFTP session used only to put files. Create it with :func:`start_pump`."""

    def __init__(self) -> None:
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, Reply] = {}
        self._next_id = 0
        self._outbox: list[bytes | memoryview] = []
        self._flush_scheduled = False
        self._inbuf = b""
        self._version: asyncio.Future[bytes] = self._loop.create_future()
        self._closed: BaseException | None = None
        self._waiting_since = time.monotonic()
        self._paused = False
        self._uploaders: set[_Uploader] = set()
        self.extensions: dict[bytes, bytes] = {}
        self.max_write = DEFAULT_MAX_WRITE
        self.max_handles = 0
        self.requests = 0
        self.bytes_written = 0
        self.bytes_copied = 0

    # --- asyncssh session callbacks ------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype is not None:
            return  # stderr of the subsystem is not SFTP
        buffer = self._inbuf + data if self._inbuf else data
        size = len(buffer)
        offset = 0
        while size - offset >= 4 and self._closed is None:
            (length,) = _U32.unpack_from(buffer, offset)
            if length > MAX_PACKET or length < 1:
                self._protocol_error(f"paquete SFTP de {length} bytes")
                return
            end = offset + 4 + length
            if end > size:
                break
            self._packet(buffer[offset + 4 : end])
            offset = end
        self._inbuf = buffer[offset:]

    def _packet(self, packet: bytes) -> None:
        ptype = packet[0]
        if ptype == FXP_VERSION:
            if not self._version.done():
                self._version.set_result(packet[1:])
            return
        if len(packet) < 5:
            self._protocol_error(f"respuesta SFTP de tipo {ptype} sin identificador")
            return
        (request_id,) = _U32.unpack_from(packet, 1)
        reply = self._pending.pop(request_id, None)
        if reply is None:
            self._protocol_error(f"respuesta SFTP a una petición desconocida ({request_id})")
            return
        self._waiting_since = time.monotonic()
        reply(ptype, packet[5:])

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(SFTPConnectionLost(why_lost(exc)))

    def eof_received(self) -> bool:
        self._fail_all(SFTPConnectionLost("el servidor cerró el canal SFTP"))
        return False

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for uploader in list(self._uploaders):
            uploader.pump()

    def _protocol_error(self, what: str) -> None:
        self._fail_all(SFTPConnectionLost(f"el servidor rompió el protocolo SFTP: {what}"))
        if self._chan is not None:
            self._chan.abort()

    def _fail_all(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        if not self._version.done():
            self._version.set_exception(exc)
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply(-1, b"")

    # --- sending -------------------------------------------------------------------------

    def send(self, ptype: int, reply: Reply, *parts: bytes | memoryview) -> None:
        """Queue one request; everything queued in this loop turn leaves together."""
        if self._closed is not None:
            self._loop.call_soon(reply, -1, b"")
            return
        if not self._pending:
            self._waiting_since = time.monotonic()
        request_id = self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._pending[request_id] = reply
        length = 5
        for part in parts:
            length += len(part)
        self._outbox.append(_HEADER.pack(length, ptype, request_id))
        self._outbox.extend(parts)
        self.requests += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def send_extended(self, name: bytes, reply: Reply, *parts: bytes | memoryview) -> None:
        self.send(FXP_EXTENDED, reply, _string(name), *parts)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outbox or self._chan is None:
            return
        data = b"".join(self._outbox)
        self._outbox.clear()
        try:
            self._chan.write(data)
        except (OSError, asyncssh.Error) as exc:
            self._fail_all(SFTPConnectionLost(why_lost(exc)))

    # --- state -----------------------------------------------------------------------------

    def supports(self, extension: bytes) -> bool:
        return self.extensions.get(extension) == _EXTENSION_VERSIONS[extension]

    def lost(self) -> BaseException | None:
        """Why the session ended, or None while it is open."""
        return self._closed

    @property
    def paused(self) -> bool:
        return self._paused

    def silence(self) -> float | None:
        """Seconds since the last reply while requests wait; None when nothing waits."""
        if not self._pending:
            return None
        return time.monotonic() - self._waiting_since

    def expire(self, timeout: float) -> bool:
        """Fail everything if the server has been silent for ``timeout`` seconds."""
        silent = self.silence()
        if silent is None or silent < timeout:
            return False
        self._fail_all(SFTPTimeout(f"el servidor no responde desde hace {silent:.0f} s"))
        if self._chan is not None:
            self._chan.abort()
        return True

    def close(self) -> None:
        if self._chan is not None:
            self._chan.close()

    # --- the session ---------------------------------------------------------------------

    async def init(self) -> None:
        assert self._chan is not None
        self._chan.write(_U32.pack(5) + bytes([FXP_INIT]) + _U32.pack(3))
        payload = await self._version
        if len(payload) < 4:
            raise SFTPError(FX_BAD_MESSAGE, "respuesta de versión SFTP truncada")
        (version,) = _U32.unpack_from(payload, 0)
        if version != 3:
            raise SFTPError(FX_BAD_MESSAGE, f"versión SFTP no soportada: {version}")
        offset = 4
        while offset < len(payload):
            name, offset = _take_string(payload, offset)
            data, offset = _take_string(payload, offset)
            self.extensions[name] = data
        if self.supports(LIMITS):
            await self._read_limits()

    async def _read_limits(self) -> None:
        future: asyncio.Future[bytes] = self._loop.create_future()

        def reply(ptype: int, payload: bytes) -> None:
            if future.done():
                return
            if ptype == FXP_EXTENDED_REPLY and len(payload) >= _LIMITS.size:
                future.set_result(payload)
            elif ptype < 0:
                future.set_exception(self._closed or SFTPConnectionLost("canal cerrado"))
            else:
                future.set_exception(SFTPError(FX_BAD_MESSAGE, "respuesta de limits inválida"))

        self.send_extended(LIMITS, reply)
        _, _, max_write, max_handles = _LIMITS.unpack_from(await future, 0)
        # A write bigger than a packet we would accept back makes no sense; nor does 0.
        self.max_write = min(int(max_write), MAX_PACKET - 1024) or DEFAULT_MAX_WRITE
        self.max_handles = int(max_handles)

    async def each(
        self, requests: Sequence[Request], *, width: int, timeout: float
    ) -> list[SFTPError | SFTPConnectionLost | None]:
        """Requests whose reply is a status (links, removals, directories), at most ``width``
        waiting at once, sent as few SSH packets; one outcome each, None for OK. Every other
        reply is that request's error; a silent server fails what waits after ``timeout``."""
        outcomes: list[SFTPError | SFTPConnectionLost | None] = [None] * len(requests)
        if not requests:
            return outcomes
        done: asyncio.Future[None] = self._loop.create_future()
        state = {"next": 0, "waiting": 0}

        def pump() -> None:
            while state["waiting"] < width and state["next"] < len(requests):
                index = state["next"]
                state["next"] += 1
                state["waiting"] += 1
                ptype, extension, parts = requests[index]
                reply = functools.partial(finished, index)
                if extension is None:
                    self.send(ptype, reply, *parts)
                else:
                    self.send_extended(extension, reply, *parts)
            if not state["waiting"] and not done.done():
                done.set_result(None)

        def finished(index: int, ptype: int, payload: bytes) -> None:
            state["waiting"] -= 1
            if not _is_ok(ptype, payload):
                outcomes[index] = self._status_failure(ptype, payload)
            if not done.done():
                pump()

        async def watch() -> None:
            while not done.done():
                await asyncio.sleep(min(1.0, timeout / 4))
                self.expire(timeout)

        watchdog = self._loop.create_task(watch())
        try:
            pump()
            await done
        finally:
            watchdog.cancel()
        return outcomes

    def _status_failure(self, ptype: int, payload: bytes) -> SFTPError | SFTPConnectionLost:
        if ptype == FXP_STATUS:
            return status_error(payload)
        if ptype < 0:
            lost = self._closed
            return lost if isinstance(lost, SFTPConnectionLost) else SFTPConnectionLost(str(lost))
        return SFTPError(FX_BAD_MESSAGE, f"respuesta SFTP inesperada (tipo {ptype})")

    async def put_many(
        self,
        puts: Iterable[Put],
        *,
        width: int,
        fsync: bool,
        timeout: float,
        on_done: Callable[[Put], None] | None = None,
        files: LocalFiles | None = None,
        budget: int = DEFAULT_BUDGET,
    ) -> list[tuple[Put, SFTPError]]:
        """Put files with at most ``width`` handles open; returns the exclusive puts whose
        path may already exist, with the server's answer (conflicts, for the caller to
        verify). Raises :class:`PutError`
        for the first failure once the files already started have settled."""
        if self.max_handles:
            width = max(1, min(width, self.max_handles - 4))
        uploader = _Uploader(
            self, iter(puts), max(width, 2), fsync, on_done, files or DiskFiles(), budget
        )
        return await uploader.run(timeout)


@dataclass(eq=False)
class _Upload:
    put: Put
    handles: int
    reserved: int
    handle: bytes = b""
    base_handle: bytes | None = None
    # Open replies still to come before the body can be sent (the file, and its base).
    opening: int = 1
    # opening -> sending -> closing (close sent) -> renaming (rename sent) -> settled.
    phase: str = "opening"
    # What is left to send, from memory or from a local file, and where it goes.
    data: memoryview | None = None
    stream: int | None = None
    check: StreamCheck | None = None
    offset: int = 0
    end: int = 0
    # Replies still expected for this file (writes, copies, fsync, close, rename).
    awaiting: int = 0
    failed: bool = False
    # The exclusive open's answer when the path may already exist.
    conflict: SFTPError | None = None


class _Uploader:
    """Drives many puts on one session with callbacks: no task or future per file.

    A file settles only when every reply it expects has come back (a server may answer out
    of order): only then is it reported done, renamed, or counted as failed.
    """

    def __init__(
        self,
        session: PumpSession,
        puts: Iterator[Put],
        width: int,
        fsync: bool,
        on_done: Callable[[Put], None] | None,
        files: LocalFiles,
        budget: int,
    ) -> None:
        self.session = session
        self.files = files
        self.puts = puts
        self.width = width
        self.fsync = fsync
        self.on_done = on_done
        self.budget = budget
        # Bytes read into memory or sent and not yet acknowledged, over all files.
        self.reserved = 0
        self.peak_reserved = 0
        self.handles = 0
        self.next_put: Put | None = None
        self.active: set[_Upload] = set()
        self.sending: list[_Upload] = []
        self.exhausted = False
        self.cancelled = False
        self.error: PutError | None = None
        self.conflicts: list[tuple[Put, SFTPError]] = []
        self.done: asyncio.Future[None] = session._loop.create_future()

    async def run(self, timeout: float) -> list[tuple[Put, SFTPError]]:
        self.session._uploaders.add(self)
        watchdog = self.session._loop.create_task(self._watch(timeout))
        try:
            self.pump()
            await self.done
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            watchdog.cancel()
            self.session._uploaders.discard(self)
            for upload in self.sending:
                self._close_stream(upload)
        if self.error is not None:
            raise self.error
        return self.conflicts

    async def _watch(self, timeout: float) -> None:
        while not self.done.done():
            await asyncio.sleep(min(1.0, timeout / 4))
            self.session.expire(timeout)

    # --- the pump: start files and send chunks while budget and width allow -------------

    def pump(self) -> None:
        if self.cancelled or self.done.done():
            return
        for upload in list(self.sending):
            self._send_more(upload)
        while not self.exhausted and self.error is None and not self.session.paused:
            put = self.next_put or next(self.puts, None)
            if put is None:
                self.exhausted = True
                break
            self.next_put = put
            whole = self._whole(put)
            handles = 2 if put.base is not None and whole else 1
            reserve = put.size if whole else 0
            if self.active and (
                self.handles + handles > self.width or self.reserved + reserve > self.budget
            ):
                break
            self.next_put = None
            self._start(put, handles, reserve, whole)
        if not self.active and (self.exhausted or self.error is not None):
            self._finish_all()

    def _whole(self, put: Put) -> bool:
        """Read whole into memory when it opens (its bytes reserved before it starts);
        anything larger than that or than the budget is sent chunk by chunk instead."""
        return put.size <= min(WHOLE_FILE_MAX, self.budget)

    def _finish_all(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _reserve(self, upload: _Upload, size: int) -> None:
        upload.reserved += size
        self.reserved += size
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def _release(self, upload: _Upload, size: int) -> None:
        size = min(size, upload.reserved)
        upload.reserved -= size
        self.reserved -= size

    def _guarded(self, upload: _Upload, handler: Callable[[int, bytes], None]) -> Reply:
        """A reply callback that never lets an exception reach the session: a bug or a
        malformed reply fails this file, and the others go on."""

        def reply(ptype: int, payload: bytes) -> None:
            try:
                handler(ptype, payload)
            except Exception as exc:  # the callback's own failure, whatever it is
                self._crash(upload, exc)

        return reply

    def _start(self, put: Put, handles: int, reserve: int, whole: bool) -> None:
        upload = _Upload(put, handles, 0)
        self.active.add(upload)
        self.handles += handles
        self._reserve(upload, reserve)
        send = self.session.send
        if handles == 2:
            assert put.base is not None
            upload.opening = 2
            send(
                FXP_OPEN,
                self._guarded(upload, functools.partial(self._base_opened, upload)),
                _string(put.base),
                _U32.pack(FXF_READ),
                _EMPTY_ATTRS,
            )
        flags = FXF_WRITE | FXF_CREAT | (FXF_EXCL if put.exclusive else FXF_TRUNC)
        send(
            FXP_OPEN,
            self._guarded(upload, functools.partial(self._opened, upload, whole)),
            _string(put.path),
            _U32.pack(flags),
            _EMPTY_ATTRS,
        )

    def _base_opened(self, upload: _Upload, ptype: int, payload: bytes) -> None:
        # A base that cannot be opened only costs the copy: the whole file is sent instead.
        if ptype == FXP_HANDLE:
            upload.base_handle, _ = _take_string(payload, 0)
        upload.opening -= 1
        if upload.phase == "settled":
            self._release_base(upload)
        elif not upload.opening:
            self._body(upload, True)

    def _opened(self, upload: _Upload, whole: bool, ptype: int, payload: bytes) -> None:
        upload.opening -= 1
        if upload.phase == "settled":
            if ptype == FXP_HANDLE:
                self._send_close(_take_string(payload, 0)[0])
            return
        if ptype == FXP_HANDLE:
            upload.handle, _ = _take_string(payload, 0)
        else:
            error = self._error(ptype, payload)
            if upload.put.exclusive and isinstance(error, SFTPError) and _exists_perhaps(error):
                upload.conflict = error
            else:
                self._fail(upload, error, "abrir")
        if not upload.opening:
            self._body(upload, whole)

    def _body(self, upload: _Upload, whole: bool) -> None:
        if upload.failed or upload.conflict is not None or self.cancelled or not upload.handle:
            self._release_base(upload)
            self._close(upload)
            return
        put = upload.put
        upload.phase = "sending"
        upload.end = put.size
        data = put.data if put.data is not None else self._held(put)
        if whole or data is not None:
            # In memory: given, or held by the run (verified when it was read), or small
            # enough to read whole (and then hashed here). A larger file held by the run is
            # still sent chunk by chunk within the budget.
            data = data if data is not None else self._read(upload)
            if data is None:
                self._release_base(upload)
                self._close(upload)
                return
            upload.data = memoryview(data)
            if upload.base_handle is not None:
                self._copy_ends(upload)
        else:
            try:
                upload.stream = os.open(put.local or "", os.O_RDONLY)
            except OSError as exc:
                self._fail(upload, LocalReadError(f"no se pudo leer {put.local}: {exc}"), "leer")
                self._close(upload)
                return
            if put.sha256 is not None:
                upload.check = StreamCheck(put.local or "", put.sha256)
        self._release_base(upload)
        self.sending.append(upload)
        self._send_more(upload)

    def _held(self, put: Put) -> bytes | None:
        data = self.files.held(put.local or "")
        return data if data is not None and len(data) == put.size else None

    def _read(self, upload: _Upload) -> bytes | None:
        """The whole file from disk: the bytes sent must be the ones the manifest names."""
        put = upload.put
        try:
            if put.sha256 is None:
                data = self.files.read(put.local or "")
                if len(data) != put.size:
                    raise SourceMismatch(put.local or "", changed_size(len(data), put.size))
                return data
            return verified_bytes(put.local or "", put.size, put.sha256, self.files)
        except SourceMismatch as exc:
            self._fail(upload, LocalReadError(f"{exc.local} {exc.why}"), "leer")
        except Exception as exc:  # the files are the caller's: whatever it raises is local
            self._fail(upload, LocalReadError(f"no se pudo leer {put.local}: {exc}"), "leer")
        return None

    def _copy_ends(self, upload: _Upload) -> None:
        """Copy the base's reused ends on the server; only the bytes between are sent."""
        put = upload.put
        base = _string(upload.base_handle or b"")
        target = _string(upload.handle)
        end = put.size - put.suffix
        # The copied ends never travel: their share of the reservation goes back now.
        self._release(upload, put.prefix + put.suffix)
        if put.prefix:
            self._copy(upload, base, 0, put.prefix, target, 0)
        if put.suffix:
            self._copy(upload, base, put.base_size - put.suffix, put.suffix, target, end)
        upload.offset, upload.end = put.prefix, end

    def _copy(
        self, upload: _Upload, base: bytes, offset: int, size: int, target: bytes, to: int
    ) -> None:
        upload.awaiting += 1
        self.session.bytes_copied += size
        self.session.send_extended(
            COPY_DATA,
            self._guarded(upload, functools.partial(self._acked, upload, "copiar en el servidor")),
            base,
            _U64.pack(offset),
            _U64.pack(size),
            target,
            _U64.pack(to),
        )

    def _release_base(self, upload: _Upload) -> None:
        if upload.base_handle is not None:
            self._send_close(upload.base_handle)
            upload.base_handle = None

    def _send_close(self, handle: bytes) -> None:
        self.session.send(FXP_CLOSE, _ignore, _string(handle))

    def _send_more(self, upload: _Upload) -> None:
        """Send the file's next chunks: whole files at once (their bytes are reserved),
        streamed ones while the budget allows."""
        block = self.session.max_write
        handle = _string(upload.handle)
        streamed = upload.stream is not None or upload.reserved < upload.end - upload.offset
        while upload.offset < upload.end and self.error is None and not self.cancelled:
            size = min(block, upload.end - upload.offset)
            if streamed:
                if self.session.paused or (self.reserved + size > self.budget and self.reserved):
                    return
                self._reserve(upload, size)
            chunk = self._chunk(upload, size)
            if chunk is None:
                break
            if upload.check is not None:
                upload.check.update(chunk)
            self._write(upload, handle, upload.offset, chunk)
            upload.offset += len(chunk)
            if len(chunk) < size:
                self._fail(upload, _changed(upload.put, upload.offset), "leer")
                break
        if upload.offset >= upload.end or upload.failed or self.error or self.cancelled:
            upload.failed = upload.failed or self.error is not None
            if not upload.failed and upload.check is not None:
                self._check_streamed(upload)
            self._end_sending(upload)

    def _check_streamed(self, upload: _Upload) -> None:
        """Before the close (and so before any rename): every byte written went through it."""
        assert upload.check is not None
        try:
            upload.check.confirm(upload.put.size)
        except SourceMismatch as exc:
            self._fail(upload, LocalReadError(f"{exc.local} {exc.why}"), "leer")

    def _chunk(self, upload: _Upload, size: int) -> bytes | memoryview | None:
        if upload.data is not None:
            # A view, not a copy: the bytes are copied once, into the channel's buffer.
            return upload.data[upload.offset : upload.offset + size]
        assert upload.stream is not None
        try:
            return os.pread(upload.stream, size, upload.offset)
        except OSError as exc:
            error = LocalReadError(f"no se pudo leer {upload.put.local}: {exc}")
            self._fail(upload, error, "leer")
            return None

    def _close_stream(self, upload: _Upload) -> None:
        upload.data = None
        if upload.stream is not None:
            os.close(upload.stream)
            upload.stream = None

    def _end_sending(self, upload: _Upload) -> None:
        self._close_stream(upload)
        if upload in self.sending:
            self.sending.remove(upload)
        self._close(upload)

    def _write(
        self, upload: _Upload, handle: bytes, offset: int, chunk: bytes | memoryview
    ) -> None:
        size = len(chunk)
        upload.awaiting += 1
        self.session.bytes_written += size
        self.session.send(
            FXP_WRITE,
            self._guarded(upload, functools.partial(self._written, upload, size)),
            handle,
            _U64.pack(offset),
            _U32.pack(size),
            chunk,
        )

    def _close(self, upload: _Upload) -> None:
        if not upload.handle:
            upload.phase = "closing"
            self._maybe_settle(upload)
            return
        handle = _string(upload.handle)
        if self.fsync and not self._spoiled(upload):
            upload.awaiting += 1
            self.session.send_extended(
                FSYNC,
                self._guarded(upload, functools.partial(self._acked, upload, "sincronizar")),
                handle,
            )
        upload.awaiting += 1
        upload.phase = "closing"
        self.session.send(
            FXP_CLOSE,
            self._guarded(upload, functools.partial(self._acked, upload, "cerrar")),
            handle,
        )

    # --- replies -----------------------------------------------------------------------------

    def _written(self, upload: _Upload, size: int, ptype: int, payload: bytes) -> None:
        if upload.phase != "settled":
            self._release(upload, size)
        self._acked(upload, "escribir", ptype, payload)
        self.pump()

    def _acked(self, upload: _Upload, doing: str, ptype: int, payload: bytes) -> None:
        upload.awaiting -= 1
        if upload.phase == "settled":
            return
        if not _is_ok(ptype, payload):
            self._fail(upload, self._error(ptype, payload), doing)
        self._maybe_settle(upload)

    def _maybe_settle(self, upload: _Upload) -> None:
        if upload.awaiting or upload.phase not in ("closing", "renaming"):
            return
        put = upload.put
        if upload.phase == "closing" and put.rename_to is not None and not self._spoiled(upload):
            upload.phase = "renaming"
            upload.awaiting += 1
            self.session.send_extended(
                POSIX_RENAME,
                self._guarded(upload, functools.partial(self._acked, upload, "renombrar")),
                _string(put.path),
                _string(put.rename_to),
            )
            return
        self._settle(upload)

    def _spoiled(self, upload: _Upload) -> bool:
        return upload.failed or upload.conflict is not None or self.cancelled

    def _settle(self, upload: _Upload) -> None:
        """The file is done one way or another: free its slot and tell the caller."""
        if upload.phase == "settled":
            return
        upload.phase = "settled"
        self._close_stream(upload)
        if upload in self.sending:
            self.sending.remove(upload)
        self.active.discard(upload)
        self.handles -= upload.handles
        self._release(upload, upload.reserved)
        if upload.conflict is not None and not upload.failed:
            self.conflicts.append((upload.put, upload.conflict))
        elif not self._spoiled(upload) and self.on_done is not None:
            try:
                self.on_done(upload.put)
            except Exception as exc:  # the caller's callback: its failure is this file's
                self._fail(upload, LocalReadError(f"error interno: {exc!r}"), "registrar")
        self.pump()

    def _crash(self, upload: _Upload, exc: Exception) -> None:
        error = SFTPError(FX_BAD_MESSAGE, f"respuesta que no se pudo procesar ({exc!r})")
        self._fail(upload, error, "procesar la respuesta")
        self._settle(upload)

    def _error(self, ptype: int, payload: bytes) -> SFTPError | SFTPConnectionLost:
        if ptype == FXP_STATUS:
            error = status_error(payload)
            if error.code == FX_OK:  # OK where a handle was due
                return SFTPError(FX_BAD_MESSAGE, "respuesta SFTP inesperada (OK)")
            return error
        if ptype < 0:
            lost = self.session.lost()
            return lost if isinstance(lost, SFTPConnectionLost) else SFTPConnectionLost(str(lost))
        return SFTPError(FX_BAD_MESSAGE, f"respuesta SFTP inesperada (tipo {ptype})")

    def _fail(
        self,
        upload: _Upload,
        error: SFTPError | SFTPConnectionLost | LocalReadError,
        doing: str,
    ) -> None:
        upload.failed = True
        if self.error is None:
            self.error = PutError(upload.put, error, doing)

    def cancel(self) -> None:
        """Stop at once: no new file, no new chunk; open handles are closed."""
        self.cancelled = True
        self.exhausted = True
        for upload in list(self.active):
            if upload.handle and upload.phase in ("opening", "sending"):
                self._send_close(upload.handle)
            self._release_base(upload)
            self._close_stream(upload)
            upload.phase = "settled"
        self.active.clear()
        self.sending.clear()
        self._finish_all()


def _changed(put: Put, size: int) -> LocalReadError:
    return LocalReadError(f"{put.local} {changed_size(size, put.size)}")


def _exists_perhaps(error: SFTPError) -> bool:
    """SFTP v3 has no 'already exists': OpenSSH answers a plain failure. The caller checks."""
    return error.code in (FX_FAILURE, FX_FILE_ALREADY_EXISTS)


def _ignore(_ptype: int, _payload: bytes) -> None:
    return None


async def start_pump(connection: asyncssh.SSHClientConnection) -> PumpSession:
    """Open the sftp subsystem on ``connection`` and negotiate version and limits. The
    caller bounds it with a timeout and aborts the connection if it fails."""
    chan, session = await connection.create_session(PumpSession, subsystem="sftp", encoding=None)
    assert isinstance(session, PumpSession)
    try:
        await session.init()
    except BaseException:
        chan.abort()
        raise
    return session

"""A scripted SFTP server: answers each request as a test tells it.

An in-process asyncssh SSH server whose ``sftp`` subsystem is a small SFTP v3 server written
here, over an in-memory filesystem, so that a test can make any request fail with any status
code, go silent, read short, answer out of order, or send oversized or malformed packets,
and can measure what the client has in flight. It speaks to prepush's pump and to asyncssh's
own client alike.
"""

from __future__ import annotations

import asyncio
import posixpath
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT = 1, 2, 3, 4, 5, 6, 7, 8
SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, RENAME = (
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
)
EXTENDED = 200
STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED_REPLY = 101, 102, 103, 104, 105, 201
KINDS = {
    OPEN: "open",
    CLOSE: "close",
    READ: "read",
    WRITE: "write",
    LSTAT: "lstat",
    FSTAT: "fstat",
    STAT: "stat",
    REMOVE: "remove",
    MKDIR: "mkdir",
    RENAME: "rename",
    SETSTAT: "setstat",
    FSETSTAT: "fsetstat",
    OPENDIR: "opendir",
    REALPATH: "realpath",
    RMDIR: "rmdir",
}
EXTENSIONS = {
    b"posix-rename@openssh.com": b"1",
    b"hardlink@openssh.com": b"1",
    b"fsync@openssh.com": b"1",
    b"statvfs@openssh.com": b"2",
    b"limits@openssh.com": b"1",
    b"copy-data": b"1",
}
EXTENDED_KINDS = {
    b"posix-rename@openssh.com": "posix-rename",
    b"hardlink@openssh.com": "hardlink",
    b"fsync@openssh.com": "fsync",
    b"statvfs@openssh.com": "statvfs",
    b"limits@openssh.com": "limits",
    b"copy-data": "copy-data",
}
OK, EOF, NO_SUCH_FILE, FAILURE, OP_UNSUPPORTED = 0, 1, 2, 4, 8
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")


class Reply(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message or f"scripted status {code}"


@dataclass
class Script:
    """What the server does. Rules are looked up by request kind ('open', 'write',
    'posix-rename', ...): ``("status", code)``, ``("silence",)``, ``("oversized",)`` or
    ``("malformed",)``; ``open_for`` narrows an 'open' rule to paths containing a text."""

    extensions: dict[bytes, bytes] = field(default_factory=lambda: dict(EXTENSIONS))
    rules: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    rule_paths: dict[str, str] = field(default_factory=dict)
    max_read: int | None = None
    max_handles: int = 0
    reorder: bool = False
    # Answer the session's start (version, limits), then nothing: SSH up, SFTP silent.
    silent: bool = False
    # Hold every WRITE's reply until released; count what waits.
    hold_writes: bool = False
    # Answer INIT never (a server whose sftp subsystem hangs).
    silent_init: bool = False
    # Acknowledge writes without keeping the bytes (memory tests with gigabytes).
    discard_writes: bool = False

    def rule(self, kind: str, path: str = "") -> tuple[Any, ...] | None:
        found = self.rules.get(kind)
        if found is None:
            return None
        wanted = self.rule_paths.get(kind)
        if wanted and wanted not in path:
            return None
        return found


@dataclass
class Stats:
    requests: list[tuple[str, str]] = field(default_factory=list)
    open_handles: int = 0
    peak_handles: int = 0
    held_bytes: int = 0
    peak_held_bytes: int = 0
    opens_at: list[float] = field(default_factory=list)
    unanswered: int = 0


class Filesystem:
    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.dirs: set[str] = {"/"}
        self.mtimes: dict[str, int] = {}


class _SFTPSession(asyncssh.SSHServerSession[bytes]):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.script = server.script
        self.fs = server.fs
        self.stats = server.stats
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.buffer = b""
        self.handles: dict[bytes, tuple[str, int]] = {}
        self.next_handle = 0
        self.held: list[tuple[int, bytes]] = []
        self.outbox: list[bytes] = []

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan
        self.server.sessions.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            (length,) = U32.unpack_from(self.buffer, 0)
            if len(self.buffer) < 4 + length:
                break
            packet, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
            self.packet(packet)
        self.flush()

    # --- replies ---------------------------------------------------------------------

    def send(self, ptype: int, request_id: int | None, *parts: bytes) -> None:
        body = bytes([ptype]) + (U32.pack(request_id) if request_id is not None else b"")
        body += b"".join(parts)
        self.outbox.append(U32.pack(len(body)) + body)

    def flush(self) -> None:
        if not self.outbox or self.chan is None:
            return
        replies, self.outbox = self.outbox, []
        if self.script.reorder:
            replies.reverse()
        self.chan.write(b"".join(replies))

    def status(self, request_id: int, code: int, message: str = "") -> None:
        text = (message or ("Success" if code == OK else f"status {code}")).encode()
        self.send(STATUS, request_id, U32.pack(code), _string(text), _string(b"en"))

    def release_writes(self) -> None:
        held, self.held = self.held, []
        for request_id, _data in held:
            self.stats.held_bytes -= len(_data)
            self.status(request_id, OK)
        self.flush()

    # --- requests -------------------------------------------------------------------------

    def packet(self, packet: bytes) -> None:
        ptype = packet[0]
        if ptype == INIT:
            if not self.script.silent_init:
                exts = b"".join(_string(k) + _string(v) for k, v in self.script.extensions.items())
                self.send(VERSION, None, U32.pack(3), exts)
            return
        (request_id,) = U32.unpack_from(packet, 1)
        payload = packet[5:]
        kind = KINDS.get(ptype, f"type{ptype}")
        if ptype == EXTENDED:
            name, payload = _take(payload)
            kind = EXTENDED_KINDS.get(name, name.decode())
        path = _first_path(ptype, kind, payload)
        self.stats.requests.append((kind, path))
        if kind == "open":
            self.stats.opens_at.append(time.monotonic())
        if self.script.silent and kind != "limits":
            self.stats.unanswered += 1
            return
        rule = self.script.rule(kind, path)
        if rule is not None:
            self.scripted(rule, request_id)
            return
        try:
            self.handle(kind, request_id, payload)
        except Reply as reply:
            self.status(request_id, reply.code, reply.message)

    def scripted(self, rule: tuple[Any, ...], request_id: int) -> None:
        action = rule[0]
        if action == "status":
            self.status(request_id, int(rule[1]))
        elif action == "silence":
            self.stats.unanswered += 1
        elif action == "oversized":
            self.outbox.append(U32.pack(10 << 20) + bytes([STATUS]) + U32.pack(request_id))
        elif action == "malformed":
            self.outbox.append(U32.pack(3) + bytes([HANDLE]) + b"\x00\x00")
        else:
            raise AssertionError(f"unknown rule {rule}")

    def handle(self, kind: str, request_id: int, payload: bytes) -> None:
        handler: Callable[[int, bytes], None] | None = getattr(
            self, "do_" + kind.replace("-", "_"), None
        )
        if handler is None:
            raise Reply(OP_UNSUPPORTED, f"{kind} not supported")
        handler(request_id, payload)

    def _path(self, raw: bytes) -> str:
        return posixpath.normpath("/" + raw.decode().lstrip("/"))

    def _parent_exists(self, path: str) -> bool:
        return posixpath.dirname(path) in self.fs.dirs

    def _handle(self, payload: bytes) -> tuple[bytes, str, int, bytes]:
        handle, rest = _take(payload)
        if handle not in self.handles:
            raise Reply(FAILURE, "invalid handle")
        path, flags = self.handles[handle]
        return handle, path, flags, rest

    def do_open(self, request_id: int, payload: bytes) -> None:
        raw, rest = _take(payload)
        path = self._path(raw)
        (flags,) = U32.unpack_from(rest, 0)
        exists = path in self.fs.files
        if path in self.fs.dirs:
            raise Reply(FAILURE, "is a directory")
        if flags & 0x20 and exists:
            raise Reply(FAILURE, "exists")
        if not exists and not flags & 0x08:
            raise Reply(NO_SUCH_FILE, "no such file")
        if not self._parent_exists(path):
            raise Reply(NO_SUCH_FILE, "no such directory")
        if self.script.max_handles and len(self.handles) >= self.script.max_handles:
            raise Reply(FAILURE, "too many handles")
        if not exists or flags & 0x10:
            self.fs.files[path] = bytearray()
        self.next_handle += 1
        handle = b"h%d" % self.next_handle
        self.handles[handle] = (path, flags)
        self.stats.open_handles = len(self.handles)
        self.stats.peak_handles = max(self.stats.peak_handles, len(self.handles))
        self.send(HANDLE, request_id, _string(handle))

    def do_close(self, request_id: int, payload: bytes) -> None:
        handle, _, _, _ = self._handle(payload)
        del self.handles[handle]
        self.stats.open_handles = len(self.handles)
        self.status(request_id, OK)

    def do_write(self, request_id: int, payload: bytes) -> None:
        _, path, _, rest = self._handle(payload)
        (offset,) = U64.unpack_from(rest, 0)
        data, _ = _take(rest[8:])
        target = self.fs.files.setdefault(path, bytearray())
        if not self.script.discard_writes:
            if len(target) < offset:
                target.extend(b"\0" * (offset - len(target)))
            target[offset : offset + len(data)] = data
        self.fs.mtimes[path] = int(time.time())
        if self.script.hold_writes:
            self.held.append((request_id, data))
            self.stats.held_bytes += len(data)
            self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, self.stats.held_bytes)
            return
        self.status(request_id, OK)

    def do_read(self, request_id: int, payload: bytes) -> None:
        _, path, _, rest = self._handle(payload)
        (offset,) = U64.unpack_from(rest, 0)
        (length,) = U32.unpack_from(rest, 8)
        if self.script.max_read:
            length = min(length, self.script.max_read)
        data = bytes(self.fs.files.get(path, b"")[offset : offset + length])
        if not data:
            raise Reply(EOF, "end of file")
        self.send(DATA, request_id, _string(data))

    def _attrs(self, path: str) -> bytes:
        if path in self.fs.dirs:
            return U32.pack(0x4 | 0x8) + U32.pack(0o040755) + U32.pack(0) + U32.pack(0)
        if path not in self.fs.files:
            raise Reply(NO_SUCH_FILE, "no such file")
        mtime = self.fs.mtimes.get(path, int(time.time()))
        size = len(self.fs.files[path])
        return (
            U32.pack(0x1 | 0x4 | 0x8)
            + U64.pack(size)
            + U32.pack(0o100644)
            + U32.pack(mtime)
            + U32.pack(mtime)
        )

    def do_lstat(self, request_id: int, payload: bytes) -> None:
        raw, _ = _take(payload)
        self.send(ATTRS, request_id, self._attrs(self._path(raw)))

    do_stat = do_lstat

    def do_fstat(self, request_id: int, payload: bytes) -> None:
        _, path, _, _ = self._handle(payload)
        self.send(ATTRS, request_id, self._attrs(path))

    def do_remove(self, request_id: int, payload: bytes) -> None:
        raw, _ = _take(payload)
        path = self._path(raw)
        if path not in self.fs.files:
            raise Reply(NO_SUCH_FILE, "no such file")
        del self.fs.files[path]
        self.status(request_id, OK)

    def do_mkdir(self, request_id: int, payload: bytes) -> None:
        raw, _ = _take(payload)
        path = self._path(raw)
        if path in self.fs.dirs or path in self.fs.files:
            raise Reply(FAILURE, "exists")
        if not self._parent_exists(path):
            raise Reply(NO_SUCH_FILE, "no such directory")
        self.fs.dirs.add(path)
        self.status(request_id, OK)

    def _two_paths(self, payload: bytes) -> tuple[str, str]:
        first, rest = _take(payload)
        second, _ = _take(rest)
        return self._path(first), self._path(second)

    def do_rename(self, request_id: int, payload: bytes) -> None:
        source, target = self._two_paths(payload)
        if source not in self.fs.files:
            raise Reply(NO_SUCH_FILE, "no such file")
        if target in self.fs.files:
            raise Reply(FAILURE, "exists")
        self.fs.files[target] = self.fs.files.pop(source)
        self.status(request_id, OK)

    def do_posix_rename(self, request_id: int, payload: bytes) -> None:
        source, target = self._two_paths(payload)
        if source not in self.fs.files:
            raise Reply(NO_SUCH_FILE, "no such file")
        self.fs.files[target] = self.fs.files.pop(source)
        self.status(request_id, OK)

    def do_hardlink(self, request_id: int, payload: bytes) -> None:
        source, target = self._two_paths(payload)
        if source not in self.fs.files:
            raise Reply(NO_SUCH_FILE, "no such file")
        if target in self.fs.files:
            raise Reply(FAILURE, "exists")
        self.fs.files[target] = self.fs.files[source]
        self.status(request_id, OK)

    def do_fsync(self, request_id: int, payload: bytes) -> None:
        self._handle(payload)
        self.status(request_id, OK)

    def do_statvfs(self, request_id: int, payload: bytes) -> None:
        values = (4096, 4096, 1 << 20, 1 << 19, 1 << 19, 1000, 500, 500, 0, 0, 255)
        self.send(EXTENDED_REPLY, request_id, b"".join(U64.pack(v) for v in values))

    def do_limits(self, request_id: int, payload: bytes) -> None:
        limits = (256 * 1024, 255 * 1024, 255 * 1024, self.script.max_handles)
        self.send(EXTENDED_REPLY, request_id, b"".join(U64.pack(v) for v in limits))

    def do_copy_data(self, request_id: int, payload: bytes) -> None:
        _, source, _, rest = self._handle(payload)
        (offset,) = U64.unpack_from(rest, 0)
        (length,) = U64.unpack_from(rest, 8)
        _, target, _, rest = self._handle(rest[16:])
        (to,) = U64.unpack_from(rest, 0)
        data = bytes(self.fs.files[source][offset : offset + length])
        written = self.fs.files[target]
        if len(written) < to:
            written.extend(b"\0" * (to - len(written)))
        written[to : to + len(data)] = data
        self.status(request_id, OK)

    def do_realpath(self, request_id: int, payload: bytes) -> None:
        raw, _ = _take(payload)
        path = self._path(raw).encode()
        self.send(NAME, request_id, U32.pack(1), _string(path), _string(path), U32.pack(0))


def _string(value: bytes) -> bytes:
    return U32.pack(len(value)) + value


def _take(data: bytes) -> tuple[bytes, bytes]:
    (length,) = U32.unpack_from(data, 0)
    return data[4 : 4 + length], data[4 + length :]


def _first_path(ptype: int, kind: str, payload: bytes) -> str:
    if kind in ("open", "lstat", "stat", "remove", "mkdir", "rename", "posix-rename", "hardlink"):
        try:
            return _take(payload)[0].decode("utf-8", "replace")
        except struct.error:
            return ""
    return ""


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: ScriptedServer) -> None:
        self.owner = owner

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.owner.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.closed_connections += 1

    def begin_auth(self, username: str) -> bool:
        return False  # no authentication: the tests pin the host key, that is enough here

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _SFTPSession(self.owner)


class ScriptedServer:
    """One scripted SFTP server on 127.0.0.1; run its coroutines on the servers' loop."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.fs = Filesystem()
        self.stats = Stats()
        self.sessions: set[_SFTPSession] = set()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.closed_connections = 0
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key("openssh").decode().strip()

    async def start(self) -> None:
        self._acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            encoding=None,
            reuse_address=True,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for conn in list(self.connections):
            conn.abort()

    async def release_writes(self) -> None:
        self.script.hold_writes = False
        for session in list(self.sessions):
            session.release_writes()

    async def settle(self) -> None:
        """Let what is already on the wire arrive."""
        await asyncio.sleep(0.05)

"""Local difusores for simulacros and tests: in-process asyncssh SFTP servers on loopback.

Each difusor has its own root directory (the SFTP root), throwaway host key and credentials,
and an HTTP server for its web root that sends ``Cache-Control: no-cache, no-store,
must-revalidate`` on ``json/main.json`` as the calls demand. Server faults (wrong
credentials, a full disk, permission denied, no posix-rename, a clock that is off) are
injected by subclassing
asyncssh's SFTPServer, and can be changed between cortes.

A fleet may also have rsync difusores (prepush.sim.rsyncd): a real rsync daemon, or a real
sshd whose key runs rrsync; and real sshd SFTP difusores. Only network faults (the proxy's)
reach those.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncssh
from asyncssh import FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_WRITE

from prepush.sim.rsyncd import MODULE_NAME, RsyncDaemon, rrsync_sshd
from prepush.sim.sshd import BASE, SshdDifusor

T = TypeVar("T")
# How a local difusor receives: in-process SFTP, OpenSSH sshd (SFTP), an rsync daemon, or
# sshd with rrsync.
Kind = Literal["sftp", "sshd", "rsyncd", "rrsync"]
# Every rsync daemon of a simulated night has this password, in this variable.
RSYNC_PASSWORD_ENV = "PREPUSH_SIMULACRO_RSYNC"
NO_CACHE = "no-cache, no-store, must-revalidate"
ENTRY_PAGES = ("json/main.json", "index.html")
WRITE_FLAGS = FXF_WRITE | FXF_CREAT | FXF_TRUNC | FXF_APPEND


@dataclass
class ServerFaults:
    reject_auth: bool = False
    quota_bytes: int | None = None
    read_only: bool = False
    no_posix_rename: bool = False
    # The server's clock is this many seconds off: the times it reports are shifted so.
    clock_offset_s: float = 0.0

    def clear(self) -> None:
        self.reject_auth = False
        self.quota_bytes = None
        self.read_only = False
        self.no_posix_rename = False
        self.clock_offset_s = 0.0


def disk_usage(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class _FaultySFTPServer(asyncssh.SFTPServer):
    """asyncssh's server, chrooted to the difusor's root, with its faults applied."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], difusor: LocalDifusor) -> None:
        super().__init__(chan, chroot=os.fsencode(difusor.root))
        self._difusor = difusor
        self._usage = disk_usage(difusor.root) if difusor.faults.quota_bytes else 0

    @property
    def _faults(self) -> ServerFaults:
        return self._difusor.faults

    def _refuse_writes(self) -> None:
        if self._faults.read_only:
            raise asyncssh.SFTPPermissionDenied("Permission denied")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & WRITE_FLAGS:
            self._refuse_writes()
        return super().open(path, pflags, attrs)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        quota = self._faults.quota_bytes
        if quota is not None:
            if self._usage + len(data) > quota:
                raise asyncssh.SFTPFailure("No space left on device")
            self._usage += len(data)
        written = super().write(file_obj, offset, data)
        assert isinstance(written, int)  # the local-file server writes synchronously
        return written

    def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return self._as_its_clock_says(os.stat(self.map_path(path)))

    def lstat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return self._as_its_clock_says(os.lstat(self.map_path(path)))

    def _as_its_clock_says(self, result: os.stat_result) -> asyncssh.SFTPAttrs:
        attrs = asyncssh.SFTPAttrs.from_local(result)
        offset = self._faults.clock_offset_s
        if offset and attrs.mtime is not None:
            attrs.mtime = int(attrs.mtime + offset)
            attrs.atime = int((attrs.atime or attrs.mtime) + offset)
        return attrs

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._refuse_writes()
        # SFTP v3 semantics: a plain rename never replaces an existing file.
        if os.path.lexists(self.map_path(newpath)):
            raise asyncssh.SFTPFailure("File exists")
        os.rename(self.map_path(oldpath), self.map_path(newpath))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self._faults.no_posix_rename:
            raise asyncssh.SFTPOpUnsupported("posix-rename not supported")
        self._refuse_writes()
        os.replace(self.map_path(oldpath), self.map_path(newpath))

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        if self._faults.no_posix_rename:
            raise asyncssh.SFTPOpUnsupported("hardlink not supported")
        self._refuse_writes()
        os.link(self.map_path(oldpath), self.map_path(newpath))

    def remove(self, path: bytes) -> None:
        self._refuse_writes()
        os.remove(self.map_path(path))

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._refuse_writes()
        try:
            os.mkdir(self.map_path(path))
        except FileExistsError:
            raise asyncssh.SFTPFailure("File exists") from None

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        attrs = asyncssh.SFTPVFSAttrs.from_local(os.statvfs(self.map_path(path)))
        quota = self._faults.quota_bytes
        if quota is not None:
            free_blocks = max(0, quota - disk_usage(self._difusor.root)) // attrs.frsize
            attrs.bfree = attrs.bavail = free_blocks
            attrs.blocks = quota // attrs.frsize
        return attrs


class _SSHServer(asyncssh.SSHServer):
    def __init__(self, difusor: LocalDifusor) -> None:
        self._difusor = difusor
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._difusor.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._difusor.connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return self._difusor.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        d = self._difusor
        return not d.faults.reject_auth and username == d.username and password == d.password

    def public_key_auth_supported(self) -> bool:
        return self._difusor.client_key is not None

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        d = self._difusor
        return (
            not d.faults.reject_auth
            and username == d.username
            and d.client_key is not None
            and key.public_data == d.client_key.public_data
        )


class LocalDifusor:
    """One difusor: an SSH/SFTP server on 127.0.0.1 serving ``root``."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        username: str = "prep",
        client_key: asyncssh.SSHKey | None = None,
        password: str | None = None,
        port: int = 0,
    ) -> None:
        self.name = name
        self.root = root
        self.username = username
        self.client_key = client_key
        self.password = password
        self.host = "127.0.0.1"
        self.port = port
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.faults = ServerFaults()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key("openssh").decode().strip()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._acceptor = await asyncssh.create_server(
            functools.partial(_SSHServer, self),
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            sftp_factory=functools.partial(_FaultySFTPServer, difusor=self),
            allow_scp=False,
            reuse_address=True,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for conn in list(self.connections):
            conn.abort()
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.wait_closed()
        self.connections.clear()

    async def __aenter__(self) -> LocalDifusor:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class _QuietHandler(SimpleHTTPRequestHandler):
    cache_rule = True

    def end_headers(self) -> None:
        path = self.path.split("?", 1)[0].lstrip("/")
        if self.cache_rule and (path in ENTRY_PAGES or path == ""):
            self.send_header("Cache-Control", NO_CACHE)
        elif self.cache_rule:
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class WebServer:
    """A difusor's public web server, on 127.0.0.1, in a thread."""

    def __init__(self, root: Path, *, cache_rule: bool = True, port: int = 0) -> None:
        self.root = root
        self.cache_rule = cache_rule
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        handler = type(
            "Handler",
            (_QuietHandler,),
            {"cache_rule": self.cache_rule},
        )
        factory = functools.partial(handler, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), factory)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"web-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass
class FleetMember:
    """One local difusor: its server (in-process SFTP, a real sshd, an rsync daemon) and its
    web server."""

    name: str
    host: str
    port: int
    user: str
    host_key_line: str
    root: Path
    remote_dir: str
    web: WebServer
    local: LocalDifusor | None = None
    sshd: SshdDifusor | None = None
    rsyncd: RsyncDaemon | None = None
    kind: Kind = "sftp"

    def roster_entry(self, key_file: Path) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "remote_dir": self.remote_dir,
            "url": self.web.url,
        }
        if self.kind == "rsyncd":
            entry["transport"] = "rsync"
            entry["rsync"] = {"mode": "daemon", "module": MODULE_NAME}
            entry["password_env"] = RSYNC_PASSWORD_ENV
            return entry
        if self.kind == "rrsync":
            entry["transport"] = "rsync"
        entry["key_file"] = str(key_file)
        entry["host_key"] = self.host_key_line
        return entry


class Fleet:
    """N local difusores (a server + web) under ``base``, with one client key pair.

    In-process asyncssh servers by default; real OpenSSH sshd (needs root) with ``sshd``.
    ``kinds`` gives each difusor its own kind instead (rsync daemons, sshd with rrsync).
    """

    def __init__(
        self,
        base: Path,
        names: list[str],
        *,
        sshd: bool = False,
        kinds: dict[str, Kind] | None = None,
    ) -> None:
        self.base = base
        self.names = names
        self.use_sshd = sshd
        default: Kind = "sshd" if sshd else "sftp"
        self.kinds: dict[str, Kind] = {n: (kinds or {}).get(n, default) for n in names}
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = base / "claves" / "flota.pem"
        self.rsync_password = os.urandom(12).hex()
        self.members: dict[str, FleetMember] = {}

    def _ensure_key(self) -> None:
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.key_file.exists():
            self.key_file.write_bytes(self.client_key.export_private_key("openssh"))
            self.key_file.chmod(0o600)
        else:
            self.client_key = asyncssh.read_private_key(self.key_file)
        Path(f"{self.key_file}.pub").write_bytes(self.client_key.export_public_key("openssh"))

    async def start(self) -> None:
        self._ensure_key()
        if "rsyncd" in self.kinds.values():
            os.environ[RSYNC_PASSWORD_ENV] = self.rsync_password
        for name in self.names:
            kind = self.kinds[name]
            if kind == "sftp":
                member = await self._start_local(name)
            elif kind == "sshd":
                member = self._start_sshd(name)
            elif kind == "rsyncd":
                member = self._start_rsyncd(name)
            else:
                member = self._start_rrsync(name)
            self.members[name] = member
            member.web.start()

    async def _start_local(self, name: str) -> FleetMember:
        root = self.base / "difusores" / name
        difusor = LocalDifusor(name, root, client_key=self.client_key)
        await difusor.start()
        return FleetMember(
            name, difusor.host, difusor.port, difusor.username, difusor.host_key_line,
            root, "/", WebServer(root), local=difusor,
        )  # fmt: skip

    def _start_sshd(self, name: str) -> FleetMember:
        daemon = SshdDifusor(self.key_file)
        info = daemon.start()
        return FleetMember(
            name, info.host, info.port, info.user, info.host_key_line,
            info.local_root, info.remote_dir, WebServer(info.local_root), sshd=daemon,
            kind="sshd",
        )  # fmt: skip

    def _start_rsyncd(self, name: str) -> FleetMember:
        # As root the daemon changes to the test user, who must reach its web root: /srv.
        base = BASE if os.geteuid() == 0 else self.base / "difusores"
        daemon = RsyncDaemon(base, password=self.rsync_password)
        info = daemon.start()
        return FleetMember(
            name, info.host, info.port, info.user, "", info.local_root, ".",
            WebServer(info.local_root), rsyncd=daemon, kind="rsyncd",
        )  # fmt: skip

    def _start_rrsync(self, name: str) -> FleetMember:
        daemon = rrsync_sshd(self.key_file)
        info = daemon.start()
        return FleetMember(
            name, info.host, info.port, info.user, info.host_key_line, info.local_root, ".",
            WebServer(info.local_root), sshd=daemon, kind="rrsync",
        )  # fmt: skip

    async def stop(self) -> None:
        for member in self.members.values():
            member.web.stop()
            if member.sshd is not None:
                member.sshd.stop()
            if member.rsyncd is not None:
                member.rsyncd.stop()
        await asyncio.gather(
            *(m.local.stop() for m in self.members.values() if m.local is not None),
            return_exceptions=True,
        )

    async def __aenter__(self) -> Fleet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def __iter__(self) -> Iterator[FleetMember]:
        return iter(self.members.values())

    def roster_entries(self) -> list[dict[str, object]]:
        return [m.roster_entry(self.key_file) for m in self.members.values()]


class ServerThread:
    """An event loop in a thread of its own, for servers beside a publisher.

    prepush publishes with ``asyncio.run`` in the caller's thread; local difusores and fault
    proxies must keep serving meanwhile, as a remote server would, so they run here.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

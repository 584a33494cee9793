"""Real servers for the tests: Debian's OpenSSH sshd, nginx and a paramiko SFTP server.

sshd is started on 127.0.0.1 with its own config, host key, pid file and authorized_keys,
in two setups: a plain user, and the hardened one difusores use (ChrootDirectory +
ForceCommand internal-sftp), from docs/difusores.md. nginx serves with the guide's server
block. The paramiko server advertises no OpenSSH extension and renames
like SFTP v3 (never over an existing file), to exercise prepush's fallbacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServerInterface
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

from prepush.sim.sshd import BASE as SERVER_BASE
from prepush.sim.sshd import (
    SFTP_USER,
    SshdDifusor,
    free_port,
    read_pid,
    sshd_available,
    wait_for_port,
)
from tests.support.guide import authorized_keys_line, snippet

__all__ = ["SshdServer", "free_port", "sshd_available", "wait_for_port"]


@dataclass
class Endpoint:
    """What a test needs to reach a difusor and to look behind its back."""

    name: str
    host: str
    port: int
    user: str
    key_file: Path
    host_key_line: str
    remote_dir: str
    local_root: Path
    url: str | None = None

    def roster_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "remote_dir": self.remote_dir,
            "key_file": str(self.key_file),
            "host_key": self.host_key_line,
        }
        if self.url:
            entry["url"] = self.url
        return entry

    def empty(self) -> None:
        for child in self.local_root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


class SshdServer:
    """A real sshd difusor (prepush.sim.sshd), seen as a test Endpoint.

    The chroot one is set up as docs/difusores.md tells difusores to: its sshd_config
    fragment and its authorized_keys line, read from the guide itself.
    """

    def __init__(self, client_key_file: Path, *, chroot: bool) -> None:
        self.client_key_file = client_key_file
        self.chroot = chroot
        self.daemon = SshdDifusor(client_key_file, chroot=chroot)
        if chroot:
            self.daemon.hardening = snippet(
                "sshd_config",
                {
                    "Match User prep\n": f"Match User {SFTP_USER}\n",
                    "/srv/prep-jaula": str(self.daemon.jail),
                    "/etc/ssh/llaves_autorizadas/%u": str(self.daemon.authorized_keys),
                },
            )
            public = Path(f"{client_key_file}.pub").read_text()
            self.daemon.authorized_key = authorized_keys_line(public)

    def start(self) -> Endpoint:
        info = self.daemon.start()
        return Endpoint(
            name="sshd-chroot" if self.chroot else "sshd",
            host=info.host,
            port=info.port,
            user=info.user,
            key_file=self.client_key_file,
            host_key_line=info.host_key_line,
            remote_dir=info.remote_dir,
            local_root=info.local_root,
        )

    def stop(self) -> None:
        self.daemon.stop()


# --- paramiko: an SFTP server without OpenSSH's extensions -------------------------------


class _Handle(SFTPHandle):
    def stat(self) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))  # type: ignore[attr-defined, no-any-return]
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)  # type: ignore[no-any-return]


@dataclass
class PlainFaults:
    """Refusals a test can switch on: any rename onto, or removal of, a path ending so."""

    refuse_rename_onto: str | None = None
    refuse_remove: str | None = None


class _PlainSFTP(SFTPServerInterface):
    """Files under ``root``; rename never replaces (SFTP v3); no posix-rename, no links."""

    root: Path
    faults: PlainFaults

    def _real(self, path: str) -> str:
        clean = os.path.normpath("/" + path).lstrip("/")
        return str(self.root / clean)

    def _errno(self, exc: OSError) -> int:
        return paramiko.SFTPServer.convert_errno(exc.errno)  # type: ignore[no-any-return]

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        real = self._real(path)
        try:
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            return self._errno(exc)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        stream = os.fdopen(fd, mode)
        handle = _Handle(flags)
        handle.filename = real  # type: ignore[attr-defined]
        handle.readfile = stream  # type: ignore[attr-defined]
        handle.writefile = stream  # type: ignore[attr-defined]
        return handle

    def stat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as exc:
            return self._errno(exc)

    def lstat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.lstat(self._real(path)))
        except OSError as exc:
            return self._errno(exc)

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        real = self._real(path)
        try:
            out = []
            for name in os.listdir(real):
                attrs = SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attrs.filename = name
                out.append(attrs)
            return out
        except OSError as exc:
            return self._errno(exc)

    def remove(self, path: str) -> int:
        if self.faults.refuse_remove and path.endswith(self.faults.refuse_remove):
            return SFTP_PERMISSION_DENIED
        try:
            os.remove(self._real(path))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        refused = self.faults.refuse_rename_onto
        if refused and newpath.endswith(refused):
            return SFTP_PERMISSION_DENIED
        if os.path.lexists(self._real(newpath)):
            return SFTP_FAILURE
        try:
            os.rename(self._real(oldpath), self._real(newpath))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        try:
            os.mkdir(self._real(path))
        except FileExistsError:
            return SFTP_FAILURE
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._real(path))
        except OSError as exc:
            return self._errno(exc)
        return SFTP_OK

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        return SFTP_OK

    def canonicalize(self, path: str) -> str:
        return os.path.normpath("/" + path)

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def readlink(self, path: str) -> str | int:
        return SFTP_NO_SUCH_FILE


class _Auth(paramiko.ServerInterface):
    def __init__(self, user: str, key: paramiko.PKey) -> None:
        self.user = user
        self.key = key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.user and key.asbytes() == self.key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED
            if kind == "session"
            else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        )


class ParamikoSftpServer:
    """A paramiko SSH server on 127.0.0.1 in a thread, serving ``root`` over plain SFTP."""

    def __init__(self, root: Path, client_key_file: Path, user: str = "prep") -> None:
        self.root = root
        self.user = user
        self.client_key = paramiko.Ed25519Key.from_private_key_file(str(client_key_file))
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(_paramiko_host_key()))
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="paramiko-sftp", daemon=True)
        self.faults = PlainFaults()

    def start(self, key_file: Path) -> Endpoint:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return Endpoint(
            name="paramiko",
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            key_file=key_file,
            host_key_line=f"{self.host_key.get_name()} {self.host_key.get_base64()}",
            remote_dir="/",
            local_root=self.root,
        )

    def _serve(self) -> None:
        plain = type("PlainSFTP", (_PlainSFTP,), {"root": self.root, "faults": self.faults})
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, plain)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Auth(self.user, self.client_key))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    def stop(self) -> None:
        self._stopping.set()
        self._sock.close()
        for transport in self._transports:
            transport.close()
        for transport in self._transports:
            transport.join(5)
        self._thread.join(5)


_HOST_KEY_LOCK = threading.Lock()


def _paramiko_host_key() -> Path:
    path = SERVER_BASE / "paramiko_host_key"
    with _HOST_KEY_LOCK:
        if not path.exists():
            SERVER_BASE.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
            )
    return path


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A small filesystem of its own: a remote directory that fills up for real."""
    mountpoint = SERVER_BASE / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mountpoint.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)], check=True
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


@contextlib.contextmanager
def on_small_disk(endpoint: Endpoint, size: str) -> Iterator[Endpoint]:
    """The same sshd difusor, its remote directory on a tmpfs of ``size`` it owns."""
    with tmpfs(size) as disk:
        owner = endpoint.local_root.stat()
        os.chown(disk, owner.st_uid, owner.st_gid)
        yield dataclasses.replace(endpoint, remote_dir=str(disk), local_root=disk)


def resize(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def read_tree(root: Path, skip_meta: bool = True) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (prepush's own metadata left out)."""
    tree: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if skip_meta and relative.startswith(".prepush/"):
            continue
        if path.is_file():
            tree[relative] = path.read_bytes()
    return tree


def sftp_read_tree(endpoint: Endpoint, key_file: Path) -> dict[str, bytes]:
    """Read the remote tree back with paramiko: not the client that wrote it."""
    key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
    transport = paramiko.Transport((endpoint.host, endpoint.port))
    try:
        transport.connect(username=endpoint.user, pkey=key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        tree: dict[str, bytes] = {}
        _walk(sftp, endpoint.remote_dir.rstrip("/") or "/", "", tree)
        sftp.close()
        return tree
    finally:
        transport.close()


def _walk(sftp: paramiko.SFTPClient, base: str, prefix: str, tree: dict[str, bytes]) -> None:
    import stat as stat_module

    directory = f"{base}/{prefix}".rstrip("/") if prefix else base
    for attrs in sftp.listdir_attr(directory):
        relative = f"{prefix}/{attrs.filename}" if prefix else attrs.filename
        if attrs.st_mode is not None and stat_module.S_ISDIR(attrs.st_mode):
            if relative != ".prepush":
                _walk(sftp, base, relative, tree)
        else:
            with sftp.open(f"{base.rstrip('/')}/{relative}", "rb") as stream:
                tree[relative] = stream.read()


CACHE_RULE = 'add_header Cache-Control "no-cache, no-store, must-revalidate" always;'
DENY_RULE = "deny all;"


class Nginx:
    """Debian's nginx on 127.0.0.1 serving ``root`` with docs/difusores.md's server block.

    ``cache_rule=False`` or ``deny_prepush=False`` leave out one of the guide's two rules:
    a difusor that did not follow it. ``http_extra``: more directives for the http block
    (the site benchmark turns gzip on with it).
    """

    def __init__(
        self,
        root: Path,
        *,
        cache_rule: bool = True,
        deny_prepush: bool = True,
        http_extra: str = "",
    ) -> None:
        self.root = root
        self.cache_rule = cache_rule
        self.deny_prepush = deny_prepush
        self.http_extra = http_extra
        self.home = SERVER_BASE / f"nginx-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def server_block(self) -> str:
        replacements = {
            "listen 80;": f"listen 127.0.0.1:{self.port};",
            "root /srv/prep-jaula/www;": f"root {self.root};",
        }
        if not self.cache_rule:
            replacements[CACHE_RULE] = ""
        if not self.deny_prepush:
            replacements[DENY_RULE] = ""
        return snippet("nginx", replacements)

    def start(self) -> Nginx:
        self.home.mkdir(parents=True)
        temp = "\n".join(
            f"    {kind}_temp_path {self.home / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.home / "nginx.conf").write_text(
            f"""
user root;
worker_processes 1;
pid {self.home / "nginx.pid"};
error_log {self.home / "error.log"};
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
{temp}
    {self.http_extra}
{self.server_block()}
}}
"""
        )
        subprocess.run(["/usr/sbin/nginx", "-c", str(self.home / "nginx.conf")], check=True)
        wait_for_port(self.port)
        self.pid = read_pid(self.home / "nginx.pid")
        return self

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            self.pid = None
        shutil.rmtree(self.home, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def nginx_available() -> bool:
    return Path("/usr/sbin/nginx").exists() and os.geteuid() == 0

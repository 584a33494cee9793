"""Real rsync difusores on loopback, for ``simulate --transport rsync``, the tests and the bench.

Two kinds, the two ways docs/difusores.md sets an rsync difusor up:

- :class:`RsyncDaemon`: Debian's ``rsync --daemon`` with its own rsyncd.conf, secrets file
  and port, serving one module (MODULE below: the guide's module; the tests start it from
  the guide's own text). As root it chroots into the module and writes as the test user,
  as a difusor's would; otherwise it runs as the caller, without chroot.
- :func:`rrsync_sshd`: OpenSSH's sshd (prepush.sim.sshd) whose authorized_keys line forces
  ``rrsync`` on the web root (RRSYNC_LINE: the guide's line).

Each daemon is a child of its own; stop() stops only it, by its PID.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from prepush.sim.sshd import (
    BASE,
    SFTP_USER,
    SshdDifusor,
    ensure_sftp_user,
    free_port,
    wait_for_port,
)

RSYNC = Path("/usr/bin/rsync")
# Debian 12 ships rrsync as a program; older releases kept it among the docs.
RRSYNC_PLACES = (Path("/usr/bin/rrsync"), Path("/usr/share/doc/rsync/scripts/rrsync"))
MODULE_NAME = "prep"

# docs/difusores.md's rsyncd.conf, with its user, web root, secrets file and address as fields.
CONFIG = """\
uid = {user}
gid = {user}
use chroot = yes
reverse lookup = no
socket options = TCP_NODELAY
max connections = 20

[{module}]
    path = {root}
    read only = no
    list = no
    auth users = {user}
    secrets file = {secrets}
    hosts allow = {allow}
    hosts deny = *
"""
# docs/difusores.md's authorized_keys line for rsync over SSH, with its web root, address and key.
RRSYNC_LINE = 'command="{rrsync} {root}",restrict,from="{allow}" {key}'


def rsync_available() -> bool:
    return RSYNC.exists()


def rrsync_path() -> Path | None:
    return next((p for p in RRSYNC_PLACES if p.exists()), None)


@dataclass(frozen=True)
class RsyncdInfo:
    host: str
    port: int
    user: str
    password: str
    module: str
    local_root: Path


class RsyncDaemon:
    """One rsync daemon serving ``module`` from a web root of its own.

    ``config``: the rsyncd.conf text (CONFIG filled in by default, for root). Without root
    the daemon cannot chroot nor change user: it runs as the caller with ``use chroot = no``.
    """

    def __init__(
        self,
        base: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        password: str | None = None,
        config: str | None = None,
        tmpfs_size: str | None = None,
    ) -> None:
        self.as_root = os.geteuid() == 0
        self.home = (base or BASE) / f"rsyncd-{uuid.uuid4().hex[:8]}"
        self.host = host
        self.port = port or free_port()
        self.password = password or uuid.uuid4().hex
        self.config = config
        self.tmpfs_size = tmpfs_size
        self.mounted: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.home / "www"

    @property
    def secrets(self) -> Path:
        return self.home / "rsyncd.secrets"

    @property
    def user(self) -> str:
        return SFTP_USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def log(self) -> str:
        path = self.home / "rsyncd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def default_config(self) -> str:
        text = CONFIG.format(
            user=self.user,
            module=MODULE_NAME,
            root=self.root,
            secrets=self.secrets,
            allow="127.0.0.1",
        )
        if self.as_root:
            return text
        # Without root: no chroot, no change of user.
        lines = [
            line
            for line in text.splitlines()
            if not line.startswith(("uid =", "gid =", "use chroot"))
        ]
        return "use chroot = no\n" + "\n".join(lines) + "\n"

    def start(self) -> RsyncdInfo:
        self.home.mkdir(parents=True, mode=0o755)
        os.chmod(self.home, 0o755)
        self.root.mkdir(mode=0o755)
        if self.as_root:
            user = ensure_sftp_user()
            if self.tmpfs_size:
                options = f"size={self.tmpfs_size},mode=755,uid={user.pw_uid},gid={user.pw_gid}"
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.root)], check=True
                )
                self.mounted = self.root
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.secrets.write_text(f"{self.user}:{self.password}\n")
        self.secrets.chmod(0o600)
        conf = self.home / "rsyncd.conf"
        # Its own lock file: 'max connections' counts through it, and daemons side by side
        # (tests, the bench) would otherwise share /var/run/rsyncd.lock and its count.
        lock = f"lock file = {self.home / 'rsyncd.lock'}\n"
        conf.write_text(lock + (self.config or self.default_config()))
        self.process = subprocess.Popen(
            [
                str(RSYNC),
                "--daemon",
                "--no-detach",
                f"--config={conf}",
                f"--address={self.host}",
                f"--port={self.port}",
                f"--log-file={self.home / 'rsyncd.log'}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, host=self.host)
        return RsyncdInfo(self.host, self.port, self.user, self.password, MODULE_NAME, self.root)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.mounted is not None:
            subprocess.run(["umount", str(self.mounted)], check=False, capture_output=True)
            self.mounted = None
        shutil.rmtree(self.home, ignore_errors=True)


def rrsync_line(public_key: str, root: Path, allow: str = "127.0.0.1") -> str:
    rrsync = rrsync_path()
    if rrsync is None:
        raise FileNotFoundError("rrsync no está instalado (viene con el paquete rsync)")
    return RRSYNC_LINE.format(rrsync=rrsync, root=root, allow=allow, key=public_key.strip())


def rrsync_sshd(
    client_key_file: Path,
    *,
    authorized_key: str | None = None,
    tmpfs_size: str | None = None,
) -> SshdDifusor:
    """An sshd whose only key runs rrsync on its web root (``authorized_key``: the guide's
    line, with ``{root}`` where the web root goes; RRSYNC_LINE by default)."""
    daemon = SshdDifusor(client_key_file, tmpfs_size=tmpfs_size)
    public = Path(f"{client_key_file}.pub").read_text()
    www = daemon.home / "www"
    line = authorized_key or rrsync_line(public, www)
    daemon.authorized_key = line.replace("{root}", str(www)) + "\n"
    return daemon

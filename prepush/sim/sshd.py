"""Real OpenSSH sshd difusores on loopback, for ``simulate --sshd``, the tests and the bench.

Each sshd runs with its own config, host key, pid file and authorized_keys, on 127.0.0.1 and
a free high port, as a dedicated system user. ``chroot=True`` is the hardened setup difusores
use, the one docs/difusores.md hands them: ``ChrootDirectory`` + ``ForceCommand internal-sftp``
(HARDENING below; the tests start sshd from the guide's own text and check the two agree).
sshd refuses a chroot with a world-writable parent, so everything lives under
/srv/prepush-sshd, not /tmp. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_USER = "prepushtest"
BASE = Path("/srv/prepush-sshd")

# docs/difusores.md's sshd_config fragment, with its user, jail and key file as fields.
HARDENING = """\
Subsystem sftp internal-sftp

Match User {user}
    ChrootDirectory {jail}
    ForceCommand internal-sftp
    AuthorizedKeysFile {authorized_keys}
    PasswordAuthentication no
    AllowTcpForwarding no
    AllowAgentForwarding no
    PermitTunnel no
    X11Forwarding no
"""


def sshd_available() -> bool:
    return SSHD.exists() and os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """A daemon writes its pid file a moment after it starts listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise TimeoutError(f"{path} never appeared")


def ensure_sftp_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SFTP_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", SFTP_USER],
            check=True,
        )
        # A locked account is refused even for key logins; '*' unlocks without a password.
        subprocess.run(["usermod", "-p", "*", SFTP_USER], check=True)
        return pwd.getpwnam(SFTP_USER)


@dataclass(frozen=True)
class SshdInfo:
    host: str
    port: int
    user: str
    host_key_line: str
    remote_dir: str
    local_root: Path


class SshdDifusor:
    """One sshd accepting the client key whose ``.pub`` sits beside it.

    On 127.0.0.1 and a free port by default; the benchmark's shaped links put it in a network
    namespace of its own (``netns``), listening on that namespace's address.
    """

    def __init__(
        self,
        client_key_file: Path,
        *,
        chroot: bool = False,
        host: str = "127.0.0.1",
        port: int | None = None,
        netns: str | None = None,
        tmpfs_size: str | None = None,
        hardening: str | None = None,
        authorized_key: str | None = None,
    ) -> None:
        """``hardening``: the sshd_config text of a chroot difusor (HARDENING filled in by
        default); ``authorized_key``: its authorized_keys line (the bare public key)."""
        self.chroot = chroot
        self.hardening = hardening
        self.authorized_key = authorized_key
        self.client_key_file = client_key_file
        self.home = BASE / f"sshd-{uuid.uuid4().hex[:8]}"
        self.host = host
        self.port = port or free_port()
        self.netns = netns
        # The web root on a tmpfs of its own (the benchmark): mounted before sshd starts, so
        # an sshd in a network namespace (a mount namespace of its own) sees it too.
        self.tmpfs_size = tmpfs_size
        self.mounted: Path | None = None
        self.pid: int | None = None

    def start(self) -> SshdInfo:
        user = ensure_sftp_user()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        conf = self.home / "conf"
        conf.mkdir(parents=True, mode=0o755)
        os.chmod(BASE, 0o755)
        os.chmod(self.home, 0o755)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(conf / "host_key")],
            check=True,
        )
        public = Path(f"{self.client_key_file}.pub").read_text()
        (conf / "authorized_keys").write_text(self.authorized_key or public)
        if self.chroot:
            self.jail.mkdir(mode=0o755)
            www = self.jail / "www"
            remote_dir = "/www"
        else:
            www = self.home / "www"
            remote_dir = str(www)
        www.mkdir(mode=0o755)
        if self.tmpfs_size:
            options = f"size={self.tmpfs_size},mode=755,uid={user.pw_uid},gid={user.pw_gid}"
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(www)], check=True)
            self.mounted = www
        os.chown(www, user.pw_uid, user.pw_gid)
        (conf / "sshd_config").write_text(self._config(conf))
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        subprocess.run(
            [*prefix, str(SSHD), "-f", str(conf / "sshd_config"), "-E", str(conf / "sshd.log")],
            check=True,
        )
        wait_for_port(self.port, host=self.host)
        self.pid = read_pid(conf / "sshd.pid")
        algorithm, key = (conf / "host_key.pub").read_text().split()[:2]
        return SshdInfo(self.host, self.port, SFTP_USER, f"{algorithm} {key}", remote_dir, www)

    def _config(self, conf: Path) -> str:
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {conf / 'host_key'}",
            f"PidFile {conf / 'sshd.pid'}",
            f"AuthorizedKeysFile {conf / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "MaxStartups 200:30:400",
            "MaxSessions 200",
            f"AllowUsers {SFTP_USER}",
        ]
        if not self.chroot:
            return "\n".join([*lines, "Subsystem sftp internal-sftp"]) + "\n"
        hardening = self.hardening or HARDENING.format(
            user=SFTP_USER, jail=self.jail, authorized_keys=conf / "authorized_keys"
        )
        # The difusor's fragment goes last: a Match block runs to the end of the file.
        return "\n".join(lines) + "\n" + hardening

    @property
    def jail(self) -> Path:
        return self.home / "jail"

    @property
    def authorized_keys(self) -> Path:
        return self.home / "conf" / "authorized_keys"

    @property
    def log(self) -> str:
        path = self.home / "conf" / "sshd.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self.pid = None
        if self.mounted is not None:
            subprocess.run(["umount", str(self.mounted)], check=False, capture_output=True)
            self.mounted = None
        shutil.rmtree(self.home, ignore_errors=True)

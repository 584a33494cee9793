"""rsync difusores for the tests, set up from docs/difusores.md's own snippets.

- the rsync daemon: Debian's ``rsync --daemon`` with the guide's rsyncd.conf (its user,
  web root, secrets file and address replaced by this machine's);
- rsync over SSH: OpenSSH's sshd with the guide's authorized_keys line, which forces
  ``rrsync`` on the web root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from prepush.sim.rsyncd import RsyncDaemon, rrsync_path, rrsync_sshd, rsync_available
from prepush.sim.sshd import SFTP_USER, SshdDifusor, sshd_available
from tests.support.guide import snippet
from tests.support.servers import Endpoint

# Every test daemon has this password; rosters name this variable.
PASSWORD_ENV = "PREPUSH_PRUEBA_RSYNC"
PASSWORD = "contraseña-de-prueba"


@dataclass
class RsyncEndpoint(Endpoint):
    """An rsync difusor: over SSH (``module`` None) or its daemon's module."""

    module: str | None = None
    password_env: str | None = None

    def roster_entry(self) -> dict[str, object]:
        entry = super().roster_entry()
        entry["transport"] = "rsync"
        if self.module is None:
            return entry
        del entry["key_file"], entry["host_key"]
        entry["rsync"] = {"mode": "daemon", "module": self.module}
        entry["password_env"] = self.password_env or PASSWORD_ENV
        return entry


def rsync_servers_available() -> bool:
    return rsync_available() and sshd_available() and rrsync_path() is not None


def guide_daemon(tmpfs_size: str | None = None) -> RsyncDaemon:
    """A daemon configured with the guide's rsyncd.conf, as a difusor would."""
    os.environ[PASSWORD_ENV] = PASSWORD
    daemon = RsyncDaemon(password=PASSWORD, tmpfs_size=tmpfs_size)
    daemon.config = snippet(
        "rsyncd_conf",
        {
            "uid = prep": f"uid = {SFTP_USER}",
            "gid = prep": f"gid = {SFTP_USER}",
            "auth users = prep": f"auth users = {SFTP_USER}",
            "/srv/prep/www": str(daemon.root),
            "/etc/rsyncd.secrets": str(daemon.secrets),
            "203.0.113.10": "127.0.0.1",
        },
    )
    return daemon


def daemon_endpoint(daemon: RsyncDaemon, name: str = "rsyncd") -> RsyncEndpoint:
    info = daemon.start()
    return RsyncEndpoint(
        name=name,
        host=info.host,
        port=info.port,
        user=info.user,
        key_file=Path("/nonexistent"),
        host_key_line="",
        remote_dir=".",
        local_root=info.local_root,
        module=info.module,
        password_env=PASSWORD_ENV,
    )


def guide_rrsync_sshd(client_key: Path, tmpfs_size: str | None = None) -> SshdDifusor:
    """An sshd with the guide's authorized_keys line for rsync over SSH."""
    public = Path(f"{client_key}.pub").read_text().strip()
    line = snippet(
        "authorized_keys_rrsync",
        {
            "/usr/bin/rrsync": str(rrsync_path()),
            "/srv/prep/www": "{root}",
            'from="203.0.113.10"': 'from="127.0.0.1"',
        },
    ).strip()
    example = re.search(r"ssh-ed25519 \S+ \S+", line)
    assert example is not None, "docs/difusores.md: la línea de rrsync no tiene llave"
    return rrsync_sshd(
        client_key, authorized_key=line.replace(example.group(0), public), tmpfs_size=tmpfs_size
    )


def ssh_endpoint(daemon: SshdDifusor, client_key: Path, name: str = "rrsync") -> RsyncEndpoint:
    info = daemon.start()
    return RsyncEndpoint(
        name=name,
        host=info.host,
        port=info.port,
        user=info.user,
        key_file=client_key,
        host_key_line=info.host_key_line,
        remote_dir=".",
        local_root=info.local_root,
    )

"""A real PostgreSQL server on loopback, for ``simulate --failover`` and the tests.

Debian's own server binaries (package ``postgresql``), never a mock: ``initdb`` into a
temporary directory as an unprivileged user (the ``postgres`` system user when prepush runs
as root; initdb refuses root), ``pg_ctl start`` on 127.0.0.1 and a free port, password
authentication (scram-sha-256) over TCP as an institute would configure it, and a stop by
the postmaster's PID. Durability is off (``fsync``): this server holds a rehearsal.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from prepush.sim.sshd import free_port, wait_for_port

POSTGRES_LIB = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"
SUPERUSER = "prepush"
STOP_WAIT_S = 30.0


def postgres_bin() -> Path | None:
    """The newest installed server's bin/ directory (Debian keeps one per major version)."""
    if not POSTGRES_LIB.is_dir():
        return None
    found = [p / "bin" for p in POSTGRES_LIB.iterdir() if (p / "bin" / "initdb").exists()]
    return max(found, key=lambda p: _major(p.parent.name), default=None)


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def postgres_available() -> bool:
    if postgres_bin() is None:
        return False
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return False
    return True


class LocalPostgres:
    """One PostgreSQL cluster of its own: ``start()``, databases made and dropped on demand,
    ``stop()``."""

    def __init__(self) -> None:
        self.home: Path | None = None
        self.port = 0
        self.pid: int | None = None
        self.password = secrets.token_urlsafe(18)
        self._run_as: str | None = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def bin(self) -> Path:
        found = postgres_bin()
        if found is None:
            raise RuntimeError("PostgreSQL no está instalado (apt-get install postgresql)")
        return found

    def start(self) -> LocalPostgres:
        # Under /tmp itself: the server's user must reach it (pytest's tmp dirs are 0700).
        self.home = Path(tempfile.mkdtemp(prefix="prepush-pg-"))
        data, pwfile = self.home / "data", self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            for path in (self.home, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._as_server_user(
            [
                str(self.bin / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        self.port = free_port()
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.home}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._as_server_user(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.home / "server.log"),
                "-o",
                settings,
                "-w",
                "start",
            ]
        )
        wait_for_port(self.port)
        self.pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        return self

    def _as_server_user(self, command: list[str]) -> None:
        done = subprocess.run(
            command,
            user=self._run_as,
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} falló: {done.stderr.strip()[-2000:]}")

    def url(self, database: str, *, port: int | None = None) -> str:
        """The URL of ``database`` for a roster: no password (it goes in a variable)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; its URL."""
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending whatever connections it still has."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def _admin(self, statement: str, database: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as admin:
            admin.execute(sql.SQL(statement).format(sql.Identifier(database)))

    @property
    def log(self) -> str:
        path = None if self.home is None else self.home / "server.log"
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown of the postmaster by its PID; then its directory goes."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            if _alive(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; the postmaster is not our child (pg_ctl forked it).
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][:1] != "Z"
    return True

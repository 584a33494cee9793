"""Reaching an rsync difusor: this machine's rsync, the transport's runtime directory (and
those of dead runs swept), the child's environment (the daemon's password where rsync reads
it), for SSH the one ControlMaster login with its pinned host key, then one listing that
proves the way in. Never leaks a process or the runtime directory.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from prepush.exceptions import ConnectError, DifusorError
from prepush.settings import Difusor, Settings
from prepush.transports.rsync.errors import Where
from prepush.transports.rsync.process import Runner
from prepush.transports.rsync.ssh import SshMaster
from prepush.transports.rsync.transport import RsyncTransport

RUNTIME_PREFIX = "prepush-rsync-"


def _runtime_base() -> str | None:
    """Where a transport keeps its socket and scratch files: the user's runtime directory
    (a tmpfs only this user can read), else the system's temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return runtime
    return None


def _sweep_leftovers(base: Path) -> None:
    """Runtime directories of prepush runs that died (a SIGKILL cleans nothing up): named by
    their run's PID, removed once that PID is gone. Another live run's are left alone."""
    for leftover in base.glob(f"{RUNTIME_PREFIX}*-*"):
        pid = leftover.name.removeprefix(RUNTIME_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def local_rsync() -> tuple[str, str]:
    """This machine's rsync and its version."""
    rsync = shutil.which("rsync")
    if rsync is None:
        return "", ""
    output = subprocess.run(
        [rsync, "--version"], capture_output=True, text=True, check=False, timeout=10
    ).stdout
    match = re.search(r"version\s+(\S+)", output)
    return rsync, match.group(1) if match else "?"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _remote_base(difusor: Difusor) -> str:
    directory = difusor.remote_dir.strip()
    if difusor.rsync_daemon:
        assert difusor.rsync is not None
        module = difusor.rsync.module
        inside = "" if directory in ("", ".", "/") else directory.strip("/") + "/"
        host, user = difusor.login
        return f"rsync://{user}@{_host(host)}:{difusor.port}/{module}/{inside}"
    host = _host(difusor.login[0])
    if directory in ("", "."):
        return f"{host}:./"
    return f"{host}:{directory.rstrip('/')}/"


def _where(difusor: Difusor) -> Where:
    return Where(
        name=difusor.name,
        address=f"{difusor.host}:{difusor.port}",
        user=difusor.login[1],
        daemon=difusor.rsync_daemon,
        module=difusor.rsync.module if difusor.rsync is not None else None,
        password_env=difusor.password_env,
    )


def _child_env(difusor: Difusor, settings: Settings) -> dict[str, str]:
    """A small, fixed environment: English messages (they are parsed), UTC listings, and the
    daemon's password where rsync reads it (never on a command line)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LOGNAME")}
    env |= {"LC_ALL": "C", "TZ": "UTC"}
    if difusor.rsync_daemon:
        password = settings.secret(difusor, difusor.password_env)
        env["RSYNC_PASSWORD"] = password or ""
    return env


async def open_rsync(difusor: Difusor, settings: Settings) -> RsyncTransport:
    """Reach one rsync difusor: for SSH, log in once (pinned host key) and keep the master;
    then one listing proves the way in (password, module, remote directory). Never leaks a
    process or the runtime directory, whatever fails or is cancelled on the way."""
    rsync, version = local_rsync()
    if not rsync:
        raise DifusorError(
            difusor.name,
            "rsync no está instalado en esta máquina; instálelo (apt-get install rsync). Es un"
            " problema de esta máquina, no del difusor.",
        )
    publish = settings.roster.publish
    base = _runtime_base()
    _sweep_leftovers(Path(base or tempfile.gettempdir()))
    runtime = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-", dir=base))
    where = _where(difusor)
    master: SshMaster | None = None
    try:
        if difusor.rsync_daemon:
            connection = [
                "--sockopts=TCP_NODELAY",
                f"--contimeout={max(1, round(publish.connect_timeout_seconds))}",
            ]
        else:
            master = SshMaster(difusor, settings, runtime, where)
            await master.start()
            connection = ["--rsh", master.shell()]
        runner = Runner(
            difusor.name, rsync, _child_env(difusor, settings), publish.request_timeout_seconds
        )
        transport = RsyncTransport(
            where,
            _remote_base(difusor),
            runner,
            runtime,
            connection=connection,
            master=master,
            compression=publish.compression,
            version=version,
        )
        await _probed(transport, difusor, publish.connect_timeout_seconds)
        return transport
    except BaseException:
        if master is not None:
            await master.discard()
        shutil.rmtree(runtime, ignore_errors=True)
        raise


async def _probed(transport: RsyncTransport, difusor: Difusor, timeout: float) -> None:
    try:
        await asyncio.wait_for(transport.probe(), timeout + 1)
    except TimeoutError:
        transport.abort()
        raise ConnectError(
            difusor.name,
            f"No respondió en {timeout:g} s ({difusor.host}:{difusor.port}). Verifique la red y"
            " que el servidor (rsync o SSH) esté en marcha.",
        ) from None

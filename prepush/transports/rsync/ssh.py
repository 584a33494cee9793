"""rsync over SSH: one OpenSSH connection per difusor (ControlMaster), every rsync through it.

The master logs in once (host key, authentication) and every rsync of the publish (with
``--watch``, of the night) opens a session on it instead of a connection of its own. Its
socket lives in the transport's runtime directory. The host key is pinned as for SFTP: a
known_hosts written for the run (or the roster's own file), ``StrictHostKeyChecking=yes``,
nothing else trusted, nothing prompted. A password or a key passphrase reaches ssh through
an askpass program that reads it from the master's environment, never from a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import time
from pathlib import Path

from prepush.exceptions import ConnectError, DifusorError, HostKeyError
from prepush.settings import Difusor, Settings
from prepush.transports.rsync.errors import Where, translate
from prepush.transports.rsync.process import Finished, child, dying_with_parent, kill_group

CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr,"
    "chacha20-poly1305@openssh.com"
)
ASKPASS = """#!/bin/sh
case "$1" in
  *assphrase*) printf '%s\\n' "$PREPUSH_SSH_PASSPHRASE" ;;
  *) printf '%s\\n' "$PREPUSH_SSH_PASSWORD" ;;
esac
"""
POLL_SECONDS = 0.01
CLOSE_SECONDS = 2.0


class SshMaster:
    """The OpenSSH ControlMaster of one difusor, a child of prepush for as long as it lives."""

    def __init__(self, difusor: Difusor, settings: Settings, runtime: Path, where: Where) -> None:
        self.difusor = difusor
        self.settings = settings
        self.runtime = runtime
        self.where = where
        self.socket = runtime / "ssh"
        self.log = runtime / "ssh.log"
        self.process: asyncio.subprocess.Process | None = None
        self.ssh = shutil.which("ssh") or "ssh"
        self._options = self._common_options()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def target(self) -> str:
        return self.difusor.login[0]

    def shell(self) -> str:
        """rsync's ``-e``: ssh through the master, never asking anything, and dead with the
        rsync that started it (so with prepush: no ssh outlives a killed publish)."""
        words = dying_with_parent(
            [
                self.ssh,
                *self._options,
                "-S",
                str(self.socket),
                "-o",
                "ControlMaster=no",
                "-o",
                "BatchMode=yes",
            ]
        )
        return " ".join(shlex.quote(w) for w in words)

    def _common_options(self) -> list[str]:
        difusor = self.difusor
        publish = self.settings.roster.publish
        options = [
            "-F",
            "/dev/null",
            "-p",
            str(difusor.port),
            "-l",
            difusor.login[1],
            *("-o", "StrictHostKeyChecking=yes"),
            *("-o", f"UserKnownHostsFile={self._known_hosts()}"),
            *("-o", "GlobalKnownHostsFile=/dev/null"),
            *("-o", "CheckHostIP=no"),
            *("-o", "UpdateHostKeys=no"),
            *("-o", f"ConnectTimeout={max(1, round(publish.connect_timeout_seconds))}"),
            *("-o", "ServerAliveInterval=10"),
            *("-o", "ServerAliveCountMax=3"),
            *("-o", "IdentitiesOnly=yes"),
            *("-o", "IdentityAgent=none"),
            *("-o", f"Ciphers={CIPHERS}"),
            *("-o", "LogLevel=ERROR"),
        ]
        if difusor.host_key:
            options += ["-o", f"HostKeyAlias={self._alias}"]
        if difusor.key_file:
            options += ["-o", f"IdentityFile={self.settings.resolve(difusor.key_file)}"]
        else:
            options += ["-o", "IdentityFile=none"]
        return options

    @property
    def _alias(self) -> str:
        return f"prepush-{self.difusor.name}"

    def _known_hosts(self) -> Path:
        difusor = self.difusor
        if difusor.host_key:
            path = self.runtime / "known_hosts"
            path.write_text(f"{self._alias} {difusor.host_key}\n")
            return path
        if difusor.known_hosts:
            return self.settings.resolve(difusor.known_hosts)
        raise HostKeyError(
            difusor.name,
            "No hay llave de host fijada en el padrón; prepush nunca confía en la primera"
            " conexión. Obtenga la llave del difusor o use 'prepush check --learn-host-keys'.",
        )

    def _login_options(self) -> tuple[list[str], dict[str, str]]:
        """How the master authenticates: a key without prompts, or through askpass."""
        difusor = self.difusor
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LOGNAME")}
        env["LC_ALL"] = "C"
        password = self.settings.secret(difusor, difusor.password_env)
        passphrase = self.settings.secret(difusor, difusor.passphrase_env)
        if password is None and passphrase is None:
            batch = ["-o", "BatchMode=yes", "-o", "PasswordAuthentication=no"]
            return [*batch, "-o", "KbdInteractiveAuthentication=no"], env
        askpass = self.runtime / "askpass"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o700)
        env |= {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
        env["PREPUSH_SSH_PASSWORD"] = password or ""
        env["PREPUSH_SSH_PASSPHRASE"] = passphrase or ""
        methods = "publickey,password" if password is not None else "publickey"
        login = ["-o", "BatchMode=no", "-o", f"PreferredAuthentications={methods}"]
        return [*login, "-o", "NumberOfPasswordPrompts=1"], env

    async def start(self) -> None:
        """Log in; returns once the master's socket takes sessions. Bounded by the connect
        timeout; on any failure (or cancellation) the master is gone."""
        login, env = self._login_options()
        timeout = self.settings.roster.publish.connect_timeout_seconds
        master = ["-S", str(self.socket), "-M", "-N", "-o", "ControlPersist=no", self.target]
        argv, options = child([self.ssh, *self._options, *login, *master])
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=env,
                **options,
            )
        try:
            await self._until_ready(timeout)
        except BaseException:
            await self.discard()
            raise

    async def _until_ready(self, timeout: float) -> None:
        assert self.process is not None
        started = time.monotonic()
        while not self.socket.exists():
            if self.process.returncode is not None:
                raise self._refused()
            if time.monotonic() - started > timeout:
                raise ConnectError(
                    self.difusor.name,
                    f"No respondió en {timeout:g} s ({self.where.address}). Verifique la red y"
                    " que el servidor SSH esté en marcha.",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.process.wait()), POLL_SECONDS)

    def _refused(self) -> DifusorError:
        assert self.process is not None
        said = self.log.read_text(errors="replace") if self.log.exists() else ""
        finished = Finished(code=self.process.returncode or 255, errors=said.splitlines())
        return translate(self.where, finished, "conectar")

    def abort(self) -> None:
        if self.process is not None:
            kill_group(self.process)

    async def discard(self) -> None:
        """Killed and reaped, briefly: nothing of a master that failed outlives it."""
        self.abort()
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), CLOSE_SECONDS)

    async def close(self) -> None:
        """Ask the master to exit (it closes the connection politely), then make sure."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), CLOSE_SECONDS)
        kill_group(self.process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), CLOSE_SECONDS)

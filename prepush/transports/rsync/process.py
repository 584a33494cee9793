"""Running the rsync binary (and OpenSSH's ssh): every child bounded, killable, and read.

Each invocation is a child process in a process group of its own, killed with its group
when the server stays silent for the request timeout, when the attempt is cancelled (the
deadline) or aborted, and by the kernel when prepush itself dies (``PR_SET_PDEATHSIG``): a
SIGKILLed prepush leaves no rsync or ssh behind. Its output is read as it comes: the lines
of ``--out-format`` and ``--list-only``, the totals of ``--stats``, and its errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prepush.exceptions import ConnectError

PR_SET_PDEATHSIG = 1
READ_CHUNK = 64 * 1024
# What stderr keeps for the error message: rsync says what went wrong in its first lines.
STDERR_LINES = 200
STAT_LINE = re.compile(r"^(Literal|Matched) data: (\d+) bytes$")
UNWIND_SECONDS = 2.0

_LIBC = ctypes.CDLL(None, use_errno=True)
SETPRIV = shutil.which("setpriv")


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: the kernel kills it when prepush dies, even by SIGKILL."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # prepush died between fork and prctl
        os._exit(1)


def child(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """How every child of the rsync transport is started: in a process group of its own
    (killed whole, and deaf to the terminal's Ctrl-C, which prepush handles) and dead with
    prepush. util-linux's setpriv sets the parent-death signal and execs the program, which
    lets Python start it with vfork: a fork of prepush per request costs several times more."""
    if SETPRIV is not None:
        return [SETPRIV, "--pdeathsig", "KILL", "--", *argv], {"start_new_session": True}
    options = {
        "start_new_session": True,
        "preexec_fn": functools.partial(_die_with_parent, os.getpid()),
    }
    return list(argv), options


def dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` for a program another program starts (rsync's ssh, from ``-e``): dead the
    moment its parent dies, when setpriv is there; otherwise it ends on its pipes' EOF."""
    if SETPRIV is not None:
        return [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    return list(argv)


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child and whatever it started (rsync's ssh): never waits."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class _Watch:
    """When a child last showed life: a line of output, or bytes moved through its pipes or
    socket (/proc/PID/io: a big file sends no line until it is done, but its bytes move)."""

    pid: int
    heard: float = field(default_factory=time.monotonic)
    moved: tuple[int, int] | None = None

    def look(self) -> float:
        """Seconds since it last showed life."""
        moved = _io_counters(self.pid)
        if moved is not None and moved != self.moved:
            self.moved = moved
            self.heard = time.monotonic()
        return time.monotonic() - self.heard


def _io_counters(pid: int) -> tuple[int, int] | None:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    counters = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return int(counters.get("rchar", 0)), int(counters.get("wchar", 0))


@dataclass
class Finished:
    """What one rsync said and how it ended."""

    code: int
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    literal: int = 0
    matched: int = 0

    @property
    def text(self) -> str:
        return "\n".join([*self.errors, *self.lines])


class Runner:
    """Runs rsync for one difusor; counts invocations and knows who is silent."""

    def __init__(self, name: str, rsync: str, env: Mapping[str, str], timeout: float) -> None:
        self.name = name
        self.rsync = rsync
        self.env = dict(env)
        self.timeout = timeout
        self.invocations = 0
        self.dead: str | None = None
        self._watched: dict[asyncio.subprocess.Process, _Watch] = {}

    def silence(self) -> float | None:
        if not self._watched:
            return None
        return max(watch.look() for watch in self._watched.values())

    def die(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
        for process in list(self._watched):
            kill_group(process)

    async def run(
        self,
        args: Sequence[str],
        *,
        what: str,
        stdin: bytes | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Finished:
        """Run ``rsync ARGS``; returns however it ended (the caller judges the code).
        Raises ConnectError if the server stays silent for the timeout, or if the
        connection was already given up."""
        if self.dead is not None:
            raise ConnectError(self.name, f"{self.dead} Se reintenta con una conexión nueva.")
        self.invocations += 1
        argv, options = child([self.rsync, *args])
        spawning = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                **options,
            )
        )
        try:
            process = await asyncio.shield(spawning)
        except BaseException:
            await _reap_unwatched(spawning)
            raise
        self._watched[process] = _Watch(process.pid)
        if self.dead is not None:
            kill_group(process)  # given up while it was starting: it ends at once
        finished = Finished(code=-1)
        try:
            await self._follow(process, finished, stdin, on_line, what)
        finally:
            self._watched.pop(process, None)
        if self.dead is not None:
            raise ConnectError(self.name, f"{self.dead} Se reintenta con una conexión nueva.")
        return finished

    async def _follow(
        self,
        process: asyncio.subprocess.Process,
        finished: Finished,
        stdin: bytes | None,
        on_line: Callable[[str], None] | None,
        what: str,
    ) -> None:
        assert process.stdout is not None
        assert process.stderr is not None

        watch = self._watched[process]

        def heard() -> None:
            watch.heard = time.monotonic()

        def out(line: str) -> None:
            match = STAT_LINE.match(line)
            if match:
                if match.group(1) == "Literal":
                    finished.literal = int(match.group(2))
                else:
                    finished.matched = int(match.group(2))
            finished.lines.append(line)
            if on_line is not None:
                on_line(line)

        def err(line: str) -> None:
            if len(finished.errors) < STDERR_LINES:
                finished.errors.append(line)

        tasks = [
            asyncio.create_task(_read_lines(process.stdout, out, heard)),
            asyncio.create_task(_read_lines(process.stderr, err, heard)),
            asyncio.create_task(process.wait()),
        ]
        if stdin is not None:
            tasks.append(asyncio.create_task(_feed(process, stdin)))
        everything = asyncio.gather(*tasks)
        try:
            await self._within_silence(watch, everything, what)
        except BaseException:
            # Silent, cancelled (the deadline) or aborted: kill it, and reap it here, so that
            # nothing of it outlives the attempt.
            kill_group(process)
            everything.cancel()
            with contextlib.suppress(BaseException):
                await everything
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(process.wait(), UNWIND_SECONDS)
            raise
        finished.code = process.returncode if process.returncode is not None else -1

    async def _within_silence(
        self, watch: _Watch, everything: asyncio.Future[Any], what: str
    ) -> None:
        while True:
            quiet = watch.look()
            if quiet >= self.timeout:
                self.die(
                    f"El servidor no respondió en {self.timeout:g} s al {what} (sin respuesta)."
                )
                raise ConnectError(
                    self.name,
                    f"Sin respuesta del servidor en {self.timeout:g} s al {what}; se cortó la"
                    " conexión. Si se repite, revise con el difusor su servidor y su disco.",
                )
            done, _ = await asyncio.wait({everything}, timeout=self.timeout - quiet)
            if done:
                everything.result()
                return


async def _reap_unwatched(spawning: asyncio.Future[asyncio.subprocess.Process]) -> None:
    """Cancelled (the deadline) while the child was starting: once it has started, it is
    killed and reaped before the cancellation goes on; nothing of it outlives the attempt."""
    with contextlib.suppress(BaseException):
        process = await spawning
        kill_group(process)
        await asyncio.wait_for(process.communicate(), UNWIND_SECONDS)


async def _read_lines(
    stream: asyncio.StreamReader, sink: Callable[[str], None], heard: Callable[[], None]
) -> None:
    """Lines as they come (a carriage return ends one too, as rsync's progress does)."""
    pending = b""
    while chunk := await stream.read(READ_CHUNK):
        heard()
        *complete, pending = re.split(rb"[\r\n]", pending + chunk)
        for line in complete:
            if line:
                sink(line.decode("utf-8", "replace"))
    if pending:
        sink(pending.decode("utf-8", "replace"))


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # rsync ended first; its exit code says why
    finally:
        process.stdin.close()

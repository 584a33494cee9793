"""The local run lock: two ``prepush publish`` never run at once on this machine.

A cron line or a timer may start a publish while the previous one is still running. The lock
is an ``flock`` on a file in the working directory, released by the kernel when the process
dies, so a killed run never leaves it behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from prepush.exceptions import LockBusyError

POLL_SECONDS = 0.2


class RunLock:
    """``with`` waits blocking the thread (for callers without an event loop); ``async with``
    waits on the event loop, so open connections keep answering their keepalives meanwhile
    (``publish --watch`` while a manual publish or a rollback runs)."""

    def __init__(
        self,
        path: Path,
        wait_s: float,
        *,
        purpose: str = "prepush",
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """``purpose`` names this run to whoever waits for it (``publish``, ``rollback``);
        ``on_wait`` hears, once, that this one waits, and for whom: what holds the lock, its
        pid and since when."""
        self.path = path
        self.wait_s = wait_s
        self.purpose = purpose
        self.on_wait = on_wait
        self._fd: int | None = None

    def acquire(self) -> None:
        fd, deadline = self._open()
        try:
            while not _locked(fd):
                self._give_up_after(fd, deadline)
                time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self._hold(fd)

    async def acquire_async(self) -> None:
        fd, deadline = self._open()
        try:
            while not _locked(fd):
                self._give_up_after(fd, deadline)
                await asyncio.sleep(POLL_SECONDS)
        except BaseException:  # the deadline, or a cancelled wait (Ctrl-C)
            os.close(fd)
            raise
        self._hold(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _open(self) -> tuple[int, float]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return fd, time.monotonic() + self.wait_s

    def _give_up_after(self, fd: int, deadline: float) -> None:
        if time.monotonic() < deadline:
            if self.on_wait is not None:
                self.on_wait(_holder(fd))
                self.on_wait = None
            return
        holder = _holder(fd)
        raise LockBusyError(
            f"Otra ejecución de prepush está en curso ({holder})."
            f" Se esperó {self.wait_s:g} s. Si el corte sigue pendiente, la próxima"
            " ejecución lo publicará; no hace falta intervenir."
        ) from None

    def _hold(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        since = datetime.now().astimezone().isoformat(timespec="seconds")
        os.pwrite(fd, f"{self.purpose}, pid {os.getpid()}, desde {since}".encode(), 0)
        self._fd = fd

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> RunLock:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it (what it runs, its pid, since when)."""
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "sin datos"


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True

"""The local run lock: two ``prepush publish`` never run at once on this machine.

A cron line or a timer may start a publish while the previous one is still running. The lock
is an ``flock`` on a file in the working directory, released by the kernel when the process
dies, so a killed run never leaves it behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from prepush.exceptions import LockBusyError

POLL_SECONDS = 0.2


class RunLock:
    def __init__(self, path: Path, wait_s: float) -> None:
        self.path = path
        self.wait_s = wait_s
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LockBusyError(
                        f"Otra ejecución de prepush está en curso ({holder or 'sin datos'})."
                        f" Se esperó {self.wait_s:g} s. Si el corte sigue pendiente, la próxima"
                        " ejecución lo publicará; no hace falta intervenir."
                    ) from None
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} desde {datetime.now(UTC).isoformat()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

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

"""The transport interface: what the publisher needs from one connection to one difusor.

The publisher knows only this interface, so other transports (rsync over SSH, S3 +
CloudFront) can come without touching it. Paths are relative POSIX paths inside the
difusor's remote directory; a transport never lets one escape it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Capabilities:
    """What the server offers; decides the atomic flip and the cheap paths."""

    posix_rename: bool
    hardlink: bool
    fsync: bool
    statvfs: bool
    limits: bool
    copy_data: bool = False

    @property
    def atomic_flip(self) -> bool:
        return self.posix_rename


@dataclass(frozen=True)
class SpaceInfo:
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Delta:
    """A file the difusor already holds that shares the new file's first ``prefix`` and
    last ``suffix`` bytes: the server copies those, only the bytes between are sent."""

    base: str
    base_size: int
    prefix: int
    suffix: int


@dataclass(frozen=True, slots=True)
class Upload:
    """One file to send: from a local file or from memory."""

    path: str
    size: int
    local: str | None = None
    data: bytes | None = None
    # The path may already exist with other content: write a temporary name and rename it
    # over the old one, so a reader sees the old file or the new one, never a mix.
    replace: bool = False
    # Where the server supports copy-data, build the file from this one it already holds.
    delta: Delta | None = None


class Transport(Protocol):
    """One open connection to one difusor."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def requests(self) -> int:
        """Requests sent to the server so far (each costs a round trip and CPU)."""
        ...

    @property
    def bytes_sent(self) -> int:
        """File payload bytes written so far."""
        ...

    @property
    def bytes_reused(self) -> int:
        """Bytes the server copied from files it already held, instead of receiving them."""
        ...

    @property
    def alive(self) -> bool:
        """The connection is still open and usable for another publish."""
        ...

    async def read_file(self, path: str) -> bytes | None:
        """The whole file, or None when it does not exist."""
        ...

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` (and its directory) with ``data`` unless it exists; False if it does."""
        ...

    async def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` (created or truncated), durably where the server can."""
        ...

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        reader: Callable[[str], bytes] | None = None,
    ) -> None:
        """Send many files with ``width`` in flight; the first failure is raised.

        ``reader`` reads a local file whole (a cache shared by the difusores of a run).
        """
        ...

    async def replace(self, path: str, data: bytes) -> None:
        """Make ``path`` hold ``data`` at once: readers see the old or the new, never a mix."""
        ...

    async def rename_over(self, source: str, target: str) -> None:
        """Move ``source`` onto ``target``, atomically where the server allows it."""
        ...

    async def link_many(self, links: Sequence[tuple[str, str]], width: int) -> None:
        """Hard-link each (existing source, new target) on the server."""
        ...

    async def remove(self, path: str) -> None:
        """Remove a file; a file already gone is not an error."""
        ...

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        """Remove files; files already gone are not an error. The first failure is raised."""
        ...

    async def make_dirs(self, paths: list[str]) -> None:
        """Create directories (parents listed before children); existing ones are fine."""
        ...

    async def is_symlink(self, path: str) -> bool: ...

    async def mtime(self, path: str) -> datetime: ...

    async def space(self) -> SpaceInfo | None: ...

    async def close(self) -> None: ...

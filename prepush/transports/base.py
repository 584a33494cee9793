"""The transport interface: what the publish protocol needs from one connection to a difusor.

The protocol (:mod:`prepush.publish.protocol`) knows only this interface, so SFTP, rsync and
S3 difusores share one protocol and its guarantees. Every call is bounded: a transport is
built with a request timeout and raises a :class:`prepush.exceptions.DifusorError` when the
server does not answer in time (the connection is then dead and never reused), and
:meth:`Transport.abort` tears the connection down at once, without waiting on the network,
which is what a deadline does. Paths are relative POSIX paths inside the difusor's remote
directory; a transport never lets one escape it.

A transport with something in front of its server may also offer ``async cdn_findings() ->
list[tuple[status, detail]]`` ('prepush check' asks for it by name): how that cache treats
json/main.json (the S3 transport, for CloudFront).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prepush.delivery.contract import FRESH, Contract, SourceMismatch, verified_bytes
from prepush.exceptions import LocalFileError, describe_os_error
from prepush.package import StatKey

TEMP_SUFFIX = ".prepush-tmp"


@dataclass(frozen=True)
class Capabilities:
    """What the server offers: decides the atomic flip and the cheap paths."""

    # Replacing a file is one atomic step (posix-rename, an S3 PUT, rsync's own rename).
    atomic_replace: bool
    # The server can make a file from one it holds: hard links, or a server-side copy.
    links: bool = False
    # The server can copy byte ranges between its files (SFTP copy-data).
    copy_ranges: bool = False
    # Writes can be made durable before the flip (fsync).
    durable: bool = False
    # The server says how much space is free.
    space: bool = False
    # The protocol's own names for what it offers, for 'prepush check'.
    features: tuple[str, ...] = ()

    @property
    def atomic_flip(self) -> bool:
        return self.atomic_replace


@dataclass(frozen=True)
class SpaceInfo:
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class RemoteStat:
    size: int
    mtime: datetime
    is_dir: bool = False
    is_link: bool = False


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
    """One file to put on the difusor: from a local file, from memory, or from a file the
    server already holds (``link_from``). Its :class:`Contract` says what the path means on
    the difusor now (served? mutable? verify what is there?); ``sha256`` is what its bytes
    must hash to. A transport maps both to its mechanics and decides nothing else."""

    path: str
    size: int
    sha256: str
    local: str | None = None
    data: bytes | None = None
    contract: Contract = FRESH
    # Where the server can copy ranges, build the file from this one it already holds.
    delta: Delta | None = None
    # Where the server can link or copy, make the file from this one it already holds.
    link_from: str | None = None


class LocalFiles(Protocol):
    """The package's files on this machine, as a run reads them (its shared cache)."""

    def read(self, path: str) -> bytes:
        """The whole file, from memory or from disk."""
        ...

    def held(self, path: str) -> bytes | None:
        """The file if it is already in memory (verified when the run read it), else None."""
        ...

    def verified_stat(self, path: str) -> StatKey | None:
        """How the file stood on disk when the run read and verified it, else None."""
        ...


class DiskFiles:
    """:class:`LocalFiles` without a cache: every read goes to disk."""

    def read(self, path: str) -> bytes:
        with open(path, "rb") as stream:
            return stream.read()

    def held(self, path: str) -> bytes | None:
        return None

    def verified_stat(self, path: str) -> StatKey | None:
        return None


def upload_bytes(difusor: str, upload: Upload, files: LocalFiles | None) -> bytes:
    """The bytes an upload names, checked against the manifest's size and sha256 before any
    leaves this machine: nothing altered reaches a difusor, whatever the transport."""
    if upload.data is not None:
        return upload.data
    assert upload.local is not None
    try:
        return verified_bytes(upload.local, upload.size, upload.sha256, files or DiskFiles())
    except OSError as exc:
        raise LocalFileError(
            difusor,
            f"No se pudo leer {upload.path} del paquete: {describe_os_error(exc)}. Es un"
            " problema de esta máquina, no del difusor: revise el paquete con 'prepush"
            " verify-package'.",
        ) from None
    except SourceMismatch:
        raise LocalFileError(
            difusor,
            f"El paquete cambió en el disco después de verificarse ({upload.path}): no"
            " se cambia json/main.json en este difusor. No modifique paquetes/ mientras"
            " se publica; si el paquete se alteró, vuelva a construirlo con 'prepush"
            " build'.",
        ) from None


class Transport(Protocol):
    """One open connection to one difusor. Every method is bounded by the request timeout."""

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

    def silence(self) -> float | None:
        """Seconds since the server last answered while requests wait; None if none wait."""
        ...

    async def read_file(self, path: str) -> bytes | None:
        """The whole file, or None when it does not exist."""
        ...

    async def write_file(self, path: str, data: bytes) -> None:
        """Make ``path`` hold ``data``, durably where the server can, by temporary name and
        rename: a reader (or a cut) never leaves a torn file."""
        ...

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` unless it exists; False if it does."""
        ...

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        """Compare and swap: if ``path`` still holds ``expected``, make it hold ``data`` (or
        remove it when ``data`` is None) and return True; otherwise change nothing."""
        ...

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        """Put many files with ``width`` in flight; the first failure is raised after the
        others settle. ``files`` reads the local files (the run's shared cache)."""
        ...

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        """Remove files; files already gone are not an error. The first failure is raised."""
        ...

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        """Make sure each directory exists as a real directory inside the remote directory
        (created if missing); refuse one that is a symbolic link or not a directory."""
        ...

    async def stat(self, path: str) -> RemoteStat | None:
        """Size and modification time of ``path`` (not following a link), or None."""
        ...

    async def space(self) -> SpaceInfo | None: ...

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        """After the flip: make what caches in front of the server (a CDN) drop ``paths``,
        and wait for it. Returns what the ledger should record, or None when nothing stands
        in front of the server."""
        ...

    def abort(self) -> None:
        """Tear the connection down now; never waits on the network."""
        ...

    async def close(self) -> None:
        """Close politely, within the request timeout."""
        ...


class Counted:
    """The bookkeeping a transport reports of itself (the :class:`Transport` properties): its
    requests, the bytes it sent and reused, whether it is still usable, and how long it has
    been waiting on the server. Transports that make one call per request share it."""

    def __init__(self, capabilities: Capabilities) -> None:
        self._capabilities = capabilities
        self._requests = 0
        self._bytes_sent = 0
        self._bytes_reused = 0
        self._waiting = 0
        self._since = time.monotonic()
        self._dead: str | None = None

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def bytes_sent(self) -> int:
        return self._bytes_sent

    @property
    def bytes_reused(self) -> int:
        return self._bytes_reused

    @property
    def alive(self) -> bool:
        return self._dead is None

    def silence(self) -> float | None:
        return time.monotonic() - self._since if self._waiting else None

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """One request: counted, and the server's silence timed while it is out."""
        self._requests += 1
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self._since = time.monotonic()

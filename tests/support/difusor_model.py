"""An in-memory difusor for the model-based test of the protocol
(tests/publish/test_protocol_model.py).

A :class:`Store` is what the public reads: names pointing at inodes (so a hard link is two
names of one inode, and writing into one changes both). A :class:`ModelTransport` is the
:class:`prepush.transports.base.Transport` interface over it, mapping each file's contract
the way its transport kind does (``sftp``, ``local``, ``rsync``, ``s3``: see
:meth:`ModelTransport.upload`), with every request counted by a :class:`Network` that injects
one fault at the request it names: the connection cut before the request, the process
killed, an error reply, or no reply (the request took effect, its answer never came).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from prepush.delivery.contract import verified_bytes
from prepush.exceptions import ConnectError, RemoteError
from prepush.package import MAIN_JSON, sha256_bytes
from prepush.transports.base import (
    TEMP_SUFFIX,
    Capabilities,
    DiskFiles,
    LocalFiles,
    RemoteStat,
    SpaceInfo,
    Upload,
)

T = TypeVar("T")
Kind = Literal["sftp", "local", "rsync", "s3"]
FaultKind = Literal["cut", "kill", "error", "noreply"]


class Killed(BaseException):
    """prepush was killed (SIGKILL): nothing of it runs after this, nothing is cleaned up."""


@dataclass
class Inode:
    data: bytes


@dataclass
class Store:
    """The difusor's site: every name the public may be served, and the inode behind it."""

    names: dict[str, Inode] = field(default_factory=dict)

    def read(self, path: str) -> bytes | None:
        inode = self.names.get(path)
        return None if inode is None else inode.data

    def served_corte(self) -> str | None:
        data = self.read(MAIN_JSON)
        return None if data is None else str(json.loads(data)["corte"])

    def holds(self, path: str, sha256: str) -> bool:
        data = self.read(path)
        return data is not None and sha256_bytes(data) == sha256


# The steps the protocol announces, after which a fault may be aimed.
STEPS = (
    "lock",
    "state",
    "dirs",
    "upload",
    "pending",
    "flip:index.html",
    "flip:json/main.json",
    "flipped",
    "record",
    "cleanup",
    "done",
)


@dataclass(frozen=True)
class Fault:
    """At the ``at``-th request of the publish, or, with ``after``, at the ``at``-th request
    after the protocol first announces that step."""

    at: int
    kind: FaultKind
    after: str | None = None


class Network:
    """Every request of one publish (over all its connections), numbered from 1; the fault
    fires at its number, once. ``on_fault`` runs when it fires (a newer corte arriving)."""

    def __init__(self, fault: Fault | None, on_fault: Callable[[], None] = lambda: None) -> None:
        self.fault = fault
        self.on_fault = on_fault
        self.count = 0
        self.killed = False
        self.fired = False
        # Where the count stood when the step the fault aims at was announced.
        self.mark: int | None = None if fault is not None and fault.after else 0

    def step(self, name: str) -> None:
        """The protocol announced step ``name`` (its event)."""
        if self.mark is None and self.fault is not None and name == self.fault.after:
            self.mark = self.count

    async def request(self, transport: ModelTransport, apply: Callable[[], T]) -> T:
        await asyncio.sleep(0)  # a request waits on the network: others run meanwhile
        if self.killed:
            raise Killed
        if transport.dead:
            raise ConnectError(transport.name, "La conexión ya se cortó. Se reintenta.")
        self.count += 1
        transport.requests_made += 1
        fault = None
        if self.fault is not None and not self.fired and self.mark is not None:
            fault = self.fault if self.count - self.mark == self.fault.at else None
        if fault is None:
            return apply()
        self.fired = True
        self.on_fault()
        if fault.kind == "kill":
            self.killed = True
            raise Killed
        if fault.kind == "error":
            raise RemoteError(
                transport.name, "El servidor respondió con un error (falla de prueba)."
            )
        transport.dead = True
        if fault.kind == "noreply":
            apply()
            raise ConnectError(transport.name, "El servidor no respondió (falla de prueba).")
        raise ConnectError(transport.name, "La conexión se cortó (falla de prueba).")


CAPABILITIES: dict[Kind, Capabilities] = {
    "sftp": Capabilities(atomic_replace=True, links=True, durable=True),
    "local": Capabilities(atomic_replace=True, links=True, durable=True),
    "rsync": Capabilities(atomic_replace=True),
    "s3": Capabilities(atomic_replace=True, links=True, durable=True),
}


class ModelTransport:
    """One connection to the in-memory difusor, with the mechanics of one transport kind."""

    def __init__(self, kind: Kind, store: Store, network: Network, name: str) -> None:
        self.kind = kind
        self.store = store
        self.network = network
        self.name = name
        self.dead = False
        self.requests_made = 0
        self.sent = 0

    # --- bookkeeping --------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.kind]

    @property
    def requests(self) -> int:
        return self.requests_made

    @property
    def bytes_sent(self) -> int:
        return self.sent

    @property
    def bytes_reused(self) -> int:
        return 0

    @property
    def alive(self) -> bool:
        return not self.dead and not self.network.killed

    def silence(self) -> float | None:
        return None

    async def _request(self, apply: Callable[[], T]) -> T:
        return await self.network.request(self, apply)

    @property
    def names(self) -> dict[str, Inode]:
        return self.store.names

    # --- the interface ----------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        return await self._request(lambda: self.store.read(path))

    async def write_file(self, path: str, data: bytes) -> None:
        """Temporary name and rename (one PUT on S3): atomic."""
        await self._request(lambda: self._new(path, data))

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        def create() -> bool:
            if path in self.names:
                return False
            self._new(path, data)
            return True

        return await self._request(create)

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        def swap() -> bool:
            if self.store.read(path) != expected:
                return False
            if data is None:
                del self.names[path]
            else:
                self._new(path, data)
            return True

        return await self._request(swap)

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        for path in paths:
            await self._request(lambda path=path: self.names.pop(path, None))

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        await self._request(lambda: None)

    async def stat(self, path: str) -> RemoteStat | None:
        def look() -> RemoteStat | None:
            data = self.store.read(path)
            return None if data is None else RemoteStat(len(data), datetime.now(UTC))

        return await self._request(look)

    async def space(self) -> SpaceInfo | None:
        return None

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        return None

    def abort(self) -> None:
        self.dead = True

    async def close(self) -> None:
        self.dead = True

    # --- the files of a corte, by contract ----------------------------------------------------

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        """Each file as its transport puts it:

        - ``sftp``: a path that may be served is written under ``<name>.prepush-tmp``
          (truncated if there) and renamed over; one to verify is created exclusively and,
          if there, read back and kept or replaced; any other is created exclusively, and
          one already there is unlinked first. A link is a hard link (same inode).
        - ``local``: every write goes to a fresh temporary inode renamed over the name;
          one to verify is read back first; a link is a hard link.
        - ``rsync``: every file to a fresh temporary and renamed; ``--checksum`` keeps one
          with the same bytes when a file may be served or is to be verified; no links.
        - ``s3``: one PUT (a new object) per file; one to verify is kept if it holds the
          bytes; a link is a server-side copy.
        """
        for upload in uploads:
            await self._put(upload, files or DiskFiles())
            if on_done is not None:
                on_done(upload)

    async def _put(self, upload: Upload, files: LocalFiles) -> None:
        contract = upload.contract
        if upload.link_from is not None and self.capabilities.links:
            await self._link(upload)
            return
        data = upload.data
        if data is None:
            assert upload.local is not None
            data = verified_bytes(upload.local, upload.size, upload.sha256, files)
        self.sent += len(data)
        if contract.verify or (self.kind == "rsync" and contract.served):
            held = await self._request(lambda: self.store.holds(upload.path, upload.sha256))
            if held:
                return
        if self.kind in ("s3", "rsync", "local"):
            await self._request(lambda: self._new(upload.path, data))
        elif contract.served:
            await self._by_rename(upload.path, data)
        else:
            await self._fresh(upload.path, data)

    async def _by_rename(self, path: str, data: bytes) -> None:
        temp = path + TEMP_SUFFIX

        def write_temp() -> None:
            inode = self.names.get(temp)
            if inode is None:
                self.names[temp] = Inode(data)
            else:
                inode.data = data  # opened with truncate: nobody links a temporary name

        await self._request(write_temp)
        await self._request(lambda: self._rename(temp, path))

    async def _fresh(self, path: str, data: bytes) -> None:
        created = await self._request(lambda: self._create(path, data))
        if not created:
            await self._request(lambda: self.names.pop(path, None))
            if not await self._request(lambda: self._create(path, data)):
                raise RemoteError(self.name, f"No se pudo crear {path}.")

    async def _link(self, upload: Upload) -> None:
        source = upload.link_from or ""
        if self.kind == "s3":
            await self._request(lambda: self._copy(source, upload.path))
            return

        def link() -> bool:
            if upload.path in self.names or source not in self.names:
                return False
            self.names[upload.path] = self.names[source]
            return True

        if await self._request(link):
            return
        if await self._request(lambda: self.store.holds(upload.path, upload.sha256)):
            return
        temp = upload.path + ".prepush-link"
        await self._request(lambda: self.names.pop(temp, None))
        await self._request(lambda: self._hard_link(source, temp))
        await self._request(lambda: self._rename(temp, upload.path))

    # --- what a request does ------------------------------------------------------------------

    def _new(self, path: str, data: bytes) -> None:
        self.names[path] = Inode(data)

    def _create(self, path: str, data: bytes) -> bool:
        if path in self.names:
            return False
        self.names[path] = Inode(data)
        return True

    def _rename(self, source: str, target: str) -> None:
        if source not in self.names:
            raise RemoteError(self.name, f"No existe {source}.")
        self.names[target] = self.names.pop(source)

    def _hard_link(self, source: str, target: str) -> None:
        if source not in self.names or target in self.names:
            raise RemoteError(self.name, f"No se pudo enlazar {target}.")
        self.names[target] = self.names[source]

    def _copy(self, source: str, target: str) -> None:
        data = self.store.read(source)
        if data is None:
            raise RemoteError(self.name, f"No existe {source}.")
        self.names[target] = Inode(data)

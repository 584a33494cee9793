"""Files the difusor can rebuild from files it already holds: send only what is new in them.

Content addressing means a changed distrito is a new object with a new name, so rsync, which
matches files by name, sends all of it. prepush knows which object of the previous corte it
replaces (the same logical name in the previous corte's index) and has both on disk. The
results objects list the actas in publication order and an acta never changes once
published, so the new object is the old one's bytes up to its last acta, the new actas, and
a new tail of totals. The difusor copies the shared ends from the old object (the
``copy-data`` SFTP extension, OpenSSH 9.0 and later) and receives only the middle.

Nothing here is trusted blindly: a base is used only if the difusor's state says it holds it
with the content the previous package has, and the shared ends are measured byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from prepush.exceptions import PackageError
from prepush.package import FileEntry, Package, find_package, sha256_bytes
from prepush.publish.state import RemoteState
from prepush.transports.base import Delta
from prepush.transports.sftp.pump import WHOLE_FILE_MAX

# Below this, the requests a rebuild costs (open and close the base, one copy per end) are
# worth more than the bytes they save: on loopback a byte costs some nanoseconds and a
# request some microseconds; on a difusor's real link, bytes cost far more.
MIN_REUSED = 4096
# An end shorter than this is sent rather than copied: a copy is a request of its own.
MIN_END = 1024
# Rebuilt files are read whole, in memory, as the client sends every file up to this size:
# the JSON objects, never the ZIP.
MAX_SIZE = WHOLE_FILE_MAX
CORTE_DIR = re.compile(r"(?:^|(?<=/))\d{8}_\d{4}(?=/)")


def identity(path: str) -> str:
    """A site path's identity across cortes: vendors put each corte in a directory named
    after it, so ``20240602_2015/json/x.json`` follows ``20240602_2000/json/x.json``."""
    return CORTE_DIR.sub("*", path)


def lineage(package: Package) -> dict[str, str]:
    """Each published file's identity across cortes, by path."""
    logical = package.logical_names()
    return {f.path: logical.get(f.path) or identity(f.path) for f in package.manifest.files}


def shared_ends(old: bytes, new: bytes) -> tuple[int, int]:
    """(prefix, suffix): how many leading and trailing bytes ``new`` shares with ``old``,
    never overlapping in either file."""
    limit = min(len(old), len(new))
    prefix = _matching(old, new, limit)
    suffix = _matching(old[prefix:][::-1], new[prefix:][::-1], limit - prefix)
    return prefix, suffix


def _matching(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common start of ``a`` and ``b``, up to ``limit``: compared in shrinking
    blocks, a few memory comparisons rather than a Python step per byte."""
    matched = 0
    for block in (65536, 4096, 256, 16, 1):
        while (
            matched + block <= limit
            and a[matched : matched + block] == b[matched : matched + block]
        ):
            matched += block
    return matched


class DeltaPlanner:
    """Per publish run and package: the rebuilds each difusor can do, computed once per
    (previous corte) and shared by every difusor at that corte.

    ``published`` are packages this process published before (``--watch``), their verified
    bytes still held: a base found there is neither read nor hashed again."""

    def __init__(self, package: Package, published: Mapping[str, Package] | None = None) -> None:
        self.package = package
        self._published = published or {}
        self._lineage = lineage(package)
        self._previous: dict[str, dict[str, FileEntry] | None] = {}
        self._old: dict[str, Package] = {}
        self._ends: dict[tuple[str, str], tuple[int, int]] = {}

    def deltas(self, state: RemoteState, entries: Iterable[FileEntry]) -> dict[str, Delta]:
        """For each entry the difusor lacks, the base it can be rebuilt from, if any."""
        previous = self._previous_by_identity(state.current)
        if not previous:
            return {}
        found: dict[str, Delta] = {}
        for entry in entries:
            delta = self._delta(entry, previous, state)
            if delta is not None:
                found[entry.path] = delta
        return found

    def _delta(
        self, entry: FileEntry, previous: dict[str, FileEntry], state: RemoteState
    ) -> Delta | None:
        if entry.size > MAX_SIZE:
            return None
        base = previous.get(self._lineage.get(entry.path, ""))
        if base is None or base.size > MAX_SIZE or base.sha256 == entry.sha256:
            return None
        held = state.files.get(base.path)
        if held is None or held.sha256 != base.sha256:
            return None
        prefix, suffix = self._shared_ends(base, entry, state.current or "")
        prefix = prefix if prefix >= MIN_END else 0
        suffix = suffix if suffix >= MIN_END else 0
        if prefix + suffix < MIN_REUSED:
            return None
        return Delta(base.path, base.size, prefix, suffix)

    def _shared_ends(self, base: FileEntry, entry: FileEntry, corte: str) -> tuple[int, int]:
        """Measured on the two packages here; a base that cannot be read (the old package
        damaged or gone) shares nothing, and the file is sent whole."""
        key = (base.sha256, entry.sha256)
        if key not in self._ends:
            try:
                old = self._verified_base(base, corte)
                new = self.package.cache.read(self.package.local_path(entry.path))
            except OSError:
                old = new = None
            self._ends[key] = shared_ends(old, new) if old and new is not None else (0, 0)
        return self._ends[key]

    def _verified_base(self, base: FileEntry, corte: str) -> bytes | None:
        """The base's bytes if they are the signed ones. The difusor copies its own base,
        which the state says is the signed one: a local copy altered since would measure ends
        that do not match."""
        old_package = self._old.get(corte)
        if old_package is not None:
            # Held only if this process verified it (--watch published it); else read below.
            held = old_package.cache.held(old_package.local_path(base.path))
            if held is not None:  # hashed against this same manifest entry when it was read
                return held
        old = self.package.cache.read(f"{self._packages_dir / corte}/{base.path}")
        return old if sha256_bytes(old) == base.sha256 else None

    @property
    def _packages_dir(self) -> Path:
        return self.package.path.parent

    def _previous_by_identity(self, corte: str | None) -> dict[str, FileEntry] | None:
        """The previous corte's files by identity, from its package on this machine."""
        if corte is None or corte == self.package.corte:
            return None
        if corte not in self._previous:
            try:
                old = self._published.get(corte) or find_package(self._packages_dir, corte)
            except (PackageError, OSError):  # not here any more: a full send, no rebuilds
                self._previous[corte] = None
            else:
                self._old[corte] = old
                by_path = {f.path: f for f in old.manifest.files}
                self._previous[corte] = {key: by_path[p] for p, key in lineage(old).items()}
        return self._previous[corte]

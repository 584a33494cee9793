"""One contract per file: what the protocol decided about a path, handed to every transport.

The publish protocol (:mod:`prepush.publish.protocol`) knows what the difusor may be
serving; a transport knows only its mechanics. Between them passes, for every file, one
:class:`Contract` and the sha256 its bytes must have (:class:`prepush.transports.base.Upload`
carries both), and nothing else:

- ``served``: a reader may be served this path now (an entry file, a file replaced under
  its name, any name a lost or damaged state cannot vouch for). It is never written in
  place: temporary name and rename over it (SFTP, local, rsync), or one whole PUT (S3).
- ``mutable``: its content may change under this name across cortes (entry files, the fixed
  paths of a ``--site`` package). Nothing in front of the server may keep it for long: S3
  gives it ``no-cache`` and CloudFront is told to drop it when it changes; an immutable
  name is cached for a year.
- ``verify``: something may already be under this name that the state cannot vouch for:
  an existing copy is kept only if it holds exactly these bytes (read back, listed by
  ETag, or compared by rsync's ``--checksum``); otherwise it is replaced as a served file.

A name that is neither served nor to be verified is one the state says nobody reads: it is
still never truncated in place, because a cut attempt may have left it as a hard link to a
served file (SFTP, local): an existing name is unlinked and created anew, never opened for
writing over.

The bytes that leave must be the ones verified: :func:`verified_bytes` and
:class:`StreamCheck` are the one helper every transport uses for that, whole files and
streamed ones (SFTP's pump, S3's multipart uploads) alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Contract:
    """What a file's path means on the difusor right now (see the module docstring)."""

    served: bool = False
    mutable: bool = False
    verify: bool = False


# The contracts the protocol hands out (a transport never makes one up).
FRESH = Contract()
FRESH_MUTABLE = Contract(mutable=True)
UNVOUCHED = Contract(served=True, verify=True)
UNVOUCHED_MUTABLE = Contract(served=True, verify=True, mutable=True)
REPLACED = Contract(served=True, mutable=True)
ENTRY = Contract(served=True, mutable=True)
# prepush's own files (.prepush/): written by name and rename, never cached.
META = Contract(served=True, mutable=True)


def decide(*, state_vouches: bool, changes_now: bool, entry: bool, fixed_path: bool) -> Contract:
    """The contract of one file of a corte.

    ``state_vouches``: the difusor's state covers every served file, so a name it does not
    list is read by nobody. ``changes_now``: the state says the path holds other content
    (a replace). ``entry``: an entry file (flipped last). ``fixed_path``: the package does
    not name files by their content (``--site``), so any path may change in a later corte.
    """
    if entry:
        return ENTRY
    if changes_now:
        return REPLACED
    if state_vouches:
        return FRESH_MUTABLE if fixed_path else FRESH
    return UNVOUCHED_MUTABLE if fixed_path else UNVOUCHED


class SourceMismatch(Exception):
    """The bytes about to leave are not the ones the manifest names: never sent."""

    def __init__(self, local: str, why: str) -> None:
        super().__init__(f"{local}: {why}")
        self.local = local
        self.why = why


class HeldFiles(Protocol):
    """What :func:`verified_bytes` needs of the run's files (the package's cache)."""

    def read(self, path: str) -> bytes: ...

    def held(self, path: str) -> bytes | None: ...


def verified_bytes(local: str, size: int, sha256: str, files: HeldFiles) -> bytes:
    """The file's bytes, equal to the manifest's: the run's verified copy when it holds one
    (hashed once, when the package was verified), else read and hashed here. Raises
    :class:`SourceMismatch` (and lets the read's ``OSError`` through)."""
    held = files.held(local)
    if held is not None and len(held) == size:
        return held
    data = files.read(local)
    if len(data) != size:
        raise SourceMismatch(local, changed_size(len(data), size))
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SourceMismatch(local, ALTERED)
    return data


ALTERED = "cambió después de verificar el paquete (su sha256 ya no es el del manifiesto firmado)"


def changed_size(found: int, expected: int) -> str:
    return (
        f"mide {found} bytes y el manifiesto dice {expected}: el paquete cambió después de"
        " construirse"
    )


class StreamCheck:
    """The sha256 of a file sent piece by piece (SFTP's streamed writes, S3's parts): every
    piece goes through :meth:`update` before it leaves, and :meth:`confirm` is called before
    the file is made visible (its close and rename, the multipart completion)."""

    __slots__ = ("_expected", "_hasher", "_local", "_seen")

    def __init__(self, local: str, sha256: str) -> None:
        self._local = local
        self._expected = sha256
        self._hasher = hashlib.sha256()
        self._seen = 0

    def update(self, piece: bytes | memoryview) -> None:
        self._hasher.update(piece)
        self._seen += len(piece)

    def confirm(self, size: int) -> None:
        if self._seen != size:
            raise SourceMismatch(self._local, changed_size(self._seen, size))
        if self._hasher.hexdigest() != self._expected:
            raise SourceMismatch(self._local, ALTERED)

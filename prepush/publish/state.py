"""What a difusor holds (``.prepush/state.json``) and the plan to bring it to a corte.

The state is read once per publish: never by listing or stat-ing files. In memory it lists
every file prepush put on the difusor with its sha256 and the cortes that reference it, the
cortes flipped (oldest first), the directories created, and the garbage of the last publish
(files no retained corte uses, removed right after the state was written).

Before the flip, a small ``pending.json`` names the corte's manifest and lists the files this
publish added, so that what is recorded always covers what is on the server, even if we die
right after the flip: a file the public may be reading is never removed or written again.
The pending record is removed last, after the cleanup: a record still naming the current
corte tells the next publish that the cleanup may not have finished.

On the server the state is small: it names each retained corte's manifest by its digest,
and lists only the files the manifests do not explain (an entry file changed by a notice, a
file of an interrupted publish). The files are rebuilt from the manifests of the packages on
this machine, checked against those digests. A corte whose package this machine does not have
(another machine published it) leaves the state incomplete: then nothing is assumed about its
files and nothing is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prepush.package import FileEntry, Manifest, canonical_json

STATE_FORMAT = 3
STATE_PATH = ".prepush/state.json"
PENDING_PATH = ".prepush/pending.json"
LOCK_PATH = ".prepush/lock"
META_DIR = ".prepush"


@dataclass
class RemoteFile:
    sha256: str
    size: int
    cortes: list[str]


@dataclass
class RemoteState:
    files: dict[str, RemoteFile] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)
    pending: str | None = None
    atomic: bool | None = None
    # Files known only from a pending record: a retry must record them again.
    pending_files: dict[str, tuple[str, int]] = field(default_factory=dict)
    # The digest of each retained corte's manifest (cortes of an interrupted publish have
    # none: their files are listed one by one).
    manifests: dict[str, str] = field(default_factory=dict)
    # Cortes whose manifest this machine lacks: their files are unknown.
    unresolved: set[str] = field(default_factory=set)
    # Files the last publish found no retained corte using, to be removed after its state.
    garbage: list[str] = field(default_factory=list)
    # A pending record names the current corte: that publish may not have finished its
    # cleanup, so its garbage is removed again.
    unfinished: bool = False
    # The difusor may serve files this state does not list (the state was lost or damaged):
    # a name that looks new may be served, and is verified instead of written over.
    cautious: bool = False
    # A pending record names another corte than the current one: that publish may have
    # flipped any of its entry files, so none is known to hold what the state says.
    entries_unknown: bool = False
    # The manifest digest the pending record names (recorded with that corte if it is
    # retained; "" when the record names none).
    pending_digest: str | None = None
    # Cortes an earlier interrupted publish may have shown, carried by the pending record
    # that replaced its own (corte -> manifest digest): retained like the pending corte.
    earlier: dict[str, str] = field(default_factory=dict)

    def possibly_shown(self) -> dict[str, str]:
        """Cortes other than the current one that a pending record says may have been
        shown (an interrupted publish's, or a rollback's whose state was never written)."""
        found = dict(self.earlier)
        if self.pending is not None:
            found[self.pending] = self.pending_digest or ""
        return found

    @property
    def current(self) -> str | None:
        return self.history[-1] if self.history else None

    @property
    def complete(self) -> bool:
        return not self.unresolved

    @property
    def trusted(self) -> bool:
        """Every file a reader may be served is listed: a name not listed is not served."""
        return self.complete and not self.cautious

    def to_bytes(self, resolve: Resolver) -> bytes:
        expected, expected_dirs, _ = _from_manifests(self.history, self.manifests, resolve)
        return canonical_json(
            {
                "format": STATE_FORMAT,
                "current": self.current,
                "history": self.history,
                "pending": self.pending,
                "atomic": self.atomic,
                "manifests": {c: d for c, d in self.manifests.items() if c in self.history},
                "dirs": sorted(self.dirs - expected_dirs),
                "files": {
                    path: _file_json(f)
                    for path, f in sorted(self.files.items())
                    if not _same(f, expected.get(path))
                },
                "absent": sorted(set(expected) - set(self.files)),
                "garbage": sorted(self.garbage),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, resolve: Resolver) -> RemoteState:
        raw: dict[str, Any] = json.loads(data)
        if raw.get("format") not in (1, 2, STATE_FORMAT):
            raise ValueError(f"formato de estado desconocido: {raw.get('format')!r}")
        history = [str(c) for c in raw["history"]]
        manifests = {str(c): str(d) for c, d in raw.get("manifests", {}).items()}
        files, dirs, unresolved = _from_manifests(history, manifests, resolve)
        for path in raw.get("absent", []):
            files.pop(str(path), None)
        for path, f in raw["files"].items():
            files[str(path)] = RemoteFile(str(f["sha256"]), int(f["size"]), list(f["cortes"]))
        return cls(
            files=files,
            history=history,
            dirs=dirs | {str(d) for d in raw["dirs"]},
            pending=raw.get("pending"),
            atomic=raw.get("atomic"),
            manifests=manifests,
            unresolved=unresolved,
            garbage=[str(p) for p in raw.get("garbage", [])],
        )

    def by_sha(self, mutable: Iterable[str] = ()) -> dict[str, str]:
        """One path holding each content, for server-side links. Never one of ``mutable``
        (the entry files): their content changes at every flip, and a pending record may
        have changed it already, so the state cannot vouch for what a link would copy."""
        skip = set(mutable)
        found: dict[str, str] = {}
        for path, remote in sorted(self.files.items()):
            if path not in skip:
                found.setdefault(remote.sha256, path)
        return found

    def holds_corte(self, manifest: Manifest) -> bool:
        """Every file of the corte is on the server with the right content."""
        return all(
            (held := self.files.get(f.path)) is not None and held.sha256 == f.sha256
            for f in manifest.files
        )


# (corte, manifest digest) -> that corte's manifest, if this machine has it with that digest.
Resolver = Callable[[str, str], Manifest | None]


def no_manifests(_corte: str, _digest: str) -> Manifest | None:
    return None


def _file_json(f: RemoteFile) -> dict[str, Any]:
    return {"sha256": f.sha256, "size": f.size, "cortes": sorted(set(f.cortes))}


def _same(f: RemoteFile, g: RemoteFile | None) -> bool:
    return (
        g is not None
        and f.sha256 == g.sha256
        and f.size == g.size
        and (f.cortes == g.cortes or set(f.cortes) == set(g.cortes))
    )


def _from_manifests(
    history: list[str], manifests: dict[str, str], resolve: Resolver
) -> tuple[dict[str, RemoteFile], set[str], set[str]]:
    """The files and directories the retained cortes put on the server, as record_corte
    recorded them, and the cortes whose manifest is not at hand."""
    files: dict[str, RemoteFile] = {}
    dirs: set[str] = set()
    unresolved: set[str] = set()
    for corte in history:
        digest = manifests.get(corte)
        if digest is None:
            continue
        manifest = resolve(corte, digest)
        if manifest is None:
            unresolved.add(corte)
            continue
        for entry in manifest.files:
            _hold(files, entry.path, entry.sha256, entry.size, corte)
        dirs |= parent_dirs(e.path for e in manifest.files)
    return files, dirs, unresolved


@dataclass(frozen=True)
class Link:
    source: str
    entry: FileEntry


@dataclass(frozen=True)
class Plan:
    """What one difusor lacks for one corte, in the order it will be done."""

    corte: str
    mkdirs: tuple[str, ...]
    uploads: tuple[FileEntry, ...]
    replaces: tuple[FileEntry, ...]
    links: tuple[Link, ...]
    flips: tuple[FileEntry, ...]
    skipped: int
    up_to_date: bool

    @property
    def bytes_to_send(self) -> int:
        return sum(f.size for f in (*self.uploads, *self.replaces, *self.flips))

    @property
    def files_to_send(self) -> int:
        return len(self.uploads) + len(self.replaces) + len(self.flips)

    @property
    def dirs(self) -> list[str]:
        """Every directory the plan writes into, parents first."""
        written = [*self.uploads, *self.replaces, *links_entries(self.links), *self.flips]
        return missing_dirs((f.path for f in written), set())


def plan_corte(
    manifest: Manifest,
    state: RemoteState,
    *,
    hardlink: bool,
    extras: Sequence[FileEntry] = (),
) -> Plan:
    """Compare the package with what the difusor holds. Unchanged content costs nothing.

    ``extras`` are files of the corte outside its manifest (an origin's signed manifest, the
    CSVs a pull extracts): planned, written before the flip and retained like its files."""
    entry_paths = set(manifest.entry_files)
    by_sha = state.by_sha(mutable=entry_paths) if hardlink else {}
    uploads: list[FileEntry] = []
    replaces: list[FileEntry] = []
    links: list[Link] = []
    skipped = 0
    for entry in (*manifest.immutable_files, *extras):
        held = state.files.get(entry.path)
        if held is not None and held.sha256 == entry.sha256:
            skipped += 1
        elif held is not None:
            replaces.append(entry)
        elif entry.sha256 in by_sha:
            links.append(Link(by_sha[entry.sha256], entry))
        else:
            uploads.append(entry)
    flips = tuple(
        e
        for e in manifest.entries_in_flip_order
        if state.entries_unknown
        or (held := state.files.get(e.path)) is None
        or held.sha256 != e.sha256
    )
    skipped += len(entry_paths) - len(flips)
    new_files = [*uploads, *links_entries(links), *flips]
    up_to_date = state.current == manifest.corte and not (uploads or replaces or links or flips)
    return Plan(
        corte=manifest.corte,
        mkdirs=tuple(missing_dirs((f.path for f in new_files), state.dirs)),
        uploads=tuple(uploads),
        replaces=tuple(replaces),
        links=tuple(links),
        flips=flips,
        skipped=skipped,
        up_to_date=up_to_date,
    )


def links_entries(links: Iterable[Link]) -> list[FileEntry]:
    return [link.entry for link in links]


def missing_dirs(paths: Iterable[str], existing: set[str]) -> list[str]:
    """The directories ``paths`` need that are not in ``existing``, parents first."""
    return sorted(parent_dirs(paths) - existing - {META_DIR}, key=lambda d: (d.count("/"), d))


def parent_dirs(paths: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        # Walk up until a directory already seen: its parents are there too.
        while cut > 0 and (parent := path[:cut]) not in found:
            found.add(parent)
            cut = parent.rfind("/")
    return found


def _hold(files: dict[str, RemoteFile], path: str, sha256: str, size: int, corte: str) -> None:
    """Note that ``corte`` uses ``path`` with this content: a new content replaces the old."""
    held = files.get(path)
    if held is not None and held.sha256 == sha256:
        if corte not in held.cortes:
            held.cortes.append(corte)
    else:
        files[path] = RemoteFile(sha256, size, [corte])


def record_corte(state: RemoteState, manifest: Manifest, extras: Sequence[FileEntry] = ()) -> None:
    """Record in ``state`` that ``manifest`` was flipped: all its files (and its extras) are
    on the server. Extras are not explained by the manifest: the state lists them."""
    corte = manifest.corte
    for shown, digest in state.possibly_shown().items():
        if shown != corte and shown not in state.history:
            # An interrupted publish may have flipped it: readers may still hold it, so retain
            # it, with its manifest's digest (unresolvable here, it keeps the state untrusted).
            state.history.append(shown)
            state.manifests[shown] = digest
    for entry in (*manifest.files, *extras):
        _hold(state.files, entry.path, entry.sha256, entry.size, corte)
    state.dirs |= parent_dirs(e.path for e in manifest.files)
    state.history = [c for c in state.history if c != corte] + [corte]
    state.manifests[corte] = manifest.digest
    state.pending = None
    state.pending_digest = None
    state.earlier.clear()
    state.entries_unknown = False
    state.pending_files.clear()


def garbage(
    state: RemoteState, manifest: Manifest, retention: int, keep: Iterable[str] = ()
) -> list[str]:
    """Files no retained corte references; never an entry file nor one of the last two, nor
    one of the cortes in ``keep`` (the one shown before this publish).

    Nothing while the state is not trusted: a corte whose files are unknown may use any of
    them.
    """
    if not state.trusted:
        return []
    retained = set(state.history[-retention:])
    protected = set(state.history[-2:]) | {manifest.corte} | set(keep)
    retained |= set(state.possibly_shown())
    entries = set(manifest.entry_files)
    doomed: list[str] = []
    for path, held in sorted(state.files.items()):
        if path in entries:
            continue
        cortes = set(held.cortes)
        if not cortes & retained and not cortes & protected:
            doomed.append(path)
    return doomed


def forget(
    state: RemoteState, paths: Iterable[str], retention: int, keep: Iterable[str] = ()
) -> None:
    for path in paths:
        state.files.pop(path, None)
    kept = set(state.history[-retention:]) | set(keep)
    retained = [c for c in state.history if c in kept]
    state.history = retained
    state.manifests = {c: d for c, d in state.manifests.items() if c in retained}
    # An unknown corte that leaves retention leaves its files behind: they are not deleted.
    state.unresolved &= set(retained)
    tags = set(retained) | set(state.possibly_shown())
    for held in state.files.values():
        held.cortes = [c for c in held.cortes if c in tags] or held.cortes


def pending_record(
    manifest: Manifest, plan: Plan, state: RemoteState, extras: Sequence[FileEntry] = ()
) -> bytes:
    """The corte about to be flipped and the files this publish added, recorded before the
    flip. Naming the manifest tags every file of the corte, reused ones included.

    It also carries the files an interrupted attempt already recorded as pending, and the
    cortes an earlier record said may have been shown (``earlier``): a record never replaces
    one that names a corte the public may be reading without naming it too.
    """
    listed = {*manifest.by_path(), *(e.path for e in extras)}
    files = {
        path: [sha256, size]
        for path, (sha256, size) in state.pending_files.items()
        if path in listed
    }
    for f in [*plan.uploads, *plan.replaces, *links_entries(plan.links)]:
        files[f.path] = [f.sha256, f.size]
    earlier = {
        corte: digest
        for corte, digest in state.possibly_shown().items()
        if corte not in (manifest.corte, state.current)
    }
    return canonical_json(
        {
            "format": STATE_FORMAT,
            "corte": manifest.corte,
            "manifest": manifest.digest,
            "files": files,
            "earlier": earlier,
        }
    )


def merge_pending(state: RemoteState, data: bytes, resolve: Resolver = no_manifests) -> None:
    """Fold a pending record left by an interrupted publish into ``state``.

    Every file the record lists, and every non-entry file of the manifest it names, was on
    the server when it was written (it is written after the uploads). A record naming
    another corte than the current one may have flipped any entry file, so every entry file
    counts as unknown (flipped again, even to the corte the state names). A manifest this
    machine cannot resolve leaves the state incomplete: the files that corte reused are not
    known. A record cut short is ignored: records are written by temporary name and rename,
    so only an older prepush could leave one, and it was written before that publish's flip.
    """
    try:
        raw = json.loads(data)
        corte = str(raw["corte"])
        files = {str(p): (str(v[0]), int(v[1])) for p, v in raw["files"].items()}
        digest = raw.get("manifest")
        earlier = {str(c): str(d) for c, d in raw.get("earlier", {}).items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return
    for shown, shown_digest in earlier.items():
        _merge_earlier(state, shown, shown_digest, resolve)
    manifest = resolve(corte, str(digest)) if digest else None
    if manifest is not None:
        entries = set(manifest.entry_files)
        for entry in manifest.files:
            if entry.path not in entries:
                files.setdefault(entry.path, (entry.sha256, entry.size))
    elif corte != state.current:
        # Rebuilt, moved, or another machine's: the files it reused are not known, so
        # nothing may be assumed unused (no cleanup, new names verified) while it is retained.
        state.unresolved.add(corte)
    state.pending_files.update(files)
    for path, (sha256, size) in files.items():
        _hold(state.files, path, sha256, size, corte)
    state.dirs |= parent_dirs(files)
    if corte == state.current:
        state.unfinished = True
    else:
        # It may have flipped any entry file before it was cut (none is known), and readers
        # may be on its corte (a rollback's, too: kept whatever the retention).
        state.entries_unknown = True
        state.pending = corte
        state.pending_digest = str(digest) if digest else ""


def _merge_earlier(state: RemoteState, corte: str, digest: str, resolve: Resolver) -> None:
    """A corte an earlier interrupted publish may have shown: its files are kept (or, its
    manifest unknown here, nothing is deleted) and no entry file is known."""
    if corte == state.current:
        return
    manifest = resolve(corte, digest) if digest else None
    if manifest is None:
        state.unresolved.add(corte)
    else:
        for entry in manifest.immutable_files:
            _hold(state.files, entry.path, entry.sha256, entry.size, corte)
        state.dirs |= parent_dirs(e.path for e in manifest.files)
    state.earlier[corte] = digest
    state.entries_unknown = True


def leftover_garbage(state: RemoteState) -> list[str]:
    """Garbage of an unfinished publish that no file recorded since has taken back."""
    if not state.unfinished:
        return []
    return [path for path in state.garbage if path not in state.files]

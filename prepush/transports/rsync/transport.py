"""The rsync transport: the real rsync binary, over SSH or to an rsync daemon.

prepush drives rsync; rsync moves the bytes. Every request of the protocol is one rsync
invocation, given exactly the files it concerns (``--files-from``): prepush knows what the
difusor holds from its state, so rsync never walks or compares a tree. rsync writes each
file under a temporary name in its directory and renames it over the old one when it is
complete, so every file, entry files included, changes atomically; ``json/main.json`` goes
in an invocation of its own, after the corte's files are all there.

Two ways in (roster ``rsync.mode``):

- ``ssh``: ``user@host:remote_dir/`` through one OpenSSH ControlMaster per difusor
  (:mod:`prepush.transports.rsync.ssh`), host key pinned; the difusor may restrict the key
  to its web root with ``rrsync``.
- ``daemon``: ``rsync://user@host:873/module/remote_dir/``, the password in the child's
  ``RSYNC_PASSWORD`` (never on a command line).

prepush's own bookkeeping (``.prepush/``) goes over the same rsync. The lock is the one
file rsync cannot write as a plain file and still be exclusive: it is a symbolic link whose
target carries the lock's bytes. rsync creates a new link with symlink(2), which fails if
the name appeared meanwhile, so of two publishers exactly one creates it; a compare and
swap first takes the old lock away with ``--remove-source-files``, whose unlink only one
taker can win (docs/publishing.md, "Difusores rsync", says what remains).

rsync reads the package's files from the disk itself, after ``publish`` verified them. So each
file of an invocation is looked at after it: one the run's cache verified must still stand
(inode, size, times) as the verification read it; one the cache could not keep must stand as
it did before the invocation and is hashed (once per process). Otherwise the difusor fails
before its flip (and what was sent of it is removed), as a file the SFTP transport hashes as
it reads it would. A path a reader may be served (its contract says so: entry files, replaced
ones) goes from the verified bytes in memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import re
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prepush.exceptions import (
    DifusorError,
    LocalFileError,
    RemoteError,
)
from prepush.package import StatKey, safe_relative_path, sha256_file, stat_key
from prepush.transports.base import (
    Capabilities,
    DiskFiles,
    LocalFiles,
    RemoteStat,
    SpaceInfo,
    Upload,
    upload_bytes,
)
from prepush.transports.rsync.errors import REFUSED_OPTION, Where, said, translate
from prepush.transports.rsync.process import Finished, Runner
from prepush.transports.rsync.ssh import SshMaster

# A lock's bytes, as the target of a symbolic link (base64url, nothing a daemon sanitizes).
LINK_PREFIX = "prepush:"
MUNGED = "/rsyncd-munged/"
# rsync's exit code for files that vanished before it could send them.
VANISHED = 24
MAX_LINK_DATA = 2048
LINK_PIECE = 200
LISTING = re.compile(
    r"^(?P<type>[-dlbcps])[-rwxsStT]{9}\s+(?P<size>\d+)"
    r" (?P<date>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) (?P<name>.+)$"
)
SENT = re.compile(r"^<f\S{9} (?P<name>.+)$")
CREATED_LINK = re.compile(r"^cL\+{9} (?P<name>.+?) -> ")
PERMISSIONS = "--chmod=D755,F644"
# Files of the corte are checked by content (xxh128 or md5, whatever both ends speak): a file
# already there with the same bytes is kept, any other is replaced by temporary name.
BY_CONTENT = "--checksum"
# What a receiver says of the entry --delete-missing-args sends for each missing file when it
# cannot take it: rsync 3.4.3 and the 3.2.7 of Debian 12 with the backports of 3.4.3
# (3.2.7-1+deb12u5 and u6) end with exit code 2 (fixed in rsync 3.4.4).
MISSING_ARG_REFUSED = "invalid file mode 00"


class RsyncTransport:
    """A :class:`prepush.transports.base.Transport` over the rsync binary."""

    def __init__(
        self,
        where: Where,
        base: str,
        runner: Runner,
        runtime: Path,
        *,
        connection: Sequence[str],
        master: SshMaster | None,
        compression: bool,
        version: str,
    ) -> None:
        self._where = where
        self._name = where.name
        self._base = base
        self._runner = runner
        self._runtime = runtime
        self._connection = list(connection)
        self._master = master
        self._compression = compression
        self._version = version
        self._fsync = True
        self._delete_missing_args = True
        self._bytes_sent = 0
        self._bytes_reused = 0
        self._scratch = 0
        self._verified_dirs: set[str] = set()
        # The remote directory's own entries, as the first request found them.
        self._top: dict[str, RemoteStat] = {}
        self._reads = _Coalesced(self._pull)

    # --- bookkeeping ------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        way = "demonio rsync" if self._where.daemon else "rsync por SSH (ControlMaster)"
        features = [way, f"rsync {self._version}", "renombrado atómico de rsync"]
        if self._fsync:
            features.append("fsync")
        if not self._delete_missing_args:
            features.append("borrado con --remove-source-files")
        return Capabilities(atomic_replace=True, durable=self._fsync, features=tuple(features))

    @property
    def requests(self) -> int:
        return self._runner.invocations

    @property
    def bytes_sent(self) -> int:
        return self._bytes_sent

    @property
    def bytes_reused(self) -> int:
        return self._bytes_reused

    @property
    def alive(self) -> bool:
        master_up = self._master is None or self._master.alive
        return self._runner.dead is None and master_up

    def silence(self) -> float | None:
        return self._runner.silence()

    # --- running rsync --------------------------------------------------------------------

    def _common(self) -> list[str]:
        timeout = max(1, round(self._runner.timeout))
        args = ["--no-motd", "--no-human-readable", "-8", f"--timeout={timeout}"]
        if self._compression:
            args.append("--compress")
        return [*args, *self._connection]

    async def _rsync(
        self,
        args: Sequence[str],
        paths: Iterable[str],
        what: str,
        on_line: Callable[[str], None] | None = None,
    ) -> Finished:
        names = [safe_relative_path(p) if p != "." else p for p in paths]
        listing = b"".join(name.encode() + b"\0" for name in names)
        return await self._runner.run(
            [*self._common(), "--from0", "--files-from=-", *args],
            what=what,
            stdin=listing,
            on_line=on_line,
        )

    def _check(self, finished: Finished, what: str) -> Finished:
        if finished.code != 0:
            raise translate(self._where, finished, what)
        return finished

    async def _push(
        self,
        source: Path,
        paths: Sequence[str],
        what: str,
        options: Sequence[str] = (),
        *,
        on_line: Callable[[str], None] | None = None,
        writes: bool = True,
    ) -> Finished:
        """``rsync OPTIONS SOURCE/ REMOTE/`` for ``paths``; fsync where the server can."""
        durable = ["--fsync"] if writes and self._fsync else []
        args = [*options, *durable, f"{source}/", self._base]
        finished = await self._rsync(args, paths, what, on_line)
        if durable and finished.code != 0 and self._refused_fsync(finished):
            return await self._push(source, paths, what, options, on_line=on_line, writes=writes)
        return finished

    def _refused_fsync(self, finished: Finished) -> bool:
        """An rsync older than 3.2.4 (or a daemon that refuses it) has no --fsync: from then
        on this difusor is written without it, as SFTP servers without fsync are."""
        refused = said(finished, "fsync") and said(finished, *REFUSED_OPTION)
        if refused:
            self._fsync = False
        return refused

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        """A scratch directory of this transport's, for one request."""
        self._scratch += 1
        path = self._runtime / f"op{self._scratch}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    # --- listing and reading ----------------------------------------------------------------

    async def _list(self, paths: Sequence[str], what: str) -> dict[str, RemoteStat]:
        """What each path is, without following a link at the path itself and without
        transferring anything. rsync reports a listed path's parents as directories even when
        they are links to one (it follows them): only the paths asked for are answered, and
        a caller that needs a parent's own kind asks for it in another listing."""
        with self._staging() as empty:
            args = ["--list-only", "--dirs", "--links", "--ignore-missing-args"]
            finished = await self._rsync([*args, self._base, f"{empty}/"], paths, what)
        self._check(finished, what)
        found = _listing(finished)
        return {path: found[path] for path in paths if path in found}

    async def _list_root(self, what: str) -> dict[str, RemoteStat]:
        """The remote directory itself ('.') and every entry in it, each as what it is."""
        with self._staging() as empty:
            args = ["--list-only", "--dirs", "--links", self._base, f"{empty}/"]
            finished = await self._runner.run([*self._common(), *args], what=what)
        return _listing(self._check(finished, what))

    async def stat(self, path: str) -> RemoteStat | None:
        return (await self._list([path], f"revisar {path}")).get(path)

    async def read_file(self, path: str) -> bytes | None:
        return await self._reads.read(path)

    async def _pull(self, paths: list[str]) -> dict[str, bytes | None]:
        """Every path at once, into a scratch directory: its bytes, or None if absent."""
        what = f"leer {', '.join(paths)}"
        with self._staging() as local:
            args = ["--links", "--ignore-missing-args", self._base, f"{local}/"]
            self._check(await self._rsync(args, paths, what), what)
            return {path: self._local_content(local / path, path) for path in paths}

    def _local_content(self, local: Path, path: str) -> bytes | None:
        if local.is_symlink():
            target = os.readlink(local).removeprefix(MUNGED)
            if not target.startswith(LINK_PREFIX):
                raise RemoteError(
                    self._name,
                    f"En el directorio remoto, {path} es un enlace simbólico: prepush no lo sigue."
                    " Pida al difusor retirarlo.",
                )
            return base64.urlsafe_b64decode(target.removeprefix(LINK_PREFIX).replace("/", ""))
        if not local.is_file():
            return None
        return local.read_bytes()

    async def space(self) -> SpaceInfo | None:
        return None  # neither rsync nor its daemon says how much space is free

    # --- writing ----------------------------------------------------------------------------

    async def write_file(self, path: str, data: bytes) -> None:
        with self._staging() as source:
            _put_local(source / path, data)
            what = f"escribir {path}"
            finished = await self._push(
                source, [path], what, ["--whole-file", "--ignore-times", PERMISSIONS]
            )
            self._check(finished, what)
        self._bytes_sent += len(data)

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        """The path becomes a symbolic link carrying ``data``: rsync creates a new link with
        symlink(2), which fails if the name is taken by then, so two callers never both win."""
        encoded = base64.urlsafe_b64encode(data).decode()
        # In pieces shorter than a file name may be, so that following the link says "no
        # such file" rather than "file name too long".
        target = LINK_PREFIX + "/".join(
            encoded[i : i + LINK_PIECE] for i in range(0, len(encoded), LINK_PIECE)
        )
        if len(data) > MAX_LINK_DATA:
            raise ValueError(f"{path}: {len(data)} bytes no caben en un enlace simbólico")
        what = f"crear {path}"
        with self._staging() as source:
            link = source / path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
            options = ["--links", "--ignore-existing", "--no-implied-dirs", "--out-format=%i %n%L"]
            finished = await self._push(source, [path], what, options, writes=False)
        if finished.code == 23 and said(finished, "File exists (17)"):
            return False  # another publisher created it between rsync's look and its symlink
        self._check(finished, what)
        created = any(
            (m := CREATED_LINK.match(line)) and m.group("name") == path for line in finished.lines
        )
        if created:
            self._bytes_sent += len(data)
        return created

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        """Compare and swap: take the file away (of two takers only one unlinks it), check
        it is what the caller judged, then create the new one exclusively."""
        held, taken = await self._take(path)
        if not taken:
            return False
        if held != expected:
            if held is not None:
                with contextlib.suppress(RemoteError):
                    await self.create_exclusive(path, held)
            return False
        if data is None:
            return True
        return await self.create_exclusive(path, data)

    async def _take(self, path: str) -> tuple[bytes | None, bool]:
        """Read ``path`` and have the server remove it; whether this call removed it."""
        what = f"tomar {path}"
        with self._staging() as local:
            args = ["--links", "--ignore-missing-args", "--remove-source-files"]
            finished = await self._rsync([*args, self._base, f"{local}/"], [path], what)
            if finished.code == 23 and said(finished, "Skipping sender remove"):
                return None, False  # it changed under us: someone else's now
            self._check(finished, what)
            if said(finished, "sender file already removed"):
                return None, False
            content = self._local_content(local / path, path)
        return content, content is not None

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        """One rsync per source directory (the package's, and a scratch one for bytes in
        memory), each naming exactly its files."""
        if not uploads:
            return
        local = files or DiskFiles()
        uploads = [self._verified_served(u, local) if u.contract.served else u for u in uploads]
        pending = {u.path: u for u in uploads}

        def sent(line: str) -> None:
            match = SENT.match(line)
            upload = pending.pop(match.group("name"), None) if match else None
            if upload is not None and on_done is not None:
                on_done(upload)

        by_content = any(u.contract.served or u.contract.verify for u in uploads)
        for root, group in _by_source(uploads):
            with contextlib.ExitStack() as stack:
                source = root
                if source is None:
                    source = stack.enter_context(self._staging())
                    for upload in group:
                        _put_local(source / upload.path, upload.data or b"")
                before = _source_stats(root, group, local) if root else {}
                await self._send(source, [u.path for u in group], by_content, sent)
                if root is not None:
                    await self._confirm_sources(root, group, before, local)
        if on_done is not None:
            for upload in pending.values():
                on_done(upload)  # unchanged: rsync found the same bytes already there

    async def _send(
        self, source: Path, paths: list[str], by_content: bool, sent: Callable[[str], None]
    ) -> None:
        what = f"enviar {len(paths)} archivos" if len(paths) > 1 else f"enviar {paths[0]}"
        options = ["--no-implied-dirs", PERMISSIONS, "--out-format=%i %n", "--stats"]
        if by_content:
            options.append(BY_CONTENT)
        finished = await self._push(source, paths, what, options, on_line=sent)
        self._check(finished, what)
        self._bytes_sent += finished.literal
        self._bytes_reused += finished.matched

    def _verified_served(self, upload: Upload, files: LocalFiles) -> Upload:
        """A path a reader may be served is public the moment rsync renames it: it goes from
        the bytes the run verified (held in memory, or read and hashed here), never from a
        disk that may have changed since."""
        if upload.local is None:
            return upload
        data = upload_bytes(self._name, upload, files)
        return dataclasses.replace(upload, local=None, data=data)

    async def _confirm_sources(
        self,
        root: Path,
        group: Sequence[Upload],
        before: dict[str, StatKey | None],
        files: LocalFiles,
    ) -> None:
        """Every file rsync read from the package is still the one verified: untouched
        during the invocation and with the manifest's bytes. Otherwise what was sent of it
        is removed (when nothing served can be under its name) and the difusor fails."""
        altered = [u for u in group if not _SOURCES.confirm(root, u, before.get(u.path), files)]
        if not altered:
            return
        with contextlib.suppress(DifusorError):
            await self.remove_many([u.path for u in altered if not u.contract.served], 1)
        names = ", ".join(u.path for u in altered[:3]) + (" ..." if len(altered) > 3 else "")
        raise LocalFileError(
            self._name,
            f"El paquete cambió en el disco después de verificarse ({names}): lo que rsync"
            " leyó ya no es lo que se verificó, así que no se cambia json/main.json en este"
            " difusor. No modifique paquetes/ mientras se publica; si el paquete se alteró,"
            " vuelva a construirlo con 'prepush build'.",
        )

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        """Delete exactly these files: each one missing from an empty scratch tree is a
        deletion request (``--delete-missing-args``); nothing else is looked at. A server that
        cannot take that request (cannot_delete_missing) has them taken away instead."""
        if not paths:
            return
        what = f"borrar {paths[0]}" if len(paths) == 1 else f"borrar {len(paths)} archivos"
        if self._delete_missing_args:
            with self._staging() as empty:
                for parent in {p.rsplit("/", 1)[0] for p in paths if "/" in p}:
                    (empty / parent).mkdir(parents=True, exist_ok=True)
                options = ["--delete-missing-args", "--no-implied-dirs"]
                finished = await self._push(empty, paths, what, options, writes=False)
            if finished.code == 0:
                return
            if not cannot_delete_missing(finished):
                raise translate(self._where, finished, what)
            self._delete_missing_args = False  # from now on, for this difusor
        await self._remove_by_taking(paths, what)

    async def _remove_by_taking(self, paths: Sequence[str], what: str) -> None:
        """Delete by pulling with ``--remove-source-files``: the server unlinks each file
        this side holds up to date. A placeholder of each file's size stands here for it
        (``--size-only``; sparse, read by nobody), so no byte of it crosses the network. A file
        gone meanwhile is as good as removed."""
        found = await self._list(paths, what)
        if not found:
            return
        with self._staging() as local:
            for path, status in found.items():
                if not status.is_link and not status.is_dir:
                    _put_placeholder(local / path, status.size)
            args = ["--links", "--ignore-missing-args", "--remove-source-files", "--size-only"]
            finished = await self._rsync([*args, self._base, f"{local}/"], list(found), what)
        if finished.code not in (0, VANISHED):
            raise translate(self._where, finished, what)

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        """Parents first, one listing per depth (see _list): a directory under a link is
        never looked at, a directory under a missing one is missing too."""
        wanted = set(dirs) - self._verified_dirs
        missing: list[str] = []
        for depth in sorted({d.count("/") for d in wanted}):
            level = sorted(d for d in wanted if d.count("/") == depth)
            unknown = [d for d in level if not _under(d, missing) and d not in self._top]
            found = await self._list(unknown, "revisar los directorios") if unknown else {}
            for directory in level:
                status = self._top.get(directory) or found.get(directory)
                if status is None:
                    missing.append(directory)
                else:
                    _refuse_unless_directory(self._name, directory, status)
        if missing:
            await self._make_dirs(missing)
        self._verified_dirs.update(wanted)

    async def _make_dirs(self, missing: list[str]) -> None:
        what = f"crear {missing[0]}/" if len(missing) == 1 else f"crear {len(missing)} directorios"
        with self._staging() as source:
            for directory in missing:
                (source / directory).mkdir(parents=True, exist_ok=True)
            options = ["--dirs", "--no-implied-dirs", PERMISSIONS]
            self._check(await self._push(source, missing, what, options, writes=False), what)

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        return None  # a web server reading the directory caches nothing of ours

    async def probe(self) -> None:
        """The first request: the remote directory exists (and, for a daemon, the password
        and the module are right). Its entries are listed on the way: the first directories
        of the corte and ``.prepush`` need no listing of their own."""
        found = await self._list_root("conectar")
        if "." not in found:
            raise RemoteError(
                self._name,
                "El directorio remoto no existe en el servidor. Revise remote_dir en el padrón"
                " (y, con rrsync, el directorio de su línea de authorized_keys).",
            )
        self._top = {name: stat for name, stat in found.items() if "/" not in name}

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        self._runner.die("La conexión se cortó por el plazo del corte.")
        if self._master is not None:
            self._master.abort()
        # Nothing local waits on the network: the socket and scratch files go now.
        shutil.rmtree(self._runtime, ignore_errors=True)

    async def close(self) -> None:
        self._runner.die("La conexión ya se cerró.")
        if self._master is not None:
            await self._master.close()
        shutil.rmtree(self._runtime, ignore_errors=True)


def _listing(finished: Finished) -> dict[str, RemoteStat]:
    """``--list-only`` lines: mode, size, date and time (UTC: the child's TZ), name."""
    found: dict[str, RemoteStat] = {}
    for line in finished.lines:
        match = LISTING.match(line)
        if match is None:
            continue
        kind, name = match.group("type"), match.group("name")
        if kind == "l":
            name = name.split(" -> ", 1)[0]
        found[name] = RemoteStat(
            size=int(match.group("size")),
            mtime=datetime.strptime(match.group("date"), "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC),
            is_dir=kind == "d",
            is_link=kind == "l",
        )
    return found


def _under(path: str, parents: Sequence[str]) -> bool:
    return any(path.startswith(parent + "/") for parent in parents)


def _put_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def cannot_delete_missing(finished: Finished) -> bool:
    """The server refuses --delete-missing-args (a daemon's 'refuse options') or cannot read
    what it asks for (MISSING_ARG_REFUSED): its files are removed some other way."""
    refused = said(finished, "delete-missing-args") and said(finished, *REFUSED_OPTION)
    unreadable = finished.code == 2 and said(finished, MISSING_ARG_REFUSED)
    return refused or unreadable


def _put_placeholder(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as placeholder:
        placeholder.truncate(size)


def _stat_key(path: str) -> StatKey | None:
    try:
        return stat_key(os.stat(path))
    except OSError:
        return None


def _source_stats(
    root: Path, group: Sequence[Upload], files: LocalFiles
) -> dict[str, StatKey | None]:
    """How the files stood before rsync read them, for those the run's cache cannot vouch
    for: a verified file still standing as the verification read it was not written since.
    (Plain strings: a --site tree has thousands of files, each stat once per difusor.)"""
    base = str(root)
    return {
        u.path: _stat_key(f"{base}/{u.path}")
        for u in group
        if u.local is None or files.verified_stat(u.local) is None
    }


class _ConfirmedSources:
    """Package files known to hold the manifest's bytes, by their stat: untouched since the
    run verified them (its cache says how they stood), or hashed here once for every difusor
    that receives them."""

    def __init__(self, limit: int = 200_000) -> None:
        self._limit = limit
        self._seen: OrderedDict[tuple[StatKey, str], None] = OrderedDict()

    def confirm(
        self, root: Path, upload: Upload, before: StatKey | None, files: LocalFiles
    ) -> bool:
        path = f"{root}/{upload.path}"
        after = _stat_key(path)
        if after is None:
            return False
        if upload.local is not None and (verified := files.verified_stat(upload.local)):
            # Any write since the verification read it (even one undone) changed its ctime.
            return after == verified
        return after == before and self._hashed(path, after, upload.sha256)

    def _hashed(self, path: str, stat: StatKey, sha256: str) -> bool:
        """The file, standing as ``stat``, holds ``sha256``: hashed once for all difusores."""
        key = (stat, sha256)
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        try:
            if sha256_file(Path(path)) != sha256 or _stat_key(path) != stat:
                return False
        except OSError:
            return False
        self._seen[key] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


_SOURCES = _ConfirmedSources()


def _by_source(uploads: Sequence[Upload]) -> list[tuple[Path | None, list[Upload]]]:
    """Group files by the local directory rsync reads them from: the package's (its path
    minus the file's), or None for bytes in memory (written to a scratch tree)."""
    groups: dict[Path | None, list[Upload]] = {}
    for upload in uploads:
        root: Path | None = None
        if upload.local is not None and upload.local.endswith("/" + upload.path):
            root = Path(upload.local[: -len(upload.path) - 1])
        elif upload.local is not None:
            raise ValueError(f"{upload.local} no termina en {upload.path}")
        groups.setdefault(root, []).append(upload)
    return list(groups.items())


def _refuse_unless_directory(name: str, directory: str, status: RemoteStat) -> None:
    if status.is_link:
        raise RemoteError(
            name,
            f"En el directorio remoto, {directory} es un enlace simbólico: prepush no escribe"
            " fuera del directorio del difusor. Pida al difusor reemplazarlo por un directorio"
            " real.",
        )
    if not status.is_dir:
        raise RemoteError(
            name,
            f"En el directorio remoto, {directory} existe y no es un directorio. Pida al"
            " difusor retirarlo; el sitio necesita ahí un directorio.",
        )


class _Coalesced:
    """Reads asked for in the same turn of the event loop (state and pending record) go in
    one rsync."""

    def __init__(self, fetch: Callable[[list[str]], Awaitable[dict[str, bytes | None]]]) -> None:
        self._fetch = fetch
        self._waiting: dict[str, list[asyncio.Future[bytes | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def read(self, path: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._start)
        self._waiting.setdefault(path, []).append(future)
        return await future

    def _start(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[str, list[asyncio.Future[bytes | None]]]) -> None:
        waiting = [f for futures in batch.values() for f in futures]
        try:
            found = await self._fetch(list(batch))
        except asyncio.CancelledError:
            for future in waiting:
                future.cancel()
            raise
        except Exception as exc:  # every waiter gets it; none is left hanging
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for path, futures in batch.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(path))

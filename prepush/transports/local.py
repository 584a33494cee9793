"""The local transport: a site that is a directory of this machine (where ``prepush pull``
puts each corte for the difusor's own web server).

The publish protocol needs the same guarantees here as on a server, and gets them from the
kernel:

- **Nothing escapes the directory.** Every path is opened one component at a time from the
  directory's descriptor, without following links (``O_NOFOLLOW``): a symbolic link anywhere
  below the root is refused, never followed, whatever it points to.
- **A reader sees the old file or the new one, whole.** A file is written under a temporary
  name beside its own (``<name>.prepush-tmp``), made durable (``fsync``) and renamed over
  its name (``rename(2)`` is atomic); the directories written into are ``fsync``-ed before
  the flip, so a power cut cannot undo a corte whose main.json is already renamed.
- **Exclusive create** (the lock): the file is written whole under a unique temporary name
  and hard-linked to its name, which fails if the name exists: it appears whole or not at
  all.
- **Compare and swap**: under an ``flock`` of its directory, so two runs on this machine
  never swap one file at once. Held by another run past half the request timeout, it is
  the lock being busy (:class:`RemoteLockedError`, retried), not a disk that hung.
- **Links**: a file the directory already holds becomes another name by a hard link (a copy
  if the filesystem refuses one).
- **Space**: ``statvfs``.

Every call runs in a worker thread and is bounded by the request timeout (plus the time its
bytes take at :data:`MIN_WRITE_RATE`): a hung disk (or NFS mount) fails the attempt, and
:meth:`LocalTransport.abort` makes every later call fail at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from prepush.exceptions import (
    ConnectError,
    DifusorError,
    PackageError,
    RemoteError,
    RemoteLockedError,
    describe_os_error,
)
from prepush.package import safe_relative_path
from prepush.transports.base import (
    TEMP_SUFFIX,
    Capabilities,
    Counted,
    LocalFiles,
    RemoteStat,
    SpaceInfo,
    Upload,
    upload_bytes,
)

T = TypeVar("T")

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A slow disk still writes this many bytes per second; a call may take its request timeout
# plus the time its bytes take at this rate.
MIN_WRITE_RATE = 8 * 1024 * 1024
# Files per worker-thread call: a thread hop per file would cost more than a small file.
BATCH_FILES = 32
# Worker threads writing at once (the disk, not the network, is the limit).
MAX_THREADS = 4
CAS_WAIT_STEP = 0.01


class UnsafePath(Exception):
    """A component of a path is a symbolic link or not a directory."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class LocalTransport(Counted):
    """A :class:`prepush.transports.base.Transport` over a directory of this machine."""

    def __init__(self, name: str, root: Path, timeout: float) -> None:
        self._name = name
        self._root = root
        self._timeout = timeout
        try:
            self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RemoteError(
                name,
                f"El directorio de destino {root} no existe. Créalo con los permisos que su"
                " servidor web necesita para leerlo y vuelva a intentar.",
            ) from None
        except OSError as exc:
            raise RemoteError(
                name,
                f"No se pudo abrir el directorio de destino {root}: {describe_os_error(exc)}.",
            ) from None
        super().__init__(
            Capabilities(
                atomic_replace=True,
                links=True,
                durable=True,
                space=True,
                features=("rename-atómico", "enlaces-duros", "fsync", "statvfs"),
            )
        )

    # --- bookkeeping ----------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    async def _run(self, what: str, call: Callable[[], T], size: int = 0) -> T:
        """One call in a worker thread, bounded, its failures said in Spanish."""
        if self._dead is not None:
            raise ConnectError(self._name, f"{self._dead} Se reintenta.")
        timeout = self._timeout + size / MIN_WRITE_RATE
        with self._counted():
            return await self._bounded(what, call, timeout)

    async def _bounded(self, what: str, call: Callable[[], T], timeout: float) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), timeout)
        except TimeoutError:
            self._dead = f"El disco de {self._root} no respondió en {timeout:g} s."
            raise ConnectError(
                self._name,
                f"El disco del destino ({self._root}) no respondió en {timeout:g} s al {what};"
                " el sitio sigue en el corte anterior completo. Revise el disco o el montaje.",
            ) from None
        except UnsafePath as exc:
            raise RemoteError(
                self._name,
                f"{exc.path} en {self._root} es un enlace simbólico o no es un directorio:"
                " prepush nunca escribe ni lee a través de enlaces (podrían sacar los archivos"
                " del sitio). Quítelo y deje ahí un directorio real.",
            ) from None
        except (DifusorError, PackageError):
            raise
        except OSError as exc:
            hint = (
                " Libere espacio o amplíe el disco; el sitio sigue en el corte anterior completo."
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else " El sitio sigue en el corte anterior completo."
            )
            raise RemoteError(
                self._name,
                f"No se pudo {what} en {self._root}: {describe_os_error(exc)}.{hint}",
            ) from None

    # --- paths, one component at a time ---------------------------------------------------

    def _dir_fd(self, directory: str, *, create: bool = False) -> int:
        """A descriptor of ``directory`` ('' is the root), opened without following links;
        missing components are created when ``create``."""
        fd = os.dup(self._root_fd)
        if not directory:
            return fd
        walked: list[str] = []
        for part in directory.split("/"):
            walked.append(part)
            try:
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath("/".join(walked)) from None
                raise
            os.close(fd)
            fd = child
        return fd

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        parent, _, name = safe_relative_path(path).rpartition("/")
        return parent, name

    # --- reads ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        return await self._run(f"leer {path}", lambda: self._read(path))

    def _read(self, path: str) -> bytes | None:
        parent, name = self._split(path)
        try:
            dir_fd = self._dir_fd(parent)
        except FileNotFoundError:
            return None
        try:
            return _read_at(dir_fd, name, path)
        finally:
            os.close(dir_fd)

    async def stat(self, path: str) -> RemoteStat | None:
        return await self._run(f"revisar {path}", lambda: self._stat(path))

    def _stat(self, path: str) -> RemoteStat | None:
        parent, name = self._split(path)
        try:
            dir_fd = self._dir_fd(parent)
        except FileNotFoundError:
            return None
        try:
            found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(dir_fd)
        return RemoteStat(
            size=found.st_size,
            mtime=datetime.fromtimestamp(found.st_mtime, UTC),
            is_dir=stat.S_ISDIR(found.st_mode),
            is_link=stat.S_ISLNK(found.st_mode),
        )

    async def space(self) -> SpaceInfo | None:
        def measure() -> SpaceInfo:
            found = os.statvfs(self._root_fd)
            return SpaceInfo(found.f_bavail * found.f_frsize, found.f_blocks * found.f_frsize)

        return await self._run("medir el espacio libre", measure)

    # --- writes -----------------------------------------------------------------------------

    async def write_file(self, path: str, data: bytes) -> None:
        def write() -> None:
            parent, name = self._split(path)
            dir_fd = self._dir_fd(parent)
            try:
                _replace_at(dir_fd, name, data)
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

        await self._run(f"escribir {path}", write, len(data))

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        def create() -> bool:
            parent, name = self._split(path)
            dir_fd = self._dir_fd(parent)
            temporary = f"{name}{TEMP_SUFFIX}-{uuid.uuid4().hex[:12]}"
            try:
                _write_new(dir_fd, temporary, data)
                try:
                    os.link(
                        temporary,
                        name,
                        src_dir_fd=dir_fd,
                        dst_dir_fd=dir_fd,
                        follow_symlinks=False,
                    )
                except FileExistsError:
                    return False
                finally:
                    _unlink_quietly(dir_fd, temporary)
                os.fsync(dir_fd)
                return True
            finally:
                os.close(dir_fd)

        return await self._run(f"crear {path}", create, len(data))

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        wait = self._timeout / 2
        deadline = time.monotonic() + wait

        def swap() -> bool:
            parent, name = self._split(path)
            dir_fd = self._dir_fd(parent)
            try:
                # Every compare-and-swap of prepush in this directory holds this flock.
                while True:
                    try:
                        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise self._lock_busy(path, wait) from None
                        time.sleep(CAS_WAIT_STEP)
                if _read_at(dir_fd, name, path) != expected:
                    return False
                if data is None:
                    os.unlink(name, dir_fd=dir_fd)
                else:
                    _replace_at(dir_fd, name, data)
                os.fsync(dir_fd)
                return True
            finally:
                os.close(dir_fd)  # releases the flock

        return await self._run(f"reemplazar {path}", swap, len(data or b""))

    def _lock_busy(self, path: str, wait: float) -> RemoteLockedError:
        """Another prepush holds the flock: the lock is busy, as SFTP says it (retried), not
        a disk that did not answer (which would end every later call of this attempt)."""
        return RemoteLockedError(
            self._name,
            f"Otro publicador tiene el candado remoto: está cambiando {path} en {self._root} y"
            f" no terminó en {wait:g} s. Se reintenta.",
        )

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        """Put the files in batches, a few threads at once; then make the directories
        written into durable. The first failure is raised after the others settle."""
        batches = [uploads[i : i + BATCH_FILES] for i in range(0, len(uploads), BATCH_FILES)]
        gate = asyncio.Semaphore(max(1, min(width, MAX_THREADS)))
        touched: set[str] = set()

        async def one(batch: Sequence[Upload]) -> None:
            async with gate:
                size = sum(u.size for u in batch)
                what = f"escribir {batch[0].path}" + (
                    f" y {len(batch) - 1} archivos más" if len(batch) > 1 else ""
                )
                sent, reused = await self._run(what, lambda: self._put_batch(batch, files), size)
            self._bytes_sent += sent
            self._bytes_reused += reused
            touched.update(u.path.rpartition("/")[0] for u in batch)
            if on_done is not None:
                for upload in batch:
                    on_done(upload)

        outcomes = await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        if touched:
            await self._run(
                "asegurar en disco los directorios escritos", lambda: self._sync(touched)
            )

    def _sync(self, directories: set[str]) -> None:
        for directory in sorted(directories):
            dir_fd = self._dir_fd(directory)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _put_batch(self, batch: Sequence[Upload], files: LocalFiles | None) -> tuple[int, int]:
        """(bytes written, bytes linked) of the batch."""
        sent = reused = 0
        for upload in batch:
            written, linked = self._put(upload, files)
            sent += written
            reused += linked
        return sent, reused

    def _put(self, upload: Upload, files: LocalFiles | None) -> tuple[int, int]:
        parent, name = self._split(upload.path)
        dir_fd = self._dir_fd(parent)
        try:
            if upload.contract.verify and _holds(dir_fd, name, upload):
                return 0, 0
            if upload.link_from is not None and self._link(dir_fd, name, upload):
                return 0, upload.size
            data = upload_bytes(self._name, upload, files)
            _replace_at(dir_fd, name, data)
            return len(data), 0
        finally:
            os.close(dir_fd)

    def _link(self, dir_fd: int, name: str, upload: Upload) -> bool:
        """Make ``name`` another link to the file the directory holds at ``link_from``;
        False when the filesystem refuses (the file is then written from the package)."""
        assert upload.link_from is not None
        source_parent, source_name = self._split(upload.link_from)
        source_fd = self._dir_fd(source_parent)
        temporary = f"{name}{TEMP_SUFFIX}"
        try:
            _unlink_quietly(dir_fd, temporary)
            try:
                os.link(
                    source_name,
                    temporary,
                    src_dir_fd=source_fd,
                    dst_dir_fd=dir_fd,
                    follow_symlinks=False,
                )
            except OSError as exc:
                if exc.errno in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.ENOENT):
                    return False
                raise
            found = os.stat(temporary, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(found.st_mode) or found.st_size != upload.size:
                _unlink_quietly(dir_fd, temporary)
                return False
            os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        finally:
            os.close(source_fd)

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        if not paths:
            return

        def remove() -> None:
            for path in paths:
                parent, name = self._split(path)
                try:
                    dir_fd = self._dir_fd(parent)
                except FileNotFoundError:
                    continue
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                finally:
                    os.close(dir_fd)

        what = f"borrar {paths[0]}" + (
            f" y {len(paths) - 1} archivos más" if len(paths) > 1 else ""
        )
        await self._run(what, remove)

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        if not dirs:
            return

        def prepare() -> None:
            for directory in dirs:
                os.close(self._dir_fd(safe_relative_path(directory), create=True))

        await self._run(f"crear los directorios ({', '.join(dirs[:3])})", prepare)

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        return None  # nothing caches in front of a directory

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        if self._dead is None:
            self._dead = "El intento se cortó por el plazo."

    async def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
            self._dead = self._dead or "El destino ya se cerró."


def _read_at(dir_fd: int, name: str, path: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(path)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_new(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` (which must not exist) with ``data``, durably."""
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o644,
        dir_fd=dir_fd,
    )
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        _unlink_quietly(dir_fd, name)
        raise
    os.close(fd)


def _replace_at(dir_fd: int, name: str, data: bytes) -> None:
    """Make ``name`` hold ``data``: written durably under ``<name>.prepush-tmp`` and renamed
    over it. A leftover temporary of a killed run is unlinked, never opened: it may be a
    hard link to a served file (:meth:`LocalTransport._link` makes one there); a link
    there is refused."""
    temporary = f"{name}{TEMP_SUFFIX}"
    _unlink_quietly(dir_fd, temporary)
    try:
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=dir_fd,
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(temporary) from None
        raise
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        _unlink_quietly(dir_fd, temporary)
        raise
    os.close(fd)
    try:
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink_quietly(dir_fd, temporary)
        raise


def _write_all(fd: int, data: bytes) -> None:
    os.fchmod(fd, 0o644)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _holds(dir_fd: int, name: str, upload: Upload) -> bool:
    """The directory already holds these bytes under ``name`` (a regular file, not a link)."""
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(found.st_mode) or found.st_size != upload.size:
        return False
    data = _read_at(dir_fd, name, name)
    return data is not None and hashlib.sha256(data).hexdigest() == upload.sha256


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)

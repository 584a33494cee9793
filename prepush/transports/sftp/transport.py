"""The SFTP transport: one SSH connection per difusor, two SFTP channels on it.

asyncssh does the SSH part (handshake, pinned host key, authentication, ciphers) and, on one
channel, every request but the bulk puts: reads, stat, remove, rename, links, directories,
statvfs. It is protocol code asyncssh already gets right (status checks, short reads, packet
limits, cancellation). The files of a corte go over a second channel through
:mod:`prepush.transports.sftp.pump`, the one place where a hand-written pipeline measured
faster. Every call is bounded by the request timeout; a timeout or a lost connection kills
the connection (it is never reused). Every server error is said in Spanish, with the
difusor's name, what to do, and the SFTP code and message (:mod:`.errors`). Connecting is
:mod:`.connect`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import stat as stat_module
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncssh

from prepush.exceptions import (
    ConnectError,
    DifusorError,
    LocalFileError,
    RemoteError,
)
from prepush.package import safe_relative_path
from prepush.transports.base import (
    TEMP_SUFFIX,
    Capabilities,
    LocalFiles,
    RemoteStat,
    SpaceInfo,
    Upload,
)
from prepush.transports.sftp.errors import translate
from prepush.transports.sftp.pump import (
    COPY_DATA,
    FSYNC,
    FX_CONNECTION_LOST,
    FX_FAILURE,
    FX_NO_CONNECTION,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    HARDLINK,
    LIMITS,
    POSIX_RENAME,
    STATVFS,
    LocalReadError,
    PumpSession,
    Put,
    PutError,
    Request,
    SFTPConnectionLost,
    SFTPError,
    link_request,
    mkdir_request,
    remove_request,
    why_lost,
)

T = TypeVar("T")

OLD_SUFFIX = ".prepush-old"
LINK_SUFFIX = ".prepush-link"
DISK_FULL_MARGIN = 1 << 20
READ_BLOCK = 64 * 1024


class SFTPTransport:
    """A :class:`prepush.transports.base.Transport` over one SSH connection."""

    def __init__(
        self,
        name: str,
        connection: asyncssh.SSHClientConnection,
        pump: PumpSession,
        control: asyncssh.SFTPClient,
        root: str,
        timeout: float,
    ) -> None:
        self._name = name
        self._connection = connection
        self._pump = pump
        self._control = control
        self._timeout = timeout
        self._root = root.rstrip("/") if root not in ("", ".", "/") else root
        # What a relative path gets in front of it on this server.
        self._prefix = "" if self._root in ("", ".") else self._root.rstrip("/") + "/"
        self._control_requests = 0
        self._control_waiting = 0
        self._control_since = time.monotonic()
        self._dead: str | None = None
        self._verified_dirs: set[str] = set()
        self._posix_rename = pump.supports(POSIX_RENAME)
        self._capabilities = self._make_capabilities()

    def _make_capabilities(self) -> Capabilities:
        pump = self._pump
        offered = [
            name.decode().removesuffix("@openssh.com")
            for name in (POSIX_RENAME, HARDLINK, FSYNC, STATVFS, LIMITS, COPY_DATA)
            if pump.supports(name) and (name != POSIX_RENAME or self._posix_rename)
        ]
        return Capabilities(
            atomic_replace=self._posix_rename,
            links=pump.supports(HARDLINK),
            copy_ranges=pump.supports(COPY_DATA),
            durable=pump.supports(FSYNC),
            space=pump.supports(STATVFS),
            features=tuple(offered),
        )

    # --- bookkeeping ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def requests(self) -> int:
        return self._pump.requests + self._control_requests

    @property
    def bytes_sent(self) -> int:
        return self._pump.bytes_written

    @property
    def bytes_reused(self) -> int:
        return self._pump.bytes_copied

    @property
    def alive(self) -> bool:
        return self._dead is None and self._pump.lost() is None and not self._connection.is_closed()

    def silence(self) -> float | None:
        silences = [self._pump.silence()]
        if self._control_waiting:
            silences.append(time.monotonic() - self._control_since)
        waiting = [s for s in silences if s is not None]
        return max(waiting) if waiting else None

    def _path(self, relative: str) -> str:
        if relative == ".":
            return self._root or "."
        safe_relative_path(relative)
        return f"{self._prefix}{relative}"

    def _relative(self, remote: bytes | str) -> str:
        text = remote.decode("utf-8", "replace") if isinstance(remote, bytes) else remote
        return text.removeprefix(self._prefix)

    # --- every control request goes through here: counted, bounded, translated -----------

    async def _call(self, what: str, request: Awaitable[T]) -> T:
        if self._dead is not None:
            if asyncio.iscoroutine(request):
                request.close()
            raise ConnectError(self._name, f"{self._dead} Se reintenta con una conexión nueva.")
        self._control_requests += 1
        if not self._control_waiting:
            self._control_since = time.monotonic()
        self._control_waiting += 1
        try:
            return await asyncio.wait_for(request, self._timeout)
        except TimeoutError:
            self._die(f"El servidor no respondió en {self._timeout:g} s al {what} (sin respuesta).")
            raise ConnectError(
                self._name,
                f"Sin respuesta del servidor en {self._timeout:g} s al {what}; se cortó la"
                " conexión. Si se repite, revise con el difusor su servidor SSH y su disco.",
            ) from None
        except asyncssh.SFTPError as exc:
            if exc.code in (FX_NO_CONNECTION, FX_CONNECTION_LOST):
                self._die(f"Se perdió la conexión ({exc.reason}).")
            raise translate(self._name, _as_sftp_error(exc), what) from exc
        except (asyncssh.Error, OSError, EOFError) as exc:
            self._die(f"Se perdió la conexión ({exc}).")
            raise translate(self._name, SFTPConnectionLost(why_lost(exc)), what) from exc
        finally:
            self._control_waiting -= 1
            self._control_since = time.monotonic()

    def _die(self, why: str) -> None:
        if self._dead is None:
            self._dead = why
        self._connection.abort()

    # --- reads ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        return await self._call(f"leer {path}", self._read(self._path(path)))

    async def _read(self, remote: str) -> bytes | None:
        """The whole file, or None if opening it says it does not exist. A read that ends
        before the size the server gave is an error, never a shorter file."""
        try:
            stream = await self._control.open(remote, "rb", block_size=READ_BLOCK)
        except asyncssh.SFTPNoSuchFile:
            return None
        async with stream:
            size = (await stream.stat()).size or 0
            data = await stream.read(size, 0) if size else b""
        assert isinstance(data, bytes)
        if len(data) != size:
            raise asyncssh.SFTPFailure(f"lectura incompleta: {len(data)} de {size} bytes", "es")
        return data

    async def stat(self, path: str) -> RemoteStat | None:
        try:
            attrs = await self._call(f"revisar {path}", self._control.lstat(self._path(path)))
        except RemoteError as exc:
            if exc.sftp_code == FX_NO_SUCH_FILE:
                return None
            raise
        mode = attrs.permissions or 0
        return RemoteStat(
            size=attrs.size or 0,
            mtime=datetime.fromtimestamp(float(attrs.mtime or 0), UTC),
            is_dir=stat_module.S_ISDIR(mode),
            is_link=stat_module.S_ISLNK(mode),
        )

    async def space(self) -> SpaceInfo | None:
        if not self._capabilities.space:
            return None
        vfs = await self._call("consultar espacio", self._control.statvfs(self._path(".")))
        return SpaceInfo(
            free_bytes=vfs.bavail * vfs.frsize,
            total_bytes=vfs.blocks * vfs.frsize,
        )

    async def _holds(self, path: str, size: int, sha256: str) -> bool:
        """The server holds ``path`` with exactly this content (read back and hashed)."""
        found = await self.stat(path)
        if found is None or found.is_link or found.is_dir or found.size != size:
            return False
        data = await self.read_file(path)
        return data is not None and hashlib.sha256(data).hexdigest() == sha256

    # --- writes through the pump ------------------------------------------------------------

    async def _put(
        self,
        puts: Sequence[Put],
        width: int,
        on_done: Callable[[Put], None] | None = None,
        files: LocalFiles | None = None,
    ) -> list[tuple[Put, SFTPError]]:
        if self._dead is not None:
            raise ConnectError(self._name, f"{self._dead} Se reintenta con una conexión nueva.")
        try:
            return await self._pump.put_many(
                puts,
                width=width,
                fsync=self._capabilities.durable,
                timeout=self._timeout,
                on_done=on_done,
                files=files,
            )
        except PutError as exc:
            raise await self._explain(exc) from exc

    async def _explain(self, exc: PutError) -> DifusorError:
        path = self._relative(exc.put.rename_to or exc.put.path)
        what = {
            "abrir": f"crear {path}",
            "renombrar": f"poner en su lugar {path}",
            "copiar en el servidor": f"reconstruir {path} a partir del archivo anterior",
        }.get(exc.doing, f"escribir {path}")
        error = exc.error
        if isinstance(error, LocalReadError):
            return LocalFileError(
                self._name,
                f"No se pudo leer el archivo del paquete para {path}: {error}. Es un problema de"
                " esta máquina, no del difusor: revise el paquete con 'prepush verify-package'.",
            )
        if isinstance(error, SFTPConnectionLost):
            self._die(str(error))
        translated = translate(self._name, error, what)
        if not isinstance(error, SFTPError) or error.code != FX_FAILURE or self._dead:
            return translated
        return await self._disk_full_or(translated, what, exc.put.size)

    async def _disk_full_or(self, translated: DifusorError, what: str, size: int) -> DifusorError:
        """SFTP v3 servers answer a full disk with a bare 'Failure': ask statvfs why."""
        try:
            space = await self.space()
        except DifusorError:
            return translated
        if space is None or space.free_bytes > max(size, DISK_FULL_MARGIN):
            return translated
        return RemoteError(
            self._name,
            f"Sin espacio en el servidor al {what} (quedan {space.free_bytes} bytes)."
            " El difusor debe liberar espacio (se piden al menos 20 GB libres); su sitio sigue"
            " mostrando el corte anterior completo.",
            sftp_code=FX_FAILURE,
        )

    def _refused_posix_rename(self, exc: RemoteError) -> bool:
        """posix-rename advertised but refused (a proxy, an appliance): from now on this
        server is treated as one without it, and the caller does its work again."""
        cause = exc.__cause__
        refused = (
            self._posix_rename
            and isinstance(cause, PutError)
            and cause.doing == "renombrar"
            and exc.sftp_code == FX_OP_UNSUPPORTED
        )
        if refused:
            self._posix_rename = False
            self._capabilities = self._make_capabilities()
        return refused

    async def write_file(self, path: str, data: bytes) -> None:
        try:
            await self._write_file(path, data)
        except RemoteError as exc:
            if not self._refused_posix_rename(exc):
                raise
            await self._write_file(path, data)

    async def _write_file(self, path: str, data: bytes) -> None:
        temp = self._path(path + TEMP_SUFFIX).encode()
        target = self._path(path).encode()
        if self._posix_rename:
            await self._put([Put(temp, len(data), data=data, rename_to=target)], 1)
            return
        await self._put([Put(temp, len(data), data=data)], 1)
        await self._replace_without_posix(path + TEMP_SUFFIX, path)

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        put = Put(self._path(path).encode(), len(data), data=data, exclusive=True)
        try:
            conflicts = await self._put([put], 1)
        except RemoteError as exc:
            if not (_open_said(exc, FX_NO_SUCH_FILE) and "/" in path):
                raise
            await self.prepare_dirs([path.rsplit("/", 1)[0]])
            conflicts = await self._put([put], 1)
        if not conflicts:
            return True
        if await self.stat(path) is not None:
            return False
        raise await self._not_created(path, conflicts[0][1], len(data))

    async def _not_created(self, path: str, answer: SFTPError, size: int) -> DifusorError:
        """The exclusive open failed, yet nothing is there: the disk, a quota, too many
        open files... (SFTP v3 says only 'Failure')."""
        what = f"crear {path}"
        return await self._disk_full_or(translate(self._name, answer, what), what, size)

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        """Compare and swap by moving ``path`` aside under a name of our own: of two callers
        only one can move it, and what was moved is checked before anything is replaced."""
        aside = f"{path}.{time.monotonic_ns()}{OLD_SUFFIX}"
        try:
            await self._move(path, aside)
        except RemoteError as exc:
            if exc.sftp_code in (FX_NO_SUCH_FILE, FX_FAILURE) and await self.stat(path) is None:
                return False
            raise
        held = await self.read_file(aside)
        if held != expected:
            with contextlib.suppress(RemoteError):
                await self._move(aside, path)
            return False
        swapped = True if data is None else await self.create_exclusive(path, data)
        await self.remove_many([aside], 1)
        return swapped

    async def _move(self, source: str, target: str) -> None:
        """A plain SFTP rename: fails if ``target`` exists (v3 semantics, OpenSSH too)."""
        await self._call(
            f"renombrar {source}",
            self._control.rename(self._path(source), self._path(target)),
        )

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        try:
            await self._upload(uploads, width, on_done, files)
        except RemoteError as exc:
            if not self._refused_posix_rename(exc):
                raise
            await self._upload(uploads, width, on_done, files)

    async def _upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None,
        files: LocalFiles | None,
    ) -> None:
        links = [u for u in uploads if u.link_from is not None and self._capabilities.links]
        linked = {id(u) for u in links}
        by_put: dict[int, Upload] = {}
        puts: list[Put] = []
        renamed_later: list[Upload] = []
        for upload in uploads:
            if id(upload) in linked:
                continue
            put = self._put_of(upload)
            if _by_rename(upload) and not self._posix_rename:
                renamed_later.append(upload)
            by_put[id(put)] = upload
            puts.append(put)
        waiting_rename = {id(u) for u in renamed_later}

        def done(put: Put) -> None:
            upload = by_put[id(put)]
            # A file renamed into place below is done once it is there.
            if on_done is not None and id(upload) not in waiting_rename:
                on_done(upload)

        conflicts = await self._put(puts, width, done, files)
        if conflicts:
            found = [(by_put[id(put)], answer) for put, answer in conflicts]
            await self._settle_conflicts(found, width, on_done, files)
        for upload in renamed_later:
            await self._replace_without_posix(upload.path + TEMP_SUFFIX, upload.path)
            if on_done is not None:
                on_done(upload)
        if links:
            await self._link_many(links, width, on_done, files)

    def _put_of(self, upload: Upload) -> Put:
        """A path that may be served goes under a temporary name and is renamed over; any
        other is created exclusively, never opened over an existing name (a cut attempt may
        have left it as a hard link to a served file)."""
        target = self._path(upload.path).encode()
        if _by_rename(upload):
            temp = self._path(upload.path + TEMP_SUFFIX).encode()
            rename_to = target if self._posix_rename else None
            put = Put(
                temp,
                upload.size,
                upload.data,
                upload.local,
                rename_to=rename_to,
                sha256=upload.sha256,
            )
        else:
            put = Put(
                target,
                upload.size,
                upload.data,
                upload.local,
                exclusive=True,
                sha256=upload.sha256,
            )
        delta = upload.delta
        if delta is None or not self._capabilities.copy_ranges:
            return put
        return Put(
            put.path,
            put.size,
            put.data,
            put.local,
            exclusive=put.exclusive,
            rename_to=put.rename_to,
            base=self._path(delta.base).encode(),
            base_size=delta.base_size,
            prefix=delta.prefix,
            suffix=delta.suffix,
            sha256=upload.sha256,
        )

    async def _settle_conflicts(
        self,
        conflicts: Sequence[tuple[Upload, SFTPError]],
        width: int,
        on_done: Callable[[Upload], None] | None,
        files: LocalFiles | None,
    ) -> None:
        """Names that were already there. One the contract says to verify (a lost state,
        another machine's cortes) is kept if it holds the right bytes, otherwise put in by
        temporary name and rename, checked many at a time. One the state says nobody reads
        (left by a cut attempt) is unlinked and created anew: never written into, since it
        may be a hard link to a served file."""
        verify = [(u, a) for u, a in conflicts if u.contract.verify]
        leftovers = [(u, a) for u, a in conflicts if not u.contract.verify]
        if verify:
            await self._keep_or_replace(verify, width, files)
        if leftovers:
            await self._recreate(leftovers, width, files)
        if on_done is not None:
            for upload, _ in conflicts:
                on_done(upload)

    async def _keep_or_replace(
        self, conflicts: Sequence[tuple[Upload, SFTPError]], width: int, files: LocalFiles | None
    ) -> None:
        gate = asyncio.Semaphore(max(1, width))

        async def holds(upload: Upload, answer: SFTPError) -> bool:
            async with gate:
                if await self.stat(upload.path) is None:
                    raise await self._not_created(upload.path, answer, upload.size)
                return await self._holds(upload.path, upload.size, upload.sha256)

        verdicts = await asyncio.gather(*(holds(u, a) for u, a in conflicts))
        wrong = [u for (u, _), right in zip(conflicts, verdicts, strict=True) if not right]
        if wrong:
            await self.upload([_replaced(u) for u in wrong], width, None, files)

    async def _recreate(
        self, conflicts: Sequence[tuple[Upload, SFTPError]], width: int, files: LocalFiles | None
    ) -> None:
        await self.remove_many([u.path for u, _ in conflicts], width)
        uploads = {id(u): u for u, _ in conflicts}
        puts = {id(u): self._put_of(dataclasses.replace(u, delta=None)) for u, _ in conflicts}
        again = await self._put(list(puts.values()), width, None, files)
        if again:
            put, answer = again[0]
            upload = next(uploads[k] for k, p in puts.items() if p is put)
            raise await self._not_created(upload.path, answer, upload.size)

    async def _link_many(
        self,
        links: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None,
        files: LocalFiles | None,
    ) -> None:
        """Hard-link files the server holds, many at once. A target already there with the
        right content is success (a cut attempt made it); otherwise it is linked under a
        temporary name and renamed over."""
        requests = [
            link_request(self._path(u.link_from or "").encode(), self._path(u.path).encode())
            for u in links
        ]
        outcomes = await self._each(requests, width)
        unlinkable = [u for u, error in zip(links, outcomes, strict=True) if _refused(error)]
        for upload, error in zip(links, outcomes, strict=True):
            if error is not None and not _refused(error):
                await self._settle_link(upload, error)
        if unlinkable:
            await self.upload([_without_link(u) for u in unlinkable], width, None, files)
        if on_done is not None:
            for upload in links:
                on_done(upload)

    async def _settle_link(self, upload: Upload, error: SFTPError | SFTPConnectionLost) -> None:
        if await self.stat(upload.path) is None:
            raise translate(self._name, error, f"enlazar {upload.path}")
        if await self._holds(upload.path, upload.size, upload.sha256):
            return
        assert upload.link_from is not None
        temp = upload.path + LINK_SUFFIX
        await self.remove_many([temp], 1)
        await self._call(
            f"enlazar {upload.path}",
            self._control.link(self._path(upload.link_from), self._path(temp)),
        )
        await self._rename_over(temp, upload.path)

    async def _rename_over(self, source: str, target: str) -> None:
        if self._posix_rename:
            await self._call(
                f"poner en su lugar {target}",
                self._control.posix_rename(self._path(source), self._path(target)),
            )
        else:
            await self._replace_without_posix(source, target)

    async def _replace_without_posix(self, source: str, target: str) -> None:
        """SFTP v3 rename fails when the target exists: move it aside and the new one in,
        back to back, so the target is missing only while the server handles one request.
        Every reply is checked: a refused step restores the old file and fails."""
        old = target + OLD_SUFFIX
        await self.remove_many([old], 1)
        aside, moved = await asyncio.gather(
            self._move(target, old), self._move(source, target), return_exceptions=True
        )
        if isinstance(aside, BaseException) and not isinstance(aside, RemoteError):
            raise aside
        if isinstance(moved, BaseException):
            if aside is None:
                await self._put_back(old, target)
            elif isinstance(aside, RemoteError) and aside.sftp_code != FX_NO_SUCH_FILE:
                raise aside from moved  # the old file would not move: the root cause
            raise moved
        if aside is None:
            with contextlib.suppress(RemoteError):
                await self.remove_many([old], 1)

    async def _put_back(self, old: str, target: str) -> None:
        """The new file could not take the name: the old one goes back, by rename or, if the
        server refuses that too, by writing its bytes to the free name."""
        try:
            await self._move(old, target)
            return
        except RemoteError:
            pass
        data = await self.read_file(old)
        if data is not None and await self.create_exclusive(target, data):
            await self.remove_many([old], 1)

    # --- removal and directories ----------------------------------------------------------

    async def _each(
        self, requests: Sequence[Request], width: int
    ) -> list[SFTPError | SFTPConnectionLost | None]:
        """Many status-only requests through the pump; a lost connection fails them all."""
        if self._dead is not None:
            raise ConnectError(self._name, f"{self._dead} Se reintenta con una conexión nueva.")
        outcomes = await self._pump.each(requests, width=max(1, width), timeout=self._timeout)
        lost = next((o for o in outcomes if isinstance(o, SFTPConnectionLost)), None)
        if lost is not None:
            self._die(str(lost))
            raise translate(self._name, lost, "enviar peticiones")
        return outcomes

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        outcomes = await self._each([remove_request(self._path(p).encode()) for p in paths], width)
        for path, error in zip(paths, outcomes, strict=True):
            if isinstance(error, SFTPError) and error.code != FX_NO_SUCH_FILE:
                raise translate(self._name, error, f"borrar {path}")

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        wanted = sorted(set(dirs) - self._verified_dirs, key=lambda d: (d.count("/"), d))
        if not wanted:
            return
        found = await asyncio.gather(*(self.stat(d) for d in wanted))
        missing: list[str] = []
        for directory, status in zip(wanted, found, strict=True):
            if status is None:
                missing.append(directory)
            else:
                self._refuse_unless_directory(directory, status)
        for level in _by_depth(missing):  # parents first, each level at once
            requests = [mkdir_request(self._path(d).encode()) for d in level]
            outcomes = await self._each(requests, len(level))
            for directory, error in zip(level, outcomes, strict=True):
                if error is not None:
                    await self._made_by_someone_else(directory, error)
        self._verified_dirs.update(wanted)

    async def _made_by_someone_else(
        self, directory: str, error: SFTPError | SFTPConnectionLost
    ) -> None:
        """mkdir failed: fine if a real directory is there now, else the server's error."""
        status = await self.stat(directory)
        if status is None:
            raise translate(self._name, error, f"crear {directory}/")
        self._refuse_unless_directory(directory, status)

    def _refuse_unless_directory(self, directory: str, status: RemoteStat) -> None:
        if status.is_link:
            raise RemoteError(
                self._name,
                f"En el directorio remoto, {directory} es un enlace simbólico: prepush no escribe"
                " fuera del directorio del difusor. Pida al difusor reemplazarlo por un"
                " directorio real.",
            )
        if not status.is_dir:
            raise RemoteError(
                self._name,
                f"En el directorio remoto, {directory} existe y no es un directorio. Pida al"
                " difusor retirarlo; el sitio necesita ahí un directorio.",
            )

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        return None  # a web server reading the directory caches nothing of ours

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        self._die("La conexión se cortó por el plazo del corte.")

    async def close(self) -> None:
        self._pump.close()
        self._control.exit()
        self._connection.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._connection.wait_closed(), self._timeout)
        if not self._connection.is_closed():
            self._connection.abort()


def _refused(error: SFTPError | SFTPConnectionLost | None) -> bool:
    """The server does not do hard links after all: the file is sent instead."""
    return isinstance(error, SFTPError) and error.code == FX_OP_UNSUPPORTED


def _by_depth(paths: Sequence[str]) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in sorted(set(paths)):
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[depth] for depth in sorted(levels)]


def _open_said(exc: DifusorError, code: int) -> bool:
    """The pump's open of the file (not a later write) answered ``code``."""
    cause = exc.__cause__
    return isinstance(cause, PutError) and cause.doing == "abrir" and exc.sftp_code == code


def _without_link(upload: Upload) -> Upload:
    return dataclasses.replace(upload, link_from=None)


def _by_rename(upload: Upload) -> bool:
    """A path a reader may be served now, whose existing copy is not to be kept: written
    under a temporary name and renamed over."""
    return upload.contract.served and not upload.contract.verify


def _replaced(upload: Upload) -> Upload:
    """A name found holding other bytes: replaced as a served file, from the package."""
    return dataclasses.replace(
        upload, contract=dataclasses.replace(upload.contract, verify=False), delta=None
    )


def _as_sftp_error(exc: asyncssh.SFTPError) -> SFTPError:
    return SFTPError(int(exc.code), str(exc.reason or "error"))

"""The SFTP transport, on asyncssh's low-level request API.

One SSH connection per difusor. Each file costs an ``open`` round trip, then its writes,
``fsync`` (where offered) and ``close`` go out back to back without waiting for each other,
so a small file costs two round trips and many files are in flight at once. The high-level
file objects of asyncssh add requests (stat, per-call bookkeeping) that we do not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Awaitable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from asyncssh import FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE, SFTPAttrs

from prepush.exceptions import (
    AuthError,
    ConnectError,
    DifusorError,
    HostKeyError,
    RemoteError,
)
from prepush.package import safe_relative_path
from prepush.settings import Difusor, Settings
from prepush.transport import Capabilities, SpaceInfo

T = TypeVar("T")

PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "chacha20-poly1305@openssh.com",
)
READ_CHUNK = 256 * 1024
LOCAL_WRITES_IN_FLIGHT = 32
TEMP_SUFFIX = ".prepush-tmp"
DISK_FULL_MARGIN = 1 << 20
OLD_SUFFIX = ".prepush-old"


class SFTPTransport:
    """A :class:`prepush.transport.Transport` over one asyncssh SFTP session."""

    def __init__(
        self,
        name: str,
        connection: asyncssh.SSHClientConnection,
        client: asyncssh.SFTPClient,
        root: str,
    ) -> None:
        self._name = name
        self._connection = connection
        self._client = client
        # The request-level API; the file-object API costs extra requests per file.
        self._h = client._handler
        self._root = root.rstrip("/") if root not in ("", ".", "/") else root
        self._requests = 0
        self._bytes_sent = 0
        h = self._h
        self._capabilities = Capabilities(
            posix_rename=h._supports_posix_rename,
            hardlink=h._supports_hardlink,
            fsync=h._supports_fsync,
            statvfs=h._supports_statvfs,
            limits=h._supports_limits,
            max_write=int(h.limits.max_write_len),
        )

    # --- bookkeeping ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def bytes_sent(self) -> int:
        return self._bytes_sent

    def _path(self, relative: str) -> bytes:
        if relative == ".":
            return self._root.encode()
        safe_relative_path(relative)
        if self._root in ("", "."):
            return relative.encode()
        if self._root == "/":
            return f"/{relative}".encode()
        return f"{self._root}/{relative}".encode()

    async def _request(self, awaitable: Awaitable[T], what: str) -> T:
        self._requests += 1
        try:
            return await awaitable
        except (asyncssh.SFTPError, asyncssh.Error, OSError) as exc:
            raise _translate(self._name, exc, what) from exc

    async def _pipelined(self, awaitables: list[Awaitable[Any]], what: str) -> None:
        """Send requests back to back, then wait for every answer; raise the first error."""
        self._requests += len(awaitables)
        outcomes = await asyncio.gather(*awaitables, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncssh.SFTPError | asyncssh.Error | OSError):
                    raise _translate(self._name, outcome, what) from outcome
                raise outcome

    # --- reads ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        try:
            handle = await self._request(
                self._h.open(self._path(path), FXF_READ, SFTPAttrs()), f"abrir {path}"
            )
        except RemoteError as exc:
            if isinstance(exc.__cause__, asyncssh.SFTPNoSuchFile):
                return None
            raise
        chunks: list[bytes] = []
        offset = 0
        try:
            while True:
                try:
                    data, _ = await self._request(
                        self._h.read(handle, offset, READ_CHUNK), f"leer {path}"
                    )
                except RemoteError as exc:
                    if isinstance(exc.__cause__, asyncssh.SFTPEOFError):
                        break
                    raise
                if not data:
                    break
                chunks.append(data)
                offset += len(data)
        finally:
            await self._request(self._h.close(handle), f"cerrar {path}")
        return b"".join(chunks)

    async def is_symlink(self, path: str) -> bool:
        try:
            attrs = await self._request(self._h.lstat(self._path(path), 0), f"revisar {path}")
        except RemoteError as exc:
            if isinstance(exc.__cause__, asyncssh.SFTPNoSuchFile):
                return False
            raise
        return attrs.permissions is not None and stat.S_ISLNK(attrs.permissions)

    async def mtime(self, path: str) -> datetime:
        attrs = await self._request(self._h.stat(self._path(path), 0), f"revisar {path}")
        return datetime.fromtimestamp(float(attrs.mtime or 0), UTC)

    async def space(self) -> SpaceInfo | None:
        if not self._capabilities.statvfs:
            return None
        vfs = await self._request(self._h.statvfs(self._path(".")), "consultar espacio")
        return SpaceInfo(free_bytes=vfs.bavail * vfs.frsize, total_bytes=vfs.blocks * vfs.frsize)

    # --- writes -----------------------------------------------------------------------------

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            handle = await self._open_exclusive(path)
        except RemoteError as exc:
            if not isinstance(exc.__cause__, asyncssh.SFTPNoSuchFile) or "/" not in path:
                raise
            await self.make_dirs([path.rsplit("/", 1)[0]])
            handle = await self._open_exclusive(path)
        if handle is None:
            return False
        await self._send_and_close(handle, path, data)
        return True

    async def _open_exclusive(self, path: str) -> bytes | None:
        try:
            return await self._request(
                self._h.open(self._path(path), FXF_WRITE | FXF_CREAT | FXF_EXCL, SFTPAttrs()),
                f"crear {path}",
            )
        except RemoteError as exc:
            if isinstance(exc.__cause__, asyncssh.SFTPFailure | asyncssh.SFTPFileAlreadyExists):
                return None
            raise

    async def write_file(self, path: str, data: bytes) -> None:
        handle = await self._open_for_write(path)
        await self._send_and_close(handle, path, data)

    async def _open_for_write(self, path: str) -> bytes:
        return await self._request(
            self._h.open(self._path(path), FXF_WRITE | FXF_CREAT | FXF_TRUNC, SFTPAttrs()),
            f"crear {path}",
        )

    async def _send_and_close(self, handle: bytes, path: str, data: bytes) -> None:
        block = self._capabilities.max_write
        view = memoryview(data)
        requests: list[Awaitable[Any]] = [
            self._h.write(handle, offset, bytes(view[offset : offset + block]))
            for offset in range(0, len(data), block)
        ]
        if self._capabilities.fsync:
            requests.append(self._h.fsync(handle))
        requests.append(self._h.close(handle))
        try:
            await self._pipelined(requests, f"escribir {path}")
        except RemoteError as exc:
            raise await self._explain_write_failure(exc, path, len(data)) from exc
        self._bytes_sent += len(data)

    async def _explain_write_failure(self, exc: RemoteError, path: str, size: int) -> RemoteError:
        """SFTP v3 servers answer a full disk with a bare 'Failure': ask statvfs why."""
        if not isinstance(exc.__cause__, asyncssh.SFTPFailure) or not self._capabilities.statvfs:
            return exc
        try:
            space = await self.space()
        except RemoteError:
            return exc
        if space is None or space.free_bytes > max(size, DISK_FULL_MARGIN):
            return exc
        return RemoteError(
            self._name,
            f"Sin espacio en el servidor al escribir {path} (quedan {space.free_bytes} bytes)."
            " El difusor debe liberar espacio (se piden al menos 20 GB libres); su sitio sigue"
            " mostrando el corte anterior completo.",
        )

    async def write_local_file(self, path: str, local: str, size: int) -> None:
        if size <= self._capabilities.max_write * LOCAL_WRITES_IN_FLIGHT:
            await self.write_file(path, Path(local).read_bytes())
            return
        handle = await self._open_for_write(path)
        try:
            await self._stream(handle, path, local)
        except RemoteError as exc:
            with contextlib.suppress(Exception):
                await self._h.close(handle)
            raise await self._explain_write_failure(exc, path, size) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                await self._h.close(handle)
            raise
        closing: list[Awaitable[Any]] = []
        if self._capabilities.fsync:
            closing.append(self._h.fsync(handle))
        closing.append(self._h.close(handle))
        await self._pipelined(closing, f"cerrar {path}")

    async def _stream(self, handle: bytes, path: str, local: str) -> None:
        """Large files: a bounded window of writes in flight, read from disk as we go."""
        window = asyncio.Semaphore(LOCAL_WRITES_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()
        block = self._capabilities.max_write

        async def send(offset: int, chunk: bytes) -> None:
            try:
                await self._request(self._h.write(handle, offset, chunk), f"escribir {path}")
                self._bytes_sent += len(chunk)
            finally:
                window.release()

        try:
            with open(local, "rb") as stream:
                offset = 0
                while chunk := stream.read(block):
                    await window.acquire()
                    task = asyncio.ensure_future(send(offset, chunk))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    offset += len(chunk)
                    if task.done() and task.exception():
                        break
            await _gather_raising(pending)
        finally:
            for task in pending:
                task.cancel()

    async def replace(self, path: str, data: bytes) -> None:
        temp = path + TEMP_SUFFIX
        await self.write_file(temp, data)
        await self.rename_over(temp, path)

    async def rename_over(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if self._capabilities.posix_rename:
            try:
                await self._request(self._h.posix_rename(src, dst), f"reemplazar {target}")
                return
            except RemoteError as exc:
                if not isinstance(exc.__cause__, asyncssh.SFTPOpUnsupported):
                    raise
                # Advertised but refused: treat the server as one without the extension.
                self._capabilities = replace(self._capabilities, posix_rename=False)
        await self._rename_without_posix(source, target)

    async def _rename_without_posix(self, source: str, target: str) -> None:
        """SFTP v3 rename fails when the target exists: move it aside and the new one in,
        back to back, so the target is missing only while the server handles one request."""
        src, dst = self._path(source), self._path(target)
        old = self._path(target + OLD_SUFFIX)
        with contextlib.suppress(RemoteError):
            await self._request(self._h.remove(old), f"borrar {target}{OLD_SUFFIX}")
        self._requests += 2
        aside, moved = await asyncio.gather(
            self._h.rename(dst, old, 0), self._h.rename(src, dst, 0), return_exceptions=True
        )
        if isinstance(moved, BaseException):
            if aside is None:
                with contextlib.suppress(RemoteError):
                    await self._request(self._h.rename(old, dst, 0), f"restaurar {target}")
            raise _translate(self._name, moved, f"reemplazar {target}") from moved
        if aside is None:
            with contextlib.suppress(RemoteError):
                await self._request(self._h.remove(old), f"borrar {target}{OLD_SUFFIX}")

    async def link(self, source: str, target: str) -> None:
        await self._request(
            self._h.link(self._path(source), self._path(target)), f"enlazar {target}"
        )

    async def remove(self, path: str) -> None:
        try:
            await self._request(self._h.remove(self._path(path)), f"borrar {path}")
        except RemoteError as exc:
            if not isinstance(exc.__cause__, asyncssh.SFTPNoSuchFile):
                raise

    async def make_dirs(self, paths: list[str]) -> None:
        for level in _by_depth(paths):
            outcomes = await asyncio.gather(
                *(self._mkdir(p) for p in level), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def _mkdir(self, path: str) -> None:
        try:
            await self._request(self._h.mkdir(self._path(path), SFTPAttrs()), f"crear {path}/")
        except RemoteError as exc:
            # OpenSSH answers a plain failure when the directory exists; anything worse shows
            # up on the first write into it, with a clearer message.
            if not isinstance(exc.__cause__, asyncssh.SFTPFailure | asyncssh.SFTPFileAlreadyExists):
                raise

    async def close(self) -> None:
        self._client.exit()
        self._connection.close()
        with contextlib.suppress(Exception):
            await self._connection.wait_closed()


def _by_depth(paths: Iterable[str]) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in sorted(set(paths)):
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[d] for d in sorted(levels)]


async def _gather_raising(tasks: Iterable[asyncio.Task[None]]) -> None:
    outcomes = await asyncio.gather(*list(tasks), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


# --- connecting -------------------------------------------------------------------------


async def open_sftp(difusor: Difusor, settings: Settings) -> SFTPTransport:
    """Connect to one difusor, verifying its pinned host key. Never prompts."""
    options = _connect_options(difusor, settings)
    timeout = settings.roster.publish.connect_timeout_seconds
    try:
        connection = await asyncio.wait_for(
            asyncssh.connect(difusor.host, difusor.port, **options), timeout
        )
    except TimeoutError:
        raise ConnectError(
            difusor.name,
            f"No respondió en {timeout:g} s ({difusor.host}:{difusor.port}). Verifique la red y"
            " que el servidor SSH esté en marcha.",
        ) from None
    except (asyncssh.Error, OSError) as exc:
        raise _connect_error(difusor, exc) from exc
    try:
        client = await connection.start_sftp_client()
    except (asyncssh.Error, OSError) as exc:
        connection.close()
        raise ConnectError(
            difusor.name,
            f"El servidor aceptó la conexión pero no ofrece SFTP ({exc}). Pida al difusor"
            " habilitar el subsistema sftp.",
        ) from exc
    return SFTPTransport(difusor.name, connection, client, difusor.remote_dir)


def _connect_options(difusor: Difusor, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "username": difusor.user,
        "known_hosts": _known_hosts(difusor, settings),
        "config": None,
        "agent_path": None,
        "encryption_algs": list(PREFERRED_CIPHERS),
        "compression_algs": ["zlib@openssh.com", "none"]
        if settings.roster.publish.compression
        else ["none"],
        "keepalive_interval": 10,
        "keepalive_count_max": 3,
        "client_keys": None,
        "password": None,
        "preferred_auth": "publickey,password",
    }
    if difusor.key_file:
        passphrase = settings.secret(difusor, difusor.passphrase_env)
        try:
            key = asyncssh.read_private_key(settings.resolve(difusor.key_file), passphrase)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise AuthError(
                difusor.name,
                f"No se pudo leer la llave privada {difusor.key_file}: {exc}. Revise key_file y"
                " passphrase_env en el padrón.",
            ) from None
        options["client_keys"] = [key]
    else:
        options["client_keys"] = []
    if difusor.password_env:
        options["password"] = settings.secret(difusor, difusor.password_env)
    return options


def _known_hosts(difusor: Difusor, settings: Settings) -> Any:
    if difusor.host_key:
        return ([asyncssh.import_public_key(difusor.host_key)], [], [])
    if difusor.known_hosts:
        return str(settings.resolve(difusor.known_hosts))
    raise HostKeyError(
        difusor.name,
        "No hay llave de host fijada en el padrón; prepush nunca confía en la primera conexión."
        " Obtenga la llave del difusor o use 'prepush check --learn-host-keys'.",
    )


def _connect_error(difusor: Difusor, exc: BaseException) -> DifusorError:
    where = f"{difusor.host}:{difusor.port}"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyError(
            difusor.name,
            f"La llave de host de {where} NO coincide con la fijada en el padrón. Puede tratarse"
            " de una suplantación del servidor: no se escribió nada. Confirme la llave con el"
            " difusor por un canal seguro antes de cambiar el padrón.",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthError(
            difusor.name,
            f"{where} rechazó las credenciales del usuario {difusor.user!r}. Verifique que la"
            " llave pública esté en authorized_keys del difusor (o la contraseña en la"
            " variable de entorno).",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(
            difusor.name,
            f"{where} rechazó la conexión. Verifique que el servidor SSH esté en marcha y que el"
            " puerto sea el correcto.",
        )
    return ConnectError(
        difusor.name,
        f"No se pudo conectar a {where}: {exc}. Verifique la red y el servidor SSH.",
    )


def _translate(name: str, exc: BaseException, what: str) -> DifusorError:
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded) or (
        isinstance(exc, asyncssh.SFTPError) and "space" in str(exc.reason).lower()
    ):
        return RemoteError(
            name,
            f"Sin espacio en el servidor al {what}. El difusor debe liberar espacio (se piden al"
            " menos 20 GB libres); su sitio sigue mostrando el corte anterior completo.",
        )
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return RemoteError(
            name,
            f"Permiso denegado al {what}. El difusor debe dar permiso de escritura al usuario de"
            " prepush en el directorio remoto.",
        )
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection) or not isinstance(
        exc, asyncssh.SFTPError
    ):
        return ConnectError(
            name,
            f"Se perdió la conexión al {what} ({exc}). Si se repite, revise la red y el"
            " servidor SSH del difusor.",
        )
    return RemoteError(
        name,
        f"El servidor respondió un error al {what}: {exc.reason}. Revise con el difusor los"
        " permisos y el espacio de su directorio remoto.",
    )

"""The SFTP transport: one SSH connection per difusor, with prepush's own SFTP client.

asyncssh does the SSH part (handshake, host key, authentication, ciphers); the SFTP requests
go through :mod:`prepush.transports.sftpclient`, which coalesces them into few SSH packets
and drives uploads with callbacks. A small file costs two round trips (``open``, then its ``write``,
``fsync`` and ``close`` back to back) and many files are in flight at once. Every server
error is said here, in Spanish, with the difusor's name and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncssh

from prepush.exceptions import (
    AuthError,
    ConnectError,
    DifusorError,
    HostKeyError,
    RemoteError,
)
from prepush.package import safe_relative_path
from prepush.settings import Difusor, Settings
from prepush.transports.base import Capabilities, SpaceInfo, Upload
from prepush.transports.sftpclient import (
    COPY_DATA,
    FSYNC,
    FX_CONNECTION_LOST,
    FX_FAILURE,
    FX_FILE_ALREADY_EXISTS,
    FX_NO_CONNECTION,
    FX_NO_SPACE_ON_FILESYSTEM,
    FX_NO_SUCH_FILE,
    FX_OK,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    FX_QUOTA_EXCEEDED,
    HARDLINK,
    LIMITS,
    POSIX_RENAME,
    STATVFS,
    Put,
    PutError,
    SFTPClient,
    SFTPConnectionLost,
    SFTPError,
    start_sftp,
)

PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "chacha20-poly1305@openssh.com",
)
TEMP_SUFFIX = ".prepush-tmp"
OLD_SUFFIX = ".prepush-old"
DISK_FULL_MARGIN = 1 << 20
ALREADY_THERE = (FX_FAILURE, FX_FILE_ALREADY_EXISTS)


class SFTPTransport:
    """A :class:`prepush.transport.Transport` over one SSH connection."""

    def __init__(
        self,
        name: str,
        connection: asyncssh.SSHClientConnection,
        client: SFTPClient,
        root: str,
    ) -> None:
        self._name = name
        self._connection = connection
        self._client = client
        self._root = root.rstrip("/") if root not in ("", ".", "/") else root
        # What a relative path gets in front of it on this server.
        self._prefix = "" if self._root in ("", ".") else self._root.rstrip("/") + "/"
        self._capabilities = Capabilities(
            posix_rename=client.supports(POSIX_RENAME),
            hardlink=client.supports(HARDLINK),
            fsync=client.supports(FSYNC),
            statvfs=client.supports(STATVFS),
            limits=client.supports(LIMITS),
            copy_data=client.supports(COPY_DATA),
        )

    # --- bookkeeping ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def requests(self) -> int:
        return self._client.requests

    @property
    def bytes_sent(self) -> int:
        return self._client.bytes_written

    @property
    def bytes_reused(self) -> int:
        return self._client.bytes_copied

    @property
    def alive(self) -> bool:
        return self._client.lost() is None and not self._connection.is_closed()

    def _path(self, relative: str) -> bytes:
        if relative == ".":
            return self._root.encode()
        safe_relative_path(relative)
        return f"{self._prefix}{relative}".encode()

    def _error(self, exc: BaseException, what: str) -> DifusorError:
        return _translate(self._name, exc, what)

    # --- reads ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        try:
            return await self._client.read_file(self._path(path))
        except SFTPError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                return None
            raise self._error(exc, f"leer {path}") from exc
        except SFTPConnectionLost as exc:
            raise self._error(exc, f"leer {path}") from exc

    async def is_symlink(self, path: str) -> bool:
        try:
            attrs = await self._client.lstat(self._path(path))
        except SFTPError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                return False
            raise self._error(exc, f"revisar {path}") from exc
        except SFTPConnectionLost as exc:
            raise self._error(exc, f"revisar {path}") from exc
        return attrs.permissions is not None and stat.S_ISLNK(attrs.permissions)

    async def mtime(self, path: str) -> datetime:
        try:
            attrs = await self._client.stat(self._path(path))
        except (SFTPError, SFTPConnectionLost) as exc:
            raise self._error(exc, f"revisar {path}") from exc
        return datetime.fromtimestamp(float(attrs.mtime or 0), UTC)

    async def space(self) -> SpaceInfo | None:
        if not self._capabilities.statvfs:
            return None
        try:
            vfs = await self._client.statvfs(self._path("."))
        except (SFTPError, SFTPConnectionLost) as exc:
            raise self._error(exc, "consultar espacio") from exc
        return SpaceInfo(
            free_bytes=vfs.blocks_available * vfs.fragment_size,
            total_bytes=vfs.blocks * vfs.fragment_size,
        )

    # --- writes -----------------------------------------------------------------------------

    async def _put(
        self,
        puts: Sequence[Put],
        width: int,
        on_done: Callable[[Put], None] | None = None,
        reader: Callable[[str], bytes] | None = None,
    ) -> None:
        caps = self._capabilities
        try:
            await self._client.put_many(
                puts,
                width=width,
                fsync=caps.fsync,
                posix_rename=caps.posix_rename,
                on_done=on_done,
                reader=reader,
            )
        except PutError as exc:
            path = self._relative(exc.put.rename_to or exc.put.path)
            what = {
                "abrir": f"crear {path}",
                "renombrar": f"reemplazar {path}",
                "leer": f"leer el archivo local de {path}",
                "copiar en el servidor": f"reconstruir {path} a partir del archivo anterior",
            }.get(exc.doing, f"escribir {path}")
            raise await self._explain_write_failure(exc.error, what, exc.put.size) from exc

    def _relative(self, remote: bytes) -> str:
        return remote.decode("utf-8", "replace").removeprefix(self._prefix)

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        put = Put(self._path(path), len(data), data=data, exclusive=True)
        for first_try in (True, False):
            try:
                await self._client.put_many(
                    [put], width=1, fsync=self._capabilities.fsync, posix_rename=False
                )
                return True
            except PutError as exc:
                error = exc.error
                code = error.code if isinstance(error, SFTPError) and exc.doing == "abrir" else -1
                if code in ALREADY_THERE:
                    return False
                if not (first_try and code == FX_NO_SUCH_FILE and "/" in path):
                    raise self._error(error, f"crear {path}") from exc
            await self.make_dirs([path.rsplit("/", 1)[0]])
        return False

    async def write_file(self, path: str, data: bytes) -> None:
        await self._put([Put(self._path(path), len(data), data=data)], 1)

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        reader: Callable[[str], bytes] | None = None,
    ) -> None:
        atomic = self._capabilities.posix_rename
        by_put: dict[int, Upload] = {}
        completed: set[int] = set()
        puts: list[Put] = []
        later: list[Upload] = []
        for upload in uploads:
            target = self._path(upload.path)
            temp = self._path(upload.path + TEMP_SUFFIX)
            if upload.replace and atomic:
                put = Put(temp, upload.size, upload.data, upload.local, rename_to=target)
            elif upload.replace:
                put = Put(temp, upload.size, upload.data, upload.local)
                later.append(upload)
            else:
                put = Put(target, upload.size, upload.data, upload.local)
            if upload.delta is not None and self._capabilities.copy_data:
                delta = upload.delta
                put = replace(
                    put,
                    base=self._path(delta.base),
                    base_size=delta.base_size,
                    prefix=delta.prefix,
                    suffix=delta.suffix,
                )
            by_put[id(put)] = upload
            puts.append(put)

        def done(put: Put) -> None:
            upload = by_put[id(put)]
            if upload.replace and not atomic:
                return  # done once renamed into place, below
            completed.add(id(upload))
            if on_done is not None:
                on_done(upload)

        try:
            await self._put(puts, width, done, reader)
        except DifusorError as exc:
            if not (atomic and _refused_posix_rename(exc)):
                raise
            # Advertised but refused: treat the server as one without the extension.
            self._capabilities = replace(self._capabilities, posix_rename=False)
            remaining = [u for u in uploads if id(u) not in completed]
            await self.upload(remaining, width, on_done, reader)
            return
        for upload in later:
            await self._rename_without_posix(upload.path + TEMP_SUFFIX, upload.path)
            if on_done is not None:
                on_done(upload)

    async def replace(self, path: str, data: bytes) -> None:
        await self.upload([Upload(path, len(data), data=data, replace=True)], 1)

    async def _explain_write_failure(
        self, exc: SFTPError | SFTPConnectionLost, what: str, size: int
    ) -> DifusorError:
        """SFTP v3 servers answer a full disk with a bare 'Failure': ask statvfs why."""
        translated = self._error(exc, what)
        if not isinstance(exc, SFTPError) or exc.code != FX_FAILURE:
            return translated
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
        )

    async def rename_over(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if self._capabilities.posix_rename:
            try:
                await self._client.posix_rename(src, dst)
                return
            except SFTPError as exc:
                if exc.code != FX_OP_UNSUPPORTED:
                    raise self._error(exc, f"reemplazar {target}") from exc
                # Advertised but refused: treat the server as one without the extension.
                self._capabilities = replace(self._capabilities, posix_rename=False)
            except SFTPConnectionLost as exc:
                raise self._error(exc, f"reemplazar {target}") from exc
        await self._rename_without_posix(source, target)

    async def _rename_without_posix(self, source: str, target: str) -> None:
        """SFTP v3 rename fails when the target exists: move it aside and the new one in,
        back to back, so the target is missing only while the server handles one request."""
        src, dst = self._path(source), self._path(target)
        old = self._path(target + OLD_SUFFIX)
        client = self._client
        with contextlib.suppress(SFTPError):
            await client.remove(old)
        aside, moved = await asyncio.gather(
            client.rename(dst, old), client.rename(src, dst), return_exceptions=True
        )
        if isinstance(moved, BaseException):
            if aside is None:
                with contextlib.suppress(SFTPError, SFTPConnectionLost):
                    await client.rename(old, dst)
            raise self._error(moved, f"reemplazar {target}") from moved
        if aside is None:
            with contextlib.suppress(SFTPError, SFTPConnectionLost):
                await client.remove(old)

    async def link_many(self, links: Sequence[tuple[str, str]], width: int) -> None:
        client = self._client
        requests = [client.link_request(self._path(s), self._path(t)) for s, t in links]
        outcomes = await self._each(requests, width)
        for (_, target), error in zip(links, outcomes, strict=True):
            if error is not None:
                raise self._error(error, f"enlazar {target}") from error

    async def remove(self, path: str) -> None:
        await self.remove_many([path], 1)

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        client = self._client
        outcomes = await self._each([client.remove_request(self._path(p)) for p in paths], width)
        for path, error in zip(paths, outcomes, strict=True):
            if error is not None and error.code != FX_NO_SUCH_FILE:
                raise self._error(error, f"borrar {path}") from error

    async def make_dirs(self, paths: list[str]) -> None:
        client = self._client
        for level in _by_depth(paths):
            requests = [client.mkdir_request(self._path(p)) for p in level]
            for path, error in zip(level, await self._each(requests, len(level)), strict=True):
                # OpenSSH answers a plain failure when the directory exists; anything worse
                # shows up on the first write into it, with a clearer message.
                if error is not None and error.code not in ALREADY_THERE:
                    raise self._error(error, f"crear {path}/") from error

    async def _each(self, requests: list[Any], width: int) -> list[SFTPError | None]:
        outcomes = await self._client.each(requests, width)
        lost = self._client.lost()
        if lost is not None and any(o is not None and o.code != FX_OK for o in outcomes):
            raise self._error(lost, "enviar peticiones") from lost
        return outcomes

    async def close(self) -> None:
        self._client.close()
        self._connection.close()
        with contextlib.suppress(Exception):
            await self._connection.wait_closed()


def _refused_posix_rename(exc: DifusorError) -> bool:
    cause = exc.__cause__
    return (
        isinstance(cause, PutError)
        and cause.doing == "renombrar"
        and isinstance(cause.error, SFTPError)
        and cause.error.code == FX_OP_UNSUPPORTED
    )


def _by_depth(paths: Sequence[str]) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in sorted(set(paths)):
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[d] for d in sorted(levels)]


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
        client = await start_sftp(connection)
    except (asyncssh.Error, OSError, SFTPError, SFTPConnectionLost) as exc:
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
    if isinstance(exc, DifusorError):
        return exc
    lost = not isinstance(exc, SFTPError) or exc.code in (FX_NO_CONNECTION, FX_CONNECTION_LOST)
    if lost:
        return ConnectError(
            name,
            f"Se perdió la conexión al {what} ({exc}). Si se repite, revise la red y el"
            " servidor SSH del difusor.",
        )
    assert isinstance(exc, SFTPError)
    if exc.code in (FX_NO_SPACE_ON_FILESYSTEM, FX_QUOTA_EXCEEDED) or "space" in exc.reason.lower():
        return RemoteError(
            name,
            f"Sin espacio en el servidor al {what}. El difusor debe liberar espacio (se piden al"
            " menos 20 GB libres); su sitio sigue mostrando el corte anterior completo.",
        )
    if exc.code == FX_PERMISSION_DENIED:
        return RemoteError(
            name,
            f"Permiso denegado al {what}. El difusor debe dar permiso de escritura al usuario de"
            " prepush en el directorio remoto.",
        )
    return RemoteError(
        name,
        f"El servidor respondió un error al {what}: {exc.reason}. Revise con el difusor los"
        " permisos y el espacio de su directorio remoto.",
    )

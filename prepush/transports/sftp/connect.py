"""Opening the SSH connection to an SFTP difusor: its pinned host key (never trusted on first
connection), its key or password from the roster, the preferred ciphers, and the two SFTP
channels the transport uses (asyncssh's and the pump's). Never prompts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from prepush.exceptions import AuthError, ConnectError, HostKeyError
from prepush.settings import Difusor, Settings
from prepush.transports.sftp.errors import connect_error
from prepush.transports.sftp.pump import SFTPConnectionLost, SFTPError, start_pump, why_lost
from prepush.transports.sftp.transport import SFTPTransport

PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "chacha20-poly1305@openssh.com",
)


async def open_sftp(difusor: Difusor, settings: Settings) -> SFTPTransport:
    """Connect to one difusor, verifying its pinned host key. Never prompts; never leaks
    the connection, whatever fails or is cancelled on the way."""
    options = _connect_options(difusor, settings)
    publish = settings.roster.publish
    timeout = publish.connect_timeout_seconds
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
        raise connect_error(difusor, exc) from exc
    try:
        pump, control = await asyncio.wait_for(
            asyncio.gather(start_pump(connection), connection.start_sftp_client()), timeout
        )
    except BaseException as exc:
        connection.abort()
        if isinstance(exc, TimeoutError):
            raise ConnectError(
                difusor.name,
                f"El servidor aceptó la conexión pero su SFTP no respondió en {timeout:g} s."
                " Pida al difusor revisar el subsistema sftp de su servidor SSH.",
            ) from None
        if isinstance(exc, (asyncssh.Error, OSError, SFTPError, SFTPConnectionLost)):
            raise ConnectError(
                difusor.name,
                f"El servidor aceptó la conexión pero no ofrece SFTP ({why_lost(exc)}). Pida al"
                " difusor habilitar el subsistema sftp.",
            ) from exc
        raise
    return SFTPTransport(
        difusor.name,
        connection,
        pump,
        control,
        difusor.remote_dir,
        publish.request_timeout_seconds,
    )


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

"""What went wrong with an SFTP difusor, said in Spanish: a connection that could not be made
(:func:`connect_error`) and an SFTP status or a lost connection during a request
(:func:`translate`), each with the difusor's name, what to do, and the SFTP code and message.
"""

from __future__ import annotations

import asyncssh

from prepush.exceptions import AuthError, ConnectError, DifusorError, HostKeyError, RemoteError
from prepush.settings import Difusor
from prepush.transports.sftp.pump import (
    FX_BAD_MESSAGE,
    FX_CONNECTION_LOST,
    FX_FILE_ALREADY_EXISTS,
    FX_NO_CONNECTION,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    LocalReadError,
    SFTPConnectionLost,
    SFTPError,
    SFTPTimeout,
    why_lost,
)

FX_NO_SPACE_ON_FILESYSTEM = 14
FX_QUOTA_EXCEEDED = 15


def connect_error(difusor: Difusor, exc: BaseException) -> DifusorError:
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
        f"No se pudo conectar a {where}: {why_lost(exc)}. Verifique la red y el servidor SSH.",
    )


# What each SFTP status means for the operator, after "... al <qué> (código SFTP n: ...)".
_ADVICE = {
    FX_NO_SPACE_ON_FILESYSTEM: "Sin espacio en el servidor",
    FX_QUOTA_EXCEEDED: "Sin espacio en el servidor",
    FX_PERMISSION_DENIED: "Permiso denegado",
    FX_NO_SUCH_FILE: "No existe en el servidor lo necesario",
    FX_OP_UNSUPPORTED: "El servidor no admite la operación",
    FX_BAD_MESSAGE: "El servidor respondió fuera del protocolo SFTP",
    FX_FILE_ALREADY_EXISTS: "Ya existe un archivo que estorba",
}
_WHAT_TO_DO = {
    "Sin espacio en el servidor": "El difusor debe liberar espacio (se piden al menos 20 GB"
    " libres); su sitio sigue mostrando el corte anterior completo.",
    "Permiso denegado": "El difusor debe dar permiso de escritura al usuario de prepush en el"
    " directorio remoto.",
    "No existe en el servidor lo necesario": "Si el difusor movió o borró archivos, el"
    " siguiente corte los repone.",
    "El servidor no admite la operación": "Recomiende al difusor OpenSSH con 'Subsystem sftp"
    " internal-sftp'.",
    "El servidor respondió fuera del protocolo SFTP": "Pida al difusor revisar su servidor SSH.",
    "Ya existe un archivo que estorba": "Si se repite, pida al difusor retirarlo.",
    "El servidor respondió un error": "Revise con el difusor los permisos y el espacio de su"
    " directorio remoto.",
}


def translate(
    name: str, exc: SFTPError | SFTPConnectionLost | LocalReadError, what: str
) -> DifusorError:
    if isinstance(exc, SFTPTimeout):
        return ConnectError(
            name,
            f"Sin respuesta del servidor al {what}: {exc}. Se cortó la conexión; si se repite,"
            " revise con el difusor su servidor SSH y su disco.",
        )
    if not isinstance(exc, SFTPError) or exc.code in (FX_NO_CONNECTION, FX_CONNECTION_LOST):
        return ConnectError(
            name,
            f"Se perdió la conexión al {what} ({exc}). Si se repite, revise la red y el"
            " servidor SSH del difusor.",
            sftp_code=exc.code if isinstance(exc, SFTPError) else None,
        )
    happened = _ADVICE.get(exc.code, "El servidor respondió un error")
    if "space" in exc.reason.lower():
        happened = "Sin espacio en el servidor"
    return RemoteError(
        name,
        f"{happened} al {what} (código SFTP {exc.code}: {exc.reason}). {_WHAT_TO_DO[happened]}",
        sftp_code=exc.code,
    )

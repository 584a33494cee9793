"""What rsync's (and ssh's) failures mean for the operator, in Spanish.

rsync ends with an exit code and says why on stderr (and, for a daemon, with ``@ERROR``
lines). Each failure becomes the error class the publisher acts on (a connection is retried,
a refused host key or password is not) and a message that says what happened, to which
difusor, what to do, and rsync's own code and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prepush.exceptions import (
    AuthError,
    ConnectError,
    DifusorError,
    HostKeyError,
    RemoteError,
)
from prepush.transports.rsync.process import Finished

# rsync's exit codes (rsync(1), EXIT VALUES), as the message names them.
EXIT_CODES = {
    1: "error de sintaxis o de uso",
    2: "protocolo incompatible",
    3: "error al elegir archivos o directorios",
    4: "acción no admitida por el servidor",
    5: "error al iniciar el protocolo con el servidor",
    10: "error de E/S en la conexión",
    11: "error de E/S de archivo",
    12: "error en el flujo de datos de rsync",
    13: "error de diagnóstico",
    14: "error de comunicación entre procesos",
    20: "interrumpido por una señal",
    21: "error de waitpid",
    22: "sin memoria",
    23: "transferencia parcial por errores",
    24: "archivos desaparecidos durante el envío",
    25: "límite de borrados",
    30: "tiempo agotado enviando o recibiendo",
    35: "tiempo agotado esperando al demonio",
    255: "falló ssh",
}
CONNECTION_CODES = {10, 12, 30, 35, 255}
NOISE = (
    "Could not chdir to home directory",
    "rsync error:",
    "rsync warning:",
    "Warning: Permanently added",
)
SSH_HOST_KEY = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "host key for",
)
SSH_AUTH = (
    "Permission denied (publickey",
    "Permission denied (password",
    "Permission denied, please try again",
    "Too many authentication failures",
    "UNPROTECTED PRIVATE KEY FILE",
)
REFUSED_OPTION = (
    "configured to refuse",
    "refuse --",
    "unknown option",
    "has been disabled on this server",
    "is not allowed",
    "invalid rsync-command",
)
NETWORK = (
    "Connection refused",
    "Connection reset",
    "Connection timed out",
    "connection unexpectedly closed",
    "No route to host",
    "Network is unreachable",
    "Name or service not known",
    "Could not resolve hostname",
    "Temporary failure in name resolution",
    "Broken pipe",
    "timed out",
    "timeout",
    "Connection closed",
    "kex_exchange_identification",
)


@dataclass(frozen=True)
class Where:
    """Who the difusor is, to say it in messages."""

    name: str
    address: str  # host:port
    user: str
    daemon: bool
    module: str | None = None
    password_env: str | None = None

    @property
    def server(self) -> str:
        return "el demonio rsync" if self.daemon else "el servidor SSH"


def detail(finished: Finished) -> str:
    """rsync's most telling line: the daemon's @ERROR, else its first error."""
    lines = [line.strip() for line in finished.text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("@ERROR"):
            return line.removeprefix("@ERROR:").strip()
    for line in lines:
        if not line.startswith(NOISE):
            return _without_prefix(line)
    return EXIT_CODES.get(finished.code, f"código {finished.code}")


def _without_prefix(line: str) -> str:
    return re.sub(r"^rsync:\s*(\[[a-z]+\]\s*)?", "", line)


def said(finished: Finished, *needles: str) -> bool:
    text = finished.text.lower()
    return any(needle.lower() in text for needle in needles)


# Why rsync failed, first match wins: (what it says, error class, what happened and what to
# do). A message is formatted with the difusor (``w``), the request (``what``) and rsync's code
# and line (``tail``).
Rule = tuple[tuple[str, ...], type[DifusorError], str]
RULES: tuple[Rule, ...] = (
    (
        SSH_HOST_KEY,
        HostKeyError,
        "La llave de host de {w.address} NO coincide con la fijada en el padrón. Puede tratarse"
        " de una suplantación del servidor: no se escribió nada. Confirme la llave con el"
        " difusor por un canal seguro antes de cambiar el padrón. {tail}",
    ),
    (
        ("auth failed on module",),
        AuthError,
        "{w.address} rechazó la contraseña del usuario {w.user!r} en el módulo {w.module!r}: no"
        " se escribió nada. Revise la variable de entorno {w.password_env} y, con el difusor,"
        " 'auth users' y 'secrets file' del módulo en su rsyncd.conf. {tail}",
    ),
    (
        ("UNPROTECTED PRIVATE KEY FILE",),
        AuthError,
        "ssh no usa la llave privada porque otros usuarios pueden leerla: déjela sólo para el"
        " dueño (chmod 600) y reintente. {tail}",
    ),
    (
        SSH_AUTH,
        AuthError,
        "{w.address} rechazó las credenciales del usuario {w.user!r}. Verifique que la llave"
        " pública esté en authorized_keys del difusor (o la contraseña en la variable de"
        " entorno). {tail}",
    ),
    (
        ("access denied to",),
        AuthError,
        "{w.server} de {w.address} no admite la dirección de esta máquina ('hosts allow' del"
        " módulo): no se escribió nada. Pida al difusor agregarla. {tail}",
    ),
    (
        ("Unknown module",),
        RemoteError,
        "{w.address} no tiene el módulo {w.module!r}. Revise rsync.module en el padrón y, con"
        " el difusor, su rsyncd.conf. {tail}",
    ),
    (
        ("max connections",),
        ConnectError,
        "{w.server} de {w.address} está en su límite de conexiones ('max connections'); se"
        " reintenta. Si se repite, pida al difusor subirlo. {tail}",
    ),
    (
        ("No space left on device", "Disk quota exceeded"),
        RemoteError,
        "Sin espacio en el servidor al {what} {tail}. El difusor debe liberar espacio (se piden"
        " al menos 20 GB libres); su sitio sigue mostrando el corte anterior completo.",
    ),
    (
        ("module is read only", "Read-only file system"),
        RemoteError,
        "El servidor sólo permite leer al {what} {tail}. El difusor debe poner 'read only = no'"
        " en el módulo (o montar su disco con escritura).",
    ),
    (
        ("Permission denied (13)", "Operation not permitted (1)"),
        RemoteError,
        "Permiso denegado al {what} {tail}. El difusor debe dar permiso de escritura al usuario"
        " de prepush en el directorio remoto.",
    ),
    (
        REFUSED_OPTION,
        RemoteError,
        "El servidor rechazó una opción de rsync que prepush necesita al {what} {tail}. Pida al"
        " difusor su configuración tal como la da docs/difusores.md: sin 'refuse options' sobre"
        " enlaces ni --remove-source-files en el demonio y, con rrsync, sin -ro, -wo ni -no-del"
        " en su línea de authorized_keys.",
    ),
    (
        ("Restricted directory does not exist", "chdir to restricted dir"),
        RemoteError,
        "El directorio de rrsync en authorized_keys del difusor no existe al {what} {tail}. Pida"
        " al difusor crearlo o corregir su línea de authorized_keys.",
    ),
    (
        # rrsync (3.2.4+) locks the directory for each session: after a cut, the server may
        # still be ending the old one. Not the difusor's configuration: wait and retry.
        ("Another instance of rrsync",),
        ConnectError,
        "rrsync, en el servidor del difusor, sigue atendiendo una sesión anterior (una conexión"
        " que se cortó) al {what} {tail}; se reintenta. Si se repite sin cortes, pida al"
        " difusor revisar que nada más use esa llave. El sitio sigue en el corte anterior"
        " completo.",
    ),
    (
        ("rrsync error",),
        RemoteError,
        "rrsync, en el servidor del difusor, rechazó la petición al {what} {tail}. Revise"
        " remote_dir en el padrón: con rrsync es relativo al directorio de la línea de"
        " authorized_keys del difusor ('.' para todo ese directorio).",
    ),
    (
        ("change_dir", "No such file or directory (2)"),
        RemoteError,
        "No existe en el servidor lo necesario al {what} {tail}. Revise remote_dir en el padrón"
        " (y, con rrsync, el directorio de su línea de authorized_keys).",
    ),
)
LOST = (
    "Se perdió la conexión al {what} {tail}. Si se repite, revise la red y {w.server} del difusor."
)
PROTOCOL = (
    "El rsync del difusor no habla el protocolo de este al {what} {tail}. Pida al difusor"
    " rsync 3.1 o posterior."
)
OTHER = (
    "El servidor respondió un error al {what} {tail}. Revise con el difusor los permisos y el"
    " espacio de su directorio remoto."
)


def translate(where: Where, finished: Finished, what: str) -> DifusorError:
    """The error for a failed rsync (or ssh) at ``what`` ("leer .prepush/state.json")."""
    code = finished.code
    tail = f"(rsync, código {code}: {detail(finished)})"
    cls: type[DifusorError] = RemoteError
    template = OTHER
    for needles, rule_cls, rule_template in RULES:
        if said(finished, *needles):
            cls, template = rule_cls, rule_template
            break
    else:
        if code in CONNECTION_CODES or code < 0 or said(finished, *NETWORK):
            cls, template = ConnectError, LOST
        elif code == 2:
            template = PROTOCOL
    return cls(where.name, template.format(w=where, what=what, tail=tail))

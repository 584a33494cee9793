"""The one exception hierarchy of prepush.

Every error a user can meet is a :class:`PrepushError` whose message says, in Spanish,
what happened, to what, and what to do. ``prepush.__main__`` catches them in one place and
maps :attr:`PrepushError.exit_code` to the process exit status.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    PARTIAL = 1
    USAGE = 2
    TOTAL_FAILURE = 3
    # An error prepush did not foresee (a defect): the message says to rerun with -v.
    INTERNAL = 4
    INTERRUPTED = 130

    @classmethod
    def for_failures(cls, failed: int, total: int) -> ExitCode:
        """0 when nothing failed, 3 when everything did, 1 in between."""
        if failed == 0:
            return cls.OK
        return cls.TOTAL_FAILURE if failed == total else cls.PARTIAL


class PrepushError(Exception):
    """Base of every error prepush reports to the operator."""

    exit_code: ExitCode = ExitCode.TOTAL_FAILURE


class ConfigError(PrepushError):
    """The roster (``difusores.yaml``) or a command-line value is wrong; nothing was done."""

    exit_code = ExitCode.USAGE


class RosterError(ConfigError):
    """The roster does not validate. Carries every problem found, each with its location."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"El padrón de difusores {path} tiene {len(problems)} error(es):\n{listing}\n"
            "Corrija el archivo y vuelva a intentarlo; no se hizo nada."
        )


class PullConfigError(ConfigError):
    """The pull configuration (``prepush pull --config``) does not validate; every problem
    with its location."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"La configuración de pull {path} tiene {len(problems)} error(es):\n{listing}\n"
            "Corrija el archivo y vuelva a intentarlo; no se descargó ni se publicó nada."
        )


class InputError(PrepushError):
    """A PREP input file cannot be read; names the file, line and column. Nothing was built."""

    exit_code = ExitCode.USAGE

    def __init__(self, file: str, line: int | None, column: int | None, what: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.what = what
        where = file
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(
            f"{where}: {what}. Revise el archivo entregado por el PREP; no se construyó ningún"
            " paquete."
        )


class MismatchError(PrepushError):
    """The preamble of a PREP CSV and its rows do not reconcile: the input is cut, damaged or
    incomplete. Names each file, figure, both values and the line where the data ends.
    Nothing was built."""

    exit_code = ExitCode.USAGE

    def __init__(self, corte: str, problems: list[str]) -> None:
        self.corte = corte
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"No se construyó el corte {corte}: el preámbulo del PREP y las filas del CSV no"
            f" cuadran ({len(problems)} problema(s)):\n{listing}\n"
            "Lo más probable es un archivo cortado o incompleto: espere el archivo completo del"
            " PREP y vuelva a construir. Si ya comprobó a mano que los datos son los publicados,"
            " construya con --allow-mismatch (queda en la bitácora y en el reporte)."
        )


class FewerElectionsError(PrepushError):
    """An oficial corte with fewer elections than the corte before it: most likely a glob or
    a directory that matched part of the PREP's files. Nothing was built."""

    exit_code = ExitCode.USAGE

    def __init__(self, corte: str, previous: str, missing: list[str], found: list[str]) -> None:
        self.corte = corte
        self.problems = [
            f"el corte {previous} tiene {', '.join(missing)}, que faltan en las entradas de"
            f" {corte} (traen sólo {', '.join(found)})"
        ]
        super().__init__(
            f"No se construyó el corte {corte}: trae menos elecciones que el corte anterior"
            f" {previous} (faltan {', '.join(missing)}; sólo vienen {', '.join(found)}). Lo más"
            " probable es que el patrón o el directorio indicado no incluya todos los archivos"
            f" del PREP: construya con todos ('prepush build .../{corte}_PREP_*' o el ZIP"
            " completo). Si de verdad este corte trae menos elecciones, construya con"
            " --allow-fewer-elections (queda en la bitácora y en el reporte)."
        )


class PackageError(PrepushError):
    """A package is missing, malformed, or does not match its manifest or signature."""

    exit_code = ExitCode.USAGE


class IntegrityError(PackageError):
    """A package is not exactly what the institute signed: it is not published anywhere."""

    def __init__(self, corte: str, problems: list[str], fix: str) -> None:
        self.corte = corte
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"No se publica el corte {corte} en ningún difusor: el paquete no es el que firmó el"
            f" instituto.\n{listing}\nNo se escribió nada en ningún difusor. {fix}"
        )


class PullRefusedError(PackageError):
    """What the origin serves is not what the institute signed (or names a path outside the
    site): the corte is not published; the destination keeps the previous one."""

    def __init__(self, corte: str | None, path: str, why: str) -> None:
        self.corte = corte
        self.path = path
        self.why = why
        # What the public keeps seeing; the puller says it exactly once it knows.
        self.stays = "el destino sigue mostrando el corte anterior completo"
        super().__init__(self._said())

    def _said(self) -> str:
        which = f"el corte {self.corte}" if self.corte else "el corte del origen"
        return (
            f"No se publica {which}: {self.path}: {self.why}. No se escribió nada donde lee el"
            f" público; {self.stays}. Avise al instituto (la falla, el archivo y la hora);"
            " prepush vuelve a revisar cuando el origen cambie."
        )

    def keeping(self, stays: str) -> PullRefusedError:
        """The same refusal, saying what the destination keeps showing."""
        self.stays = stays
        self.args = (self._said(),)
        return self


class PublishInterrupted(PrepushError):
    """Ctrl-C during a publish or a rollback: says what each difusor's public sees now."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, corte: str, serving: dict[str, str], *, rollback: bool = False) -> None:
        self.corte = corte
        self.serving = serving
        listing = "\n".join(f"  {name}: {what}" for name, what in serving.items())
        action = "la reversión al corte" if rollback else "la publicación del corte"
        super().__init__(
            f"Interrumpido por el operador durante {action} {corte}. Lo que cada difusor sirve"
            f" ahora:\n{listing}\nNingún sitio quedó a medias: cada uno muestra un corte"
            " completo. El siguiente publish (o el temporizador) envía lo que faltó."
        )


class KeyFileError(PrepushError):
    """A key file cannot be created or read."""

    exit_code = ExitCode.USAGE


class EmbargoError(PrepushError):
    """An ``oficial`` package outside the publication window, without an explicit override."""

    exit_code = ExitCode.USAGE


class LockBusyError(PrepushError):
    """Another prepush run holds the local run lock."""

    exit_code = ExitCode.PARTIAL


class LedgerUnavailableError(PrepushError):
    """The shared ledger (PostgreSQL) cannot be reached: nothing is published unrecorded."""


class StandbyError(LockBusyError):
    """Another machine is the publisher on duty (it holds the lease of a shared ledger):
    this one publishes nothing until the lease is free."""


class DifusorError(PrepushError):
    """Something failed on one difusor. Never stops the others; recorded in the ledger.

    ``sftp_code`` keeps the status code the server answered, where there was one.
    """

    def __init__(self, difusor: str, message: str, *, sftp_code: int | None = None) -> None:
        self.difusor = difusor
        self.message = message
        self.sftp_code = sftp_code
        super().__init__(f"[{difusor}] {message}")


class HostKeyError(DifusorError):
    """The server's host key is not the one pinned in the roster: possible impersonation."""


class CredentialError(DifusorError):
    """This machine lacks what one difusor needs to be contacted (a secret variable, a key or
    known_hosts file): that difusor fails, never contacted; the others go on."""


class AuthError(DifusorError):
    """The difusor refused our credentials."""


class ConnectError(DifusorError):
    """The difusor could not be reached or the connection broke."""


class RemoteError(DifusorError):
    """The difusor's SFTP server answered an operation with an error (space, permissions...)."""


class RemoteLockedError(DifusorError):
    """Another publisher holds the difusor's remote lock and it is not stale."""


class LeaseLostError(DifusorError):
    """This machine no longer holds the publisher's lease (another took over, or the shared
    ledger was lost): it writes nothing more that a reader could be served. Not retried."""


class DeadlineError(DifusorError):
    """The difusor did not finish within its deadline."""


class LocalFileError(DifusorError):
    """A file of the package could not be read on this machine while sending it: the
    institute's problem, not the difusor's."""


class InternalError(DifusorError):
    """An unexpected failure inside prepush while serving one difusor; the others go on."""


_ERRNO_ES = {
    errno.ENOENT: "no existe",
    errno.EACCES: "permiso denegado",
    errno.EPERM: "operación no permitida",
    errno.EISDIR: "es un directorio",
    errno.ENOTDIR: "una parte de la ruta no es un directorio",
    errno.ENOSPC: "no queda espacio en el disco",
    errno.EROFS: "el sistema de archivos es de sólo lectura",
    errno.EEXIST: "ya existe",
    errno.ENAMETOOLONG: "el nombre es demasiado largo",
    errno.ECONNREFUSED: "conexión rechazada",
    errno.ECONNRESET: "la conexión se cortó",
    errno.ETIMEDOUT: "tiempo agotado",
    errno.EHOSTUNREACH: "host inalcanzable",
    errno.ENETUNREACH: "red inalcanzable",
}


def describe_os_error(exc: OSError) -> str:
    """What an OSError means, in Spanish and without Python's '[Errno N]' prefix."""
    if exc.errno in _ERRNO_ES:
        return _ERRNO_ES[exc.errno]
    if isinstance(exc, TimeoutError):
        return "tiempo agotado"
    return exc.strerror or str(exc) or type(exc).__name__

"""What an S3 (or CloudFront) answer means, in Spanish: the error answer reduced to what the
S3 transport decides on (:class:`S3Error`), the codes it decides by, and the
:class:`prepush.exceptions.DifusorError` an operator reads (:func:`explain`), with why a
connection failed (:func:`why_connection_failed`) and what the first contact with a bucket
found (:func:`bucket_check_error`). botocore's own texts are English.
"""

from __future__ import annotations

import aiohttp
import botocore.exceptions

from prepush.exceptions import (
    AuthError,
    ConnectError,
    DifusorError,
    RemoteError,
    describe_os_error,
)

# S3 error codes that mean "these credentials may not do this".
AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidClientTokenId",
}
# Busy or failing on the server's side: worth another attempt over a new connection.
_TRANSIENT_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "OperationAborted",
    "500",
    "502",
    "503",
    "504",
}
PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
NOT_MODIFIED_CODES = {"304", "NotModified"}


class S3Error(Exception):
    """An S3 error answer, reduced to what prepush decides on. It never leaves the S3
    transport: every one is decided on or translated to a DifusorError in Spanish
    (:func:`explain`)."""

    def __init__(self, code: str, message: str, status: int | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def s3_error(exc: botocore.exceptions.ClientError) -> S3Error:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    code = str(error.get("Code") or status or "?")
    return S3Error(code, str(error.get("Message") or ""), int(status) if status else None)


def why_connection_failed(exc: BaseException) -> str:
    """Why the connection failed, in Spanish (botocore's own text is English)."""
    errors = botocore.exceptions
    known: tuple[tuple[type[BaseException], str], ...] = (
        (errors.ConnectTimeoutError, "tiempo agotado al conectar"),
        (errors.ReadTimeoutError, "tiempo agotado esperando la respuesta"),
        (errors.SSLError, "falló el saludo TLS: revise el certificado del punto de acceso"),
        (errors.ProxyConnectionError, "no se pudo conectar con el proxy"),
        (errors.EndpointConnectionError, "no se pudo conectar con el punto de acceso"),
        (errors.ConnectionClosedError, "el servidor cerró la conexión a media respuesta"),
        (errors.IncompleteReadError, "la respuesta llegó incompleta"),
        (errors.ResponseStreamingError, "la conexión se cortó a media respuesta"),
        (aiohttp.ServerDisconnectedError, "el servidor cerró la conexión"),
        (aiohttp.ClientPayloadError, "la respuesta llegó incompleta"),
    )
    for kind, said in known:
        if isinstance(exc, kind):
            return said
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError):
        return describe_os_error(cause)
    return f"{type(exc).__name__}: {exc}"[:200]


def explain(name: str, where: str, exc: S3Error, what: str) -> DifusorError:
    """What an S3 (or CloudFront) answer means for the operator, in Spanish."""
    said = f"(código {exc.code}{': ' + exc.message if exc.message else ''})"
    if exc.code in AUTH_CODES or exc.status == 403:
        return AuthError(
            name,
            f"{where} negó el permiso al {what} {said}. Revise las credenciales del difusor"
            " (las variables de su mapa s3: en el padrón) y que su política permita a prepush"
            " s3:GetObject, s3:PutObject, s3:DeleteObject y s3:ListBucket (docs/difusores.md).",
        )
    if exc.code == "NoSuchBucket":
        return RemoteError(
            name,
            f"El bucket de {where} no existe {said}. Revise bucket, region y endpoint_url en el"
            " padrón con el difusor.",
        )
    if exc.code in _TRANSIENT_CODES or (exc.status is not None and exc.status >= 500):
        return ConnectError(
            name,
            f"S3 no pudo atender el {what} {said}; se reintenta. Si se repite, el servicio del"
            " difusor está saturado o caído.",
        )
    return RemoteError(
        name,
        f"S3 respondió un error al {what} {said}. Revise con el difusor su bucket y sus"
        " permisos; su sitio sigue mostrando el corte anterior completo.",
    )


def bucket_check_error(name: str, bucket: str, where: str, exc: S3Error) -> DifusorError:
    """What the first contact's HeadBucket answer means: no such bucket at ``where``, or
    credentials it refuses, said as such; any other answer as :func:`explain` says it."""
    if exc.code in ("404", "NoSuchBucket", "NotFound"):
        return RemoteError(
            name,
            f"El bucket {bucket} no existe en {where}. Revise bucket, region y"
            " endpoint_url en el padrón con el difusor.",
        )
    if exc.code in AUTH_CODES or exc.status in (401, 403) or exc.code in ("401", "403"):
        return AuthError(
            name,
            f"{where} rechazó las credenciales para el bucket {bucket} (código"
            f" {exc.code}). Revise las variables de las llaves del difusor (su mapa s3: en"
            " el padrón) y que su política permita a prepush s3:ListBucket.",
        )
    return explain(name, bucket, exc, "revisar el bucket")

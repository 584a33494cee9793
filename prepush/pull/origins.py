"""Reading the institute's origin: an HTTPS site (basic auth, TLS verified) or a bucket.

Two calls, for what a pull needs:

- :meth:`Origin.get`: a small file whole (``json/main.json``, a signed manifest and its
  signature), conditionally: with the ETag (or Last-Modified) of the last read, an unchanged
  file is one small request and no body ('not_modified').
- :meth:`Origin.download`: a file of the corte, streamed chunk by chunk into a sink, never
  more bytes than the manifest says (the sink is told the size, and the origin's announced
  length is checked first).

Every request is bounded: the request timeout, plus for a download the time its bytes take
at :data:`MIN_RATE`. Failures are :class:`prepush.exceptions.DifusorError` in Spanish, named
for the difusor that pulls: :class:`ConnectError` (the network, a timeout, a cut download, a
busy origin: worth another attempt), :class:`AuthError` (the credentials), :class:`RemoteError`
(any other answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from prepush.exceptions import AuthError, ConnectError, RemoteError
from prepush.ops.check import describe_http_error
from prepush.pull.config import PullSettings
from prepush.transports.s3.connect import Limits, open_bucket
from prepush.transports.s3.origin import read_object
from prepush.transports.s3.transport import S3Transport

# A download may take its request timeout plus the time its bytes take at this rate.
MIN_RATE = 256 * 1024
CHUNK = 256 * 1024
# A file read whole (json/main.json, a signed manifest, its signature) never exceeds this:
# the manifest of a --site corte of 20,000 files is about 3 MB.
MAX_WHOLE = 64 << 20


@dataclass(frozen=True)
class Got:
    """A conditional read: 'ok' with the bytes and their validators, 'not_modified' or
    'missing'."""

    status: Literal["ok", "not_modified", "missing"]
    data: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class TooLong(Exception):
    """The origin sends more bytes than the manifest says the file has."""

    def __init__(self, path: str, announced: int | None, expected: int) -> None:
        super().__init__(path)
        self.path = path
        self.announced = announced
        self.expected = expected


Sink = Callable[[bytes], None]


class Origin(Protocol):
    @property
    def requests(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    async def get(
        self, path: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Got: ...

    async def download(self, path: str, size: int, sink: Sink) -> Got:
        """Stream ``path`` into ``sink``: 'ok' (with its validators) or 'missing'. More
        bytes than ``size`` raise :class:`TooLong` before the extra byte reaches the sink."""
        ...

    def abort(self) -> None: ...

    async def close(self) -> None: ...


# --- HTTPS ------------------------------------------------------------------------------


class HttpsOrigin:
    """The origin as a web site: one HTTP/1.1 client with its connections kept."""

    def __init__(self, settings: PullSettings) -> None:
        config = settings.config
        origin = config.origin
        assert origin.url is not None
        self._name = settings.name
        self._url = origin.url
        self._timeout = config.request_timeout_seconds
        auth = None
        if origin.user_env is not None:
            user = settings.secret(origin.user_env) or ""
            password = settings.secret(origin.password_env) or ""
            auth = httpx.BasicAuth(user, password)
        verify: ssl.SSLContext | bool = True
        if origin.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.resolve(origin.ca_file)))
        width = config.files_in_flight
        self._client = httpx.AsyncClient(
            base_url=origin.url,
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(
                config.request_timeout_seconds, connect=config.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
            # A redirect would take the credentials elsewhere: never followed.
            follow_redirects=False,
            # Byte for byte what the manifest hashed: no compression in between.
            headers={"Accept-Encoding": "identity", "User-Agent": "prepush-pull"},
        )
        self._requests = 0
        self._dead = False

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def alive(self) -> bool:
        return not self._dead

    async def get(
        self, path: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Got:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        async def request() -> Got:
            async with self._client.stream("GET", path, headers=headers) as response:
                status = self._status(response, path)
                if status != "ok":
                    return Got(status)
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_raw(CHUNK):
                    received += len(chunk)
                    if received > MAX_WHOLE:
                        raise too_big(self._name, self._url, path)
                    chunks.append(chunk)
                return Got(
                    "ok",
                    b"".join(chunks),
                    response.headers.get("etag"),
                    response.headers.get("last-modified"),
                )

        return await self._bounded(f"leer {path}", request, self._timeout)

    async def download(self, path: str, size: int, sink: Sink) -> Got:
        async def request() -> Got:
            async with self._client.stream("GET", path) as response:
                status = self._status(response, path)
                if status != "ok":
                    return Got(status)
                announced = response.headers.get("content-length")
                if announced is not None and announced.isdigit() and int(announced) > size:
                    raise TooLong(path, int(announced), size)
                received = 0
                try:
                    async for chunk in response.aiter_raw(CHUNK):
                        received += len(chunk)
                        if received > size:
                            raise TooLong(path, None, size)
                        sink(chunk)
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    raise ConnectError(
                        self._name,
                        f"La descarga de {path} se cortó a los {received} de {size} bytes"
                        f" ({why_http_failed(exc)}); no se usa nada de ella y se"
                        " reintenta.",
                    ) from None
                return Got(
                    "ok", b"", response.headers.get("etag"), response.headers.get("last-modified")
                )

        return await self._bounded(f"descargar {path}", request, self._timeout + size / MIN_RATE)

    def _status(
        self, response: httpx.Response, path: str
    ) -> Literal["ok", "not_modified", "missing"]:
        code = response.status_code
        if code == 200:
            return "ok"
        if code == 304:
            return "not_modified"
        if code == 404:
            return "missing"
        if code in (401, 403):
            raise AuthError(
                self._name,
                f"El origen {self._url} negó el acceso a {path} (HTTP {code}). Revise el usuario"
                " y la contraseña que le dio el instituto (las variables de user_env y"
                " password_env).",
            )
        if code in (429,) or code >= 500:
            raise ConnectError(
                self._name,
                f"El origen {self._url} no pudo atender {path} (HTTP {code}); se reintenta.",
            )
        raise RemoteError(
            self._name,
            f"El origen {self._url} respondió HTTP {code} a {path}. Revise la url del origen con"
            " el instituto.",
        )

    async def _bounded(
        self, what: str, request: Callable[[], Awaitable[Got]], timeout: float
    ) -> Got:
        if self._dead:
            raise ConnectError(self._name, "La conexión con el origen se cortó; se reintenta.")
        self._requests += 1
        try:
            return await asyncio.wait_for(request(), timeout)
        except TimeoutError:
            raise ConnectError(
                self._name,
                f"El origen {self._url} no respondió en {timeout:g} s al {what}; se reintenta.",
            ) from None
        except httpx.HTTPError as exc:
            raise ConnectError(
                self._name,
                f"No se pudo {what} del origen {self._url} ({why_http_failed(exc)}); se"
                " reintenta. Si se repite, revise la red y la url del origen.",
            ) from None

    def abort(self) -> None:
        self._dead = True

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, httpx.HTTPError, OSError):
            await asyncio.wait_for(self._client.aclose(), self._timeout)


# --- S3 ------------------------------------------------------------------------------------


class S3Origin:
    """The origin as a bucket, read with the credentials the institute shared."""

    def __init__(self, name: str, transport: S3Transport, where: str) -> None:
        self._name = name
        self._t = transport
        self._where = where

    @property
    def requests(self) -> int:
        return self._t.requests

    @property
    def alive(self) -> bool:
        return self._t.alive

    async def get(
        self, path: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Got:
        chunks: list[bytes] = []
        received = [0]

        def kept(chunk: bytes) -> None:
            received[0] += len(chunk)
            if received[0] > MAX_WHOLE:
                raise too_big(self._name, self._where, path)
            chunks.append(chunk)

        read = await read_object(self._t, path, etag=etag, sink=kept)
        if read.status != "ok":
            return Got(read.status)
        return Got("ok", b"".join(chunks), read.etag or None)

    async def download(self, path: str, size: int, sink: Sink) -> Got:
        received = [0]

        def counted(chunk: bytes) -> None:
            received[0] += len(chunk)
            if received[0] > size:
                raise TooLong(path, None, size)
            sink(chunk)

        read = await read_object(self._t, path, sink=counted, size_hint=size)
        return Got(read.status, b"", read.etag or None)

    def abort(self) -> None:
        self._t.abort()

    async def close(self) -> None:
        await self._t.close()


async def open_origin(settings: PullSettings) -> Origin:
    config = settings.config
    if config.origin.url is not None:
        return HttpsOrigin(settings)
    fields = config.origin.s3
    assert fields is not None
    limits = Limits(
        config.connect_timeout_seconds, config.request_timeout_seconds, config.files_in_flight
    )
    transport = await open_bucket(
        settings.name, fields, limits, settings.s3_credentials(fields), check=False
    )
    return S3Origin(settings.name, transport, settings.origin_description())


def too_big(name: str, where: str, path: str) -> RemoteError:
    return RemoteError(
        name,
        f"El origen {where} envía más de {MAX_WHOLE} bytes en {path}, un archivo que prepush"
        " lee entero (json/main.json, un manifiesto firmado o su firma): no se lee más. Avise"
        " al instituto.",
    )


def why_http_failed(exc: httpx.HTTPError) -> str:
    """Why a request to the origin failed, in Spanish; an untrusted certificate says what
    to do about it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"el certificado TLS del origen no es de confianza: {cause.verify_message};"
                " si el instituto usa un certificado propio, indique su CA en ca_file"
            )
        cause = cause.__cause__ or cause.__context__
    return describe_http_error(exc)

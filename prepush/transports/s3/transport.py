"""The S3 transport: a difusor whose site is a bucket (AWS S3 or any S3-compatible store),
optionally behind CloudFront.

S3 replaces an object atomically on every PUT, so the protocol's "temporary name and rename"
is one PUT here, and the flip (json/main.json last) is one PUT too. Each object gets its
headers as it is written, from its contract (:mod:`prepush.delivery.contract`): a name whose
content never changes (the objects and ZIP of a prepush package) ``Cache-Control: public,
max-age=31536000, immutable``; a mutable one (entry files, every path of a ``--site``
package) and prepush's own files ``no-cache, no-store, must-revalidate``; every object the
Content-Type of its extension. Each PUT carries the manifest's sha256
(``x-amz-checksum-sha256``): S3 refuses a body that does not match, and its echo is checked.

What the bucket holds comes from the protocol's state object (``.prepush/state.json``); the
bucket is listed (ListObjectsV2) only when the state is lost or damaged and names turn up as
'unknown', once per connection. The lock uses conditional writes (If-None-Match: * to create,
If-Match to swap or remove). Files no retained corte uses go in DeleteObjects batches, each
key's result checked. With a CloudFront distribution id, ``invalidate`` creates an
invalidation of every path whose content changed under its name (the flipped entry files, the
replaced files) and waits for it, bounded by the corte's deadline.

aiobotocore does the signing and HTTP (docs/performance.md says why it over obstore). Every
call is counted and bounded by the request timeout here, and its errors translated to Spanish
by :mod:`prepush.transports.s3.errors`. Opening the client is :mod:`.connect`'s; a pull's
reading of its origin, :mod:`.origin`'s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import mimetypes
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import botocore.exceptions

from prepush.exceptions import (
    AuthError,
    ConnectError,
    DifusorError,
    RemoteError,
)
from prepush.package import safe_relative_path
from prepush.transports.base import (
    Capabilities,
    Counted,
    LocalFiles,
    RemoteStat,
    SpaceInfo,
    Upload,
    upload_bytes,
)
from prepush.transports.s3.errors import (
    MISSING_CODES,
    PRECONDITION_CODES,
    S3Error,
    explain,
    s3_error,
    why_connection_failed,
)

T = TypeVar("T")

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache, no-store, must-revalidate"
META_PREFIX = ".prepush/"
# Above this size a file goes in parts (S3 takes one PUT up to 5 GB; parts retry cheaper).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
DELETE_BATCH = 1000
# CloudFront: how often to ask whether the invalidation completed (seconds, growing).
POLL_FIRST, POLL_MAX = 0.5, 5.0
SHA256_META = "sha256"
MAX_INVALIDATION_PATHS = 1000

# The Content-Type of each extension a corte carries; the rest by the system's table.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".xml": "application/xml",
    ".sig": "application/octet-stream",
}


def content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def cache_control(path: str, *, mutable: bool) -> str:
    """A file whose content may change under its name (its contract says so: entry files,
    the fixed paths of a --site package), or one of prepush's own, is never cached; a name
    whose content never changes is cached for a year."""
    if mutable or path.startswith(META_PREFIX):
        return NO_CACHE
    return IMMUTABLE


def sha256_header(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def s3_etag(data: bytes) -> str:
    """The ETag S3 gives an object written as prepush writes it (in parts above the
    threshold), without server-side KMS encryption."""
    if len(data) <= MULTIPART_THRESHOLD:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    digests = b"".join(
        hashlib.md5(data[i : i + PART_SIZE], usedforsecurity=False).digest()
        for i in range(0, len(data), PART_SIZE)
    )
    parts = -(-len(data) // PART_SIZE)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{parts}"


@dataclass(frozen=True)
class Listed:
    size: int
    etag: str


@dataclass(frozen=True)
class Target:
    """Where a difusor's site is and what stands in front of it."""

    name: str
    bucket: str
    prefix: str
    distribution_id: str | None
    timeout: float


class S3Transport(Counted):
    """A :class:`prepush.transports.base.Transport` over one S3 client (and CloudFront's)."""

    def __init__(
        self,
        target: Target,
        client: Any,
        cloudfront: Any | None,
        closers: Sequence[Callable[[], Awaitable[object]]],
    ) -> None:
        self._t = target
        self._name = target.name
        self._client = client
        self._cloudfront = cloudfront
        self._closers = list(closers)
        self._timeout = target.timeout
        self._key_prefix = f"{target.prefix}/" if target.prefix else ""
        super().__init__(
            Capabilities(
                atomic_replace=True,
                links=True,
                durable=True,
                features=("put-atómico", "copia-en-servidor", "escritura-condicional")
                + (("cloudfront",) if target.distribution_id else ()),
            )
        )

    def key(self, path: str) -> str:
        safe_relative_path(path)
        return f"{self._key_prefix}{path}"

    # --- every request goes through here: counted, bounded, translated ------------------

    async def _call(
        self, what: str, request: Callable[[], Awaitable[T]], timeout: float | None = None
    ) -> T:
        """Run one S3 request. An error answer comes back as :class:`S3Error`, for the
        caller to decide on (a 404 or a 412 may be what it expects) or to :meth:`_explain`;
        a timeout or a lost connection kills the transport and raises ConnectError."""
        timeout = self._timeout if timeout is None else timeout
        if self._dead is not None:
            raise ConnectError(self._name, f"{self._dead} Se reintenta con una conexión nueva.")
        with self._counted():
            return await self._bounded(what, request, timeout)

    async def _bounded(self, what: str, request: Callable[[], Awaitable[T]], timeout: float) -> T:
        try:
            return await asyncio.wait_for(request(), timeout)
        except TimeoutError:
            self._die(f"El servidor no respondió en {timeout:g} s al {what}.")
            raise ConnectError(
                self._name,
                f"Sin respuesta de S3 en {timeout:g} s al {what}; se cortó la conexión."
                " Si se repite, revise la red hacia el punto de acceso de S3.",
            ) from None
        except botocore.exceptions.ClientError as exc:
            raise s3_error(exc) from exc
        except botocore.exceptions.NoCredentialsError:
            raise AuthError(
                self._name,
                "No hay credenciales de AWS para este difusor: indique access_key_id_env y"
                " secret_access_key_env (o profile) en su mapa s3: del padrón, o configure la"
                " cadena estándar de AWS de esta máquina.",
            ) from None
        except (botocore.exceptions.BotoCoreError, aiohttp.ClientError, OSError) as exc:
            why = why_connection_failed(exc)
            self._die(f"Se perdió la conexión con S3 ({why}).")
            raise ConnectError(
                self._name,
                f"Se perdió la conexión con S3 al {what} ({why}). Si se repite,"
                " revise la red y el punto de acceso (endpoint_url) del difusor.",
            ) from exc

    def _die(self, why: str) -> None:
        if self._dead is None:
            self._dead = why
        _abort_connections(self._client)

    def _explain(self, exc: S3Error, what: str) -> DifusorError:
        return explain(self._name, self._t.bucket, exc, what)

    async def _request(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        """A request whose every error answer is a failure, said in Spanish."""
        try:
            return await self._call(what, request)
        except S3Error as exc:
            raise self._explain(exc, what) from exc

    # --- reads ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes | None:
        found = await self._get(path)
        return None if found is None else found[0]

    async def _get(self, path: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it is not there. A body shorter than
        the length S3 announced is an error, never a shorter file."""
        key = self.key(path)
        what = f"leer {path}"

        async def get() -> tuple[bytes, str]:
            response = await self._client.get_object(Bucket=self._t.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            if len(data) != int(response.get("ContentLength", len(data))):
                raise S3Error(
                    "IncompleteBody",
                    f"llegaron {len(data)} de {response['ContentLength']} bytes",
                    None,
                )
            return data, str(response.get("ETag", ""))

        try:
            return await self._call(what, get)
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return None
            raise self._explain(exc, what) from exc

    async def stat(self, path: str) -> RemoteStat | None:
        head = await self._head(path)
        if head is None:
            return None
        modified = head.get("LastModified")
        return RemoteStat(
            size=int(head.get("ContentLength", 0)),
            mtime=modified if isinstance(modified, datetime) else datetime.now(UTC),
        )

    async def _head(self, path: str) -> dict[str, Any] | None:
        key = self.key(path)
        what = f"revisar {path}"
        try:
            head: dict[str, Any] = await self._call(
                what, lambda: self._client.head_object(Bucket=self._t.bucket, Key=key)
            )
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return None
            raise self._explain(exc, what) from exc
        return head

    async def space(self) -> SpaceInfo | None:
        return None  # a bucket has no size to fill

    # --- writes -----------------------------------------------------------------------------

    def _headers(self, path: str, sha256: str, *, mutable: bool) -> dict[str, Any]:
        return {
            "CacheControl": cache_control(path, mutable=mutable),
            "ContentType": content_type(path),
            "Metadata": {SHA256_META: sha256},
        }

    async def _put(
        self, path: str, data: bytes, sha256: str, *, mutable: bool, **conditions: str
    ) -> None:
        """One PUT (or the parts of a large one) of bytes that hash to ``sha256`` (the
        caller's :func:`verified_bytes`). S3 checks a single PUT's body against the sha256
        and the reply echoes it; anything else is a failure. Parts carry only their MD5: the
        whole was checked before the first one left."""
        if len(data) > MULTIPART_THRESHOLD and not conditions:
            await self._put_in_parts(path, data, sha256, mutable=mutable)
            return
        checksum = sha256_header(sha256)
        key = self.key(path)
        response = await self._call(
            f"escribir {path}",
            lambda: self._client.put_object(
                Bucket=self._t.bucket,
                Key=key,
                Body=data,
                ChecksumSHA256=checksum,
                **self._headers(path, sha256, mutable=mutable),
                **conditions,
            ),
        )
        echoed = response.get("ChecksumSHA256")
        if echoed is not None and echoed != checksum:
            raise RemoteError(
                self._name,
                f"S3 guardó {path} con otra suma sha256 ({echoed}, se envió {checksum}). Se"
                " reintenta; si se repite, revise el punto de acceso de S3 del difusor.",
            )
        self._bytes_sent += len(data)

    async def _put_in_parts(self, path: str, data: bytes, sha256: str, *, mutable: bool) -> None:
        key = self.key(path)
        what = f"escribir {path} por partes"
        created = await self._request(
            what,
            lambda: self._client.create_multipart_upload(
                Bucket=self._t.bucket, Key=key, **self._headers(path, sha256, mutable=mutable)
            ),
        )
        upload_id = str(created["UploadId"])
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), PART_SIZE), 1):
                part = data[start : start + PART_SIZE]
                digest = base64.b64encode(hashlib.md5(part, usedforsecurity=False).digest())
                answer = await self._request(
                    what,
                    functools.partial(
                        self._client.upload_part,
                        Bucket=self._t.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                        ContentMD5=digest.decode(),
                    ),
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                self._bytes_sent += len(part)
            await self._request(
                what,
                lambda: self._client.complete_multipart_upload(
                    Bucket=self._t.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
            )
        except BaseException:
            if self.alive:
                with contextlib.suppress(DifusorError, S3Error):
                    await self._call(
                        what,
                        lambda: self._client.abort_multipart_upload(
                            Bucket=self._t.bucket, Key=key, UploadId=upload_id
                        ),
                    )
            raise

    async def write_file(self, path: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        try:
            await self._put(path, data, digest, mutable=True)
        except S3Error as exc:
            raise self._explain(exc, f"escribir {path}") from exc

    async def create_exclusive(self, path: str, data: bytes) -> bool:
        digest = hashlib.sha256(data).hexdigest()
        try:
            await self._put(path, data, digest, mutable=True, IfNoneMatch="*")
        except S3Error as exc:
            if exc.code in PRECONDITION_CODES:
                return False
            raise self._explain(exc, f"crear {path}") from exc
        return True

    async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
        """Compare and swap by the object's ETag: If-Match on the PUT (or the DELETE)."""
        found = await self._get(path)
        if found is None or found[0] != expected:
            return False
        etag = found[1]
        try:
            if data is None:
                key = self.key(path)
                await self._call(
                    f"borrar {path}",
                    lambda: self._client.delete_object(
                        Bucket=self._t.bucket, Key=key, IfMatch=etag
                    ),
                )
            else:
                digest = hashlib.sha256(data).hexdigest()
                await self._put(path, data, digest, mutable=True, IfMatch=etag)
        except S3Error as exc:
            if exc.code in PRECONDITION_CODES or exc.code in MISSING_CODES:
                return False
            raise self._explain(exc, f"reemplazar {path}") from exc
        return True

    async def upload(
        self,
        uploads: Sequence[Upload],
        width: int,
        on_done: Callable[[Upload], None] | None = None,
        files: LocalFiles | None = None,
    ) -> None:
        gate = asyncio.Semaphore(max(1, width))
        # Listed at most once per call, only if a name to verify turns up: a listing kept
        # longer (a --watch night) would vouch for objects changed since.
        listing = _Listing(self._list_site)

        async def one(upload: Upload) -> None:
            async with gate:
                await self._upload_one(upload, files, listing)
            if on_done is not None:
                on_done(upload)

        await _all_or_first_error([one(u) for u in uploads])

    async def _upload_one(
        self, upload: Upload, files: LocalFiles | None, listing: _Listing
    ) -> None:
        what = f"escribir {upload.path}"
        try:
            if upload.contract.verify and await self._already_there(upload, files, listing):
                return
            if upload.link_from is not None:
                await self._copy(upload)
                return
            data = upload_bytes(self._name, upload, files)
            await self._put(upload.path, data, upload.sha256, mutable=upload.contract.mutable)
        except S3Error as exc:
            raise self._explain(exc, what) from exc

    async def _copy(self, upload: Upload) -> None:
        """A server-side copy of an object the bucket holds, with the target's headers."""
        assert upload.link_from is not None
        source = {"Bucket": self._t.bucket, "Key": self.key(upload.link_from)}
        key = self.key(upload.path)
        await self._call(
            f"copiar {upload.link_from} a {upload.path}",
            lambda: self._client.copy_object(
                Bucket=self._t.bucket,
                Key=key,
                CopySource=source,
                MetadataDirective="REPLACE",
                **self._headers(upload.path, upload.sha256, mutable=upload.contract.mutable),
            ),
        )
        self._bytes_reused += upload.size

    async def _already_there(
        self, upload: Upload, files: LocalFiles | None, listing: _Listing
    ) -> bool:
        """A name the state cannot vouch for (lost or damaged state): the bucket's listing
        says whether it already holds these bytes (size and ETag)."""
        listed = (await listing.get()).get(upload.path)
        if listed is None or listed.size != upload.size:
            return False
        data = upload_bytes(self._name, upload, files)
        return listed.etag == s3_etag(data)

    async def _list_site(self) -> dict[str, Listed]:
        """Every object of the site (prepush's own left out): one ListObjectsV2 listing, one
        request per thousand objects."""
        found: dict[str, Listed] = {}
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._request(
                "listar el bucket para rehacer el estado",
                functools.partial(
                    self._client.list_objects_v2,
                    Bucket=self._t.bucket,
                    Prefix=self._key_prefix,
                    **extra,
                ),
            )
            for item in page.get("Contents", []):
                path = str(item["Key"])[len(self._key_prefix) :]
                if not path.startswith(META_PREFIX):
                    found[path] = Listed(int(item["Size"]), str(item["ETag"]).strip('"'))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    # --- removal ----------------------------------------------------------------------------

    async def remove_many(self, paths: Sequence[str], width: int) -> None:
        if not paths:
            return
        if len(paths) == 1:
            key = self.key(paths[0])
            await self._request(
                f"borrar {paths[0]}",
                lambda: self._client.delete_object(Bucket=self._t.bucket, Key=key),
            )
            return
        batches = [paths[i : i + DELETE_BATCH] for i in range(0, len(paths), DELETE_BATCH)]
        gate = asyncio.Semaphore(max(1, min(width, 8)))

        async def one(batch: Sequence[str]) -> None:
            async with gate:
                await self._delete_batch(batch)

        await _all_or_first_error([one(b) for b in batches])

    async def _delete_batch(self, paths: Sequence[str]) -> None:
        """DeleteObjects answers per key: every key must come back deleted (a key already
        gone is deleted too); any other answer fails, naming the keys."""
        by_key = {self.key(p): p for p in paths}
        objects = [{"Key": k} for k in by_key]
        response = await self._request(
            f"borrar {len(paths)} archivos",
            lambda: self._client.delete_objects(
                Bucket=self._t.bucket, Delete={"Objects": objects, "Quiet": False}
            ),
        )
        deleted = {str(d["Key"]) for d in response.get("Deleted", [])}
        errors = {
            str(e["Key"]): f"{e.get('Code', '?')}: {e.get('Message', '')}"
            for e in response.get("Errors", [])
            if str(e.get("Code")) not in MISSING_CODES
        }
        missing_answer = [k for k in by_key if k not in deleted and k not in errors]
        if errors or missing_answer:
            named = [f"{by_key[k]} ({why})" for k, why in sorted(errors.items())]
            named += [f"{by_key[k]} (sin respuesta para esta llave)" for k in missing_answer]
            raise RemoteError(
                self._name,
                f"S3 no borró {len(named)} de {len(paths)} archivos de cortes ya no retenidos:"
                f" {', '.join(named[:5])}{' ...' if len(named) > 5 else ''}. El sitio sigue"
                " completo; el siguiente corte los vuelve a borrar. Si se repite, revise que la"
                " política del bucket permita s3:DeleteObject al usuario de prepush.",
            )

    async def prepare_dirs(self, dirs: Sequence[str]) -> None:
        return None  # a bucket has no directories: a key's '/' is part of its name

    # --- CloudFront -------------------------------------------------------------------------

    async def invalidate(self, paths: Sequence[str]) -> str | None:
        """Create an invalidation of ``paths`` and wait until CloudFront says it completed.
        The publisher's deadline bounds the wait; each request has the request timeout."""
        distribution = self._t.distribution_id
        if self._cloudfront is None or distribution is None or not paths:
            return None
        cloudfront = self._cloudfront
        # One invalidation takes a few thousand paths at most: past that, the whole site.
        items = ["/" + p for p in paths] if len(paths) <= MAX_INVALIDATION_PATHS else ["/*"]
        started = time.monotonic()
        created = await self._cdn(
            "crear la invalidación de CloudFront",
            lambda: cloudfront.create_invalidation(
                DistributionId=distribution,
                InvalidationBatch={
                    "Paths": {"Quantity": len(items), "Items": items},
                    "CallerReference": f"prepush-{uuid.uuid4().hex}",
                },
            ),
        )
        invalidation = created["Invalidation"]
        ident = str(invalidation["Id"])
        status = str(invalidation.get("Status", ""))
        pause = POLL_FIRST
        while status != "Completed" and status.upper() != "COMPLETED":
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
            answer = await self._cdn(
                "consultar la invalidación de CloudFront",
                lambda: cloudfront.get_invalidation(DistributionId=distribution, Id=ident),
            )
            status = str(answer["Invalidation"].get("Status", ""))
        seconds = time.monotonic() - started
        return (
            f"invalidación {ident} de CloudFront ({distribution}) de {', '.join(items)}"
            f" completada en {seconds:.1f} s"
        )

    async def _cdn(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._call(what, request)
        except S3Error as exc:
            raise explain(self._name, f"CloudFront {self._t.distribution_id}", exc, what) from exc

    async def cdn_findings(self) -> list[tuple[str, str]]:
        """How CloudFront treats json/main.json, for 'prepush check': (status, detail)."""
        if self._cloudfront is None or self._t.distribution_id is None:
            return []
        from prepush.transports.s3.cdn import main_json_behaviour

        return await main_json_behaviour(self._cloudfront, self._t.distribution_id, self._cdn)

    # --- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        self._die("La conexión se cortó por el plazo del corte.")
        if self._cloudfront is not None:
            _abort_connections(self._cloudfront)

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), self._timeout)


class _Listing:
    """The bucket's listing, made once when first asked for, for one upload call."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, Listed]]]) -> None:
        self._fetch = fetch
        self._found: dict[str, Listed] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> dict[str, Listed]:
        async with self._lock:
            if self._found is None:
                self._found = await self._fetch()
            return self._found


def _abort_connections(client: Any) -> None:
    """Close every socket of the client's HTTP pool now, without waiting on the network.
    aiobotocore has no public call for this; a failure here only leaves sockets to the GC."""
    with contextlib.suppress(Exception):
        sessions = client._endpoint.http_session._sessions or {}
        for session in sessions.values():
            connector = session.connector
            if connector is not None:
                connector._close()


async def _all_or_first_error(calls: Sequence[Awaitable[None]]) -> None:
    """Run every call; once all settle, raise the first failure (in the order given)."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome

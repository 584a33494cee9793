"""The bucket a pull reads as its origin: one object read as a pull reads it, conditionally
and chunk by chunk into a sink, bounded by the time its bytes take. It goes through the S3
transport's client and request machinery (:mod:`.transport`, opened by
:func:`.connect.open_bucket`), so it is counted, bounded and translated to Spanish the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prepush.transports.s3.errors import MISSING_CODES, NOT_MODIFIED_CODES, S3Error
from prepush.transports.s3.transport import S3Transport

# A pull reads its origin in chunks of this size, and allows each read the request timeout
# plus the time its bytes take at this rate (bytes per second).
READ_CHUNK = 256 * 1024
MIN_READ_RATE = 256 * 1024


@dataclass(frozen=True)
class ObjectRead:
    """What a conditional read of an object found: 'ok' (with its ETag, size, and its bytes
    unless they went to a sink), 'not_modified' or 'missing'."""

    status: Literal["ok", "not_modified", "missing"]
    etag: str = ""
    size: int = 0
    data: bytes | None = None


class _SinkFailed(Exception):
    """Carries what a read's sink raised through the request machinery, untranslated."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def read_object(
    transport: S3Transport,
    path: str,
    *,
    etag: str | None = None,
    sink: Callable[[bytes], None] | None = None,
    size_hint: int = 0,
) -> ObjectRead:
    """Read an object as a pull reads its origin: conditionally (``etag``: unchanged is
    'not_modified', with no body), into ``sink`` chunk by chunk when given (else whole,
    in ``data``). Bounded by the request timeout plus the time ``size_hint`` bytes take
    at :data:`MIN_READ_RATE`. A body shorter than announced is a lost connection; an
    exception the sink raises is raised as it is."""
    key = transport.key(path)
    what = f"leer {path}"
    chunks: list[bytes] = []

    async def get() -> ObjectRead:
        conditions = {"IfNoneMatch": etag} if etag else {}
        response = await transport._client.get_object(
            Bucket=transport._t.bucket, Key=key, **conditions
        )
        received = 0
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                received += len(chunk)
                if sink is None:
                    chunks.append(chunk)
                    continue
                try:
                    sink(chunk)
                except Exception as exc:
                    raise _SinkFailed(exc) from exc
        announced = int(response.get("ContentLength", received))
        if received != announced:
            raise S3Error("IncompleteBody", f"llegaron {received} de {announced} bytes", None)
        return ObjectRead(
            "ok",
            str(response.get("ETag", "")),
            received,
            b"".join(chunks) if sink is None else None,
        )

    timeout = transport._timeout + size_hint / MIN_READ_RATE
    try:
        return await transport._call(what, get, timeout)
    except _SinkFailed as failed:
        raise failed.error from None
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            return ObjectRead("missing")
        if exc.code in NOT_MODIFIED_CODES:
            return ObjectRead("not_modified", etag or "")
        raise transport._explain(exc, what) from exc

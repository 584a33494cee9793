"""Opening an S3 client: for a difusor's bucket (:func:`open_s3`, from its roster entry) or
for any bucket with given limits and credentials (:func:`open_bucket`, also a pull's origin),
checked with one HeadBucket, never leaking the client whatever fails on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from prepush.exceptions import ConnectError
from prepush.settings import Difusor, S3Fields, Settings
from prepush.transports.s3.errors import S3Error, bucket_check_error
from prepush.transports.s3.transport import S3Transport, Target


@dataclass(frozen=True)
class Limits:
    """How long to wait and how much to keep in flight, for one bucket's client."""

    connect_timeout: float
    request_timeout: float
    in_flight: int


def _config(limits: Limits, fields: S3Fields) -> AioConfig:
    return AioConfig(
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.request_timeout,
        # prepush retries a whole attempt over a new connection; botocore's own retries would
        # hide a broken link behind the request timeout.
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=limits.in_flight,
        # Each PUT already carries the manifest's sha256; no second checksum of every body.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if fields.endpoint_url else "auto"},
        user_agent_extra="prepush",
    )


def _credentials(difusor: Difusor, fields: S3Fields, settings: Settings) -> dict[str, str]:
    if fields.access_key_id_env is None:
        return {}
    found = {
        "aws_access_key_id": settings.secret(difusor, fields.access_key_id_env),
        "aws_secret_access_key": settings.secret(difusor, fields.secret_access_key_env),
        "aws_session_token": settings.secret(difusor, fields.session_token_env),
    }
    return {k: v for k, v in found.items() if v is not None}


async def open_s3(difusor: Difusor, settings: Settings) -> S3Transport:
    """A client for the difusor's bucket, checked with one HeadBucket (credentials, bucket,
    endpoint)."""
    fields = difusor.s3
    assert fields is not None  # the roster requires s3: for transport: s3
    publish = settings.roster.publish
    limits = Limits(
        publish.connect_timeout_seconds, publish.request_timeout_seconds, publish.files_in_flight
    )
    credentials = _credentials(difusor, fields, settings)
    return await open_bucket(difusor.name, fields, limits, credentials)


async def open_bucket(
    name: str,
    fields: S3Fields,
    limits: Limits,
    credentials: dict[str, str],
    *,
    check: bool = True,
) -> S3Transport:
    """A client for one bucket (a difusor's, or the origin a pull reads), checked with one
    HeadBucket unless ``check`` is False (a reader may lack s3:ListBucket). Never leaks the
    client, whatever fails or is cancelled on the way."""
    session = _session(fields.profile)
    config = _config(limits, fields)
    closers: list[Callable[[], Awaitable[object]]] = []
    timeout = limits.connect_timeout
    try:
        client = await _enter(
            session.create_client(
                "s3",
                region_name=fields.region,
                endpoint_url=fields.endpoint_url,
                config=config,
                **credentials,
            ),
            closers,
        )
        cloudfront = None
        if fields.cloudfront_distribution_id:
            cloudfront = await _enter(
                session.create_client(
                    "cloudfront",
                    region_name="us-east-1",
                    endpoint_url=fields.endpoint_url,
                    config=config,
                    **credentials,
                ),
                closers,
            )
        target = Target(
            name,
            fields.bucket,
            fields.prefix,
            fields.cloudfront_distribution_id,
            limits.request_timeout,
        )
        transport = S3Transport(target, client, cloudfront, closers)
        if check:
            await _first_contact(transport, client, fields, timeout)
    except BaseException:
        for close in closers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), timeout)
        raise
    return transport


_LOADER: list[Any] = []


def _session(profile: str | None) -> AioSession:
    """A session per difusor (its credentials may refresh under locks of the running event
    loop), sharing one loader: the S3 and CloudFront API models are read and parsed once per
    process, not once per difusor (a tenth of a second of CPU each)."""
    session = AioSession(profile=profile)
    if _LOADER:
        session.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(session.get_component("data_loader"))
    return session


async def _enter(manager: Any, closers: list[Callable[[], Awaitable[object]]]) -> Any:
    client = await manager.__aenter__()
    closers.append(lambda: manager.__aexit__(None, None, None))
    return client


async def _first_contact(
    transport: S3Transport, client: Any, fields: S3Fields, timeout: float
) -> None:
    where = f"{fields.endpoint_url or 'S3'} ({fields.region})"
    try:
        await asyncio.wait_for(
            transport._call("revisar el bucket", lambda: client.head_bucket(Bucket=fields.bucket)),
            timeout,
        )
    except TimeoutError:
        raise ConnectError(
            transport._t.name,
            f"{where} no respondió en {timeout:g} s. Verifique la red y endpoint_url.",
        ) from None
    except S3Error as exc:
        raise bucket_check_error(transport._t.name, fields.bucket, where, exc) from exc

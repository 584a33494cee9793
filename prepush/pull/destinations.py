"""The difusor's own site, where a pull publishes: a local directory (served by its web
server) or an S3 bucket. The transport is opened here; what is written there, and in what
order, is the publish protocol's (:mod:`prepush.publish.protocol`)."""

from __future__ import annotations

from prepush.pull.config import PullSettings
from prepush.transports.base import Transport


async def open_destination(settings: PullSettings) -> Transport:
    config = settings.config
    if config.destination.directory is not None:
        from prepush.transports.local import LocalTransport

        return LocalTransport(
            settings.name,
            settings.resolve(config.destination.directory),
            config.request_timeout_seconds,
        )
    fields = config.destination.s3
    assert fields is not None
    from prepush.transports.s3.connect import Limits, open_bucket

    limits = Limits(
        config.connect_timeout_seconds, config.request_timeout_seconds, config.files_in_flight
    )
    return await open_bucket(settings.name, fields, limits, settings.s3_credentials(fields))

"""``publish --watch``: the night's publisher, each new corte as it appears in paquetes/.

One run per corte (:mod:`prepush.publish.publisher`), with the connections and the worker
processes kept between cortes; with a shared ledger, only while this machine holds the
publisher's lease (:mod:`prepush.publish.lease`); with ``--metrics``, what it does, for
Prometheus (:mod:`prepush.publish.metrics`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prepush.exceptions import EmbargoError, LedgerUnavailableError, LockBusyError, PackageError
from prepush.package import newest_corte
from prepush.publish.lease import LeaseKeeper
from prepush.publish.publisher import ConnectionPool, start_workers
from prepush.publish.request import PublishReport, PublishRequest
from prepush.transports import Connector, connect

if TYPE_CHECKING:
    from prepush.publish.metrics import Monitor

log = logging.getLogger("prepush")

Runner = Callable[[PublishRequest, ConnectionPool], Awaitable[PublishReport]]


def watch(
    request: PublishRequest,
    interval_s: float,
    run: Runner,
    connector: Connector = connect,
    monitor: Monitor | None = None,
) -> None:
    """Publish each new package as it appears in paquetes/, until interrupted (Ctrl-C).

    Connections stay open between cortes (with SSH keepalives), so a corte costs only its
    own requests. A corte already published by this loop is not published again; a failed
    difusor is retried with the next corte, as on a timer.

    With a shared ledger, only while this machine holds the publisher's lease
    (:mod:`prepush.publish.lease`): until then it is the standby and waits, saying who
    publishes; having taken the lease it publishes the newest corte and goes on.
    """

    workers = start_workers(request, connector, keep=True)

    async def loop() -> None:
        pool = ConnectionPool(connector, keep=True, workers=workers)
        published: str | None = None
        keeper = LeaseKeeper.for_settings(request.settings)
        if keeper is not None and monitor is not None:
            keeper.on_look = lambda: monitor.refresh(keeper)
        try:
            while True:
                if keeper is not None and not keeper.holds:
                    await _take_turn(keeper)
                    published = None  # the other machine may have published meanwhile
                if monitor is not None:
                    monitor.refresh(keeper)
                newest = newest_corte(request.settings.packages_dir)
                if newest is not None and newest != published:
                    try:
                        report = await run(
                            dataclasses.replace(request, corte=newest, lease=keeper), pool
                        )
                        published = newest
                        if monitor is not None:
                            monitor.observe(report)
                    except (EmbargoError, PackageError) as exc:
                        # One refused or broken package does not stop the night's publisher.
                        log.error("%s", exc)
                        published = newest
                    except LockBusyError as exc:
                        # Another prepush of this directory (a manual publish, a rollback)
                        # holds the run: this corte is tried again in the next round.
                        log.warning("%s", exc)
                    except LedgerUnavailableError as exc:
                        if keeper is None:
                            raise
                        keeper.lost_ledger(exc)
                await asyncio.sleep(interval_s)
        finally:
            if keeper is not None:
                await keeper.stop(release=True)
            await pool.close_all()

    try:
        asyncio.run(loop())
    finally:
        if workers is not None:
            workers.close()


async def _take_turn(keeper: LeaseKeeper) -> None:
    """Wait as the standby until this machine holds the lease, then keep it renewed."""
    await keeper.wait_for_turn()
    keeper.start_renewing()

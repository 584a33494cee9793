"""Publish a corte to every difusor at once: the run around the protocol.

What happens on one difusor, step by step, is :mod:`prepush.publish.protocol`; each
difusor of a share in its own task, with its retries and deadline, is
:mod:`prepush.publish.share`. This module is the run: the local run lock, the publisher's
lease on a shared ledger, the checks before anything is sent (going back, the package's
integrity, the embargo), the run in the ledger, the difusores dealt over the worker
processes (:mod:`prepush.publish.workers`), and what a Ctrl-C leaves each public site showing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Sequence

from prepush.exceptions import PublishInterrupted
from prepush.ledger import EMBARGO_OVERRIDE, WORKER_LOST, Ledger
from prepush.package import Package, find_package
from prepush.publish.embargo import embargo_violation, enforce_embargo
from prepush.publish.guards import refuse_going_back
from prepush.publish.integrity import refuse_unless_intact
from prepush.publish.interruption import SeenByThePublic, unwound
from prepush.publish.lease import on_duty
from prepush.publish.protocol_types import Delivery, Event, EventSink, LockOwner
from prepush.publish.request import PublishReport, PublishRequest
from prepush.publish.runlock import RunLock
from prepush.publish.share import (
    ABORTED_CLOSE_SECONDS,
    Connections,
    SharePublisher,
    package_ready_at,
)
from prepush.publish.workers import Job, Workers, deal, process_count
from prepush.settings import Difusor
from prepush.transports import Connector, connect

log = logging.getLogger("prepush")

RUN_LOCK_FILE = ".prepush-run.lock"


def _ignore(_: Event) -> None:
    return None


class ConnectionPool(Connections):
    """What a run keeps between cortes with ``publish --watch``: the connections of this
    process, and the worker processes that serve the other shares of the difusores
    (:mod:`prepush.publish.workers`)."""

    def __init__(self, connector: Connector, *, keep: bool, workers: Workers | None = None) -> None:
        super().__init__(connector, keep=keep)
        self.workers = workers


def publish(
    request: PublishRequest,
    events: EventSink = _ignore,
    connector: Connector = connect,
) -> PublishReport:
    """Run one publish under the local run lock and record it in the ledger."""
    workers = start_workers(request, connector, keep=False)

    async def once() -> PublishReport:
        pool = ConnectionPool(connector, keep=False, workers=workers)
        try:
            return await publish_async(request, events, pool)
        finally:
            await pool.close_all()

    try:
        return asyncio.run(once())
    finally:
        if workers is not None:
            workers.close()


def start_workers(request: PublishRequest, connector: Connector, *, keep: bool) -> Workers | None:
    """The worker processes for this request's difusores, forked now: before the ledger is
    opened and before any event loop runs."""
    processes = process_count(request.settings, len(request.difusores))
    if processes == 1:
        return None
    return Workers.start(processes - 1, request.settings, connector, keep=keep)


async def publish_async(
    request: PublishRequest, events: EventSink, pool: ConnectionPool
) -> PublishReport:
    """One publish on a running event loop, with connections from ``pool``."""
    settings = request.settings
    purpose = "rollback" if request.rollback else "publish"
    lock = RunLock(
        settings.workdir / RUN_LOCK_FILE,
        settings.roster.publish.run_lock_wait_seconds,
        purpose=purpose,
        on_wait=functools.partial(_waiting, request, events),
    )
    async with lock:
        return await _publish_locked(request, events, pool)


def _waiting(request: PublishRequest, events: EventSink, holder: str) -> None:
    """Said once while this run waits for another's run lock: in the log (cron mail, the
    journal) and on each difusor's row of the live table."""
    wait_s = request.settings.roster.publish.run_lock_wait_seconds
    log.warning(
        "Esperando a que termine otra ejecución de prepush en este directorio (%s); se espera"
        " hasta %g s (publish.run_lock_wait_seconds).",
        holder,
        wait_s,
    )
    for difusor in request.difusores:
        events(Event(difusor.name, "waiting", f"otra ejecución: {holder}"))


async def _publish_locked(
    request: PublishRequest, events: EventSink, pool: ConnectionPool
) -> PublishReport:
    settings = request.settings
    async with on_duty(settings, request.lease) as (ledger, epoch):
        ledger.mark_interrupted()
        package = find_package(settings.packages_dir, request.corte)
        if not request.rollback:
            refuse_going_back(ledger, request.difusores, package.corte)
        if pool.workers is not None:
            pool.workers.prepare(package.corte)
        refuse_unless_intact(
            package, settings, ledger, "rollback" if request.rollback else "publish"
        )
        election = settings.roster.election
        if (
            request.override_embargo is None
            and not request.rollback
            and embargo_violation(package.manifest, election, request.clock())
            and _everyone_has(ledger, request.difusores, package.corte)
        ):
            # After the window a timer keeps running: with nothing to send it is a quiet
            # success, not an embargo refusal every minute.
            return PublishReport(
                None,
                package.corte,
                [],
                note=f"Fuera de la ventana de publicación y sin nada nuevo: el corte"
                f" {package.corte} ya está en todos los difusores que lo reciben.",
            )
        violation = enforce_embargo(
            package.manifest, election, request.clock(), request.override_embargo
        )
        lock_owner = LockOwner.new_id()
        run_id = ledger.start_run(
            "rollback" if request.rollback else "publish",
            package.corte,
            {
                "dry_run": request.dry_run,
                "difusores": [d.name for d in request.difusores],
                "lock_owner": lock_owner,
                **({} if epoch is None else {"epoch": epoch}),
            },
        )
        if violation is not None and not request.dry_run:
            ledger.record_event(
                run_id,
                None,
                EMBARGO_OVERRIDE,
                f"{violation} Publicado por decisión del operador: {request.override_embargo}",
            )
        owner = LockOwner(lock_owner, run_id, workdir=str(settings.workdir), epoch=epoch)
        seen = SeenByThePublic(events, package, request.difusores, ledger)
        try:
            deliveries = await _deliver_everywhere(request, ledger, owner, seen, pool, package)
        except asyncio.CancelledError:
            # Ctrl-C: the difusores' tasks unwind (each aborts its connection), then the
            # ledger and the operator are told what each public site shows now.
            await unwound(request.difusores, ABORTED_CLOSE_SECONDS)
            ledger.interrupt_run(run_id, seen.flipped)
            raise PublishInterrupted(
                package.corte, seen.serving_now(), rollback=request.rollback
            ) from None
        if request.rollback and not request.dry_run:
            for delivery in deliveries:
                if delivery.outcome in ("delivered", "up_to_date"):
                    ledger.hold(delivery.difusor, delivery.corte, run_id)
        report = PublishReport(run_id, package.corte, deliveries, rollback=request.rollback)
        ledger.finish_run(run_id, report.status)
        return report


async def _deliver_everywhere(
    request: PublishRequest,
    ledger: Ledger,
    owner: LockOwner,
    events: EventSink,
    pool: ConnectionPool,
    package: Package,
) -> list[Delivery]:
    """Every difusor at once: this process serves its share, each worker serves another."""
    if pool.workers is None or pool.workers.count == 0:
        return await SharePublisher(request, ledger, owner, events, pool).run_all(package)
    shares = deal(request.difusores, pool.workers.count + 1)
    _tell_dead_workers(pool.workers, shares, ledger, owner.run_id)
    alive = [True, *pool.workers.alive()]
    # A dead worker's difusores are the parent's from now on; the others stay where they are.
    own_share = [d for share, ok in zip(shares, alive, strict=True) if not ok for d in share]
    package.cache.share(sum(alive))
    mine = SharePublisher(
        dataclasses.replace(request, difusores=[*shares[0], *own_share]),
        ledger,
        owner,
        events,
        pool,
    )
    jobs = {
        slot: Job(
            corte=package.corte,
            names=tuple(d.name for d in share),
            explicit_corte=request.corte is not None,
            dry_run=request.dry_run,
            override_embargo=request.override_embargo,
            rollback=request.rollback,
            owner=owner,
            manifest_digest=package.manifest.digest,
            standing={
                d.name: (ledger.active_suspension(d.name), ledger.active_hold(d.name))
                for d in share
            },
        )
        for slot, share in enumerate(shares)
        if slot and alive[slot] and share
    }
    difusores = {d.name: d for d in request.difusores}

    def record(lost: Delivery) -> None:
        lost.package_ready_at = package_ready_at(package)
        mine.record_unattempted(difusores[lost.difusor], package, lost, lost.error_message or "")

    own, theirs = await asyncio.gather(
        mine.run_all(package), pool.workers.publish(jobs, ledger, events, record)
    )
    by_name = {d.difusor: d for d in [*own, *theirs]}
    return [by_name[d.name] for d in request.difusores]


def _tell_dead_workers(
    workers: Workers, shares: list[list[Difusor]], ledger: Ledger, run_id: int
) -> None:
    for slot in workers.newly_dead():
        names = ", ".join(d.name for d in shares[slot]) or "ninguno"
        message = (
            f"El proceso de trabajo {slot} terminó; el proceso principal atiende desde ahora a"
            f" sus difusores ({names}). La publicación sigue con un proceso menos; si vuelve a"
            " pasar, repita con -v y repórtelo."
        )
        log.error("%s", message)
        ledger.record_event(run_id, None, WORKER_LOST, message)


def _everyone_has(ledger: Ledger, difusores: Sequence[Difusor], corte: str) -> bool:
    """Every difusor that would receive ``corte`` already serves it (or a newer one)."""
    for difusor in difusores:
        if ledger.active_suspension(difusor.name) or ledger.active_hold(difusor.name):
            continue
        serving = ledger.serving(difusor.name)
        if serving is None or serving.corte < corte:
            return False
    return True

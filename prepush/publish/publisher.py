"""Publish a corte to every difusor at once: the heart of prepush.

Per difusor, over one connection: take the remote lock, read the state once, upload only
what it lacks straight to final names (nobody reads them before the flip), record the state,
flip the entry files last (``json/main.json`` the very last) by rename, record the state
again, remove what no retained corte references, release the lock. A difusor missing any
file is never flipped. Each difusor runs in its own task with its own retries and deadline,
so one bad difusor never slows or fails another. Every attempt goes to the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from prepush.exceptions import (
    ConnectError,
    DeadlineError,
    DifusorError,
    EmbargoError,
    ExitCode,
    PackageError,
    PrepushError,
    RemoteError,
    RemoteLockedError,
)
from prepush.ledger import DeliveryKind, DeliveryResult, Ledger
from prepush.package import (
    MAIN_JSON,
    MANIFEST,
    FileEntry,
    LocalManifests,
    Package,
    canonical_json,
    find_package,
    newest_corte,
    sha256_bytes,
)
from prepush.publish.delta import DeltaPlanner
from prepush.publish.embargo import embargo_violation, enforce_embargo
from prepush.publish.runlock import RunLock
from prepush.publish.state import (
    LOCK_PATH,
    PENDING_PATH,
    STATE_PATH,
    Plan,
    RemoteFile,
    RemoteState,
    Resolver,
    forget,
    garbage,
    merge_pending,
    pending_record,
    plan_corte,
    record_corte,
)
from prepush.settings import Difusor, Settings
from prepush.transports.base import Delta, Transport, Upload
from prepush.transports.sftp import open_sftp

log = logging.getLogger("prepush")

Outcome = Literal[
    "delivered", "up_to_date", "failed", "skipped_suspended", "skipped_held", "dry_run"
]
# The corte is there (or, for a dry run, would be): the difusor was reached.
REACHED: tuple[Outcome, ...] = ("delivered", "up_to_date", "dry_run")
# Left alone by decision of the operator: neither a failure nor a delivery.
SKIPPED: tuple[Outcome, ...] = ("skipped_suspended", "skipped_held")
RETRYABLE = (ConnectError, RemoteLockedError)
RUN_LOCK_FILE = ".prepush-run.lock"

Connector = Callable[[Difusor, Settings], Awaitable[Transport]]


@dataclass(frozen=True)
class Event:
    """Progress of one difusor, for the live view or the plain log."""

    difusor: str
    stage: str
    detail: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


EventSink = Callable[[Event], None]


@dataclass
class Delivery:
    """What happened on one difusor: measured, never estimated."""

    difusor: str
    corte: str
    outcome: Outcome = "failed"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    package_ready_at: datetime | None = None
    connected_at: datetime | None = None
    flip_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    files_uploaded: int = 0
    files_linked: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    files_rebuilt: int = 0
    bytes_sent: int = 0
    bytes_reused: int = 0
    meta_bytes: int = 0
    requests: int = 0
    atomic: bool | None = None
    error_class: str | None = None
    error_message: str | None = None
    plan: Plan | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("delivered", "up_to_date", "dry_run")


@dataclass
class PublishReport:
    run_id: int | None
    corte: str
    deliveries: list[Delivery]
    rollback: bool = False
    # Why the run did nothing at all (e.g. outside the window with nothing new).
    note: str | None = None

    @property
    def reached(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.outcome in REACHED]

    @property
    def exit_code(self) -> ExitCode:
        """3 when the corte reached no difusor, whatever the reason; else 1 if one failed."""
        if not self.deliveries:
            return ExitCode.OK
        if not self.reached:
            return ExitCode.TOTAL_FAILURE
        failed = [d for d in self.deliveries if d.outcome not in (*REACHED, *SKIPPED)]
        return ExitCode.PARTIAL if failed else ExitCode.OK

    @property
    def nothing_new(self) -> bool:
        """Nothing changed anywhere: a timer run that has nothing to say."""
        return self.exit_code == ExitCode.OK and all(
            d.outcome in ("up_to_date", *SKIPPED) for d in self.deliveries
        )

    @property
    def why_nobody(self) -> str | None:
        """When the corte reached no difusor: why, and what to do, in one sentence."""
        if self.exit_code != ExitCode.TOTAL_FAILURE:
            return None
        counts = {
            outcome: sum(1 for d in self.deliveries if d.outcome == outcome)
            for outcome in ("failed", "skipped_suspended", "skipped_held")
        }
        reasons = []
        if counts["skipped_suspended"]:
            reasons.append(
                f"{counts['skipped_suspended']} suspendido(s) (se reanudan con 'prepush resume"
                " NOMBRE')"
            )
        if counts["skipped_held"]:
            reasons.append(
                f"{counts['skipped_held']} retenido(s) en el corte de una reversión (se liberan"
                " con 'prepush resume-latest')"
            )
        if counts["failed"]:
            reasons.append(f"{counts['failed']} falló(aron) (vea el error de cada uno)")
        action = "la reversión" if self.rollback else "el corte"
        return f"Ningún difusor recibió {action} {self.corte}: {'; '.join(reasons)}."

    @property
    def status(self) -> str:
        return {
            ExitCode.OK: "ok",
            ExitCode.PARTIAL: "partial",
            ExitCode.TOTAL_FAILURE: "failed",
        }[self.exit_code]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PublishRequest:
    settings: Settings
    difusores: Sequence[Difusor]
    corte: str | None = None
    dry_run: bool = False
    override_embargo: str | None = None
    rollback: bool = False
    clock: Callable[[], datetime] = _utc_now


def _ignore(_: Event) -> None:
    return None


class ConnectionPool:
    """Open connections to the difusores, kept between cortes by ``publish --watch``.

    A one-shot publish closes each connection when its difusor is done. In --watch the next
    corte reuses it: no handshake, no login, no new sftp session, which is most of the cost
    of a small corte. A connection that failed, or that the server closed, is never reused.
    """

    def __init__(self, connector: Connector, *, keep: bool) -> None:
        self._connector = connector
        self._keep = keep
        self._idle: dict[str, Transport] = {}

    async def get(self, difusor: Difusor, settings: Settings) -> tuple[Transport, bool]:
        """A connection to ``difusor`` and whether it is a kept one."""
        kept = self._idle.pop(difusor.name, None)
        if kept is not None and kept.alive:
            return kept, True
        if kept is not None:
            await kept.close()
        return await self._connector(difusor, settings), False

    async def release(self, difusor: Difusor, transport: Transport, *, healthy: bool) -> None:
        if self._keep and healthy and transport.alive:
            self._idle[difusor.name] = transport
        else:
            await transport.close()

    async def close_all(self) -> None:
        idle, self._idle = self._idle, {}
        await asyncio.gather(*(t.close() for t in idle.values()))


def publish(
    request: PublishRequest,
    events: EventSink = _ignore,
    connector: Connector = open_sftp,
) -> PublishReport:
    """Run one publish under the local run lock and record it in the ledger."""

    async def once() -> PublishReport:
        pool = ConnectionPool(connector, keep=False)
        try:
            return await publish_async(request, events, pool)
        finally:
            await pool.close_all()

    return asyncio.run(once())


async def publish_async(
    request: PublishRequest, events: EventSink, pool: ConnectionPool
) -> PublishReport:
    """One publish on a running event loop, with connections from ``pool``."""
    settings = request.settings
    lock = RunLock(settings.workdir / RUN_LOCK_FILE, settings.roster.publish.run_lock_wait_seconds)
    with lock, Ledger(settings.ledger_path) as ledger:
        ledger.mark_interrupted()
        package = find_package(settings.packages_dir, request.corte)
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
        run_id = ledger.start_run(
            "rollback" if request.rollback else "publish",
            package.corte,
            {"dry_run": request.dry_run, "difusores": [d.name for d in request.difusores]},
        )
        if violation is not None and not request.dry_run:
            ledger.record_event(
                run_id,
                None,
                "embargo_override",
                f"{violation} Publicado por decisión del operador: {request.override_embargo}",
            )
        publisher = _Publisher(request, ledger, run_id, events, pool)
        deliveries = await publisher.run_all(package)
        if request.rollback and not request.dry_run:
            for delivery in deliveries:
                if delivery.outcome in ("delivered", "up_to_date"):
                    ledger.hold(delivery.difusor, delivery.corte, run_id)
        report = PublishReport(run_id, package.corte, deliveries, rollback=request.rollback)
        ledger.finish_run(run_id, report.status)
        return report


def _everyone_has(ledger: Ledger, difusores: Sequence[Difusor], corte: str) -> bool:
    """Every difusor that would receive ``corte`` already serves it (or a newer one)."""
    for difusor in difusores:
        if ledger.active_suspension(difusor.name) or ledger.active_hold(difusor.name):
            continue
        serving = ledger.serving(difusor.name)
        if serving is None or serving.corte < corte:
            return False
    return True


Runner = Callable[[PublishRequest, ConnectionPool], Awaitable[PublishReport]]


def watch(
    request: PublishRequest,
    interval_s: float,
    run: Runner,
    connector: Connector = open_sftp,
) -> None:
    """Publish each new package as it appears in paquetes/, until interrupted (Ctrl-C).

    Connections stay open between cortes (with SSH keepalives), so a corte costs only its
    own requests. A corte already published by this loop is not published again; a failed
    difusor is retried with the next corte, as on a timer.
    """

    async def loop() -> None:
        pool = ConnectionPool(connector, keep=True)
        published: str | None = None
        try:
            while True:
                newest = newest_corte(request.settings.packages_dir)
                if newest is not None and newest != published:
                    try:
                        await run(dataclasses.replace(request, corte=newest), pool)
                    except (EmbargoError, PackageError) as exc:
                        # One refused or broken package does not stop the night's publisher.
                        log.error("%s", exc)
                    published = newest
                await asyncio.sleep(interval_s)
        finally:
            await pool.close_all()

    asyncio.run(loop())


class _Publisher:
    def __init__(
        self,
        request: PublishRequest,
        ledger: Ledger,
        run_id: int,
        events: EventSink,
        pool: ConnectionPool,
    ) -> None:
        self.request = request
        self.settings = request.settings
        self.ledger = ledger
        self.run_id = run_id
        self.events = events
        self.pool = pool
        # This machine and work dir: the local run lock makes any remote lock with this
        # owner a leftover of an earlier run of ours (a cut connection), never a live one.
        self.owner = f"{socket.gethostname()}:{self.settings.workdir}"
        self._planners: dict[str, DeltaPlanner] = {}
        self.manifests = LocalManifests(self.settings.packages_dir)

    def planner(self, package: Package) -> DeltaPlanner:
        """One per package and run: what it measures is shared by every difusor."""
        if package.corte not in self._planners:
            self._planners[package.corte] = DeltaPlanner(package)
        return self._planners[package.corte]

    async def run_all(self, package: Package) -> list[Delivery]:
        self.manifests.add(package.manifest)
        tasks = [
            asyncio.create_task(self.deliver(difusor, package), name=difusor.name)
            for difusor in self.request.difusores
        ]
        return list(await asyncio.gather(*tasks))

    def _package_for_attempt(self, first: Package) -> Package:
        """The newest package when publishing 'latest': a retry never pushes a stale corte."""
        if self.request.corte is not None:
            return first
        corte = newest_corte(self.settings.packages_dir)
        if corte is None or corte <= first.corte:
            return first
        newest = find_package(self.settings.packages_dir, corte)
        if embargo_violation(newest.manifest, self.settings.roster.election, self.request.clock()):
            return first
        return newest

    @property
    def kind(self) -> DeliveryKind:
        if self.request.dry_run:
            return "dry_run"
        return "rollback" if self.request.rollback else "publish"

    async def deliver(self, difusor: Difusor, package: Package) -> Delivery:
        delivery = Delivery(difusor.name, package.corte, package_ready_at=package_ready_at(package))
        suspension = self.ledger.active_suspension(difusor.name)
        if suspension is not None:
            return self._skip_suspended(difusor, package, delivery, suspension.reason)
        hold = None if self.request.rollback else self.ledger.active_hold(difusor.name)
        if hold is not None and hold.corte != package.corte:
            return self._skip_held(difusor, package, delivery, hold.corte)
        delivery_id = self.ledger.start_delivery(
            self.run_id,
            difusor.name,
            package.corte,
            package.manifest.corte_time,
            delivery.package_ready_at,
            self.kind,
        )
        deadline = self.settings.deadline()
        try:
            # wait_for runs the attempts in a task of their own, so the deadline's
            # cancellation never mixes with the cancellations of the upload pool.
            await asyncio.wait_for(
                self._attempts(difusor, package, delivery, delivery_id, deadline),
                deadline.total_seconds(),
            )
        except TimeoutError:
            last = f" Último error: {delivery.error_message}" if delivery.error_message else ""
            self._fail(
                delivery,
                DeadlineError(
                    difusor.name,
                    f"No terminó dentro del plazo de {deadline.total_seconds():g} s; su sitio"
                    f" sigue en el corte anterior completo.{last}",
                ),
            )
        except DifusorError as exc:
            self._fail(delivery, exc)
        except PrepushError as exc:
            self._fail(delivery, DifusorError(difusor.name, str(exc)))
        delivery.finished_at = datetime.now(UTC)
        self.ledger.finish_delivery(delivery_id, _result(delivery))
        # The final figures, so the live table ends on what the summary says.
        written = delivery.files_uploaded + delivery.files_rebuilt + delivery.files_linked
        self.events(
            Event(
                difusor.name,
                delivery.outcome,
                delivery.error_message or "",
                files_done=written,
                files_total=written,
                bytes_done=delivery.bytes_sent,
            )
        )
        if delivery.outcome == "failed" and self.kind == "publish":
            await self._suspend_if_too_many_failures(difusor, delivery)
        return delivery

    def _skip_suspended(
        self, difusor: Difusor, package: Package, delivery: Delivery, reason: str
    ) -> Delivery:
        delivery.outcome = "skipped_suspended"
        delivery.error_message = (
            f"Suspendido ({reason}). No se le envía nada hasta 'prepush resume {difusor.name}'."
        )
        return self._record_skip(difusor, package, delivery, reason)

    def _skip_held(
        self, difusor: Difusor, package: Package, delivery: Delivery, held: str
    ) -> Delivery:
        delivery.outcome = "skipped_held"
        delivery.error_message = (
            f"Retenido en el corte {held} por una reversión; no recibe el corte {package.corte}"
            " hasta 'prepush resume-latest'."
        )
        return self._record_skip(difusor, package, delivery, f"retenido en {held}")

    def _record_skip(
        self, difusor: Difusor, package: Package, delivery: Delivery, detail: str
    ) -> Delivery:
        delivery_id = self.ledger.start_delivery(
            self.run_id,
            difusor.name,
            delivery.corte,
            package.manifest.corte_time,
            delivery.package_ready_at,
            self.kind,
        )
        delivery.finished_at = datetime.now(UTC)
        self.ledger.finish_delivery(delivery_id, _result(delivery))
        self.events(Event(difusor.name, delivery.outcome, detail))
        return delivery

    async def _suspend_if_too_many_failures(self, difusor: Difusor, delivery: Delivery) -> None:
        limit = self.settings.roster.election.max_failed_cortes
        failed = self.ledger.consecutive_failed_cortes(difusor.name)
        if failed < limit:
            return
        minutes = failed * self.settings.roster.election.corte_interval_minutes
        reason = (
            f"{failed} cortes consecutivos fallidos (unos {minutes} minutos); último error:"
            f" {delivery.error_message}"
        )
        self.ledger.suspend(difusor.name, reason, automatic=True, run_id=self.run_id)
        log.error("[%s] suspendido automáticamente: %s", difusor.name, reason)
        self.events(Event(difusor.name, "suspended", reason))
        if self.settings.roster.election.notice_on_suspend:
            await self._post_notice(difusor)

    async def _post_notice(self, difusor: Difusor) -> None:
        """Tell the difusor's visitors that its site stopped updating, if it can be reached.

        Only ``json/main.json`` changes: it keeps its corte and gains an ``aviso`` that the
        site shows on every view. The results themselves are never touched.
        """
        try:
            transport, _ = await asyncio.wait_for(
                self.pool.get(difusor, self.settings),
                self.settings.roster.publish.connect_timeout_seconds,
            )
        except (DifusorError, TimeoutError) as exc:
            self.ledger.record_event(
                self.run_id, difusor.name, "notice_failed", f"inalcanzable para el aviso: {exc}"
            )
            return
        try:
            await _write_notice(transport, _notice_text(), self.manifests)
            self.ledger.record_event(
                self.run_id, difusor.name, "notice", "sitio marcado: actualización interrumpida"
            )
        except DifusorError as exc:
            self.ledger.record_event(self.run_id, difusor.name, "notice_failed", exc.message)
        finally:
            await self.pool.release(difusor, transport, healthy=False)

    def _fail(self, delivery: Delivery, exc: DifusorError) -> None:
        # After the flip the public sees the corte: it is delivered, with the error noted.
        delivery.outcome = "delivered" if delivery.flip_at is not None else "failed"
        delivery.error_class = type(exc).__name__
        delivery.error_message = exc.message

    async def _attempts(
        self,
        difusor: Difusor,
        package: Package,
        delivery: Delivery,
        delivery_id: int,
        deadline: timedelta,
    ) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_delay(deadline.total_seconds()),
            wait=wait_exponential_jitter(multiplier=0.25, max=4.0, jitter=0.5),
            retry=retry_if_exception_type(RETRYABLE),
            before_sleep=self._log_retry(difusor),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                delivery.attempts = number
                current = self._package_for_attempt(package)
                if current.corte != delivery.corte:
                    delivery.corte = current.corte
                    delivery.package_ready_at = package_ready_at(current)
                    self.ledger.set_delivery_corte(
                        delivery_id,
                        current.corte,
                        current.manifest.corte_time,
                        delivery.package_ready_at,
                    )
                attempt_id = self.ledger.start_attempt(delivery_id, number)
                try:
                    await self._attempt(difusor, current, delivery, delivery_id)
                except DifusorError as exc:
                    self.ledger.finish_attempt(
                        attempt_id, "failed", type(exc).__name__, exc.message
                    )
                    delivery.error_message = exc.message
                    raise
                except asyncio.CancelledError:
                    self.ledger.finish_attempt(
                        attempt_id, "failed", "DeadlineError", "plazo agotado durante el intento"
                    )
                    raise
                self.ledger.finish_attempt(attempt_id, delivery.outcome)
                delivery.error_message = None

    def _log_retry(self, difusor: Difusor) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            message = exc.message if isinstance(exc, DifusorError) else str(exc)
            log.warning(
                "[%s] intento %d falló: %s Reintento en %.1f s.",
                difusor.name,
                state.attempt_number,
                message,
                wait,
            )
            self.ledger.record_event(
                self.run_id, difusor.name, "retry", f"intento {state.attempt_number}: {message}"
            )
            self.events(Event(difusor.name, "retrying", f"intento {state.attempt_number}"))

        return before_sleep

    async def _attempt(
        self, difusor: Difusor, package: Package, delivery: Delivery, delivery_id: int
    ) -> None:
        self.events(Event(difusor.name, "connecting"))
        transport, kept = await self.pool.get(difusor, self.settings)
        requests, sent, reused = transport.requests, transport.bytes_sent, transport.bytes_reused
        session = _Session(self, difusor, transport, package, delivery, kept=kept)
        healthy = False
        try:
            if delivery.connected_at is None:
                delivery.connected_at = datetime.now(UTC)
                self.ledger.set_connected(delivery_id, delivery.connected_at)
            await session.run()
            healthy = True
        finally:
            delivery.requests += transport.requests - requests
            delivery.bytes_sent += transport.bytes_sent - sent - session.meta_bytes
            delivery.bytes_reused += transport.bytes_reused - reused
            delivery.meta_bytes += session.meta_bytes
            await self.pool.release(difusor, transport, healthy=healthy)


class _Session:
    """One attempt on one difusor over one connection."""

    def __init__(
        self,
        publisher: _Publisher,
        difusor: Difusor,
        transport: Transport,
        package: Package,
        delivery: Delivery,
        *,
        kept: bool = False,
    ) -> None:
        self.p = publisher
        self.difusor = difusor
        self.t = transport
        self.kept = kept
        self.package = package
        self.manifest = package.manifest
        self.delivery = delivery
        self.retention = publisher.settings.roster.election.retention
        # Lock, pending record and state: prepush's own bookkeeping, counted apart from
        # the corte's files.
        self.meta_bytes = 0

    def event(self, stage: str, detail: str = "", **progress: int) -> None:
        self.p.events(Event(self.difusor.name, stage, detail, **progress))

    async def run(self) -> None:
        dry_run = self.p.request.dry_run
        if not dry_run:
            await self.first_contact(self.take_lock())
        try:
            state = await self.read_state()
            plan = plan_corte(self.manifest, state, hardlink=self.t.capabilities.hardlink)
            self.delivery.plan = plan
            self.delivery.files_skipped = plan.skipped
            if plan.up_to_date:
                self.delivery.outcome = "up_to_date"
                self.delivery.atomic = state.atomic
                return
            if self.p.request.rollback:
                self.refuse_unless_retained(plan)
            if dry_run:
                self.delivery.outcome = "dry_run"
                return
            await self.refuse_symlinked_dirs()
            await self.transfer(plan, state)
            await self.write_meta(PENDING_PATH, pending_record(self.manifest, plan, state))
            await self.flip(plan)
            record_corte(state, self.manifest)
            state.atomic = self.t.capabilities.atomic_flip
            doomed = garbage(state, self.manifest, self.retention)
            forget(state, doomed, self.retention)
            await self.write_state(state)
            await asyncio.gather(self.t.remove(PENDING_PATH), self.remove(doomed))
            self.delivery.outcome = "delivered"
        finally:
            if not dry_run:
                await self.release_lock()

    async def first_contact(self, step: Awaitable[None]) -> None:
        """A kept connection may have died quietly since the last corte (a rebooted server, a
        dropped NAT entry): its first request gets the connect timeout, then a retry
        connects afresh."""
        if not self.kept:
            await step
            return
        timeout = self.p.settings.roster.publish.connect_timeout_seconds
        try:
            await asyncio.wait_for(step, timeout)
        except TimeoutError:
            raise ConnectError(
                self.difusor.name,
                f"La conexión abierta desde el corte anterior no respondió en {timeout:g} s; se"
                " reintenta con una conexión nueva.",
            ) from None

    # --- lock and state -------------------------------------------------------------------

    def _lock_bytes(self) -> bytes:
        return json.dumps(
            {
                "owner": self.p.owner,
                "pid": os.getpid(),
                "run": self.p.run_id,
                "since": datetime.now(UTC).isoformat(),
            },
            sort_keys=True,
        ).encode()

    async def take_lock(self) -> None:
        data = self._lock_bytes()
        if await self.t.create_exclusive(LOCK_PATH, data):
            self.meta_bytes += len(data)
            return
        owner, since = _parse_lock(await self.t.read_file(LOCK_PATH))
        age = (datetime.now(UTC) - since).total_seconds() if since else float("inf")
        stale_after = self.p.settings.roster.publish.lock_stale_seconds
        if owner != self.p.owner and age < stale_after:
            raise RemoteLockedError(
                self.difusor.name,
                f"Otro publicador ({owner}) tiene el candado remoto desde hace {age:.0f} s. Si"
                f" ya no está en marcha, el candado se liberará solo a los {stale_after:g} s.",
            )
        await self.t.replace(LOCK_PATH, data)
        self.meta_bytes += len(data)
        if owner != self.p.owner:
            self.p.ledger.record_event(
                self.p.run_id,
                self.difusor.name,
                "lock_taken_over",
                f"candado remoto abandonado por {owner} hace {age:.0f} s; se tomó",
            )

    async def release_lock(self) -> None:
        try:
            await self.t.remove(LOCK_PATH)
        except DifusorError as exc:
            log.warning("[%s] no se pudo liberar el candado remoto: %s", self.difusor.name, exc)

    async def read_state(self) -> RemoteState:
        data, pending = await asyncio.gather(
            self.t.read_file(STATE_PATH), self.t.read_file(PENDING_PATH)
        )
        state = RemoteState()
        if data is not None:
            try:
                state = RemoteState.from_bytes(data, self.p.manifests)
            except (ValueError, KeyError, TypeError) as exc:
                raise RemoteError(
                    self.difusor.name,
                    f"El estado remoto {STATE_PATH} está dañado ({exc}). Alguien lo modificó en"
                    " el servidor: bórrelo para que prepush vuelva a enviar el corte completo.",
                ) from None
        if pending is not None:
            merge_pending(state, pending)
        return state

    def refuse_unless_retained(self, plan: Plan) -> None:
        """A rollback only re-points the entry files: every other file must still be there."""
        if plan.uploads or plan.replaces or plan.links:
            raise RemoteError(
                self.difusor.name,
                f"El corte {self.manifest.corte} ya no está retenido en este difusor (faltan"
                f" {len(plan.uploads) + len(plan.replaces) + len(plan.links)} archivos); no se"
                " revierte. Elija un corte más reciente o publíquelo de nuevo con 'prepush"
                " publish CORTE'.",
            )

    async def write_state(self, state: RemoteState) -> None:
        data = state.to_bytes(self.p.manifests)
        await self.t.replace(STATE_PATH, data)
        self.meta_bytes += len(data)

    async def write_meta(self, path: str, data: bytes) -> None:
        await self.t.write_file(path, data)
        self.meta_bytes += len(data)

    async def refuse_symlinked_dirs(self) -> None:
        tops = sorted({f.path.split("/")[0] for f in self.manifest.files if "/" in f.path})
        linked = await asyncio.gather(*(self.t.is_symlink(top) for top in tops))
        escaping = [top for top, is_link in zip(tops, linked, strict=True) if is_link]
        if escaping:
            raise RemoteError(
                self.difusor.name,
                f"En el directorio remoto, {', '.join(escaping)} es un enlace simbólico: prepush"
                " no escribe fuera del directorio del difusor. Pida al difusor reemplazarlo por"
                " un directorio real.",
            )

    # --- transfer, flip, cleanup ------------------------------------------------------------

    async def transfer(self, plan: Plan, state: RemoteState) -> None:
        await self.t.make_dirs(list(plan.mkdirs))
        total_files = len(plan.uploads) + len(plan.replaces) + len(plan.links)
        total_bytes = plan.bytes_to_send
        done = {"files": 0, "bytes": 0}

        def sent(upload: Upload) -> None:
            done["files"] += 1
            done["bytes"] += upload.size
            self.event(
                "uploading",
                files_done=done["files"],
                files_total=total_files,
                bytes_done=done["bytes"],
                bytes_total=total_bytes,
            )

        deltas: dict[str, Delta] = {}
        if self.t.capabilities.copy_data:
            deltas = self.p.planner(self.package).deltas(state, (*plan.uploads, *plan.replaces))
        # With an incomplete state any file may already be there, perhaps being read: never
        # write one in place, always by temporary name and rename.
        unknown = not state.complete
        if unknown:
            self.p.ledger.record_event(
                self.p.run_id,
                self.difusor.name,
                "incomplete_state",
                f"el difusor tiene cortes cuyo paquete no está en esta máquina"
                f" ({', '.join(sorted(state.unresolved))}): se envía todo por nombre temporal"
                " y no se borra nada hasta que salgan de la retención",
            )
        uploads = [
            self.upload_of(e, replace=unknown, delta=deltas.get(e.path)) for e in plan.uploads
        ]
        uploads += [
            self.upload_of(e, replace=True, delta=deltas.get(e.path)) for e in plan.replaces
        ]
        width = self.p.settings.roster.publish.files_in_flight
        self.event("uploading", files_total=total_files, bytes_total=total_bytes)
        await self.t.upload(uploads, width, sent, self.package.cache.read)
        if plan.links:
            await self.t.link_many([(link.source, link.entry.path) for link in plan.links], width)
            done["files"] += len(plan.links)
            self.event("uploading", files_done=done["files"], files_total=total_files)
        self.delivery.files_uploaded = len(plan.uploads) + len(plan.replaces) - len(deltas)
        self.delivery.files_rebuilt = len(deltas)
        self.delivery.files_linked = len(plan.links)

    def upload_of(
        self, entry: FileEntry, *, replace: bool = False, delta: Delta | None = None
    ) -> Upload:
        local = self.package.local_path(entry.path)
        return Upload(entry.path, entry.size, local=local, replace=replace, delta=delta)

    async def flip(self, plan: Plan) -> None:
        self.event("flipping")
        # One at a time, in order: json/main.json is always the last to change.
        for entry in plan.flips:
            await self.t.upload(
                [self.upload_of(entry, replace=True)], 1, None, self.package.cache.read
            )
        if self.delivery.flip_at is None:
            # A retry may flip the same corte again; the public saw it at the first flip.
            self.delivery.flip_at = datetime.now(UTC)
        self.delivery.files_uploaded += len(plan.flips)
        self.delivery.atomic = self.t.capabilities.atomic_flip

    async def remove(self, doomed: list[str]) -> None:
        if not doomed:
            return
        self.event("cleaning", f"{len(doomed)} archivos de cortes ya no retenidos")
        try:
            await self.t.remove_many(doomed, self.p.settings.roster.publish.files_in_flight)
        except DifusorError as exc:
            # The corte is already delivered; leftovers only cost disk and the next run retries.
            log.warning("[%s] limpieza incompleta: %s", self.difusor.name, exc.message)
        self.delivery.files_deleted = len(doomed)


def _notice_text() -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        "Actualización interrumpida: este sitio dejó de recibir los cortes del PREP"
        f" ({stamp}). Consulte el sitio oficial del instituto para los resultados más recientes."
    )


async def _write_notice(transport: Transport, text: str, manifests: Resolver) -> None:
    data = await transport.read_file(MAIN_JSON)
    if data is None:
        return
    main = json.loads(data)
    main["aviso"] = text
    notice = canonical_json(main)
    await transport.replace(MAIN_JSON, notice)
    state_bytes = await transport.read_file(STATE_PATH)
    if state_bytes is not None:
        # So the next publish, even of the same corte, puts the real main.json back.
        state = RemoteState.from_bytes(state_bytes, manifests)
        held = state.files.get(MAIN_JSON)
        if held is not None:
            state.files[MAIN_JSON] = RemoteFile(sha256_bytes(notice), len(notice), held.cortes)
            await transport.replace(STATE_PATH, state.to_bytes(manifests))


def _parse_lock(data: bytes | None) -> tuple[str, datetime | None]:
    try:
        raw = json.loads(data or b"")
        return str(raw["owner"]), datetime.fromisoformat(raw["since"])
    except (ValueError, KeyError, TypeError):
        return "desconocido", None


def package_ready_at(package: Package) -> datetime:
    """When the package was complete: the manifest is written last, then renamed into place."""
    return datetime.fromtimestamp((package.path / MANIFEST).stat().st_mtime, UTC)


def _result(delivery: Delivery) -> DeliveryResult:
    return DeliveryResult(
        outcome=delivery.outcome,
        flip_at=delivery.flip_at,
        finished_at=delivery.finished_at or datetime.now(UTC),
        attempts=delivery.attempts,
        files_uploaded=delivery.files_uploaded,
        files_linked=delivery.files_linked,
        files_skipped=delivery.files_skipped,
        files_deleted=delivery.files_deleted,
        bytes_sent=delivery.bytes_sent,
        meta_bytes=delivery.meta_bytes,
        requests=delivery.requests,
        atomic=delivery.atomic,
        error_class=delivery.error_class,
        error_message=delivery.error_message,
        files_rebuilt=delivery.files_rebuilt,
        bytes_reused=delivery.bytes_reused,
    )

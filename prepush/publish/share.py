"""One process's share of a publish run: each of its difusores at once.

What happens on one difusor, step by step, is :mod:`prepush.publish.protocol`. This module
runs it for every difusor of a share (the whole run, without worker processes), each in its
own task with its own connection, retries and deadline, so one bad difusor never slows or
fails another: the connections (kept between cortes by ``--watch``), retries with backoff,
the deadline that aborts the connection, suspension after too many failed cortes (with the
notice on the difusor's site), and the ledger, where every attempt goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from prepush.delivery.runner import (
    INTERRUPTED,
    DeliveryRunner,
    OnRetry,
    Retry,
    conclude,
    switch_corte,
)
from prepush.exceptions import (
    ConnectError,
    CredentialError,
    DifusorError,
    InternalError,
    LocalFileError,
    PrepushError,
    RemoteLockedError,
    describe_os_error,
)
from prepush.ledger import DeliveryKind, DeliveryResult, Ledger
from prepush.package import (
    MANIFEST,
    SIGNATURE,
    FileEntry,
    LocalManifests,
    Package,
    find_package,
    load_public_key,
    newest_corte,
    published_manifest,
    published_signature,
    sha256_bytes,
    signature_is_valid,
)
from prepush.publish.delta import DeltaPlanner
from prepush.publish.embargo import embargo_violation
from prepush.publish.integrity import intact_or_recorded
from prepush.publish.lease import FENCE
from prepush.publish.notice import write_notice
from prepush.publish.protocol import Session
from prepush.publish.protocol_types import (
    Delivery,
    Event,
    EventSink,
    Extra,
    Hooks,
    LockOwner,
    ProtocolSettings,
)
from prepush.publish.request import PublishRequest
from prepush.settings import Difusor, Settings
from prepush.transports import Connector
from prepush.transports.base import Transport

log = logging.getLogger("prepush")

RETRYABLE = (ConnectError, RemoteLockedError)
ABORTED_CLOSE_SECONDS = 2.0


class Connections:
    """Open connections to the difusores, kept between cortes by ``publish --watch``.

    A one-shot publish closes each connection when its difusor is done. In --watch the next
    corte reuses it: no handshake, no login, no new sftp session, which is most of the cost
    of a small corte. A connection that failed, or that the server closed, is never reused.
    """

    def __init__(self, connector: Connector, *, keep: bool) -> None:
        self._connector = connector
        self._keep = keep
        self._idle: dict[str, Transport] = {}
        # With --watch, the package this process published last, its verified bytes still
        # held: the next corte's deltas measure their bases on them.
        self.published: dict[str, Package] = {}

    def remember(self, package: Package) -> None:
        if self._keep:
            self.published = {package.corte: package}

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


async def _closed_after_abort(transport: Transport) -> None:
    """After an abort nothing waits on the network; the close that follows only frees what
    is local (children to reap, sockets), briefly, even while the task is being cancelled."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(transport.close(), ABORTED_CLOSE_SECONDS)


class SharePublisher:
    """The difusores of one process's share, each in its own task."""

    def __init__(
        self,
        request: PublishRequest,
        ledger: Ledger,
        owner: LockOwner,
        events: EventSink,
        pool: Connections,
    ) -> None:
        self.request = request
        self.settings = request.settings
        self.ledger = ledger
        self.owner = owner
        self.run_id = owner.run_id
        self.events = events
        self.pool = pool
        self._planners: dict[str, DeltaPlanner] = {}
        self._signed: dict[str, tuple[Extra, ...]] = {}
        # The connection each difusor's attempt is using, to say at the deadline how long
        # the server had been silent.
        self._in_use: dict[str, Transport] = {}
        self.manifests = LocalManifests(self.settings.packages_dir)
        publish = self.settings.roster.publish
        self.protocol = ProtocolSettings(
            retention=self.settings.roster.election.retention,
            width=publish.files_in_flight,
            lock_stale_seconds=publish.lock_stale_seconds,
            connect_timeout_seconds=publish.connect_timeout_seconds,
        )

    def planner(self, package: Package) -> DeltaPlanner:
        """One per package and run: what it measures is shared by every difusor."""
        if package.corte not in self._planners:
            self._planners[package.corte] = DeltaPlanner(package, self.pool.published)
        return self._planners[package.corte]

    def origin_extras(self, difusor: Difusor, package: Package) -> tuple[Extra, ...]:
        """What an origin difusor publishes besides the corte: its signed manifest and
        signature, the very bytes checked against the roster's key, for pull difusores."""
        if not difusor.origin:
            return ()
        if package.corte not in self._signed:
            manifest = package.manifest.to_bytes()
            try:
                signature = (package.path / SIGNATURE).read_bytes()
            except OSError as exc:
                raise LocalFileError(
                    difusor.name,
                    f"No se pudo leer {SIGNATURE} de {package.path}: {describe_os_error(exc)}."
                    " Sin la firma no se publica en un origen; revise el paquete con 'prepush"
                    " verify-package'.",
                ) from None
            key_path = self.settings.signing_key_path
            if key_path is None or not signature_is_valid(
                manifest, signature, load_public_key(key_path)
            ):
                raise LocalFileError(
                    difusor.name,
                    f"La firma de {package.path} cambió después de verificarse; no se publica en"
                    " un origen. Vuelva a construir el paquete con 'prepush build'.",
                )
            self._signed[package.corte] = tuple(
                Extra(FileEntry(path, len(data), sha256_bytes(data)), data=data)
                for path, data in (
                    (published_manifest(package.corte), manifest),
                    (published_signature(package.corte), signature),
                )
            )
        return self._signed[package.corte]

    def hooks(self, difusor: Difusor) -> Hooks:
        def record(kind: str, message: str) -> None:
            self.ledger.record_event(self.run_id, difusor.name, kind, message)

        return Hooks(
            event=self.events,
            record=record,
            is_own_leftover=self.ledger.is_own_lock_owner,
            fence=FENCE.check,
        )

    async def run_all(self, package: Package) -> list[Delivery]:
        self.manifests.add(package.manifest)
        tasks = [
            asyncio.create_task(self.deliver(difusor, package), name=difusor.name)
            for difusor in self.request.difusores
        ]
        deliveries = list(await asyncio.gather(*tasks))
        self.pool.remember(package)
        return deliveries

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
        if not intact_or_recorded(newest, self.settings, self.ledger, self.run_id):
            return first
        self.manifests.add(newest.manifest)
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
        missing = self.settings.credential_problems(difusor)
        if missing:
            return await self._fail_without_credentials(difusor, package, delivery, missing)
        delivery_id = self.ledger.start_delivery(
            self.run_id,
            difusor.name,
            package.corte,
            package.manifest.corte_time,
            delivery.package_ready_at,
            self.kind,
        )
        try:
            await self._run_attempts(difusor, package, delivery, delivery_id)
        except DifusorError as exc:
            conclude(delivery, exc)
        except PrepushError as exc:
            conclude(delivery, DifusorError(difusor.name, str(exc)))
        except Exception as exc:  # one difusor's surprise never ends the others' run
            log.debug("[%s] error interno", difusor.name, exc_info=True)
            conclude(delivery, _internal(difusor, exc))
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

    async def _run_attempts(
        self, difusor: Difusor, package: Package, delivery: Delivery, delivery_id: int
    ) -> None:
        """The attempts, by the delivery runner: deadline, retries, the switch to a newer
        corte (only before any flip), each attempt in the ledger."""

        def silence() -> float | None:
            in_use = self._in_use.get(difusor.name)
            return in_use.silence() if in_use is not None else None

        runner = DeliveryRunner(
            self.settings.deadline().total_seconds(),
            Retry(RETRYABLE),
            on_retry=self._log_retry(difusor),
            silence=silence,
            name=difusor.name,
        )
        current = package

        async def attempt(number: int) -> None:
            nonlocal current
            delivery.attempts = number
            # After a flip the delivery stays on its corte: no newer package is looked at.
            newest = current if delivery.flip_at else self._package_for_attempt(package)
            if switch_corte(delivery, newest.corte):
                current = newest
                delivery.package_ready_at = package_ready_at(current)
                self.ledger.set_delivery_corte(
                    delivery_id,
                    current.corte,
                    current.manifest.corte_time,
                    delivery.package_ready_at,
                )
            await self._recorded_attempt(difusor, current, delivery, delivery_id, number)

        await runner.run(attempt, lambda: delivery)

    async def _recorded_attempt(
        self, difusor: Difusor, package: Package, delivery: Delivery, delivery_id: int, number: int
    ) -> None:
        attempt_id = self.ledger.start_attempt(delivery_id, number)
        try:
            await self._attempt(difusor, package, delivery, delivery_id)
        except asyncio.CancelledError as exc:
            if exc.args == (INTERRUPTED,):
                why = ("Interrupted", "interrumpido por el operador (Ctrl-C) durante el intento")
            else:
                why = ("DeadlineError", "plazo agotado durante el intento")
            self.ledger.finish_attempt(attempt_id, "failed", *why)
            raise
        except Exception as exc:
            error = exc if isinstance(exc, DifusorError) else _internal(difusor, exc)
            self.ledger.finish_attempt(attempt_id, "failed", type(error).__name__, error.message)
            delivery.error_message = error.message
            raise error from exc if error is not exc else None
        self.ledger.finish_attempt(attempt_id, delivery.outcome)
        delivery.error_message = None

    def _skip_suspended(
        self, difusor: Difusor, package: Package, delivery: Delivery, reason: str
    ) -> Delivery:
        delivery.outcome = "skipped_suspended"
        delivery.error_message = (
            f"Suspendido ({reason}). No se le envía nada hasta 'prepush resume {difusor.name}'."
        )
        return self.record_unattempted(difusor, package, delivery, reason)

    def _skip_held(
        self, difusor: Difusor, package: Package, delivery: Delivery, held: str
    ) -> Delivery:
        delivery.outcome = "skipped_held"
        delivery.error_message = (
            f"Retenido en el corte {held} por una reversión; no recibe el corte {package.corte}"
            " hasta 'prepush resume-latest'."
        )
        return self.record_unattempted(difusor, package, delivery, f"retenido en {held}")

    async def _fail_without_credentials(
        self, difusor: Difusor, package: Package, delivery: Delivery, missing: list[str]
    ) -> Delivery:
        """A secret or key file this machine lacks fails its difusor alone, never contacted."""
        error = CredentialError(
            difusor.name,
            "Falta en esta máquina lo necesario para conectarse a este difusor:"
            f" {'; '.join(missing)}. Los demás difusores siguen.",
        )
        conclude(delivery, error)
        self.record_unattempted(difusor, package, delivery, error.message)
        if self.kind == "publish":
            await self._suspend_if_too_many_failures(difusor, delivery)
        return delivery

    def record_unattempted(
        self, difusor: Difusor, package: Package, delivery: Delivery, detail: str
    ) -> Delivery:
        """A delivery that ends before any attempt (skipped, or its worker lost): its ledger
        row, started and finished at once, and its event."""
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
        site shows on every view. The results themselves are never touched. Bounded by the
        corte's deadline, like a delivery.
        """
        deadline = self.settings.deadline().total_seconds()
        transport: Transport | None = None
        try:
            async with asyncio.timeout(deadline):
                transport, _ = await self.pool.get(difusor, self.settings)
                marked = await write_notice(
                    transport,
                    difusor.name,
                    self.owner,
                    self.hooks(difusor),
                    self.protocol,
                    self.manifests,
                )
        except Exception as exc:  # a notice never ends the run, whatever it meets
            if transport is not None:
                transport.abort()
                await _closed_after_abort(transport)
            self.ledger.record_event(
                self.run_id, difusor.name, "notice_failed", _notice_failure(difusor, exc)
            )
            return
        await self.pool.release(difusor, transport, healthy=False)
        if marked:
            self.ledger.record_event(
                self.run_id, difusor.name, "notice", "sitio marcado: actualización interrumpida"
            )

    def _log_retry(self, difusor: Difusor) -> OnRetry:
        def before_sleep(number: int, exc: BaseException, wait: float) -> None:
            message = exc.message if isinstance(exc, DifusorError) else str(exc)
            log.warning(
                "[%s] intento %d falló: %s Reintento en %.1f s.",
                difusor.name,
                number,
                message,
                wait,
            )
            self.ledger.record_event(
                self.run_id, difusor.name, "retry", f"intento {number}: {message}"
            )
            self.events(Event(difusor.name, "retrying", f"intento {number}"))

        return before_sleep

    async def _attempt(
        self, difusor: Difusor, package: Package, delivery: Delivery, delivery_id: int
    ) -> None:
        self.events(Event(difusor.name, "connecting"))
        transport, kept = await self.pool.get(difusor, self.settings)
        self._in_use[difusor.name] = transport
        requests, sent, reused = transport.requests, transport.bytes_sent, transport.bytes_reused
        session = Session(
            transport,
            package,
            delivery,
            settings=self.protocol,
            owner=self.owner,
            hooks=self.hooks(difusor),
            manifests=self.manifests,
            planner=self.planner(package),
            dry_run=self.request.dry_run,
            rollback=self.request.rollback,
            kept=kept,
            extras=self.origin_extras(difusor, package),
        )
        if delivery.connected_at is None:
            delivery.connected_at = datetime.now(UTC)
            self.ledger.set_connected(delivery_id, delivery.connected_at)
        try:
            await session.run()
        except asyncio.CancelledError:
            transport.abort()  # never wait on the network past the deadline
            await _closed_after_abort(transport)
            raise
        except BaseException:
            await self.pool.release(difusor, transport, healthy=False)
            raise
        else:
            await self.pool.release(difusor, transport, healthy=True)
        finally:
            self._in_use.pop(difusor.name, None)
            delivery.requests += transport.requests - requests
            delivery.bytes_sent += transport.bytes_sent - sent - session.meta_bytes
            delivery.bytes_reused += transport.bytes_reused - reused
            delivery.meta_bytes += session.meta_bytes


def _internal(difusor: Difusor, exc: BaseException) -> InternalError:
    return InternalError(
        difusor.name,
        f"Error interno de prepush con este difusor ({type(exc).__name__}: {exc}). Los demás"
        " difusores siguen; repita con -v para el detalle y repórtelo a los desarrolladores.",
    )


def _notice_failure(difusor: Difusor, exc: Exception) -> str:
    if isinstance(exc, DifusorError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "sin respuesta a tiempo"
    log.debug("[%s] error interno al poner el aviso", difusor.name, exc_info=True)
    return _internal(difusor, exc).message


def package_ready_at(package: Package) -> datetime:
    """When the package was complete: the manifest is written last, then renamed into place."""
    return datetime.fromtimestamp((package.path / MANIFEST).stat().st_mtime, UTC)


def _result(delivery: Delivery) -> DeliveryResult:
    finished_at = delivery.finished_at or datetime.now(UTC)
    return delivery.result(
        delivery.outcome, finished_at, delivery.error_class, delivery.error_message
    )

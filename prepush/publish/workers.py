"""Publishing from every core: the difusores of a run spread over worker processes.

asyncssh frames and encrypts every SSH packet in Python, so one process moves about one
core's worth of bytes. With workers, the difusores of a run are dealt out over processes
(``publish.workers``, one per core by default): the parent serves the first share itself and
each worker, forked at the start, serves another with its own event loop and connections. A
difusor's whole protocol stays in one process, and in ``--watch`` in the same one all night,
with its connection. The parent keeps what must be one: the run lock, the only writer of the
ledger (the workers call it over their pipe) and the live view (the workers' events come the
same way). A worker dies with its parent (a SIGKILL of prepush stops every process at once,
as the crash-point tests expect); a worker that dies alone fails its difusores, said so in the
ledger, and the others go on; from the next corte on the parent serves them itself (with
``--watch`` the night goes on with one process fewer). A job the worker cannot take (its copy
of the package is not the one the parent verified) fails its difusores with that reason and
the worker stays.

Workers are forked before the parent opens the ledger or starts an event loop, so nothing
that must not cross a fork (an SQLite connection, a running loop) does. The package files
each process reads stay in the kernel's page cache, shared by all of them; each process's
own cache of small files gets its share of the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, cast

from prepush.delivery.runner import conclude
from prepush.exceptions import IntegrityError, InternalError, PackageError
from prepush.ledger import DeliveryResult, HoldRow, Ledger, SuspensionRow
from prepush.package import MANIFEST, Package, find_package
from prepush.publish.protocol_types import FLIPPED, Delivery, Event, EventSink, LockOwner
from prepush.publish.request import PublishRequest
from prepush.publish.share import Connections, SharePublisher
from prepush.settings import Difusor, Settings
from prepush.transports import Connector

log = logging.getLogger("prepush")

# What a worker may ask of the parent's ledger: the calls a publish makes, nothing else.
# A worker waiting on each call would stall its loop until the parent's own loop came round,
# so only the rare questions wait for their answer. Writes are sent without waiting (the
# parent applies every message in order, so a later question sees them); a row the worker
# opens gets a provisional id at once, which the parent maps to the row it inserts; whether
# a difusor is suspended or held comes with the job.
LEDGER_QUESTIONS = frozenset(
    {"active_hold", "active_suspension", "consecutive_failed_cortes", "is_own_lock_owner"}
)
LEDGER_OPENS = frozenset({"start_attempt", "start_delivery"})
LEDGER_WRITES = frozenset(
    {
        "finish_attempt",
        "finish_delivery",
        "record_event",
        "set_connected",
        "set_delivery_corte",
        "suspend",
    }
)
# The calls whose first argument is a row the worker opened.
NAMES_A_ROW = frozenset(
    {"finish_attempt", "finish_delivery", "set_connected", "set_delivery_corte", "start_attempt"}
)
# Progress of one difusor goes to the parent at most this often; every other event at once.
PROGRESS_EVERY_S = 0.1
STOP_WAIT_S = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Job:
    """One corte for one worker's share of the difusores."""

    corte: str
    names: tuple[str, ...]
    explicit_corte: bool
    dry_run: bool
    override_embargo: str | None
    rollback: bool
    owner: LockOwner
    # The manifest the parent verified: the worker publishes its own copy only if it is that.
    manifest_digest: str
    # Each difusor's active suspension and hold, read by the parent as the job left.
    standing: dict[str, tuple[SuspensionRow | None, HoldRow | None]]


def process_count(settings: Settings, difusores: int) -> int:
    """How many processes serve a run: the roster's ``publish.workers`` (one per core by
    default), never more than there are difusores."""
    wanted = settings.roster.publish.workers or os.cpu_count() or 1
    return max(1, min(wanted, difusores))


def deal(difusores: Sequence[Difusor], processes: int) -> list[list[Difusor]]:
    """The difusores of each process, dealt in roster order: the same difusor always lands
    in the same process, so ``--watch`` keeps its connection there."""
    shares: list[list[Difusor]] = [[] for _ in range(processes)]
    for index, difusor in enumerate(difusores):
        shares[index % processes].append(difusor)
    return shares


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    # Ledger rows this worker opened and has not finished: finished as failed if it dies.
    open_deliveries: set[int] = field(default_factory=set)
    # The worker's provisional row ids, and the rows the parent inserted for them.
    rows: dict[int, int] = field(default_factory=dict)
    # Its death was told to the operator (once).
    death_told: bool = False
    # The difusores of the current job that have a delivery row in the ledger.
    recorded: set[str] = field(default_factory=set)
    # The current job's delivery rows: (difusor, corte), as the worker's writes said.
    deliveries: dict[int, tuple[str, str]] = field(default_factory=dict)
    # When the parent heard that each difusor of the current job flipped its corte.
    flips: dict[str, datetime] = field(default_factory=dict)

    def start_job(self) -> None:
        self.recorded.clear()
        self.deliveries.clear()
        self.flips.clear()


class JobRefused(Exception):
    """The worker refused the job (its package is not the verified one); it stays."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class Workers:
    """The worker processes of a run (or of a night, with ``--watch``): the parent's side."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @property
    def count(self) -> int:
        return len(self._workers)

    def alive(self) -> list[bool]:
        """Which workers can take a job, by slot."""
        return [w.process.is_alive() for w in self._workers]

    def newly_dead(self) -> list[int]:
        """The slots (from 1: the parent is 0) of workers found dead and not yet told."""
        found = []
        for slot, worker in enumerate(self._workers, start=1):
            if not worker.death_told and not worker.process.is_alive():
                worker.death_told = True
                found.append(slot)
        return found

    @classmethod
    def start(cls, extra: int, settings: Settings, connector: Connector, *, keep: bool) -> Workers:
        """Fork ``extra`` workers. Call before opening the ledger or starting a loop."""
        context = multiprocessing.get_context("fork")
        started = []
        for number in range(extra):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, settings, connector, keep, extra + 1),
                name=f"prepush-worker-{number + 1}",
                daemon=True,
            )
            process.start()
            child_end.close()
            started.append(_Worker(process, parent_end))
        return cls(started)

    def prepare(self, corte: str) -> None:
        """Let each worker read and hash ``corte``'s files while this process verifies the
        package: its share starts as soon as the job arrives. Nothing is sent before the job."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("prepare", corte))

    async def publish(
        self,
        jobs: dict[int, Job],
        ledger: Ledger,
        events: EventSink,
        unrecorded: Callable[[Delivery], None],
    ) -> list[Delivery]:
        """Run each job on the worker of its slot (from 1), serving their ledger calls and
        events until every one is done. A worker that dies (or refuses its job) fails its
        share, and each of its difusores that has no row in the ledger yet goes to
        ``unrecorded``, for the parent to record; the others go on."""
        loop = asyncio.get_running_loop()
        running = [(self._workers[slot - 1], job) for slot, job in jobs.items()]
        results: list[asyncio.Future[list[Delivery]]] = []
        for worker, job in running:
            done: asyncio.Future[list[Delivery]] = loop.create_future()
            results.append(done)
            worker.start_job()
            try:
                worker.conn.send(("publish", job))
            except (OSError, ValueError) as exc:  # it died since it was found alive
                done.set_exception(exc)
                continue
            loop.add_reader(worker.conn.fileno(), self._serve, worker, ledger, events, done)
        try:
            outcomes = await asyncio.gather(*results, return_exceptions=True)
        finally:
            for worker, _ in running:
                with contextlib.suppress(ValueError, OSError):
                    loop.remove_reader(worker.conn.fileno())
        deliveries: list[Delivery] = []
        for (worker, job), outcome in zip(running, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                lost = self._lost(worker, job, ledger, outcome)
                for delivery in lost:
                    if delivery.difusor not in worker.recorded:
                        unrecorded(delivery)
                deliveries += lost
            else:
                deliveries += outcome
        return deliveries

    def _serve(
        self,
        worker: _Worker,
        ledger: Ledger,
        events: EventSink,
        done: asyncio.Future[list[Delivery]],
    ) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                self._answer(worker, message, ledger, events, done)
        except (EOFError, OSError) as exc:
            if not done.done():
                done.set_exception(exc)
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(worker.conn.fileno())

    def _answer(
        self,
        worker: _Worker,
        message: tuple[Any, ...],
        ledger: Ledger,
        events: EventSink,
        done: asyncio.Future[list[Delivery]],
    ) -> None:
        kind = message[0]
        if kind == "call":
            _, name, args, kwargs = message
            try:
                value = getattr(ledger, name)(*args, **kwargs) if name in LEDGER_QUESTIONS else None
            except Exception as exc:  # the worker re-raises it where the call was made
                worker.conn.send(("error", RuntimeError(f"{name}: {exc!r}")))
                return
            worker.conn.send(("value", value))
        elif kind in ("open", "write"):
            self._write(worker, ledger, message)
        elif kind == "event":
            event: Event = message[1]
            if event.stage == "step" and event.detail == FLIPPED:
                worker.flips.setdefault(event.difusor, datetime.now(UTC))
            events(event)
        elif kind == "log":
            log.log(message[1], "%s", message[2])
        elif kind == "done" and not done.done():
            done.set_result(message[1])
        elif kind == "refused" and not done.done():
            done.set_exception(JobRefused(message[1], message[2]))

    def _write(self, worker: _Worker, ledger: Ledger, message: tuple[Any, ...]) -> None:
        kind, name, token, args, kwargs = message
        if name not in (LEDGER_OPENS if kind == "open" else LEDGER_WRITES):
            return
        try:
            if name in NAMES_A_ROW:
                args = (worker.rows[args[0]], *args[1:])
            value = getattr(ledger, name)(*args, **kwargs)
        except Exception as exc:
            log.error(
                "La bitácora no pudo registrar %s de un proceso de trabajo: %r. Revise el disco"
                " y los permisos de la bitácora.",
                name,
                exc,
            )
            return
        if kind == "open":
            worker.rows[token] = value
        if name == "start_delivery":
            worker.open_deliveries.add(value)
            worker.recorded.add(args[1])
            worker.deliveries[value] = (str(args[1]), str(args[2]))
        elif name == "set_delivery_corte" and args[0] in worker.deliveries:
            worker.deliveries[args[0]] = (worker.deliveries[args[0]][0], str(args[1]))
        elif name == "finish_delivery":
            worker.open_deliveries.discard(args[0])

    def _lost(
        self, worker: _Worker, job: Job, ledger: Ledger, why: BaseException
    ) -> list[Delivery]:
        """A worker died mid-run, or refused its job: its difusores failed, their ledger
        rows say why; a difusor whose flip the worker announced before dying was delivered
        (the public sees its corte), and its row says that."""
        if isinstance(why, JobRefused):
            error_class, message = why.error_class, why.message
        else:
            error_class = InternalError.__name__
            message = (
                f"El proceso de trabajo que atendía a este difusor terminó de forma inesperada"
                f" ({type(why).__name__}); el difusor sigue en el último corte completo. El"
                " siguiente corte lo vuelve a intentar; si se repite, repita con -v y"
                " repórtelo."
            )
        cortes = dict(worker.deliveries.values())
        lost = {
            name: self._lost_one(worker, name, cortes.get(name, job.corte), error_class, message)
            for name in job.names
        }
        for delivery_id in sorted(worker.open_deliveries):
            name = worker.deliveries.get(delivery_id, ("", ""))[0]
            delivery = lost.get(name) or Delivery(name, job.corte)
            ledger.finish_delivery(
                delivery_id,
                DeliveryResult(
                    outcome=delivery.outcome,
                    flip_at=delivery.flip_at,
                    finished_at=datetime.now(UTC),
                    error_class=error_class,
                    error_message=delivery.error_message or message,
                ),
            )
        worker.open_deliveries.clear()
        return list(lost.values())

    @staticmethod
    def _lost_one(
        worker: _Worker, name: str, corte: str, error_class: str, message: str
    ) -> Delivery:
        delivery = Delivery(name, corte, flip_at=worker.flips.get(name))
        if delivery.flip_at is not None:
            died = (
                "El proceso de trabajo que atendía a este difusor terminó de forma inesperada"
                " después del cambio. Si se repite, repita con -v y repórtelo."
            )
            conclude(delivery, InternalError(name, died))
        else:
            delivery.error_class, delivery.error_message = error_class, message
        return delivery

    def close(self) -> None:
        """Ask each worker to close its connections and end; end it if it does not."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
        deadline = time.monotonic() + STOP_WAIT_S
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1)
            worker.conn.close()
        self._workers = []


# --- the worker's side ---------------------------------------------------------------------


class _LedgerClient:
    """The parent's ledger, seen from a worker: writes and new rows go over the pipe without
    waiting; only a question waits for its answer."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._standing: dict[str, tuple[SuspensionRow | None, HoldRow | None]] = {}
        # Negative: never an SQLite row id.
        self._provisional = itertools.count(-1, -1)

    def expect(self, job: Job) -> None:
        self._standing = dict(job.standing)

    def active_suspension(self, difusor: str) -> SuspensionRow | None:
        return (
            self._standing[difusor][0]
            if difusor in self._standing
            else self._ask("active_suspension", difusor)
        )

    def active_hold(self, difusor: str) -> HoldRow | None:
        return (
            self._standing[difusor][1]
            if difusor in self._standing
            else self._ask("active_hold", difusor)
        )

    def _ask(self, name: str, *args: Any) -> Any:
        return self.__getattr__(name)(*args)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in LEDGER_OPENS:

            def open_row(*args: Any, **kwargs: Any) -> int:
                token = next(self._provisional)
                self._conn.send(("open", name, token, args, kwargs))
                return token

            return open_row
        if name in LEDGER_WRITES:

            def write(*args: Any, **kwargs: Any) -> None:
                if name == "suspend":  # what the job said of it is no longer so
                    self._standing.pop(str(args[0]), None)
                self._conn.send(("write", name, None, args, kwargs))

            return write
        if name not in LEDGER_QUESTIONS:
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._conn.send(("call", name, args, kwargs))
            kind, value = self._conn.recv()
            if kind == "error":
                raise value
            return value

        return call


class _EventForwarder:
    """Events to the parent's live view: at once, but a difusor's progress at most every
    PROGRESS_EVERY_S (thousands of files would otherwise mean thousands of messages)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._last_progress: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if event.stage == "uploading" and event.files_done < event.files_total:
            now = time.monotonic()
            if now - self._last_progress.get(event.difusor, 0.0) < PROGRESS_EVERY_S:
                return
            self._last_progress[event.difusor] = now
        self._conn.send(("event", event))


class _LogForwarder(logging.Handler):
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("log", record.levelno, record.getMessage()))


def _worker_main(
    conn: Connection, settings: Settings, connector: Connector, keep: bool, processes: int
) -> None:
    _die_with_parent()
    # Ctrl-C is the parent's to handle: it stops the workers in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = logging.getLogger()
    level = root.level
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_LogForwarder(conn))
    root.setLevel(level)
    code = 0
    try:
        asyncio.run(_serve_jobs(conn, settings, connector, keep, processes))
    except BaseException as exc:  # anything: the parent fails this worker's share, says why
        log.error("un proceso de trabajo terminó por un error interno: %r", exc)
        log.debug("%s", traceback.format_exc())
        code = 1
    # Skip the finalizers of what the fork copied from the parent (its objects are not ours).
    os._exit(code)


async def _serve_jobs(
    conn: Connection, settings: Settings, connector: Connector, keep: bool, processes: int
) -> None:
    loop = asyncio.get_running_loop()
    pool = Connections(connector, keep=keep)
    client = _LedgerClient(conn)
    ledger = cast(Ledger, client)
    events = _EventForwarder(conn)
    prepared: Package | None = None
    try:
        while True:
            message = await _next_message(loop, conn)
            if message[0] == "prepare":
                prepared = read_ahead(settings, message[1], processes)
                continue
            if message[0] != "publish":
                break
            job: Job = message[1]
            client.expect(job)
            by_name = {d.name: d for d in settings.roster.difusores}
            request = PublishRequest(
                settings=settings,
                difusores=[by_name[name] for name in job.names],
                corte=job.corte if job.explicit_corte else None,
                dry_run=job.dry_run,
                override_embargo=job.override_embargo,
                rollback=job.rollback,
            )
            try:
                package = verified_copy(settings, job, prepared, processes)
            except PackageError as exc:
                conn.send(("refused", type(exc).__name__, str(exc)))
                continue
            finally:
                prepared = None
            publisher = SharePublisher(request, ledger, job.owner, events, pool)
            conn.send(("done", await publisher.run_all(package)))
    finally:
        await pool.close_all()


def read_ahead(settings: Settings, corte: str, processes: int) -> Package | None:
    """This worker's copy of ``corte``, its files read and hashed; None if it cannot be
    opened now (the job will say why)."""
    try:
        package = find_package(settings.packages_dir, corte)
    except PackageError:
        return None
    return _held(package, processes)


def verified_copy(
    settings: Settings, job: Job, prepared: Package | None, processes: int
) -> Package:
    """The package of ``job``, as the parent verified it. A copy whose manifest is not the
    verified one (the package changed on disk since) is never published."""
    if (
        prepared is not None
        and prepared.corte == job.corte
        and prepared.manifest.digest == job.manifest_digest
    ):
        return prepared
    package = find_package(settings.packages_dir, job.corte)
    if package.manifest.digest != job.manifest_digest:
        raise IntegrityError(
            job.corte,
            [f"{MANIFEST}: cambió después de verificarse"],
            "Alguien reemplazó el paquete mientras se publicaba: no lo modifique en"
            " paquetes/; vuelva a construirlo con 'prepush build' si hace falta.",
        )
    return _held(package, processes)


def _held(package: Package, processes: int) -> Package:
    """This process's share of the file cache, filled with the files that match the manifest."""
    package.cache.share(processes)
    package.hold_verified()
    return package


async def _next_message(loop: asyncio.AbstractEventLoop, conn: Connection) -> tuple[Any, ...]:
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        return ("stop",)
    return message


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the parent dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)

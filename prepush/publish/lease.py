"""One publisher at a time: the lease of a shared ledger, and the fence it puts on writes.

With a PostgreSQL ledger two machines can run ``publish --watch`` with the same roster: the
one on duty and its standby. The ledger's ``publisher_lease`` row says which one publishes:
a node (host and working directory), an **epoch** (one more at each change of hands) and an
expiry by the database's clock (``publish.failover_seconds`` after the last renewal).

- The holder renews the lease every third of that time. The standby asks for it about ten
  times per period, and says who holds it and since when. When the holder dies, hangs or
  loses the database, its renewals stop and the standby takes the lease at its expiry, with
  the next epoch: within ``failover_seconds`` (plus one look), from the next corte, with the
  night's counts, suspensions and holds, which are in the shared ledger.
- **The fence.** Each difusor's remote lock records the epoch; a lock from an older epoch is
  taken over at once (a publisher that lost its turn left it). And before every write after
  the upload (pending record, each entry file with ``json/main.json`` last, state, cleanup)
  a run checks :data:`FENCE`: its lease is still valid by this machine's monotonic clock,
  counted from when the last successful renewal was *sent*, minus a margin. The database
  expires the lease no earlier than that, so a holder stops writing before anyone can take
  over; a holder that was paused (SIGSTOP, a frozen VM) or cut off from the database finds
  its lease gone on waking and never flips after the new holder. What remains is the gap
  between that check and the request reaching the server: a pause of exactly there and
  longer than the margin, which no client-side fence closes (SFTP has no conditional rename).
- The fence lives in shared memory, created before worker processes are forked, so a worker
  checks the same lease as its parent.

The same machine (same host and working directory) keeps its epoch when it claims again: a
``publish --watch`` restarted by systemd, or a manual ``publish``/``rollback`` beside it (the
local run lock keeps them apart). A manual publish on the standby is refused while the other
machine holds the lease: it says where to run it.

With an SQLite ledger (one machine) there is no lease and nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from prepush.exceptions import LeaseLostError, LedgerUnavailableError, StandbyError
from prepush.ledger import LEASE_LOST, LEASE_TAKEN, Claim, LeaseRow, Ledger, PostgresLocation
from prepush.settings import Settings

log = logging.getLogger("prepush")

HOLDER = "holder"
STANDBY = "standby"
# The share of the lease a holder trusts: the rest covers a request already on its way to
# a difusor, and clock rates that differ between this machine and the database.
TRUSTED_SHARE = 0.8
RENEWALS_PER_LEASE = 3
LOOKS_PER_LEASE = 10


@dataclass(frozen=True)
class Node:
    """One publishing machine: its host and working directory (a pair runs on two)."""

    host: str
    workdir: str
    pid: int

    @property
    def id(self) -> str:
        return f"{self.host}:{self.workdir}"

    @classmethod
    def here(cls, settings: Settings) -> Node:
        return cls(socket.gethostname(), str(settings.workdir), os.getpid())


class Fence:
    """Whether this process tree may still write what readers are served: armed with an
    epoch and a monotonic deadline while a lease is held; unarmed (always open) without a
    shared ledger. In shared memory: forked workers read what the parent writes."""

    def __init__(self) -> None:
        # [armed (0/1), epoch, valid until (time.monotonic(), the same clock in every process)]
        self._state = multiprocessing.RawArray("d", 3)

    @property
    def armed(self) -> bool:
        return bool(self._state[0] == 1.0)

    @property
    def epoch(self) -> int:
        return int(self._state[1])

    def arm(self, epoch: int, until: float) -> None:
        self._state[2] = until
        self._state[1] = float(epoch)
        self._state[0] = 1.0

    def extend(self, until: float) -> None:
        self._state[2] = max(self._state[2], until)

    def revoke(self) -> None:
        self._state[2] = 0.0

    def disarm(self) -> None:
        self._state[0] = 0.0
        self._state[1] = 0.0
        self._state[2] = 0.0

    def holds(self) -> bool:
        return not self.armed or time.monotonic() < float(self._state[2])

    def check(self, difusor: str) -> None:
        """Raise LeaseLostError if this machine no longer holds the lease."""
        if self.holds():
            return
        raise LeaseLostError(
            difusor,
            f"Esta máquina ya no tiene el turno de publicar (su concesión {self.epoch} venció"
            " o la tomó el publicador de respaldo): no se cambia json/main.json aquí; el"
            " publicador de turno publica este corte.",
        )


# The one fence of this process tree (created at import, before any worker is forked).
FENCE = Fence()


class LeaseKeeper:
    """This machine's side of the lease: claims it, renews it in the background, arms the
    fence, and says what happens, in Spanish, to the log and the ledger."""

    def __init__(
        self,
        location: PostgresLocation,
        node: Node,
        ttl_s: float,
        fence: Fence = FENCE,
        *,
        say: Callable[[int, str], None] | None = None,
    ) -> None:
        self.location = location
        self.node = node
        self.ttl_s = ttl_s
        self.fence = fence
        self.epoch: int | None = None
        self._say = say or (lambda level, message: log.log(level, "%s", message))
        self._ledger: Ledger | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._told: str | None = None
        # Called at each look while waiting (the --metrics endpoint keeps current).
        self.on_look: Callable[[], None] = lambda: None

    @classmethod
    def for_settings(cls, settings: Settings) -> LeaseKeeper | None:
        """The keeper of a shared ledger's lease; None for an SQLite ledger (no lease)."""
        location = settings.ledger_location
        if not isinstance(location, PostgresLocation):
            return None
        return cls(location, Node.here(settings), settings.roster.publish.failover_seconds)

    @property
    def look_s(self) -> float:
        return max(0.1, min(1.0, self.ttl_s / LOOKS_PER_LEASE))

    @property
    def holds(self) -> bool:
        return self.epoch is not None and self.fence.armed and self.fence.holds()

    def _db(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.location)
        return self._ledger

    def close(self) -> None:
        """Close this keeper's connection (a claim that was refused holds nothing)."""
        self._drop_connection()

    def _drop_connection(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            with contextlib.suppress(Exception):
                ledger.close()

    # --- claiming ----------------------------------------------------------------------------

    def claim(self) -> Claim:
        """One claim; the fence is armed if granted."""
        sent = time.monotonic()
        try:
            claim = self._db().claim_lease(self.node.id, self.node.host, self.node.pid, self.ttl_s)
        except LedgerUnavailableError:
            self._drop_connection()
            raise
        if claim.granted:
            self._arm(claim.lease.epoch, sent)
        return claim

    def _arm(self, epoch: int, sent: float) -> None:
        self.epoch = epoch
        self.fence.arm(epoch, sent + self.ttl_s * TRUSTED_SHARE)

    async def wait_for_turn(self) -> Claim:
        """Claim again and again until this machine holds the lease; while it waits it is
        the standby, says so (once per holder) and lets ``status`` see it."""
        while True:
            try:
                claim = self.claim()
            except LedgerUnavailableError as exc:
                self._tell(logging.ERROR, f"{exc} Esta máquina espera a la bitácora.")
                self.on_look()
                await asyncio.sleep(self.look_s)
                continue
            if claim.granted:
                self.took(claim)
                return claim
            self._standby(claim.lease)
            self.on_look()
            await asyncio.sleep(self.look_s)

    def _standby(self, lease: LeaseRow) -> None:
        with contextlib.suppress(LedgerUnavailableError):
            self._db().seen_publisher(self.node.id, self.node.host, self.node.pid, STANDBY, None)
        self._tell(
            logging.WARNING,
            f"En espera: publica {describe_holder(lease)}. Esta máquina toma el turno si esa"
            f" deja de renovar su concesión durante {self.ttl_s:g} s"
            " (publish.failover_seconds).",
            key=f"{lease.node}:{lease.epoch}",
        )

    def took(self, claim: Claim) -> None:
        """Say that this machine holds the lease; a change of hands goes to the ledger."""
        lease = claim.lease
        ledger = self._db()
        ledger.seen_publisher(self.node.id, self.node.host, self.node.pid, HOLDER, lease.epoch)
        if not claim.new_epoch:
            self._tell(logging.INFO, f"Esta máquina sigue con el turno (concesión {lease.epoch}).")
            return
        before = claim.before
        previous = "" if before.epoch == 0 else f"; antes publicaba {describe_holder(before)}"
        message = f"Esta máquina toma el turno de publicar (concesión {lease.epoch}){previous}."
        ledger.record_event(None, None, LEASE_TAKEN, message)
        self._tell(logging.WARNING if before.epoch else logging.INFO, message)

    def _tell(self, level: int, message: str, *, key: str | None = None) -> None:
        """Say it once: a standby looking ten times per period repeats nothing."""
        key = key or message
        if key != self._told:
            self._told = key
            self._say(level, message)

    # --- holding -----------------------------------------------------------------------------

    def start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever(), name="prepush-concesion")

    async def _renew_forever(self) -> None:
        """Renew every third of the lease; a renewal refused (another machine took it) or
        the lease run out without the database answering ends the turn."""
        while self.epoch is not None:
            await asyncio.sleep(self.ttl_s / RENEWALS_PER_LEASE)
            while not self._renew_once():
                if not self.fence.holds():
                    self._lost("la bitácora no respondió a tiempo para renovarla")
                    return
                await asyncio.sleep(self.look_s)

    def _renew_once(self) -> bool:
        """True when renewed, or when the turn is over (lost): nothing more to try."""
        epoch = self.epoch
        if epoch is None:
            return True
        sent = time.monotonic()
        try:
            lease = self._db().renew_lease(epoch, self.node.id, self.node.pid, self.ttl_s)
            if lease is not None:
                self._db().seen_publisher(
                    self.node.id, self.node.host, self.node.pid, HOLDER, epoch
                )
        except LedgerUnavailableError as exc:
            self._drop_connection()
            self._tell(logging.ERROR, f"{exc} El turno sigue mientras dure la concesión.")
            return False
        if lease is None:
            self._lost(f"la tiene ahora {self._current_holder()}")
            return True
        self.fence.extend(sent + self.ttl_s * TRUSTED_SHARE)
        return True

    def _current_holder(self) -> str:
        try:
            return describe_holder(self._db().lease())
        except LedgerUnavailableError:
            return "otra máquina"

    def _lost(self, why: str) -> None:
        epoch, self.epoch = self.epoch, None
        self.fence.revoke()
        message = (
            f"Esta máquina perdió el turno de publicar (concesión {epoch}: {why}). No escribe"
            " nada más en los difusores y queda en espera."
        )
        self._tell(logging.ERROR, message)
        with contextlib.suppress(LedgerUnavailableError):
            self._db().record_event(None, None, LEASE_LOST, message)

    def lost_ledger(self, error: LedgerUnavailableError) -> None:
        """A run met the ledger gone: nothing more is written until the lease is claimed
        again (with the same epoch if nobody took it meanwhile)."""
        self._drop_connection()
        if self.epoch is not None:
            self._lost(str(error))

    def check(self) -> int:
        """The epoch of a run about to publish; StandbyError if the turn was lost."""
        if self.epoch is None or not self.holds:
            raise StandbyError(
                "Esta máquina perdió el turno de publicar; el corte lo publica el publicador"
                " de turno (vea 'prepush status')."
            )
        return self.epoch

    async def stop(self, *, release: bool) -> None:
        """Stop renewing; with ``release``, let the standby take over at once and leave the
        list of publishers (a manual publish that borrowed the watch's lease lets go of
        nothing)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        epoch, self.epoch = self.epoch, None
        self.fence.disarm()
        if release:
            with contextlib.suppress(LedgerUnavailableError):
                ledger = self._db()
                if epoch is not None:
                    ledger.release_lease(epoch, self.node.id)
                ledger.forget_publisher(self.node.id)
        self._drop_connection()


def describe_holder(lease: LeaseRow) -> str:
    """``maquina-a (pid 4120, /srv/prep) desde las 22:10:03 UTC, concesión 3``."""
    workdir = lease.node.split(":", 1)[1] if ":" in lease.node else lease.node
    return (
        f"{lease.host} (pid {lease.pid}, {workdir}) desde las {_clock(lease.since)} UTC,"
        f" concesión {lease.epoch}"
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


@contextlib.asynccontextmanager
async def on_duty(
    settings: Settings, keeper: LeaseKeeper | None
) -> AsyncIterator[tuple[Ledger, int | None]]:
    """The ledger of one publish run and the lease epoch it publishes under.

    An SQLite ledger: no lease (epoch None). A shared ledger under ``publish --watch``: the
    watch's keeper holds the lease (or StandbyError). A manual publish or rollback on a
    shared ledger: it claims the lease for the run (StandbyError, saying where to publish,
    if the other machine holds it), renews it while it lasts and lets it go after, if it
    took it."""
    with Ledger(settings.ledger_location) as ledger:
        if not ledger.shared:
            yield ledger, None
            return
        if keeper is not None:
            yield ledger, keeper.check()
            return
        own = LeaseKeeper.for_settings(settings)
        assert own is not None  # a shared ledger is a PostgreSQL one
        try:
            claim = own.claim()
        except BaseException:
            own.close()
            raise
        if not claim.granted:
            own.close()
            raise StandbyError(
                f"Esta máquina está en espera: publica {describe_holder(claim.lease)}. Publique"
                f" o revierta desde esa máquina ({claim.lease.host}), o detenga su"
                " 'publish --watch' (esta máquina toma el turno en cuanto la suelta)."
            )
        own.took(claim)
        own.start_renewing()
        try:
            yield ledger, claim.lease.epoch
        finally:
            await own.stop(release=claim.new_epoch)

"""Where each difusor stands right now, from the ledger (no network).

What a difusor *serves* is the corte of its latest publish or rollback that left a corte in
place: after a rollback, the rolled-back corte. A publish with nothing new confirms it and
changes no figure: "entregado" is when that corte was put in place, and its latency and lag
are those of the corte's first delivery to the difusor (the ones the report counts).

Before the first build or publish there is no ledger: every difusor of the roster serves no
corte yet, and the ledger is not created (reading never makes one).

With a ledger two machines share (PostgreSQL), it also names the publisher on duty (the
lease's holder, its epoch, since when and until when) and the standby machines seen lately.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prepush.ledger import LeaseRow, Ledger, LedgerLocation, PublisherRow
from prepush.package import list_packages
from prepush.settings import Difusor, Settings


@dataclass(frozen=True)
class DifusorStatus:
    difusor: str
    serving_corte: str | None
    delivered_at: datetime | None
    lag_s: float | None
    latency_s: float | None
    behind: int
    consecutive_failures: int
    suspended: bool
    suspension_reason: str | None
    held_corte: str | None = None
    held_since: datetime | None = None
    public_corte: str | None = None
    public_seen_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "difusor": self.difusor,
            "serving_corte": self.serving_corte,
            "delivered_at": _iso(self.delivered_at),
            "lag_s": self.lag_s,
            "latency_s": self.latency_s,
            "cortes_behind": self.behind,
            "consecutive_failures": self.consecutive_failures,
            "suspended": self.suspended,
            "suspension_reason": self.suspension_reason,
            "held_corte": self.held_corte,
            "held_since": _iso(self.held_since),
            "public_corte": self.public_corte,
            "public_seen_at": _iso(self.public_seen_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class Standby:
    host: str
    pid: int
    workdir: str
    seen_at: datetime
    # Seen within a few failover periods: it would take over.
    alive: bool


@dataclass(frozen=True)
class Publishers:
    """Who publishes for a shared ledger: the lease and the machines seen."""

    lease: LeaseRow
    standby: list[Standby]
    failover_seconds: float

    @property
    def holder_workdir(self) -> str:
        return _workdir_of(self.lease.node)

    def as_json(self) -> dict[str, Any]:
        lease = self.lease
        holder = None
        if lease.epoch:
            holder = {
                "host": lease.host,
                "pid": lease.pid,
                "workdir": self.holder_workdir,
                "since": _iso(lease.since),
                "renewed_at": _iso(lease.renewed_at),
                "expires_at": _iso(lease.expires_at),
                "valid": lease.held,
            }
        return {
            "epoch": lease.epoch,
            "holder": holder,
            "standby": [
                {
                    "host": s.host,
                    "pid": s.pid,
                    "workdir": s.workdir,
                    "seen_at": _iso(s.seen_at),
                    "alive": s.alive,
                }
                for s in self.standby
            ],
            "failover_seconds": self.failover_seconds,
        }


def _workdir_of(node: str) -> str:
    return node.split(":", 1)[1] if ":" in node else node


@dataclass(frozen=True)
class StatusReport:
    newest_corte: str | None
    at: datetime
    difusores: list[DifusorStatus]
    ledger: LedgerLocation
    ledger_exists: bool = True
    # With a shared ledger: the publisher on duty and its standby.
    publishers: Publishers | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "newest_corte": self.newest_corte,
            "at": self.at.isoformat(),
            "ledger": str(self.ledger),
            "ledger_exists": self.ledger_exists,
            "publishers": None if self.publishers is None else self.publishers.as_json(),
            "difusores": [d.as_json() for d in self.difusores],
        }


def current_status(settings: Settings) -> StatusReport:
    cortes = [p.corte for p in list_packages(settings.packages_dir)]
    newest = cortes[-1] if cortes else None
    ledger = Ledger.existing(settings.ledger_location)
    if ledger is None:
        # Before the first publish nothing is served.
        rows = [_never_published(d, cortes) for d in settings.roster.difusores]
        return StatusReport(newest, datetime.now(UTC), rows, settings.ledger_location, False)
    rows = []
    with ledger:
        publishers = _publishers(ledger, settings) if ledger.shared else None
        for difusor in settings.roster.difusores:
            serving = ledger.serving(difusor.name)
            suspension = ledger.active_suspension(difusor.name)
            hold = ledger.active_hold(difusor.name)
            seen = ledger.last_observation(difusor.name)
            first = serving.first if serving else None
            rows.append(
                DifusorStatus(
                    difusor=difusor.name,
                    serving_corte=serving.corte if serving else None,
                    delivered_at=serving.since if serving else None,
                    lag_s=first.lag_s if first else None,
                    latency_s=first.latency_s if first else None,
                    behind=len([c for c in cortes if serving is None or c > serving.corte]),
                    consecutive_failures=ledger.consecutive_failed_cortes(difusor.name),
                    suspended=suspension is not None,
                    suspension_reason=suspension.reason if suspension else None,
                    held_corte=hold.corte if hold else None,
                    held_since=hold.held_at if hold else None,
                    public_corte=seen.corte if seen else None,
                    public_seen_at=seen.first_seen_at if seen else None,
                )
            )
    return StatusReport(
        newest, datetime.now(UTC), rows, settings.ledger_location, publishers=publishers
    )


# A standby silent for this many failover periods is reported as gone.
STANDBY_SILENCE_PERIODS = 3


def _publishers(ledger: Ledger, settings: Settings) -> Publishers:
    lease = ledger.lease()
    failover = settings.roster.publish.failover_seconds
    silence = failover * STANDBY_SILENCE_PERIODS
    return Publishers(
        lease,
        [
            _standby(p, lease.now, silence)
            for p in ledger.publishers()
            if not (lease.held and p.node == lease.node)
        ],
        failover,
    )


def _standby(seen: PublisherRow, now: datetime, silence: float) -> Standby:
    alive = (now - seen.seen_at).total_seconds() <= silence
    return Standby(seen.host, seen.pid, _workdir_of(seen.node), seen.seen_at, alive)


def _never_published(difusor: Difusor, cortes: list[str]) -> DifusorStatus:
    return DifusorStatus(
        difusor=difusor.name,
        serving_corte=None,
        delivered_at=None,
        lag_s=None,
        latency_s=None,
        behind=len(cortes),
        consecutive_failures=0,
        suspended=False,
        suspension_reason=None,
    )

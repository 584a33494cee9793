"""Where each difusor stands right now, from the ledger (no network)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prepush.ledger import Ledger
from prepush.package import list_packages
from prepush.settings import Settings


@dataclass(frozen=True)
class DifusorStatus:
    difusor: str
    last_corte: str | None
    delivered_at: datetime | None
    lag_s: float | None
    latency_s: float | None
    behind: int
    consecutive_failures: int
    suspended: bool
    suspension_reason: str | None
    public_corte: str | None = None
    public_seen_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "difusor": self.difusor,
            "last_corte": self.last_corte,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "lag_s": self.lag_s,
            "latency_s": self.latency_s,
            "cortes_behind": self.behind,
            "consecutive_failures": self.consecutive_failures,
            "suspended": self.suspended,
            "suspension_reason": self.suspension_reason,
            "public_corte": self.public_corte,
            "public_seen_at": self.public_seen_at.isoformat() if self.public_seen_at else None,
        }


@dataclass(frozen=True)
class StatusReport:
    newest_corte: str | None
    at: datetime
    difusores: list[DifusorStatus]

    def as_json(self) -> dict[str, Any]:
        return {
            "newest_corte": self.newest_corte,
            "at": self.at.isoformat(),
            "difusores": [d.as_json() for d in self.difusores],
        }


def current_status(settings: Settings) -> StatusReport:
    cortes = [p.corte for p in list_packages(settings.packages_dir)]
    newest = cortes[-1] if cortes else None
    rows = []
    with Ledger(settings.ledger_path) as ledger:
        for difusor in settings.roster.difusores:
            last = ledger.last_delivered(difusor.name)
            suspension = ledger.active_suspension(difusor.name)
            seen = ledger.last_observation(difusor.name)
            behind = len([c for c in cortes if last is None or c > last.corte]) if newest else 0
            rows.append(
                DifusorStatus(
                    difusor=difusor.name,
                    last_corte=last.corte if last else None,
                    delivered_at=(last.flip_at or last.finished_at) if last else None,
                    lag_s=last.lag_s if last else None,
                    latency_s=last.latency_s if last else None,
                    behind=behind,
                    consecutive_failures=ledger.consecutive_failed_cortes(difusor.name),
                    suspended=suspension is not None,
                    suspension_reason=suspension.reason if suspension else None,
                    public_corte=seen.corte if seen else None,
                    public_seen_at=seen.first_seen_at if seen else None,
                )
            )
    return StatusReport(newest, datetime.now(UTC), rows)

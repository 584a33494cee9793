"""A publish run's request and its report: what the command line (or ``--watch``, or a
worker process) asks of a run, and what the run answers, difusor by difusor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prepush.delivery.runner import Outcome
from prepush.exceptions import ExitCode
from prepush.publish.lease import LeaseKeeper
from prepush.publish.protocol_types import Delivery
from prepush.settings import Difusor, Settings

# The corte is there (or, for a dry run, would be): the difusor was reached.
REACHED: tuple[Outcome, ...] = ("delivered", "up_to_date", "dry_run")
# Left alone by decision of the operator: neither a failure nor a delivery.
SKIPPED: tuple[Outcome, ...] = ("skipped_suspended", "skipped_held")


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
    # The lease ``publish --watch`` holds on a shared ledger (None: a manual run claims its
    # own, or an SQLite ledger needs none).
    lease: LeaseKeeper | None = None

"""What the ledger returns and takes: plain rows, the same from either engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prepush.ledger.engines import to_datetime

OK_OUTCOMES = ("delivered", "up_to_date")

# Events on the fidelity of the data: what builds warned of, explained or were forced past,
# and packages refused before publishing. ``report`` shows all but the explained ones.
BUILD_WARNING = "build_warning"
BUILD_EXPLAINED = "build_explained"
BUILD_FORCED = "build_forced"
BUILD_REFUSED = "build_refused"
PACKAGE_REFUSED = "package_refused"
# A build with fewer elections than the corte before it, said with --allow-fewer-elections.
BUILD_FEWER_ELECTIONS = "build_fewer_elections"
# A rebuild whose content differs replaced the package of its corte (--replace-published
# when a difusor had received it).
BUILD_REPLACED = "build_replaced"
# A rebuild found the existing package damaged and rewrote what differed.
BUILD_REPAIRED = "build_repaired"
# An oficial corte published outside the window by the operator's decision.
EMBARGO_OVERRIDE = "embargo_override"
# A worker process died: the parent serves its difusores from then on.
WORKER_LOST = "worker_lost"
# With a shared ledger: this machine took the publisher's lease, or lost it.
LEASE_TAKEN = "lease_taken"
LEASE_LOST = "lease_lost"
INTERRUPTED_BEFORE_FLIP = (
    "interrumpida por el operador (Ctrl-C) antes del cambio de json/main.json: el difusor"
    " siguió mostrando el corte anterior completo"
)
INTERRUPTED_AFTER_FLIP = (
    "interrumpida por el operador (Ctrl-C) después del cambio de json/main.json: el público ya"
    " veía el corte; la limpieza quedó para la siguiente publicación"
)


def required_time(value: Any) -> datetime:
    moment = to_datetime(value)
    if moment is None:
        raise ValueError("a NOT NULL timestamp of the ledger was NULL")
    return moment


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str
    finished_at: datetime
    flip_at: datetime | None = None
    attempts: int = 0
    files_uploaded: int = 0
    files_linked: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    bytes_sent: int = 0
    meta_bytes: int = 0
    requests: int = 0
    atomic: bool | None = None
    error_class: str | None = None
    error_message: str | None = None
    files_rebuilt: int = 0
    bytes_reused: int = 0


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    run_id: int
    difusor: str
    corte: str
    corte_time: datetime
    package_ready_at: datetime | None
    started_at: datetime
    connected_at: datetime | None
    flip_at: datetime | None
    finished_at: datetime | None
    latency_s: float | None
    lag_s: float | None
    files_uploaded: int
    files_linked: int
    files_skipped: int
    files_deleted: int
    bytes_sent: int
    meta_bytes: int
    requests: int
    attempts: int
    atomic: bool | None
    outcome: str
    error_class: str | None
    error_message: str | None
    files_rebuilt: int = 0
    bytes_reused: int = 0
    kind: str = "publish"

    @classmethod
    def from_row(cls, row: Any) -> DeliveryRow:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            difusor=row["difusor"],
            corte=row["corte"],
            corte_time=required_time(row["corte_time"]),
            package_ready_at=to_datetime(row["package_ready_at"]),
            started_at=required_time(row["started_at"]),
            connected_at=to_datetime(row["connected_at"]),
            flip_at=to_datetime(row["flip_at"]),
            finished_at=to_datetime(row["finished_at"]),
            latency_s=row["latency_s"],
            lag_s=row["lag_s"],
            files_uploaded=row["files_uploaded"],
            files_linked=row["files_linked"],
            files_skipped=row["files_skipped"],
            files_deleted=row["files_deleted"],
            bytes_sent=row["bytes_sent"],
            meta_bytes=row["meta_bytes"],
            requests=row["requests"],
            attempts=row["attempts"],
            atomic=None if row["atomic"] is None else bool(row["atomic"]),
            outcome=row["outcome"],
            error_class=row["error_class"],
            error_message=row["error_message"],
            files_rebuilt=row["files_rebuilt"],
            bytes_reused=row["bytes_reused"],
            kind=row["kind"],
        )


@dataclass(frozen=True)
class AttemptRow:
    delivery_id: int
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error_class: str | None
    error_message: str | None


@dataclass(frozen=True)
class RunRow:
    id: int
    command: str
    corte: str | None
    started_at: datetime
    finished_at: datetime | None
    pid: int
    status: str
    options: dict[str, Any]


@dataclass(frozen=True)
class SuspensionRow:
    difusor: str
    suspended_at: datetime
    resumed_at: datetime | None
    reason: str
    automatic: bool


@dataclass(frozen=True)
class HoldRow:
    difusor: str
    corte: str
    held_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class Serving:
    """What a difusor serves, as far as the ledger knows, and the delivery that put it there.

    ``since`` is the last flip to this corte (a rollback's, after one); ``first`` is the
    corte's first publish delivery to the difusor: its latency and lag are the ones that
    count, once per corte and difusor.
    """

    corte: str
    since: datetime | None
    first: DeliveryRow | None


@dataclass(frozen=True)
class CheckRow:
    run_id: int
    difusor: str
    name: str
    status: str
    detail: str
    value: float | None
    unit: str | None
    at: datetime


@dataclass(frozen=True)
class EventRow:
    run_id: int | None
    difusor: str | None
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class RunEventRow:
    """An event with the command and corte of its run (builds, refusals)."""

    command: str
    corte: str | None
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class ObservationRow:
    difusor: str
    corte: str
    first_seen_at: datetime
    url: str


@dataclass(frozen=True)
class LeaseRow:
    """Who publishes for a shared ledger: the lease's epoch (one more at each change of
    publisher), its holder and until when (by the database's clock)."""

    epoch: int
    node: str
    host: str
    pid: int
    since: datetime
    renewed_at: datetime
    expires_at: datetime
    # The database's clock when the row was read.
    now: datetime

    @property
    def held(self) -> bool:
        return self.epoch > 0 and self.expires_at > self.now


@dataclass(frozen=True)
class PublisherRow:
    """A ``publish --watch`` seen lately: on duty (``holder``) or waiting (``standby``)."""

    node: str
    host: str
    pid: int
    role: str
    epoch: int | None
    seen_at: datetime

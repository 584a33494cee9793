"""What a run and the publish protocol (:mod:`prepush.publish.protocol`) say to each other.

What a session is given: its settings, the owner it writes into the difusor's lock, the
corte's extras, the hooks it calls. What it gives back: events as it goes (``FLIPPED`` once
the public sees the corte) and the delivery, measured. Apart from the steps, so that
protocol.py reads as its steps, and the live view and the reports need only these.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prepush.delivery.runner import Outcome
from prepush.package import FileEntry, canonical_json
from prepush.publish.state import Plan

# The step announced once every entry file of the corte is flipped: the public sees it.
FLIPPED = "flipped"


@dataclass(frozen=True)
class Event:
    """Progress of one difusor, for the live view or the plain log. Stage ``step`` marks
    the end of a protocol step (its name in ``detail``): what fault tests hook into."""

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
    # When an attempt sent the flip of the entry file that names the corte (json/main.json):
    # from then on the public may see the corte, whether or not the answer came back.
    flip_sent_at: datetime | None = None
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


@dataclass(frozen=True)
class LockOwner:
    """Who holds a difusor's lock: unique per run, so that two machines cloned from one
    image, or two runs on one machine, never take each other's live lock for their own."""

    id: str
    run_id: int
    host: str = field(default_factory=socket.gethostname)
    workdir: str = ""
    pid: int = field(default_factory=os.getpid)
    # The epoch of the lease this run publishes under (a shared ledger); None without one.
    epoch: int | None = None

    @classmethod
    def new_id(cls) -> str:
        return uuid.uuid4().hex

    def lock_bytes(self) -> bytes:
        fields: dict[str, object] = {
            "owner": self.id,
            "host": self.host,
            "workdir": self.workdir,
            "pid": self.pid,
            "run": self.run_id,
            "since": datetime.now(UTC).isoformat(),
        }
        if self.epoch is not None:
            fields["epoch"] = self.epoch
        return canonical_json(fields)


@dataclass(frozen=True)
class ProtocolSettings:
    retention: int
    width: int
    lock_stale_seconds: float
    connect_timeout_seconds: float

    @property
    def lock_refresh_seconds(self) -> float:
        return max(1.0, min(self.lock_stale_seconds / 4, 60.0))

    @property
    def lock_trusted_seconds(self) -> float:
        """How long after its last renewal the lock is still surely ours: half the stale
        time, and at least a renewal and a half (never as long as the stale time)."""
        half = max(self.lock_stale_seconds / 2, 1.5 * self.lock_refresh_seconds)
        return min(half, 0.9 * self.lock_stale_seconds)


@dataclass(frozen=True)
class Extra:
    """A file of the corte outside its signed manifest (an origin's ``firmas/<corte>.json``
    and ``.sig``, the CSVs a pull extracts from the ZIP): written with the corte's files,
    before the flip, recorded under the corte and removed when it leaves the retention."""

    entry: FileEntry
    local: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Hooks:
    """What the protocol tells the run, and asks it."""

    event: EventSink
    # A ledger event of this difusor: (kind, message).
    record: Callable[[str, str], None]
    # A lock owner id that belongs to a finished run of this working directory.
    is_own_leftover: Callable[[str], bool]
    # Raises LeaseLostError if this run no longer holds the publisher's lease (a shared
    # ledger); called before every write that changes what a reader may be served.
    fence: Callable[[str], None] = lambda _difusor: None

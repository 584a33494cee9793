"""The delivery ledger: SQLite, every attempt recorded as it happens.

Schema (migration 1, then 2 and 3):

- ``runs``: one row per command run (build, publish, rollback, check, simulate...), with its
  pid, host, status (running, ok, partial, failed, interrupted, nothing, refused, forced) and
  options.
- ``deliveries``: one row per difusor and run: corte, measured timestamps (UTC), latency
  (flip minus package ready) and lag (flip minus corte time), counters (files uploaded,
  linked, skipped, deleted; bytes of the corte's files sent; bytes of prepush's own lock,
  pending record and state; SFTP requests), attempts, whether the flip was atomic, outcome,
  error class and message.
- ``attempts``: every attempt of a delivery, retried ones included.
- ``suspensions``: automatic and manual suspensions, with reason and when they were lifted.
- ``checks``: preflight results (the evidence a difusor met the call's requirements).
- ``events``: embargo overrides, retries, stale locks taken over; what a build warned of,
  explained or was forced past, and packages refused before publishing.
- ``observations``: when the public first saw each corte on each difusor (verify --watch).
- ``holds`` (migration 3): a rollback pins a difusor to its corte until
  ``prepush resume-latest``; publish leaves a held difusor alone.

Each delivery has a ``kind`` (migration 3): ``publish``, ``rollback`` or ``dry_run``. Only
``publish`` deliveries are deliveries for the night's figures (latency, failures, incidents,
suspension); a rollback changes what a difusor serves, and a dry run counts toward nothing.

Timestamps are ISO 8601 UTC strings with microseconds. Every write commits at once, so a
crash loses nothing already recorded; WAL lets ``status --watch`` read while publish writes.
The schema version is ``PRAGMA user_version``; migrations run in order, each in a transaction.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

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
INTERRUPTED_BEFORE_FLIP = (
    "interrumpida por el operador (Ctrl-C) antes del cambio de json/main.json: el difusor"
    " siguió mostrando el corte anterior completo"
)
INTERRUPTED_AFTER_FLIP = (
    "interrumpida por el operador (Ctrl-C) después del cambio de json/main.json: el público ya"
    " veía el corte; la limpieza quedó para la siguiente publicación"
)

MIGRATION_1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    corte TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    options TEXT NOT NULL DEFAULT '{}',
    note TEXT
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    corte_time TEXT NOT NULL,
    package_ready_at TEXT,
    started_at TEXT NOT NULL,
    connected_at TEXT,
    flip_at TEXT,
    finished_at TEXT,
    latency_s REAL,
    lag_s REAL,
    files_uploaded INTEGER NOT NULL DEFAULT 0,
    files_linked INTEGER NOT NULL DEFAULT 0,
    files_skipped INTEGER NOT NULL DEFAULT 0,
    files_deleted INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    meta_bytes INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    atomic INTEGER,
    outcome TEXT NOT NULL DEFAULT 'running',
    error_class TEXT,
    error_message TEXT
);
CREATE INDEX deliveries_difusor ON deliveries(difusor, started_at);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    number INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'running',
    error_class TEXT,
    error_message TEXT
);
CREATE TABLE suspensions (
    id INTEGER PRIMARY KEY,
    difusor TEXT NOT NULL,
    suspended_at TEXT NOT NULL,
    resumed_at TEXT,
    reason TEXT NOT NULL,
    automatic INTEGER NOT NULL,
    run_id INTEGER REFERENCES runs(id)
);
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    difusor TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    value REAL,
    unit TEXT,
    at TEXT NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER REFERENCES runs(id),
    difusor TEXT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE observations (
    id INTEGER PRIMARY KEY,
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    url TEXT NOT NULL,
    UNIQUE (difusor, corte)
);
"""

Migration = Callable[[sqlite3.Connection], None]


def _script(sql: str) -> Migration:
    def apply(db: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)

    return apply


# Files rebuilt on the difusor from files it held (copy-data), and the bytes it copied.
MIGRATION_2 = """
ALTER TABLE deliveries ADD COLUMN files_rebuilt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN bytes_reused INTEGER NOT NULL DEFAULT 0
"""

# What each delivery was (only publishes count toward the night's figures), existing rows
# classified from their run; and the rollback holds.
MIGRATION_3 = """
ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'publish';
UPDATE deliveries SET kind = 'rollback'
    WHERE run_id IN (SELECT id FROM runs WHERE command = 'rollback');
UPDATE deliveries SET kind = 'dry_run'
    WHERE run_id IN (SELECT id FROM runs WHERE json_extract(options, '$.dry_run') = 1);
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    held_at TEXT NOT NULL,
    released_at TEXT,
    run_id INTEGER REFERENCES runs(id)
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    _script(MIGRATION_1),
    _script(MIGRATION_2),
    _script(MIGRATION_3),
)

DeliveryKind = Literal["publish", "rollback", "dry_run"]


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(UTC)


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
    def from_row(cls, row: sqlite3.Row) -> DeliveryRow:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            difusor=row["difusor"],
            corte=row["corte"],
            corte_time=datetime.fromisoformat(row["corte_time"]),
            package_ready_at=_dt(row["package_ready_at"]),
            started_at=datetime.fromisoformat(row["started_at"]),
            connected_at=_dt(row["connected_at"]),
            flip_at=_dt(row["flip_at"]),
            finished_at=_dt(row["finished_at"]),
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


class Ledger:
    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        else:
            uri = f"{path.absolute().as_uri()}?mode=rw"
            self.db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    @classmethod
    def existing(cls, path: Path) -> Ledger | None:
        """The ledger at ``path`` if there is one; None instead of creating it (an empty
        ledger reads as a night where nothing happened)."""
        try:
            return cls(path, create=False)
        except sqlite3.OperationalError:
            if path.exists():
                raise
            return None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        while (current := self.version) < len(MIGRATIONS):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.version == current:
                    MIGRATIONS[current](self.db)
                    self.db.execute(f"PRAGMA user_version = {current + 1}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = self.db.execute(sql, params)
        return int(cursor.lastrowid or 0)

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, command: str, corte: str | None, options: dict[str, Any]) -> int:
        return self._write(
            "INSERT INTO runs (command, corte, started_at, pid, hostname, options)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                command,
                corte,
                _ts(_now()),
                os.getpid(),
                socket.gethostname(),
                json.dumps(options, sort_keys=True),
            ),
        )

    def finish_run(self, run_id: int, status: str, note: str | None = None) -> None:
        self._write(
            "UPDATE runs SET finished_at = ?, status = ?, note = ? WHERE id = ?",
            (_ts(_now()), status, note, run_id),
        )

    def mark_interrupted(self) -> int:
        """Mark what a killed run left 'running'. Call only while holding the run lock."""
        now = _ts(_now())
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "UPDATE attempts SET outcome = 'interrupted', finished_at = ?"
                " WHERE outcome = 'running'",
                (now,),
            )
            self.db.execute(
                "UPDATE deliveries SET outcome = 'interrupted', finished_at = ?,"
                " error_class = 'Interrupted',"
                " error_message = 'la corrida terminó abruptamente (proceso matado)'"
                " WHERE outcome = 'running'",
                (now,),
            )
            count = self.db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'",
                (now,),
            ).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return count

    def interrupt_run(self, run_id: int, flipped: Mapping[str, datetime]) -> None:
        """Ctrl-C ended run ``run_id``: each delivery it left running is interrupted or, on a
        difusor whose public site already shows the corte (``flipped``: since when), delivered
        with the interruption noted; the run is interrupted."""
        now = _now()
        rows = self.db.execute(
            "SELECT id, difusor, corte_time, package_ready_at FROM deliveries"
            " WHERE run_id = ? AND outcome = 'running'",
            (run_id,),
        ).fetchall()
        for row in rows:
            flip = flipped.get(row["difusor"])
            if flip is None:
                self._write(
                    "UPDATE deliveries SET outcome = 'interrupted', finished_at = ?,"
                    " error_class = 'Interrupted', error_message = ? WHERE id = ?",
                    (_ts(now), INTERRUPTED_BEFORE_FLIP, row["id"]),
                )
                continue
            ready = _dt(row["package_ready_at"])
            self._write(
                "UPDATE deliveries SET outcome = 'delivered', flip_at = ?, finished_at = ?,"
                " lag_s = ?, latency_s = ?, error_class = 'Interrupted', error_message = ?"
                " WHERE id = ?",
                (
                    _ts(flip),
                    _ts(now),
                    (flip - datetime.fromisoformat(row["corte_time"])).total_seconds(),
                    None if ready is None else (flip - ready).total_seconds(),
                    INTERRUPTED_AFTER_FLIP,
                    row["id"],
                ),
            )
        self._write(
            "UPDATE attempts SET outcome = 'interrupted', finished_at = ? WHERE outcome ="
            " 'running' AND delivery_id IN (SELECT id FROM deliveries WHERE run_id = ?)",
            (_ts(now), run_id),
        )
        self.finish_run(run_id, "interrupted")

    def is_own_lock_owner(self, owner: str) -> bool:
        """A difusor lock owner id that one of this ledger's runs used. Called while this
        run holds the local run lock, so such a run has ended: its remote lock is a leftover."""
        row = self.db.execute(
            "SELECT 1 FROM runs WHERE json_extract(options, '$.lock_owner') = ? LIMIT 1",
            (owner,),
        ).fetchone()
        return row is not None

    def runs(self) -> list[RunRow]:
        return [
            RunRow(
                id=r["id"],
                command=r["command"],
                corte=r["corte"],
                started_at=datetime.fromisoformat(r["started_at"]),
                finished_at=_dt(r["finished_at"]),
                pid=r["pid"],
                status=r["status"],
                options=json.loads(r["options"]),
            )
            for r in self.db.execute("SELECT * FROM runs ORDER BY id")
        ]

    # --- deliveries and attempts -------------------------------------------------------------

    def start_delivery(
        self,
        run_id: int,
        difusor: str,
        corte: str,
        corte_time: datetime,
        package_ready_at: datetime | None,
        kind: DeliveryKind = "publish",
    ) -> int:
        return self._write(
            "INSERT INTO deliveries (run_id, difusor, corte, corte_time, package_ready_at,"
            " started_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, difusor, corte, _ts(corte_time), _ts(package_ready_at), _ts(_now()), kind),
        )

    def set_delivery_corte(
        self,
        delivery_id: int,
        corte: str,
        corte_time: datetime,
        package_ready_at: datetime | None,
    ) -> None:
        self._write(
            "UPDATE deliveries SET corte = ?, corte_time = ?, package_ready_at = ? WHERE id = ?",
            (corte, _ts(corte_time), _ts(package_ready_at), delivery_id),
        )

    def set_connected(self, delivery_id: int, at: datetime) -> None:
        self._write("UPDATE deliveries SET connected_at = ? WHERE id = ?", (_ts(at), delivery_id))

    def start_attempt(self, delivery_id: int, number: int) -> int:
        self._write("UPDATE deliveries SET attempts = ? WHERE id = ?", (number, delivery_id))
        return self._write(
            "INSERT INTO attempts (delivery_id, number, started_at) VALUES (?, ?, ?)",
            (delivery_id, number, _ts(_now())),
        )

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: str,
        error_class: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self._write(
            "UPDATE attempts SET finished_at = ?, outcome = ?, error_class = ?,"
            " error_message = ? WHERE id = ?",
            (_ts(_now()), outcome, error_class, error_message, attempt_id),
        )

    def finish_delivery(self, delivery_id: int, result: DeliveryResult) -> None:
        row = self.db.execute(
            "SELECT corte_time, package_ready_at FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        latency = lag = None
        if result.flip_at is not None:
            lag = (result.flip_at - datetime.fromisoformat(row["corte_time"])).total_seconds()
            ready = _dt(row["package_ready_at"])
            latency = None if ready is None else (result.flip_at - ready).total_seconds()
        self._write(
            "UPDATE deliveries SET flip_at = ?, finished_at = ?, latency_s = ?, lag_s = ?,"
            " files_uploaded = ?, files_linked = ?, files_skipped = ?, files_deleted = ?,"
            " bytes_sent = ?, meta_bytes = ?, requests = ?, attempts = ?, atomic = ?, outcome = ?,"
            " error_class = ?, error_message = ?, files_rebuilt = ?, bytes_reused = ?"
            " WHERE id = ?",
            (
                _ts(result.flip_at),
                _ts(result.finished_at),
                latency,
                lag,
                result.files_uploaded,
                result.files_linked,
                result.files_skipped,
                result.files_deleted,
                result.bytes_sent,
                result.meta_bytes,
                result.requests,
                result.attempts,
                None if result.atomic is None else int(result.atomic),
                result.outcome,
                result.error_class,
                result.error_message,
                result.files_rebuilt,
                result.bytes_reused,
                delivery_id,
            ),
        )

    def deliveries(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        difusor: str | None = None,
        *,
        dry_runs: bool = False,
    ) -> list[DeliveryRow]:
        """Deliveries in order; a dry run's only when asked for (they count toward nothing)."""
        clauses, params = [], []
        if not dry_runs:
            clauses.append("kind != 'dry_run'")
        if since is not None:
            clauses.append("started_at >= ?")
            params.append(_ts(since))
        if until is not None:
            clauses.append("started_at <= ?")
            params.append(_ts(until))
        if difusor is not None:
            clauses.append("difusor = ?")
            params.append(difusor)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            DeliveryRow.from_row(r)
            for r in self.db.execute(f"SELECT * FROM deliveries{where} ORDER BY id", params)
        ]

    def attempts(self, delivery_id: int) -> list[AttemptRow]:
        return [
            AttemptRow(
                delivery_id=r["delivery_id"],
                number=r["number"],
                started_at=datetime.fromisoformat(r["started_at"]),
                finished_at=_dt(r["finished_at"]),
                outcome=r["outcome"],
                error_class=r["error_class"],
                error_message=r["error_message"],
            )
            for r in self.db.execute(
                "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number", (delivery_id,)
            )
        ]

    def last_delivered(self, difusor: str) -> DeliveryRow | None:
        """The newest corte a publish delivered (or found already there) on ``difusor``."""
        row = self.db.execute(
            "SELECT * FROM deliveries WHERE difusor = ? AND kind = 'publish'"
            " AND outcome IN ('delivered', 'up_to_date') ORDER BY corte DESC, id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        return None if row is None else DeliveryRow.from_row(row)

    def serving(self, difusor: str) -> Serving | None:
        """What ``difusor`` serves: the corte of its latest publish or rollback that left a
        corte in place (a no-op publish confirms it and changes nothing else)."""
        latest = self.db.execute(
            "SELECT corte FROM deliveries WHERE difusor = ? AND kind != 'dry_run'"
            " AND outcome IN ('delivered', 'up_to_date') ORDER BY id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        if latest is None:
            return None
        corte = str(latest["corte"])
        since = self.db.execute(
            "SELECT MAX(flip_at) AS at FROM deliveries WHERE difusor = ? AND corte = ?"
            " AND kind != 'dry_run' AND outcome = 'delivered' AND flip_at IS NOT NULL",
            (difusor, corte),
        ).fetchone()["at"]
        return Serving(corte, _dt(since), self.first_delivery(difusor, corte))

    def received(self, corte: str) -> list[str]:
        """The difusores whose public site ever showed ``corte`` (a publish or rollback
        flipped it, or found it there), by name."""
        return [
            str(row["difusor"])
            for row in self.db.execute(
                "SELECT DISTINCT difusor FROM deliveries WHERE corte = ? AND kind != 'dry_run'"
                " AND (flip_at IS NOT NULL OR outcome IN ('delivered', 'up_to_date'))"
                " ORDER BY difusor",
                (corte,),
            )
        ]

    def first_delivery(self, difusor: str, corte: str) -> DeliveryRow | None:
        """The publish that first flipped ``corte`` on ``difusor``: the one latency counts."""
        row = self.db.execute(
            "SELECT * FROM deliveries WHERE difusor = ? AND corte = ? AND kind = 'publish'"
            " AND outcome = 'delivered' AND flip_at IS NOT NULL ORDER BY flip_at, id LIMIT 1",
            (difusor, corte),
        ).fetchone()
        return None if row is None else DeliveryRow.from_row(row)

    def consecutive_failed_cortes(self, difusor: str) -> int:
        """Distinct cortes failed in a row, newest first, up to the last one delivered.

        A corte counts as failed when its latest delivery failed (or was interrupted); a
        later successful retry of the same corte clears it. Only publishes count: skips of a
        suspended or held difusor, rollbacks and dry runs neither count nor reset.
        """
        latest: dict[str, str] = {}
        for row in self.db.execute(
            "SELECT corte, outcome FROM deliveries WHERE difusor = ? AND kind = 'publish'"
            " AND outcome IN ('delivered', 'up_to_date', 'failed', 'interrupted') ORDER BY id",
            (difusor,),
        ):
            latest[row["corte"]] = row["outcome"]
        failed = 0
        for corte in sorted(latest, reverse=True):
            if latest[corte] in OK_OUTCOMES:
                break
            failed += 1
        return failed

    # --- suspensions -------------------------------------------------------------------------

    def suspend(
        self, difusor: str, reason: str, automatic: bool, run_id: int | None = None
    ) -> None:
        self._write(
            "INSERT INTO suspensions (difusor, suspended_at, reason, automatic, run_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (difusor, _ts(_now()), reason, int(automatic), run_id),
        )

    def resume(self, difusor: str) -> bool:
        cursor = self.db.execute(
            "UPDATE suspensions SET resumed_at = ? WHERE difusor = ? AND resumed_at IS NULL",
            (_ts(_now()), difusor),
        )
        return cursor.rowcount > 0

    def active_suspension(self, difusor: str) -> SuspensionRow | None:
        rows = self.suspensions(difusor)
        active = [s for s in rows if s.resumed_at is None]
        return active[-1] if active else None

    def suspensions(self, difusor: str | None = None) -> list[SuspensionRow]:
        sql = "SELECT * FROM suspensions"
        params: tuple[str, ...] = ()
        if difusor is not None:
            sql += " WHERE difusor = ?"
            params = (difusor,)
        return [
            SuspensionRow(
                difusor=r["difusor"],
                suspended_at=datetime.fromisoformat(r["suspended_at"]),
                resumed_at=_dt(r["resumed_at"]),
                reason=r["reason"],
                automatic=bool(r["automatic"]),
            )
            for r in self.db.execute(sql + " ORDER BY id", params)
        ]

    # --- rollback holds -----------------------------------------------------------------------

    def hold(self, difusor: str, corte: str, run_id: int | None = None) -> None:
        """Pin ``difusor`` to ``corte`` (a rollback); a newer hold replaces an older one."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "UPDATE holds SET released_at = ? WHERE difusor = ? AND released_at IS NULL",
                (_ts(_now()), difusor),
            )
            self.db.execute(
                "INSERT INTO holds (difusor, corte, held_at, run_id) VALUES (?, ?, ?, ?)",
                (difusor, corte, _ts(_now()), run_id),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def release_hold(self, difusor: str) -> HoldRow | None:
        """Lift ``difusor``'s hold; returns the hold lifted, if there was one."""
        held = self.active_hold(difusor)
        if held is not None:
            self._write(
                "UPDATE holds SET released_at = ? WHERE difusor = ? AND released_at IS NULL",
                (_ts(_now()), difusor),
            )
        return held

    def active_hold(self, difusor: str) -> HoldRow | None:
        row = self.db.execute(
            "SELECT * FROM holds WHERE difusor = ? AND released_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        if row is None:
            return None
        return HoldRow(
            row["difusor"],
            row["corte"],
            datetime.fromisoformat(row["held_at"]),
            _dt(row["released_at"]),
        )

    def holds_of_run(self, run_id: int) -> list[HoldRow]:
        """The holds a rollback run put in place, released or not."""
        return [
            HoldRow(
                row["difusor"],
                row["corte"],
                datetime.fromisoformat(row["held_at"]),
                _dt(row["released_at"]),
            )
            for row in self.db.execute(
                "SELECT * FROM holds WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]

    # --- checks, events, observations -------------------------------------------------------

    def record_check(
        self,
        run_id: int,
        difusor: str,
        name: str,
        status: str,
        detail: str,
        value: float | None = None,
        unit: str | None = None,
    ) -> None:
        self._write(
            "INSERT INTO checks (run_id, difusor, name, status, detail, value, unit, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, difusor, name, status, detail, value, unit, _ts(_now())),
        )

    def checks(self, run_id: int | None = None) -> list[CheckRow]:
        sql, params = "SELECT * FROM checks", cast(tuple[Any, ...], ())
        if run_id is not None:
            sql, params = sql + " WHERE run_id = ?", (run_id,)
        return [
            CheckRow(
                run_id=r["run_id"],
                difusor=r["difusor"],
                name=r["name"],
                status=r["status"],
                detail=r["detail"],
                value=r["value"],
                unit=r["unit"],
                at=datetime.fromisoformat(r["at"]),
            )
            for r in self.db.execute(sql + " ORDER BY id", params)
        ]

    def record_event(
        self, run_id: int | None, difusor: str | None, kind: str, message: str
    ) -> None:
        self._write(
            "INSERT INTO events (run_id, difusor, at, kind, message) VALUES (?, ?, ?, ?, ?)",
            (run_id, difusor, _ts(_now()), kind, message),
        )

    def events(self, kind: str | None = None) -> list[EventRow]:
        sql, params = "SELECT * FROM events", cast(tuple[Any, ...], ())
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", (kind,)
        return [
            EventRow(
                run_id=r["run_id"],
                difusor=r["difusor"],
                at=datetime.fromisoformat(r["at"]),
                kind=r["kind"],
                message=r["message"],
            )
            for r in self.db.execute(sql + " ORDER BY id", params)
        ]

    def run_events(
        self,
        kinds: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RunEventRow]:
        clauses = [f"e.kind IN ({', '.join('?' for _ in kinds)})"]
        params: list[Any] = list(kinds)
        if since is not None:
            clauses.append("e.at >= ?")
            params.append(_ts(since))
        if until is not None:
            clauses.append("e.at <= ?")
            params.append(_ts(until))
        return [
            RunEventRow(
                command=r["command"],
                corte=r["corte"],
                at=datetime.fromisoformat(r["at"]),
                kind=r["kind"],
                message=r["message"],
            )
            for r in self.db.execute(
                "SELECT r.command, r.corte, e.at, e.kind, e.message FROM events e"
                f" JOIN runs r ON r.id = e.run_id WHERE {' AND '.join(clauses)} ORDER BY e.id",
                params,
            )
        ]

    def record_observation(self, difusor: str, corte: str, seen_at: datetime, url: str) -> bool:
        """The first time the public saw ``corte`` on ``difusor``; later sightings are ignored."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO observations (difusor, corte, first_seen_at, url)"
            " VALUES (?, ?, ?, ?)",
            (difusor, corte, _ts(seen_at), url),
        )
        return cursor.rowcount > 0

    def last_observation(self, difusor: str) -> ObservationRow | None:
        row = self.db.execute(
            "SELECT * FROM observations WHERE difusor = ? ORDER BY corte DESC LIMIT 1", (difusor,)
        ).fetchone()
        if row is None:
            return None
        return ObservationRow(
            row["difusor"], row["corte"], datetime.fromisoformat(row["first_seen_at"]), row["url"]
        )

    def public_latencies(self) -> dict[str, list[float]]:
        """Seconds from package ready to the public first seeing the corte, per difusor."""
        result: dict[str, list[float]] = {}
        for row in self.db.execute(
            "SELECT o.difusor, o.first_seen_at, MIN(d.package_ready_at) AS ready"
            " FROM observations o JOIN deliveries d ON d.difusor = o.difusor AND d.corte = o.corte"
            " WHERE d.package_ready_at IS NOT NULL AND d.kind = 'publish' GROUP BY o.id"
        ):
            seen, ready = datetime.fromisoformat(row["first_seen_at"]), _dt(row["ready"])
            if ready is not None:
                result.setdefault(row["difusor"], []).append((seen - ready).total_seconds())
        return result

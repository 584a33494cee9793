"""The delivery ledger: every attempt recorded as it happens, on SQLite or PostgreSQL.

Schema (migration 1, then 2, 3 and 4):

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
  explained or was forced past, and packages refused before publishing; the changes of
  publisher of a shared ledger.
- ``observations``: when the public first saw each corte on each difusor (verify --watch).
- ``holds`` (migration 3): a rollback pins a difusor to its corte until
  ``prepush resume-latest``; publish leaves a held difusor alone.
- ``publisher_lease`` and ``publishers`` (migration 4): with a ledger two machines share,
  which one publishes (the lease, its epoch and expiry) and which ones were seen lately.

Each delivery has a ``kind`` (migration 3): ``publish``, ``rollback`` or ``dry_run``. Only
``publish`` deliveries are deliveries for the night's figures (latency, failures, incidents,
suspension); a rollback changes what a difusor serves, and a dry run counts toward nothing.

The engine (:mod:`prepush.ledger.engines`) is an SQLite file, one machine's, or a PostgreSQL
database the publisher on duty and its standby share; the SQL here is the same for both.
Every write commits at once, so a crash loses nothing already recorded; ``status --watch``
reads while publish writes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, cast

from prepush.ledger.engines import Engine, PostgresEngine, SqliteEngine, to_datetime
from prepush.ledger.location import LedgerLocation, PostgresLocation
from prepush.ledger.rows import (
    INTERRUPTED_AFTER_FLIP,
    INTERRUPTED_BEFORE_FLIP,
    OK_OUTCOMES,
    AttemptRow,
    CheckRow,
    DeliveryResult,
    DeliveryRow,
    EventRow,
    HoldRow,
    LeaseRow,
    ObservationRow,
    PublisherRow,
    RunEventRow,
    RunRow,
    Serving,
    SuspensionRow,
    required_time,
)
from prepush.ledger.schema import MIGRATIONS

DeliveryKind = Literal["publish", "rollback", "dry_run"]
INTERRUPTED = "la corrida terminó abruptamente (proceso matado)"
# On a shared ledger a publish of the other machine may also have lost its turn.
INTERRUPTED_SHARED = (
    "la corrida terminó abruptamente (proceso matado, o su máquina perdió el turno de publicar)"
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """The answer to a claim of the lease: granted or not, the lease as it is now, and as it
    was before (who held it)."""

    granted: bool
    lease: LeaseRow
    before: LeaseRow

    @property
    def new_epoch(self) -> bool:
        return self.granted and self.lease.epoch != self.before.epoch


class Ledger:
    def __init__(self, location: LedgerLocation, *, create: bool = True) -> None:
        self.location = location
        self.engine: Engine
        if isinstance(location, PostgresLocation):
            self.engine = PostgresEngine(location)
        else:
            self.engine = SqliteEngine(location, create=create)
        try:
            self._migrate()
        except BaseException:
            self.engine.close()
            raise

    @classmethod
    def existing(cls, location: LedgerLocation) -> Ledger | None:
        """The ledger at ``location`` if there is one; None instead of creating it (an empty
        ledger reads as a night where nothing happened)."""
        if isinstance(location, PostgresLocation):
            engine = PostgresEngine(location)
            there = engine.has_schema()
            engine.close()
            return cls(location) if there else None
        try:
            return cls(location, create=False)
        except sqlite3.OperationalError:
            if location.exists():
                raise
            return None

    @property
    def shared(self) -> bool:
        """Two machines may write it (PostgreSQL): publishing takes the lease."""
        return isinstance(self.location, PostgresLocation)

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
        self.engine.close()

    @property
    def version(self) -> int:
        return self.engine.version()

    def _migrate(self) -> None:
        while (current := self.version) < len(MIGRATIONS):
            with self.engine.migrating():
                if self.version == current:
                    MIGRATIONS[current](self.engine)
                    self.engine.set_version(current + 1)

    def _t(self, moment: datetime | None) -> Any:
        return self.engine.time(moment)

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        """Insert one row; its id."""
        return int(self.engine.execute(f"{sql} RETURNING id", params).fetchone()["id"])

    def _write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.engine.execute(sql, params)

    # --- runs -------------------------------------------------------------------------------

    def start_run(self, command: str, corte: str | None, options: dict[str, Any]) -> int:
        return self._insert(
            "INSERT INTO runs (command, corte, started_at, pid, hostname, options)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                command,
                corte,
                self._t(_now()),
                os.getpid(),
                socket.gethostname(),
                json.dumps(options, sort_keys=True),
            ),
        )

    def finish_run(self, run_id: int, status: str, note: str | None = None) -> None:
        self._write(
            "UPDATE runs SET finished_at = ?, status = ?, note = ? WHERE id = ?",
            (self._t(_now()), status, note, run_id),
        )

    def mark_interrupted(self) -> int:
        """Mark what a killed run left 'running'. Call only while holding the run lock (and,
        on a shared ledger, the lease). On a shared ledger only this machine's runs and the
        publishes and rollbacks (a machine that lost its turn): another machine's other
        commands (a build, a check) may well be running."""
        runs, params, why = "", [], INTERRUPTED
        if self.shared:
            runs = " AND (hostname = ? OR command IN ('publish', 'rollback'))"
            params, why = [socket.gethostname()], INTERRUPTED_SHARED
        chosen = f"SELECT id FROM runs WHERE status = 'running'{runs}"
        now = self._t(_now())
        with self.engine.transaction():
            self.engine.execute(
                "UPDATE attempts SET outcome = 'interrupted', finished_at = ?"
                " WHERE outcome = 'running' AND delivery_id IN"
                f" (SELECT id FROM deliveries WHERE run_id IN ({chosen}))",
                (now, *params),
            )
            self.engine.execute(
                "UPDATE deliveries SET outcome = 'interrupted', finished_at = ?,"
                " error_class = 'Interrupted', error_message = ?"
                f" WHERE outcome = 'running' AND run_id IN ({chosen})",
                (now, why, *params),
            )
            return self.engine.execute(
                f"UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id IN ({chosen})",
                (now, *params),
            ).rowcount

    def interrupt_run(self, run_id: int, flipped: Mapping[str, datetime]) -> None:
        """Ctrl-C ended run ``run_id``: each delivery it left running is interrupted or, on a
        difusor whose public site already shows the corte (``flipped``: since when), delivered
        with the interruption noted; the run is interrupted."""
        now = _now()
        rows = self.engine.execute(
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
                    (self._t(now), INTERRUPTED_BEFORE_FLIP, row["id"]),
                )
                continue
            ready = to_datetime(row["package_ready_at"])
            self._write(
                "UPDATE deliveries SET outcome = 'delivered', flip_at = ?, finished_at = ?,"
                " lag_s = ?, latency_s = ?, error_class = 'Interrupted', error_message = ?"
                " WHERE id = ?",
                (
                    self._t(flip),
                    self._t(now),
                    (flip - required_time(row["corte_time"])).total_seconds(),
                    None if ready is None else (flip - ready).total_seconds(),
                    INTERRUPTED_AFTER_FLIP,
                    row["id"],
                ),
            )
        self._write(
            "UPDATE attempts SET outcome = 'interrupted', finished_at = ? WHERE outcome ="
            " 'running' AND delivery_id IN (SELECT id FROM deliveries WHERE run_id = ?)",
            (self._t(now), run_id),
        )
        self.finish_run(run_id, "interrupted")

    def is_own_lock_owner(self, owner: str) -> bool:
        """A difusor lock owner id that one of this machine's runs used. Called while this
        run holds the local run lock, so such a run has ended: its remote lock is a leftover."""
        row = self.engine.execute(
            f"SELECT 1 FROM runs WHERE {self.engine.json_text('options', 'lock_owner')} = ?"
            " AND hostname = ? LIMIT 1",
            (owner, socket.gethostname()),
        ).fetchone()
        return row is not None

    def runs(self) -> list[RunRow]:
        return [
            RunRow(
                id=r["id"],
                command=r["command"],
                corte=r["corte"],
                started_at=required_time(r["started_at"]),
                finished_at=to_datetime(r["finished_at"]),
                pid=r["pid"],
                status=r["status"],
                options=json.loads(r["options"]),
            )
            for r in self.engine.execute("SELECT * FROM runs ORDER BY id")
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
        return self._insert(
            "INSERT INTO deliveries (run_id, difusor, corte, corte_time, package_ready_at,"
            " started_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                difusor,
                corte,
                self._t(corte_time),
                self._t(package_ready_at),
                self._t(_now()),
                kind,
            ),
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
            (corte, self._t(corte_time), self._t(package_ready_at), delivery_id),
        )

    def set_connected(self, delivery_id: int, at: datetime) -> None:
        self._write(
            "UPDATE deliveries SET connected_at = ? WHERE id = ?", (self._t(at), delivery_id)
        )

    def start_attempt(self, delivery_id: int, number: int) -> int:
        self._write("UPDATE deliveries SET attempts = ? WHERE id = ?", (number, delivery_id))
        return self._insert(
            "INSERT INTO attempts (delivery_id, number, started_at) VALUES (?, ?, ?)",
            (delivery_id, number, self._t(_now())),
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
            (self._t(_now()), outcome, error_class, error_message, attempt_id),
        )

    def finish_delivery(self, delivery_id: int, result: DeliveryResult) -> None:
        row = self.engine.execute(
            "SELECT corte_time, package_ready_at FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        latency = lag = None
        if result.flip_at is not None:
            lag = (result.flip_at - required_time(row["corte_time"])).total_seconds()
            ready = to_datetime(row["package_ready_at"])
            latency = None if ready is None else (result.flip_at - ready).total_seconds()
        self._write(
            "UPDATE deliveries SET flip_at = ?, finished_at = ?, latency_s = ?, lag_s = ?,"
            " files_uploaded = ?, files_linked = ?, files_skipped = ?, files_deleted = ?,"
            " bytes_sent = ?, meta_bytes = ?, requests = ?, attempts = ?, atomic = ?, outcome = ?,"
            " error_class = ?, error_message = ?, files_rebuilt = ?, bytes_reused = ?"
            " WHERE id = ?",
            (
                self._t(result.flip_at),
                self._t(result.finished_at),
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
            params.append(self._t(since))
        if until is not None:
            clauses.append("started_at <= ?")
            params.append(self._t(until))
        if difusor is not None:
            clauses.append("difusor = ?")
            params.append(difusor)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            DeliveryRow.from_row(r)
            for r in self.engine.execute(f"SELECT * FROM deliveries{where} ORDER BY id", params)
        ]

    def attempts(self, delivery_id: int) -> list[AttemptRow]:
        return [
            AttemptRow(
                delivery_id=r["delivery_id"],
                number=r["number"],
                started_at=required_time(r["started_at"]),
                finished_at=to_datetime(r["finished_at"]),
                outcome=r["outcome"],
                error_class=r["error_class"],
                error_message=r["error_message"],
            )
            for r in self.engine.execute(
                "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number", (delivery_id,)
            )
        ]

    def last_delivered(self, difusor: str) -> DeliveryRow | None:
        """The newest corte a publish delivered (or found already there) on ``difusor``."""
        row = self.engine.execute(
            "SELECT * FROM deliveries WHERE difusor = ? AND kind = 'publish'"
            " AND outcome IN ('delivered', 'up_to_date') ORDER BY corte DESC, id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        return None if row is None else DeliveryRow.from_row(row)

    def serving(self, difusor: str) -> Serving | None:
        """What ``difusor`` serves: the corte of its latest publish or rollback that left a
        corte in place (a no-op publish confirms it and changes nothing else)."""
        latest = self.engine.execute(
            "SELECT corte FROM deliveries WHERE difusor = ? AND kind != 'dry_run'"
            " AND outcome IN ('delivered', 'up_to_date') ORDER BY id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        if latest is None:
            return None
        corte = str(latest["corte"])
        since = self.engine.execute(
            "SELECT MAX(flip_at) AS at FROM deliveries WHERE difusor = ? AND corte = ?"
            " AND kind != 'dry_run' AND outcome = 'delivered' AND flip_at IS NOT NULL",
            (difusor, corte),
        ).fetchone()["at"]
        return Serving(corte, to_datetime(since), self.first_delivery(difusor, corte))

    def received(self, corte: str) -> list[str]:
        """The difusores whose public site ever showed ``corte`` (a publish or rollback
        flipped it, or found it there), by name."""
        return [
            str(row["difusor"])
            for row in self.engine.execute(
                "SELECT DISTINCT difusor FROM deliveries WHERE corte = ? AND kind != 'dry_run'"
                " AND (flip_at IS NOT NULL OR outcome IN ('delivered', 'up_to_date'))"
                " ORDER BY difusor",
                (corte,),
            )
        ]

    def first_delivery(self, difusor: str, corte: str) -> DeliveryRow | None:
        """The publish that first flipped ``corte`` on ``difusor``: the one latency counts."""
        row = self.engine.execute(
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
        for row in self.engine.execute(
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
            (difusor, self._t(_now()), reason, int(automatic), run_id),
        )

    def resume(self, difusor: str) -> bool:
        cursor = self.engine.execute(
            "UPDATE suspensions SET resumed_at = ? WHERE difusor = ? AND resumed_at IS NULL",
            (self._t(_now()), difusor),
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
                suspended_at=required_time(r["suspended_at"]),
                resumed_at=to_datetime(r["resumed_at"]),
                reason=r["reason"],
                automatic=bool(r["automatic"]),
            )
            for r in self.engine.execute(sql + " ORDER BY id", params)
        ]

    # --- rollback holds -----------------------------------------------------------------------

    def hold(self, difusor: str, corte: str, run_id: int | None = None) -> None:
        """Pin ``difusor`` to ``corte`` (a rollback); a newer hold replaces an older one."""
        with self.engine.transaction():
            self.engine.execute(
                "UPDATE holds SET released_at = ? WHERE difusor = ? AND released_at IS NULL",
                (self._t(_now()), difusor),
            )
            self.engine.execute(
                "INSERT INTO holds (difusor, corte, held_at, run_id) VALUES (?, ?, ?, ?)",
                (difusor, corte, self._t(_now()), run_id),
            )

    def release_hold(self, difusor: str) -> HoldRow | None:
        """Lift ``difusor``'s hold; returns the hold lifted, if there was one."""
        held = self.active_hold(difusor)
        if held is not None:
            self._write(
                "UPDATE holds SET released_at = ? WHERE difusor = ? AND released_at IS NULL",
                (self._t(_now()), difusor),
            )
        return held

    def active_hold(self, difusor: str) -> HoldRow | None:
        row = self.engine.execute(
            "SELECT * FROM holds WHERE difusor = ? AND released_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            (difusor,),
        ).fetchone()
        if row is None:
            return None
        return HoldRow(
            row["difusor"],
            row["corte"],
            required_time(row["held_at"]),
            to_datetime(row["released_at"]),
        )

    def holds_of_run(self, run_id: int) -> list[HoldRow]:
        """The holds a rollback run put in place, released or not."""
        return [
            HoldRow(
                row["difusor"],
                row["corte"],
                required_time(row["held_at"]),
                to_datetime(row["released_at"]),
            )
            for row in self.engine.execute(
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
            (run_id, difusor, name, status, detail, value, unit, self._t(_now())),
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
                at=required_time(r["at"]),
            )
            for r in self.engine.execute(sql + " ORDER BY id", params)
        ]

    def record_event(
        self, run_id: int | None, difusor: str | None, kind: str, message: str
    ) -> None:
        self._write(
            "INSERT INTO events (run_id, difusor, at, kind, message) VALUES (?, ?, ?, ?, ?)",
            (run_id, difusor, self._t(_now()), kind, message),
        )

    def events(self, kind: str | None = None) -> list[EventRow]:
        sql, params = "SELECT * FROM events", cast(tuple[Any, ...], ())
        if kind is not None:
            sql, params = sql + " WHERE kind = ?", (kind,)
        return [
            EventRow(
                run_id=r["run_id"],
                difusor=r["difusor"],
                at=required_time(r["at"]),
                kind=r["kind"],
                message=r["message"],
            )
            for r in self.engine.execute(sql + " ORDER BY id", params)
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
            params.append(self._t(since))
        if until is not None:
            clauses.append("e.at <= ?")
            params.append(self._t(until))
        return [
            RunEventRow(
                command=r["command"],
                corte=r["corte"],
                at=required_time(r["at"]),
                kind=r["kind"],
                message=r["message"],
            )
            for r in self.engine.execute(
                "SELECT r.command, r.corte, e.at, e.kind, e.message FROM events e"
                f" JOIN runs r ON r.id = e.run_id WHERE {' AND '.join(clauses)} ORDER BY e.id",
                params,
            )
        ]

    def record_observation(self, difusor: str, corte: str, seen_at: datetime, url: str) -> bool:
        """The first time the public saw ``corte`` on ``difusor``; later sightings are ignored."""
        cursor = self.engine.execute(
            "INSERT INTO observations (difusor, corte, first_seen_at, url)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (difusor, corte) DO NOTHING",
            (difusor, corte, self._t(seen_at), url),
        )
        return cursor.rowcount > 0

    def last_observation(self, difusor: str) -> ObservationRow | None:
        row = self.engine.execute(
            "SELECT * FROM observations WHERE difusor = ? ORDER BY corte DESC LIMIT 1", (difusor,)
        ).fetchone()
        if row is None:
            return None
        return ObservationRow(
            row["difusor"], row["corte"], required_time(row["first_seen_at"]), row["url"]
        )

    def public_latencies(self) -> dict[str, list[float]]:
        """Seconds from package ready to the public first seeing the corte, per difusor."""
        result: dict[str, list[float]] = {}
        for row in self.engine.execute(
            "SELECT o.difusor, o.first_seen_at, MIN(d.package_ready_at) AS ready"
            " FROM observations o JOIN deliveries d ON d.difusor = o.difusor AND d.corte = o.corte"
            " WHERE d.package_ready_at IS NOT NULL AND d.kind = 'publish' GROUP BY o.id"
        ):
            seen, ready = required_time(row["first_seen_at"]), to_datetime(row["ready"])
            if ready is not None:
                result.setdefault(row["difusor"], []).append((seen - ready).total_seconds())
        return result

    # --- the publisher's lease (a shared ledger) ---------------------------------------------

    def lease(self) -> LeaseRow:
        """The lease as it stands, with the database's clock."""
        now = self.engine.clock()
        row = self.engine.execute("SELECT * FROM publisher_lease WHERE id = 1").fetchone()
        return LeaseRow(
            epoch=int(row["epoch"]),
            node=row["node"],
            host=row["host"],
            pid=int(row["pid"]),
            since=required_time(row["since"]),
            renewed_at=required_time(row["renewed_at"]),
            expires_at=required_time(row["expires_at"]),
            now=now,
        )

    def claim_lease(self, node: str, host: str, pid: int, ttl_s: float) -> Claim:
        """Take the lease for ``node`` for ``ttl_s`` seconds of the database's clock: with
        the next epoch if it expired, or with the same one if ``node`` holds it already (a
        restarted publisher, or a manual publish beside it: the run lock keeps them apart).
        Each statement is one atomic update: of two machines claiming at once, one wins."""
        before = self.lease()
        now = self.engine.clock()
        expires = now + timedelta(seconds=ttl_s)
        granted = self.engine.execute(
            "UPDATE publisher_lease SET pid = ?, renewed_at = ?, expires_at = ?"
            " WHERE id = 1 AND node = ? AND expires_at > ? RETURNING epoch",
            (pid, self._t(now), self._t(expires), node, self._t(now)),
        ).fetchone()
        if granted is None:
            granted = self.engine.execute(
                "UPDATE publisher_lease SET epoch = epoch + 1, node = ?, host = ?, pid = ?,"
                " since = ?, renewed_at = ?, expires_at = ? WHERE id = 1 AND expires_at <= ?"
                " RETURNING epoch",
                (node, host, pid, self._t(now), self._t(now), self._t(expires), self._t(now)),
            ).fetchone()
        return Claim(granted is not None, self.lease(), before)

    def renew_lease(self, epoch: int, node: str, pid: int, ttl_s: float) -> LeaseRow | None:
        """Extend the lease of ``epoch`` held by ``node``; None if it is no longer theirs."""
        now = self.engine.clock()
        renewed = self.engine.execute(
            "UPDATE publisher_lease SET pid = ?, renewed_at = ?, expires_at = ?"
            " WHERE id = 1 AND epoch = ? AND node = ? RETURNING epoch",
            (pid, self._t(now), self._t(now + timedelta(seconds=ttl_s)), epoch, node),
        ).fetchone()
        return None if renewed is None else self.lease()

    def release_lease(self, epoch: int, node: str) -> bool:
        """Let the lease of ``epoch`` expire now (a publisher stopping in order): the
        standby takes over at its next look, without waiting for the expiry."""
        now = self._t(self.engine.clock())
        cursor = self.engine.execute(
            "UPDATE publisher_lease SET expires_at = ? WHERE id = 1 AND epoch = ? AND node = ?"
            " AND expires_at > ?",
            (now, epoch, node, now),
        )
        return cursor.rowcount > 0

    def seen_publisher(self, node: str, host: str, pid: int, role: str, epoch: int | None) -> None:
        """A ``publish --watch`` says it is alive, on duty or waiting."""
        self._write(
            "INSERT INTO publishers (node, host, pid, role, epoch, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET host = excluded.host,"
            " pid = excluded.pid, role = excluded.role, epoch = excluded.epoch,"
            " seen_at = excluded.seen_at",
            (node, host, pid, role, epoch, self._t(self.engine.clock())),
        )

    def forget_publisher(self, node: str) -> None:
        """A ``publish --watch`` that stopped in order is no longer a standby."""
        self._write("DELETE FROM publishers WHERE node = ?", (node,))

    def publishers(self) -> list[PublisherRow]:
        return [
            PublisherRow(
                node=r["node"],
                host=r["host"],
                pid=int(r["pid"]),
                role=r["role"],
                epoch=None if r["epoch"] is None else int(r["epoch"]),
                seen_at=required_time(r["seen_at"]),
            )
            for r in self.engine.execute("SELECT * FROM publishers ORDER BY node")
        ]

"""The ledger's schema and its migrations, one sequence for both engines.

Each migration is written once; ``{id}``, ``{time}``, ``{int}`` and ``{real}`` are the
engine's column types (on SQLite they read exactly as the schema always did). The version is
SQLite's ``PRAGMA user_version`` or PostgreSQL's ``prepush_schema`` table; migrations run in
order, each in a transaction that keeps a second machine out until it commits.
"""

from __future__ import annotations

from collections.abc import Callable

from prepush.ledger.engines import Engine

MIGRATION_1 = """
CREATE TABLE runs (
    id {id},
    command TEXT NOT NULL,
    corte TEXT,
    started_at {time} NOT NULL,
    finished_at {time},
    pid {int} NOT NULL,
    hostname TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    options TEXT NOT NULL DEFAULT '{{}}',
    note TEXT
);
CREATE TABLE deliveries (
    id {id},
    run_id {int} NOT NULL REFERENCES runs(id),
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    corte_time {time} NOT NULL,
    package_ready_at {time},
    started_at {time} NOT NULL,
    connected_at {time},
    flip_at {time},
    finished_at {time},
    latency_s {real},
    lag_s {real},
    files_uploaded {int} NOT NULL DEFAULT 0,
    files_linked {int} NOT NULL DEFAULT 0,
    files_skipped {int} NOT NULL DEFAULT 0,
    files_deleted {int} NOT NULL DEFAULT 0,
    bytes_sent {int} NOT NULL DEFAULT 0,
    meta_bytes {int} NOT NULL DEFAULT 0,
    requests {int} NOT NULL DEFAULT 0,
    attempts {int} NOT NULL DEFAULT 0,
    atomic {int},
    outcome TEXT NOT NULL DEFAULT 'running',
    error_class TEXT,
    error_message TEXT
);
CREATE INDEX deliveries_difusor ON deliveries(difusor, started_at);
CREATE TABLE attempts (
    id {id},
    delivery_id {int} NOT NULL REFERENCES deliveries(id),
    number {int} NOT NULL,
    started_at {time} NOT NULL,
    finished_at {time},
    outcome TEXT NOT NULL DEFAULT 'running',
    error_class TEXT,
    error_message TEXT
);
CREATE TABLE suspensions (
    id {id},
    difusor TEXT NOT NULL,
    suspended_at {time} NOT NULL,
    resumed_at {time},
    reason TEXT NOT NULL,
    automatic {int} NOT NULL,
    run_id {int} REFERENCES runs(id)
);
CREATE TABLE checks (
    id {id},
    run_id {int} NOT NULL REFERENCES runs(id),
    difusor TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    value {real},
    unit TEXT,
    at {time} NOT NULL
);
CREATE TABLE events (
    id {id},
    run_id {int} REFERENCES runs(id),
    difusor TEXT,
    at {time} NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE observations (
    id {id},
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    first_seen_at {time} NOT NULL,
    url TEXT NOT NULL,
    UNIQUE (difusor, corte)
);
"""

# Files rebuilt on the difusor from files it held (copy-data), and the bytes it copied.
MIGRATION_2 = """
ALTER TABLE deliveries ADD COLUMN files_rebuilt {int} NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN bytes_reused {int} NOT NULL DEFAULT 0
"""

# What each delivery was (only publishes count toward the night's figures), existing rows
# classified from their run; and the rollback holds.
MIGRATION_3 = """
ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'publish';
UPDATE deliveries SET kind = 'rollback'
    WHERE run_id IN (SELECT id FROM runs WHERE command = 'rollback');
UPDATE deliveries SET kind = 'dry_run'
    WHERE run_id IN (SELECT id FROM runs WHERE {dry_run});
CREATE TABLE holds (
    id {id},
    difusor TEXT NOT NULL,
    corte TEXT NOT NULL,
    held_at {time} NOT NULL,
    released_at {time},
    run_id {int} REFERENCES runs(id)
)
"""

# The publisher's lease (one row: who publishes, under which epoch, until when) and the
# publishers seen (the one on duty and its standby), for a ledger two machines share. An
# SQLite ledger has them too, unused: one machine needs no lease.
MIGRATION_4 = """
CREATE TABLE publisher_lease (
    id {int} PRIMARY KEY,
    epoch {int} NOT NULL,
    node TEXT NOT NULL,
    host TEXT NOT NULL,
    pid {int} NOT NULL,
    since {time} NOT NULL,
    renewed_at {time} NOT NULL,
    expires_at {time} NOT NULL
);
INSERT INTO publisher_lease (id, epoch, node, host, pid, since, renewed_at, expires_at)
    VALUES (1, 0, '', '', 0, {never}, {never}, {never});
CREATE TABLE publishers (
    node TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid {int} NOT NULL,
    role TEXT NOT NULL,
    epoch {int},
    seen_at {time} NOT NULL
)
"""

Migration = Callable[[Engine], None]
# A lease that expired long ago: the first claim takes it (as ISO text, both engines read it).
NEVER = "1970-01-01T00:00:00.000000+00:00"


def _script(sql: str) -> Migration:
    def apply(engine: Engine) -> None:
        text = sql.format(
            **engine.types, dry_run=engine.json_true("options", "dry_run"), never=f"'{NEVER}'"
        )
        for statement in text.split(";"):
            if statement.strip():
                engine.execute(statement)

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    _script(MIGRATION_1),
    _script(MIGRATION_2),
    _script(MIGRATION_3),
    _script(MIGRATION_4),
)

"""The two engines under one ledger: what differs between SQLite and PostgreSQL, nothing more.

The ledger's SQL is written once, with ``?`` placeholders and ``RETURNING id`` (both engines
have it). An engine supplies the rest: its placeholder style, the column types of the schema
(an identity column, timestamps, 64-bit counters, double precision), how a timestamp goes in
(SQLite: ISO 8601 UTC text with microseconds, as it always was; PostgreSQL: ``timestamptz``),
its transactions, where the schema version is kept, its clock, and how a JSON field of the
``options`` text is read.

PostgreSQL runs in autocommit, like the SQLite ledger: every write commits at once. A lost
server (the machine's network, the database restarted) is a :class:`LedgerUnavailableError`,
never a library traceback; libpq's timeouts bound how long a request can wait on a dead
connection, so a publisher that lost its database learns it within seconds.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from prepush.exceptions import ConfigError, LedgerUnavailableError
from prepush.ledger.location import PostgresLocation

# How long PostgreSQL may take to answer before the request is abandoned (seconds): a
# publisher that cannot reach its ledger must know it well within a failover period.
CONNECT_TIMEOUT_S = 5
NETWORK_TIMEOUT_S = 8
STATEMENT_TIMEOUT_S = 20
# Serialises the migrations of two machines that open a new database at once.
MIGRATION_LOCK = 0x70726570  # "prep"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Engine(Protocol):
    name: ClassVar[str]
    # The column types the schema is written with: {id}, {time}, {int}, {real}.
    types: ClassVar[Mapping[str, str]]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def migrating(self) -> contextlib.AbstractContextManager[None]: ...

    def version(self) -> int: ...

    def set_version(self, version: int) -> None: ...

    def time(self, moment: datetime | None) -> Any: ...

    def clock(self) -> datetime: ...

    def json_text(self, column: str, key: str) -> str: ...

    def json_true(self, column: str, key: str) -> str: ...

    def close(self) -> None: ...


def to_datetime(value: Any) -> datetime | None:
    """A timestamp as either engine returns it (text from SQLite, datetime from PostgreSQL)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteEngine:
    """The ledger file of one machine, exactly as prepush has always written it."""

    name: ClassVar[str] = "sqlite"
    types: ClassVar[Mapping[str, str]] = {
        "id": "INTEGER PRIMARY KEY",
        "time": "TEXT",
        "int": "INTEGER",
        "real": "REAL",
    }

    def __init__(self, path: Path, *, create: bool) -> None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        else:
            uri = f"{path.absolute().as_uri()}?mode=rw"
            self.db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        _journal_in_wal(self.db)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=30000")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.db.execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def migrating(self) -> contextlib.AbstractContextManager[None]:
        # BEGIN IMMEDIATE already keeps a second process out until the commit.
        return self.transaction()

    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version = {int(version)}")

    def time(self, moment: datetime | None) -> Any:
        return None if moment is None else iso_utc(moment)

    def clock(self) -> datetime:
        return datetime.now(UTC)

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def json_true(self, column: str, key: str) -> str:
        return f"{self.json_text(column, key)} = 1"

    def close(self) -> None:
        self.db.close()


class PostgresEngine:
    """A PostgreSQL database shared by the machines of the night (the publisher on duty
    and its standby)."""

    name: ClassVar[str] = "postgresql"
    types: ClassVar[Mapping[str, str]] = {
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "time": "TIMESTAMPTZ",
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
    }

    def __init__(self, location: PostgresLocation) -> None:
        import psycopg
        from psycopg.rows import dict_row

        self._psycopg = psycopg
        self.location = location
        password = location.password()
        try:
            self.db = psycopg.connect(
                location.url,
                password=password,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="prepush",
                options=f"-c TimeZone=UTC -c statement_timeout={STATEMENT_TIMEOUT_S * 1000}",
                keepalives=1,
                keepalives_idle=max(1, NETWORK_TIMEOUT_S // 2),
                keepalives_interval=1,
                keepalives_count=max(1, NETWORK_TIMEOUT_S // 2),
                tcp_user_timeout=NETWORK_TIMEOUT_S * 1000,
            )
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc, "No se pudo conectar a") from None
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"El URL de la bitácora {location.url} (paths.ledger) no es válido para"
                f" PostgreSQL: {_first_line(exc)}. Corríjalo en el padrón."
            ) from None

    def _unavailable(self, exc: BaseException, what: str) -> LedgerUnavailableError:
        return LedgerUnavailableError(
            f"{what} la bitácora PostgreSQL {self.location.url}: {_first_line(exc)}. Revise que"
            " el servidor esté en marcha y se alcance desde esta máquina, y el usuario y la"
            f" contraseña ({self.location.password_env or 'sin variable de contraseña'}). Sin"
            " bitácora prepush no hace nada: nada queda sin registrar."
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return self.db.execute(_pyformat(sql), params)
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            raise self._unavailable(exc, "Se perdió la conexión con") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self.db.transaction():
                yield
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            raise self._unavailable(exc, "Se perdió la conexión con") from None

    @contextlib.contextmanager
    def migrating(self) -> Iterator[None]:
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self.execute("CREATE TABLE IF NOT EXISTS prepush_schema (version INTEGER NOT NULL)")
            yield

    def has_schema(self) -> bool:
        row = self.execute("SELECT to_regclass('prepush_schema') IS NOT NULL AS there").fetchone()
        return bool(row["there"])

    def version(self) -> int:
        if not self.has_schema():
            return 0
        row = self.execute("SELECT MAX(version) AS version FROM prepush_schema").fetchone()
        return int(row["version"] or 0)

    def set_version(self, version: int) -> None:
        self.execute("DELETE FROM prepush_schema")
        self.execute("INSERT INTO prepush_schema (version) VALUES (?)", (version,))

    def time(self, moment: datetime | None) -> Any:
        return None if moment is None else moment.astimezone(UTC)

    def clock(self) -> datetime:
        """The database's clock: the one both machines of a pair agree on."""
        row = self.execute("SELECT clock_timestamp() AS now").fetchone()
        return to_datetime(row["now"]) or datetime.now(UTC)

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def json_true(self, column: str, key: str) -> str:
        return f"{self.json_text(column, key)} = 'true'"

    def close(self) -> None:
        self.db.close()


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the ledger's SQL has no other ``?`` or ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# Turning a new file to WAL takes an exclusive lock that SQLite does not wait for (its busy
# handler is not called there): two processes opening a new ledger at once would see
# "database is locked". Retried for as long as any other wait on the ledger lasts.
WAL_WAIT_S = 30.0


def _journal_in_wal(db: sqlite3.Connection) -> None:
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)

"""The ledger on both engines: the same calls give the same answers on an SQLite file and on
a real PostgreSQL server (Debian's, started by the suite; a fresh database per test).

Every test of this file that takes ``ledger_location`` runs twice, once per engine. Then the
commands that read or write the ledger, driven through the command line against a roster
whose ``paths.ledger`` is a ``postgresql://`` URL with its password in a variable; the
roster's validation of that URL; and what the operator reads when the database is gone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.exceptions import ConfigError, LedgerUnavailableError, RosterError
from prepush.ledger import (
    BUILD_WARNING,
    DeliveryResult,
    Ledger,
    LedgerLocation,
    PostgresLocation,
)
from prepush.ledger.engines import Engine, PostgresEngine, SqliteEngine
from prepush.ledger.schema import MIGRATIONS
from prepush.settings import parse_roster
from prepush.sim.postgres import LocalPostgres
from tests.conftest import LEDGER_PASSWORD_ENV, Workdir, ledger_paths
from tests.support.servers import Endpoint

T0 = datetime(2027, 6, 7, 2, 0, 0, 123456, tzinfo=UTC)
CORTES = ("20210606_2320", "20210606_2340", "20210607_1320")


def _delivered(ledger: Ledger, run_id: int, difusor: str, corte: str, n: int) -> int:
    corte_time = T0 + timedelta(minutes=15 * n)
    delivery = ledger.start_delivery(
        run_id, difusor, corte, corte_time, corte_time + timedelta(seconds=20)
    )
    ledger.set_connected(delivery, corte_time + timedelta(seconds=21))
    attempt = ledger.start_attempt(delivery, 1)
    ledger.finish_attempt(attempt, "delivered")
    ledger.finish_delivery(
        delivery,
        DeliveryResult(
            outcome="delivered",
            finished_at=corte_time + timedelta(seconds=40),
            flip_at=corte_time + timedelta(seconds=30, microseconds=654321),
            attempts=1,
            files_uploaded=7,
            bytes_sent=5 * 2**31,  # beyond a 32-bit integer
            atomic=True,
        ),
    )
    return delivery


def _failed(ledger: Ledger, run_id: int, difusor: str, corte: str, n: int) -> int:
    corte_time = T0 + timedelta(minutes=15 * n)
    delivery = ledger.start_delivery(run_id, difusor, corte, corte_time, None)
    for number in (1, 2):
        attempt = ledger.start_attempt(delivery, number)
        ledger.finish_attempt(attempt, "failed", "ConnectError", f"intento {number} rechazado")
    ledger.finish_delivery(
        delivery,
        DeliveryResult(
            outcome="failed",
            finished_at=corte_time + timedelta(seconds=40),
            attempts=2,
            error_class="ConnectError",
            error_message="rechazó la conexión",
        ),
    )
    return delivery


# --- the ledger's calls, on both engines ------------------------------------------------------


def test_deliveries_attempts_and_runs_read_back_exactly(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("publish", CORTES[0], {"dry_run": False, "lock_owner": "a1"})
        first = _delivered(ledger, run, "uno", CORTES[0], 0)
        _failed(ledger, run, "dos", CORTES[0], 0)
        ledger.finish_run(run, "partial", note="dos falló")
        (row,) = ledger.deliveries(difusor="uno")
        assert row.id == first
        assert row.corte_time == T0
        assert row.flip_at == T0 + timedelta(seconds=30, microseconds=654321)
        assert row.flip_at is not None
        assert row.flip_at.utcoffset() == timedelta(0)
        assert row.lag_s == pytest.approx(30.654321)
        assert row.latency_s == pytest.approx(10.654321)
        assert row.bytes_sent == 5 * 2**31
        assert row.atomic is True
        assert row.connected_at == T0 + timedelta(seconds=21)
        assert row.kind == "publish"
        failed = ledger.deliveries(difusor="dos")[0]
        assert failed.outcome == "failed"
        assert failed.latency_s is None
        assert failed.atomic is None
        assert [(a.number, a.outcome, a.error_message) for a in ledger.attempts(failed.id)] == [
            (1, "failed", "intento 1 rechazado"),
            (2, "failed", "intento 2 rechazado"),
        ]
        (recorded,) = ledger.runs()
        assert (recorded.command, recorded.status, recorded.corte) == (
            "publish",
            "partial",
            CORTES[0],
        )
        assert recorded.options == {"dry_run": False, "lock_owner": "a1"}
        assert recorded.finished_at is not None
        assert ledger.is_own_lock_owner("a1")
        assert not ledger.is_own_lock_owner("b2")


def test_time_windows_and_dry_runs_filter_deliveries(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("publish", None, {})
        for n, corte in enumerate(CORTES):
            _delivered(ledger, run, "uno", corte, n)
        dry = ledger.start_run("publish", None, {"dry_run": True})
        ledger.start_delivery(dry, "uno", CORTES[2], T0, None, "dry_run")
        everything = ledger.deliveries()
        assert [d.corte for d in everything] == list(CORTES)
        assert len(ledger.deliveries(dry_runs=True)) == 4
        started = [d.started_at for d in everything]
        assert [d.corte for d in ledger.deliveries(since=started[1])] == list(CORTES[1:])
        assert [d.corte for d in ledger.deliveries(until=started[1])] == list(CORTES[:2])
        assert ledger.deliveries(difusor="nadie") == []


def test_serving_last_delivered_and_first_delivery(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("publish", None, {})
        first = _delivered(ledger, run, "uno", CORTES[0], 0)
        _delivered(ledger, run, "uno", CORTES[1], 1)
        again = ledger.start_run("publish", None, {})
        _delivered(ledger, again, "uno", CORTES[0], 2)  # a re-delivery of the first corte
        rollback = ledger.start_run("rollback", CORTES[0], {})
        back = ledger.start_delivery(rollback, "uno", CORTES[0], T0, None, "rollback")
        ledger.finish_delivery(
            back,
            DeliveryResult("delivered", T0 + timedelta(hours=1), flip_at=T0 + timedelta(hours=1)),
        )
        last = ledger.last_delivered("uno")
        assert last is not None
        assert last.corte == CORTES[1]
        serving = ledger.serving("uno")
        assert serving is not None
        assert serving.corte == CORTES[0]
        assert serving.since == T0 + timedelta(hours=1)
        assert serving.first is not None
        assert serving.first.id == first
        assert ledger.serving("nadie") is None
        assert ledger.first_delivery("uno", CORTES[2]) is None


def test_consecutive_failures_count_publishes_only(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("publish", None, {})
        _delivered(ledger, run, "uno", CORTES[0], 0)
        _failed(ledger, run, "uno", CORTES[1], 1)
        _failed(ledger, run, "uno", CORTES[2], 2)
        assert ledger.consecutive_failed_cortes("uno") == 2
        rollback = ledger.start_run("rollback", None, {})
        back = ledger.start_delivery(rollback, "uno", CORTES[0], T0, None, "rollback")
        ledger.finish_delivery(back, DeliveryResult("delivered", T0, flip_at=T0))
        assert ledger.consecutive_failed_cortes("uno") == 2
        _delivered(ledger, run, "uno", CORTES[2], 3)
        assert ledger.consecutive_failed_cortes("uno") == 0


def test_suspensions_and_holds(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("publish", None, {})
        ledger.suspend("uno", "3 cortes consecutivos fallidos", automatic=True, run_id=run)
        ledger.suspend("dos", "mantenimiento", automatic=False)
        active = ledger.active_suspension("uno")
        assert active is not None
        assert active.automatic
        assert active.resumed_at is None
        assert ledger.resume("uno")
        assert not ledger.resume("uno")
        assert ledger.active_suspension("uno") is None
        assert [(s.difusor, s.automatic) for s in ledger.suspensions()] == [
            ("uno", True),
            ("dos", False),
        ]
        assert ledger.suspensions("uno")[0].resumed_at is not None
        ledger.hold("uno", CORTES[0], run)
        ledger.hold("uno", CORTES[1], run)  # a newer rollback replaces the hold
        held = ledger.active_hold("uno")
        assert held is not None
        assert held.corte == CORTES[1]
        released = ledger.release_hold("uno")
        assert released is not None
        assert released.corte == CORTES[1]
        assert ledger.active_hold("uno") is None
        assert ledger.release_hold("uno") is None


def test_checks_events_and_observations(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        run = ledger.start_run("check", None, {})
        ledger.record_check(run, "uno", "throughput", "pass", "52 MB/s", 52.5, "MB/s")
        ledger.record_check(run, "uno", "space", "fail", "poco espacio")
        assert [(c.name, c.value, c.unit) for c in ledger.checks(run)] == [
            ("throughput", 52.5, "MB/s"),
            ("space", None, None),
        ]
        build = ledger.start_run("build", CORTES[0], {})
        ledger.record_event(build, None, BUILD_WARNING, "aviso del corte")
        ledger.record_event(run, "uno", "retry", "intento 1")
        assert [e.kind for e in ledger.events()] == [BUILD_WARNING, "retry"]
        assert [e.message for e in ledger.events("retry")] == ["intento 1"]
        (warning,) = ledger.run_events([BUILD_WARNING])
        assert (warning.command, warning.corte) == ("build", CORTES[0])
        assert (
            ledger.run_events([BUILD_WARNING], since=datetime.now(UTC) + timedelta(hours=1)) == []
        )
        publish = ledger.start_run("publish", None, {})
        _delivered(ledger, publish, "uno", CORTES[0], 0)
        seen = T0 + timedelta(seconds=35)
        assert ledger.record_observation("uno", CORTES[0], seen, "https://uno/")
        assert not ledger.record_observation("uno", CORTES[0], seen + timedelta(1), "https://uno/")
        observed = ledger.last_observation("uno")
        assert observed is not None
        assert observed.first_seen_at == seen
        assert ledger.public_latencies() == {"uno": [pytest.approx(15.0)]}


def test_a_killed_run_is_marked_interrupted(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        done = ledger.start_run("publish", None, {})
        _delivered(ledger, done, "uno", CORTES[0], 0)
        ledger.finish_run(done, "ok")
        killed = ledger.start_run("publish", None, {})
        delivery = ledger.start_delivery(killed, "uno", CORTES[1], T0, None)
        ledger.start_attempt(delivery, 1)
        assert ledger.mark_interrupted() == 1
        assert [r.status for r in ledger.runs()] == ["ok", "interrupted"]
        row = ledger.deliveries()[-1]
        assert (row.outcome, row.error_class) == ("interrupted", "Interrupted")
        assert [a.outcome for a in ledger.attempts(delivery)] == ["interrupted"]
        assert ledger.mark_interrupted() == 0


def test_reading_never_creates_a_ledger(ledger_location: LedgerLocation) -> None:
    assert Ledger.existing(ledger_location) is None
    assert Ledger.existing(ledger_location) is None
    with Ledger(ledger_location) as created:
        created.suspend("uno", "prueba", automatic=False)
    found = Ledger.existing(ledger_location)
    assert found is not None
    with found:
        assert found.version == len(MIGRATIONS)
        assert found.active_suspension("uno") is not None


def test_an_older_ledger_is_migrated_in_place(ledger_location: LedgerLocation) -> None:
    """A ledger of the first schema (only migration 1) reads and grows to the current one."""
    engine: Engine = (
        SqliteEngine(ledger_location, create=True)
        if isinstance(ledger_location, Path)
        else PostgresEngine(ledger_location)
    )
    with engine.migrating():
        MIGRATIONS[0](engine)
        engine.set_version(1)
    engine.execute(
        "INSERT INTO runs (command, started_at, pid, hostname, options) VALUES (?, ?, ?, ?, ?)",
        ("rollback", engine.time(T0), 1, "vieja", "{}"),
    )
    engine.execute(
        "INSERT INTO deliveries (run_id, difusor, corte, corte_time, started_at, outcome)"
        " VALUES (1, 'uno', ?, ?, ?, 'delivered')",
        (CORTES[0], engine.time(T0), engine.time(T0)),
    )
    engine.close()
    with Ledger(ledger_location) as ledger:
        assert ledger.version == len(MIGRATIONS)
        (row,) = ledger.deliveries()
        assert (row.kind, row.files_rebuilt) == ("rollback", 0)
        assert ledger.lease().epoch == 0


def test_two_machines_opening_a_new_ledger_at_once_migrate_it_once(
    ledger_location: LedgerLocation,
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        try:
            start.wait()
            Ledger(ledger_location).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Ledger(ledger_location) as ledger:
        assert ledger.version == len(MIGRATIONS)
        assert ledger.lease().epoch == 0


# --- the lease, on both engines --------------------------------------------------------------


def test_the_lease_goes_to_one_node_at_a_time_with_a_new_epoch_each_change(
    ledger_location: LedgerLocation,
) -> None:
    with Ledger(ledger_location) as ledger:
        first = ledger.claim_lease("a:/srv/prep", "a", 11, ttl_s=30)
        assert first.granted
        assert first.new_epoch
        assert first.lease.epoch == 1
        assert first.before.epoch == 0
        refused = ledger.claim_lease("b:/srv/prep", "b", 22, ttl_s=30)
        assert not refused.granted
        assert (refused.lease.node, refused.lease.epoch) == ("a:/srv/prep", 1)
        # The same node again (a restarted publisher): the same epoch, no change of hands.
        again = ledger.claim_lease("a:/srv/prep", "a", 12, ttl_s=30)
        assert again.granted
        assert not again.new_epoch
        assert again.lease.pid == 12
        renewed = ledger.renew_lease(1, "a:/srv/prep", 12, ttl_s=30)
        assert renewed is not None
        assert renewed.held
        assert renewed.expires_at > first.lease.expires_at
        # An orderly stop lets the standby take over at once, with the next epoch.
        assert ledger.release_lease(1, "a:/srv/prep")
        taken = ledger.claim_lease("b:/srv/prep", "b", 22, ttl_s=30)
        assert taken.granted
        assert taken.new_epoch
        assert taken.lease.epoch == 2
        assert taken.before.node == "a:/srv/prep"
        # The old holder cannot renew nor release what is no longer its own.
        assert ledger.renew_lease(1, "a:/srv/prep", 12, ttl_s=30) is None
        assert not ledger.release_lease(1, "a:/srv/prep")
        assert ledger.lease().node == "b:/srv/prep"


def test_an_expired_lease_is_taken_by_the_next_claim(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        assert ledger.claim_lease("a", "a", 1, ttl_s=0.2).granted
        expires = ledger.lease().expires_at
        while ledger.lease().now <= expires:
            pass  # the database's clock, not ours, says when it expired
        taken = ledger.claim_lease("b", "b", 2, ttl_s=30)
        assert taken.granted
        assert taken.lease.epoch == 2


def test_of_machines_claiming_at_once_exactly_one_wins(ledger_location: LedgerLocation) -> None:
    Ledger(ledger_location).close()
    granted: list[str] = []
    start = threading.Barrier(6)

    def claim(node: str) -> None:
        with Ledger(ledger_location) as ledger:
            start.wait()
            if ledger.claim_lease(node, node, 1, ttl_s=30).granted:
                granted.append(node)

    threads = [threading.Thread(target=claim, args=(f"n{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 1
    with Ledger(ledger_location) as ledger:
        assert ledger.lease().epoch == 1
        assert ledger.lease().node == granted[0]


def test_publishers_say_who_is_on_duty_and_who_waits(ledger_location: LedgerLocation) -> None:
    with Ledger(ledger_location) as ledger:
        ledger.seen_publisher("a:/srv/prep", "a", 1, "holder", 3)
        ledger.seen_publisher("b:/srv/prep", "b", 2, "standby", None)
        ledger.seen_publisher("b:/srv/prep", "b", 5, "standby", None)
        assert [(p.host, p.pid, p.role, p.epoch) for p in ledger.publishers()] == [
            ("a", 1, "holder", 3),
            ("b", 5, "standby", None),
        ]
        ledger.forget_publisher("a:/srv/prep")
        assert [p.host for p in ledger.publishers()] == ["b"]


# --- PostgreSQL: the password, a server that is gone -----------------------------------------


def test_the_password_comes_from_its_variable(
    postgres_ledger: PostgresLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LEDGER_PASSWORD_ENV)
    with pytest.raises(ConfigError, match=f"La variable de entorno {LEDGER_PASSWORD_ENV}"):
        Ledger(postgres_ledger)
    monkeypatch.setenv(LEDGER_PASSWORD_ENV, "otra-contraseña")
    with pytest.raises(LedgerUnavailableError) as refused:
        Ledger(postgres_ledger)
    message = str(refused.value)
    assert "No se pudo conectar a la bitácora PostgreSQL" in message
    assert postgres_ledger.url in message
    assert "otra-contraseña" not in message


def test_a_ledger_whose_server_stopped_says_so_in_spanish(
    postgres_server: LocalPostgres,
) -> None:
    """A server of its own (the session's keeps running): stopped under an open ledger."""
    server = LocalPostgres().start()
    try:
        url = server.create_database("efimera")
        location = PostgresLocation(url, LEDGER_PASSWORD_ENV)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(LEDGER_PASSWORD_ENV, server.password)
            ledger = Ledger(location)
            server.stop()
            with pytest.raises(LedgerUnavailableError, match="Se perdió la conexión con"):
                ledger.start_run("publish", None, {})
            ledger.close()
            with pytest.raises(LedgerUnavailableError, match="No se pudo conectar"):
                Ledger(location)
    finally:
        server.stop()


# --- the roster's paths.ledger ------------------------------------------------------------------

ROSTER = """
election:
  process: Prueba
  publication: {{start: "2027-06-06T20:00:00", end: "2027-06-07T20:00:00"}}
paths:
{paths}
difusores:
  - name: uno
    host: 127.0.0.1
    user: prep
    key_file: k.pem
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
"""


def _problems(paths: str) -> list[str]:
    with pytest.raises(RosterError) as refused:
        parse_roster(ROSTER.format(paths=paths), "difusores.yaml")
    return refused.value.problems


@pytest.mark.parametrize(
    ("paths", "said"),
    [
        (
            "  ledger: postgresql://prepush:secreto@db.ine.mx/prep",
            "paths.ledger: no escriba la contraseña en el padrón",
        ),
        (
            "  ledger: postgresql://prepush@db.ine.mx/prep?password=secreto",
            "paths.ledger: no escriba password en el URL",
        ),
        ("  ledger: postgresql://prepush@db.ine.mx", "falta el nombre de la base de datos"),
        ("  ledger: postgresql:///prep", "falta el servidor"),
        ("  ledger: mysql://prepush@db.ine.mx/prep", "mysql:// no se admite"),
        (
            "  ledger: postgresql://prepush@db.ine.mx/prep\n  ledger_password_env: la clave",
            "paths.ledger_password_env: debe ser el NOMBRE de una variable de entorno",
        ),
        (
            "  ledger: bitacora.db\n  ledger_password_env: PREP_CLAVE",
            "ledger_password_env sólo aplica a una bitácora PostgreSQL",
        ),
    ],
)
def test_the_roster_refuses_a_bad_ledger_url(paths: str, said: str) -> None:
    problems = _problems(paths)
    assert any(said in p for p in problems), problems
    assert all("secreto" not in p for p in problems), problems
    assert all(p.startswith("difusores.yaml:") for p in problems), problems


def test_a_postgres_ledger_in_the_roster_and_its_variable_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prepush.settings import load_settings

    text = ROSTER.format(
        paths="  ledger: postgresql://prepush@db.ine.mx:5433/prep?sslmode=verify-full\n"
        "  ledger_password_env: PREP_BITACORA_PRUEBA"
    )
    (tmp_path / "difusores.yaml").write_text(text)
    monkeypatch.setenv("PREP_BITACORA_PRUEBA", "secreto")
    settings = load_settings(tmp_path)
    location = settings.ledger_location
    assert location == PostgresLocation(
        "postgresql://prepush@db.ine.mx:5433/prep?sslmode=verify-full", "PREP_BITACORA_PRUEBA"
    )
    monkeypatch.delenv("PREP_BITACORA_PRUEBA", raising=False)
    with pytest.raises(RosterError) as refused:
        load_settings(tmp_path)
    (problem,) = [p for p in refused.value.problems if "ledger_password_env" in p]
    assert "la variable de entorno PREP_BITACORA_PRUEBA" in problem
    assert problem.startswith(f"{tmp_path / 'difusores.yaml'}:")


def test_an_sqlite_ledger_is_still_the_file_it_always_was(workdir: Workdir) -> None:
    workdir.write_roster([])
    workdir.build(CORTES[0])
    ledger = workdir.path / "prepush.db"
    with sqlite3.connect(ledger) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        started = db.execute("SELECT started_at FROM runs").fetchone()[0]
    assert {"runs", "deliveries", "attempts", "holds"} <= tables
    assert version == len(MIGRATIONS)
    # Timestamps stay ISO 8601 UTC text with microseconds.
    assert datetime.fromisoformat(started).utcoffset() == timedelta(0)
    assert len(started) == len("2027-06-07T02:00:00.123456+00:00")


# --- every command that reads or writes the ledger, on PostgreSQL -------------------------------


def _json(workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    code = main(["-C", str(workdir.path), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_every_command_works_on_a_postgres_ledger(
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    postgres_ledger: PostgresLocation,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """build, publish, status, suspend, resume, rollback, resume-latest, report and check, with
    the roster's ledger on PostgreSQL: the rows land there and nothing is written beside
    the roster."""
    workdir.write_roster(
        [asyncssh_difusor],
        paths=ledger_paths(postgres_ledger),
        requirements={"min_free_gb": 0.001, "min_throughput_mb_s": 0.1, "probe_size_mb": 1},
    )
    name = asyncssh_difusor.name
    code, status = _json(workdir, capsys, "status")
    assert code == 0
    assert status["ledger_exists"] is False
    assert status["ledger"] == postgres_ledger.url
    for corte in CORTES[:2]:
        workdir.build(corte)
        code, report = _json(workdir, capsys, "publish")
        assert code == 0, report
        assert report["deliveries"][0]["outcome"] == "delivered"
    code, status = _json(workdir, capsys, "status")
    assert status["difusores"][0]["serving_corte"] == CORTES[1]
    assert _json(workdir, capsys, "suspend", name, "--motivo", "mantenimiento")[0] == 0
    _, report = _json(workdir, capsys, "publish")
    assert report["deliveries"][0]["outcome"] == "skipped_suspended"
    assert _json(workdir, capsys, "resume", name)[0] == 0
    code, report = _json(workdir, capsys, "rollback", "--to", CORTES[0])
    assert code == 0
    assert report["deliveries"][0]["outcome"] == "delivered"
    _, status = _json(workdir, capsys, "status")
    assert status["difusores"][0]["held_corte"] == CORTES[0]
    assert _json(workdir, capsys, "resume-latest")[0] == 0
    code, report = _json(workdir, capsys, "publish")
    assert code == 0
    assert report["deliveries"][0]["corte"] == CORTES[1]
    code, night = _json(workdir, capsys, "report")
    assert code == 0
    (summary,) = night["difusores"]
    assert summary["cortes_delivered"] == 2
    code, checked = _json(workdir, capsys, "check")
    assert checked["difusores"][0]["difusor"] == name
    assert not (workdir.path / "prepush.db").exists()
    with Ledger(postgres_ledger) as ledger:
        commands = [r.command for r in ledger.runs()]
        assert commands.count("build") == 2
        assert {"publish", "rollback", "check"} <= set(commands)
        assert ledger.suspensions(name)[0].reason == "mantenimiento"

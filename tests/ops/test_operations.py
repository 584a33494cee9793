"""Election-night operations: check, suspension, embargo override, rollback, status, report."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from prepush.__main__ import main
from prepush.exceptions import ExitCode
from prepush.ledger import DeliveryRow, Ledger, SuspensionRow
from prepush.ops.report import build_report, latency_html, latency_svg, report_csv, report_markdown
from prepush.publish.publisher import publish
from prepush.publish.request import PublishReport, PublishRequest
from prepush.settings import Difusor, Settings, load_settings
from prepush.transports.base import Transport
from tests.conftest import UNREACHED, ProxyFactory, Workdir
from tests.support.commands import checks_of, run_json
from tests.support.servers import Endpoint, on_small_disk, sftp_read_tree

CORTES = ("20210606_2320", "20210606_2340", "20210607_1320", "20210607_1440")
EASY = {"min_free_gb": 0.001, "min_throughput_mb_s": 1, "probe_size_mb": 1}

# Failing cortes fail fast (2 s); a publish that must succeed gets room on a busy machine.
HEALTHY_DEADLINE = 30


# --- check --------------------------------------------------------------------------------


def test_check_passes_on_a_good_difusor_and_records_evidence(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root)  # type: ignore[operator]
    good = dataclasses.replace(sshd_plain, url=web.url)
    workdir.write_roster([good], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    checks = checks_of(report, good.name)
    assert code == 0, [c for c in checks.values() if c["status"] != "pass"]
    for name in ("tcp", "host_key", "auth", "extensions", "write", "space", "throughput", "clock"):
        assert checks[name]["status"] == "pass", (name, checks[name])
    assert checks["http"]["status"] == "pass"
    assert checks["cache_control"]["status"] == "pass"
    assert checks["private_dir"]["status"] == "pass"
    assert checks["throughput"]["value"] > 1
    with Ledger(workdir.path / "prepush.db") as ledger:
        recorded = {c.name: c.status for c in ledger.checks()}
    assert recorded["space"] == "pass"
    assert recorded["cache_control"] == "pass"


def test_check_fails_without_the_cache_control_rule(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root, cache_rule=False)  # type: ignore[operator]
    workdir.write_roster([dataclasses.replace(sshd_plain, url=web.url)], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    assert code == 3
    checks = checks_of(report, sshd_plain.name)
    assert checks["cache_control"]["status"] == "fail"
    assert "no-cache, no-store, must-revalidate" in checks["cache_control"]["detail"]


@pytest.mark.skipif(os.geteuid() != 0, reason="montar tmpfs requiere root")
def test_check_fails_space_on_a_small_disk(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    with on_small_disk(sshd_plain, "5m") as small:
        workdir.write_roster([small], requirements={**EASY, "min_free_gb": 0.1})
        code, report = run_json(workdir, capsys, "check")
    assert code == 3
    space = checks_of(report, small.name)["space"]
    assert space["status"] == "fail"
    assert space["value"] < 0.01


def test_check_fails_write_on_a_read_only_directory(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    sshd_plain.local_root.chmod(0o555)
    try:
        workdir.write_roster([sshd_plain], requirements=EASY)
        code, report = run_json(workdir, capsys, "check")
    finally:
        sshd_plain.local_root.chmod(0o755)
    assert code == 3
    write = checks_of(report, sshd_plain.name)["write"]
    assert write["status"] == "fail"
    assert "Permiso denegado" in write["detail"]


def test_check_reports_impersonation_on_a_wrong_host_key(
    sshd_plain: Endpoint,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    impostor = dataclasses.replace(sshd_plain, host_key_line=asyncssh_difusor.host_key_line)
    workdir.write_roster([impostor], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    assert code == 3
    host_key = checks_of(report, impostor.name)["host_key"]
    assert host_key["status"] == "fail"
    assert "suplantación" in host_key["detail"]


def test_check_warns_when_the_flip_cannot_be_atomic(
    paramiko_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([paramiko_difusor], requirements=EASY)
    code, report = run_json(workdir, capsys, "check")
    assert code == ExitCode.OK  # a warning fails no check
    checks = checks_of(report, paramiko_difusor.name)
    assert checks["extensions"]["status"] == "warn"
    assert "no es atómico" in checks["extensions"]["detail"]
    assert checks["write"]["status"] == "pass"


# --- suspension, embargo, rollback ----------------------------------------------------------


def test_three_failed_cortes_suspend_skip_and_resume(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    servers_loop: object,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    workdir.write_roster([proxied], deadline=2)
    proxy.faults.reset_after_bytes = 1000
    outcomes = []
    for corte in CORTES[:3]:
        workdir.build(corte)
        code, report = run_json(workdir, capsys, "publish")
        outcomes.append((code, report["deliveries"][0]["outcome"]))
    assert outcomes == [(ExitCode.TOTAL_FAILURE, "failed")] * 3
    with Ledger(workdir.path / "prepush.db") as ledger:
        suspension = ledger.active_suspension(proxied.name)
        assert suspension is not None
        assert suspension.automatic
        assert "3 cortes consecutivos" in suspension.reason
    proxy.faults.reset_after_bytes = None
    workdir.write_roster([proxied], deadline=HEALTHY_DEADLINE)
    workdir.build(CORTES[3])
    code, report = run_json(workdir, capsys, "publish")
    assert code == ExitCode.TOTAL_FAILURE  # the corte reached no difusor
    assert report["deliveries"][0]["outcome"] == "skipped_suspended"
    assert main(["-C", str(workdir.path), "resume", proxied.name]) == 0
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0
    assert report["deliveries"][0]["outcome"] == "delivered"
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.consecutive_failed_cortes(proxied.name) == 0


def test_a_success_resets_the_failure_counter(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    for corte, broken in zip(CORTES, (True, True, False, True), strict=True):
        proxy.faults.reset_after_bytes = 1000 if broken else None
        workdir.write_roster([proxied], deadline=2 if broken else HEALTHY_DEADLINE)
        workdir.build(corte)
        code, report = run_json(workdir, capsys, "publish")
        wanted = (ExitCode.TOTAL_FAILURE, "failed") if broken else (ExitCode.OK, "delivered")
        assert (code, report["deliveries"][0]["outcome"]) == wanted, (corte, report)
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.consecutive_failed_cortes(proxied.name) == 1
        assert ledger.active_suspension(proxied.name) is None


def test_manual_suspension_is_skipped_by_publish(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    name = asyncssh_difusor.name
    assert main(["-C", str(workdir.path), "suspend", name, "--motivo", "mantenimiento"]) == 0
    code, report = run_json(workdir, capsys, "publish")
    assert code == ExitCode.TOTAL_FAILURE  # the corte reached no difusor
    assert report["deliveries"][0]["outcome"] == "skipped_suspended"
    assert "mantenimiento" in report["deliveries"][0]["error_message"]
    code, status = run_json(workdir, capsys, "status")
    assert code == ExitCode.OK
    assert status["difusores"][0]["suspended"] is True


def test_embargo_override_is_recorded(asyncssh_difusor: Endpoint, workdir: Workdir) -> None:
    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    settings = load_settings(workdir.path)
    before = datetime(2021, 6, 6, 23, 59, 59, tzinfo=UTC)  # 18:59:59 in Mérida, before 19:00
    request = PublishRequest(
        settings=settings,
        difusores=settings.roster.difusores,
        override_embargo="prueba autorizada por la Comisión",
        clock=lambda: before,
    )
    assert publish(request).exit_code == 0
    with Ledger(settings.ledger_location) as ledger:
        (event,) = ledger.events("embargo_override")
    assert "prueba autorizada por la Comisión" in event.message
    assert "19:00:00" in event.message


def test_rollback_flips_back_and_refuses_a_corte_no_longer_retained(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain])
    for corte in CORTES[:3]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    code, _ = run_json(workdir, capsys, "rollback", "--to", CORTES[1])
    assert code == 0
    remote = sftp_read_tree(sshd_plain, sshd_plain.key_file)
    shown = json.loads(remote["json/main.json"])
    assert shown["corte"] == CORTES[1]
    for path, data in workdir.package_tree(CORTES[1]).items():
        assert remote[path] == data, path
    workdir.build(CORTES[3])
    assert run_json(workdir, capsys, "resume-latest")[0] == 0
    assert run_json(workdir, capsys, "publish")[0] == 0
    code, report = run_json(workdir, capsys, "rollback", "--to", CORTES[0])
    assert code == 3
    assert "ya no está retenido" in report["deliveries"][0]["error_message"]
    remote = sftp_read_tree(sshd_plain, sshd_plain.key_file)
    assert json.loads(remote["json/main.json"])["corte"] == CORTES[3]


# --- report -----------------------------------------------------------------------------------

T0 = datetime(2027, 6, 7, 2, 0, tzinfo=UTC)  # 20:00 in Mexico City


def row(difusor: str, n: int, outcome: str, error: str | None = None) -> DeliveryRow:
    corte_time = T0 + timedelta(minutes=15 * n)
    started = corte_time + timedelta(seconds=30)
    flip = started + timedelta(seconds=5 + n) if outcome == "delivered" else None
    return DeliveryRow(
        id=n,
        run_id=n,
        difusor=difusor,
        corte=corte_time.astimezone(ZoneInfo("America/Mexico_City")).strftime("%Y%m%d_%H%M"),
        corte_time=corte_time,
        package_ready_at=started - timedelta(seconds=2),
        started_at=started,
        connected_at=started,
        flip_at=flip,
        finished_at=started + timedelta(seconds=60),
        latency_s=None if flip is None else (flip - started).total_seconds() + 2,
        lag_s=None if flip is None else (flip - corte_time).total_seconds(),
        files_uploaded=1,
        files_linked=0,
        files_skipped=0,
        files_deleted=0,
        bytes_sent=1,
        meta_bytes=1,
        requests=1,
        attempts=1,
        atomic=True,
        outcome=outcome,
        error_class=None if error is None else "ConnectError",
        error_message=error,
    )


def scripted_night() -> list[DeliveryRow]:
    rows = [row("uno", n, "delivered") for n in range(8)]
    plan = ["delivered", "failed", "failed", "delivered", "delivered", "failed", "failed", "failed"]
    rows += [
        row("dos", n, outcome, "rechazó la conexión" if outcome == "failed" else None)
        for n, outcome in enumerate(plan)
    ]
    return rows


def test_incidents_are_grouped_with_their_durations() -> None:
    suspension = SuspensionRow("dos", T0 + timedelta(minutes=106), None, "3 cortes", True)
    report = build_report(
        "Prueba", ZoneInfo("America/Mexico_City"), scripted_night(), suspensions=[suspension]
    )
    summaries = {d.difusor: d for d in report.difusores}
    uno, dos = summaries["uno"], summaries["dos"]
    assert len(uno.delivered) == 8
    assert uno.failed == []
    assert uno.latency.p50 == 2 + 5 + 3  # nearest rank over 7, 8, ..., 14
    assert dos.failed == [
        "20270606_2015",
        "20270606_2030",
        "20270606_2115",
        "20270606_2130",
        "20270606_2145",
    ]
    first, second = report.incidents
    assert first.cortes == ["20270606_2015", "20270606_2030"]
    assert first.recovered
    # From the first failed attempt (20:15:30) to the flip of 20:45 (20:45:30 + 8 s).
    assert first.duration_s == 30 * 60 + 8
    assert first.cause == "rechazó la conexión"
    assert second.cortes == ["20270606_2115", "20270606_2130", "20270606_2145"]
    assert not second.recovered
    # Still failing: ends at the last failed attempt's end (21:45:30 + 60 s).
    assert second.duration_s == 30 * 60 + 60


def test_every_format_renders_and_the_markdown_reads_well(tmp_path: Path) -> None:
    report = build_report(
        "Prueba", ZoneInfo("America/Mexico_City"), scripted_night(), suspensions=[]
    )
    text = report_markdown(report)
    assert text.startswith("# Reporte de publicación del PREP — Prueba")
    assert "## Reporte de incidencias" in text
    assert "| dos | 06/06/2027 20:15:30 | 06/06/2027 20:45:38 | 30 min 08 s |" in text
    assert "rechazó la conexión" in text
    csv_text = report_csv(report)
    assert csv_text.splitlines()[0].startswith("difusor,cortes_entregados,cortes_fallidos")
    svg = latency_svg(report)
    assert svg.startswith("<svg")
    assert "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    html = latency_html(report)
    assert "<svg" in html
    assert "<script src" not in html
    assert "<link" not in html


def test_report_cli_formats(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([asyncssh_difusor])
    for corte in CORTES[:2]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == ExitCode.OK
    for fmt, expected in (
        ("table", "Entregas por difusor"),
        ("csv", "asyncssh,2,0,"),
        ("md", "| asyncssh | 2 | 0 |"),
    ):
        capsys.readouterr()
        assert main(["-C", str(workdir.path), "report", "--format", fmt]) == 0
        assert expected in capsys.readouterr().out
    capsys.readouterr()
    chart = workdir.path / "latencia.svg"
    assert main(["-C", str(workdir.path), "report", "--format", "json", "--chart", str(chart)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["difusores"][0]["cortes_delivered"] == 2
    assert chart.read_text().startswith("<svg")
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    assert status["difusores"][0]["serving_corte"] == CORTES[1]
    assert status["difusores"][0]["cortes_behind"] == 0


# --- before the first publish: no ledger yet ----------------------------------------------


@dataclasses.dataclass
class Unreached:
    """A roster entry nobody contacts: status and report never connect."""

    name: str

    def roster_entry(self) -> dict[str, object]:
        return {**UNREACHED, "name": self.name}


def files_under(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


def fresh_night(workdir: Workdir) -> Path:
    """A working directory ready for the night where nothing was built or published yet,
    its ledger named elsewhere (so not even that directory may appear)."""
    roster = workdir.write_roster([Unreached("medio-uno"), Unreached("universidad-dos")])
    with roster.open("a") as text:
        text.write("paths:\n  ledger: registros/noche.db\n")
    return workdir.path / "registros" / "noche.db"


def test_status_before_the_first_publish_lists_the_roster_and_creates_no_ledger(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = fresh_night(workdir)
    before = files_under(workdir.path)
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    assert files_under(workdir.path) == before
    assert status["ledger_exists"] is False
    assert [(d["difusor"], d["serving_corte"]) for d in status["difusores"]] == [
        ("medio-uno", None),
        ("universidad-dos", None),
    ]
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "status"]) == 0
    out = capsys.readouterr().out
    said = f"Todavía no se ha publicado nada desde este directorio: no hay bitácora en {ledger}"
    assert said in out
    assert "medio-uno: no sirve ningún corte de prepush aún" in out
    assert "universidad-dos: no sirve ningún corte de prepush aún" in out
    assert "sin paquetes que enviar aún" in out
    assert "al día" not in out, "nothing built yet is not up to date"
    assert files_under(workdir.path) == before


def test_report_without_a_ledger_creates_nothing_and_says_there_is_none_yet(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = fresh_night(workdir)
    before = files_under(workdir.path)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "report", "--format", "md"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"No hay bitácora en {ledger}" in err
    assert "todavía no se ha construido ni publicado nada desde este directorio" in err
    assert "No se creó nada" in err
    assert files_under(workdir.path) == before
    code, document = run_json(workdir, capsys, "report")
    assert (code, document["error"]["exit_code"], document["error"]["type"]) == (
        2,
        2,
        "ConfigError",
    )
    assert str(ledger) in document["error"]["message"]
    assert files_under(workdir.path) == before


def test_resume_and_resume_latest_without_a_ledger_create_nothing(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is suspended or held before the first publish: said as always, and no empty
    ledger is left behind for report to read as a night without incidents."""
    fresh_night(workdir)
    before = files_under(workdir.path)
    for command, said in (
        (["resume", "medio-uno"], "medio-uno no está suspendido."),
        (["resume-latest"], "Ningún difusor seleccionado está retenido por una reversión"),
    ):
        capsys.readouterr()
        assert main(["-C", str(workdir.path), *command]) == 2, command
        assert said in capsys.readouterr().err
        assert files_under(workdir.path) == before, command


def test_an_existing_ledger_is_opened_and_a_missing_one_is_not_created(tmp_path: Path) -> None:
    odd = tmp_path / "noche 7 #1 ?%20"
    odd.mkdir()
    path = odd / "prepush.db"
    assert Ledger.existing(path) is None
    assert list(odd.iterdir()) == []
    with Ledger(path) as created:
        created.suspend("medio-uno", "prueba", automatic=False)
    opened = Ledger.existing(path)
    assert opened is not None
    with opened:
        suspension = opened.active_suspension("medio-uno")
        assert suspension is not None
        assert suspension.reason == "prueba"


# --- scheduling -------------------------------------------------------------------------------


def test_a_timer_run_with_nothing_new_is_quiet(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    import subprocess
    import sys

    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    command = [sys.executable, "-m", "prepush", "-C", str(workdir.path), "publish"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0
    assert "entregado" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0
    assert again.stdout == ""
    assert again.stderr == ""


def test_watch_publishes_each_new_package_over_the_same_connection(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    from prepush.publish.publisher import ConnectionPool, publish_async
    from prepush.publish.watch import watch
    from prepush.transports.sftp.connect import open_sftp

    workdir.write_roster([asyncssh_difusor])
    workdir.build(CORTES[0])
    settings = load_settings(workdir.path)
    published: list[str | None] = []
    connections: list[str] = []

    async def connector(difusor: Difusor, settings: Settings) -> Transport:
        connections.append(difusor.name)
        return await open_sftp(difusor, settings)

    class Enough(Exception):
        pass

    async def run(request: PublishRequest, pool: ConnectionPool) -> PublishReport:
        published.append(request.corte)
        report = await publish_async(request, lambda _: None, pool)
        assert report.exit_code == 0
        if len(published) == 1:
            workdir.build(CORTES[1])
        else:
            raise Enough
        return report

    request = PublishRequest(settings=settings, difusores=settings.roster.difusores)
    with pytest.raises(Enough):
        watch(request, 0.01, run, connector)
    assert published == [CORTES[0], CORTES[1]]
    assert connections == [asyncssh_difusor.name], "the second corte reuses the connection"
    served = json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes())
    assert served["corte"] == CORTES[1]


def test_the_markdown_shows_end_to_end_latency_when_verify_watched() -> None:
    zone = ZoneInfo("America/Mexico_City")
    report = build_report(
        "Prueba", zone, scripted_night(), suspensions=[], public_latencies={"uno": [9.0, 12.0]}
    )
    text = report_markdown(report)
    assert "## Latencia de punta a punta" in text
    assert "| uno | 9.00 s | 12.0 s | 12.0 s |" in text


def test_a_suspended_difusor_shows_the_interrupted_notice(
    asyncssh_difusor: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy, proxied = fault_proxy(asyncssh_difusor)
    workdir.write_roster([proxied], deadline=HEALTHY_DEADLINE, notice_on_suspend=True)
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    workdir.write_roster([proxied], deadline=2, notice_on_suspend=True)
    proxy.faults.reset_after_bytes = 60_000  # small requests pass, a corte does not
    outcomes = []
    for corte in CORTES[1:4]:
        workdir.build(corte)
        code, report = run_json(workdir, capsys, "publish")
        outcomes.append((code, report["deliveries"][0]["outcome"]))
    assert outcomes == [(ExitCode.TOTAL_FAILURE, "failed")] * 3
    served = json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes())
    assert served["corte"] == CORTES[0]
    assert served["aviso"].startswith("Actualización interrumpida")
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert [e.kind for e in ledger.events("notice")] == ["notice"]
    proxy.faults.reset_after_bytes = None
    workdir.write_roster([proxied], deadline=HEALTHY_DEADLINE, notice_on_suspend=True)
    assert main(["-C", str(workdir.path), "resume", proxied.name]) == 0
    assert run_json(workdir, capsys, "publish")[0] == 0
    served = json.loads((asyncssh_difusor.local_root / "json/main.json").read_bytes())
    assert served["corte"] == CORTES[3]
    assert "aviso" not in served

"""simulate: the synthetic night, the local fleet, faults, and the scenario's verdict."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from prepush.__main__ import main
from prepush.corte.catalogue import CatalogueCheck, RowlessProof
from prepush.corte.inputs import collect_sources, parse_sources
from prepush.corte.reconcile import reconcile
from prepush.corte.summary import compute_summary
from prepush.exceptions import ConfigError
from prepush.ledger import Ledger
from prepush.ops.report import ReportRequest, make_report
from prepush.publish.protocol_types import Event
from prepush.settings import load_settings
from prepush.sim.scenario import KINDS, load_scenario, parse_fault
from prepush.sim.simulate import SimulateOptions, expected_suspensions, simulate
from prepush.sim.synth import spec_for, write_corte
from tests.support.servers import read_tree

START = datetime(2027, 6, 6, 20, 0, tzinfo=ZoneInfo("America/Mexico_City"))


def test_generator_is_deterministic_and_parses_like_real_files(tmp_path: Path) -> None:
    spec = spec_for("small", 11, 6, START, 15)
    first = read_tree(write_corte(spec, 3, tmp_path / "a"))
    again = read_tree(write_corte(spec, 3, tmp_path / "b"))
    assert first == again
    other = read_tree(write_corte(spec_for("small", 12, 6, START, 15), 3, tmp_path / "c"))
    assert other != first
    elections = parse_sources(collect_sources([tmp_path / "a"]))
    assert [e.code for e in elections] == ["GOB", "DIP_LOC", "AYUN"]
    for election in elections:
        summary = compute_summary(election)
        # The synthetic preamble is what its rows add up to, with the PREP's own participation
        # formula (S_CS in intermediate cortes): nothing refused, nothing to warn of.
        result = reconcile(election, summary, CatalogueCheck(RowlessProof(0, "")))
        assert {f.name for f in result.findings} <= {"participacion_con_s_cs"}
        assert summary.actas_capturadas > 0
        assert election.fuera_catalogo == 0 or summary.actas_registradas > summary.actas_capturadas
        kinds = {a.tipo for a in election.actas}
        assert {"B", "C"} <= kinds
        assert any(a.observaciones for a in election.actas if a.captured)


def test_cortes_only_add_actas(tmp_path: Path) -> None:
    spec = spec_for("small", 5, 8, START, 15)
    arrived = []
    previous: dict[str, object] = {}
    for k in range(spec.cortes):
        (gob,) = [
            e
            for e in parse_sources(collect_sources([write_corte(spec, k, tmp_path)]))
            if e.code == "GOB"
        ]
        rows = {a.clave: a for a in gob.actas if a.captured}
        for clave, acta in previous.items():
            assert rows[clave] == acta
        arrived.append(len(rows) - len(previous))
        previous = dict(rows)
    assert arrived[0] == 0
    assert max(arrived[2:6]) > arrived[1]
    assert sum(arrived) > 0.9 * 1200


def test_fault_specs_and_scenarios(tmp_path: Path) -> None:
    reset = parse_fault("difusor03:reset@5=30%")
    assert reset.kind == "reset"
    assert reset.value == pytest.approx(0.3)
    assert reset.applies(5)
    assert not reset.applies(4)
    down = parse_fault("difusor07:down@8-11")
    assert down.cortes == frozenset({8, 9, 10, 11})
    assert parse_fault("difusor02:latency@*=150ms").value == pytest.approx(0.15)
    assert parse_fault("difusor04:bandwidth@3-6=2MB").value == 2e6
    with pytest.raises(ConfigError):
        parse_fault("difusor03:explota@5")
    with pytest.raises(ConfigError):
        parse_fault("difusor03:reset@5")
    scenario = tmp_path / "escenario.yaml"
    scenario.write_text(
        'faults:\n  - "difusor03:reset@5=30%"\n'
        "  - {difusor: difusor07, kind: down, cortes: '8-11'}\n"
    )
    assert load_scenario(scenario) == [reset, down]
    assert expected_suspensions([reset, down], 12, 3) == {"difusor07"}
    assert expected_suspensions([parse_fault("difusor07:down@8-9")], 12, 3) == set()
    assert set(KINDS) >= {"reset", "down", "latency", "full", "noposixrename"}


def listening_ports() -> set[int]:
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_a_short_night_with_a_fault_ends_as_expected(tmp_path: Path) -> None:
    before_threads = {t.name for t in threading.enumerate()}
    lines: list[str] = []
    result = simulate(
        SimulateOptions(
            workdir=tmp_path,
            difusores=3,
            cortes=4,
            seconds_per_corte=0.5,
            faults=[parse_fault("difusor02:down@2-4")],
        ),
        lambda _e: None,
        lines.append,
    )
    assert result.ok, result.problems
    assert result.suspended == {"difusor02"} == result.expected_suspended
    last = result.cortes[-1].corte
    package = read_tree(tmp_path / "simulacro" / "paquetes" / last)
    for name in ("difusor01", "difusor03"):
        remote = read_tree(tmp_path / "simulacro" / "difusores" / name)
        assert {p: remote[p] for p in package} == package
    stale = read_tree(tmp_path / "simulacro" / "difusores" / "difusor02")
    assert b'"corte":"' + result.cortes[0].corte.encode() in stale["json/main.json"]
    settings = load_settings(tmp_path / "simulacro")
    report = make_report(settings, ReportRequest())
    (incident,) = report.incidents
    assert incident.difusor == "difusor02"
    assert incident.cortes == [c.corte for c in result.cortes[1:4]]
    assert incident.duration_s is not None
    assert incident.duration_s > 0
    with Ledger(settings.ledger_location) as ledger:
        assert ledger.active_suspension("difusor02") is not None
    assert result.report_path.read_text().startswith("# Reporte de publicación del PREP")
    assert {t.name for t in threading.enumerate()} <= before_threads | {"MainThread"}
    # The night's own ports (web servers, and the proxies the roster points at) are closed.
    web_ports = {int(url.rsplit(":", 1)[1].strip("/")) for url in result.sites.values()}
    proxy_ports = {d.port for d in settings.roster.difusores}
    assert not (web_ports | proxy_ports) & listening_ports()


@pytest.mark.parametrize(
    ("spec", "error_class"),
    [
        ("difusor01:auth@2", "AuthError"),
        ("difusor01:full@2", "RemoteError"),
        ("difusor01:readonly@2", "RemoteError"),
        ("difusor01:stall@2", "DeadlineError"),
        ("difusor01:reset@2=1%", None),
        ("difusor01:noposixrename@2", None),
        ("difusor01:latency@2=20ms", None),
    ],
)
def test_each_fault_has_its_effect(spec: str, error_class: str | None, tmp_path: Path) -> None:
    steps: list[tuple[str, float]] = []

    def on_event(event: Event) -> None:
        if event.stage == "step":
            steps.append((event.detail, time.monotonic()))

    result = simulate(
        SimulateOptions(
            workdir=tmp_path,
            difusores=1,
            cortes=2,
            seconds_per_corte=0.5,
            faults=[parse_fault(spec)],
        ),
        on_event,
        lambda _line: None,
    )
    (delivery,) = result.cortes[1].report.deliveries
    if error_class is None:
        assert delivery.outcome == "delivered", delivery.error_message
    else:
        assert delivery.outcome == "failed"
        assert delivery.error_class == error_class, delivery.error_message
    if spec.startswith("difusor01:reset"):
        assert delivery.attempts == 2
    if "noposixrename" in spec:
        assert delivery.atomic is False
    if "latency" in spec:
        latency = parse_fault(spec).value
        assert latency
        gaps = answered_step_gaps(steps)
        assert set(gaps) == set(ANSWERED_STEPS), gaps
        # Each of them waited for a request and its reply through the proxy: 2 latencies.
        assert all(gap >= 2 * latency for gap in gaps.values()), gaps


# Protocol steps that each wait for at least one reply from the difusor (a read, a write, a
# rename, a removal) after the step before them ended.
ANSWERED_STEPS = ("state", "pending", "flip:json/main.json", "record", "done")


def answered_step_gaps(steps: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds from the step before to each answered step, in the last delivery's attempt."""
    start = max(i for i, (name, _) in enumerate(steps) if name == "lock")
    attempt = steps[start:]
    return {
        name: at - attempt[i - 1][1]
        for i, (name, at) in enumerate(attempt)
        if i and name in ANSWERED_STEPS
    }


def test_cli_simulate_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "-C",
            str(tmp_path),
            "simulate",
            "--difusores",
            "2",
            "--cortes",
            "2",
            "--seconds-per-corte",
            "0.5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sitio en http://127.0.0.1:" in out
    assert "reporte.md" in out


def test_port_helper_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert sock.getsockname()[1] in listening_ports()


def test_a_night_with_real_sshd_difusores(tmp_path: Path) -> None:
    from prepush.sim.sshd import sshd_available

    if not sshd_available():
        pytest.skip("requiere /usr/sbin/sshd y ser root; 'make test' lo instala")
    result = simulate(
        SimulateOptions(
            workdir=tmp_path,
            difusores=2,
            cortes=2,
            seconds_per_corte=0.5,
            sshd=True,
            faults=[parse_fault("difusor02:latency@2=10ms")],
        ),
        lambda _e: None,
        lambda _line: None,
    )
    assert result.ok, result.problems
    assert [d.outcome for d in result.cortes[-1].report.deliveries] == ["delivered", "delivered"]
    with pytest.raises(ConfigError):
        simulate(
            SimulateOptions(workdir=tmp_path, sshd=True, faults=[parse_fault("difusor01:full@1")]),
            lambda _e: None,
            lambda _line: None,
        )


def test_a_mixed_night_with_rsync_difusores(tmp_path: Path) -> None:
    """simulate --transport mixto: SFTP, an rsync daemon and sshd with rrsync in one night,
    a cut on the rsync daemon; everything ends with the last corte and nothing is left."""
    from prepush.sim.rsyncd import rrsync_path, rsync_available
    from prepush.sim.sshd import sshd_available

    if not (rsync_available() and sshd_available() and rrsync_path() is not None):
        pytest.skip("requiere rsync (con rrsync), sshd y ser root; 'make test' los instala")
    result = simulate(
        SimulateOptions(
            workdir=tmp_path,
            difusores=3,
            cortes=3,
            seconds_per_corte=0.5,
            transport="mixto",
            faults=[parse_fault("difusor02:reset@2=30%")],
        ),
        lambda _e: None,
        lambda _line: None,
    )
    assert result.ok, result.problems
    settings = load_settings(tmp_path / "simulacro")
    transports = [(d.transport, d.rsync_daemon) for d in settings.roster.difusores]
    assert transports == [("sftp", False), ("rsync", True), ("rsync", False)]
    assert [d.outcome for d in result.cortes[-1].report.deliveries] == ["delivered"] * 3
    (cut,) = [d for d in result.cortes[1].report.deliveries if d.difusor == "difusor02"]
    assert cut.outcome == "delivered"
    assert cut.attempts == 2
    proxy_ports = {d.port for d in settings.roster.difusores}
    assert not proxy_ports & listening_ports()
    with pytest.raises(ConfigError, match="fallas del servidor"):
        simulate(
            SimulateOptions(
                workdir=tmp_path, transport="rsync", faults=[parse_fault("difusor01:full@1")]
            ),
            lambda _e: None,
            lambda _line: None,
        )


def test_a_contingency_drill_hands_over_and_ends_on_the_last_corte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """simulate --failover: two machines, a local PostgreSQL, the holder killed at corte 3;
    the other takes over within failover_seconds plus one corte, every difusor ends on the
    last corte and none ever went back."""
    from prepush.sim.postgres import postgres_available

    if not postgres_available():
        pytest.skip("requiere PostgreSQL de Debian (paquete postgresql); 'make test' lo instala")
    args = ["--difusores", "2", "--cortes", "4", "--seconds-per-corte", "3", "--failover", "3"]
    code = main(["-C", str(tmp_path), "simulate", *args, "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 0, (result["problems"], captured.err[-3000:])
    assert result["ok"] is True
    assert result["killed_corte"] == result["cortes"][2]
    assert 0 < result["takeover_s"] <= 2.0 + 3.0
    assert "SIGKILL a maquina-a a media entrega" in captured.err
    assert "maquina-b tomó el turno (concesión 2)" in captured.err
    report = Path(result["report"]).read_text()
    assert "difusor01" in report
    refused = main(["-C", str(tmp_path), "simulate", "--failover", "2", "--sshd"])
    assert refused == 2
    assert "no se combina" in capsys.readouterr().err

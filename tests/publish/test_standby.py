"""A second publisher on standby: two machines, one shared ledger, one publisher at a time.

Two working directories play two machines ("maquina-a" and "maquina-b"): the same roster,
the same signing key, each building every corte from the same PREP files, both running
``prepush publish --watch`` in processes of their own against one real PostgreSQL ledger
(Debian's, started by the suite) and real OpenSSH difusores (sshd, one plain and one in the
guide's chroot), each behind a fault proxy and served by nginx. A reader polls every difusor
through nginx all the while: it never reads a torn corte, and the corte it reads never goes
back.

- SIGKILL of the publisher on duty mid-corte: the standby takes the lease and the corte is
  on every difusor within ``failover_seconds`` plus one corte; the next corte too; the
  ledger has one truthful row per attempt from both machines.
- SIGSTOP of the publisher on duty mid-corte, past its lease: the standby takes over and
  publishes two cortes; SIGCONT: the old holder writes nothing (the difusor's files are
  unchanged, its deliveries end unflipped in the ledger) and becomes the standby.
- A manual publish on the standby is refused, saying who publishes.

- The holder loses its link to the database: it stops, the standby takes over, and when the
  link is back it waits.

And the fence alone: a run whose lease ran out writes nothing after its upload, in the
parent and in a worker process (the remote lock's epoch: tests/publish/test_fencing.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from prepush.__main__ import main
from prepush.cli import cli
from prepush.ledger import Ledger, PostgresLocation
from prepush.ops.report import ReportRequest, make_report, report_markdown
from prepush.package import Package
from prepush.publish.lease import FENCE
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import load_settings
from prepush.sim.faultproxy import FaultProxy
from prepush.sim.fleet import ServerThread
from prepush.sim.synth import spec_for, write_corte
from tests.conftest import FaultProxyFactory, Workdir, ledger_paths
from tests.support.crashes import Reader
from tests.support.servers import Endpoint, Nginx, free_port

ZONE = ZoneInfo("America/Merida")
FAILOVER = 3.0
DEADLINE = 20.0
# A corte crawls through the proxies: long enough to stop its publisher mid-corte.
SLOW_BYTES_PER_S = 20_000
WAIT_S = 90.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no sucedió en {timeout:g} s: {what}")


@dataclasses.dataclass
class Machine:
    """One of the pair: a working directory and its ``publish --watch``."""

    name: str
    workdir: Workdir
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return f"{socket.gethostname()}:{self.workdir.path.resolve()}"

    def watch(self, *extra: str) -> None:
        """``prepush publish --watch`` in a process group of its own (a machine of its own:
        its worker processes are stopped and killed with it)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prepush",
                    "-C",
                    str(self.workdir.path),
                    "publish",
                    "--watch",
                    "0.2",
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def said(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(10)


@dataclasses.dataclass
class Night:
    """The pair, its difusores (behind proxies, served by nginx) and the shared ledger."""

    a: Machine
    b: Machine
    ledger: PostgresLocation
    difusores: list[Endpoint]
    proxies: list[FaultProxy]
    pollers: list[Reader]
    scratch: Path
    spec: Any
    packages: dict[str, Package] = dataclasses.field(default_factory=dict)

    def build(self, k: int, *, only: Machine | None = None) -> str:
        """Corte k from the same PREP files on both machines (or ``only`` one)."""
        source = write_corte(self.spec, k, self.scratch / "prep")
        for machine in (self.a, self.b) if only is None else (only,):
            assert main(["-C", str(machine.workdir.path), "build", str(source)]) == 0
        corte = str(self.spec.corte_id(k))
        package = Package.open((only or self.a).workdir.path / "paquetes" / corte)
        self.packages[corte] = package
        for poller in self.pollers:
            poller.learn(package)
        return corte

    def served(self) -> list[str | None]:
        cortes: list[str | None] = []
        for difusor in self.difusores:
            main_json = difusor.local_root / "json/main.json"
            try:
                cortes.append(str(json.loads(main_json.read_bytes())["corte"]))
            except (OSError, ValueError, KeyError):
                cortes.append(None)
        return cortes

    def everywhere(self, corte: str) -> bool:
        return all(served == corte for served in self.served())

    def slow(self, rate: float | None) -> None:
        for proxy in self.proxies:
            proxy.faults.rate_bytes_per_s = rate

    def lease(self) -> tuple[str, int]:
        with Ledger(self.ledger) as ledger:
            lease = ledger.lease()
            return (lease.node if lease.held else "", lease.epoch)

    def roles(self) -> dict[str, str]:
        with Ledger(self.ledger) as ledger:
            return {p.node: p.role for p in ledger.publishers()}

    def finished(self, corte: str, epoch: int) -> bool:
        """The run of ``epoch`` that published ``corte`` has ended (released every lock)."""
        with Ledger(self.ledger) as ledger:
            runs = [
                r
                for r in ledger.runs()
                if r.options.get("epoch") == epoch and r.corte == corte and r.command == "publish"
            ]
        return bool(runs) and all(r.status != "running" for r in runs)

    def running(self, corte: str, epoch: int) -> bool:
        """Every difusor's delivery of ``corte`` under ``epoch`` is under way, its remote lock
        taken (mid-corte)."""
        with Ledger(self.ledger) as ledger:
            runs = {r.id for r in ledger.runs() if r.options.get("epoch") == epoch}
            mine = [d for d in ledger.deliveries() if d.run_id in runs and d.corte == corte]
        locked = all(self.locked_by(d, epoch) for d in self.difusores)
        return (
            len(mine) == len(self.difusores)
            and all(d.outcome == "running" and d.connected_at is not None for d in mine)
            and locked
        )

    @staticmethod
    def locked_by(difusor: Endpoint, epoch: int) -> bool:
        """The difusor's remote lock is there, taken under ``epoch``."""
        try:
            return json.loads((difusor.local_root / ".prepush/lock").read_bytes())["epoch"] == epoch
        except (OSError, ValueError, KeyError):
            return False


@pytest.fixture
def night(
    _sshd_plain_server: tuple[object, Endpoint],
    _sshd_chroot_server: tuple[object, Endpoint],
    postgres_ledger: PostgresLocation,
    fault_proxies: FaultProxyFactory,
    nginx_factory: Callable[..., Nginx],
    client_key: Path,
    tmp_path: Path,
) -> Iterator[Night]:
    difusores = [_sshd_plain_server[1], _sshd_chroot_server[1]]
    proxies, proxied, pollers = [], [], []
    for difusor in difusores:
        difusor.empty()
        proxy = fault_proxies(difusor.host, difusor.port)
        proxies.append(proxy)
        proxied.append(dataclasses.replace(difusor, port=proxy.port))
        pollers.append(Reader(nginx_factory(difusor.local_root).url))
    machines = []
    for name in ("maquina-a", "maquina-b"):
        path = tmp_path / name
        path.mkdir()
        workdir = Workdir(path, client_key)
        workdir.write_roster(
            proxied,
            deadline=DEADLINE,
            rowless_actas={},
            paths=ledger_paths(postgres_ledger),
            publish={"failover_seconds": FAILOVER, "workers": 2},
        )
        machines.append(Machine(name, workdir, tmp_path / f"{name}.log"))
    start = datetime(2027, 6, 6, 20, 0, tzinfo=ZONE)
    spec = spec_for("tiny", 11, 80, start, 15)
    night = Night(*machines, postgres_ledger, difusores, proxies, pollers, tmp_path, spec)
    try:
        yield night
    finally:
        for machine in machines:
            machine.stop()
        for poller in pollers:
            poller.stop.set()
            if poller.is_alive():
                poller.join(10)


def _on_duty_and_standby(night: Night) -> None:
    """A publishes corte 0 everywhere; B is seen waiting."""
    night.build(0)
    night.a.watch()
    wait_until(lambda: night.lease() == (night.a.node, 1), "A toma la concesión 1")
    night.b.watch()
    wait_until(lambda: night.roles().get(night.b.node) == "standby", "B en espera")
    first = night.spec.corte_id(0)
    wait_until(lambda: night.everywhere(first), f"{first} en todos los difusores")
    for poller in night.pollers:
        poller.start()
    assert "En espera: publica" in wait_until(
        lambda: "En espera" in night.b.said() and night.b.said(), "B dice que espera"
    )


def _readers_saw_nothing_wrong(night: Night, last: str) -> None:
    wait_until(lambda: all(p.seen and p.seen[-1] == last for p in night.pollers), "lectores")
    for poller in night.pollers:
        poller.stop.set()
        poller.join(10)
        assert poller.torn == [], poller.torn[:5]
        assert poller.seen == sorted(poller.seen), f"un corte volvió atrás: {poller.seen}"


def _truthful(ledger: Ledger) -> None:
    """One finished row per delivery and per attempt, from either machine."""
    for delivery in ledger.deliveries():
        assert delivery.outcome != "running", delivery
        attempts = ledger.attempts(delivery.id)
        assert [a.number for a in attempts] == list(range(1, delivery.attempts + 1)), delivery
        assert all(a.outcome != "running" for a in attempts), attempts
        assert (delivery.flip_at is not None) == (delivery.outcome == "delivered"), delivery
    assert all(r.status != "running" for r in ledger.runs() if r.command == "publish")


def test_the_standby_takes_over_when_the_holder_is_killed_mid_corte(night: Night) -> None:
    _on_duty_and_standby(night)
    night.slow(SLOW_BYTES_PER_S)
    second = night.build(1)
    wait_until(lambda: night.running(second, epoch=1), f"A a media entrega de {second}")
    night.a.signal(signal.SIGKILL)
    killed = time.monotonic()
    night.slow(None)
    wait_until(lambda: night.lease() == (night.b.node, 2), "B toma la concesión 2")
    wait_until(lambda: night.everywhere(second), f"{second} en todos los difusores")
    took = time.monotonic() - killed
    assert took <= FAILOVER + DEADLINE, f"{took:.1f} s desde SIGKILL hasta {second} en todos"
    third = night.build(2)
    wait_until(lambda: night.everywhere(third), f"{third} en todos los difusores")
    _readers_saw_nothing_wrong(night, third)
    with Ledger(night.ledger) as ledger:
        _truthful(ledger)
        runs = {r.id: r for r in ledger.runs() if r.command == "publish"}
        by_epoch: dict[int, list[int]] = {}
        for run in runs.values():
            by_epoch.setdefault(run.options["epoch"], []).append(run.id)
        assert set(by_epoch) == {1, 2}
        a_runs, b_runs = by_epoch[1], by_epoch[2]
        assert {runs[i].pid for i in a_runs} == {night.a.process.pid}  # type: ignore[union-attr]
        assert {runs[i].pid for i in b_runs} == {night.b.process.pid}  # type: ignore[union-attr]
        deliveries = ledger.deliveries()
        cut = [d for d in deliveries if d.run_id in a_runs and d.corte == second]
        assert len(cut) == len(night.difusores)
        assert {d.outcome for d in cut} == {"interrupted"}
        assert all("proceso matado" in (d.error_message or "") for d in cut)
        assert [runs[d.run_id].status for d in cut] == ["interrupted"] * len(cut)
        for corte in (second, third):
            done = [d for d in deliveries if d.run_id in b_runs and d.corte == corte]
            assert sorted(d.difusor for d in done if d.outcome == "delivered") == sorted(
                d.name for d in night.difusores
            ), corte
        (taken,) = ledger.events("lease_taken")[1:]
        assert "concesión 2" in taken.message
        assert "antes publicaba" in taken.message
        assert str(night.a.process.pid) in taken.message  # type: ignore[union-attr]
        events = [e for e in ledger.events("lock_taken_over") if "concesión 1" in e.message]
        assert {e.difusor for e in events} == {d.name for d in night.difusores}
    # The night's report tells the change of hands, from either machine.
    settings = load_settings(night.b.workdir.path)
    night_report = report_markdown(make_report(settings, ReportRequest()))
    assert "## Cambios de la máquina que publica" in night_report
    assert taken.message in night_report


def test_a_paused_holder_never_flips_after_the_standby_took_over(night: Night) -> None:
    _on_duty_and_standby(night)
    night.slow(SLOW_BYTES_PER_S)
    second = night.build(1)
    wait_until(lambda: night.running(second, epoch=1), f"A a media entrega de {second}")
    night.a.signal(signal.SIGSTOP)
    night.slow(None)
    wait_until(lambda: night.lease() == (night.b.node, 2), "B toma la concesión 2")
    wait_until(lambda: night.everywhere(second), f"{second} en todos los difusores")
    third = night.build(2)
    wait_until(lambda: night.everywhere(third), f"{third} en todos los difusores")
    wait_until(lambda: night.finished(third, epoch=2), f"B termina {third}")
    watched = ("json/main.json", "index.html", ".prepush/state.json")
    before = {
        (d.name, path): (d.local_root / path).read_bytes()
        for d in night.difusores
        for path in watched
    }
    night.a.signal(signal.SIGCONT)

    def a_gave_up() -> bool:
        """A woke: its deliveries of the second corte ended unflipped, and it waits."""
        with Ledger(night.ledger) as ledger:
            runs = {r.id for r in ledger.runs() if r.options.get("epoch") == 1}
            mine = [d for d in ledger.deliveries() if d.run_id in runs and d.corte == second]
        ended = all(d.outcome == "failed" and d.flip_at is None for d in mine)
        return ended and night.roles().get(night.a.node) == "standby"

    wait_until(a_gave_up, "A despierta, no cambia nada y queda en espera")
    assert "perdió el turno de publicar" in night.a.said()
    after = {
        (d.name, path): (d.local_root / path).read_bytes()
        for d in night.difusores
        for path in watched
    }
    assert after == before
    for difusor in night.difusores:
        assert not (difusor.local_root / ".prepush/pending.json").exists()
        assert not (difusor.local_root / ".prepush/lock").exists()
    fourth = night.build(3)
    wait_until(lambda: night.everywhere(fourth), f"{fourth} en todos los difusores")
    _readers_saw_nothing_wrong(night, fourth)
    with Ledger(night.ledger) as ledger:
        _truthful(ledger)
        runs = {r.id: r for r in ledger.runs() if r.command == "publish"}
        flips = [d for d in ledger.deliveries() if d.flip_at is not None]
        stale = [d for d in flips if runs[d.run_id].options["epoch"] == 1]
        assert {d.corte for d in stale} == {night.spec.corte_id(0)}, stale
        late = [d for d in flips if d.corte in (second, third, fourth)]
        assert {runs[d.run_id].options["epoch"] for d in late} == {2}
        failed = [
            d
            for d in ledger.deliveries()
            if runs[d.run_id].options["epoch"] == 1 and d.corte == second
        ]
        assert {d.error_class for d in failed} <= {"LeaseLostError", "DeadlineError"}, failed
        assert ledger.lease().node == night.b.node


def test_a_holder_that_loses_the_database_stops_and_the_standby_takes_over(
    night: Night, servers_loop: ServerThread, fault_proxies: FaultProxyFactory
) -> None:
    """The machine on duty reaches the ledger through a link that breaks (connections cut,
    then refused): its lease runs out unrenewed, it writes nothing more, the standby takes
    over; when the link comes back it finds the other machine on duty and waits."""
    host, port = night.ledger.url.split("@", 1)[1].split("/", 1)[0].split(":")
    link = fault_proxies(host, int(port))
    night.a.workdir.write_roster(
        [
            dataclasses.replace(d, port=p.port)
            for d, p in zip(night.difusores, night.proxies, strict=True)
        ],
        deadline=DEADLINE,
        rowless_actas={},
        paths={
            "ledger": night.ledger.url.replace(f":{port}/", f":{link.port}/"),
            "ledger_password_env": night.ledger.password_env,
        },
        publish={"failover_seconds": FAILOVER, "workers": 2},
    )
    _on_duty_and_standby(night)
    servers_loop.run(link.set_refusing(True))
    servers_loop.run(link.cut())
    wait_until(lambda: night.lease() == (night.b.node, 2), "B toma la concesión 2")
    # Without its ledger machine A cannot even build (nothing goes unrecorded).
    second = night.build(1, only=night.b)
    wait_until(lambda: night.everywhere(second), f"{second} en todos los difusores")
    servers_loop.run(link.set_refusing(False))
    wait_until(lambda: night.roles().get(night.a.node) == "standby", "A vuelve, en espera")
    said = night.a.said()
    assert "perdió el turno de publicar" in said
    assert "la bitácora PostgreSQL" in said
    third = night.build(2)
    wait_until(lambda: night.everywhere(third), f"{third} en todos los difusores")
    _readers_saw_nothing_wrong(night, third)
    with Ledger(night.ledger) as ledger:
        _truthful(ledger)
        runs = {r.id: r for r in ledger.runs() if r.command == "publish"}
        by_a = [d for d in ledger.deliveries() if runs[d.run_id].options["epoch"] == 1]
        assert {d.corte for d in by_a} == {night.spec.corte_id(0)}


def _metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        if line.startswith("prepush_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_status_and_metrics_name_the_holder_and_the_standby(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """status (JSON and text) and both machines' Prometheus endpoints say who publishes,
    under which epoch, and who waits; an orderly stop hands over at once."""
    ports = {machine.name: free_port() for machine in (night.a, night.b)}
    night.build(0)
    night.a.watch("--metrics", f"127.0.0.1:{ports['maquina-a']}")
    wait_until(lambda: night.lease() == (night.a.node, 1), "A toma la concesión 1")
    night.b.watch("--metrics", str(ports["maquina-b"]))
    wait_until(lambda: night.roles().get(night.b.node) == "standby", "B en espera")
    first = night.spec.corte_id(0)
    wait_until(lambda: night.everywhere(first), f"{first} en todos los difusores")
    capsys.readouterr()
    assert main(["-C", str(night.b.workdir.path), "status", "--json"]) == 0
    publishers = json.loads(capsys.readouterr().out)["publishers"]
    assert publishers["epoch"] == 1
    assert publishers["holder"]["pid"] == night.a.process.pid  # type: ignore[union-attr]
    assert publishers["holder"]["workdir"] == str(night.a.workdir.path.resolve())
    assert publishers["holder"]["valid"] is True
    (standby,) = publishers["standby"]
    assert standby["pid"] == night.b.process.pid  # type: ignore[union-attr]
    assert standby["alive"] is True
    assert main(["-C", str(night.a.workdir.path), "status"]) == 0
    text = capsys.readouterr().out
    assert f"Publica: {socket.gethostname()} (pid {night.a.process.pid}" in text  # type: ignore[union-attr]
    assert "concesión 1" in text
    assert f"Respaldo: {socket.gethostname()} (pid {night.b.process.pid}" in text  # type: ignore[union-attr]
    assert "en espera" in text

    def holder_metrics() -> dict[str, float] | None:
        values = _metrics(ports["maquina-a"])
        corte = float(first.replace("_", ""))
        served = [
            values.get(f'prepush_difusor_corte{{difusor="{d.name}"}}') for d in night.difusores
        ]
        return values if served == [corte, corte] else None

    on_duty = wait_until(holder_metrics, "las métricas de A dicen el corte servido")
    assert on_duty['prepush_publisher_role{role="holder"}'] == 1
    assert on_duty['prepush_publisher_role{role="standby"}'] == 0
    assert on_duty["prepush_lease_epoch"] == 1
    for difusor in night.difusores:
        assert (
            on_duty[f'prepush_deliveries_total{{difusor="{difusor.name}",outcome="delivered"}}']
            == 1
        )
        # The corte's time is in 2027: its lag is whatever the machine's clock says.
        assert f'prepush_difusor_lag_seconds{{difusor="{difusor.name}"}}' in on_duty
        assert on_duty[f'prepush_difusor_consecutive_failures{{difusor="{difusor.name}"}}'] == 0
    waiting = _metrics(ports["maquina-b"])
    assert waiting['prepush_publisher_role{role="standby"}'] == 1
    assert waiting["prepush_lease_epoch"] == 0
    # Ctrl-C (systemctl stop): the lease is let go and B takes over without waiting it out.
    stopped = time.monotonic()
    night.a.stop()
    wait_until(lambda: night.lease() == (night.b.node, 2), "B toma la concesión 2")
    assert time.monotonic() - stopped < FAILOVER
    took = wait_until(
        lambda: (
            (v := _metrics(ports["maquina-b"]))['prepush_publisher_role{role="holder"}'] == 1 and v
        ),
        "las métricas de B dicen que publica",
    )
    assert took["prepush_lease_epoch"] == 2
    assert night.a.node not in night.roles()


def test_a_manual_publish_on_the_standby_is_refused_saying_who_publishes(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    night.build(0)
    night.a.watch()
    wait_until(lambda: night.lease() == (night.a.node, 1), "A toma la concesión 1")
    capsys.readouterr()
    code = main(["-C", str(night.b.workdir.path), "publish"])
    said = capsys.readouterr().err
    assert code == 1
    assert "Esta máquina está en espera: publica" in said
    assert f"pid {night.a.process.pid}" in said  # type: ignore[union-attr]
    assert "concesión 1" in said


# --- the fence and the epoch, one at a time ----------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_whose_lease_ran_out_writes_nothing_after_its_upload(
    processes: int,
    sshd_plain: Endpoint,
    sshd_chroot: Endpoint,
    fault_proxy: Callable[[Endpoint], tuple[FaultProxy, Endpoint]],
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    """The fence, in the parent and in a worker process: the lease runs out while the files
    crawl up; no pending record, no flip, no new state, the previous corte still served."""
    fleet = [sshd_plain, sshd_chroot]
    proxies, proxied = zip(*(fault_proxy(d) for d in fleet), strict=True)
    workdir.write_roster(
        list(proxied), deadline=60, rowless_actas={}, publish={"workers": processes}
    )
    spec = spec_for("tiny", 11, 80, datetime(2027, 6, 6, 20, 0, tzinfo=ZONE), 15)
    first, second = (
        main(["-C", str(workdir.path), "build", str(write_corte(spec, k, tmp_path / "prep"))])
        for k in (0, 1)
    )
    assert first == 0
    settings = load_settings(workdir.path)
    assert (
        publish(PublishRequest(settings, settings.roster.difusores, spec.corte_id(0))).exit_code
        == 0
    )
    before = {d.name: (d.local_root / "json/main.json").read_bytes() for d in fleet}
    assert second == 0
    for proxy in proxies:
        proxy.faults.rate_bytes_per_s = 8_000  # the new corte's files take seconds
    FENCE.arm(epoch=5, until=time.monotonic() + 1.0)
    try:
        report = publish(PublishRequest(settings, settings.roster.difusores))
    finally:
        FENCE.disarm()
    assert {d.outcome for d in report.deliveries} == {"failed"}
    assert {d.error_class for d in report.deliveries} == {"LeaseLostError"}
    assert all("ya no tiene el turno" in (d.error_message or "") for d in report.deliveries)
    assert all(d.flip_at is None for d in report.deliveries)
    for difusor in fleet:
        assert (difusor.local_root / "json/main.json").read_bytes() == before[difusor.name]
        assert not (difusor.local_root / ".prepush/pending.json").exists()
        state = json.loads((difusor.local_root / ".prepush/state.json").read_bytes())
        assert state["current"] == spec.corte_id(0)


def test_the_pair_unit_runs_a_watch_with_metrics_and_stops_it_in_order() -> None:
    """docs/systemd/prepush-par.service: its command line is one prepush accepts, and it
    stops with Ctrl-C (SIGINT), which lets the lease go."""
    unit = (Path(__file__).resolve().parents[2] / "docs/systemd/prepush-par.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#")
    assert lines["KillSignal"] == "SIGINT"
    assert lines["Restart"] == "always"
    command = lines["ExecStart"].split()
    assert command[0].endswith("/prepush")
    arguments = command[1:]
    assert arguments[arguments.index("publish") :][:2] == ["publish", "--watch"]
    assert "--metrics" in arguments
    with pytest.raises(SystemExit) as helped:
        cli.main([*arguments, "--help"], standalone_mode=True)
    assert helped.value.code == 0

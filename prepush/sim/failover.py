"""``prepush simulate --failover N``: the drill of a publisher and its standby, on one machine.

Two working directories play the two machines of a pair (``maquina-a``, ``maquina-b``): the
same roster, the same signing key, the same ledger in a local PostgreSQL server (Debian's,
:mod:`prepush.sim.postgres`), each building every corte from the same synthetic PREP files
and each running ``prepush publish --watch`` in a process group of its own, to the local
difusores. Machine A takes the lease first. At corte N, as soon as A has started to deliver
it, A is killed (SIGKILL of its whole process group, as a machine that dies). B must take
over and bring that corte to every difusor within ``failover_seconds`` plus one corte, and
publish every corte after it. Meanwhile each difusor's ``json/main.json`` is watched: the
corte it serves must never go back.

The night ends with the report from the shared ledger (both machines' deliveries) and says
whether it went as a drill should.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from prepush.corte.builder import BuildOptions, build_from_prep
from prepush.exceptions import ConfigError
from prepush.keys import generate_key_pair
from prepush.ledger import Ledger, PostgresLocation
from prepush.ops.report import ReportRequest, make_report, report_markdown
from prepush.package import Package, load_signing_key
from prepush.settings import load_settings
from prepush.sim.faultproxy import FaultProxy
from prepush.sim.fleet import Fleet, ServerThread
from prepush.sim.postgres import LocalPostgres, postgres_available
from prepush.sim.synth import spec_for, write_corte

MACHINES = ("maquina-a", "maquina-b")
# The roster the simulacro writes names this variable for the local ledger's password.
PASSWORD_ENV = "PREPUSH_SIMULACRO_BITACORA"
DATABASE = "prepush"
WATCH_INTERVAL = "0.2"
PREPUSH = (sys.executable, "-m", "prepush")
SLOW_BYTES_PER_S = 20_000.0
Progress = Callable[[str], None]


@dataclass
class FailoverOptions:
    workdir: Path
    failover_corte: int
    difusores: int = 5
    cortes: int = 12
    size: str = "tiny"
    seed: int = 2027
    seconds_per_corte: float = 8.0
    timezone: str = "America/Mexico_City"

    @property
    def failover_seconds(self) -> float:
        """Compressed like the night: half a corte, never under 2 s."""
        return max(2.0, self.seconds_per_corte / 2)


@dataclass
class FailoverResult:
    base: Path
    cortes: list[str]
    killed_corte: str
    # From the SIGKILL to that corte on every difusor (None: it never got there).
    takeover_s: float | None
    sites: dict[str, str]
    report_path: Path
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_options(options: FailoverOptions) -> None:
    if not 2 <= options.failover_corte <= options.cortes:
        raise ConfigError(
            f"--failover {options.failover_corte}: el corte de la caída va de 2 a"
            f" {options.cortes} (--cortes), para que la máquina A haya publicado antes."
        )
    if not postgres_available():
        raise ConfigError(
            "--failover necesita el servidor PostgreSQL de Debian (apt-get install postgresql;"
            " como root, también su usuario postgres): la bitácora que comparten las dos"
            " máquinas."
        )


class _Machine:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.log = path.parent / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        import socket

        return f"{socket.gethostname()}:{self.path.resolve()}"

    def watch(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prepush",
                    "-C",
                    str(self.path),
                    "publish",
                    "--watch",
                    WATCH_INTERVAL,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        """Ctrl-C, as systemctl stop: the lease is let go."""
        if self.process is None or self.process.poll() is not None:
            return
        self.kill(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.process.wait(10)


class _Watcher(threading.Thread):
    """Every difusor's json/main.json, read again and again: the cortes it served, in order."""

    def __init__(self, roots: dict[str, Path]) -> None:
        super().__init__(name="vigia", daemon=True)
        self.roots = roots
        self.seen: dict[str, list[str]] = {name: [] for name in roots}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            for name, corte in self.serving().items():
                if corte is not None and (not self.seen[name] or self.seen[name][-1] != corte):
                    self.seen[name].append(corte)

    def serving(self) -> dict[str, str | None]:
        import json

        cortes: dict[str, str | None] = {}
        for name, root in self.roots.items():
            try:
                cortes[name] = str(json.loads((root / "json/main.json").read_bytes())["corte"])
            except (OSError, ValueError, KeyError):
                cortes[name] = None
        return cortes


def run_failover(options: FailoverOptions, progress: Progress) -> FailoverResult:
    check_options(options)
    base = options.workdir.resolve() / "contingencia"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    signing = base / "claves" / "firma.pem"
    generate_key_pair(signing, comment="prepush-simulacro")
    names = [f"difusor{i:02d}" for i in range(1, options.difusores + 1)]
    database = LocalPostgres()
    servers = ServerThread()
    fleet = Fleet(base, names)
    proxies: dict[str, FaultProxy] = {}
    machines = [_Machine(name, base / name) for name in MACHINES]
    watcher: _Watcher | None = None
    try:
        database.start()
        os.environ[PASSWORD_ENV] = database.password
        location = PostgresLocation(database.create_database(DATABASE), PASSWORD_ENV)
        progress(f"Bitácora compartida: {location.url} (PostgreSQL local)")
        servers.run(fleet.start())
        for member in fleet:
            proxy = FaultProxy(member.host, member.port, seed=options.seed)
            servers.run(proxy.start())
            proxies[member.name] = proxy
        for machine in machines:
            _write_roster(machine.path, options, fleet, proxies, signing, location)
        sites = {m.name: m.web.url for m in fleet}
        for name, url in sites.items():
            progress(f"{name}: sitio en {url}")
        watcher = _Watcher({m.name: m.root for m in fleet})
        night = _Drill(options, machines, location, watcher, proxies, signing, base, progress)
        return night.run(sites)
    finally:
        for machine in machines:
            machine.stop()
        if watcher is not None:
            watcher.stop.set()
        for proxy in proxies.values():
            servers.run(proxy.stop())
        servers.run(fleet.stop())
        servers.close()
        database.stop()
        os.environ.pop(PASSWORD_ENV, None)


def _write_roster(
    path: Path,
    options: FailoverOptions,
    fleet: Fleet,
    proxies: dict[str, FaultProxy],
    signing: Path,
    location: PostgresLocation,
) -> None:
    path.mkdir(parents=True)
    entries = [
        {**entry, "port": proxies[str(entry["name"])].port} for entry in fleet.roster_entries()
    ]
    roster = {
        "election": {
            "process": "Simulacro de contingencia del PREP (datos sintéticos)",
            "timezone": options.timezone,
            "publication": {"start": "2000-01-01T00:00:00", "end": "2099-12-31T23:59:00"},
            "corte_interval_minutes": 15,
            "signing_key": str(signing),
        },
        "paths": {"ledger": location.url, "ledger_password_env": PASSWORD_ENV},
        "publish": {
            "deadline_seconds": max(2.0, options.seconds_per_corte * 0.75),
            "connect_timeout_seconds": 3,
            "failover_seconds": options.failover_seconds,
        },
        "difusores": entries,
    }
    header = "# Padrón generado por 'prepush simulate --failover': una de las dos máquinas.\n"
    (path / "difusores.yaml").write_text(
        header + yaml.safe_dump(roster, allow_unicode=True, sort_keys=False)
    )


class _Drill:
    def __init__(
        self,
        options: FailoverOptions,
        machines: list[_Machine],
        location: PostgresLocation,
        watcher: _Watcher,
        proxies: dict[str, FaultProxy],
        signing: Path,
        base: Path,
        progress: Progress,
    ) -> None:
        self.options = options
        self.a, self.b = machines
        self.location = location
        self.watcher = watcher
        self.proxies = proxies
        self.base = base
        self.progress = progress
        zone = ZoneInfo(options.timezone)
        today = datetime.now(zone).replace(hour=20, minute=0, second=0, microsecond=0)
        self.spec = spec_for(options.size, options.seed, options.cortes, today, 15)
        key = load_signing_key(signing)
        self.builds = {
            machine.name: BuildOptions(
                packages_dir=machine.path / "paquetes",
                process="Simulacro de contingencia del PREP (datos sintéticos)",
                zone=zone,
                kind="simulacro",
                signing_key=key,
            )
            for machine in machines
        }
        self.problems: list[str] = []

    def run(self, sites: dict[str, str]) -> FailoverResult:
        opts = self.options
        self.a.watch()
        self._wait(lambda: self._holder() == (self.a.node, 1), 30, "maquina-a toma el turno")
        self.b.watch()
        self._wait(lambda: self._standby(self.b.node), 30, "maquina-b queda en espera")
        self.progress(
            f"maquina-a publica (concesión 1); maquina-b en espera. Relevo tras"
            f" {opts.failover_seconds:g} s sin renovar (publish.failover_seconds)."
        )
        self.watcher.start()
        cortes: list[str] = []
        killed: str = ""
        takeover: float | None = None
        for k in range(opts.cortes):
            started = time.monotonic()
            number = k + 1
            falls = number == opts.failover_corte
            # The corte of the fall crawls to the difusores: A dies in the middle of it.
            self._slow(SLOW_BYTES_PER_S if falls else None)
            corte = self._build(k)
            cortes.append(corte)
            if falls:
                killed, takeover = corte, self._kill_the_holder(corte)
            else:
                self._arrives(corte, number)
            remaining = opts.seconds_per_corte - (time.monotonic() - started)
            if remaining > 0 and number < opts.cortes:
                time.sleep(remaining)
        self.watcher.stop.set()
        self.watcher.join(5)
        self._check_the_night(cortes)
        report_path = self.base / "reporte.md"
        settings = load_settings(self.b.path)
        report_path.write_text(report_markdown(make_report(settings, ReportRequest())))
        return FailoverResult(
            self.base, cortes, killed, takeover, sites, report_path, self.problems
        )

    def _build(self, k: int) -> str:
        """Corte k from the same PREP files, on both machines (a dead one builds nothing)."""
        inputs = write_corte(self.spec, k, self.base / "prep")
        corte = ""
        for machine in (self.a, self.b):
            if machine.process is not None and machine.process.poll() is not None:
                continue
            corte = build_from_prep([inputs], self.builds[machine.name]).package.corte
        return corte

    def _arrives(self, corte: str, number: int) -> None:
        opts = self.options
        if self._wait(lambda: self._everywhere(corte), opts.seconds_per_corte * 3, corte):
            self.progress(f"Corte {number}/{opts.cortes} ({corte}) en todos los difusores")

    def _kill_the_holder(self, corte: str) -> float | None:
        opts = self.options
        self._wait(lambda: self._delivering(corte), opts.seconds_per_corte * 3, "A empieza")
        self.a.kill(signal.SIGKILL)
        killed = time.monotonic()
        self._slow(None)
        self.progress(f"Corte {opts.failover_corte} ({corte}): SIGKILL a maquina-a a media entrega")
        budget = opts.failover_seconds + opts.seconds_per_corte
        if not self._wait(lambda: self._everywhere(corte), budget * 3, f"{corte} tras el relevo"):
            return None
        took = time.monotonic() - killed
        holder = self._holder()
        self.progress(
            f"maquina-b tomó el turno (concesión {holder[1]}) y el corte {corte} llegó a todos los"
            f" difusores {took:.1f} s después del SIGKILL (límite: {budget:g} s, el relevo más un"
            " corte)"
        )
        if holder[0] != self.b.node:
            self.problems.append("maquina-b no tiene el turno después de la caída de maquina-a")
        if took > budget:
            self.problems.append(
                f"el relevo tardó {took:.1f} s, más que publish.failover_seconds más un corte"
                f" ({budget:g} s)"
            )
        return took

    def _check_the_night(self, cortes: list[str]) -> None:
        last = cortes[-1]
        package = Package.open(self.b.path / "paquetes" / last)
        for name, root in self.watcher.roots.items():
            seen = self.watcher.seen[name]
            if seen != sorted(seen):
                self.problems.append(f"{name} volvió a un corte anterior: {' → '.join(seen)}")
            wrong = [
                e.path
                for e in package.manifest.files
                if not (root / e.path).is_file()
                or (root / e.path).read_bytes() != package.file(e.path).read_bytes()
            ]
            if wrong:
                self.problems.append(f"{name} no terminó con el último corte: {wrong[:3]}")

    def _slow(self, rate: float | None) -> None:
        for proxy in self.proxies.values():
            proxy.faults.rate_bytes_per_s = rate

    def _wait(self, condition: Callable[[], object], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        self.problems.append(f"no sucedió en {timeout:g} s: {what}")
        return False

    def _holder(self) -> tuple[str, int]:
        with Ledger(self.location) as ledger:
            lease = ledger.lease()
        return (lease.node if lease.held else "", lease.epoch)

    def _standby(self, node: str) -> bool:
        with Ledger(self.location) as ledger:
            return any(p.node == node and p.role == "standby" for p in ledger.publishers())

    def _delivering(self, corte: str) -> bool:
        with Ledger(self.location) as ledger:
            return any(
                d.corte == corte and d.outcome == "running" and d.connected_at is not None
                for d in ledger.deliveries()
            )

    def _everywhere(self, corte: str) -> bool:
        return all(served == corte for served in self.watcher.serving().values())

"""A whole election night in minutes: synthetic cortes, local difusores, injected faults.

``prepush simulate`` generates each corte of a synthetic election, builds it as a
``simulacro`` package and publishes it on a compressed schedule, to a local fleet (each
difusor behind a fault proxy, with its own web server) or, with ``--roster``, to the real
difusores of a roster (the institute's official simulacros). It ends with the report, and
says whether the night went as the scenario expects: every healthy difusor up to date, and
exactly the suspensions the scenario implies.
"""

from __future__ import annotations

import os
import shutil
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
from prepush.ledger import Ledger
from prepush.ops.report import ReportRequest, latency_html, make_report, report_markdown
from prepush.package import Manifest, Package, load_signing_key
from prepush.publish.protocol_types import EventSink
from prepush.publish.publisher import publish
from prepush.publish.request import PublishReport, PublishRequest
from prepush.settings import Settings, load_settings
from prepush.sim.faultproxy import FaultProxy
from prepush.sim.fleet import Fleet, Kind, LocalDifusor, ServerThread, disk_usage
from prepush.sim.rsyncd import rrsync_path, rsync_available
from prepush.sim.s3local import KEY_ID, SECRET, LocalS3, require_moto
from prepush.sim.scenario import NETWORK_KINDS, Fault, parse_fault
from prepush.sim.sshd import sshd_available
from prepush.sim.synth import spec_for, write_corte

DEMO_FAULTS = ("difusor03:reset@4=30%", "difusor05:down@6-12")
# The variables the local S3 difusores' roster names for their (throwaway) credentials.
S3_KEY_ENV = "PREPUSH_SIMULACRO_S3_LLAVE"
S3_SECRET_ENV = "PREPUSH_SIMULACRO_S3_SECRETO"
# What the night reads back of a difusor's site: a path's bytes, or None.
SiteReader = Callable[[str], bytes | None]
# The shortest deadline of a night with rsync difusores (see _deadline).
RSYNC_DEADLINE_FLOOR = 10.0


@dataclass
class SimulateOptions:
    workdir: Path
    difusores: int = 5
    cortes: int = 12
    size: str = "tiny"
    seed: int = 2027
    seconds_per_corte: float = 8.0
    faults: list[Fault] = field(default_factory=list)
    timezone: str = "America/Mexico_City"
    roster: Path | None = None
    sshd: bool = False
    # sftp, rsync (rsync daemons; with sshd, sshd with rrsync) or mixto (one of each in turn).
    transport: str = "sftp"
    # How many of the difusores (the last ones) are S3 buckets on a local endpoint.
    s3: int = 0


@dataclass
class CorteOutcome:
    number: int
    corte: str
    report: PublishReport


@dataclass
class SimulationResult:
    base: Path
    cortes: list[CorteOutcome]
    problems: list[str]
    report_path: Path
    chart_path: Path
    sites: dict[str, str]
    expected_suspended: set[str]
    suspended: set[str]

    @property
    def ok(self) -> bool:
        return not self.problems


Progress = Callable[[str], None]


def demo_options(workdir: Path) -> SimulateOptions:
    """The embedded default of ``make demo``: 5 difusores, 12 cortes, one fault, one cut off."""
    return SimulateOptions(workdir=workdir, faults=[parse_fault(spec) for spec in DEMO_FAULTS])


def expected_suspensions(faults: list[Fault], cortes: int, limit: int) -> set[str]:
    """Who the scenario cuts off: ``limit`` failed cortes in a row (nobody resumes them)."""
    suspended = set()
    for name in {f.difusor for f in faults}:
        run = 0
        for number in range(1, cortes + 1):
            failing = any(
                f.difusor == name and f.fails_delivery and f.applies(number) for f in faults
            )
            run = run + 1 if failing else 0
            if run >= limit:
                suspended.add(name)
                break
    return suspended


def simulate(options: SimulateOptions, events: EventSink, progress: Progress) -> SimulationResult:
    base = options.workdir.resolve()
    if options.roster is not None:
        return _against_roster(options, events, progress)
    return _local_night(options, base / "simulacro", events, progress)


# --- a local night --------------------------------------------------------------------------


def _prepare(base: Path) -> Path:
    """A fresh night: previous difusores, packages and ledger go; the keys stay."""
    for name in ("difusores", "paquetes", "prep", "prepush.db", "prepush.db-wal", "prepush.db-shm"):
        target = base / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    base.mkdir(parents=True, exist_ok=True)
    signing = base / "claves" / "firma.pem"
    if not signing.exists():
        generate_key_pair(signing, comment="prepush-simulacro")
    return signing


def _local_night(
    options: SimulateOptions, base: Path, events: EventSink, progress: Progress
) -> SimulationResult:
    signing = _prepare(base)
    names = [f"difusor{i:02d}" for i in range(1, options.difusores + 1)]
    cut = len(names) - min(options.s3, len(names))
    sftp_names, s3_names = names[:cut], names[cut:]
    _check_faults(options, names, s3_names)
    servers = ServerThread()
    fleet = Fleet(base, sftp_names, kinds=kinds_for(options, sftp_names))
    buckets = LocalS3(base / "s3", log=False) if s3_names else None
    proxies: dict[str, FaultProxy] = {}
    try:
        servers.run(fleet.start())
        for member in fleet:
            proxies[member.name] = _proxy(servers, member.host, member.port, options.seed)
        readers: dict[str, SiteReader] = {m.name: _directory_reader(m.root) for m in fleet}
        sites = {m.name: m.web.url for m in fleet}
        s3_entries: list[dict[str, object]] = []
        if buckets is not None:
            buckets.start()
            os.environ.update({S3_KEY_ENV: KEY_ID, S3_SECRET_ENV: SECRET})
            for name in s3_names:
                proxies[name] = _proxy(servers, "127.0.0.1", buckets.port, options.seed)
                s3_entries.append(_s3_entry(buckets, name, proxies[name]))
                sites[name] = buckets.site_url(name)
                readers[name] = _bucket_reader(buckets, name)
        settings = _write_local_roster(options, base, fleet, proxies, signing, s3_entries)
        for name, url in sites.items():
            progress(f"{name}: sitio en {url}")
        night = _Night(options, settings, base, events, progress)
        night.run(
            lambda number, manifest: _apply_faults(
                servers, fleet, proxies, options, number, manifest
            )
        )
        return night.finish(sites, readers)
    finally:
        for proxy in proxies.values():
            servers.run(proxy.stop())
        servers.run(fleet.stop())
        if buckets is not None:
            buckets.stop()
        servers.close()


def _proxy(servers: ServerThread, host: str, port: int, seed: int) -> FaultProxy:
    proxy = FaultProxy(host, port, seed=seed)
    servers.run(proxy.start())
    return proxy


def _s3_entry(buckets: LocalS3, name: str, proxy: FaultProxy) -> dict[str, object]:
    """A bucket named after the difusor, with the guide's policy, reached through its proxy
    (the public reads it straight from the endpoint)."""
    buckets.make_bucket(name)
    return {
        "name": name,
        "transport": "s3",
        "url": buckets.site_url(name),
        "s3": {
            "bucket": name,
            "endpoint_url": f"http://127.0.0.1:{proxy.port}",
            "access_key_id_env": S3_KEY_ENV,
            "secret_access_key_env": S3_SECRET_ENV,
        },
    }


def _directory_reader(root: Path) -> SiteReader:
    def read(path: str) -> bytes | None:
        target = root / path
        return target.read_bytes() if target.is_file() else None

    return read


def _bucket_reader(buckets: LocalS3, bucket: str) -> SiteReader:
    client = buckets.client()

    def read(path: str) -> bytes | None:
        try:
            data: bytes = client.get_object(Bucket=bucket, Key=path)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return data

    return read


def _write_local_roster(
    options: SimulateOptions,
    base: Path,
    fleet: Fleet,
    proxies: dict[str, FaultProxy],
    signing: Path,
    s3_entries: list[dict[str, object]],
) -> Settings:
    entries = []
    for entry in fleet.roster_entries():
        proxy = proxies[str(entry["name"])]
        entries.append({**entry, "port": proxy.port})
    entries += s3_entries
    roster = {
        "election": {
            "process": "Simulacro del PREP (datos sintéticos)",
            "timezone": options.timezone,
            "publication": {"start": "2000-01-01T00:00:00", "end": "2099-12-31T23:59:00"},
            "corte_interval_minutes": 15,
            "signing_key": str(signing),
        },
        "publish": {
            "deadline_seconds": _deadline(options, entries),
            "connect_timeout_seconds": 3,
        },
        "difusores": entries,
    }
    path = base / "difusores.yaml"
    header = "# Padrón generado por 'prepush simulate' para los difusores locales.\n"
    path.write_text(header + yaml.safe_dump(roster, allow_unicode=True, sort_keys=False))
    return load_settings(base)


def _deadline(options: SimulateOptions, entries: list[dict[str, object]]) -> float:
    """Three quarters of the compressed corte, never less than a corte takes on the slowest
    transport of the fleet. An rsync difusor needs some fifteen rsync invocations for a first
    corte, one after another; by SSH each opens a session and, with rrsync, starts Python on
    the difusor: 0.2 s apiece on a busy two-core machine, whatever the rsync version. Below
    that floor the night would measure the machine, not the publishing."""
    floor = RSYNC_DEADLINE_FLOOR if any(e.get("transport") == "rsync" for e in entries) else 2.0
    return max(floor, options.seconds_per_corte * 0.75)


def _apply_faults(
    servers: ServerThread,
    fleet: Fleet,
    proxies: dict[str, FaultProxy],
    options: SimulateOptions,
    number: int,
    manifest: Manifest,
) -> list[str]:
    """Set the faults of corte ``number`` (1-based); returns their descriptions."""
    active = []
    locals_by_name = {m.name: m.local for m in fleet}
    for name, proxy in proxies.items():
        servers.run(_reset_network(proxy))
        local = locals_by_name.get(name)
        if local is not None:
            local.faults.clear()
        for fault in options.faults:
            if fault.difusor == name and fault.applies(number):
                servers.run(_apply_one(fault, proxy, local, manifest))
                active.append(fault.describe())
    return active


def kinds_for(options: SimulateOptions, names: list[str]) -> dict[str, Kind]:
    """What each local difusor runs, by --transport and --sshd."""
    sftp: Kind = "sshd" if options.sshd else "sftp"
    rsync: Kind = "rrsync" if options.sshd else "rsyncd"
    if options.transport == "sftp":
        return dict.fromkeys(names, sftp)
    if options.transport == "rsync":
        return dict.fromkeys(names, rsync)
    cycle: list[Kind] = [sftp, "rsyncd"]
    if sshd_available() and rrsync_path() is not None:
        cycle.append("rrsync")
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def _check_faults(options: SimulateOptions, names: list[str], s3_names: list[str]) -> None:
    unknown = {f.difusor for f in options.faults} - set(names)
    if unknown:
        raise ConfigError(
            f"Las fallas nombran difusores que no existen en el simulacro: {sorted(unknown)}."
            f" Hay {options.difusores}: {names[0]} a {names[-1]}."
        )
    if options.transport not in ("sftp", "rsync", "mixto"):
        raise ConfigError(f"--transport {options.transport!r} no existe: use sftp, rsync o mixto.")
    if options.sshd and not sshd_available():
        raise ConfigError(
            "--sshd necesita el servidor de OpenSSH (apt-get install openssh-server) y"
            " ejecutarse como root."
        )
    if options.transport != "sftp" and not rsync_available():
        raise ConfigError("--transport rsync necesita rsync (apt-get install rsync).")
    if options.transport == "rsync" and options.sshd and rrsync_path() is None:
        raise ConfigError("rsync por SSH necesita rrsync, que viene con el paquete rsync.")
    if s3_names:
        require_moto()
    kinds = kinds_for(options, [n for n in names if n not in s3_names])
    real = sorted(
        {
            f"{f.difusor} ({f.kind})"
            for f in options.faults
            if f.kind not in NETWORK_KINDS and kinds.get(f.difusor) != "sftp"
        }
    )
    if real:
        raise ConfigError(
            f"Sólo los difusores SFTP en proceso admiten fallas del servidor: {', '.join(real)}."
            " Con --sshd, con difusores rsync o con buckets S3 use fallas de red (las del proxy)."
        )


async def _reset_network(proxy: FaultProxy) -> None:
    proxy.faults.clear()
    proxy.set_stall(False)
    await proxy.set_refusing(False)


async def _apply_one(
    fault: Fault, proxy: FaultProxy, local: LocalDifusor | None, manifest: Manifest
) -> None:
    value = fault.value or 0.0
    if fault.kind not in NETWORK_KINDS:
        assert local is not None  # _check_faults refuses server faults on sshd difusores
        _apply_server_fault(fault, local)
        return
    match fault.kind:
        case "latency":
            proxy.faults.latency_s = value
        case "bandwidth":
            proxy.faults.rate_bytes_per_s = value
        case "reset":
            proxy.faults.reset_after_bytes = max(1, int(value * manifest.total_bytes))
            proxy.faults.resets_left = 1
        case "random":
            proxy.faults.reset_probability = value
        case "stall":
            proxy.set_stall(True)
        case "down":
            await proxy.set_refusing(True)


def _apply_server_fault(fault: Fault, difusor: LocalDifusor) -> None:
    match fault.kind:
        case "auth":
            difusor.faults.reject_auth = True
        case "full":
            difusor.faults.quota_bytes = disk_usage(difusor.root) + 4096
        case "readonly":
            difusor.faults.read_only = True
        case "noposixrename":
            difusor.faults.no_posix_rename = True


class _Night:
    def __init__(
        self,
        options: SimulateOptions,
        settings: Settings,
        base: Path,
        events: EventSink,
        progress: Progress,
    ) -> None:
        self.options = options
        self.settings = settings
        self.base = base
        self.events = events
        self.progress = progress
        zone = ZoneInfo(options.timezone)
        today = datetime.now(zone).replace(hour=20, minute=0, second=0, microsecond=0)
        self.spec = spec_for(options.size, options.seed, options.cortes, today, 15)
        self.outcomes: list[CorteOutcome] = []
        key = settings.signing_key_path
        self.build_options = BuildOptions(
            packages_dir=settings.packages_dir,
            process=settings.roster.election.process,
            zone=zone,
            kind="simulacro",
            signing_key=load_signing_key(key) if key else None,
        )

    def run(self, apply_faults: Callable[[int, Manifest], list[str]] | None = None) -> None:
        for k in range(self.options.cortes):
            started = time.monotonic()
            number = k + 1
            inputs = write_corte(self.spec, k, self.base / "prep")
            package = build_from_prep([inputs], self.build_options).package
            active = apply_faults(number, package.manifest) if apply_faults else []
            note = f" — fallas: {'; '.join(active)}" if active else ""
            self.progress(f"Corte {number}/{self.options.cortes} ({package.corte}){note}")
            request = PublishRequest(
                settings=self.settings,
                difusores=self.settings.roster.difusores,
                corte=package.corte,
            )
            report = publish(request, self.events)
            self.outcomes.append(CorteOutcome(number, package.corte, report))
            self.progress(_corte_line(report))
            remaining = self.options.seconds_per_corte - (time.monotonic() - started)
            if remaining > 0 and number < self.options.cortes:
                time.sleep(remaining)

    def finish(self, sites: dict[str, str], roots: dict[str, SiteReader]) -> SimulationResult:
        result = make_report(self.settings, ReportRequest())
        report_path = self.base / "reporte.md"
        chart_path = self.base / "latencia.html"
        report_path.write_text(report_markdown(result), encoding="utf-8")
        chart_path.write_text(latency_html(result), encoding="utf-8")
        limit = self.settings.roster.election.max_failed_cortes
        expected = expected_suspensions(self.options.faults, self.options.cortes, limit)
        with Ledger(self.settings.ledger_location) as ledger:
            suspended = {
                d.name for d in self.settings.roster.difusores if ledger.active_suspension(d.name)
            }
        problems = self._check_expectations(expected, suspended, roots)
        return SimulationResult(
            self.base, self.outcomes, problems, report_path, chart_path, sites, expected, suspended
        )

    def _check_expectations(
        self, expected: set[str], suspended: set[str], roots: dict[str, SiteReader]
    ) -> list[str]:
        problems = []
        if suspended != expected:
            problems.append(
                f"suspensiones: el escenario implica {sorted(expected) or 'ninguna'} y hubo"
                f" {sorted(suspended) or 'ninguna'}"
            )
        last = self.outcomes[-1] if self.outcomes else None
        if last is None:
            return problems
        failing_last = {
            f.difusor
            for f in self.options.faults
            if f.fails_delivery and f.applies(self.options.cortes)
        }
        package = Package.open(self.settings.packages_dir / last.corte)
        for name, root in roots.items():
            if name in expected or name in failing_last:
                continue
            missing = _differences(package, root)
            if missing:
                problems.append(f"{name} no terminó con el último corte: {missing[:3]}")
        return problems


def _differences(package: Package, read: SiteReader) -> list[str]:
    wrong = []
    for entry in package.manifest.files:
        if read(entry.path) != package.file(entry.path).read_bytes():
            wrong.append(entry.path)
    return wrong


def _corte_line(report: PublishReport) -> str:
    counts: dict[str, int] = {}
    for d in report.deliveries:
        counts[d.outcome] = counts.get(d.outcome, 0) + 1
    words = {
        "delivered": "entregados",
        "up_to_date": "al día",
        "failed": "fallidos",
        "skipped_suspended": "suspendidos",
    }
    summary = ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(counts.items()))
    failures = [
        f"{d.difusor}: {d.error_message}" for d in report.deliveries if d.outcome == "failed"
    ]
    return f"  {summary}" + ("".join(f"\n    {f}" for f in failures))


# --- against a real roster ---------------------------------------------------------------


def _against_roster(
    options: SimulateOptions, events: EventSink, progress: Progress
) -> SimulationResult:
    """The institute's official simulacro: synthetic simulacro cortes to the real difusores."""
    assert options.roster is not None
    settings = load_settings(options.roster.parent, options.roster)
    night = _Night(options, settings, settings.workdir, events, progress)
    night.run()
    return night.finish({d.name: d.url or "" for d in settings.roster.difusores}, {})

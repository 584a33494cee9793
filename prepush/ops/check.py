"""Preflight of every difusor against what the calls demand, all difusores in parallel.

Each check passes, warns or fails with a Spanish explanation and how to fix it. The results go
to the ledger: they are the evidence that a difusor met the requirements on a given date.

The web server is tested with a probe file of check's own, written over the difusor's
transport (SFTP or rsync), read over HTTP and removed, so a difusor passes before the first
publish (when json/main.json does not exist yet) and the check proves that ``url`` serves
``remote_dir``. The Cache-Control rule is checked on json/main.json once it exists, on the
probe before. ``.prepush/`` (prepush's state) must not be served to the public.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncssh
import httpx

from prepush.exceptions import (
    AuthError,
    DifusorError,
    ExitCode,
    HostKeyError,
    RemoteError,
    describe_os_error,
)
from prepush.ledger import Ledger
from prepush.settings import Difusor, Requirements, Settings
from prepush.transports import Connector, connect
from prepush.transports.base import TEMP_SUFFIX, Transport
from prepush.units import human_bytes, human_duration, human_rate

Status = Literal["pass", "warn", "fail"]
REQUIRED_CACHE_CONTROL = {"no-cache", "no-store", "must-revalidate"}
PROBE_DIR = ".prepush"
MAIN_JSON = "json/main.json"
# The web probe lives beside json/main.json and is named so that the difusor's guide
# (docs/difusores.md) gives it the entry files' Cache-Control rule.
WEB_PROBE = "json/prepush-check-{token}.json"
STATE_JSON = f"{PROBE_DIR}/state.json"
# The speed probe's time: the calls' 32 MB at 40 MB/s fit many times over, and a link far
# below that is known within these seconds. It starts small and grows fourfold.
PROBE_SECONDS = 8.0
FIRST_PROBE_STEP = 16_000
MIN_STEP_SECONDS = 1.0
WORTH_SAYING_SECONDS = 0.5
CLEANUP_SECONDS = 10.0
# What a check tells while it runs (the speed probe's progress), for one difusor.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Way:
    """How the checks name the difusor's server and protocol, by its transport."""

    protocol: str
    server: str
    # The check that fails when no connection is made at all.
    connection: str
    host_key: bool = True
    # Where the site lives on the difusor, and its roster field.
    site: str = "el directorio remoto"
    site_field: str = "remote_dir"
    # What the write check proves it can do there.
    writes: str = "crear, renombrar y borrar un archivo de prueba en el directorio remoto"

    @classmethod
    def of(cls, difusor: Difusor) -> Way:
        if difusor.s3 is not None:
            prefix = difusor.s3.prefix
            site = f"el prefijo {prefix}/ del bucket" if prefix else "el bucket"
            return cls(
                "S3",
                "el bucket",
                "s3",
                host_key=False,
                site=site,
                site_field="s3.bucket y s3.prefix",
                writes=f"escribir, reemplazar y borrar un objeto de prueba en {site}",
            )
        if difusor.rsync_daemon:
            return cls("rsync", "el demonio rsync", "rsync", host_key=False)
        if difusor.transport == "rsync":
            return cls("rsync", "el servidor SSH", "ssh")
        return cls("SFTP", "el servidor SSH", "ssh")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    value: float | None = None
    unit: str | None = None


@dataclass
class DifusorCheck:
    difusor: str
    results: list[CheckResult] = field(default_factory=list)
    way: Way = Way("SFTP", "el servidor SSH", "ssh")

    def add(
        self,
        name: str,
        status: Status,
        detail: str,
        value: float | None = None,
        unit: str | None = None,
    ) -> None:
        self.results.append(CheckResult(name, status, detail, value, unit))

    @property
    def status(self) -> Status:
        statuses = {r.status for r in self.results}
        return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


@dataclass
class CheckReport:
    run_id: int
    difusores: list[DifusorCheck]

    @property
    def exit_code(self) -> ExitCode:
        failed = [d for d in self.difusores if d.status == "fail"]
        return ExitCode.for_failures(len(failed), len(self.difusores))


def _quiet(_: str, __: str) -> None:
    return None


def run_checks(
    settings: Settings,
    difusores: Sequence[Difusor],
    connector: Connector = connect,
    progress: Callable[[str, str], None] = _quiet,
) -> CheckReport:
    """Every difusor at once; ``progress(difusor, text)`` hears what a long check is doing
    (the speed probe) while it runs."""
    with Ledger(settings.ledger_location) as ledger:
        run_id = ledger.start_run("check", None, {"difusores": [d.name for d in difusores]})
        checks = asyncio.run(_check_all(settings, difusores, connector, progress))
        for check in checks:
            for r in check.results:
                ledger.record_check(
                    run_id, check.difusor, r.name, r.status, r.detail, r.value, r.unit
                )
        report = CheckReport(run_id, checks)
        ledger.finish_run(
            run_id, {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}.get(report.exit_code, "failed")
        )
    return report


async def _check_all(
    settings: Settings,
    difusores: Sequence[Difusor],
    connector: Connector,
    progress: Callable[[str, str], None],
) -> list[DifusorCheck]:
    return list(
        await asyncio.gather(
            *(
                _check_one(settings, d, connector, functools.partial(progress, d.name))
                for d in difusores
            )
        )
    )


async def _check_one(
    settings: Settings, difusor: Difusor, connector: Connector, progress: Progress
) -> DifusorCheck:
    check = DifusorCheck(difusor.name, way=Way.of(difusor))
    transport = None
    missing = settings.credential_problems(difusor)
    for problem in missing:
        check.add("credentials", "fail", problem)
    # Without its credentials a difusor is not contacted. An S3 difusor has no port of its
    # own to probe: the client's first request tells.
    if not missing and (difusor.s3 is not None or await _reachable(settings, difusor, check)):
        transport = await _connect(settings, difusor, check, connector)
    try:
        if transport is not None:
            await _over_transport(settings, difusor, transport, check, progress)
        if difusor.url:
            await check_web(difusor.url, transport, check)
    finally:
        if transport is not None:
            await transport.close()
    return check


async def _reachable(settings: Settings, difusor: Difusor, check: DifusorCheck) -> bool:
    timeout = settings.roster.publish.connect_timeout_seconds
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(difusor.host, difusor.port), timeout
        )
    except (OSError, TimeoutError) as exc:
        check.add(
            "tcp",
            "fail",
            f"No se pudo abrir {difusor.host}:{difusor.port} ({describe_os_error(exc)}). Revise"
            f" que {check.way.server} esté en marcha y que el cortafuegos permita la IP del"
            " instituto.",
        )
        return False
    writer.close()
    await writer.wait_closed()
    check.add("tcp", "pass", f"{difusor.host}:{difusor.port} responde")
    return True


async def _connect(
    settings: Settings, difusor: Difusor, check: DifusorCheck, connector: Connector
) -> Transport | None:
    try:
        transport = await connector(difusor, settings)
    except HostKeyError as exc:
        check.add("host_key", "fail", exc.message)
        return None
    except AuthError as exc:
        _host_key_passed(check)
        check.add("auth", "fail", exc.message)
        return None
    except RemoteError as exc:
        if check.way.protocol == "rsync":
            _host_key_passed(check)
            check.add("auth", "pass", f"autenticado como {difusor.user}")
            check.add("remote_dir", "fail", exc.message)
            return None
        check.add(check.way.connection, "fail", exc.message)
        return None
    except DifusorError as exc:
        check.add(check.way.connection, "fail", exc.message)
        return None
    _connected(difusor, check)
    return transport


def _connected(difusor: Difusor, check: DifusorCheck) -> None:
    if difusor.s3 is not None:
        where = difusor.s3.endpoint_url or f"S3 ({difusor.s3.region})"
        check.add(
            "auth",
            "pass",
            f"credenciales aceptadas; el bucket {difusor.s3.bucket} responde en {where}",
        )
        return
    _host_key_passed(check)
    check.add("auth", "pass", f"autenticado como {difusor.user}")
    if check.way.protocol == "rsync":
        where = (
            f"el módulo {difusor.rsync.module} y " if difusor.rsync and difusor.rsync.module else ""
        )
        check.add("remote_dir", "pass", f"{where}el directorio remoto {difusor.remote_dir} existen")


def _host_key_passed(check: DifusorCheck) -> None:
    if check.way.host_key:
        check.add("host_key", "pass", "la llave de host coincide con la fijada en el padrón")
    elif check.way.protocol == "rsync":
        check.add(
            "host_key",
            "warn",
            "el demonio rsync no identifica al servidor (no hay llave de host) ni cifra: quien"
            " controle la red podría suplantarlo. Limítelo con 'hosts allow' a la IP del"
            " instituto y, si puede, use rsync por SSH o una VPN.",
        )


async def _over_transport(
    settings: Settings,
    difusor: Difusor,
    transport: Transport,
    check: DifusorCheck,
    progress: Progress,
) -> None:
    try:
        _extensions(transport, check)
        await _space(settings, difusor, transport, check)
        if await _write_permission(transport, check):
            await _clock(transport, check, settings.roster.requirements.max_clock_offset_seconds)
            await _throughput(settings, transport, check, progress)
        await _cdn(transport, check)
    except DifusorError as exc:
        check.add(check.way.protocol.lower(), "fail", exc.message)


def _extensions(transport: Transport, check: DifusorCheck) -> None:
    caps = transport.capabilities
    listing = ", ".join(caps.features) or "ninguna"
    if check.way.protocol == "S3":
        check.add("extensions", "pass", f"S3: {listing}; cada PUT reemplaza el objeto entero")
    elif caps.atomic_flip:
        offered = "extensiones SFTP" if check.way.protocol == "SFTP" else "rsync"
        check.add("extensions", "pass", f"{offered}: {listing}; cambio atómico de main.json")
    else:
        check.add(
            "extensions",
            "warn",
            f"extensiones SFTP: {listing}. Sin posix-rename el cambio de main.json no es atómico"
            " (hay una ventana mínima). Recomiende al difusor OpenSSH con 'Subsystem sftp"
            " internal-sftp'.",
        )


async def _space(
    settings: Settings, difusor: Difusor, transport: Transport, check: DifusorCheck
) -> None:
    required = settings.roster.requirements.min_free_gb
    if difusor.s3 is not None:
        check.add("space", "pass", "un bucket de S3 no tiene un disco que se llene")
        return
    space = await transport.space()
    if space is None:
        why = "sin statvfs" if check.way.protocol == "SFTP" else "rsync no lo dice"
        probe = settings.roster.requirements.probe_size_mb
        check.add(
            "space",
            "warn",
            f"el servidor no informa el espacio libre ({why}); la prueba de velocidad sólo"
            f" muestra que caben {probe:g} MB. Confírmelo con el difusor (se piden"
            f" {required:g} GB).",
        )
        return
    free_gb = space.free_bytes / 1e9
    if free_gb < required:
        check.add(
            "space",
            "fail",
            f"{free_gb:.2f} GB libres; la convocatoria pide al menos {required:g} GB. El difusor"
            " debe liberar espacio.",
            free_gb,
            "GB",
        )
    else:
        check.add(
            "space", "pass", f"{free_gb:.1f} GB libres (se piden {required:g})", free_gb, "GB"
        )


async def _write_permission(transport: Transport, check: DifusorCheck) -> bool:
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    probe = f"{PROBE_DIR}/probe-{token}"
    try:
        await transport.prepare_dirs([PROBE_DIR])
        # Written under a temporary name and renamed into place, as every corte is.
        await transport.write_file(probe, b"prepush")
        if await transport.read_file(probe) != b"prepush":
            raise RemoteError(check.difusor, "el archivo de prueba no quedó íntegro al releerlo")
        await transport.remove_many([probe], 1)
    except DifusorError as exc:
        check.add(
            "write",
            "fail",
            f"no se pudo {check.way.writes}: {exc.message}",
        )
        return False
    check.add("write", "pass", f"se puede {check.way.writes}")
    return True


async def _cdn(transport: Transport, check: DifusorCheck) -> None:
    """What caches in front of the server (CloudFront) and how it treats json/main.json."""
    findings = getattr(transport, "cdn_findings", None)
    if findings is None:
        return
    for status, detail in await findings():
        check.add("cdn", status, detail)


@dataclass(frozen=True)
class _Step:
    """One file of the speed probe: its size, how long it took, whether it got there."""

    size: int
    seconds: float
    finished: bool = True

    @property
    def rate(self) -> float:
        """Bytes per second (for an unfinished step, more than the link did)."""
        return self.size / max(self.seconds, 1e-6)


async def _throughput(
    settings: Settings, transport: Transport, check: DifusorCheck, progress: Progress
) -> None:
    """Upload files of growing size, within PROBE_SECONDS: a link far below what the calls
    require is known after the first seconds, not after the whole probe."""
    requirements = settings.roster.requirements
    target = int(requirements.probe_size_mb * 1e6)
    probe = f"{PROBE_DIR}/throughput-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    try:
        steps = await _probe_steps(transport, probe, target, progress)
    finally:
        # Also on Ctrl-C: neither the probe nor its temporary name stays on the server.
        await _remove_probes(transport, [probe, probe + TEMP_SUFFIX], check)
    _throughput_verdict(steps, target, time.monotonic() - started, requirements, check)


async def _probe_steps(
    transport: Transport, probe: str, target: int, progress: Progress
) -> list[_Step]:
    started = time.monotonic()
    steps: list[_Step] = []
    size = min(FIRST_PROBE_STEP, target)
    progress(
        f"prueba de velocidad: archivos de prueba de {human_bytes(size)} hasta"
        f" {human_bytes(target)}, a lo más {PROBE_SECONDS:g} s"
    )
    while True:
        left = max(PROBE_SECONDS - (time.monotonic() - started), MIN_STEP_SECONDS)
        began = time.perf_counter()
        try:
            await asyncio.wait_for(transport.write_file(probe, os.urandom(size)), left)
        except TimeoutError:
            step = _Step(size, time.perf_counter() - began, finished=False)
            progress(
                f"prueba de velocidad: {human_bytes(size)} no terminaron de subir en"
                f" {step.seconds:.1f} s (menos de {human_rate(step.rate)})"
            )
            return [*steps, step]
        step = _Step(size, time.perf_counter() - began)
        steps.append(step)
        if step.seconds >= WORTH_SAYING_SECONDS:  # a fast link's many quick steps say nothing
            progress(
                f"prueba de velocidad: {human_bytes(size)} en {step.seconds:.1f} s"
                f" ({human_rate(step.rate)})"
            )
        following = min(size * 4, target)
        elapsed = time.monotonic() - started
        if size >= target or elapsed + following / step.rate > PROBE_SECONDS:
            return steps
        size = following


def _throughput_verdict(
    steps: list[_Step],
    target: int,
    elapsed: float,
    requirements: Requirements,
    check: DifusorCheck,
) -> None:
    needed = requirements.min_throughput_mb_s * 1e6
    finished = [s for s in steps if s.finished]
    last = steps[-1]
    if not finished:
        rate = last.rate
        measured = (
            f"menos de {human_rate(rate)}: {human_bytes(last.size)} no terminaron de subir en"
            f" {last.seconds:.1f} s"
        )
    else:
        best = finished[-1]
        rate = best.rate if last.finished else min(best.rate, last.rate)
        measured = f"{human_rate(rate)} al subir {human_bytes(best.size)}"
        if best.size < target:
            measured += (
                f"; a esa velocidad los {human_bytes(target)} de la prueba tardarían"
                f" {human_duration(target / rate)}, así que se detuvo a los {elapsed:.0f} s"
            )
    if rate < needed:
        check.add(
            "throughput",
            "fail",
            f"{measured}. La convocatoria pide {requirements.min_throughput_mb_s:g} MB/s. Revise"
            " el enlace del difusor.",
            rate / 1e6,
            "MB/s",
        )
    else:
        check.add(
            "throughput",
            "pass",
            f"{measured} (se piden {requirements.min_throughput_mb_s:g} MB/s)",
            rate / 1e6,
            "MB/s",
        )


async def _remove_probes(transport: Transport, paths: list[str], check: DifusorCheck) -> None:
    try:
        await asyncio.wait_for(transport.remove_many(paths, len(paths)), CLEANUP_SECONDS)
    except (DifusorError, TimeoutError):
        check.add(
            "cleanup",
            "warn",
            f"no se pudo borrar {paths[0]} del servidor a tiempo; bórrelo a mano",
        )


async def _clock(transport: Transport, check: DifusorCheck, limit: float) -> None:
    """The server's clock against this machine's, on a small file of its own: the server
    stamps its mtime while it is written, in whole seconds."""
    probe = f"{PROBE_DIR}/clock-{os.getpid()}-{time.monotonic_ns()}"
    try:
        before = datetime.now(UTC)
        await transport.write_file(probe, b"prepush")
        after = datetime.now(UTC)
        written = await transport.stat(probe)
    finally:
        await _remove_probes(transport, [probe, probe + TEMP_SUFFIX], check)
    if written is None:
        raise RemoteError(check.difusor, "el archivo de prueba del reloj no quedó en el servidor")
    middle = before + (after - before) / 2
    # The mtime is truncated to the second: on average half a second before the stamp.
    offset = (written.mtime - middle).total_seconds() + 0.5
    precision = (after - before).total_seconds() / 2 + 0.5
    if abs(offset) <= limit:
        check.add(
            "clock",
            "pass",
            f"el reloj del servidor difiere {offset:+.1f} s (±{precision:.1f} s) del local:"
            f" dentro de ±{limit:g} s",
            offset,
            "s",
        )
    else:
        check.add(
            "clock",
            "fail",
            f"el reloj del servidor difiere {offset:+.1f} s (±{precision:.1f} s) del local; la"
            f" convocatoria pide ±{limit:g} s. Pida al difusor sincronizar con NTP (las horas"
            " de sus reportes deben coincidir).",
            offset,
            "s",
        )


async def check_web(url: str, transport: Transport | None, check: DifusorCheck) -> None:
    """The public side: url serves remote_dir, Cache-Control, and .prepush/ kept private."""
    base = url.rstrip("/") + "/"
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    probe, hidden = WEB_PROBE.format(token=token), f"{PROBE_DIR}/check-{token}.json"
    body = json.dumps({"prepush": "check", "token": token}).encode()
    written: list[str] = []
    unwritable = None
    try:
        if transport is not None:
            try:
                await transport.prepare_dirs(["json", PROBE_DIR])
                for path in (probe, hidden):
                    await transport.write_file(path, body)
                    written.append(path)
            except DifusorError as exc:
                unwritable = (
                    f"no se pudo escribir el archivo de prueba por {check.way.protocol}:"
                    f" {exc.message}"
                )
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            fetched = await asyncio.gather(
                _get(client, base + probe) if probe in written else _nothing(),
                _get(client, base + MAIN_JSON),
                _get(client, base + hidden) if hidden in written else _nothing(),
                _get(client, base + STATE_JSON),
            )
    finally:
        if transport is not None and written:
            with contextlib.suppress(DifusorError):
                await transport.remove_many(written, len(written))
    served, main, hidden_response, state = fetched
    if unwritable is not None:
        check.add("http", "fail", unwritable)
    else:
        _web_root(base, probe, body, served, main, check)
    _cache_control(served, main, check)
    _private_dir(base, [hidden_response, state], check)


Fetched = httpx.Response | str | None


async def _get(client: httpx.AsyncClient, target: str) -> Fetched:
    """The response, or why there was none (in Spanish)."""
    try:
        return await client.get(target, params={"t": str(time.time_ns())})
    except httpx.HTTPError as exc:
        return f"no se pudo obtener {target}: {describe_http_error(exc)}"


async def _nothing() -> Fetched:
    return None


def describe_http_error(exc: httpx.HTTPError) -> str:
    """Why an HTTP request got no response, in Spanish."""
    if isinstance(exc, httpx.TimeoutException):
        return "tiempo agotado"
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
        return describe_os_error(cause)
    if isinstance(exc, httpx.ConnectError):
        return "no se pudo conectar con el servidor web"
    return f"{type(exc).__name__}: {exc}"


def _web_root(
    base: str, probe: str, body: bytes, served: Fetched, main: Fetched, check: DifusorCheck
) -> None:
    if served is None:
        # No connection, no probe: only whether the web server answers.
        if isinstance(main, httpx.Response):
            status: Status = "pass" if main.status_code == 200 else "warn"
            check.add(
                "http",
                status,
                f"{base}{MAIN_JSON} respondió {main.status_code}; sin conexión al difusor no se"
                f" pudo probar con un archivo propio que url sirve {check.way.site}",
            )
        else:
            check.add("http", "fail", str(main))
        return
    if isinstance(served, str):
        check.add("http", "fail", f"{served}. Revise la url del difusor en el padrón.")
    elif served.status_code == 200 and served.content == body:
        check.add("http", "pass", f"{base} sirve {check.way.site} (archivo de prueba {probe})")
    elif served.status_code == 200:
        check.add(
            "http",
            "fail",
            f"{base}{probe} respondió con otro contenido: la url no sirve {check.way.site} del"
            f" difusor ({check.way.site_field}). Revise la raíz del sitio en su servidor web.",
        )
    else:
        check.add(
            "http",
            "fail",
            f"{base}{probe}, escrito por prepush hace un momento, respondió {served.status_code}:"
            f" la url no sirve {check.way.site} ({check.way.site_field}). Revise la raíz del sitio"
            " en el servidor web del difusor y la url del padrón.",
        )


def _cache_control(served: Fetched, main: Fetched, check: DifusorCheck) -> None:
    if isinstance(main, httpx.Response) and main.status_code == 200:
        response, what = main, MAIN_JSON
    elif isinstance(served, httpx.Response) and served.status_code == 200:
        response, what = served, f"el archivo de prueba (junto a {MAIN_JSON}, que aún no existe)"
    else:
        return
    header = response.headers.get("cache-control", "")
    directives = {d.strip().lower() for d in header.split(",") if d.strip()}
    if directives >= REQUIRED_CACHE_CONTROL:
        check.add("cache_control", "pass", f"{what}: Cache-Control: {header}")
    else:
        check.add(
            "cache_control",
            "fail",
            f"{what} se sirve con Cache-Control {header!r}; index.html y json/main.json deben"
            " llevar 'no-cache, no-store, must-revalidate' para que el público vea cada corte al"
            " momento (regla en docs/difusores.md).",
        )


def _private_dir(base: str, fetched: list[Fetched], check: DifusorCheck) -> None:
    public = [
        str(r.request.url.copy_with(query=None))
        for r in fetched
        if isinstance(r, httpx.Response) and r.status_code == 200
    ]
    if public:
        check.add(
            "private_dir",
            "warn",
            f"{PROBE_DIR}/ se sirve al público ({', '.join(public)} respondió 200): ahí están el"
            " estado y el candado de prepush. Niegue /.prepush/ en el servidor web (regla en"
            " docs/difusores.md).",
        )
    elif any(isinstance(r, httpx.Response) for r in fetched):
        check.add("private_dir", "pass", f"{base}{PROBE_DIR}/ no se sirve al público")


async def fetch_host_key(difusor: Difusor, timeout: float) -> asyncssh.SSHKey | None:
    """The server's host key, to show its fingerprint before the operator pins it."""
    try:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(difusor.host, difusor.port), timeout
        )
    except (OSError, asyncssh.Error, TimeoutError):
        return None

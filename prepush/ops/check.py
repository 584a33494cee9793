"""Preflight of every difusor against what the calls demand, all difusores in parallel.

Each check passes, warns or fails with a Spanish explanation and how to fix it. The results go
to the ledger: they are the evidence that a difusor met the requirements on a given date.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncssh
import httpx

from prepush.exceptions import AuthError, DifusorError, ExitCode, HostKeyError, RemoteError
from prepush.ledger import Ledger
from prepush.settings import Difusor, Settings
from prepush.transports.base import Transport
from prepush.transports.sftp import open_sftp

Status = Literal["pass", "warn", "fail"]
REQUIRED_CACHE_CONTROL = {"no-cache", "no-store", "must-revalidate"}
PROBE_DIR = ".prepush"

Connector = Callable[[Difusor, Settings], Awaitable[Transport]]


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


def run_checks(
    settings: Settings,
    difusores: Sequence[Difusor],
    connector: Connector = open_sftp,
) -> CheckReport:
    with Ledger(settings.ledger_path) as ledger:
        run_id = ledger.start_run("check", None, {"difusores": [d.name for d in difusores]})
        checks = asyncio.run(_check_all(settings, difusores, connector))
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
    settings: Settings, difusores: Sequence[Difusor], connector: Connector
) -> list[DifusorCheck]:
    return list(await asyncio.gather(*(_check_one(settings, d, connector) for d in difusores)))


async def _check_one(settings: Settings, difusor: Difusor, connector: Connector) -> DifusorCheck:
    check = DifusorCheck(difusor.name)
    if await _reachable(settings, difusor, check):
        await _over_ssh(settings, difusor, check, connector)
    if difusor.url:
        await check_http(difusor.url, check)
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
            f"No se pudo abrir {difusor.host}:{difusor.port} ({exc or 'tiempo agotado'}). Revise"
            " que el servidor SSH esté en marcha y que el cortafuegos permita la IP del instituto.",
        )
        return False
    writer.close()
    await writer.wait_closed()
    check.add("tcp", "pass", f"{difusor.host}:{difusor.port} responde")
    return True


async def _over_ssh(
    settings: Settings, difusor: Difusor, check: DifusorCheck, connector: Connector
) -> None:
    try:
        transport = await connector(difusor, settings)
    except HostKeyError as exc:
        check.add("host_key", "fail", exc.message)
        return
    except AuthError as exc:
        check.add("host_key", "pass", "la llave de host coincide con la fijada en el padrón")
        check.add("auth", "fail", exc.message)
        return
    except DifusorError as exc:
        check.add("ssh", "fail", exc.message)
        return
    check.add("host_key", "pass", "la llave de host coincide con la fijada en el padrón")
    check.add("auth", "pass", f"autenticado como {difusor.user}")
    try:
        _extensions(transport, check)
        await _space(settings, transport, check)
        if await _write_permission(transport, check):
            await _throughput_and_clock(settings, transport, check)
    except DifusorError as exc:
        check.add("sftp", "fail", exc.message)
    finally:
        await transport.close()


def _extensions(transport: Transport, check: DifusorCheck) -> None:
    caps = transport.capabilities
    listing = ", ".join(caps.features) or "ninguna"
    if caps.atomic_flip:
        check.add("extensions", "pass", f"extensiones SFTP: {listing}; cambio atómico de main.json")
    else:
        check.add(
            "extensions",
            "warn",
            f"extensiones SFTP: {listing}. Sin posix-rename el cambio de main.json no es atómico"
            " (hay una ventana mínima). Recomiende al difusor OpenSSH con 'Subsystem sftp"
            " internal-sftp'.",
        )


async def _space(settings: Settings, transport: Transport, check: DifusorCheck) -> None:
    required = settings.roster.requirements.min_free_gb
    space = await transport.space()
    if space is None:
        check.add(
            "space",
            "warn",
            "el servidor no informa el espacio libre (sin statvfs); confírmelo con el difusor"
            f" (se piden {required:g} GB)",
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
            f"no se pudo crear, renombrar y borrar un archivo de prueba: {exc.message}",
        )
        return False
    check.add("write", "pass", "se puede crear, renombrar y borrar en el directorio remoto")
    return True


async def _throughput_and_clock(
    settings: Settings, transport: Transport, check: DifusorCheck
) -> None:
    requirements = settings.roster.requirements
    size = int(requirements.probe_size_mb * 1e6)
    probe = f"{PROBE_DIR}/throughput-{os.getpid()}-{time.monotonic_ns()}"
    payload = os.urandom(size)
    started = time.perf_counter()
    written_at = datetime.now(UTC)
    try:
        await transport.write_file(probe, payload)
        seconds = max(time.perf_counter() - started, 1e-6)
        written = await transport.stat(probe)
    finally:
        await transport.remove_many([probe], 1)
    if written is None:
        raise RemoteError(
            check.difusor, "el archivo de prueba de velocidad no quedó en el servidor"
        )
    server_mtime = written.mtime
    rate = size / seconds / 1e6
    needed = requirements.min_throughput_mb_s
    if rate < needed:
        check.add(
            "throughput",
            "fail",
            f"{rate:.1f} MB/s al subir {size / 1e6:g} MB; la convocatoria pide {needed:g} MB/s."
            " Revise el enlace del difusor.",
            rate,
            "MB/s",
        )
    else:
        check.add("throughput", "pass", f"{rate:.1f} MB/s (se piden {needed:g})", rate, "MB/s")
    _clock(server_mtime, written_at, seconds, requirements.max_clock_offset_seconds, check)


def _clock(
    server_mtime: datetime, written_at: datetime, upload_s: float, limit: float, check: DifusorCheck
) -> None:
    # The server stamps the mtime somewhere during the upload; its resolution is one second.
    offset = (server_mtime - written_at).total_seconds()
    slack = upload_s + 1.0
    if -slack - limit <= offset <= slack + limit:
        check.add("clock", "pass", f"desfase de reloj dentro de ±{limit:g} s", offset, "s")
    else:
        check.add(
            "clock",
            "warn",
            f"el reloj del servidor difiere {offset:+.0f} s del local; pida al difusor"
            " sincronizar con NTP (las horas de sus reportes deben coincidir).",
            offset,
            "s",
        )


async def check_http(url: str, check: DifusorCheck) -> None:
    target = url.rstrip("/") + "/json/main.json"
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
            response = await client.get(target, params={"t": str(time.time_ns())})
    except httpx.HTTPError as exc:
        check.add("http", "fail", f"no se pudo obtener {target}: {exc}")
        return
    if response.status_code != 200:
        check.add(
            "http",
            "fail",
            f"{target} respondió {response.status_code}; debe responder 200 con el sitio"
            " publicado.",
        )
        return
    check.add("http", "pass", f"{target} responde 200")
    cache_control = response.headers.get("cache-control", "")
    directives = {d.strip().lower() for d in cache_control.split(",") if d.strip()}
    if directives >= REQUIRED_CACHE_CONTROL:
        check.add("cache_control", "pass", f"Cache-Control: {cache_control}")
    else:
        check.add(
            "cache_control",
            "fail",
            f"json/main.json se sirve con Cache-Control {cache_control!r}; debe ser 'no-cache,"
            " no-store, must-revalidate' para que el público vea cada corte al momento.",
        )


async def fetch_host_key(difusor: Difusor, timeout: float) -> asyncssh.SSHKey | None:
    """The server's host key, to show its fingerprint before the operator pins it."""
    try:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(difusor.host, difusor.port), timeout
        )
    except (OSError, asyncssh.Error, TimeoutError):
        return None

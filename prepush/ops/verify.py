"""What the public really sees on each difusor, checked over HTTP(S) against the manifest.

prepush knows what it wrote; this knows what a visitor gets: the corte ``json/main.json``
announces (and how far behind the last delivery it is), every file of that corte compared by
sha256 (tampering, partial publication, stale CDN caches), ``index.html`` byte for byte (no
injected frame or script) and the ``Cache-Control`` of ``main.json``. With ``--watch`` it
records the moment the public first sees each corte: the real end-to-end latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from prepush.exceptions import ExitCode, PackageError
from prepush.ledger import Ledger
from prepush.ops.check import REQUIRED_CACHE_CONTROL, describe_http_error
from prepush.package import MAIN_JSON, Package, find_package
from prepush.settings import Difusor, Settings

Status = Literal["pass", "warn", "fail"]
FETCHES_IN_FLIGHT = 16


@dataclass
class VerifyResult:
    difusor: str
    url: str
    status: Status = "pass"
    corte: str | None = None
    delivered: str | None = None
    cortes_behind: int = 0
    files_checked: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem(self, status: Status, note: str) -> None:
        self.notes.append(note)
        if status == "fail" or (status == "warn" and self.status == "pass"):
            self.status = status

    def as_json(self) -> dict[str, Any]:
        return {
            "difusor": self.difusor,
            "url": self.url,
            "status": self.status,
            "corte": self.corte,
            "delivered": self.delivered,
            "cortes_behind": self.cortes_behind,
            "files_checked": self.files_checked,
            "mismatched": self.mismatched,
            "missing": self.missing,
            "notes": self.notes,
        }


@dataclass
class VerifyReport:
    run_id: int
    results: list[VerifyResult]
    # The difusores selected that have no url in the roster: nothing public to verify.
    without_url: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        failed = [r for r in self.results if r.status == "fail"]
        return ExitCode.for_failures(len(failed), len(self.results))


def verify(settings: Settings, difusores: Sequence[Difusor]) -> VerifyReport:
    with Ledger(settings.ledger_location) as ledger:
        targets = [d for d in difusores if d.url]
        run_id = ledger.start_run("verify", None, {"difusores": [d.name for d in targets]})
        delivered = {d.name: _last_delivered(ledger, d.name) for d in targets}
        results = asyncio.run(_verify_all(settings, targets, delivered))
        for result in results:
            _record(ledger, run_id, result)
        report = VerifyReport(run_id, results, [d.name for d in difusores if not d.url])
        ledger.finish_run(run_id, "ok" if report.exit_code == ExitCode.OK else "partial")
    return report


def watch(
    settings: Settings,
    difusores: Sequence[Difusor],
    interval_s: float,
    on_report: Callable[[VerifyReport], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Verify again and again; each corte's first sighting goes to the ledger."""
    while True:
        on_report(verify(settings, difusores))
        sleep(interval_s)


def _last_delivered(ledger: Ledger, name: str) -> str | None:
    """What prepush left in place: after a rollback, the rolled-back corte (not a lag)."""
    serving = ledger.serving(name)
    return serving.corte if serving else None


def _record(ledger: Ledger, run_id: int, result: VerifyResult) -> None:
    detail = (
        "; ".join(result.notes) or f"corte {result.corte} íntegro ({result.files_checked} archivos)"
    )
    ledger.record_check(run_id, result.difusor, "verify", result.status, detail)
    if result.corte is not None:
        ledger.record_observation(result.difusor, result.corte, datetime.now(UTC), result.url)


async def _verify_all(
    settings: Settings, difusores: Sequence[Difusor], delivered: dict[str, str | None]
) -> list[VerifyResult]:
    limits = httpx.Limits(max_connections=FETCHES_IN_FLIGHT * 4)
    async with httpx.AsyncClient(timeout=15, follow_redirects=True, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(_verify_one(client, settings, d, delivered.get(d.name)) for d in difusores)
            )
        )


def _url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path


async def _verify_one(
    client: httpx.AsyncClient, settings: Settings, difusor: Difusor, delivered: str | None
) -> VerifyResult:
    assert difusor.url is not None
    result = VerifyResult(difusor.name, difusor.url, delivered=delivered)
    try:
        response = await client.get(
            _url(difusor.url, MAIN_JSON),
            params={"t": str(time.time_ns())},
            headers={"Cache-Control": "no-cache"},
        )
    except httpx.HTTPError as exc:
        result.problem("fail", f"no se pudo obtener json/main.json: {describe_http_error(exc)}")
        return result
    if response.status_code != 200:
        result.problem("fail", f"json/main.json respondió {response.status_code}")
        return result
    _check_cache_control(response, result)
    try:
        result.corte = str(json.loads(response.content)["corte"])
    except (ValueError, KeyError, TypeError):
        result.problem("fail", "json/main.json no es el de un corte de prepush: fue alterado")
        return result
    _compare_with_delivered(settings, result)
    try:
        package = find_package(settings.packages_dir, result.corte)
    except PackageError:
        result.problem(
            "warn",
            f"el difusor muestra el corte {result.corte}, que no está en paquetes/: no se puede"
            " comparar con su manifiesto",
        )
        return result
    await _compare_files(client, difusor.url, package, response.content, result)
    return result


def _check_cache_control(response: httpx.Response, result: VerifyResult) -> None:
    header = response.headers.get("cache-control", "")
    directives = {d.strip().lower() for d in header.split(",") if d.strip()}
    if not directives >= REQUIRED_CACHE_CONTROL:
        result.problem(
            "warn",
            f"json/main.json se sirve con Cache-Control {header!r}; debe ser 'no-cache, no-store,"
            " must-revalidate' o el público verá cortes viejos",
        )


def _compare_with_delivered(settings: Settings, result: VerifyResult) -> None:
    if result.delivered is None or result.corte is None or result.corte >= result.delivered:
        return
    cortes = (
        [p.name for p in settings.packages_dir.iterdir()] if settings.packages_dir.is_dir() else []
    )
    result.cortes_behind = len([c for c in cortes if result.corte < c <= result.delivered])
    result.problem(
        "warn",
        f"el público ve el corte {result.corte} y se entregó el {result.delivered}"
        f" ({result.cortes_behind} cortes de atraso visible): revise la caché o la CDN del"
        " difusor",
    )


async def _compare_files(
    client: httpx.AsyncClient,
    base: str,
    package: Package,
    main_bytes: bytes,
    result: VerifyResult,
) -> None:
    pool = asyncio.Semaphore(FETCHES_IN_FLIGHT)

    async def fetch(path: str) -> bytes | None:
        async with pool:
            try:
                response = await client.get(_url(base, path))
            except httpx.HTTPError:
                return None
        return response.content if response.status_code == 200 else None

    entries = [f for f in package.manifest.files if f.path != MAIN_JSON]
    bodies = await asyncio.gather(*(fetch(f.path) for f in entries))
    expected_main = package.manifest.by_path()[MAIN_JSON].sha256
    if hashlib.sha256(main_bytes).hexdigest() != expected_main:
        result.mismatched.append(MAIN_JSON)
    for entry, body in zip(entries, bodies, strict=True):
        if body is None:
            result.missing.append(entry.path)
        elif hashlib.sha256(body).hexdigest() != entry.sha256:
            result.mismatched.append(entry.path)
    result.files_checked = len(entries) + 1
    if result.missing:
        result.problem(
            "fail", f"faltan {len(result.missing)} archivos: {', '.join(result.missing[:5])}"
        )
    if result.mismatched:
        result.problem(
            "fail",
            f"{len(result.mismatched)} archivos no coinciden con el manifiesto (alterados o de"
            f" otra versión): {', '.join(result.mismatched[:5])}",
        )

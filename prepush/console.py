"""How prepush shows progress and results to the operator (rich), and as JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from prepush.ops.check import CheckReport
    from prepush.ops.report import Report
    from prepush.ops.status import StatusReport
    from prepush.ops.verify import VerifyReport
    from prepush.publish.protocol import Delivery, Event
    from prepush.publish.publisher import PublishReport

STAGES = {
    "connecting": "conectando",
    "uploading": "enviando",
    "flipping": "publicando main.json",
    "cleaning": "limpiando",
    "retrying": "reintentando",
    "delivered": "entregado",
    "up_to_date": "al día",
    "failed": "FALLÓ",
    "dry_run": "plan (sin escribir)",
    "skipped_suspended": "suspendido: omitido",
    "suspended": "SUSPENDIDO",
}
# Not worth a line in cron mail or the journal: a run with nothing new prints nothing.
QUIET_STAGES = ("connecting", "uploading", "up_to_date", "skipped_suspended")
STYLES = {"delivered": "green", "up_to_date": "green", "failed": "bold red", "retrying": "yellow"}


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


@dataclass
class _Row:
    stage: str = "esperando"
    detail: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    started: float = 0.0


class PublishView:
    """Live table on a terminal; one plain line per event otherwise (cron mail, journald)."""

    def __init__(self, console: Console, names: list[str]) -> None:
        self.console = console
        self.rows = {name: _Row(started=time.monotonic()) for name in names}
        self.live: Live | None = None

    def __call__(self, event: Event) -> None:
        if event.stage == "step":
            return  # the protocol's own milestones: for tests and tracing, not the operator
        row = self.rows.setdefault(event.difusor, _Row(started=time.monotonic()))
        if event.stage == "connecting" and row.stage not in ("connecting", "retrying"):
            # A new corte for this difusor (simulate and --watch reuse the view).
            row.started, row.files_done, row.files_total, row.bytes_done = time.monotonic(), 0, 0, 0
        changed = row.stage != event.stage
        row.stage, row.detail = event.stage, event.detail
        if event.files_total:
            row.files_done, row.files_total = event.files_done, event.files_total
            row.bytes_done = event.bytes_done
        # On a terminal the live table redraws itself a few times a second.
        if self.live is None and (
            event.stage in ("failed", "retrying", "suspended")
            or (changed and event.stage not in QUIET_STAGES)
        ):
            self._plain(event)

    def _plain(self, event: Event) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        text = f"{stamp} {event.difusor}: {STAGES.get(event.stage, event.stage)}"
        if event.detail:
            text += f" — {event.detail}"
        self.console.print(text, markup=False, highlight=False)

    def table(self) -> Table:
        table = Table(title="Publicación por difusor", expand=False)
        for column in ("Difusor", "Estado", "Archivos", "Bytes", "Velocidad"):
            table.add_column(column)
        for name, row in self.rows.items():
            elapsed = max(time.monotonic() - row.started, 1e-3)
            files = f"{row.files_done}/{row.files_total}" if row.files_total else "-"
            stage = STAGES.get(row.stage, row.stage)
            table.add_row(
                name,
                Text(stage + (f" ({row.detail})" if row.detail else ""), STYLES.get(row.stage, "")),
                files,
                human_bytes(row.bytes_done),
                f"{human_bytes(row.bytes_done / elapsed)}/s",
            )
        return table

    @contextmanager
    def running(self) -> Iterator[PublishView]:
        if not self.console.is_terminal:
            yield self
            return
        with Live(console=self.console, refresh_per_second=4, get_renderable=self.table) as live:
            self.live = live
            try:
                yield self
            finally:
                self.live = None


def print_publish_report(report: PublishReport, console: Console) -> None:
    table = Table(title=f"Corte {report.corte} — corrida {report.run_id}")
    for column in ("Difusor", "Resultado", "Enviados", "Reconstruidos", "Enlazados", "Omitidos"):
        table.add_column(column)
    table.add_column("Bytes")
    table.add_column("Peticiones", justify="right")
    table.add_column("Latencia", justify="right")
    for d in report.deliveries:
        table.add_row(
            d.difusor,
            Text(STAGES.get(d.outcome, d.outcome), STYLES.get(d.outcome, "")),
            str(d.files_uploaded),
            str(d.files_rebuilt),
            str(d.files_linked),
            str(d.files_skipped),
            human_bytes(d.bytes_sent),
            str(d.requests),
            _latency(d),
        )
    console.print(table)
    for d in report.deliveries:
        if d.error_message:
            console.print(Text.assemble((f"{d.difusor}: ", "bold"), d.error_message))
        if d.plan is not None and d.outcome == "dry_run":
            plan = d.plan
            console.print(
                f"{d.difusor}: enviaría {plan.files_to_send} archivos"
                f" ({human_bytes(plan.bytes_to_send)}), enlazaría {len(plan.links)},"
                f" crearía {len(plan.mkdirs)} directorios; {plan.skipped} ya están.",
                markup=False,
            )
        if d.atomic is False:
            console.print(
                f"{d.difusor}: el servidor no ofrece posix-rename; el cambio de main.json no es"
                " atómico (ventana mínima). Pida al difusor OpenSSH con internal-sftp.",
                markup=False,
                style="yellow",
            )


def _latency(d: Delivery) -> str:
    if d.flip_at is None or d.package_ready_at is None:
        return "-"
    return f"{(d.flip_at - d.package_ready_at).total_seconds():.2f} s"


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "difusor": d.difusor,
        "corte": d.corte,
        "outcome": d.outcome,
        "attempts": d.attempts,
        "started_at": d.started_at.isoformat(),
        "connected_at": d.connected_at.isoformat() if d.connected_at else None,
        "flip_at": d.flip_at.isoformat() if d.flip_at else None,
        "finished_at": d.finished_at.isoformat() if d.finished_at else None,
        "files_uploaded": d.files_uploaded,
        "files_linked": d.files_linked,
        "files_skipped": d.files_skipped,
        "files_deleted": d.files_deleted,
        "files_rebuilt": d.files_rebuilt,
        "bytes_sent": d.bytes_sent,
        "bytes_reused": d.bytes_reused,
        "meta_bytes": d.meta_bytes,
        "requests": d.requests,
        "atomic": d.atomic,
        "error_class": d.error_class,
        "error_message": d.error_message,
        # Every path is listed only for --dry-run, where the plan is the answer; a real
        # run's report would otherwise carry thousands of paths per difusor.
        "plan": None
        if d.plan is None or d.outcome != "dry_run"
        else {
            "upload": [f.path for f in d.plan.uploads],
            "replace": [f.path for f in d.plan.replaces],
            "link": [link.entry.path for link in d.plan.links],
            "flip": [f.path for f in d.plan.flips],
            "mkdir": list(d.plan.mkdirs),
            "bytes": d.plan.bytes_to_send,
            "skipped": d.plan.skipped,
        },
    }


def publish_report_json(report: PublishReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "corte": report.corte,
        "status": report.status,
        "exit_code": int(report.exit_code),
        "deliveries": [delivery_json(d) for d in report.deliveries],
    }


CHECK_STYLES = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red")}


def print_check_report(report: CheckReport, console: Console) -> None:
    for difusor in report.difusores:
        mark, style = CHECK_STYLES[difusor.status]
        console.print(Text.assemble((f"{mark} {difusor.difusor}", style)))
        for result in difusor.results:
            mark, style = CHECK_STYLES[result.status]
            console.print(
                Text.assemble(("   ", ""), (mark, style), f" {result.name}: {result.detail}")
            )


def check_report_json(report: CheckReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "exit_code": int(report.exit_code),
        "difusores": [
            {
                "difusor": d.difusor,
                "status": d.status,
                "checks": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "detail": r.detail,
                        "value": r.value,
                        "unit": r.unit,
                    }
                    for r in d.results
                ],
            }
            for d in report.difusores
        ],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def status_table(report: StatusReport, zone: ZoneInfo) -> Table:
    table = Table(title=f"Estado de los difusores — corte más reciente: {report.newest_corte}")
    for column in ("Difusor", "Último corte", "Entregado", "Desfase", "Atraso", "Fallas"):
        table.add_column(column)
    table.add_column("Suspensión")
    for d in report.difusores:
        delivered = (
            d.delivered_at.astimezone(zone).strftime("%d/%m %H:%M:%S") if d.delivered_at else "-"
        )
        behind = (
            Text(f"{d.behind} cortes", "bold red" if d.behind > 1 else "")
            if d.behind
            else Text("al día", "green")
        )
        table.add_row(
            d.difusor,
            d.last_corte or "-",
            delivered,
            _seconds(d.lag_s),
            behind,
            Text(str(d.consecutive_failures), "red" if d.consecutive_failures else ""),
            Text(f"SUSPENDIDO: {d.suspension_reason}", "bold red") if d.suspended else Text("no"),
        )
    return table


def print_report(report: Report, console: Console) -> None:
    table = Table(title=f"Entregas por difusor — {report.process}")
    for column in ("Difusor", "Entregados", "Fallidos"):
        table.add_column(column)
    for column in ("Latencia p50", "p95", "máx", "Desfase p50", "p95", "máx"):
        table.add_column(column, justify="right")
    for d in report.difusores:
        table.add_row(
            d.difusor,
            str(len(d.delivered)),
            str(len(d.failed)),
            _seconds(d.latency.p50),
            _seconds(d.latency.p95),
            _seconds(d.latency.max),
            _seconds(d.lag.p50),
            _seconds(d.lag.p95),
            _seconds(d.lag.max),
        )
    console.print(table)
    incidents = Table(title="Reporte de incidencias")
    for column in ("Difusor", "Inicio", "Fin", "Duración", "Causa", "Cortes"):
        incidents.add_column(column)
    for i in report.incidents:
        end = i.end.astimezone(report.zone).strftime("%d/%m %H:%M:%S") if i.end else "-"
        duration = "en curso" if i.duration_s is None else f"{i.duration_s / 60:.1f} min"
        incidents.add_row(
            i.difusor,
            i.start.astimezone(report.zone).strftime("%d/%m %H:%M:%S"),
            end,
            duration,
            i.cause,
            ", ".join(i.cortes),
        )
    console.print(incidents if report.incidents else "Sin incidencias.")
    if report.fidelity:
        from prepush.ops.report import FIDELITY

        notes = Table(title="Fidelidad de los datos")
        for column in ("Hora", "Corte", "Qué", "Detalle"):
            notes.add_column(column)
        for n in report.fidelity:
            notes.add_row(
                n.at.astimezone(report.zone).strftime("%d/%m %H:%M:%S"),
                n.corte or "-",
                FIDELITY.get(n.kind, n.kind),
                Text(n.message),
            )
        console.print(notes)


def print_verify_report(report: VerifyReport, console: Console) -> None:
    for result in report.results:
        mark, style = CHECK_STYLES[result.status]
        shown = f"corte {result.corte}" if result.corte else "sin corte"
        console.print(
            Text.assemble(
                (f"{mark} {result.difusor}", style),
                f" ({result.url}): {shown}, {result.files_checked} archivos comparados",
            )
        )
        for note in result.notes:
            console.print(Text.assemble(("   ", ""), note))

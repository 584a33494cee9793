"""How prepush shows progress and results to the operator (rich), and as JSON.

On a terminal: rich tables when every column fits the terminal with its longest word whole;
on a terminal too narrow for that, the same figures as lines that wrap between words (a word
is never cut in two). Anywhere else (cron mail, journald, a file): plain lines, one per
difusor, never cut nor wrapped, whatever the width rich assumes for a non-terminal.
Durations are in the unit that fits (``2 h 10 min``, not ``7800.0 s``); every time of day says
its zone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from prepush.units import human_bytes, human_duration, human_rate

if TYPE_CHECKING:
    from prepush.ops.check import CheckReport
    from prepush.ops.report import Report
    from prepush.ops.status import DifusorStatus, StatusReport
    from prepush.ops.verify import VerifyReport
    from prepush.publish.protocol_types import Delivery, Event
    from prepush.publish.request import PublishReport

STAGES = {
    "waiting": "esperando",
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
    "skipped_held": "retenido por reversión: omitido",
    "suspended": "SUSPENDIDO",
}
# Not worth a line in cron mail or the journal: a run with nothing new prints nothing.
QUIET_STAGES = (
    "waiting",
    "connecting",
    "uploading",
    "up_to_date",
    "skipped_suspended",
    "skipped_held",
)
# Said by the log, with the error and what follows, in one line: not repeated by the view.
LOGGED_STAGES = ("retrying", "suspended")
# A difusor's final word, which the summary after a publish says again with its figures.
OUTCOMES = ("delivered", "up_to_date", "failed", "dry_run", "skipped_suspended", "skipped_held")
STYLES = {"delivered": "green", "up_to_date": "green", "failed": "bold red", "retrying": "yellow"}


@dataclass
class _Row:
    stage: str = "esperando"
    detail: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    started: float = 0.0
    # When the difusor's final word came: its speed is measured up to then, not to now.
    finished: float | None = None

    def seconds(self) -> float:
        return max((self.finished or time.monotonic()) - self.started, 1e-3)


class PublishView:
    """Live table on a terminal; one plain line per event otherwise (cron mail, journald)."""

    def __init__(self, console: Console, names: list[str], *, outcomes: bool = True) -> None:
        """``outcomes=False`` when a summary follows that says each difusor's outcome."""
        self.console = console
        self.rows = {name: _Row(started=time.monotonic()) for name in names}
        self.live: Live | None = None
        self.outcomes = outcomes

    def __call__(self, event: Event) -> None:
        if event.stage == "step":
            return  # the protocol's own milestones: for tests and tracing, not the operator
        row = self.rows.setdefault(event.difusor, _Row(started=time.monotonic()))
        if event.stage == "connecting" and row.stage not in ("connecting", "retrying"):
            # A new corte for this difusor (simulate and --watch reuse the view).
            row.started, row.files_done, row.files_total, row.bytes_done = time.monotonic(), 0, 0, 0
            row.finished = None
        changed = row.stage != event.stage
        row.stage, row.detail = event.stage, event.detail
        if event.files_total:
            row.files_done, row.files_total = event.files_done, event.files_total
        if event.files_total or event.bytes_done:
            row.bytes_done = event.bytes_done
        if event.stage in OUTCOMES:
            row.finished = time.monotonic()
        # On a terminal the live table redraws itself a few times a second.
        if (
            self.live is None
            and event.stage not in LOGGED_STAGES
            and (self.outcomes or event.stage not in OUTCOMES)
            and (event.stage == "failed" or (changed and event.stage not in QUIET_STAGES))
        ):
            self._plain(event)

    def _plain(self, event: Event) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        text = f"{stamp} {event.difusor}: {STAGES.get(event.stage, event.stage)}"
        if event.detail:
            text += f" — {event.detail}"
        plain(self.console, text)

    def render(self) -> RenderableType:
        """The live table, or its lines on a terminal too narrow for it."""
        return fitted(self.table(), self.lines(), self.console.width)

    def lines(self) -> list[str]:
        return [
            f"{name}: {self._stage(row)} — {self._files(row)} archivos,"
            f" {human_bytes(row.bytes_done)} enviados, {human_rate(row.bytes_done / row.seconds())}"
            for name, row in self.rows.items()
        ]

    @staticmethod
    def _stage(row: _Row) -> str:
        return STAGES.get(row.stage, row.stage) + (f" ({row.detail})" if row.detail else "")

    @staticmethod
    def _files(row: _Row) -> str:
        return f"{row.files_done}/{row.files_total}" if row.files_total else "-"

    def table(self) -> Table:
        table = Table(title="Publicación por difusor", expand=False)
        for column in ("Difusor", "Estado", "Archivos", "Bytes enviados", "Velocidad"):
            table.add_column(column, overflow="fold")
        for name, row in self.rows.items():
            table.add_row(
                name,
                Text(self._stage(row), STYLES.get(row.stage, "")),
                self._files(row),
                human_bytes(row.bytes_done),
                human_rate(row.bytes_done / row.seconds()),
            )
        return table

    @contextmanager
    def running(self) -> Iterator[PublishView]:
        if not self.console.is_terminal:
            yield self
            return
        with Live(console=self.console, refresh_per_second=4, get_renderable=self.render) as live:
            self.live = live
            try:
                yield self
            finally:
                self.live = None


# A rich table's box and padding: three characters per column and one more.
TABLE_FRAME = 3


def fitted(table: Table, lines: Iterable[str], width: int) -> RenderableType:
    """``table`` when each of its columns can be as wide as its longest word within
    ``width``; otherwise the same figures as ``lines``, which wrap between words. (Squeezed,
    rich cuts words in two: ``2021060`` / ``6_2340``.)"""
    if _words_fit(table, width):
        return table
    return Group(*(Text(line) for line in lines))


def _words_fit(table: Table, width: int) -> bool:
    """Give each column its longest word as its minimum width (rich then wraps only between
    words) and say whether the table fits ``width`` so."""
    needed = 1
    for column in table.columns:
        texts = [column.header, *column.cells]
        longest = max((len(word) for t in texts for word in _text_of(t).split()), default=1)
        column.min_width = max(column.min_width or 0, longest)
        needed += column.min_width + TABLE_FRAME
    return needed <= width


def _text_of(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def plain(console: Console, text: str, style: str = "") -> None:
    """One line as it is: no markup, no highlighting, never wrapped nor cut."""
    console.print(text, markup=False, highlight=False, soft_wrap=True, style=style or None)


def print_publish_report(report: PublishReport, console: Console) -> None:
    if console.is_terminal:
        lines = [_delivery_line(d, report.rollback) for d in report.deliveries]
        console.print(fitted(_publish_table(report), lines, console.width))
    else:
        for d in report.deliveries:
            plain(console, _delivery_line(d, report.rollback))
    for d in report.deliveries:
        if d.error_message and (console.is_terminal or d.outcome == "delivered"):
            # Off a terminal a failure's error is already on its line.
            console.print(
                Text.assemble((f"{d.difusor}: ", "bold"), d.error_message), soft_wrap=True
            )
        if d.plan is not None and d.outcome == "dry_run":
            plan = d.plan
            plain(
                console,
                f"{d.difusor}: enviaría {plan.files_to_send} archivos"
                f" ({human_bytes(plan.bytes_to_send)}), enlazaría {len(plan.links)},"
                f" crearía {len(plan.mkdirs)} directorios; {plan.skipped} ya están.",
            )
        if d.atomic is False:
            plain(
                console,
                f"{d.difusor}: el servidor no ofrece posix-rename; el cambio de main.json no es"
                " atómico (ventana mínima). Pida al difusor OpenSSH con internal-sftp.",
                style="yellow",
            )
    for line in (report.note, report.why_nobody):
        if line:
            plain(console, line, style="bold red" if line == report.why_nobody else "")


def _publish_table(report: PublishReport) -> Table:
    run = f" — corrida {report.run_id}" if report.run_id is not None else ""
    table = Table(title=f"Corte {report.corte}{run}")
    for column in ("Difusor", "Resultado", "Enviados", "Reconstruidos", "Enlazados", "Omitidos"):
        table.add_column(column, overflow="fold")
    table.add_column("Bytes enviados", overflow="fold")
    table.add_column("Peticiones", justify="right", overflow="fold")
    table.add_column("Latencia", justify="right", overflow="fold")
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
            "-" if report.rollback else _latency(d),
        )
    return table


def _delivery_line(d: Delivery, rollback: bool) -> str:
    """One difusor's result in one line: name, result, corte, seconds, bytes, files."""
    parts = [f"corte {d.corte}"]
    if d.finished_at is not None:
        parts.append(human_duration((d.finished_at - d.started_at).total_seconds()))
    if d.outcome in ("delivered", "up_to_date", "failed"):
        written = d.files_uploaded + d.files_rebuilt + d.files_linked
        parts.append(f"{human_bytes(d.bytes_sent)} enviados")
        parts.append(f"{written} archivos escritos, {d.files_skipped} ya estaban")
    latency = _latency(d)
    if latency != "-" and not rollback:
        parts.append(f"latencia {latency}")
    line = f"{d.difusor}: {STAGES.get(d.outcome, d.outcome)} — {', '.join(parts)}"
    if d.error_message and d.outcome != "delivered":
        line += f" — {d.error_message}"
    return line


def _latency(d: Delivery) -> str:
    if d.flip_at is None or d.package_ready_at is None:
        return "-"
    return human_duration((d.flip_at - d.package_ready_at).total_seconds())


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
        "rollback": report.rollback,
        "status": report.status,
        "exit_code": int(report.exit_code),
        # Why the corte reached no difusor (exit 3), or why the run did nothing at all.
        "reason": report.why_nobody,
        "note": report.note,
        "deliveries": [delivery_json(d) for d in report.deliveries],
    }


CHECK_STYLES = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red")}


def print_check_report(report: CheckReport, console: Console) -> None:
    for difusor in report.difusores:
        mark, style = CHECK_STYLES[difusor.status]
        console.print(Text.assemble((f"{mark} {difusor.difusor}", style)), soft_wrap=True)
        for result in difusor.results:
            mark, style = CHECK_STYLES[result.status]
            console.print(
                Text.assemble(("   ", ""), (mark, style), f" {result.name}: {result.detail}"),
                soft_wrap=True,
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
    return "-" if value is None else human_duration(value)


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    """A time of day in ``zone``, with the zone's name: ``06/06 22:40:00 CDT``."""
    return moment.astimezone(zone).strftime("%d/%m %H:%M:%S %Z") if moment else "-"


def print_status(report: StatusReport, zone: ZoneInfo, console: Console) -> None:
    if console.is_terminal:
        console.print(status_view(report, zone, console.width))
        return
    for line in _status_lines(report, zone):
        plain(console, line)


def status_view(report: StatusReport, zone: ZoneInfo, width: int) -> RenderableType:
    """The status table, or its lines on a terminal too narrow for it."""
    return fitted(status_table(report, zone), _status_lines(report, zone), width)


def _status_lines(report: StatusReport, zone: ZoneInfo) -> list[str]:
    newest = report.newest_corte or "sin paquetes aún"
    lines = [f"Corte más reciente: {newest} (horas de {zone.key})"]
    if not report.ledger_exists:
        lines.append(_no_ledger_yet(report))
    lines += publisher_lines(report, zone)
    return lines + [_status_line(d, zone) for d in report.difusores]


def publisher_lines(report: StatusReport, zone: ZoneInfo) -> list[str]:
    """With a shared ledger: who publishes (the lease) and who waits to take over."""
    who = report.publishers
    if who is None:
        return []
    lease, now = who.lease, who.lease.now
    if lease.epoch == 0:
        lines = ["Publica: nadie ha tomado el turno todavía (ningún 'publish --watch' en marcha)."]
    elif lease.held:
        lines = [
            f"Publica: {lease.host} (pid {lease.pid}, {who.holder_workdir}) desde"
            f" {_when(lease.since, zone)}, concesión {lease.epoch}, renovada hace"
            f" {_ago(now, lease.renewed_at)}"
        ]
    else:
        lines = [
            f"Publica: NADIE. La concesión {lease.epoch} de {lease.host} venció hace"
            f" {_ago(now, lease.expires_at)}; el primer 'publish --watch' que la pida toma el"
            " turno."
        ]
    alive = [s for s in who.standby if s.alive]
    for s in who.standby:
        state = "en espera" if s.alive else "sin señales (no tomaría el turno)"
        lines.append(
            f"Respaldo: {s.host} (pid {s.pid}, {s.workdir}), {state}, última señal hace"
            f" {_ago(now, s.seen_at)}"
        )
    if not alive:
        lines.append("Respaldo: NINGUNO en espera; si la máquina de turno falla, nadie la releva.")
    return lines


def _ago(now: datetime, then: datetime) -> str:
    return f"{max(0.0, (now - then).total_seconds()):.0f} s"


def _no_ledger_yet(report: StatusReport) -> str:
    return (
        "Todavía no se ha publicado nada desde este directorio: no hay bitácora en"
        f" {report.ledger} (la crea el primer build o publish)."
    )


def _status_line(d: DifusorStatus, zone: ZoneInfo) -> str:
    if d.serving_corte is None:
        line = f"{d.difusor}: no sirve ningún corte de prepush aún"
    else:
        line = (
            f"{d.difusor}: sirve {d.serving_corte} desde {_when(d.delivered_at, zone)},"
            f" desfase {_seconds(d.lag_s)}, latencia {_seconds(d.latency_s)}"
        )
    line += f", {_behind(d)}, {d.consecutive_failures} fallas seguidas"
    if d.held_corte:
        line += f", retenido en {d.held_corte} por reversión (prepush resume-latest lo libera)"
    if d.suspended:
        line += f", SUSPENDIDO: {d.suspension_reason}"
    return line


def _behind(d: DifusorStatus) -> str:
    if d.behind:
        return f"{d.behind} cortes de atraso"
    # Serving nothing and behind on nothing: no package was built yet.
    return "sin paquetes que enviar aún" if d.serving_corte is None else "al día"


def _behind_style(d: DifusorStatus) -> str:
    if d.behind:
        return "bold red" if d.behind > 1 else ""
    return "" if d.serving_corte is None else "green"


def status_table(report: StatusReport, zone: ZoneInfo) -> Table:
    newest = report.newest_corte or "sin paquetes aún"
    captions = publisher_lines(report, zone)
    if not report.ledger_exists:
        captions.append(_no_ledger_yet(report))
    table = Table(
        title=f"Estado de los difusores — corte más reciente: {newest} (horas de {zone.key})",
        caption="\n".join(captions) or None,
    )
    for column in ("Difusor", "Sirve", "Desde", "Desfase", "Latencia", "Atraso", "Fallas"):
        table.add_column(column, overflow="fold")
    table.add_column("Suspensión / reversión", overflow="fold")
    for d in report.difusores:
        behind = Text(_behind(d), _behind_style(d))
        notes = []
        if d.suspended:
            notes.append(Text(f"SUSPENDIDO: {d.suspension_reason}", "bold red"))
        if d.held_corte:
            notes.append(Text(f"retenido en {d.held_corte} (resume-latest)", "yellow"))
        table.add_row(
            d.difusor,
            d.serving_corte or "-",
            _when(d.delivered_at, zone),
            _seconds(d.lag_s),
            _seconds(d.latency_s),
            behind,
            Text(str(d.consecutive_failures), "red" if d.consecutive_failures else ""),
            Text("; ").join(notes) if notes else Text("no"),
        )
    return table


def print_report(report: Report, console: Console) -> None:
    """Three sections: deliveries, incidents and the data's fidelity; on a terminal each a
    table (or its lines, if the terminal is too narrow for it), elsewhere plain lines."""
    from prepush.ops.report import LATENCY_DEFINITION

    sections = [
        (_deliveries_table(report), _deliveries_lines(report)),
        (_incidents_table(report), _incidents_lines(report)),
        (_fidelity_table(report), _fidelity_lines(report)),
        (_changes_table(report), _changes_lines(report)),
    ]
    for table, lines in sections:
        if console.is_terminal and table is not None:
            console.print(fitted(table, lines, console.width))
        elif console.is_terminal:
            for line in lines:
                console.print(Text(line))
        else:
            for line in lines:
                plain(console, line)
    plain(console, LATENCY_DEFINITION)


def _deliveries_lines(report: Report) -> list[str]:
    lines = [f"Entregas por difusor — {report.process}"]
    for d in report.difusores:
        lines.append(
            f"{d.difusor}: {len(d.delivered)} cortes entregados"
            f" (el último, {d.delivered[-1] if d.delivered else 'ninguno'}),"
            f" {len(d.failed)} fallidos;"
            f" latencia p50 {_seconds(d.latency.p50)}, p95 {_seconds(d.latency.p95)},"
            f" máx {_seconds(d.latency.max)}; desfase p50 {_seconds(d.lag.p50)},"
            f" p95 {_seconds(d.lag.p95)}, máx {_seconds(d.lag.max)}"
        )
    return lines


def _incidents_lines(report: Report) -> list[str]:
    if not report.incidents:
        return ["Sin incidencias."]
    lines = [f"Reporte de incidencias (horas de {report.zone.key})"]
    for i in report.incidents:
        lines.append(
            f"{i.what}: {i.difusor}: desde {_when(i.start, report.zone)}"
            f" hasta {_when(i.end, report.zone)} ({_duration(i.duration_s)}),"
            f" causa: {i.cause}; cortes {', '.join(i.cortes)}"
        )
    return lines


def _fidelity_lines(report: Report) -> list[str]:
    from prepush.ops.report import FIDELITY

    lines = [f"Fidelidad de los datos (horas de {report.zone.key})"] if report.fidelity else []
    for n in report.fidelity:
        corte = f" corte {n.corte}" if n.corte else ""
        lines.append(
            f"{_when(n.at, report.zone)}{corte}: {FIDELITY.get(n.kind, n.kind)}:"
            f" {n.message.replace(chr(10), ' ')}"
        )
    return lines


def _duration(seconds: float | None) -> str:
    return "en curso" if seconds is None else human_duration(seconds)


def _deliveries_table(report: Report) -> Table:
    table = Table(title=f"Entregas por difusor — {report.process}")
    for column in ("Difusor", "Entregados", "Fallidos"):
        table.add_column(column, overflow="fold")
    for column in ("Latencia p50", "p95", "máx", "Desfase p50", "p95", "máx"):
        table.add_column(column, justify="right", overflow="fold")
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
    return table


def _incidents_table(report: Report) -> Table | None:
    if not report.incidents:
        return None
    incidents = Table(title=f"Reporte de incidencias (horas de {report.zone.key})")
    for column in ("Qué", "Difusor", "Inicio", "Fin", "Duración", "Causa", "Cortes"):
        incidents.add_column(column, overflow="fold")
    for i in report.incidents:
        incidents.add_row(
            i.what,
            i.difusor,
            _when(i.start, report.zone),
            _when(i.end, report.zone),
            _duration(i.duration_s),
            i.cause,
            ", ".join(i.cortes),
        )
    return incidents


def _fidelity_table(report: Report) -> Table | None:
    from prepush.ops.report import FIDELITY

    if not report.fidelity:
        return None
    notes = Table(title=f"Fidelidad de los datos (horas de {report.zone.key})")
    for column in ("Hora", "Corte", "Qué", "Detalle"):
        notes.add_column(column, overflow="fold")
    for n in report.fidelity:
        notes.add_row(
            _when(n.at, report.zone),
            n.corte or "-",
            FIDELITY.get(n.kind, n.kind),
            Text(n.message),
        )
    return notes


def _changes_table(report: Report) -> Table | None:
    if not report.publisher_changes:
        return None
    changes = Table(title=f"Cambios de la máquina que publica (horas de {report.zone.key})")
    for column in ("Hora", "Qué"):
        changes.add_column(column, overflow="fold")
    for change in report.publisher_changes:
        changes.add_row(_when(change.at, report.zone), Text(change.message))
    return changes


def _changes_lines(report: Report) -> list[str]:
    return [f"{_when(c.at, report.zone)}: {c.message}" for c in report.publisher_changes]


def print_verify_report(report: VerifyReport, console: Console) -> None:
    for result in report.results:
        mark, style = CHECK_STYLES[result.status]
        shown = f"corte {result.corte}" if result.corte else "sin corte"
        console.print(
            Text.assemble(
                (f"{mark} {result.difusor}", style),
                f" ({result.url}): {shown}, {result.files_checked} archivos comparados",
            ),
            soft_wrap=True,
        )
        for note in result.notes:
            console.print(Text.assemble(("   ", ""), note), soft_wrap=True)
    if report.without_url:
        plain(
            console,
            f"No se verifican (no tienen url en el padrón): {', '.join(report.without_url)}.",
            style="yellow",
        )

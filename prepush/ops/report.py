"""The night's report: per-difusor figures and the incidents the calls ask difusores to file.

Everything comes from the ledger: measured timestamps, never estimates. Only publishes count:
a rollback changes what a difusor serves and a dry run sends nothing, so neither is a delivery,
a failure or a latency. Latency is measured once per corte and difusor, on the corte's first
delivery (see LATENCY_DEFINITION). An incident is a run of consecutive failed cortes of one
difusor; it starts with the first failed attempt and ends when the difusor shows a corte again
(or is still open at the end of the period). The operator's own departures from the night's
course are incidents too: each corte published outside the window (``embargo_override``),
each publish or rollback interrupted before its end, and each rollback, from its flip until
``resume-latest`` released it.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prepush.exceptions import ConfigError
from prepush.ledger import (
    BUILD_FEWER_ELECTIONS,
    BUILD_FORCED,
    BUILD_REFUSED,
    BUILD_REPAIRED,
    BUILD_REPLACED,
    BUILD_WARNING,
    EMBARGO_OVERRIDE,
    LEASE_LOST,
    LEASE_TAKEN,
    PACKAGE_REFUSED,
    DeliveryRow,
    EventRow,
    HoldRow,
    Ledger,
    RunEventRow,
    RunRow,
    SuspensionRow,
)
from prepush.settings import Settings
from prepush.units import human_duration

OK_OUTCOMES = ("delivered", "up_to_date")
# What the night's report says of the data itself, most serious first.
FIDELITY = {
    PACKAGE_REFUSED: "publicación rechazada: paquete alterado o sin firma válida",
    BUILD_REFUSED: "construcción rechazada: preámbulo y filas no cuadran",
    BUILD_FORCED: "construido con --allow-mismatch",
    BUILD_FEWER_ELECTIONS: "construido con menos elecciones que el corte anterior",
    BUILD_REPLACED: "paquete de un corte reemplazado por otra construcción",
    BUILD_REPAIRED: "paquete dañado reparado al reconstruirlo",
    BUILD_WARNING: "aviso al construir",
}

LATENCY_DEFINITION = (
    "La latencia va de que el paquete del corte estuvo listo (su manifiesto escrito) a que el"
    " servidor del difusor confirmó el cambio de json/main.json, y se mide una vez por corte y"
    " difusor: en la primera entrega del corte. Las re-publicaciones del mismo corte, las"
    " reversiones y las corridas de prueba (--dry-run) no son entregas y no cuentan. El desfase"
    " va de la hora del corte a ese mismo cambio."
)
CsvTable = Literal["difusores", "incidencias", "fidelidad"]
PUBLISHER_CHANGES = (LEASE_TAKEN, LEASE_LOST)


@dataclass(frozen=True)
class Stats:
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            return cls(None, None, None)
        ordered = sorted(values)
        return cls(_percentile(ordered, 50), _percentile(ordered, 95), ordered[-1])


def _percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: always a value that was really measured."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Outage:
    """Updates that failed in a row: from the first failure until the next success (``end``
    is that success, or the last failure while it lasts), with the cortes and causes."""

    start: datetime
    end: datetime | None
    causes: list[str] = field(default_factory=list)
    cortes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    @property
    def cause(self) -> str:
        return Counter(self.causes).most_common(1)[0][0] if self.causes else "sin detalle"


IncidentKind = Literal["delivery", "embargo_override", "interrupted", "rollback"]
INCIDENT_KINDS: dict[str, str] = {
    "delivery": "cortes fallidos",
    "embargo_override": "publicado fuera de la ventana",
    "interrupted": "publicación interrumpida",
    "rollback": "reversión",
}


@dataclass
class Incident(Outage):
    """An outage of one difusor, or a departure of the operator's, as the technical report
    lists it (``difusor`` names every difusor involved)."""

    difusor: str = ""
    recovered: bool = False
    kind: IncidentKind = "delivery"

    @property
    def what(self) -> str:
        return INCIDENT_KINDS[self.kind]


@dataclass
class DifusorSummary:
    difusor: str
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    latency: Stats = Stats(None, None, None)
    lag: Stats = Stats(None, None, None)
    public_latency: Stats = Stats(None, None, None)
    non_atomic: bool = False


@dataclass
class Report:
    process: str
    zone: ZoneInfo
    since: datetime | None
    until: datetime | None
    difusores: list[DifusorSummary]
    incidents: list[Incident]
    suspensions: list[SuspensionRow]
    points: dict[str, list[tuple[str, float]]]
    fidelity: list[RunEventRow] = field(default_factory=list)
    # With a shared ledger: each change of the machine that publishes (lease taken or lost).
    publisher_changes: list[EventRow] = field(default_factory=list)


def build_report(
    process: str,
    zone: ZoneInfo,
    rows: Sequence[DeliveryRow],
    *,
    suspensions: Sequence[SuspensionRow],
    since: datetime | None = None,
    until: datetime | None = None,
    public_latencies: dict[str, list[float]] | None = None,
    fidelity: Sequence[RunEventRow] = (),
    publisher_changes: Sequence[EventRow] = (),
) -> Report:
    by_difusor: dict[str, list[DeliveryRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.started_at, r.id)):
        if row.kind == "publish" and row.outcome in (*OK_OUTCOMES, "failed", "interrupted"):
            by_difusor[row.difusor].append(row)
    summaries = []
    incidents: list[Incident] = []
    points: dict[str, list[tuple[str, float]]] = {}
    for name in sorted(by_difusor):
        final = _final_per_corte(by_difusor[name])
        summary = _summarise(name, final, (public_latencies or {}).get(name, []))
        summaries.append(summary)
        incidents.extend(_incidents(name, final))
        points[name] = [
            (r.corte, r.latency_s) for r in final if r.outcome == "delivered" and r.latency_s
        ]
    return Report(
        process,
        zone,
        since,
        until,
        summaries,
        incidents,
        list(suspensions),
        points,
        list(fidelity),
        list(publisher_changes),
    )


def _final_per_corte(rows: Sequence[DeliveryRow]) -> list[DeliveryRow]:
    """The word on each corte: its first successful delivery, else its last failure.

    The first success is the one latency counts (once per corte and difusor); a later
    re-publish of the same corte is not a delivery, and a later success supersedes earlier
    failures.
    """
    final: dict[str, DeliveryRow] = {}
    for row in rows:
        current = final.get(row.corte)
        if current is None or current.outcome not in OK_OUTCOMES:
            final[row.corte] = row
    return [final[c] for c in sorted(final)]


def _summarise(name: str, final: Sequence[DeliveryRow], public: Sequence[float]) -> DifusorSummary:
    delivered = [r for r in final if r.outcome in OK_OUTCOMES]
    measured = [r for r in delivered if r.outcome == "delivered"]
    return DifusorSummary(
        difusor=name,
        delivered=[r.corte for r in delivered],
        failed=[r.corte for r in final if r.outcome not in OK_OUTCOMES],
        latency=Stats.of([r.latency_s for r in measured if r.latency_s is not None]),
        lag=Stats.of([r.lag_s for r in measured if r.lag_s is not None]),
        public_latency=Stats.of(list(public)),
        non_atomic=any(r.atomic is False for r in measured),
    )


def _incidents(name: str, final: Sequence[DeliveryRow]) -> Iterable[Incident]:
    current: Incident | None = None
    for row in final:
        if row.outcome not in OK_OUTCOMES:
            if current is None:
                current = Incident(row.started_at, None, difusor=name)
            current.cortes.append(row.corte)
            current.causes.append(row.error_message or row.outcome)
            current.end = row.finished_at
        elif current is not None:
            current.end = row.flip_at or row.finished_at
            current.recovered = True
            yield current
            current = None
    if current is not None:
        yield current


# --- renderings -----------------------------------------------------------------------------


def measured(value: float | None) -> str:
    """A duration in the unit that fits it (``2 h 10 min``, not ``7800.0 s``)."""
    return "-" if value is None else human_duration(value)


def local_time(moment: datetime | None, zone: ZoneInfo) -> str:
    return "-" if moment is None else moment.astimezone(zone).strftime("%d/%m/%Y %H:%M:%S")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "en curso"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def report_json(report: Report) -> dict[str, Any]:
    def stats(s: Stats) -> dict[str, float | None]:
        return {"p50": s.p50, "p95": s.p95, "max": s.max}

    return {
        "process": report.process,
        "timezone": str(report.zone),
        "since": report.since.isoformat() if report.since else None,
        "until": report.until.isoformat() if report.until else None,
        "latency_definition": LATENCY_DEFINITION,
        "difusores": [
            {
                "difusor": d.difusor,
                "cortes_delivered": len(d.delivered),
                "cortes_failed": len(d.failed),
                "failed_cortes": d.failed,
                "latency_s": stats(d.latency),
                "lag_s": stats(d.lag),
                "public_latency_s": stats(d.public_latency),
                "non_atomic": d.non_atomic,
            }
            for d in report.difusores
        ],
        "incidents": [
            {
                "kind": i.kind,
                "what": i.what,
                "difusor": i.difusor,
                "start": i.start.isoformat(),
                "end": i.end.isoformat() if i.end else None,
                "duration_s": i.duration_s,
                "recovered": i.recovered,
                "cause": i.cause,
                "cortes": i.cortes,
            }
            for i in report.incidents
        ],
        "suspensions": [
            {
                "difusor": s.difusor,
                "suspended_at": s.suspended_at.isoformat(),
                "resumed_at": s.resumed_at.isoformat() if s.resumed_at else None,
                "reason": s.reason,
                "automatic": s.automatic,
            }
            for s in report.suspensions
        ],
        "publisher_changes": [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message}
            for e in report.publisher_changes
        ],
        "fidelity": [
            {
                "at": n.at.isoformat(),
                "command": n.command,
                "corte": n.corte,
                "kind": n.kind,
                "what": FIDELITY.get(n.kind, n.kind),
                "message": n.message,
            }
            for n in report.fidelity
        ],
    }


def report_csv(report: Report, table: CsvTable = "difusores") -> str:
    """One table per document, so any spreadsheet opens it: the difusores, the incidents or
    the notes on the data's fidelity."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if table == "fidelidad":
        writer.writerow(["hora", "corte", "tipo", "detalle"])
        for n in report.fidelity:
            writer.writerow(
                [
                    local_time(n.at, report.zone),
                    n.corte or "",
                    FIDELITY.get(n.kind, n.kind),
                    n.message,
                ]
            )
        return buffer.getvalue()
    if table == "incidencias":
        writer.writerow(["tipo", "difusor", "inicio", "fin", "duracion_s", "causa", "cortes"])
        for i in report.incidents:
            writer.writerow(
                [
                    i.what,
                    i.difusor,
                    local_time(i.start, report.zone),
                    local_time(i.end, report.zone),
                    "" if i.duration_s is None else f"{i.duration_s:.0f}",
                    i.cause,
                    " ".join(i.cortes),
                ]
            )
        return buffer.getvalue()
    writer.writerow(
        [
            "difusor",
            "cortes_entregados",
            "cortes_fallidos",
            "latencia_p50_s",
            "latencia_p95_s",
            "latencia_max_s",
            "desfase_p50_s",
            "desfase_p95_s",
            "desfase_max_s",
        ]
    )
    for d in report.difusores:
        writer.writerow(
            [
                d.difusor,
                len(d.delivered),
                len(d.failed),
                d.latency.p50,
                d.latency.p95,
                d.latency.max,
                d.lag.p50,
                d.lag.p95,
                d.lag.max,
            ]
        )
    return buffer.getvalue()


def report_markdown(report: Report) -> str:
    zone = report.zone
    period = (
        f"del {local_time(report.since, zone)} al {local_time(report.until, zone)}"
        if report.since or report.until
        else "de toda la bitácora"
    )
    lines = [
        f"# Reporte de publicación del PREP — {report.process}",
        "",
        f"Periodo {period}, horas en {zone}. Cifras medidas por prepush en cada entrega."
        f" {LATENCY_DEFINITION.replace('json/main.json', '`json/main.json`')}",
        "",
        "## Entregas por difusor",
        "",
        "| Difusor | Cortes entregados | Cortes fallidos | Latencia p50 | p95 | máx. |"
        " Desfase p50 | p95 | máx. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in report.difusores:
        lines.append(
            f"| {d.difusor} | {len(d.delivered)} | {len(d.failed)} | {measured(d.latency.p50)} |"
            f" {measured(d.latency.p95)} | {measured(d.latency.max)} | {measured(d.lag.p50)} |"
            f" {measured(d.lag.p95)} | {measured(d.lag.max)} |"
        )
    seen = [d for d in report.difusores if d.public_latency.p50 is not None]
    if seen:
        lines += [
            "",
            "## Latencia de punta a punta",
            "",
            "Medida por `prepush verify --watch`: de que el paquete estuvo listo a que el"
            " público vio el corte por primera vez en el sitio del difusor.",
            "",
            "| Difusor | p50 | p95 | máx. |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {d.difusor} | {measured(d.public_latency.p50)} | {measured(d.public_latency.p95)} |"
            f" {measured(d.public_latency.max)} |"
            for d in seen
        ]
    lines += ["", "## Reporte de incidencias", ""]
    if not report.incidents:
        lines.append("No hubo incidencias: todos los difusores recibieron todos los cortes.")
    else:
        lines += [
            "| Qué | Difusor | Inicio | Fin | Duración | Causa | Cortes afectados |",
            "|---|---|---|---|---|---|---|",
        ]
        for i in report.incidents:
            cause = i.cause.replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {i.what} | {i.difusor} | {local_time(i.start, zone)} |"
                f" {local_time(i.end, zone)} | {duration_text(i.duration_s)} | {cause} |"
                f" {', '.join(i.cortes)} |"
            )
    if report.suspensions:
        lines += ["", "## Suspensiones", ""]
        for s in report.suspensions:
            how = "automática" if s.automatic else "manual"
            until = f", reanudado el {local_time(s.resumed_at, zone)}" if s.resumed_at else ""
            lines.append(
                f"- **{s.difusor}**: suspensión {how} el {local_time(s.suspended_at, zone)}{until}."
                f" Motivo: {s.reason}"
            )
    lines += _fidelity_markdown(report)
    if report.publisher_changes:
        lines += ["", "## Cambios de la máquina que publica", ""]
        lines += [f"- {local_time(e.at, zone)}: {e.message}" for e in report.publisher_changes]
    non_atomic = [d.difusor for d in report.difusores if d.non_atomic]
    if non_atomic:
        lines += [
            "",
            "## Observaciones",
            "",
            "- Sin cambio atómico de `main.json` (servidor sin posix-rename):"
            f" {', '.join(non_atomic)}.",
        ]
    return "\n".join(lines) + "\n"


def _fidelity_markdown(report: Report) -> list[str]:
    if not report.fidelity:
        return []
    lines = [
        "",
        "## Fidelidad de los datos",
        "",
        "Lo que prepush no construyó o no publicó, lo que construyó por decisión del operador"
        " y los avisos de las construcciones. El sitio muestra siempre las cifras del preámbulo"
        " del PREP tal como las imprimió.",
        "",
    ]
    for n in report.fidelity:
        corte = f", corte {n.corte}" if n.corte else ""
        message = n.message.replace("\n", " ")
        at = local_time(n.at, report.zone)
        lines.append(f"- {at}{corte}: **{FIDELITY.get(n.kind, n.kind)}**. {message}")
    return lines


# An upper bound of the width of one character at font-size 12 (sans-serif), in pixels.
CHAR_WIDTH = 7.5
PALETTE = ("#1b6ca8", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d6a9f", "#2e4057", "#c06c84")


def latency_svg(report: Report, width: int = 900, height: int = 420) -> str:
    """Latency per difusor and corte, as a self-contained SVG (no external assets)."""
    cortes = sorted({c for pts in report.points.values() for c, _ in pts})
    values = [v for pts in report.points.values() for _, v in pts]
    top = max(values, default=1.0) * 1.1 or 1.0
    # The corte labels run at 45°: room below and to the left for the longest one whole,
    # and to the right for the longest name in the legend.
    reach = math.ceil(max((len(c) for c in cortes), default=0) * CHAR_WIDTH / math.sqrt(2))
    names = max((len(n) for n in report.points), default=0)
    left, upper = max(60, reach + 10), 30
    right, lower = max(160, 40 + math.ceil(names * CHAR_WIDTH)), max(70, reach + 30)
    height += lower - 70
    width += left - 60 + right - 160
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(corte: str) -> float:
        if len(cortes) == 1:
            return left + plot_w / 2
        return left + plot_w * cortes.index(corte) / (len(cortes) - 1)

    def y(value: float) -> float:
        return upper + plot_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>Latencia por difusor y corte — {html.escape(report.process)}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{upper + plot_h}" x2="{left + plot_w}" y2="{upper + plot_h}"'
        ' stroke="#444"/>',
        f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{upper + plot_h}" stroke="#444"/>',
        f'<text x="{left}" y="18">Latencia (s)</text>',
    ]
    for step in range(5):
        value = top * step / 4
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.1f}</text>'
        )
    for corte in cortes:
        parts.append(
            f'<text x="{x(corte):.1f}" y="{upper + plot_h + 14}" text-anchor="end"'
            f' transform="rotate(-45 {x(corte):.1f} {upper + plot_h + 14})">{corte}</text>'
        )
    for index, (name, pts) in enumerate(sorted(report.points.items())):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in pts)
        if pts:
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        for c, v in pts:
            parts.append(
                f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{html.escape(name)} {c}: {v:.2f} s</title></circle>"
            )
        legend_y = upper + 16 * index
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + plot_w + 28}" y="{legend_y + 9}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def latency_html(report: Report) -> str:
    return (
        '<!doctype html>\n<html lang="es"><head><meta charset="utf-8">'
        f"<title>Latencia — {html.escape(report.process)}</title>"
        "<style>svg{max-width:100%;height:auto}</style></head><body>\n"
        f"<h1>Latencia por difusor y corte</h1>\n<p>{html.escape(LATENCY_DEFINITION)}</p>\n"
        f"{latency_svg(report)}</body></html>\n"
    )


@dataclass(frozen=True)
class ReportRequest:
    since: datetime | None = None
    until: datetime | None = None
    difusores: tuple[str, ...] = ()


def make_report(settings: Settings, request: ReportRequest) -> Report:
    """The report from the ledger; without one, a ConfigError (an empty report would read as
    a night without incidents)."""
    ledger = Ledger.existing(settings.ledger_location)
    if ledger is None:
        raise ConfigError(
            f"No hay bitácora en {settings.ledger_location}: todavía no se ha construido ni"
            " publicado nada desde este directorio (la bitácora se crea con el primer build o"
            " publish). Corra el reporte en el directorio de trabajo de la noche (prepush -C"
            " DIRECTORIO report) o, si la bitácora está en otro lugar, corrija paths.ledger en el"
            " padrón. No se creó nada."
        )
    with ledger:
        rows = [
            r
            for r in ledger.deliveries(since=request.since, until=request.until)
            if not request.difusores or r.difusor in request.difusores
        ]
        suspensions = [
            s
            for s in ledger.suspensions()
            if not request.difusores or s.difusor in request.difusores
        ]
        public = ledger.public_latencies()
        fidelity = ledger.run_events(tuple(FIDELITY), request.since, request.until)
        changes = [
            e
            for e in ledger.events()
            if e.kind in PUBLISHER_CHANGES
            and (request.since is None or e.at >= request.since)
            and (request.until is None or e.at <= request.until)
        ]
        departures = operator_incidents(ledger, request)
    report = build_report(
        settings.roster.election.process,
        settings.roster.election.zone,
        rows,
        suspensions=suspensions,
        since=request.since,
        until=request.until,
        public_latencies=public,
        fidelity=fidelity,
        publisher_changes=changes,
    )
    report.incidents = sorted([*report.incidents, *departures], key=lambda i: i.start)
    return report


def operator_incidents(ledger: Ledger, request: ReportRequest) -> list[Incident]:
    """The operator's departures from the night's course, from the ledger's runs: cortes
    published outside the window, interrupted publishes and rollbacks."""
    runs = {run.id: run for run in ledger.runs() if not run.options.get("dry_run")}
    found: list[Incident] = []
    for event in ledger.events(EMBARGO_OVERRIDE):
        run = runs.get(event.run_id or -1)
        if run is not None:
            found.append(
                Incident(
                    event.at,
                    event.at,
                    [event.message],
                    [run.corte or "-"],
                    difusor=_involved(run.options),
                    recovered=True,
                    kind="embargo_override",
                )
            )
    for run in runs.values():
        if run.command in ("publish", "rollback") and run.status == "interrupted":
            found.append(_interrupted(run))
        if run.command == "rollback" and run.status != "interrupted":
            found.extend(_rollback(run, ledger.holds_of_run(run.id)))
    return [i for i in found if _within(i, request)]


def _interrupted(run: RunRow) -> Incident:
    action = "La reversión" if run.command == "rollback" else "La publicación"
    return Incident(
        run.started_at,
        run.finished_at,
        [
            f"{action} del corte {run.corte} se interrumpió antes de terminar (Ctrl-C o el"
            " proceso terminado); cada difusor quedó en un corte completo y la siguiente"
            " publicación envió lo que faltó"
        ],
        [run.corte or "-"],
        difusor=_involved(run.options),
        recovered=run.finished_at is not None,
        kind="interrupted",
    )


def _rollback(run: RunRow, holds: Sequence[HoldRow]) -> list[Incident]:
    if not holds:
        return []  # it reached no difusor: nothing went back
    released = [h.released_at for h in holds]
    end = None if None in released else max(r for r in released if r is not None)
    return [
        Incident(
            run.started_at,
            end,
            [
                f"Reversión al corte {run.corte}: el público vio ese corte y no el más reciente"
                " hasta 'prepush resume-latest'" + ("" if end is not None else " (aún retenidos)")
            ],
            [run.corte or "-"],
            difusor=", ".join(sorted({h.difusor for h in holds})),
            recovered=end is not None,
            kind="rollback",
        )
    ]


def _involved(options: dict[str, Any]) -> str:
    names = options.get("difusores")
    return ", ".join(str(n) for n in names) if isinstance(names, list) and names else "-"


def _within(incident: Incident, request: ReportRequest) -> bool:
    if request.since is not None and incident.start < request.since:
        return False
    if request.until is not None and incident.start > request.until:
        return False
    involved = {n.strip() for n in incident.difusor.split(",")}
    return not request.difusores or bool(involved & set(request.difusores))

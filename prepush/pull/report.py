"""``prepush pull --report``: what the difusor files in its informe técnico, from its ledger.

Per corte: when the pull first saw it on the origin, when its package arrived verified, when
the destination's main.json changed (the flip), the delay from the corte's time to that flip,
and the verification result (verified, or refused and why). The incidents: each failing
period, from its first failure (or refusal) to the pass that brought the destination back up
to date, with its date, time, duration, cause and the cortes it held back. Everything is
measured and recorded as it happened, never estimated.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prepush.exceptions import ConfigError
from prepush.ledger import DeliveryRow, Ledger
from prepush.ops.report import Outage, Stats, duration_text, local_time, measured
from prepush.pull.config import PullSettings
from prepush.pull.puller import FAILED, RECOVERED, REFUSED, ROLLED_BACK

OK = ("delivered", "up_to_date")
PullTable = Literal["cortes", "incidencias"]
DELAY_DEFINITION = (
    "El desfase va de la hora del corte (la de su manifiesto firmado) a que el json/main.json"
    " del destino cambió a ese corte. La llegada es el momento en que el paquete del corte"
    " quedó completo y verificado en esta máquina (firma con la llave del instituto, tamaño y"
    " sha256 de cada archivo)."
)


@dataclass
class CorteLine:
    corte: str
    corte_time: datetime
    seen_at: datetime
    arrived_at: datetime | None
    flip_at: datetime | None
    lag_s: float | None
    result: str
    detail: str
    attempts: int


@dataclass
class PullReport:
    difusor: str
    origin: str
    destination: str
    zone: ZoneInfo
    cortes: list[CorteLine]
    incidents: list[Outage]
    rollbacks: list[tuple[datetime, str]]
    lag: Stats


def make_pull_report(settings: PullSettings) -> PullReport:
    """The report from the difusor's ledger; without one, a ConfigError (an empty report
    would read as a night without cortes)."""
    ledger = Ledger.existing(settings.ledger_path)
    if ledger is None:
        raise ConfigError(
            f"No hay bitácora de pull en {settings.ledger_path}: prepush pull todavía no ha"
            f" corrido con {settings.config_path} (la bitácora se crea en la primera pasada)."
            f" Corra 'prepush pull --config {settings.config_path}' o, si la bitácora está en"
            " otro lugar, corrija paths.ledger. No se creó nada."
        )
    with ledger:
        rows = ledger.deliveries(difusor=settings.name)
        events = [e for e in ledger.events() if e.difusor == settings.name]
    cortes = _cortes(rows)
    incidents = _incidents(
        [(e.at, e.kind, e.message) for e in events if e.kind in (FAILED, REFUSED, RECOVERED)],
        rows,
    )
    lags = [c.lag_s for c in cortes if c.lag_s is not None and c.result == "verificado"]
    return PullReport(
        settings.name,
        settings.origin_description(),
        settings.destination_description(),
        settings.zone,
        cortes,
        incidents,
        [(e.at, e.message) for e in events if e.kind == ROLLED_BACK],
        Stats.of(lags),
    )


def _cortes(rows: list[DeliveryRow]) -> list[CorteLine]:
    by_corte: dict[str, list[DeliveryRow]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        by_corte.setdefault(row.corte, []).append(row)
    lines = []
    for corte in sorted(by_corte):
        tries = by_corte[corte]
        good = [r for r in tries if r.outcome in OK]
        word = good[0] if good else tries[-1]
        if word.outcome in OK:
            result, detail = "verificado", "publicado" if word.flip_at else "ya estaba publicado"
        elif word.outcome == "refused":
            result, detail = "rechazado", word.error_message or ""
        elif word.outcome == "interrupted":
            result, detail = "interrumpido", word.error_message or ""
        else:
            result, detail = "falló", word.error_message or ""
        lines.append(
            CorteLine(
                corte=corte,
                corte_time=word.corte_time,
                seen_at=tries[0].started_at,
                arrived_at=word.package_ready_at,
                flip_at=word.flip_at,
                lag_s=word.lag_s,
                result=result,
                detail=detail,
                attempts=sum(r.attempts for r in tries),
            )
        )
    return lines


def _incidents(timeline: list[tuple[datetime, str, str]], rows: list[DeliveryRow]) -> list[Outage]:
    found: list[Outage] = []
    current: Outage | None = None
    for at, kind, message in sorted(timeline, key=lambda t: t[0]):
        if kind in (FAILED, REFUSED):
            if current is None:
                current = Outage(at, None)
                found.append(current)
            current.causes.append(message)
        elif current is not None:
            current.end = at
            current = None
    for incident in found:
        end = incident.end or datetime.now(UTC)
        incident.cortes = sorted(
            {r.corte for r in rows if r.outcome not in OK and incident.start <= r.started_at <= end}
        )
    found += _interruptions(rows)
    return sorted(found, key=lambda i: i.start)


INTERRUPTED_CAUSE = (
    "prepush pull se detuvo a media pasada (el proceso terminó sin cerrarla: lo mataron, se"
    " reinició la máquina o se fue la luz); el destino siguió mostrando el corte anterior"
    " completo y la siguiente ejecución retomó el corte"
)


def _interruptions(rows: list[DeliveryRow]) -> list[Outage]:
    """A pass cut short by the process ending (the next run marks it interrupted): from
    its start to the next pass that flipped the destination, or still open."""
    found = []
    ordered = sorted(rows, key=lambda r: r.id)
    for k, row in enumerate(ordered):
        if row.outcome != "interrupted":
            continue
        later = [r for r in ordered[k + 1 :] if r.outcome in OK]
        end = (later[0].flip_at or later[0].finished_at) if later else None
        found.append(Outage(row.started_at, end, [INTERRUPTED_CAUSE], [row.corte]))
    return found


# --- renderings -------------------------------------------------------------------------


def report_json(report: PullReport) -> dict[str, Any]:
    return {
        "difusor": report.difusor,
        "origin": report.origin,
        "destination": report.destination,
        "timezone": str(report.zone),
        "delay_definition": DELAY_DEFINITION,
        "lag_s": {"p50": report.lag.p50, "p95": report.lag.p95, "max": report.lag.max},
        "cortes": [
            {
                "corte": c.corte,
                "corte_time": c.corte_time.isoformat(),
                "seen_at": c.seen_at.isoformat(),
                "arrived_at": c.arrived_at.isoformat() if c.arrived_at else None,
                "flip_at": c.flip_at.isoformat() if c.flip_at else None,
                "lag_s": c.lag_s,
                "result": c.result,
                "detail": c.detail,
                "attempts": c.attempts,
            }
            for c in report.cortes
        ],
        "incidents": [
            {
                "start": i.start.isoformat(),
                "end": i.end.isoformat() if i.end else None,
                "duration_s": i.duration_s,
                "cause": i.cause,
                "cortes": i.cortes,
            }
            for i in report.incidents
        ],
        "origin_rollbacks": [{"at": at.isoformat(), "message": m} for at, m in report.rollbacks],
    }


def report_csv(report: PullReport, table: PullTable = "cortes") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    zone = report.zone
    if table == "incidencias":
        writer.writerow(["inicio", "fin", "duracion_s", "causa", "cortes"])
        for i in report.incidents:
            writer.writerow(
                [
                    local_time(i.start, zone),
                    local_time(i.end, zone),
                    "" if i.duration_s is None else f"{i.duration_s:.0f}",
                    i.cause,
                    " ".join(i.cortes),
                ]
            )
        return buffer.getvalue()
    writer.writerow(
        [
            "corte",
            "hora_corte",
            "visto_en_origen",
            "llegada_verificada",
            "publicado",
            "desfase_s",
            "verificacion",
            "detalle",
            "intentos",
        ]
    )
    for c in report.cortes:
        writer.writerow(
            [
                c.corte,
                local_time(c.corte_time, zone),
                local_time(c.seen_at, zone),
                local_time(c.arrived_at, zone),
                local_time(c.flip_at, zone),
                "" if c.lag_s is None else f"{c.lag_s:.1f}",
                c.result,
                c.detail,
                c.attempts,
            ]
        )
    return buffer.getvalue()


def report_markdown(report: PullReport) -> str:
    zone = report.zone
    verified = sum(1 for c in report.cortes if c.result == "verificado")
    lines = [
        f"# Reporte del difusor {report.difusor}: cortes del PREP descargados y publicados",
        "",
        f"Origen: `{report.origin}`. Destino: `{report.destination}`. Horas en {zone}."
        f" {DELAY_DEFINITION}",
        "",
        f"{verified} de {len(report.cortes)} cortes verificados y publicados. Desfase p50"
        f" {measured(report.lag.p50)}, p95 {measured(report.lag.p95)}, máximo"
        f" {measured(report.lag.max)}.",
        "",
        "## Cortes",
        "",
        "| Corte | Hora del corte | Visto en el origen | Llegada verificada | Publicado | Desfase"
        " | Verificación |",
        "|---|---|---|---|---|---:|---|",
    ]
    for c in report.cortes:
        result = c.result if c.result == "verificado" else f"{c.result}: {c.detail}"
        lines.append(
            f"| {c.corte} | {local_time(c.corte_time, zone)} | {local_time(c.seen_at, zone)} |"
            f" {local_time(c.arrived_at, zone)} | {local_time(c.flip_at, zone)} |"
            f" {measured(c.lag_s)} |"
            f" {result.replace('|', chr(92) + '|')} |"
        )
    lines += ["", "## Reporte de incidencias", ""]
    if not report.incidents:
        lines.append("No hubo incidencias: cada pasada terminó con el destino al día.")
    else:
        lines += [
            "| Inicio | Fin | Duración | Causa | Cortes afectados |",
            "|---|---|---|---|---|",
        ]
        for i in report.incidents:
            lines.append(
                f"| {local_time(i.start, zone)} | {local_time(i.end, zone)} |"
                f" {duration_text(i.duration_s)} |"
                f" {i.cause.replace('|', chr(92) + '|')} | {', '.join(i.cortes) or '-'} |"
            )
    if report.rollbacks:
        lines += ["", "## El origen volvió a un corte anterior", ""]
        lines += [f"- {local_time(at, zone)}: {message}" for at, message in report.rollbacks]
    return "\n".join(lines) + "\n"

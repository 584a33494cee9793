"""The commands of the night's watch: suspend and resume a difusor, check each one against
the call's requirements, status (what each serves), report (the night's deliveries) and
verify (what the public sees)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from prepush.cli import spanish
from prepush.cli.options import Context, command, difusor_option, json_option, pass_context
from prepush.cli.output import (
    consoles,
    emit_json,
    format_of_output,
    refuse_ignored_report_options,
    refuse_unwritable,
    say,
    write_text,
)
from prepush.exceptions import ConfigError, ExitCode

if TYPE_CHECKING:
    from prepush.ops.report import CsvTable
    from prepush.ops.verify import VerifyReport


@command()
@click.argument("name", metavar="NOMBRE")
@click.option("--motivo", required=True, help="Por qué se suspende (queda en la bitácora).")
@json_option
@pass_context
def suspend(context: Context, name: str, motivo: str, as_json: bool) -> int:
    """Suspende a un difusor a mano: publish lo omitirá hasta 'prepush resume'."""
    from prepush.ledger import Ledger

    human, out = consoles(as_json)
    settings = context.settings()
    difusor = settings.roster.difusor(name)
    with Ledger(settings.ledger_location) as ledger:
        if ledger.active_suspension(difusor.name) is not None:
            raise ConfigError(f"{difusor.name} ya está suspendido.")
        ledger.suspend(difusor.name, motivo, automatic=False)
    if as_json:
        emit_json(out, {"difusor": difusor.name, "suspended": True, "reason": motivo})
    else:
        say(human, f"{difusor.name} suspendido: {motivo}")
    return int(ExitCode.OK)


@command()
@click.argument("name", metavar="NOMBRE")
@json_option
@pass_context
def resume(context: Context, name: str, as_json: bool) -> int:
    """Levanta la suspensión de un difusor; el siguiente publish le envía el corte."""
    from prepush.ledger import Ledger

    human, out = consoles(as_json)
    settings = context.settings()
    difusor = settings.roster.difusor(name)
    resumed = False
    # Without a ledger nothing was ever suspended.
    if (ledger := Ledger.existing(settings.ledger_location)) is not None:
        with ledger:
            resumed = ledger.resume(difusor.name)
    if not resumed:
        raise ConfigError(f"{difusor.name} no está suspendido.")
    if as_json:
        emit_json(out, {"difusor": difusor.name, "suspended": False})
    else:
        say(human, f"{difusor.name} reanudado; recibirá el próximo publish.")
    return int(ExitCode.OK)


# --- check ---------------------------------------------------------------------------------


@command()
@difusor_option
@click.option(
    "--learn-host-keys",
    is_flag=True,
    help="Muestra la huella de la llave de host de los difusores sin llave fijada y la escribe"
    " en el padrón sólo si el operador lo confirma.",
)
@json_option
@pass_context
def check(context: Context, names: tuple[str, ...], learn_host_keys: bool, as_json: bool) -> int:
    """Revisa cada difusor contra los requisitos de la convocatoria, todos a la vez.

    Conexión, llave de host, autenticación, extensiones SFTP (o, para rsync, el módulo y el
    directorio), permiso de escritura, espacio libre, velocidad de subida, reloj y, si hay
    url, el servidor web con un archivo de prueba
    propio (Cache-Control, y que .prepush/ no sea público). Los resultados quedan en la
    bitácora como evidencia.
    """
    from prepush.cli.console import check_report_json, print_check_report
    from prepush.ops.check import run_checks

    human, out = consoles(as_json)
    if learn_host_keys:
        _learn_host_keys(context, names, human)
    settings = context.settings()

    def progress(difusor: str, text: str) -> None:
        say(human, f"{difusor}: {text}")

    report = run_checks(settings, settings.roster.select(names), progress=progress)
    if as_json:
        emit_json(out, check_report_json(report))
    else:
        print_check_report(report, human)
    return int(report.exit_code)


def _learn_host_keys(context: Context, names: tuple[str, ...], console: Console) -> None:
    from prepush.ops.check import fetch_host_key
    from prepush.settings import pin_host_key

    settings = context.settings(learn_host_keys=True)
    timeout = settings.roster.publish.connect_timeout_seconds
    for difusor in settings.roster.select(names):
        if not difusor.over_ssh or difusor.host_key or difusor.known_hosts:
            continue  # pinned already, or no SSH (an rsync daemon, a bucket): no host key
        key = asyncio.run(fetch_host_key(difusor, timeout))
        if key is None:
            say(console, f"{difusor.name}: no se pudo obtener su llave de host.")
            continue
        line = key.export_public_key("openssh").decode().strip()
        say(
            console,
            f"{difusor.name} ({difusor.host}:{difusor.port}) presenta la llave"
            f" {key.get_fingerprint()}.\nConfírmela con el difusor por un canal seguro"
            " (teléfono, oficio) antes de aceptarla.",
        )
        if spanish.confirm("¿Fijar esta llave en el padrón?", default=False):
            pin_host_key(settings.roster_path, difusor.name, line)
            say(console, f"Llave fijada para {difusor.name}.")


# --- status and report ---------------------------------------------------------------------


@command()
@click.option("--watch", is_flag=True, help="Vista en vivo que se actualiza cada pocos segundos.")
@click.option(
    "--interval",
    type=spanish.number(click.FloatRange, min=0.5, max=3600),
    default=5.0,
    show_default=True,
    help="Segundos entre vistas (--watch).",
)
@json_option
@pass_context
def status(context: Context, watch: bool, interval: float, as_json: bool) -> int:
    """Qué sirve cada difusor: corte, desde cuándo, desfase, atraso, fallas, suspensión.

    Lee sólo la bitácora. Tras una reversión, el corte revertido; una publicación sin nada
    nuevo no cambia ninguna cifra.
    """
    from rich.live import Live

    from prepush.cli.console import print_status, status_view
    from prepush.ops.status import current_status

    human, out = consoles(as_json)
    settings = context.settings()
    zone = settings.roster.election.zone
    if as_json:
        while True:
            emit_json(out, current_status(settings).as_json())
            if not watch:
                return int(ExitCode.OK)
            time.sleep(interval)
    if not watch or not human.is_terminal:
        while True:
            print_status(current_status(settings), zone, human)
            if not watch:
                return int(ExitCode.OK)
            time.sleep(interval)
    with Live(status_view(current_status(settings), zone, human.width), console=human) as live:
        while True:
            time.sleep(interval)
            live.update(status_view(current_status(settings), zone, human.width))


REPORT_FORMATS = ("table", "csv", "json", "md")
CHART_SUFFIXES = (".svg", ".html")


@command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="table (por omisión), csv, json o md.",
)
@click.option(
    "--tabla",
    "csv_table",
    type=click.Choice(["difusores", "incidencias", "fidelidad"]),
    default=None,
    help="Con --format csv, qué tabla: difusores (por omisión), incidencias o fidelidad. Con -o"
    " y sin --tabla se escriben las tres, en ARCHIVO, ARCHIVO-incidencias y ARCHIVO-fidelidad.",
)
@click.option("--desde", "since", help="Desde esta hora local (AAAA-MM-DDTHH:MM).")
@click.option("--hasta", "until", help="Hasta esta hora local (AAAA-MM-DDTHH:MM).")
@difusor_option
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Escribe la gráfica de latencia por difusor y corte (.svg o .html autocontenido).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Escribe el reporte en este archivo.",
)
@json_option
@pass_context
def report(
    context: Context,
    fmt: str | None,
    csv_table: str | None,
    since: str | None,
    until: str | None,
    names: tuple[str, ...],
    chart: Path | None,
    output: Path | None,
    as_json: bool,
) -> int:
    """Reporte de la noche: entregas, latencias y el reporte de incidencias por difusor.

    --format md produce un documento en español listo para el informe técnico. --json imprime
    el reporte en JSON (con otro --format, éste va a -o y el JSON dice qué se escribió).
    """
    from prepush.cli.console import print_report
    from prepush.ops.report import ReportRequest, make_report, report_json

    fmt = fmt or _format_for(output, as_json)
    if fmt == "table" and output is not None:
        raise ConfigError("--format table es para la terminal; con -o use md, csv o json.")
    if chart is not None and chart.suffix.lower() not in CHART_SUFFIXES:
        raise ConfigError(
            f"La gráfica se escribe en .svg o en .html autocontenido; {chart} no tiene ninguna"
            " de esas extensiones. Para una imagen, abra el .svg o el .html en un navegador."
        )
    refuse_ignored_report_options(fmt, csv_table, output, as_json)
    refuse_unwritable((chart, "la gráfica"), (output, "el reporte"))
    human, out = consoles(as_json)
    settings = context.settings()
    zone = settings.roster.election.zone
    request = ReportRequest(
        since=_local_time(since, zone, "--desde"),
        until=_local_time(until, zone, "--hasta"),
        # A machine that only builds has no difusores, and its report is still the night's.
        difusores=tuple(d.name for d in settings.roster.select(names))
        if settings.roster.difusores or names
        else (),
    )
    result = make_report(settings, request)
    # Where files went is said on stderr: stdout may be the report itself, or a JSON document.
    notes = Console(stderr=True, highlight=False, soft_wrap=True)
    written: list[str] = []
    if chart is not None:
        _write_chart(result, chart)
        written.append(str(chart))
        say(notes, f"Gráfica de latencia escrita en {chart}")
    if fmt == "table" and not as_json:
        print_report(result, human)
        return int(ExitCode.OK)
    for path, text in _report_documents(result, fmt, csv_table, output):
        if path is None:
            if not as_json:
                human.out(text, end="", highlight=False)
            continue
        write_text(path, text, "el reporte")
        written.append(str(path))
        say(notes, f"Reporte escrito en {path}")
    if as_json:
        emit_json(out, {**report_json(result), "written": written})
    return int(ExitCode.OK)


def _format_for(output: Path | None, as_json: bool) -> str:
    """Without --format: JSON with --json, else what -o's extension says, else the table."""
    if as_json:
        return "json"
    if output is None:
        return "table"
    return format_of_output(output)


def _write_chart(result: Any, chart: Path) -> None:
    from prepush.ops.report import latency_html, latency_svg

    text = latency_html(result) if chart.suffix.lower() == ".html" else latency_svg(result)
    write_text(chart, text, "la gráfica")


def _report_documents(
    result: Any, fmt: str, csv_table: str | None, output: Path | None
) -> list[tuple[Path | None, str]]:
    """(where, text) of each document: one table per CSV, one file per table with -o."""
    from prepush.ops.report import report_csv, report_json, report_markdown

    if fmt == "json":
        return [(output, json.dumps(report_json(result), ensure_ascii=False, indent=2) + "\n")]
    if fmt == "md":
        return [(output, report_markdown(result))]
    if fmt == "table":
        return []
    if csv_table is not None or output is None:
        table: CsvTable = "difusores"
        if csv_table in ("incidencias", "fidelidad"):
            table = "incidencias" if csv_table == "incidencias" else "fidelidad"
        return [(output, report_csv(result, table))]
    return [
        (output, report_csv(result, "difusores")),
        *(
            (output.with_name(f"{output.stem}-{name}{output.suffix}"), report_csv(result, name))
            for name in ("incidencias", "fidelidad")
        ),
    ]


def _local_time(value: str | None, zone: ZoneInfo, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} no es una fecha y hora; use AAAA-MM-DDTHH:MM (hora local)."
        ) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


# --- verify --------------------------------------------------------------------------------


@command("verify")
@difusor_option
@click.option(
    "--watch",
    "watch_interval",
    type=spanish.number(click.FloatRange, min=0.5, max=3600),
    default=None,
    metavar="[SEGUNDOS]",
    is_flag=False,
    flag_value=15.0,
    help="Verifica una y otra vez, cada SEGUNDOS (15 por omisión), y registra cuándo el"
    " público ve por primera vez cada corte. Se detiene con Ctrl-C.",
)
@json_option
@pass_context
def verify_command(
    context: Context, names: tuple[str, ...], watch_interval: float | None, as_json: bool
) -> int:
    """Comprueba lo que el público ve en cada difusor con url, contra el manifiesto.

    Corte anunciado y atraso visible, cada archivo del corte por sha256, index.html byte por
    byte y la cabecera Cache-Control de json/main.json. Queda en la bitácora.
    """
    from prepush.cli.console import print_verify_report
    from prepush.ops.verify import verify as verify_public
    from prepush.ops.verify import watch as watch_public

    human, out = consoles(as_json)
    settings = context.settings()
    difusores = settings.roster.select(names)
    if not any(d.url for d in difusores):
        raise ConfigError("Ningún difusor seleccionado tiene url en el padrón; nada que verificar.")

    def show(report: VerifyReport) -> None:
        if as_json:
            emit_json(
                out,
                {
                    "run_id": report.run_id,
                    "results": [r.as_json() for r in report.results],
                    "without_url": report.without_url,
                },
            )
        else:
            print_verify_report(report, human)

    if watch_interval is not None:
        watch_public(settings, difusores, watch_interval, show)
    report = verify_public(settings, difusores)
    show(report)
    return int(report.exit_code)


COMMANDS = (suspend, resume, check, status, report, verify_command)

"""pull, the difusor's side: each corte fetched from the institute's origin, verified and
published on the difusor's own site; with --report, the difusor's report from its ledger."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from prepush.cli.logs import log_stamp
from prepush.cli.options import Context, command, json_option, pass_context
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

PULL_FORMATS = ("md", "csv", "json")


@command("pull")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuración del difusor (por omisión DIR/pull.yaml; ver docs/difusores.md).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Sigue al origen toda la noche: una pasada cada interval_seconds de la configuración,"
    " con las conexiones abiertas. Se detiene con Ctrl-C.",
)
@click.option(
    "--report",
    "report",
    is_flag=True,
    help="No descarga nada: escribe el reporte del difusor (cortes, desfase, incidencias) desde"
    " su bitácora, para su informe técnico.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(PULL_FORMATS),
    default=None,
    help="Con --report: md, csv o json. Por omisión, json con --json; si no, el que diga la"
    " extensión de -o (.md, .csv, .json; otra pide --format); sin -o, md.",
)
@click.option(
    "--tabla",
    "csv_table",
    type=click.Choice(["cortes", "incidencias"]),
    default=None,
    help="Con --report --format csv: cortes (por omisión) o incidencias.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Con --report: escribe el reporte en este archivo (con --json, el documento JSON dice"
    " qué se escribió).",
)
@json_option
@pass_context
def pull_command(
    context: Context,
    config_path: Path | None,
    watch: bool,
    report: bool,
    fmt: str | None,
    csv_table: str | None,
    output: Path | None,
    as_json: bool,
) -> int:
    """Descarga cada corte del origen del instituto, lo verifica y lo publica en su sitio.

    Para el difusor: lee json/main.json del origen (HTTPS o S3), comprueba la firma Ed25519 del
    manifiesto con la llave del instituto fijada en la configuración, descarga sólo lo que
    falta (tamaño y sha256 de cada archivo al llegar) y publica en su directorio o bucket con
    el mismo protocolo del instituto: json/main.json al final. Lo que no verifica no se
    publica. Código de salida: 0 al día, 2 corte rechazado o configuración inválida, 3 falla.
    """
    from prepush.pull.config import PULL_FILE, load_pull_settings

    path = config_path or context.workdir / PULL_FILE
    if not path.is_absolute():
        path = context.workdir / path
    if not report and (fmt or csv_table or output):
        raise ConfigError("--format, --tabla y -o son para --report.")
    if report and watch:
        raise ConfigError("--report lee la bitácora; no va con --watch.")
    if report:
        return _pull_report(path, fmt, csv_table, output, as_json)
    settings = load_pull_settings(path)
    human, out = consoles(as_json)
    if watch:
        from prepush.pull.run import watch as watch_origin

        watch_origin(settings, functools.partial(_show_pull, human, out, as_json, quiet=True))
        return int(ExitCode.OK)
    from prepush.pull.run import pull

    result = pull(settings)
    _show_pull(human, out, as_json, result, quiet=False)
    if result.outcome == "refused":
        return int(ExitCode.USAGE)
    return int(ExitCode.OK if result.ok else ExitCode.TOTAL_FAILURE)


def _show_pull(human: Console, out: Console, as_json: bool, result: Any, *, quiet: bool) -> None:
    if as_json:
        emit_json(out, result.as_json())
        return
    if quiet and (result.outcome == "unchanged" or result.repeated):
        return
    text, style = _pull_line(result)
    # Each line with its time, as the log's: --watch prints one per corte all night.
    say(human, f"{log_stamp(datetime.now())} {text}", style)


def _pull_line(result: Any) -> tuple[str, str]:
    """What one pass did, in a sentence, and its style."""
    from prepush.units import human_duration

    if result.outcome == "delivered":
        back = ""
        if result.went_back_from:
            back = (
                f" el origen volvió del corte {result.went_back_from} al {result.corte} (una"
                " reversión del instituto; si no lo fue, avísele);"
            )
        lag = (
            f"; desfase {human_duration(result.lag_s)} desde la hora del corte"
            if result.lag_s
            else ""
        )
        cached = result.files_linked + result.files_cached
        return (
            f"Corte {result.corte} publicado:{back} {result.files_downloaded} archivos"
            f" descargados ({result.bytes_downloaded / 1e6:.2f} MB), {cached} reutilizados del"
            f" caché{lag}.",
            "yellow" if result.went_back_from else "green",
        )
    if result.outcome in ("up_to_date", "unchanged"):
        return f"Al día: el destino muestra el corte {result.corte}.", ""
    if result.outcome == "nothing":
        return f"Nada que descargar: {result.message}.", ""
    if result.outcome == "refused":
        return f"Rechazado: {result.message}", "bold red"
    return f"Falló: {result.message}", "red"


def _pull_report_format(fmt: str | None, output: Path | None, as_json: bool) -> str:
    """As report's: --format; else JSON with --json; else -o's extension; else Markdown."""
    if fmt is not None:
        return fmt
    if as_json:
        return "json"
    return "md" if output is None else format_of_output(output)


def _pull_report(
    path: Path, fmt: str | None, csv_table: str | None, output: Path | None, as_json: bool
) -> int:
    """As report's: options checked before anything is read; the document to -o or stdout;
    with --json, stdout is one JSON document that says what was written."""
    from prepush.pull.config import load_pull_settings
    from prepush.pull.report import make_pull_report, report_json

    fmt = _pull_report_format(fmt, output, as_json)
    refuse_ignored_report_options(fmt, csv_table, output, as_json)
    refuse_unwritable((output, "el reporte"))
    result = make_pull_report(load_pull_settings(path, fetching=False))
    text = _pull_report_text(result, fmt, csv_table)
    _, out = consoles(as_json)
    written: list[str] = []
    if output is not None:
        write_text(output, text, "el reporte")
        written.append(str(output))
        say(Console(stderr=True, highlight=False, soft_wrap=True), f"Reporte escrito en {output}")
    elif not as_json:
        out.out(text, end="", highlight=False)
    if as_json:
        emit_json(out, {**report_json(result), "written": written})
    return int(ExitCode.OK)


def _pull_report_text(result: Any, fmt: str, csv_table: str | None) -> str:
    from prepush.pull.report import report_csv, report_json, report_markdown

    if fmt == "json":
        return json.dumps(report_json(result), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return report_csv(result, "incidencias" if csv_table == "incidencias" else "cortes")
    return report_markdown(result)


COMMANDS = (pull_command,)

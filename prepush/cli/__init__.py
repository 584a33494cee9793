"""The command line: parse, build settings, call the typed core. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from prepush import __version__
from prepush.cli import corte, ops, publish, sim
from prepush.cli.logs import log_stamp, setup_logging
from prepush.cli.options import (
    Command,
    Context,
    json_option,
    pass_context,
)
from prepush.cli.output import (
    consoles,
    emit_json,
    format_of_output,
    refuse_ignored_report_options,
    refuse_unwritable,
    say,
    write_text,
)
from prepush.exceptions import ConfigError, ExitCode, describe_os_error


class _Group(click.Group):
    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[OPCIONES]")
        kwargs.setdefault("subcommand_metavar", "ORDEN [ARGUMENTOS]...")
        super().__init__(*args, **kwargs)


@click.group(
    cls=_Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-C",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Trabaja en DIR (padrón, paquetes y bitácora están ahí), como git -C o make -C: las"
    " rutas relativas de la línea de órdenes (--roster, -o, ENTRADAS...) se toman desde DIR.",
)
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Padrón de difusores (por omisión DIR/difusores.yaml; una ruta relativa, desde DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Muestra detalles de diagnóstico.")
@click.option(
    "--version",
    "show_version",
    is_flag=True,
    help="Muestra la versión y termina; con -v, también el candado de dependencias (su sha256)"
    " y si lo instalado coincide con él.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    workdir: Path,
    roster_path: Path | None,
    verbose: bool,
    show_version: bool,
) -> None:
    """prepush publica cada corte del PREP en los servidores de los difusores oficiales.

    Construye el paquete del corte, lo envía (SFTP, rsync o S3) a todos los difusores a la vez
    y cambia json/main.json al final y de forma atómica. Cada entrega queda en la bitácora.
    """
    setup_logging(verbose)
    if show_version:
        _print_version(verbose)
        ctx.exit(int(ExitCode.OK))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help(), err=True)
        ctx.exit(int(ExitCode.USAGE))
    workdir = _enter(workdir.absolute(), creates=ctx.invoked_subcommand in CREATE_WORKDIR)
    roster = None if roster_path is None else workdir / roster_path
    ctx.obj = Context(workdir=workdir, roster_path=roster)


# The commands that make their working directory when it does not exist yet.
CREATE_WORKDIR = ("init", "simulate")


def _enter(workdir: Path, *, creates: bool) -> Path:
    """Change to DIR as git -C does, so every relative path of the command line is DIR's
    (checked by click as it parses the command's arguments, after this). A DIR that does
    not exist is left to the command: its own checks come first, then the roster it does
    not find there, named with its full path."""
    if creates:
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"No se pudo crear el directorio de trabajo {workdir}: {describe_os_error(exc)}."
            ) from None
    if not workdir.exists():
        return workdir
    try:
        os.chdir(workdir)
    except OSError as exc:
        raise ConfigError(
            f"No se pudo entrar al directorio de trabajo {workdir} (-C): {describe_os_error(exc)}."
        ) from None
    return workdir.resolve()


def _print_version(verbose: bool) -> None:
    console = Console(highlight=False, soft_wrap=True)
    say(console, f"prepush, versión {__version__}")
    if not verbose:
        return
    import platform

    from prepush.installation import RUNTIME_LOCK, check_installation

    report = check_installation()
    say(
        console,
        f"Python {platform.python_version()} ({platform.python_implementation()})"
        f" en {platform.system()} {platform.machine()}",
    )
    say(
        console,
        f"Candado de dependencias: prepush/lock/{RUNTIME_LOCK}, sha256 {report.lock_sha256}",
    )
    if report.matches:
        say(console, f"Instalado conforme al candado: sus {report.checked} paquetes en su versión.")
        return
    say(console, "Lo instalado NO coincide con el candado:", style="bold red")
    for difference in report.differences:
        installed = difference.installed or "no instalado"
        say(console, f"  {difference.name}: {installed} (candado: {difference.locked})")


# --- pull (the difusor's side) ---------------------------------------------------------------

PULL_FORMATS = ("md", "csv", "json")


@cli.command("pull")
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
        from prepush.pull.puller import watch as watch_origin

        watch_origin(settings, functools.partial(_show_pull, human, out, as_json, quiet=True))
        return int(ExitCode.OK)
    from prepush.pull.puller import pull

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


for command in (*corte.COMMANDS, *publish.COMMANDS, *ops.COMMANDS, *sim.COMMANDS):
    cli.add_command(command)

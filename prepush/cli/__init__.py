"""The command line: the group, its global options, and the commands of each module (one per
command group, each parsing, building settings and calling the typed core). Nothing else
lives here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from prepush import __version__
from prepush.cli import corte, ops, publish, pull, sim
from prepush.cli.logs import setup_logging
from prepush.cli.options import Command, Context
from prepush.cli.output import say
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


for command in (
    *corte.COMMANDS,
    *publish.COMMANDS,
    *ops.COMMANDS,
    *sim.COMMANDS,
    *pull.COMMANDS,
):
    cli.add_command(command)

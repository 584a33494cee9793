"""The command line: parse, build settings, call the typed core. Nothing else lives here."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from prepush import __version__, cli_spanish
from prepush.exceptions import ConfigError, ExitCode, PackageError, describe_os_error

if TYPE_CHECKING:
    from prepush.corte.builder import BuildResult
    from prepush.ops.report import CsvTable
    from prepush.ops.verify import VerifyReport
    from prepush.publish.publisher import (
        ConnectionPool,
        PublishReport,
        PublishRequest,
    )
    from prepush.settings import Settings

# Before any option is declared: click names some types when they are created.
cli_spanish.install()


@dataclass
class Context:
    workdir: Path
    roster_path: Path | None

    def settings(self, *, learn_host_keys: bool = False) -> Settings:
        """The validated roster (its structure; each difusor's credentials are checked when a
        command is about to connect to it)."""
        from prepush.settings import load_settings

        return load_settings(self.workdir, self.roster_path, learn_host_keys=learn_host_keys)


pass_context = click.make_pass_decorator(Context)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Imprime un único documento JSON en la salida."
)


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """(human output, JSON output). With --json, stdout carries only the JSON document."""
    stdout = Console(highlight=False, soft_wrap=True)
    human = Console(stderr=True, highlight=False, soft_wrap=True) if as_json else stdout
    return human, stdout


def _emit_json(console: Console, document: Any) -> None:
    """One JSON document (a --watch loop prints one per corte or round, one after another)."""
    # Written as is: rich would lay out every line of a document nobody reads on a terminal
    # (30 ms for a 10-difusor publish report, on the path --watch is timed by).
    console.file.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    console.file.flush()


def _say(console: Console, text: str, style: str = "") -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True, style=style or None)


def _no_directory(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"No se pudo escribir {what} en {path}: el directorio {path.parent} no existe."
        " Créelo o indique otra ruta."
    )


def _refuse_unwritable(*outputs: tuple[Path | None, str]) -> None:
    """An output whose directory does not exist is refused before anything is read: the
    operator's typo is the answer, not what reading would have said first."""
    for path, what in outputs:
        if path is not None and not path.parent.is_dir():
            raise _no_directory(path, what)


def _write_text(path: Path, text: str, what: str) -> None:
    """Write an output file the operator asked for, or say in Spanish why not."""
    try:
        path.write_text(text, encoding="utf-8")
    except FileNotFoundError:
        raise _no_directory(path, what) from None
    except OSError as exc:
        raise ConfigError(
            f"No se pudo escribir {what} en {path}: {describe_os_error(exc)}."
        ) from None


def _corte_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A corte id names a real local date and time: AAAAMMDD_HHMM."""
    if value is None:
        return None
    try:
        if len(value) != len("AAAAMMDD_HHMM") or not value.replace("_", "").isdigit():
            raise ValueError(value)
        datetime.strptime(value, "%Y%m%d_%H%M")
    except ValueError:
        raise click.BadParameter(
            f"{value!r} no es un corte: use AAAAMMDD_HHMM con una fecha y hora que existan"
            " (hora local de la elección), p. ej. 20210607_2000.",
            ctx,
            param,
        ) from None
    return value


LEVELS = {
    logging.DEBUG: "DEPURACIÓN",
    logging.INFO: "INFO",
    logging.WARNING: "AVISO",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRÍTICO",
}


def log_stamp(moment: datetime) -> str:
    """This machine's time, labelled with its zone: a log line is read beside others."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


class _PlainFormatter(logging.Formatter):
    """One line per record, as the publish view prints its own: for cron mail and journald."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = log_stamp(datetime.fromtimestamp(record.created))
        message = record.getMessage().replace("\n", " ")
        return f"{stamp} {record.levelname} {message}"


# Libraries log every request or connection step at INFO: only with -v.
LIBRARY_LOGGERS = ("httpx", "httpcore", "asyncssh", "tenacity", "paramiko")


def _setup_logging(verbose: bool) -> None:
    console = Console(stderr=True)
    for level, name in LEVELS.items():
        logging.addLevelName(level, name)  # the operator's language, on every handler
    handler: logging.Handler
    if console.is_terminal:
        from rich.highlighter import NullHighlighter
        from rich.logging import RichHandler
        from rich.text import Text

        handler = RichHandler(
            console=console,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            highlighter=NullHighlighter(),
            log_time_format=lambda moment: Text(log_stamp(moment)),
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[handler],
        format="%(message)s",
        force=True,
    )
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # asyncio logs every write to a socket the peer already closed; the retry says it better.
    logging.getLogger("asyncio").setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)
    # A library's warnings (a deprecation inside asyncssh, say) are for whoever maintains
    # prepush, not for the operator: they go to the log, shown only with -v.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)


class _Command(click.Command):
    """A command whose usage line speaks Spanish too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[OPCIONES]")
        super().__init__(*args, **kwargs)


class _Group(click.Group):
    command_class = _Command

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
    _setup_logging(verbose)
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
    _say(console, f"prepush, versión {__version__}")
    if not verbose:
        return
    import platform

    from prepush.installation import RUNTIME_LOCK, check_installation

    report = check_installation()
    _say(
        console,
        f"Python {platform.python_version()} ({platform.python_implementation()})"
        f" en {platform.system()} {platform.machine()}",
    )
    _say(
        console,
        f"Candado de dependencias: prepush/lock/{RUNTIME_LOCK}, sha256 {report.lock_sha256}",
    )
    if report.matches:
        _say(
            console, f"Instalado conforme al candado: sus {report.checked} paquetes en su versión."
        )
        return
    _say(console, "Lo instalado NO coincide con el candado:", style="bold red")
    for difference in report.differences:
        installed = difference.installed or "no instalado"
        _say(console, f"  {difference.name}: {installed} (candado: {difference.locked})")


# --- init and keys --------------------------------------------------------------------


@cli.command()
@json_option
@pass_context
def init(context: Context, as_json: bool) -> int:
    """Crea un padrón de ejemplo comentado (difusores.yaml), la llave de firma que nombra y
    el directorio paquetes/."""
    from prepush.settings import ROSTER_FILE, create_roster

    human, out = _consoles(as_json)
    target = context.roster_path or context.workdir / ROSTER_FILE
    try:
        created = create_roster(target)
    except OSError as exc:
        raise ConfigError(
            f"No se pudo crear el padrón en {target.parent}: {describe_os_error(exc)}."
        ) from None
    if as_json:
        _emit_json(
            out,
            {
                "roster": str(target),
                "packages": str(created.packages_dir),
                "signing_key": str(created.signing_key),
                "signing_key_created": created.signing_key_created,
            },
        )
        return int(ExitCode.OK)
    _say(human, f"Se creó {target} y {created.packages_dir}/.")
    if created.signing_key_created:
        _say(human, f"Llave de firma de paquetes: {created.signing_key} (0600; no la comparta)")
    else:
        _say(human, f"Se conserva la llave de firma que ya existía: {created.signing_key}")
    _say(
        human,
        "Siguientes pasos: 'prepush keygen --out claves/prepush.pem' (acceso SFTP de los"
        " difusores), edite el padrón y corra 'prepush check'.",
    )
    return int(ExitCode.OK)


@cli.command()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("claves/prepush.pem"),
    show_default=True,
    help="Archivo de la llave privada; la pública queda en el mismo nombre con .pub.",
)
@click.option(
    "--type",
    "key_type",
    type=click.Choice(["ed25519", "rsa"]),
    default="ed25519",
    show_default=True,
)
@click.option(
    "--uso",
    "purpose",
    type=click.Choice(["acceso", "firma"]),
    default=None,
    help="acceso: la llave SFTP que se entrega a los difusores; firma: la que firma los"
    " paquetes. Por omisión, firma si el archivo es election.signing_key del padrón o se llama"
    " firma.pem; acceso si no.",
)
@click.option("--comment", default="prepush", show_default=True, help="Comentario de la llave.")
@json_option
@pass_context
def keygen(
    context: Context,
    out: Path,
    key_type: str,
    purpose: str | None,
    comment: str,
    as_json: bool,
) -> int:
    """Crea un par de llaves: la de acceso SFTP a los difusores o la de firma de paquetes.

    La privada (formato OpenSSH) se escribe con permisos 0600 y nunca se sobrescribe. De la
    de acceso, la línea pública va en authorized_keys de cada difusor (docs/difusores.md); la
    de firma (ed25519) se indica en election.signing_key.
    """
    from prepush.keys import generate_key_pair

    human, out_console = _consoles(as_json)
    path = out if out.is_absolute() else context.workdir / out
    purpose = purpose or _key_purpose(context, path)
    if purpose == "firma" and key_type != "ed25519":
        raise ConfigError("La llave de firma de paquetes es ed25519: quite --type rsa.")
    try:
        pair = generate_key_pair(path, "rsa" if key_type == "rsa" else "ed25519", comment)
    except OSError as exc:
        raise ConfigError(
            f"No se pudo escribir la llave en {path}: {describe_os_error(exc)}."
        ) from None
    if as_json:
        _emit_json(
            out_console,
            {
                "purpose": purpose,
                "private_key": str(pair.private_path),
                "public_key": str(pair.public_path),
                "public_line": pair.public_line,
                "fingerprint": pair.fingerprint,
            },
        )
        return int(ExitCode.OK)
    _say(human, f"Llave privada: {pair.private_path} (0600; no la comparta)")
    _say(human, f"Llave pública: {pair.public_path}")
    _say(human, f"Huella: {pair.fingerprint}")
    if purpose == "firma":
        _say(
            human,
            "Es la llave de firma de paquetes: indíquela en election.signing_key del padrón."
            f" Quien verifique paquetes usa la pública: prepush verify-package --public-key"
            f" {pair.public_path}",
        )
    else:
        _say(
            human,
            "Línea para authorized_keys de cada difusor; anteponga"
            ' restrict,from="IP-DEL-INSTITUTO" (ver docs/difusores.md):',
        )
        _say(human, pair.public_line)
    return int(ExitCode.OK)


def _key_purpose(context: Context, path: Path) -> str:
    signing = _roster_signing_key(context)
    if signing is not None and signing.resolve() == path.resolve():
        return "firma"
    return "firma" if path.stem == "firma" else "acceso"


# --- build and verify-package ------------------------------------------------------------


@cli.command()
@click.argument(
    "inputs", nargs=-1, metavar="ENTRADAS...", type=click.Path(exists=True, path_type=Path)
)
@click.option(
    "--site",
    "site_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Empaqueta un sitio ya construido por el proveedor del PREP (rutas fijas).",
)
@click.option(
    "--corte",
    callback=_corte_value,
    help="Identificador AAAAMMDD_HHMM (obligatorio con --site).",
)
@click.option("--simulacro", is_flag=True, help="Paquete de simulacro: lleva la leyenda SIMULACRO.")
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Construye aunque el preámbulo y las filas del CSV no cuadren, tras revisarlo a mano;"
    " queda en la bitácora y en el reporte.",
)
@click.option(
    "--allow-offset-mismatch",
    is_flag=True,
    help="Construye aunque el desfase UTC que imprime el PREP no sea el de election.timezone a"
    " esa hora, tras comprobar que el impreso es el correcto: el corte se nombra y se muestra"
    " como lo imprimió el PREP.",
)
@click.option(
    "--allow-fewer-elections",
    is_flag=True,
    help="Construye un corte oficial con menos elecciones que el corte anterior (un patrón que"
    " no tomó todos los archivos se rechaza sin esto); queda en la bitácora y en el reporte.",
)
@click.option(
    "--replace-published",
    is_flag=True,
    help="Reemplaza el paquete de un corte que ya recibió algún difusor por esta construcción"
    " con otro contenido; queda en la bitácora. (Uno aún sin publicar se reemplaza sin esto.)",
)
@json_option
@pass_context
def build(
    context: Context,
    inputs: tuple[Path, ...],
    site_dir: Path | None,
    corte: str | None,
    simulacro: bool,
    allow_mismatch: bool,
    allow_offset_mismatch: bool,
    allow_fewer_elections: bool,
    replace_published: bool,
    as_json: bool,
) -> int:
    """Construye el paquete de un corte a partir de los CSV del PREP.

    ENTRADAS son archivos CSV, directorios o el ZIP (con ZIP anidados) que entrega el sistema
    del PREP. El paquete queda en paquetes/AAAAMMDD_HHMM/ y se firma con election.signing_key.
    Los archivos se reconocen por su contenido (resultados, candidaturas, LEEME), no por su
    nombre. El sitio muestra las cifras del preámbulo tal como las imprimió el PREP y el corte
    con la fecha, hora y desfase UTC impresos; las filas comprueban las cifras. Si no cuadran
    (un archivo cortado o incompleto), un corte oficial no se construye (código 2).
    """
    from prepush.corte.command import BuildRequest, run_build

    human, out = _consoles(as_json)
    request = BuildRequest(
        settings=context.settings(),
        inputs=inputs,
        site_dir=site_dir,
        corte=corte,
        kind="simulacro" if simulacro else "oficial",
        allow_mismatch=allow_mismatch,
        allow_offset_mismatch=allow_offset_mismatch,
        allow_fewer_elections=allow_fewer_elections,
        replace_published=replace_published,
    )
    _report_build(run_build(request), human, out, as_json)
    return int(ExitCode.OK)


def _report_build(result: BuildResult, human: Console, out: Console, as_json: bool) -> None:
    manifest = result.package.manifest
    for forced in result.forced:
        _say(human, f"Construido con --allow-mismatch: {forced}", "bold red")
    for warning in result.warnings:
        _say(human, f"Aviso: {warning}", "yellow")
    for explained in result.explained:
        _say(human, f"Diferencia explicada: {explained}", "dim")
    if result.fewer_elections:
        _say(human, f"Construido con --allow-fewer-elections: {result.fewer_elections}", "bold red")
    for problem in result.repaired:
        _say(human, f"Reparado: {problem}", "yellow")
    if as_json:
        _emit_json(
            out,
            {
                "corte": manifest.corte,
                "path": str(result.package.path),
                "kind": manifest.kind,
                "files": len(manifest.files),
                "bytes": manifest.total_bytes,
                "already_built": result.already_built,
                "warnings": result.warnings,
                "explained": result.explained,
                "forced": result.forced,
                "fewer_elections": result.fewer_elections,
                "replaced": result.replaced,
                "repaired": result.repaired,
            },
        )
        return
    verb = "construido"
    if result.already_built:
        verb = "ya existía idéntico e íntegro"
    elif result.repaired:
        verb = f"reparado ({len(result.repaired)} diferencia(s) con su manifiesto, reescritas)"
    elif result.replaced:
        verb = f"construido y reemplazó al paquete anterior del corte ({result.replaced})"
    _say(
        human,
        f"Corte {manifest.corte} ({manifest.kind}) {verb} en {result.package.path}:"
        f" {len(manifest.files)} archivos, {manifest.total_bytes / 1e6:.1f} MB.",
    )


@cli.command("verify-package")
@click.argument(
    "directory",
    metavar="DIRECTORIO",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Llave pública de confianza (por omisión, la de election.signing_key del padrón).",
)
@json_option
@pass_context
def verify_package(
    context: Context, directory: Path, public_key: Path | None, as_json: bool
) -> int:
    """Comprueba un paquete contra su manifiesto y su firma Ed25519."""
    from prepush.package import Package, load_public_key

    human, out = _consoles(as_json)
    trusted_path = public_key or _roster_signing_key(context)
    if trusted_path is None:
        raise ConfigError(
            "No hay llave de confianza: indique --public-key o election.signing_key en el padrón."
        )
    package = Package.open(directory)
    problems = package.verify(load_public_key(trusted_path))
    if as_json:
        _emit_json(out, {"corte": package.corte, "ok": not problems, "problems": problems})
        # The document says it all: exit 2 without a second (error) document.
        return int(ExitCode.USAGE if problems else ExitCode.OK)
    if not problems:
        _say(
            human,
            f"Paquete {package.corte} íntegro: firma y {len(package.manifest.files)}"
            " archivos verificados.",
        )
        return int(ExitCode.OK)
    for problem in problems:
        _say(human, f"✗ {problem}", "red")
    raise PackageError(
        f"El paquete {directory} no pasa la verificación ({len(problems)} problema(s))."
        " No lo publique; vuelva a construirlo desde los CSV del PREP."
    )


def _roster_signing_key(context: Context) -> Path | None:
    try:
        return context.settings().signing_key_path
    except ConfigError:
        return None


# --- publish -------------------------------------------------------------------------------


difusor_option = click.option(
    "--difusor", "names", multiple=True, help="Sólo este difusor (repetible)."
)


@cli.command("publish")
@click.argument("corte", required=False, callback=_corte_value)
@difusor_option
@click.option("--dry-run", is_flag=True, help="Muestra el plan por difusor sin escribir nada.")
@click.option(
    "--override-embargo",
    metavar="MOTIVO",
    help="Publica un corte oficial fuera de la ventana oficial; el motivo queda en la bitácora.",
)
@click.option(
    "--watch",
    "watch_interval",
    type=cli_spanish.number(click.FloatRange, min=0.01, max=3600),
    default=None,
    metavar="[SEGUNDOS]",
    is_flag=False,
    flag_value=1.0,
    help="Espera paquetes nuevos en paquetes/ y publica cada uno al aparecer, revisando cada"
    " SEGUNDOS (1 por omisión), con las conexiones abiertas entre cortes. Se detiene con"
    " Ctrl-C.",
)
@click.option(
    "--metrics",
    "metrics",
    metavar="[DIRECCIÓN:]PUERTO",
    help="Con --watch: métricas de Prometheus en http://DIRECCIÓN:PUERTO/metrics (127.0.0.1"
    " por omisión): papel (de turno o en espera), época, corte que sirve cada difusor, desfase,"
    " fallas.",
)
@json_option
@pass_context
def publish_command(
    context: Context,
    corte: str | None,
    names: tuple[str, ...],
    dry_run: bool,
    override_embargo: str | None,
    watch_interval: float | None,
    metrics: str | None,
    as_json: bool,
) -> int:
    """Publica el corte (por omisión, el más reciente de paquetes/) en todos los difusores.

    Un corte anterior al que ya se sirve no se publica: eso es 'prepush rollback --to CORTE'.

    Código de salida: 0 todos entregados (o al día), 1 alguno falló, 3 el corte no llegó a
    ningún difusor (fallas, suspensiones o reversiones: la salida dice por qué), 2 error de
    uso o de configuración, 4 error interno de prepush (repita con -v y repórtelo), 130
    interrumpido por el operador (Ctrl-C; dice qué sirve cada difusor).
    """
    from prepush.publish.publisher import PublishRequest

    if watch_interval is not None and corte is not None:
        raise ConfigError("--watch publica cada corte nuevo: no indique un CORTE.")
    if metrics is not None and watch_interval is None:
        raise ConfigError("--metrics sólo va con --watch (el publicador de toda la noche).")
    settings = context.settings()
    request = PublishRequest(
        settings=settings,
        difusores=settings.roster.select(names),
        corte=corte,
        dry_run=dry_run,
        override_embargo=override_embargo,
    )
    if watch_interval is not None:
        _watch(request, watch_interval, metrics, as_json)
    return _run_publish(request, as_json)


def _watch(request: PublishRequest, interval: float, metrics: str | None, as_json: bool) -> None:
    from prepush.publish.publisher import watch

    monitor = None
    if metrics is not None:
        from prepush.publish.metrics import Monitor

        monitor = Monitor.serve(request.settings, metrics)
    try:
        watch(request, interval, functools.partial(_show_watched, as_json=as_json), monitor=monitor)
    finally:
        if monitor is not None:
            monitor.close()


def _show_publish(request: PublishRequest, as_json: bool) -> PublishReport:
    from prepush.console import PublishView
    from prepush.publish.publisher import publish

    human, _ = _consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores], outcomes=False)
    with view.running():
        report = publish(request, view)
    _print_publish(report, as_json, dry_run=request.dry_run)
    return report


async def _show_watched(
    request: PublishRequest, pool: ConnectionPool, *, as_json: bool
) -> PublishReport:
    from prepush.console import PublishView
    from prepush.publish.publisher import publish_async

    human, _ = _consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores], outcomes=False)
    with view.running():
        report = await publish_async(request, view, pool)
    _print_publish(report, as_json, dry_run=request.dry_run)
    return report


def _print_publish(report: PublishReport, as_json: bool, *, dry_run: bool) -> None:
    from prepush.console import print_publish_report, publish_report_json

    human, out = _consoles(as_json)
    if as_json:
        _emit_json(out, publish_report_json(report))
    elif human.is_terminal or dry_run or not report.nothing_new:
        # From a timer, a run with nothing new stays quiet: no cron mail, no journal noise.
        # A dry run was asked for its answer, which is said wherever it runs.
        print_publish_report(report, human)


def _run_publish(request: PublishRequest, as_json: bool) -> int:
    return int(_show_publish(request, as_json).exit_code)


@cli.command()
@click.option(
    "--to",
    "corte",
    required=True,
    callback=_corte_value,
    help="Corte anterior, aún retenido, a mostrar.",
)
@difusor_option
@click.option("--override-embargo", metavar="MOTIVO", help="Como en publish.")
@json_option
@pass_context
def rollback(
    context: Context,
    corte: str,
    names: tuple[str, ...],
    override_embargo: str | None,
    as_json: bool,
) -> int:
    """Vuelve json/main.json a un corte anterior que los difusores aún conservan.

    Usa el mismo cambio atómico y los mismos registros que publish. Se niega en un difusor
    que ya no tiene todos los archivos de ese corte. Los difusores revertidos quedan en ese
    corte: publish (y el temporizador) no les envía otro hasta 'prepush resume-latest'.
    """
    from prepush.publish.publisher import PublishRequest

    settings = context.settings()
    request = PublishRequest(
        settings=settings,
        difusores=settings.roster.select(names),
        corte=corte,
        override_embargo=override_embargo,
        rollback=True,
    )
    return _run_publish(request, as_json)


@cli.command("resume-latest")
@difusor_option
@json_option
@pass_context
def resume_latest(context: Context, names: tuple[str, ...], as_json: bool) -> int:
    """Libera a los difusores revertidos: vuelven a recibir el corte más reciente.

    Tras 'prepush rollback' cada difusor revertido queda en ese corte. Esta orden lo libera;
    el siguiente publish (o el temporizador) le envía el corte más reciente.
    """
    from prepush.ledger import Ledger

    human, out = _consoles(as_json)
    settings = context.settings()
    difusores = settings.roster.select(names)
    released = []
    # Without a ledger nothing was ever held.
    if (ledger := Ledger.existing(settings.ledger_location)) is not None:
        with ledger:
            for difusor in difusores:
                hold = ledger.release_hold(difusor.name)
                if hold is not None:
                    released.append({"difusor": difusor.name, "held_corte": hold.corte})
    if not released:
        raise ConfigError(
            "Ningún difusor seleccionado está retenido por una reversión; no hay nada que liberar."
        )
    if as_json:
        _emit_json(out, {"released": released})
        return int(ExitCode.OK)
    for entry in released:
        _say(
            human,
            f"{entry['difusor']}: liberado (servía {entry['held_corte']} por una reversión);"
            " el próximo publish le envía el corte más reciente.",
        )
    return int(ExitCode.OK)


@cli.command()
@click.argument("name", metavar="NOMBRE")
@click.option("--motivo", required=True, help="Por qué se suspende (queda en la bitácora).")
@json_option
@pass_context
def suspend(context: Context, name: str, motivo: str, as_json: bool) -> int:
    """Suspende a un difusor a mano: publish lo omitirá hasta 'prepush resume'."""
    from prepush.ledger import Ledger

    human, out = _consoles(as_json)
    settings = context.settings()
    difusor = settings.roster.difusor(name)
    with Ledger(settings.ledger_location) as ledger:
        if ledger.active_suspension(difusor.name) is not None:
            raise ConfigError(f"{difusor.name} ya está suspendido.")
        ledger.suspend(difusor.name, motivo, automatic=False)
    if as_json:
        _emit_json(out, {"difusor": difusor.name, "suspended": True, "reason": motivo})
    else:
        _say(human, f"{difusor.name} suspendido: {motivo}")
    return int(ExitCode.OK)


@cli.command()
@click.argument("name", metavar="NOMBRE")
@json_option
@pass_context
def resume(context: Context, name: str, as_json: bool) -> int:
    """Levanta la suspensión de un difusor; el siguiente publish le envía el corte."""
    from prepush.ledger import Ledger

    human, out = _consoles(as_json)
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
        _emit_json(out, {"difusor": difusor.name, "suspended": False})
    else:
        _say(human, f"{difusor.name} reanudado; recibirá el próximo publish.")
    return int(ExitCode.OK)


# --- check ---------------------------------------------------------------------------------


@cli.command()
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
    from prepush.console import check_report_json, print_check_report
    from prepush.ops.check import run_checks

    human, out = _consoles(as_json)
    if learn_host_keys:
        _learn_host_keys(context, names, human)
    settings = context.settings()

    def progress(difusor: str, text: str) -> None:
        _say(human, f"{difusor}: {text}")

    report = run_checks(settings, settings.roster.select(names), progress=progress)
    if as_json:
        _emit_json(out, check_report_json(report))
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
            _say(console, f"{difusor.name}: no se pudo obtener su llave de host.")
            continue
        line = key.export_public_key("openssh").decode().strip()
        _say(
            console,
            f"{difusor.name} ({difusor.host}:{difusor.port}) presenta la llave"
            f" {key.get_fingerprint()}.\nConfírmela con el difusor por un canal seguro"
            " (teléfono, oficio) antes de aceptarla.",
        )
        if cli_spanish.confirm("¿Fijar esta llave en el padrón?", default=False):
            pin_host_key(settings.roster_path, difusor.name, line)
            _say(console, f"Llave fijada para {difusor.name}.")


# --- status and report ---------------------------------------------------------------------


@cli.command()
@click.option("--watch", is_flag=True, help="Vista en vivo que se actualiza cada pocos segundos.")
@click.option(
    "--interval",
    type=cli_spanish.number(click.FloatRange, min=0.5, max=3600),
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

    from prepush.console import print_status, status_view
    from prepush.ops.status import current_status

    human, out = _consoles(as_json)
    settings = context.settings()
    zone = settings.roster.election.zone
    if as_json:
        while True:
            _emit_json(out, current_status(settings).as_json())
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


@cli.command()
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
    from prepush.console import print_report
    from prepush.ops.report import ReportRequest, make_report, report_json

    fmt = fmt or _format_for(output, as_json)
    if fmt == "table" and output is not None:
        raise ConfigError("--format table es para la terminal; con -o use md, csv o json.")
    if chart is not None and chart.suffix.lower() not in CHART_SUFFIXES:
        raise ConfigError(
            f"La gráfica se escribe en .svg o en .html autocontenido; {chart} no tiene ninguna"
            " de esas extensiones. Para una imagen, abra el .svg o el .html en un navegador."
        )
    _refuse_ignored_report_options(fmt, csv_table, output, as_json)
    _refuse_unwritable((chart, "la gráfica"), (output, "el reporte"))
    human, out = _consoles(as_json)
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
        _say(notes, f"Gráfica de latencia escrita en {chart}")
    if fmt == "table" and not as_json:
        print_report(result, human)
        return int(ExitCode.OK)
    for path, text in _report_documents(result, fmt, csv_table, output):
        if path is None:
            if not as_json:
                human.out(text, end="", highlight=False)
            continue
        _write_text(path, text, "el reporte")
        written.append(str(path))
        _say(notes, f"Reporte escrito en {path}")
    if as_json:
        _emit_json(out, {**report_json(result), "written": written})
    return int(ExitCode.OK)


def _refuse_ignored_report_options(
    fmt: str, csv_table: str | None, output: Path | None, as_json: bool
) -> None:
    """Options a report (publish's or pull's) could only ignore: refused, nothing read."""
    if as_json and fmt not in ("json", "table") and output is None:
        raise ConfigError(f"Con --json y --format {fmt}, indique -o ARCHIVO para el {fmt}.")
    if csv_table is not None and fmt != "csv":
        raise ConfigError("--tabla es para --format csv.")


def _format_for(output: Path | None, as_json: bool) -> str:
    """Without --format: JSON with --json, else what -o's extension says, else the table."""
    if as_json:
        return "json"
    if output is None:
        return "table"
    return _format_of_output(output)


def _format_of_output(output: Path) -> str:
    """The report format -o's extension names; any other extension needs --format."""
    by_suffix = {".md": "md", ".csv": "csv", ".json": "json"}
    if output.suffix.lower() not in by_suffix:
        raise ConfigError(f"Indique --format (md, csv o json) para escribir {output}.")
    return by_suffix[output.suffix.lower()]


def _write_chart(result: Any, chart: Path) -> None:
    from prepush.ops.report import latency_html, latency_svg

    text = latency_html(result) if chart.suffix.lower() == ".html" else latency_svg(result)
    _write_text(chart, text, "la gráfica")


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


# --- simulate ------------------------------------------------------------------------------


@cli.command()
@click.option("--demo", is_flag=True, help="La noche de 'make demo': 5 difusores, 12 cortes.")
@click.option(
    "--difusores",
    "count",
    type=cli_spanish.number(click.IntRange, min=1, max=200),
    default=5,
    show_default=True,
)
@click.option(
    "--cortes",
    type=cli_spanish.number(click.IntRange, min=1, max=500),
    default=12,
    show_default=True,
)
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "medium", "large", "federal"]),
    default="tiny",
    show_default=True,
    help="Tamaño de la elección sintética (casillas: 60, 1,200, 3,000, 20,000, 170,000).",
)
@click.option(
    "--seconds-per-corte",
    type=cli_spanish.number(click.FloatRange, min=0.5, max=3600),
    default=8.0,
    show_default=True,
    help="Tiempo comprimido: segundos reales entre cortes.",
)
@click.option("--seed", type=int, default=2027, show_default=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="ESPEC",
    help="Falla DIFUSOR:TIPO@CORTES[=VALOR], p. ej. difusor03:reset@5=30% (repetible;"
    " ver docs/simulate.md).",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Escenario YAML con una lista faults:.",
)
@click.option(
    "--sshd",
    "use_sshd",
    is_flag=True,
    help="Difusores con el sshd real de OpenSSH en lugar de servidores en proceso (root).",
)
@click.option(
    "--s3",
    "s3_count",
    type=cli_spanish.number(click.IntRange, min=0, max=200),
    default=0,
    show_default=True,
    help="Cuántos de los difusores (los últimos) son buckets S3 en un punto de acceso local"
    " (moto; pip install 'prepush[sim]').",
)
@click.option(
    "--transport",
    type=click.Choice(["sftp", "rsync", "mixto"]),
    default="sftp",
    show_default=True,
    help="Cómo reciben los difusores locales: SFTP, rsync (demonios rsync; con --sshd, sshd"
    " con rrsync) o mixto (SFTP y rsync alternados).",
)
@click.option(
    "--roster",
    "real_roster",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Simulacro oficial: envía cortes sintéticos de tipo simulacro a los difusores reales"
    " de este padrón.",
)
@click.option(
    "--failover",
    "failover_corte",
    type=cli_spanish.number(click.IntRange, min=2, max=500),
    metavar="N",
    help="Simulacro de contingencia: dos máquinas con su publish --watch y una bitácora"
    " PostgreSQL local; la que publica muere (SIGKILL) a media entrega del corte N y la otra"
    " toma el turno.",
)
@json_option
@pass_context
def simulate(
    context: Context,
    demo: bool,
    count: int,
    cortes: int,
    size: str,
    seconds_per_corte: float,
    seed: int,
    faults: tuple[str, ...],
    scenario: Path | None,
    use_sshd: bool,
    s3_count: int,
    transport: str,
    real_roster: Path | None,
    failover_corte: int | None,
    as_json: bool,
) -> int:
    """Ensaya una noche electoral completa en minutos (simulacro).

    Genera cortes sintéticos, levanta difusores locales (SFTP o rsync + sitio web) con fallas
    inyectadas y publica cada corte a su hora comprimida. Termina con el reporte. El código de
    salida es 0 si la noche salió como el escenario espera.
    """
    from prepush.console import PublishView
    from prepush.sim.scenario import load_scenario, parse_fault
    from prepush.sim.simulate import SimulateOptions, demo_options
    from prepush.sim.simulate import simulate as run_simulation

    human, out = _consoles(as_json)
    if failover_corte is not None:
        if demo or faults or scenario or use_sshd or s3_count or transport != "sftp" or real_roster:
            raise ConfigError(
                "--failover ensaya el relevo con difusores SFTP locales: no se combina con"
                " --demo, --fault, --scenario, --sshd, --s3, --transport ni --roster."
            )
        from prepush.sim.failover import FailoverOptions

        drill = FailoverOptions(
            context.workdir, failover_corte, count, cortes, size, seed, seconds_per_corte
        )
        return _simulate_failover(drill, human, out, as_json)
    if demo:
        options = demo_options(context.workdir)
    else:
        parsed = [parse_fault(spec) for spec in faults]
        parsed += load_scenario(scenario) if scenario else []
        options = SimulateOptions(
            workdir=context.workdir,
            difusores=count,
            cortes=cortes,
            size=size,
            seed=seed,
            seconds_per_corte=seconds_per_corte,
            faults=parsed,
            roster=real_roster,
            sshd=use_sshd,
            s3=s3_count,
            transport=transport,
        )
    for fault in options.faults:
        _say(human, f"Falla programada: {fault.describe()}")

    def say(line: str) -> None:
        _say(human, line)

    view = PublishView(human, [])
    with view.running():
        result = run_simulation(options, view, say)
    if as_json:
        _emit_json(
            out,
            {
                "ok": result.ok,
                "report": str(result.report_path),
                "chart": str(result.chart_path),
                "sites": result.sites,
                "suspended": sorted(result.suspended),
                "expected_suspended": sorted(result.expected_suspended),
                "problems": result.problems,
                "cortes": [
                    {"number": c.number, "corte": c.corte, "status": c.report.status}
                    for c in result.cortes
                ],
            },
        )
        return int(ExitCode.OK if result.ok else ExitCode.PARTIAL)
    _say(human, f"Reporte: {result.report_path}")
    _say(human, f"Gráfica de latencia: {result.chart_path}")
    _say(
        human,
        f"Suspendidos: {', '.join(sorted(result.suspended)) or 'ninguno'}"
        f" (el escenario implica: {', '.join(sorted(result.expected_suspended)) or 'ninguno'})",
    )
    if result.ok:
        _say(human, "La noche salió como el escenario espera.", "green")
        return int(ExitCode.OK)
    for problem in result.problems:
        _say(human, f"✗ {problem}", "red")
    return int(ExitCode.PARTIAL)


def _simulate_failover(drill: Any, human: Console, out: Console, as_json: bool) -> int:
    from prepush.sim.failover import run_failover

    result = run_failover(drill, lambda line: _say(human, line))
    if as_json:
        _emit_json(
            out,
            {
                "ok": result.ok,
                "report": str(result.report_path),
                "sites": result.sites,
                "cortes": result.cortes,
                "killed_corte": result.killed_corte,
                "takeover_s": result.takeover_s,
                "problems": result.problems,
            },
        )
        return int(ExitCode.OK if result.ok else ExitCode.PARTIAL)
    _say(human, f"Reporte de las dos máquinas: {result.report_path}")
    if result.ok:
        _say(
            human,
            "El relevo salió como debe: ningún difusor volvió atrás ni quedó sin el último corte.",
            "green",
        )
        return int(ExitCode.OK)
    for problem in result.problems:
        _say(human, f"✗ {problem}", "red")
    return int(ExitCode.PARTIAL)


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
    human, out = _consoles(as_json)
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
        _emit_json(out, result.as_json())
        return
    if quiet and (result.outcome == "unchanged" or result.repeated):
        return
    text, style = _pull_line(result)
    # Each line with its time, as the log's: --watch prints one per corte all night.
    _say(human, f"{log_stamp(datetime.now())} {text}", style)


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
    return "md" if output is None else _format_of_output(output)


def _pull_report(
    path: Path, fmt: str | None, csv_table: str | None, output: Path | None, as_json: bool
) -> int:
    """As report's: options checked before anything is read; the document to -o or stdout;
    with --json, stdout is one JSON document that says what was written."""
    from prepush.pull.config import load_pull_settings
    from prepush.pull.report import make_pull_report, report_json

    fmt = _pull_report_format(fmt, output, as_json)
    _refuse_ignored_report_options(fmt, csv_table, output, as_json)
    _refuse_unwritable((output, "el reporte"))
    result = make_pull_report(load_pull_settings(path, fetching=False))
    text = _pull_report_text(result, fmt, csv_table)
    _, out = _consoles(as_json)
    written: list[str] = []
    if output is not None:
        _write_text(output, text, "el reporte")
        written.append(str(output))
        _say(Console(stderr=True, highlight=False, soft_wrap=True), f"Reporte escrito en {output}")
    elif not as_json:
        out.out(text, end="", highlight=False)
    if as_json:
        _emit_json(out, {**report_json(result), "written": written})
    return int(ExitCode.OK)


def _pull_report_text(result: Any, fmt: str, csv_table: str | None) -> str:
    from prepush.pull.report import report_csv, report_json, report_markdown

    if fmt == "json":
        return json.dumps(report_json(result), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return report_csv(result, "incidencias" if csv_table == "incidencias" else "cortes")
    return report_markdown(result)


# --- verify --------------------------------------------------------------------------------


@cli.command("verify")
@difusor_option
@click.option(
    "--watch",
    "watch_interval",
    type=cli_spanish.number(click.FloatRange, min=0.5, max=3600),
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
    from prepush.console import print_verify_report
    from prepush.ops.verify import verify as verify_public
    from prepush.ops.verify import watch as watch_public

    human, out = _consoles(as_json)
    settings = context.settings()
    difusores = settings.roster.select(names)
    if not any(d.url for d in difusores):
        raise ConfigError("Ningún difusor seleccionado tiene url en el padrón; nada que verificar.")

    def show(report: VerifyReport) -> None:
        if as_json:
            _emit_json(
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

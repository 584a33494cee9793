"""The command line: parse, build settings, call the typed core. Nothing else lives here."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from prepush import __version__
from prepush.exceptions import ConfigError, ExitCode, PackageError

if TYPE_CHECKING:
    from prepush.build.builder import BuildResult
    from prepush.ops.verify import VerifyReport
    from prepush.publish.publisher import (
        ConnectionPool,
        PublishReport,
        PublishRequest,
    )
    from prepush.settings import Settings


@dataclass
class Context:
    workdir: Path
    roster_path: Path | None

    def settings(self, *, learn_host_keys: bool = False) -> Settings:
        from prepush.settings import load_settings

        return load_settings(self.workdir, self.roster_path, learn_host_keys=learn_host_keys)


pass_context = click.make_pass_decorator(Context)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Imprime un único documento JSON en la salida."
)


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """(human output, JSON output). With --json, stdout carries only the JSON document."""
    stdout = Console(highlight=False, soft_wrap=True)
    human = Console(stderr=True, highlight=False) if as_json else stdout
    return human, stdout


def _emit_json(console: Console, document: Any) -> None:
    console.out(json.dumps(document, ensure_ascii=False, indent=2, default=str), highlight=False)


def _setup_logging(console: Console, verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[handler],
        format="%(message)s",
        force=True,
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING if verbose else logging.ERROR)
    # asyncio logs every write to a socket the peer already closed; the retry says it better.
    logging.getLogger("asyncio").setLevel(logging.DEBUG if verbose else logging.ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-C",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Trabaja en DIR (padrón, paquetes y bitácora están ahí), como git -C o make -C.",
)
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Padrón de difusores (por omisión DIR/difusores.yaml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Muestra detalles de diagnóstico.")
@click.version_option(__version__, prog_name="prepush")
@click.pass_context
def cli(ctx: click.Context, workdir: Path, roster_path: Path | None, verbose: bool) -> None:
    """prepush publica cada corte del PREP en los servidores de los difusores oficiales.

    Construye el paquete del corte, lo envía por SFTP a todos los difusores a la vez y
    cambia json/main.json al final y de forma atómica. Cada entrega queda en la bitácora.
    """
    _setup_logging(Console(stderr=True), verbose)
    ctx.obj = Context(workdir=workdir.resolve(), roster_path=roster_path)


# --- init and keys --------------------------------------------------------------------


@cli.command()
@pass_context
def init(context: Context) -> int:
    """Crea un padrón de ejemplo comentado (difusores.yaml), la llave de firma que nombra y
    el directorio paquetes/."""
    from prepush.settings import ROSTER_FILE, create_roster

    console = Console(highlight=False)
    target = context.roster_path or context.workdir / ROSTER_FILE
    created = create_roster(target)
    console.print(f"Se creó {target} y {created.packages_dir}/.", markup=False)
    if created.signing_key_created:
        console.print(
            f"Llave de firma de paquetes: {created.signing_key} (0600; no la comparta)",
            markup=False,
        )
    else:
        console.print(
            f"Se conserva la llave de firma que ya existía: {created.signing_key}", markup=False
        )
    console.print(
        "Siguientes pasos: 'prepush keygen --out claves/prepush.pem' (acceso SFTP de los"
        " difusores) y edite el padrón.",
        markup=False,
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
@click.option("--comment", default="prepush", show_default=True, help="Comentario de la llave.")
@json_option
@pass_context
def keygen(context: Context, out: Path, key_type: str, comment: str, as_json: bool) -> int:
    """Crea el par de llaves que el instituto entrega a los difusores.

    La privada (formato OpenSSH, .pem) se escribe con permisos 0600 y nunca se sobrescribe;
    la línea pública se pega en authorized_keys del difusor. Una llave ed25519 sirve también
    para firmar paquetes (election.signing_key).
    """
    from prepush.keys import generate_key_pair

    human, out_console = _consoles(as_json)
    path = out if out.is_absolute() else context.workdir / out
    pair = generate_key_pair(path, "rsa" if key_type == "rsa" else "ed25519", comment)
    if as_json:
        _emit_json(
            out_console,
            {
                "private_key": str(pair.private_path),
                "public_key": str(pair.public_path),
                "public_line": pair.public_line,
                "fingerprint": pair.fingerprint,
            },
        )
    else:
        human.print(f"Llave privada: {pair.private_path} (0600; no la comparta)")
        human.print(f"Llave pública: {pair.public_path}")
        human.print(f"Huella: {pair.fingerprint}")
        human.print("Línea para authorized_keys del difusor:")
        human.print(pair.public_line, markup=False, soft_wrap=True)
    return int(ExitCode.OK)


# --- build and verify-package ------------------------------------------------------------


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--site",
    "site_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Empaqueta un sitio ya construido por el proveedor del PREP (rutas fijas).",
)
@click.option("--corte", help="Identificador AAAAMMDD_HHMM (obligatorio con --site).")
@click.option("--simulacro", is_flag=True, help="Paquete de simulacro: lleva la leyenda SIMULACRO.")
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Construye aunque el preámbulo y las filas del CSV no cuadren, tras revisarlo a mano;"
    " queda en la bitácora y en el reporte.",
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
    as_json: bool,
) -> int:
    """Construye el paquete de un corte a partir de los CSV del PREP.

    INPUTS son archivos CSV, directorios o el ZIP (con ZIP anidados) que entrega el sistema
    del PREP. El paquete queda en paquetes/AAAAMMDD_HHMM/ y se firma con election.signing_key.
    El sitio muestra las cifras del preámbulo tal como las imprimió el PREP; las filas las
    comprueban. Si no cuadran (un archivo cortado o incompleto), un corte oficial no se
    construye (código 2).
    """
    from prepush.build.command import BuildRequest, run_build

    human, out = _consoles(as_json)
    request = BuildRequest(
        settings=context.settings(),
        inputs=inputs,
        site_dir=site_dir,
        corte=corte,
        kind="simulacro" if simulacro else "oficial",
        allow_mismatch=allow_mismatch,
    )
    _report_build(run_build(request), human, out, as_json)
    return int(ExitCode.OK)


def _report_build(result: BuildResult, human: Console, out: Console, as_json: bool) -> None:
    manifest = result.package.manifest
    for forced in result.forced:
        human.print(f"Construido con --allow-mismatch: {forced}", style="bold red", markup=False)
    for warning in result.warnings:
        human.print(f"Aviso: {warning}", style="yellow", markup=False)
    for explained in result.explained:
        human.print(f"Diferencia explicada: {explained}", style="dim", markup=False)
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
            },
        )
        return
    verb = "ya existía idéntico" if result.already_built else "construido"
    human.print(
        f"Corte {manifest.corte} ({manifest.kind}) {verb} en {result.package.path}:"
        f" {len(manifest.files)} archivos, {manifest.total_bytes / 1e6:.1f} MB."
    )


@cli.command("verify-package")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
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
    elif problems:
        for problem in problems:
            human.print(f"[red]✗[/] {problem}", highlight=False)
    else:
        human.print(
            f"Paquete {package.corte} íntegro: firma y {len(package.manifest.files)}"
            " archivos verificados."
        )
    if problems:
        raise PackageError(
            f"El paquete {directory} no pasa la verificación ({len(problems)} problema(s))."
            " No lo publique; vuelva a construirlo desde los CSV del PREP."
        )
    return int(ExitCode.OK)


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
@click.argument("corte", required=False)
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
    type=float,
    default=None,
    metavar="SEGUNDOS",
    is_flag=False,
    flag_value=1.0,
    help="Espera paquetes nuevos en paquetes/ y publica cada uno al aparecer (revisa cada"
    " segundo por omisión), con las conexiones abiertas entre cortes. Se detiene con Ctrl-C.",
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
    as_json: bool,
) -> int:
    """Publica el corte (por omisión, el más reciente de paquetes/) en todos los difusores.

    Código de salida: 0 todos entregados, 1 alguno falló, 3 ninguno entregado, 2 error de uso
    o de configuración.
    """
    from prepush.publish.publisher import PublishRequest, watch

    settings = context.settings()
    request = PublishRequest(
        settings=settings,
        difusores=settings.roster.select(names),
        corte=corte,
        dry_run=dry_run,
        override_embargo=override_embargo,
    )
    if watch_interval is not None:
        if corte is not None:
            raise ConfigError("--watch publica cada corte nuevo: no indique un CORTE.")
        watch(request, watch_interval, functools.partial(_show_watched, as_json=as_json))
    return _run_publish(request, as_json)


def _show_publish(request: PublishRequest, as_json: bool) -> PublishReport:
    from prepush.console import PublishView
    from prepush.publish.publisher import publish

    human, _ = _consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores])
    with view.running():
        report = publish(request, view)
    _print_publish(report, as_json)
    return report


async def _show_watched(
    request: PublishRequest, pool: ConnectionPool, *, as_json: bool
) -> PublishReport:
    from prepush.console import PublishView
    from prepush.publish.publisher import publish_async

    human, _ = _consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores])
    with view.running():
        report = await publish_async(request, view, pool)
    _print_publish(report, as_json)
    return report


def _print_publish(report: PublishReport, as_json: bool) -> None:
    from prepush.console import print_publish_report, publish_report_json

    human, out = _consoles(as_json)
    if as_json:
        _emit_json(out, publish_report_json(report))
    elif human.is_terminal or not report.nothing_new:
        # From a timer, a run with nothing new stays quiet: no cron mail, no journal noise.
        print_publish_report(report, human)


def _run_publish(request: PublishRequest, as_json: bool) -> int:
    return int(_show_publish(request, as_json).exit_code)


@cli.command()
@click.option("--to", "corte", required=True, help="Corte anterior, aún retenido, a mostrar.")
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
    que ya no tiene todos los archivos de ese corte.
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


@cli.command()
@click.argument("name")
@click.option("--motivo", required=True, help="Por qué se suspende (queda en la bitácora).")
@pass_context
def suspend(context: Context, name: str, motivo: str) -> int:
    """Suspende a un difusor a mano: publish lo omitirá hasta 'prepush resume'."""
    from prepush.ledger import Ledger

    settings = context.settings()
    difusor = settings.roster.difusor(name)
    with Ledger(settings.ledger_path) as ledger:
        if ledger.active_suspension(difusor.name) is not None:
            raise ConfigError(f"{difusor.name} ya está suspendido.")
        ledger.suspend(difusor.name, motivo, automatic=False)
    Console(highlight=False).print(f"{difusor.name} suspendido: {motivo}", markup=False)
    return int(ExitCode.OK)


@cli.command()
@click.argument("name")
@pass_context
def resume(context: Context, name: str) -> int:
    """Levanta la suspensión de un difusor; el siguiente publish le envía el corte."""
    from prepush.ledger import Ledger

    settings = context.settings()
    difusor = settings.roster.difusor(name)
    with Ledger(settings.ledger_path) as ledger:
        if not ledger.resume(difusor.name):
            raise ConfigError(f"{difusor.name} no está suspendido.")
    Console(highlight=False).print(
        f"{difusor.name} reanudado; recibirá el próximo publish.", markup=False
    )
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

    Conexión, llave de host, autenticación, extensiones SFTP, permiso de escritura, espacio
    libre, velocidad de subida, reloj y, si hay url, la cabecera Cache-Control de main.json.
    Los resultados quedan en la bitácora como evidencia.
    """
    from prepush.console import check_report_json, print_check_report
    from prepush.ops.check import run_checks

    human, out = _consoles(as_json)
    if learn_host_keys:
        _learn_host_keys(context, names, human)
    settings = context.settings()
    report = run_checks(settings, settings.roster.select(names))
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
        if difusor.host_key or difusor.known_hosts:
            continue
        key = asyncio.run(fetch_host_key(difusor, timeout))
        if key is None:
            console.print(f"{difusor.name}: no se pudo obtener su llave de host.", markup=False)
            continue
        line = key.export_public_key("openssh").decode().strip()
        console.print(
            f"{difusor.name} ({difusor.host}:{difusor.port}) presenta la llave"
            f" {key.get_fingerprint()}.\nConfírmela con el difusor por un canal seguro"
            " (teléfono, oficio) antes de aceptarla.",
            markup=False,
        )
        if click.confirm("¿Fijar esta llave en el padrón?", default=False):
            pin_host_key(settings.roster_path, difusor.name, line)
            console.print(f"Llave fijada para {difusor.name}.", markup=False)


# --- status and report ---------------------------------------------------------------------


@cli.command()
@click.option("--watch", is_flag=True, help="Vista en vivo que se actualiza cada pocos segundos.")
@click.option("--interval", default=5.0, show_default=True, help="Segundos entre vistas (--watch).")
@json_option
@pass_context
def status(context: Context, watch: bool, interval: float, as_json: bool) -> int:
    """Dónde está cada difusor: último corte entregado, desfase, fallas seguidas, suspensión."""
    from rich.live import Live

    from prepush.console import status_table
    from prepush.ops.status import current_status

    human, out = _consoles(as_json)
    settings = context.settings()
    if as_json:
        _emit_json(out, current_status(settings).as_json())
        return int(ExitCode.OK)
    if not watch:
        human.print(status_table(current_status(settings), settings.roster.election.zone))
        return int(ExitCode.OK)
    zone = settings.roster.election.zone
    with Live(status_table(current_status(settings), zone), console=human) as live:
        while True:
            time.sleep(interval)
            live.update(status_table(current_status(settings), zone))


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "md"]),
    default="table",
    show_default=True,
)
@click.option("--desde", "since", help="Desde esta hora local (AAAA-MM-DDTHH:MM).")
@click.option("--hasta", "until", help="Hasta esta hora local (AAAA-MM-DDTHH:MM).")
@difusor_option
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Escribe la gráfica de latencia por difusor y corte (.svg o .html autocontenido).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Archivo.")
@pass_context
def report(
    context: Context,
    fmt: str,
    since: str | None,
    until: str | None,
    names: tuple[str, ...],
    chart: Path | None,
    output: Path | None,
) -> int:
    """Reporte de la noche: entregas, latencias y el reporte de incidencias por difusor.

    --format md produce un documento en español listo para el informe técnico.
    """
    from prepush.console import print_report
    from prepush.ops.report import (
        ReportRequest,
        latency_html,
        latency_svg,
        make_report,
        report_csv,
        report_json,
        report_markdown,
    )

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
    if chart is not None:
        chart.write_text(
            latency_html(result) if chart.suffix.lower() == ".html" else latency_svg(result),
            encoding="utf-8",
        )
    console = Console(highlight=False, soft_wrap=True)
    if fmt == "table":
        print_report(result, console)
        return int(ExitCode.OK)
    if fmt == "json":
        text = json.dumps(report_json(result), ensure_ascii=False, indent=2) + "\n"
    else:
        text = report_csv(result) if fmt == "csv" else report_markdown(result)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        console.out(text, end="", highlight=False)
    return int(ExitCode.OK)


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
@click.option("--difusores", "count", type=click.IntRange(1, 200), default=5, show_default=True)
@click.option("--cortes", type=click.IntRange(1, 500), default=12, show_default=True)
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "medium", "large", "federal"]),
    default="tiny",
    show_default=True,
    help="Tamaño de la elección sintética (casillas: 60, 1,200, 3,000, 20,000, 170,000).",
)
@click.option(
    "--seconds-per-corte",
    type=click.FloatRange(0.5, 3600),
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
    "--roster",
    "real_roster",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Simulacro oficial: envía cortes sintéticos de tipo simulacro a los difusores reales"
    " de este padrón.",
)
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
    real_roster: Path | None,
) -> int:
    """Ensaya una noche electoral completa en minutos (simulacro).

    Genera cortes sintéticos, levanta difusores locales (SFTP + sitio web) con fallas
    inyectadas y publica cada corte a su hora comprimida. Termina con el reporte. El código de
    salida es 0 si la noche salió como el escenario espera.
    """
    from prepush.console import PublishView
    from prepush.sim.scenario import load_scenario, parse_fault
    from prepush.sim.simulate import SimulateOptions, demo_options
    from prepush.sim.simulate import simulate as run_simulation

    console = Console(highlight=False, soft_wrap=True)
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
        )
    for fault in options.faults:
        console.print(f"Falla programada: {fault.describe()}", markup=False)

    def say(line: str) -> None:
        console.print(line, markup=False)

    view = PublishView(console, [])
    with view.running():
        result = run_simulation(options, view, say)
    console.print(f"Reporte: {result.report_path}", markup=False)
    console.print(f"Gráfica de latencia: {result.chart_path}", markup=False)
    console.print(
        f"Suspendidos: {', '.join(sorted(result.suspended)) or 'ninguno'}"
        f" (el escenario implica: {', '.join(sorted(result.expected_suspended)) or 'ninguno'})",
        markup=False,
    )
    if result.ok:
        console.print("La noche salió como el escenario espera.", style="green")
        return int(ExitCode.OK)
    for problem in result.problems:
        console.print(f"✗ {problem}", style="red", markup=False)
    return int(ExitCode.PARTIAL)


# --- verify --------------------------------------------------------------------------------


@cli.command("verify")
@difusor_option
@click.option(
    "--watch",
    "watch_interval",
    type=float,
    default=None,
    metavar="SEGUNDOS",
    is_flag=False,
    flag_value=15.0,
    help="Verifica una y otra vez (cada 15 s por omisión) y registra cuándo el público ve por"
    " primera vez cada corte. Se detiene con Ctrl-C.",
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
                out, {"run_id": report.run_id, "results": [r.as_json() for r in report.results]}
            )
        else:
            print_verify_report(report, human)

    if watch_interval is not None:
        watch_public(settings, difusores, watch_interval, show)
    report = verify_public(settings, difusores)
    show(report)
    return int(report.exit_code)

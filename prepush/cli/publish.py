"""The commands that change what the difusores serve: publish (one corte, or each new one
with --watch), rollback to a corte they still hold, and resume-latest after it."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import click

from prepush.cli import spanish
from prepush.cli.options import (
    Context,
    command,
    corte_value,
    difusor_option,
    json_option,
    pass_context,
)
from prepush.cli.output import consoles, emit_json, say
from prepush.exceptions import ConfigError, ExitCode

if TYPE_CHECKING:
    from prepush.publish.publisher import ConnectionPool
    from prepush.publish.request import PublishReport, PublishRequest


@command("publish")
@click.argument("corte", required=False, callback=corte_value)
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
    type=spanish.number(click.FloatRange, min=0.01, max=3600),
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
    from prepush.publish.request import PublishRequest

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
    from prepush.publish.watch import watch

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
    from prepush.cli.console import PublishView
    from prepush.publish.publisher import publish

    human, _ = consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores], outcomes=False)
    with view.running():
        report = publish(request, view)
    _print_publish(report, as_json, dry_run=request.dry_run)
    return report


async def _show_watched(
    request: PublishRequest, pool: ConnectionPool, *, as_json: bool
) -> PublishReport:
    from prepush.cli.console import PublishView
    from prepush.publish.publisher import publish_async

    human, _ = consoles(as_json)
    view = PublishView(human, [d.name for d in request.difusores], outcomes=False)
    with view.running():
        report = await publish_async(request, view, pool)
    _print_publish(report, as_json, dry_run=request.dry_run)
    return report


def _print_publish(report: PublishReport, as_json: bool, *, dry_run: bool) -> None:
    from prepush.cli.console import print_publish_report, publish_report_json

    human, out = consoles(as_json)
    if as_json:
        emit_json(out, publish_report_json(report))
    elif human.is_terminal or dry_run or not report.nothing_new:
        # From a timer, a run with nothing new stays quiet: no cron mail, no journal noise.
        # A dry run was asked for its answer, which is said wherever it runs.
        print_publish_report(report, human)


def _run_publish(request: PublishRequest, as_json: bool) -> int:
    return int(_show_publish(request, as_json).exit_code)


@command()
@click.option(
    "--to",
    "corte",
    required=True,
    callback=corte_value,
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
    from prepush.publish.request import PublishRequest

    settings = context.settings()
    request = PublishRequest(
        settings=settings,
        difusores=settings.roster.select(names),
        corte=corte,
        override_embargo=override_embargo,
        rollback=True,
    )
    return _run_publish(request, as_json)


@command("resume-latest")
@difusor_option
@json_option
@pass_context
def resume_latest(context: Context, names: tuple[str, ...], as_json: bool) -> int:
    """Libera a los difusores revertidos: vuelven a recibir el corte más reciente.

    Tras 'prepush rollback' cada difusor revertido queda en ese corte. Esta orden lo libera;
    el siguiente publish (o el temporizador) le envía el corte más reciente.
    """
    from prepush.ledger import Ledger

    human, out = consoles(as_json)
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
        emit_json(out, {"released": released})
        return int(ExitCode.OK)
    for entry in released:
        say(
            human,
            f"{entry['difusor']}: liberado (servía {entry['held_corte']} por una reversión);"
            " el próximo publish le envía el corte más reciente.",
        )
    return int(ExitCode.OK)


COMMANDS = (publish_command, rollback, resume_latest)

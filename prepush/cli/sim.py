"""simulate: an election night rehearsed in minutes, with local difusores and injected
faults, a simulacro sent to the real roster, or the failover drill between two machines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from prepush.cli import spanish
from prepush.cli.options import Context, command, json_option, pass_context
from prepush.cli.output import consoles, emit_json, say
from prepush.exceptions import ConfigError, ExitCode


@command()
@click.option("--demo", is_flag=True, help="La noche de 'make demo': 5 difusores, 12 cortes.")
@click.option(
    "--difusores",
    "count",
    type=spanish.number(click.IntRange, min=1, max=200),
    default=5,
    show_default=True,
)
@click.option(
    "--cortes",
    type=spanish.number(click.IntRange, min=1, max=500),
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
    type=spanish.number(click.FloatRange, min=0.5, max=3600),
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
    type=spanish.number(click.IntRange, min=0, max=200),
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
    type=spanish.number(click.IntRange, min=2, max=500),
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
    from prepush.cli.console import PublishView
    from prepush.sim.scenario import load_scenario, parse_fault
    from prepush.sim.simulate import SimulateOptions, demo_options
    from prepush.sim.simulate import simulate as run_simulation

    human, out = consoles(as_json)
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
        say(human, f"Falla programada: {fault.describe()}")

    def say_line(line: str) -> None:
        say(human, line)

    view = PublishView(human, [])
    with view.running():
        result = run_simulation(options, view, say_line)
    if as_json:
        emit_json(
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
    say(human, f"Reporte: {result.report_path}")
    say(human, f"Gráfica de latencia: {result.chart_path}")
    say(
        human,
        f"Suspendidos: {', '.join(sorted(result.suspended)) or 'ninguno'}"
        f" (el escenario implica: {', '.join(sorted(result.expected_suspended)) or 'ninguno'})",
    )
    if result.ok:
        say(human, "La noche salió como el escenario espera.", "green")
        return int(ExitCode.OK)
    for problem in result.problems:
        say(human, f"✗ {problem}", "red")
    return int(ExitCode.PARTIAL)


def _simulate_failover(drill: Any, human: Console, out: Console, as_json: bool) -> int:
    from prepush.sim.failover import run_failover

    result = run_failover(drill, lambda line: say(human, line))
    if as_json:
        emit_json(
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
    say(human, f"Reporte de las dos máquinas: {result.report_path}")
    if result.ok:
        say(
            human,
            "El relevo salió como debe: ningún difusor volvió atrás ni quedó sin el último corte.",
            "green",
        )
        return int(ExitCode.OK)
    for problem in result.problems:
        say(human, f"✗ {problem}", "red")
    return int(ExitCode.PARTIAL)


COMMANDS = (simulate,)

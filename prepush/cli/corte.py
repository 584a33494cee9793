"""The commands of a corte's package: init (the roster and the signing key), keygen, build
(the PREP's files into a signed package) and verify-package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from prepush.cli.options import Context, command, corte_value, json_option, pass_context
from prepush.cli.output import consoles, emit_json, say
from prepush.exceptions import ConfigError, ExitCode, PackageError, describe_os_error

if TYPE_CHECKING:
    from prepush.corte.builder import BuildResult


@command()
@json_option
@pass_context
def init(context: Context, as_json: bool) -> int:
    """Crea un padrón de ejemplo comentado (difusores.yaml), la llave de firma que nombra y
    el directorio paquetes/."""
    from prepush.settings import ROSTER_FILE, create_roster

    human, out = consoles(as_json)
    target = context.roster_path or context.workdir / ROSTER_FILE
    try:
        created = create_roster(target)
    except OSError as exc:
        raise ConfigError(
            f"No se pudo crear el padrón en {target.parent}: {describe_os_error(exc)}."
        ) from None
    if as_json:
        emit_json(
            out,
            {
                "roster": str(target),
                "packages": str(created.packages_dir),
                "signing_key": str(created.signing_key),
                "signing_key_created": created.signing_key_created,
            },
        )
        return int(ExitCode.OK)
    say(human, f"Se creó {target} y {created.packages_dir}/.")
    if created.signing_key_created:
        say(human, f"Llave de firma de paquetes: {created.signing_key} (0600; no la comparta)")
    else:
        say(human, f"Se conserva la llave de firma que ya existía: {created.signing_key}")
    say(
        human,
        "Siguientes pasos: 'prepush keygen --out claves/prepush.pem' (acceso SFTP de los"
        " difusores), edite el padrón y corra 'prepush check'.",
    )
    return int(ExitCode.OK)


@command()
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

    human, out_console = consoles(as_json)
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
        emit_json(
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
    say(human, f"Llave privada: {pair.private_path} (0600; no la comparta)")
    say(human, f"Llave pública: {pair.public_path}")
    say(human, f"Huella: {pair.fingerprint}")
    if purpose == "firma":
        say(
            human,
            "Es la llave de firma de paquetes: indíquela en election.signing_key del padrón."
            f" Quien verifique paquetes usa la pública: prepush verify-package --public-key"
            f" {pair.public_path}",
        )
    else:
        say(
            human,
            "Línea para authorized_keys de cada difusor; anteponga"
            ' restrict,from="IP-DEL-INSTITUTO" (ver docs/difusores.md):',
        )
        say(human, pair.public_line)
    return int(ExitCode.OK)


def _key_purpose(context: Context, path: Path) -> str:
    signing = _roster_signing_key(context)
    if signing is not None and signing.resolve() == path.resolve():
        return "firma"
    return "firma" if path.stem == "firma" else "acceso"


@command()
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
    callback=corte_value,
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

    human, out = consoles(as_json)
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
        say(human, f"Construido con --allow-mismatch: {forced}", "bold red")
    for warning in result.warnings:
        say(human, f"Aviso: {warning}", "yellow")
    for explained in result.explained:
        say(human, f"Diferencia explicada: {explained}", "dim")
    if result.fewer_elections:
        say(human, f"Construido con --allow-fewer-elections: {result.fewer_elections}", "bold red")
    for problem in result.repaired:
        say(human, f"Reparado: {problem}", "yellow")
    if as_json:
        emit_json(
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
    say(
        human,
        f"Corte {manifest.corte} ({manifest.kind}) {verb} en {result.package.path}:"
        f" {len(manifest.files)} archivos, {manifest.total_bytes / 1e6:.1f} MB.",
    )


@command("verify-package")
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

    human, out = consoles(as_json)
    trusted_path = public_key or _roster_signing_key(context)
    if trusted_path is None:
        raise ConfigError(
            "No hay llave de confianza: indique --public-key o election.signing_key en el padrón."
        )
    package = Package.open(directory)
    problems = package.verify(load_public_key(trusted_path))
    if as_json:
        emit_json(out, {"corte": package.corte, "ok": not problems, "problems": problems})
        # The document says it all: exit 2 without a second (error) document.
        return int(ExitCode.USAGE if problems else ExitCode.OK)
    if not problems:
        say(
            human,
            f"Paquete {package.corte} íntegro: firma y {len(package.manifest.files)}"
            " archivos verificados.",
        )
        return int(ExitCode.OK)
    for problem in problems:
        say(human, f"✗ {problem}", "red")
    raise PackageError(
        f"El paquete {directory} no pasa la verificación ({len(problems)} problema(s))."
        " No lo publique; vuelva a construirlo desde los CSV del PREP."
    )


def _roster_signing_key(context: Context) -> Path | None:
    try:
        return context.settings().signing_key_path
    except ConfigError:
        return None


COMMANDS = (init, keygen, build, verify_package)

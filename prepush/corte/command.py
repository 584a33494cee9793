"""``prepush build`` without the command line: settings in, a package and a ledger record out.

Every build is a run in the ledger: its warnings, the differences the data explains, and,
with ``--allow-mismatch``, what would have refused it. A refused build is recorded too, so
the night's report shows every corte that did not become a package and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prepush.corte.builder import BuildOptions, BuildResult, build_from_prep, build_from_site
from prepush.exceptions import ConfigError, FewerElectionsError, MismatchError, PackageError
from prepush.ledger import (
    BUILD_EXPLAINED,
    BUILD_FEWER_ELECTIONS,
    BUILD_FORCED,
    BUILD_REFUSED,
    BUILD_REPAIRED,
    BUILD_REPLACED,
    BUILD_WARNING,
    Ledger,
)
from prepush.package import Kind, load_signing_key
from prepush.settings import Settings


@dataclass(frozen=True)
class BuildRequest:
    settings: Settings
    inputs: tuple[Path, ...] = ()
    site_dir: Path | None = None
    corte: str | None = None
    kind: Kind = "oficial"
    allow_mismatch: bool = False
    allow_offset_mismatch: bool = False
    # An oficial corte with fewer elections than the one before it, said by the operator.
    allow_fewer_elections: bool = False
    # Replace the package of a corte that a difusor already received.
    replace_published: bool = False


def build_options(
    settings: Settings,
    kind: Kind,
    allow_mismatch: bool = False,
    allow_offset_mismatch: bool = False,
) -> BuildOptions:
    key_path = settings.signing_key_path
    if key_path is not None and not key_path.is_file():
        raise ConfigError(
            f"La llave de firma {key_path} (election.signing_key del padrón) no existe."
            f" Créela con 'prepush keygen --out {key_path}' o corrija el padrón; no se"
            " construyó nada."
        )
    election = settings.roster.election
    return BuildOptions(
        packages_dir=settings.packages_dir,
        process=election.process,
        zone=election.zone,
        kind=kind,
        signing_key=load_signing_key(key_path) if key_path else None,
        allow_mismatch=allow_mismatch,
        rowless_actas=dict(election.rowless_actas),
        acta_image_url=election.acta_image_url,
        allow_offset_mismatch=allow_offset_mismatch,
    )


def run_build(request: BuildRequest) -> BuildResult:
    if request.site_dir is not None and request.corte is None:
        raise ConfigError("Con --site indique el corte: --corte AAAAMMDD_HHMM.")
    if request.site_dir is None and not request.inputs:
        raise ConfigError("Indique los CSV, el directorio o el ZIP del corte a construir.")
    options = build_options(
        request.settings, request.kind, request.allow_mismatch, request.allow_offset_mismatch
    )
    with Ledger(request.settings.ledger_location) as ledger:
        options = replace(
            options,
            allow_fewer_elections=request.allow_fewer_elections,
            may_replace=_replacement_rule(ledger, request.replace_published),
        )
        try:
            result = _build(request, options)
        except (MismatchError, FewerElectionsError) as refused:
            run_id = ledger.start_run("build", refused.corte, _options(request))
            _record(ledger, run_id, BUILD_REFUSED, refused.problems)
            ledger.finish_run(run_id, "refused", note=str(refused))
            raise
        corte = result.package.corte
        run_id = ledger.start_run("build", corte, _options(request))
        _record(ledger, run_id, BUILD_WARNING, result.warnings)
        _record(ledger, run_id, BUILD_EXPLAINED, result.explained)
        _record(ledger, run_id, BUILD_FORCED, result.forced)
        if result.fewer_elections:
            _record(ledger, run_id, BUILD_FEWER_ELECTIONS, [result.fewer_elections])
        if result.replaced:
            _record(ledger, run_id, BUILD_REPLACED, [_replaced(ledger, result, corte)])
        if result.repaired:
            _record(ledger, run_id, BUILD_REPAIRED, [_repaired(result)])
        ledger.finish_run(run_id, "forced" if result.forced else "ok")
    return result


def _replacement_rule(ledger: Ledger, replace_published: bool) -> Callable[[str], None]:
    """A corte's package is replaced by a rebuild with other content only while no difusor
    has received it, or when the operator says so with --replace-published."""

    def may_replace(corte: str) -> None:
        received = ledger.received(corte)
        if not received or replace_published:
            return
        raise PackageError(
            f"El corte {corte} ya existe en paquetes/ con otro contenido y ya se publicó:"
            f" {_who_has(ledger, corte, received)}. Un corte publicado no cambia en silencio:"
            " si el PREP emitió una corrección llegará como un corte nuevo. Si este paquete es"
            " el correcto y debe reemplazar al publicado, construya con --replace-published"
            " (queda en la bitácora) y publique de nuevo. No se construyó nada."
        )

    return may_replace


def _who_has(ledger: Ledger, corte: str, received: list[str]) -> str:
    serving = [name for name in received if _serves(ledger, name, corte)]
    now = f"lo sirven ahora {', '.join(serving)}" if serving else "ningún difusor lo sirve ahora"
    return f"{now} (lo recibieron: {', '.join(received)})"


def _serves(ledger: Ledger, difusor: str, corte: str) -> bool:
    serving = ledger.serving(difusor)
    return serving is not None and serving.corte == corte


def _replaced(ledger: Ledger, result: BuildResult, corte: str) -> str:
    received = ledger.received(corte)
    where = (
        f" Se había publicado: {_who_has(ledger, corte, received)}; el próximo publish les"
        " envía el contenido nuevo."
        if received
        else " No se había publicado en ningún difusor."
    )
    manifest = result.package.manifest
    return (
        f"El paquete del corte {corte} se reemplazó por una construcción con otro contenido"
        f" (antes: {result.replaced}; ahora: {len(manifest.files)} archivos, manifiesto sha256"
        f" {manifest.digest[:16]}).{where}"
    )


def _repaired(result: BuildResult) -> str:
    return (
        f"El paquete del corte {result.package.corte} estaba dañado y se reescribió desde las"
        f" mismas entradas: {'; '.join(result.repaired)}"
    )


def _build(request: BuildRequest, options: BuildOptions) -> BuildResult:
    if request.site_dir is not None and request.corte is not None:
        entry_files = request.settings.roster.publish.entry_files
        return build_from_site(request.site_dir, request.corte, entry_files, options)
    return build_from_prep(list(request.inputs), options)


def _options(request: BuildRequest) -> dict[str, object]:
    return {
        "kind": request.kind,
        "allow_mismatch": request.allow_mismatch,
        "allow_offset_mismatch": request.allow_offset_mismatch,
        "allow_fewer_elections": request.allow_fewer_elections,
        "replace_published": request.replace_published,
        "inputs": [str(p) for p in request.inputs],
        "site": str(request.site_dir) if request.site_dir else None,
    }


def _record(ledger: Ledger, run_id: int, kind: str, messages: Sequence[str]) -> None:
    for message in messages:
        ledger.record_event(run_id, None, kind, message)

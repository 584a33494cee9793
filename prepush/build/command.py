"""``prepush build`` without the command line: settings in, a package and a ledger record out.

Every build is a run in the ledger: its warnings, the differences the data explains, and,
with ``--allow-mismatch``, what would have refused it. A refused build is recorded too, so
the night's report shows every corte that did not become a package and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prepush.build.builder import BuildOptions, BuildResult, build_from_prep, build_from_site
from prepush.exceptions import ConfigError, MismatchError
from prepush.ledger import BUILD_EXPLAINED, BUILD_FORCED, BUILD_REFUSED, BUILD_WARNING, Ledger
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
        try:
            result = _build(request, options)
        except MismatchError as refused:
            run_id = ledger.start_run("build", refused.corte, _options(request))
            _record(ledger, run_id, BUILD_REFUSED, refused.problems)
            ledger.finish_run(run_id, "refused", note=str(refused))
            raise
        run_id = ledger.start_run("build", result.package.corte, _options(request))
        _record(ledger, run_id, BUILD_WARNING, result.warnings)
        _record(ledger, run_id, BUILD_EXPLAINED, result.explained)
        _record(ledger, run_id, BUILD_FORCED, result.forced)
        ledger.finish_run(run_id, "forced" if result.forced else "ok")
    return result


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
        "inputs": [str(p) for p in request.inputs],
        "site": str(request.site_dir) if request.site_dir else None,
    }


def _record(ledger: Ledger, run_id: int, kind: str, messages: Sequence[str]) -> None:
    for message in messages:
        ledger.record_event(run_id, None, kind, message)

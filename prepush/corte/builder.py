"""Build a corte package from the PREP's CSVs (or from a vendor's site tree).

Deterministic: the same input gives byte-identical files (sorted JSON keys, fixed ZIP
timestamps and order), so content that did not change between cortes keeps its hash and is
never uploaded again. Built in a temporary directory and renamed into place: a failed build
leaves nothing in ``paquetes/``.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import asyncssh

from prepush.corte.catalogue import Catalogue
from prepush.corte.inputs import collect_sources, parse_sources, sources_from_zip
from prepush.corte.model import Election, SourceFile
from prepush.corte.reconcile import Reconciliation, reconcile
from prepush.corte.results import main_elections, results_documents
from prepush.corte.summary import compute_summary
from prepush.exceptions import (
    ConfigError,
    FewerElectionsError,
    InputError,
    MismatchError,
    PackageError,
)
from prepush.package import (
    CORTE_ID,
    DEFAULT_ENTRY_FILES,
    INDEX_HTML,
    MAIN_JSON,
    MANIFEST,
    SIGNATURE,
    FileEntry,
    Kind,
    Manifest,
    Mode,
    Package,
    canonical_json,
    check_corte_id,
    published_files,
    safe_relative_path,
    sha256_bytes,
    sha256_file,
    sign,
)

FORMAT = 1
HASH_IN_NAME = 12
# The site's page (index.html, app.js and app.css, gzip -9) must weigh at most this: what a
# phone downloads before any figure (docs/performance.md, bench/site.py).
PAGE_BUDGET_BYTES = 16 * 1024


@dataclass(frozen=True)
class BuildOptions:
    packages_dir: Path
    process: str
    zone: ZoneInfo
    kind: Kind = "oficial"
    signing_key: asyncssh.SSHKey | None = None
    # Build an input whose preamble and rows do not reconcile (an operator checked it by
    # hand); what would have refused it is reported in ``BuildResult.forced``.
    allow_mismatch: bool = False
    # Actas that ACTAS_ESPERADAS counts without a row, per election (election.rowless_actas).
    rowless_actas: Mapping[str, int] = field(default_factory=dict)
    # Where the institute hosts the acta images (election.acta_image_url); None: no links.
    acta_image_url: str | None = None
    # Build a corte whose printed UTC offset is not the one election.timezone gives at that
    # hour (the operator checked that the PREP's is right); said in the warnings.
    allow_offset_mismatch: bool = False
    # Build an oficial corte with fewer elections than the corte before it (said so).
    allow_fewer_elections: bool = False
    # Asked before a package of the same corte with other content is replaced: raises if it
    # may not be (it was published). None: never replaced.
    may_replace: Callable[[str], None] | None = None


@dataclass(frozen=True)
class BuildResult:
    package: Package
    # Differences built anyway: warnings, and in a simulacro what would refuse an oficial.
    warnings: list[str] = field(default_factory=list)
    already_built: bool = False
    # Differences the data explains, each named with its evidence.
    explained: list[str] = field(default_factory=list)
    # What refuses an oficial build, built anyway with --allow-mismatch.
    forced: list[str] = field(default_factory=list)
    # Fewer elections than the corte before, built with --allow-fewer-elections.
    fewer_elections: str | None = None
    # The package of this corte had other content and was replaced: what it was.
    replaced: str | None = None
    # The package of this corte had this content but was damaged: what was rewritten.
    repaired: list[str] = field(default_factory=list)


def corte_id_of(moment: datetime) -> str:
    """``YYYYMMDD_HHMM`` in the time the PREP printed (its own offset), the PREP convention."""
    return moment.strftime("%Y%m%d_%H%M")


def corte_time_of(corte: str, zone: ZoneInfo) -> datetime:
    return datetime.strptime(check_corte_id(corte), "%Y%m%d_%H%M").replace(tzinfo=zone)


def object_path(data: bytes) -> str:
    digest = sha256_bytes(data)
    return f"json/o/{digest}.json"


# --- PREP CSV packages ------------------------------------------------------------------


def build_from_prep(inputs: Sequence[Path], options: BuildOptions) -> BuildResult:
    sources, original_zip = _read_inputs(inputs)
    elections = parse_sources(sources, options.zone)
    if not elections:
        raise InputError(
            ", ".join(str(p) for p in inputs), None, None, "no contiene ningún CSV de resultados"
        )
    corte_time = _common_corte_time(elections)
    offset_warnings = _check_offset(elections[0], options)
    corte = corte_id_of(corte_time)
    fewer = _fewer_elections(elections, corte, options)
    catalogue = Catalogue.load(options.packages_dir)
    reconciliations = [
        reconcile(
            e, compute_summary(e), catalogue.check(e, corte, options.rowless_actas.get(e.code))
        )
        for e in elections
    ]
    verdict = _Verdict.of(reconciliations, options, corte)
    if fewer is not None and options.kind != "oficial":
        verdict.warnings.append(fewer)
    database = original_zip if original_zip is not None else _database_zip(sources, corte_time)

    with _staging(options.packages_dir, corte) as stage:
        _write_site_assets(stage, options.process)
        index, objects = _write_results(stage, corte, reconciliations)
        main = {
            "format": FORMAT,
            "process": options.process,
            "corte": corte,
            "corte_time": corte_time.isoformat(),
            "kind": options.kind,
            "index": index,
            "zip": stage.write(f"datos/{corte}_PREP.zip", database),
            "zip_sha256": sha256_bytes(database),
            "elections": main_elections(reconciliations, objects),
        }
        if options.acta_image_url is not None:
            main["acta_image_url"] = options.acta_image_url
        stage.write(MAIN_JSON, canonical_json(main))
        manifest = stage.manifest(
            corte=corte,
            corte_time=corte_time,
            kind=options.kind,
            mode="prepush",
            process=options.process,
            entry_files=DEFAULT_ENTRY_FILES,
        )
        result = _finish(stage, manifest, options, offset_warnings + verdict.warnings)
    if verdict.proves_catalogue:
        catalogue.record(elections, corte)
    return dataclasses.replace(
        result,
        explained=verdict.explained,
        forced=verdict.forced,
        fewer_elections=fewer if options.kind == "oficial" else None,
    )


def _fewer_elections(
    elections: Sequence[Election], corte: str, options: BuildOptions
) -> str | None:
    """Elections the corte before (or this corte's existing package) had and these inputs
    lack: refused for an oficial build unless said with --allow-fewer-elections."""
    reference = _reference_elections(options.packages_dir, corte)
    if reference is None:
        return None
    previous, codes = reference
    found = sorted({e.code for e in elections})
    missing = sorted(set(codes) - set(found))
    if not missing:
        return None
    if options.kind == "oficial" and not options.allow_fewer_elections:
        raise FewerElectionsError(corte, previous, missing, found)
    return (
        f"el corte {corte} trae sólo {', '.join(found)}; el corte {previous} traía además"
        f" {', '.join(missing)}"
    )


def _reference_elections(packages_dir: Path, corte: str) -> tuple[str, list[str]] | None:
    """The newest package up to ``corte`` (this corte's own, if built) and its elections."""
    try:
        names = sorted(
            (n for n in os.listdir(packages_dir) if CORTE_ID.match(n) and n <= corte),
            reverse=True,
        )
    except FileNotFoundError:
        return None
    for name in names:
        try:
            main = json.loads((packages_dir / name / MAIN_JSON).read_bytes())
            return name, [str(e["code"]) for e in main["elections"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a --site package, or one damaged: the one before tells
    return None


def _read_inputs(inputs: Sequence[Path]) -> tuple[list[SourceFile], bytes | None]:
    """The input files, and the PREP's own ZIP when it is the whole input: published byte
    for byte, so the public can compare its sha256 with the one the institute publishes."""
    if len(inputs) == 1 and inputs[0].is_file() and inputs[0].suffix.lower() == ".zip":
        data = inputs[0].read_bytes()
        return sources_from_zip(inputs[0].name, data), data
    return collect_sources(inputs), None


def _write_results(
    stage: _Stage, corte: str, reconciliations: Sequence[Reconciliation]
) -> tuple[str, dict[str, str]]:
    """The results objects and the index that names them; the index's path and the objects'
    paths by logical name."""
    objects: dict[str, str] = {}
    for logical, document in sorted(results_documents(reconciliations).items()):
        data = canonical_json(document)
        objects[logical] = stage.write(object_path(data), data)
    index = canonical_json({"format": FORMAT, "corte": corte, "objects": objects})
    return stage.write(object_path(index), index), objects


@dataclass(frozen=True)
class _Verdict:
    """What the reconciliation of a corte means for this build."""

    warnings: list[str]
    explained: list[str]
    forced: list[str]
    proves_catalogue: bool

    @classmethod
    def of(
        cls, reconciliations: Sequence[Reconciliation], options: BuildOptions, corte: str
    ) -> _Verdict:
        def texts(kind: Literal["refused", "explained", "warning"]) -> list[str]:
            return [f.text() for r in reconciliations for f in r.of_kind(kind)]

        refused, warnings = texts("refused"), texts("warning")
        oficial = options.kind == "oficial"
        if refused and oficial and not options.allow_mismatch:
            raise MismatchError(corte, refused)
        if not oficial:
            # A simulacro warns where an oficial build refuses.
            warnings = [
                f"(en un corte oficial se rechazaría) {text}" for text in refused
            ] + warnings
        return cls(
            warnings=warnings,
            explained=texts("explained"),
            forced=refused if oficial else [],
            # Only a corte the data proved may be the yardstick of the next ones.
            proves_catalogue=oficial and not refused,
        )


def _common_corte_time(elections: Sequence[Election]) -> datetime:
    """The corte's time as its files printed it: the same date, hour and offset in each."""
    times = {e.corte_time.isoformat(): e.corte_time for e in elections}
    if len(times) > 1:
        listing = ", ".join(f"{e.code} {e.corte_printed} ({e.source_name})" for e in elections)
        raise InputError(
            "entrada",
            None,
            None,
            f"los CSV son de cortes distintos ({listing}); un paquete es un solo corte",
        )
    return next(iter(times.values()))


def _check_offset(e: Election, options: BuildOptions) -> list[str]:
    """The offset the PREP printed against the one election.timezone gives at that hour: a
    difference is a roster mistake (or the PREP's), never converted away."""
    if not e.corte_offset_printed:
        return []
    printed = e.corte_time.utcoffset()
    local = e.corte_time.replace(tzinfo=None)
    expected = local.replace(tzinfo=options.zone).utcoffset()
    if printed == expected:
        return []
    said = (
        f"{e.source_name}:{e.corte_line}: el PREP imprime el corte como {e.corte_printed!r},"
        f" en UTC{_offset_text(printed)}, y election.timezone ({options.zone.key}) da"
        f" UTC{_offset_text(expected)} a esa hora"
    )
    if options.allow_offset_mismatch:
        return [f"{said}; se construyó con la hora impresa (--allow-offset-mismatch)"]
    raise ConfigError(
        f"{said}. No se construyó nada: corrija election.timezone en el padrón (la zona de la"
        " elección), o, si comprobó que la hora impresa es la correcta, construya con"
        " --allow-offset-mismatch: el corte se nombra y se muestra como lo imprimió el PREP."
    )


def _offset_text(offset: timedelta | None) -> str:
    if offset is None:
        return "?"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _database_zip(sources: Sequence[SourceFile], corte_time: datetime) -> bytes:
    """The PREP database rebuilt from CSV directories as a deterministic ZIP: fixed order,
    timestamps and permissions."""
    stamp = corte_time.replace(tzinfo=None).timetuple()[:6]
    counts = Counter(source.name for source in sources)

    def member(source: SourceFile) -> str:
        # One LEEME.txt per election folder (INE, Oaxaca): the folder tells them apart.
        return source.name if counts[source.name] == 1 else f"{source.container}/{source.name}"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for source in sorted(sources, key=member):
            info = zipfile.ZipInfo(member(source), date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, source.data)
    return buffer.getvalue()


def _write_site_assets(stage: _Stage, process: str) -> None:
    site = resources.files("prepush.corte") / "site"
    names: dict[str, str] = {}
    for asset, placeholder in (("app.js", "{{APP_JS}}"), ("app.css", "{{APP_CSS}}")):
        data = (site / asset).read_bytes()
        stem, suffix = asset.rsplit(".", 1)
        names[placeholder] = stage.write(
            f"assets/{stem}.{sha256_bytes(data)[:HASH_IN_NAME]}.{suffix}", data
        )
    page = (site / "index.html").read_text(encoding="utf-8")
    for placeholder, path in names.items():
        page = page.replace(placeholder, path)
    page = page.replace("{{PROCESS}}", html.escape(process))
    stage.write(INDEX_HTML, page.encode())


# --- vendor site packages ---------------------------------------------------------------


def build_from_site(
    site_dir: Path, corte: str, entry_files: Sequence[str], options: BuildOptions
) -> BuildResult:
    """Package a site the PREP vendor already built, with fixed paths, and sign it."""
    if not site_dir.is_dir():
        raise InputError(str(site_dir), None, None, "no es un directorio con el sitio del PREP")
    corte_time = corte_time_of(corte, options.zone)
    files = list(published_files(site_dir))
    missing = [p for p in entry_files if p not in set(files)]
    if missing:
        raise InputError(
            str(site_dir),
            None,
            None,
            f"faltan los archivos de entrada {missing} (publish.entry_files en el padrón)",
        )
    with _staging(options.packages_dir, corte) as stage:
        for relative in files:
            stage.copy(site_dir / relative, safe_relative_path(relative))
        manifest = stage.manifest(
            corte=corte,
            corte_time=corte_time,
            kind=options.kind,
            mode="site",
            process=options.process,
            entry_files=tuple(entry_files),
        )
        return _finish(stage, manifest, options, [])


# --- staging ------------------------------------------------------------------------------


class _Stage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, FileEntry] = {}
        self._dirs: set[Path] = set()

    def _target(self, relative: str) -> Path:
        target = self.root / relative
        if target.parent not in self._dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(target.parent)
        return target

    def write(self, relative: str, data: bytes) -> str:
        if relative not in self.entries:
            self._target(relative).write_bytes(data)
            self.entries[relative] = FileEntry(relative, len(data), sha256_bytes(data))
        return relative

    def copy(self, source: Path, relative: str) -> str:
        target = self._target(relative)
        shutil.copyfile(source, target)
        self.entries[relative] = FileEntry(relative, target.stat().st_size, sha256_file(target))
        return relative

    def manifest(
        self,
        *,
        corte: str,
        corte_time: datetime,
        kind: Kind,
        mode: Mode,
        process: str,
        entry_files: tuple[str, ...],
    ) -> Manifest:
        files = tuple(self.entries[p] for p in sorted(self.entries))
        manifest = Manifest(corte, corte_time, kind, mode, process, entry_files, files)
        manifest.check_consistency(str(self.root / MANIFEST))
        return manifest


@contextmanager
def _staging(packages_dir: Path, corte: str) -> Iterator[_Stage]:
    packages_dir.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".build-{corte}-", dir=packages_dir))
    try:
        yield _Stage(temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _finish(
    stage: _Stage, manifest: Manifest, options: BuildOptions, warnings: list[str]
) -> BuildResult:
    meta = stage.root / MANIFEST
    meta.parent.mkdir(parents=True, exist_ok=True)
    manifest_bytes = manifest.to_bytes()
    meta.write_bytes(manifest_bytes)
    if options.signing_key is not None:
        (stage.root / SIGNATURE).write_bytes(sign(manifest_bytes, options.signing_key))
    final = options.packages_dir / manifest.corte
    if final.exists():
        return _settle_existing(stage.root, final, manifest, options, warnings)
    os.rename(stage.root, final)
    return BuildResult(Package(final, manifest), warnings)


def _settle_existing(
    built: Path, final: Path, manifest: Manifest, options: BuildOptions, warnings: list[str]
) -> BuildResult:
    """A package of this corte exists: kept if it is this one and intact, repaired if it is
    this one damaged, replaced if it is another one and ``options.may_replace`` allows it."""
    try:
        existing: Package | None = Package.open(final)
    except PackageError:
        existing = None  # its manifest is unreadable: not this package
    if existing is not None and existing.manifest.to_bytes() == manifest.to_bytes():
        damage = _damage(existing, built)
        if not damage:
            return BuildResult(existing, warnings, already_built=True)
        _swap_in(built, final)
        return BuildResult(Package(final, manifest), warnings, repaired=damage)
    if options.may_replace is None:
        raise PackageError(
            f"El corte {manifest.corte} ya existe en {final} con otro contenido. Los datos de un"
            " corte no se alteran: si el PREP emitió una corrección, llegará como un corte"
            " nuevo."
        )
    options.may_replace(manifest.corte)
    before = "un manifiesto ilegible" if existing is None else _described(existing.manifest)
    _swap_in(built, final)
    return BuildResult(Package(final, manifest), warnings, replaced=before)


def _described(manifest: Manifest) -> str:
    return (
        f"{len(manifest.files)} archivos, {manifest.total_bytes / 1e6:.1f} MB, manifiesto"
        f" sha256 {manifest.digest[:16]}"
    )


def _damage(existing: Package, built: Path) -> list[str]:
    """What differs between the package on disk and the one just built from the same data:
    each file that does not match the manifest, and a signature that is not the built one."""
    problems = existing.verify(None)
    signature, fresh = existing.path / SIGNATURE, built / SIGNATURE
    if signature.is_file() and fresh.is_file() and signature.read_bytes() != fresh.read_bytes():
        problems.append(f"{SIGNATURE}: la firma no es la del paquete construido")
    return problems


def _swap_in(built: Path, final: Path) -> None:
    """The built tree takes the corte's name; the old one is removed after. Between the two
    renames a reader finds no package of this corte, never a mix of both."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(final, old)
    os.rename(built, final)
    shutil.rmtree(old, ignore_errors=True)

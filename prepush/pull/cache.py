"""The difusor's package cache (``paquetes/``): each corte assembled from the origin and
verified before anything is published.

A corte is assembled in ``paquetes/.descarga-<corte>/``: ``json/main.json`` from the bytes
already read (and checked against the signed manifest), every file an earlier corte in the
cache holds with the same sha256 by a hard link (a copy across filesystems), every other file
downloaded from the origin, its size and sha256 checked as it arrives (``<file>.parte``,
renamed only when both match). Then the signed manifest and its signature go under
``.prepush/``, the whole package is checked as ``publish`` checks its own
(:meth:`prepush.package.Package.verify_for_sending`: the pinned key, every file), and the
directory is renamed to ``paquetes/<corte>/``. A package under its final name is complete and
verified; a killed pull leaves the staging directory, whose files are checked again and kept
by the next one (nothing verified is downloaded twice).

With ``extract``, the CSVs of the corte's ZIP (nested ZIPs included) are extracted under the
package's ``.prepush/extraido/``, never touching the ZIP, and published under
``<extract_dir>/<corte>/`` as extras of the corte (see
:class:`prepush.publish.protocol_types.Extra`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import asyncssh

from prepush.exceptions import PackageError
from prepush.package import (
    CORTE_ID,
    MAIN_JSON,
    MANIFEST,
    META_DIR,
    SIGNATURE,
    FileEntry,
    Manifest,
    Package,
    list_packages,
    published_files,
    safe_relative_path,
    sha256_bytes,
)
from prepush.publish.protocol_types import Extra
from prepush.pull.origins import Origin, TooLong

STAGING_PREFIX = ".descarga-"
PART_SUFFIX = ".parte"
EXTRACTED = f"{META_DIR}/extraido"
EXTRACTED_LIST = "lista.json"
# Extraction stops past this many bytes of CSV per corte (a ZIP that would fill the disk).
MAX_EXTRACTED = 8 << 30


class FileProblem(Exception):
    """A file the origin served is not the one the signed manifest names: missing, another
    size, another sha256. ``etag`` names the body served, to ask again conditionally."""

    def __init__(self, path: str, why: str, etag: str | None = None) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why
        self.etag = etag


class CacheError(PackageError):
    """The local cache cannot hold or verify the corte (this machine's disk)."""


@dataclass(frozen=True)
class Signed:
    """A corte's manifest as the institute signed it: the exact bytes and their signature."""

    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    main_json: bytes


@dataclass
class Assembly:
    """What assembling a corte cost: measured."""

    downloaded: int = 0
    downloaded_bytes: int = 0
    linked: int = 0
    kept: int = 0


Progress = Callable[[int, int], None]


class PackageCache:
    def __init__(self, root: Path, trusted: asyncssh.SSHKey) -> None:
        self.root = root
        self.trusted = trusted

    def staging(self, corte: str) -> Path:
        return self.root / f"{STAGING_PREFIX}{corte}"

    def cortes(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if CORTE_ID.match(p.name) and (p / MANIFEST).is_file()
        )

    def verified(self, signed: Signed) -> Package | None:
        """The corte's package if the cache already holds it whole and exactly as signed."""
        final = self.root / signed.manifest.corte
        try:
            package = Package.open(final)
            signature = (final / SIGNATURE).read_bytes()
        except (PackageError, OSError):
            return None
        if package.manifest.digest != signed.manifest.digest or signature != signed.signature:
            return None
        if package.verify_for_sending(self.trusted):
            return None
        return package

    async def assemble(
        self, signed: Signed, origin: Origin, width: int, progress: Progress | None = None
    ) -> tuple[Package, Assembly]:
        """The verified package of the corte, downloading only what the cache lacks. A file
        the origin serves wrong raises :class:`FileProblem` (the first, in manifest order,
        once every download settled); nothing is renamed into place then."""
        done = Assembly()
        ready = self.verified(signed)
        if ready is not None:
            done.kept = len(signed.manifest.files)
            return ready, done
        corte = signed.manifest.corte
        final = self.root / corte
        staging = self._prepare_staging(corte, final)
        manifest = signed.manifest
        listed = manifest.by_path()
        for stray in published_files(staging):
            if stray not in listed:
                (staging / stray).unlink(missing_ok=True)
        known = self._known_content(corte)
        missing: list[FileEntry] = []
        for entry in manifest.files:
            target = staging / entry.path
            if entry.path == MAIN_JSON:
                _write(target, signed.main_json)
                done.kept += 1
            elif _holds(target, entry):
                done.kept += 1
            elif _link_verified(known.get(entry.sha256), target, entry):
                done.linked += 1
            else:
                missing.append(entry)
        await self._download_all(origin, staging, missing, width, done, progress)
        meta = staging / META_DIR
        meta.mkdir(exist_ok=True)
        _write(staging / MANIFEST, signed.manifest_bytes)
        _write(staging / SIGNATURE, signed.signature)
        problems = Package.open(staging).verify_for_sending(self.trusted)
        if problems:
            raise CacheError(
                f"El paquete del corte {corte} armado en {staging} no pasa la verificación"
                f" ({'; '.join(problems[:3])}). Es un problema de este disco: se vuelve a armar"
                " en el siguiente intento."
            )
        os.rename(staging, final)
        _fsync_dir(self.root)
        package = Package.open(final)
        problems = package.verify_for_sending(self.trusted)
        if problems:
            raise CacheError(
                f"El paquete del corte {corte} en {final} cambió al moverlo a su lugar"
                f" ({'; '.join(problems[:3])}); no se publica."
            )
        return package, done

    def _prepare_staging(self, corte: str, final: Path) -> Path:
        staging = self.staging(corte)
        self.root.mkdir(parents=True, exist_ok=True)
        if final.exists():
            # Damaged, or another package under the corte's name: assembled again, keeping
            # whatever still checks out.
            if staging.exists():
                shutil.rmtree(staging)
            os.rename(final, staging)
        staging.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging / META_DIR)
        return staging

    def _known_content(self, corte: str) -> dict[str, Path]:
        """sha256 -> a file holding it, in the cached packages (newest first) and in what a
        killed pull left staged."""
        known: dict[str, Path] = {}
        for package in reversed(self._packages(exclude=corte)):
            for entry in package.manifest.files:
                known.setdefault(entry.sha256, package.path / entry.path)
        return known

    def _packages(self, exclude: str) -> list[Package]:
        try:
            return [p for p in list_packages(self.root) if p.corte != exclude]
        except PackageError:
            return []

    async def _download_all(
        self,
        origin: Origin,
        staging: Path,
        missing: list[FileEntry],
        width: int,
        done: Assembly,
        progress: Progress | None,
    ) -> None:
        gate = asyncio.Semaphore(max(1, width))
        total = len(missing)

        async def one(entry: FileEntry) -> None:
            async with gate:
                await _download(origin, entry, staging / entry.path)
            done.downloaded += 1
            done.downloaded_bytes += entry.size
            if progress is not None:
                progress(done.downloaded, total)

        outcomes = await asyncio.gather(*(one(e) for e in missing), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        # A file served wrong says more than a connection that broke meanwhile.
        for failure in failures:
            if isinstance(failure, FileProblem):
                raise failure
        for failure in failures:
            raise failure

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Remove cached packages beyond the newest ``keep`` (never a protected corte) and
        staging directories of cortes older than the newest kept. Returns what went."""
        cortes = self.cortes()
        kept = set(cortes[-keep:]) | protect
        removed = [c for c in cortes if c not in kept]
        for corte in removed:
            shutil.rmtree(self.root / corte, ignore_errors=True)
        newest = cortes[-1] if cortes else ""
        for child in self.root.iterdir() if self.root.is_dir() else []:
            name = child.name.removeprefix(STAGING_PREFIX)
            if child.name.startswith(STAGING_PREFIX) and name < newest and name not in protect:
                shutil.rmtree(child, ignore_errors=True)
        return removed


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + PART_SUFFIX)
    part.write_bytes(data)
    os.replace(part, path)


def _holds(target: Path, entry: FileEntry) -> bool:
    """A staged file (from a killed pull) with the entry's size and sha256."""
    try:
        if target.is_symlink() or not target.is_file() or target.stat().st_size != entry.size:
            return False
        return sha256_bytes(target.read_bytes()) == entry.sha256
    except OSError:
        return False


def _link_verified(source: Path | None, target: Path, entry: FileEntry) -> bool:
    """Make ``target`` the cached file ``source`` (a hard link, or a copy), if it still has
    the entry's size and sha256."""
    if source is None:
        return False
    try:
        if source.stat().st_size != entry.size or sha256_bytes(source.read_bytes()) != entry.sha256:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    except OSError:
        return False
    return True


async def _download(origin: Origin, entry: FileEntry, target: Path) -> None:
    """Download one file, its size and sha256 checked as it arrives; renamed into place only
    when both match the signed manifest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    digest = hashlib.sha256()
    try:
        with part.open("wb") as out:

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            try:
                got = await origin.download(entry.path, entry.size, sink)
            except TooLong as exc:
                sent = f" ({exc.announced} bytes)" if exc.announced is not None else ""
                raise FileProblem(
                    entry.path,
                    f"el origen envía más bytes{sent} que los {entry.size} del manifiesto"
                    " firmado: no es el archivo del instituto",
                ) from None
            received = out.tell()
        if got.status == "missing":
            raise FileProblem(entry.path, "el origen no lo tiene (404), y el manifiesto firmado sí")
        if received != entry.size:
            raise FileProblem(
                entry.path,
                f"llegaron {received} bytes y el manifiesto firmado dice {entry.size}: la descarga"
                " está incompleta o el archivo no es el del instituto",
                got.etag,
            )
        if digest.hexdigest() != entry.sha256:
            raise FileProblem(
                entry.path,
                f"su sha256 es {digest.hexdigest()[:16]}… y el manifiesto firmado dice"
                f" {entry.sha256[:16]}…: el archivo del origen fue alterado o no es el de este"
                " corte",
                got.etag,
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- extracting the ZIP's CSVs -------------------------------------------------------------


def extracted(package: Package, extract_dir: str) -> list[Extra]:
    """The CSVs of the corte's ZIPs as extras under ``<extract_dir>/<corte>/``: extracted
    once into the package's ``.prepush/extraido/`` (a list written last marks it complete),
    and again whenever a file of that list is no longer on disk as it was written."""
    root = package.path / EXTRACTED
    found = _still_extracted(root)
    if found is None:
        found = _extract(package, root)
    base = f"{extract_dir}/{package.corte}"
    return [
        Extra(FileEntry(f"{base}/{rel}", size, sha), local=str(root / rel))
        for rel, (size, sha) in sorted(found.items())
    ]


def _still_extracted(root: Path) -> dict[str, tuple[int, str]] | None:
    """What an earlier pass extracted, if its list and every file it names are intact; None
    otherwise. A lost or damaged CSV is never left out: it would not reach the public, or
    would fail every pass at its sha256."""
    try:
        saved = json.loads((root / EXTRACTED_LIST).read_bytes())
        found = {str(rel): (int(size), str(sha)) for rel, (size, sha) in saved.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    intact = all(
        _holds(root / rel, FileEntry(rel, size, sha)) for rel, (size, sha) in found.items()
    )
    return found if intact else None


def _extract(package: Package, root: Path) -> dict[str, tuple[int, str]]:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    found: dict[str, tuple[int, str]] = {}
    budget = [MAX_EXTRACTED]
    zips = [e for e in package.manifest.files if e.path.lower().endswith(".zip")]
    for entry in zips:
        try:
            with zipfile.ZipFile(package.file(entry.path)) as archive:
                for rel, data in _csvs(archive, PurePosixPath(), budget, entry.path):
                    if rel in found:
                        raise CacheError(
                            f"{entry.path} trae dos veces {rel}; no se extrae (el ZIP se publica"
                            " tal cual)."
                        )
                    _write(root / rel, data)
                    found[rel] = (len(data), sha256_bytes(data))
        except (zipfile.BadZipFile, OSError) as exc:
            raise CacheError(
                f"No se pudieron extraer los CSV de {entry.path} ({exc}); el ZIP se publica tal"
                " cual, sin extraer."
            ) from None
    _write(root / EXTRACTED_LIST, json.dumps(found, sort_keys=True).encode())
    return found


def _csvs(
    archive: zipfile.ZipFile, prefix: PurePosixPath, budget: list[int], zip_path: str
) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of each CSV, a nested ZIP becoming a directory of its name."""
    for member in archive.infolist():
        if member.is_dir():
            continue
        name = member.filename
        try:
            safe_relative_path(name)
        except PackageError:
            raise CacheError(
                f"{zip_path} trae una entrada con ruta no permitida ({name!r}); no se extrae."
            ) from None
        lower = name.lower()
        if not (lower.endswith(".csv") or lower.endswith(".zip")):
            continue
        if member.file_size > budget[0]:
            raise CacheError(f"{zip_path}: {name} es demasiado grande para extraerlo.")
        data = archive.read(member)
        budget[0] -= len(data)
        if lower.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                yield from _csvs(inner, prefix / PurePosixPath(name).stem, budget, zip_path)
        else:
            yield str(prefix / name), data

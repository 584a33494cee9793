"""A corte package (paquete) on disk: its manifest, its signature, and their verification.

The format is documented in ``docs/package-format.md``. In short: ``paquetes/<corte-id>/``
holds the site; entry files (``index.html``, ``json/main.json``) are the only files whose
content may change under the same name; every other file is immutable by name. The manifest
``.prepush/manifest.json`` lists every published file with its size and sha256 and is signed
with Ed25519 in ``.prepush/manifest.sig``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncssh

from prepush.exceptions import PackageError

FORMAT = 1
META_DIR = ".prepush"
MANIFEST = f"{META_DIR}/manifest.json"
SIGNATURE = f"{META_DIR}/manifest.sig"
MAIN_JSON = "json/main.json"
INDEX_HTML = "index.html"
DEFAULT_ENTRY_FILES = (INDEX_HTML, MAIN_JSON)
SIGNATURE_ALGORITHM = "ssh-ed25519"
# Where an origin difusor (``origin: true`` in the roster) publishes each corte's signed
# manifest for the difusores that pull from it: outside .prepush/, which sites deny.
SIGNED_DIR = "firmas"
CORTE_ID = re.compile(r"^\d{8}_\d{4}$")

Kind = Literal["oficial", "simulacro"]
Mode = Literal["prepush", "site"]


def canonical_json(value: Any) -> bytes:
    """The one JSON encoding of prepush: deterministic, compact, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_manifest(corte: str) -> str:
    """The path of a corte's signed manifest on an origin difusor."""
    return f"{SIGNED_DIR}/{check_corte_id(corte)}.json"


def published_signature(corte: str) -> str:
    """The path of a corte's signature on an origin difusor."""
    return f"{SIGNED_DIR}/{check_corte_id(corte)}.sig"


def check_corte_id(corte: str) -> str:
    if not CORTE_ID.match(corte):
        raise PackageError(
            f"Identificador de corte inválido: {corte!r}. Use AAAAMMDD_HHMM en hora local de"
            " la elección, p. ej. 20240602_2015."
        )
    return corte


# A drive ("C:"), or any control character (NUL ends a C string on the server).
_UNSAFE = re.compile(r"^[A-Za-z]:|[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=1 << 16)
def safe_relative_path(path: str) -> str:
    """Reject anything that could escape a difusor's remote directory, on any server."""
    if (
        not path
        or path[0] == "/"
        or "\\" in path
        or _UNSAFE.search(path)
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise PackageError(
            f"Ruta no permitida en el paquete: {path!r}. Las rutas deben ser relativas, sin"
            " '..', sin '/' ni unidad (C:) al inicio y sin caracteres de control."
        )
    return path


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    corte: str
    corte_time: datetime
    kind: Kind
    mode: Mode
    process: str
    entry_files: tuple[str, ...]
    files: tuple[FileEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "corte": self.corte,
            "corte_time": self.corte_time.isoformat(),
            "kind": self.kind,
            "mode": self.mode,
            "process": self.process,
            "entry_files": list(self.entry_files),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> Manifest:
        try:
            raw = json.loads(data)
            files = tuple(
                FileEntry(safe_relative_path(str(f["path"])), int(f["size"]), str(f["sha256"]))
                for f in raw["files"]
            )
            manifest = cls(
                corte=check_corte_id(str(raw["corte"])),
                corte_time=datetime.fromisoformat(raw["corte_time"]),
                kind=_kind(raw["kind"]),
                mode="site" if raw.get("mode") == "site" else "prepush",
                process=str(raw.get("process", "")),
                entry_files=tuple(str(p) for p in raw["entry_files"]),
                files=files,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise PackageError(
                f"El manifiesto {origin} está dañado ({exc}). Vuelva a construir el paquete con"
                " 'prepush build'."
            ) from None
        manifest.check_consistency(origin)
        return manifest

    def check_consistency(self, origin: str) -> None:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise PackageError(f"El manifiesto {origin} repite rutas. Reconstruya el paquete.")
        missing = [p for p in self.entry_files if p not in set(paths)]
        if missing:
            raise PackageError(
                f"El manifiesto {origin} declara archivos de entrada que no contiene: {missing}."
            )

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    @functools.cached_property
    def digest(self) -> str:
        """The manifest's sha256: names this exact corte package in a difusor's state."""
        return sha256_bytes(self.to_bytes())

    @property
    def immutable_files(self) -> tuple[FileEntry, ...]:
        entries = set(self.entry_files)
        return tuple(f for f in self.files if f.path not in entries)

    @property
    def entries_in_flip_order(self) -> tuple[FileEntry, ...]:
        by_path = self.by_path()
        return tuple(by_path[p] for p in self.entry_files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _kind(value: object) -> Kind:
    if value == "oficial":
        return "oficial"
    if value == "simulacro":
        return "simulacro"
    raise ValueError(f"tipo de paquete desconocido: {value!r}")


# --- signatures ---------------------------------------------------------------------------


def load_signing_key(path: Path, passphrase: str | None = None) -> asyncssh.SSHKey:
    try:
        key = asyncssh.read_private_key(path, passphrase)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise PackageError(
            f"No se pudo leer la llave de firma {path}: {exc}. Genérela con 'prepush keygen'"
            " y revise election.signing_key en el padrón."
        ) from None
    if key.algorithm != SIGNATURE_ALGORITHM.encode():
        raise PackageError(
            f"La llave de firma {path} es {key.algorithm.decode()}; los paquetes se firman con"
            " Ed25519. Genere una con 'prepush keygen --type ed25519'."
        )
    return key


def load_public_key(path: Path) -> asyncssh.SSHKey:
    """A trusted public key: a ``.pub`` file, or the public half of a private key file."""
    try:
        text = path.read_text(encoding="utf-8")
        if "PRIVATE KEY" in text:
            return asyncssh.import_private_key(text).convert_to_public()
        return asyncssh.import_public_key(text)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise PackageError(f"No se pudo leer la llave pública {path}: {exc}.") from None


def sign(manifest_bytes: bytes, key: asyncssh.SSHKey) -> bytes:
    signature = key.sign(manifest_bytes, SIGNATURE_ALGORITHM.encode())
    public = key.export_public_key("openssh").decode().strip()
    return canonical_json(
        {
            "algorithm": SIGNATURE_ALGORITHM,
            "public_key": public,
            "signature": base64.b64encode(signature).decode(),
        }
    )


def signature_is_valid(
    manifest_bytes: bytes, signature_doc: bytes, trusted: asyncssh.SSHKey
) -> bool:
    try:
        raw = json.loads(signature_doc)
        signature = base64.b64decode(raw["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        return False
    return bool(trusted.verify(manifest_bytes, signature))


# --- packages on disk ---------------------------------------------------------------------


# What identifies a file's bytes without reading them, while nobody writes to it: any write
# changes its ctime.
StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileCache:
    """A package's small files, read from disk once per publish instead of once per difusor.

    Every difusor of a run uploads the same files; the most recently used stay in memory up
    to ``budget`` bytes, shared by all the connections. Files whose bytes the package's
    verification hashed are *held*: an upload may send those bytes without reading or hashing
    them again (:class:`prepush.transports.base.LocalFiles`).
    """

    def __init__(self, budget: int = 64 << 20) -> None:
        self._budget = budget
        self._size = 0
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._verified: set[str] = set()
        # How each kept file stood on disk when it was read.
        self._stats: dict[str, StatKey] = {}

    def share(self, processes: int) -> None:
        """Several processes publish the package: each keeps its share of the budget (the
        kernel's page cache is already shared by all of them)."""
        self._budget = max(1 << 20, self._budget // max(1, processes))

    def read(self, path: str) -> bytes:
        data = self._files.get(path)
        if data is not None:
            self._files.move_to_end(path)
            return data
        with open(path, "rb") as stream:
            # Before the read: a write during or after it changes the file's ctime, so a key
            # taken now never vouches for bytes the disk no longer holds.
            read_as = stat_key(os.fstat(stream.fileno()))
            data = stream.read()
        if len(data) <= self.largest_kept:
            self._files[path] = data
            self._stats[path] = read_as
            self._size += len(data)
            while self._size > self._budget:
                gone, evicted = self._files.popitem(last=False)
                self._verified.discard(gone)
                self._stats.pop(gone, None)
                self._size -= len(evicted)
        return data

    @property
    def largest_kept(self) -> int:
        """Files up to this size stay in memory; larger ones are read and let go."""
        return self._budget // 8

    def vouch(self, path: str, data: bytes) -> None:
        """``data``, as kept for ``path``, matched the signed manifest."""
        if self._files.get(path) is data:
            self._verified.add(path)

    def verified_stat(self, path: str) -> StatKey | None:
        """How the file stood on disk when the bytes that matched the manifest were read."""
        return self._stats.get(path) if path in self._verified else None

    def held(self, path: str) -> bytes | None:
        """The file's verified bytes if they are still in memory, without reading anything."""
        if path not in self._verified:
            return None
        self._files.move_to_end(path)
        return self._files[path]


@dataclass(frozen=True)
class Package:
    path: Path
    manifest: Manifest
    cache: FileCache = field(default_factory=FileCache, compare=False, repr=False)

    @property
    def corte(self) -> str:
        return self.manifest.corte

    def file(self, relative: str) -> Path:
        return self.path / safe_relative_path(relative)

    def logical_names(self) -> dict[str, str]:
        """The results objects' logical names by path, from the index that json/main.json
        names (docs/package-format.md); empty for --site packages."""
        if self.manifest.mode != "prepush":
            return {}
        try:
            main = json.loads((self.path / MAIN_JSON).read_bytes())
            index = json.loads((self.path / safe_relative_path(str(main["index"]))).read_bytes())
            return {str(path): str(name) for name, path in index["objects"].items()}
        except (OSError, ValueError, KeyError, TypeError, PackageError):
            return {}

    def local_path(self, relative: str) -> str:
        """Like :meth:`file`, as a string, for paths the manifest already validated."""
        return f"{self.path}/{relative}"

    @classmethod
    def open(cls, path: Path) -> Package:
        manifest_path = path / MANIFEST
        try:
            data = manifest_path.read_bytes()
        except FileNotFoundError:
            raise PackageError(
                f"{path} no es un paquete de prepush (falta {MANIFEST}). Constrúyalo con"
                " 'prepush build'."
            ) from None
        return cls(path=path, manifest=Manifest.from_bytes(data, str(manifest_path)))

    def verify(self, trusted: asyncssh.SSHKey | None) -> list[str]:
        """Every problem found, in Spanish, each naming the file; empty when it verifies."""
        manifest_bytes = (self.path / MANIFEST).read_bytes()
        return [
            *self._signature_problems(manifest_bytes, trusted),
            *self._content_problems(self._digest_on_disk),
        ]

    def verify_for_sending(self, trusted: asyncssh.SSHKey) -> list[str]:
        """Like :meth:`verify`, for the copy that is about to be published.

        The signature is checked on this package's manifest as parsed, the one publishing acts
        on, and every file is read through the package's cache: the bytes hashed here are the
        bytes the upload sends (for the files the cache keeps), for one read of each.
        """
        return [
            *self._signature_problems(self.manifest.to_bytes(), trusted),
            *self._content_problems(self._digest_cached),
        ]

    def hold_verified(self) -> None:
        """Read the files into this copy's cache, holding those that match the manifest: a
        worker process's own copy of what the parent verified, so its uploads send bytes
        hashed once in this process. A file that no longer matches is not held; its upload
        hashes it as it reads it and fails. Files too large to keep are left to their uploads."""
        for entry in self.manifest.files:
            if entry.size <= self.cache.largest_kept:
                with contextlib.suppress(OSError):
                    self._digest_cached(entry)

    def _signature_problems(
        self, manifest_bytes: bytes, trusted: asyncssh.SSHKey | None
    ) -> Iterator[str]:
        signature_path = self.path / SIGNATURE
        if not signature_path.is_file():
            yield f"{SIGNATURE}: el paquete no está firmado"
        elif trusted is not None and not signature_is_valid(
            manifest_bytes, signature_path.read_bytes(), trusted
        ):
            yield (
                f"{MANIFEST}: la firma no corresponde a la llave de confianza: el manifiesto"
                " fue alterado o firmado con otra llave"
            )

    def _content_problems(self, digest: Callable[[FileEntry], str | None]) -> Iterator[str]:
        listed = self.manifest.by_path()
        for entry in self.manifest.files:
            found = digest(entry)
            if found is None:
                yield f"{entry.path}: falta en el paquete"
            elif found != entry.sha256:
                yield f"{entry.path}: el contenido no coincide con el manifiesto (sha256)"
        for extra in sorted(set(published_files(self.path)) - set(listed)):
            yield f"{extra}: archivo que no está en el manifiesto"

    def _digest_on_disk(self, entry: FileEntry) -> str | None:
        path = self.path / entry.path
        if not path.is_file():
            return None
        # A size that differs needs no hashing to be wrong.
        return sha256_file(path) if path.stat().st_size == entry.size else ""

    def _digest_cached(self, entry: FileEntry) -> str | None:
        try:
            path = self.local_path(entry.path)
            data = self.cache.read(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        digest = sha256_bytes(data) if len(data) == entry.size else ""
        if digest == entry.sha256:
            self.cache.vouch(path, data)
        return digest


def published_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root`` except prepush's own metadata,
    sorted. (os.walk and plain strings: a package has thousands of files.)"""
    found: list[str] = []
    for directory, subdirs, names in os.walk(root):
        relative = os.path.relpath(directory, root)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        if not prefix:
            subdirs[:] = [d for d in subdirs if d != META_DIR]
        found += [prefix + name for name in names if os.path.isfile(os.path.join(directory, name))]
    return sorted(found)


def list_packages(packages_dir: Path) -> list[Package]:
    """Complete packages in ``packages_dir``, oldest corte first."""
    if not packages_dir.is_dir():
        return []
    found = [
        Package.open(child)
        for child in sorted(packages_dir.iterdir())
        if CORTE_ID.match(child.name) and (child / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: p.corte)


class LocalManifests:
    """The manifests of the packages on this machine, by corte, for reading a difusor's
    state: a manifest counts only if it is the exact one the difusor recorded (its digest)."""

    def __init__(self, packages_dir: Path) -> None:
        self._packages_dir = packages_dir
        self._opened: dict[str, Manifest | None] = {}

    def __call__(self, corte: str, digest: str) -> Manifest | None:
        if corte not in self._opened:
            path = self._packages_dir / corte
            try:
                self._opened[corte] = Package.open(path).manifest if CORTE_ID.match(corte) else None
            except PackageError:
                self._opened[corte] = None
        manifest = self._opened[corte]
        return manifest if manifest is not None and manifest.digest == digest else None

    def add(self, manifest: Manifest) -> None:
        self._opened[manifest.corte] = manifest


def newest_corte(packages_dir: Path) -> str | None:
    """The newest complete package's corte, by name alone: no manifest is parsed."""
    try:
        names = sorted(
            (e.name for e in os.scandir(packages_dir) if CORTE_ID.match(e.name)), reverse=True
        )
    except FileNotFoundError:
        return None
    return next((n for n in names if (packages_dir / n / MANIFEST).is_file()), None)


def find_package(packages_dir: Path, corte: str | None) -> Package:
    """The package of ``corte``, or the newest one when ``corte`` is None."""
    if corte is not None:
        path = packages_dir / check_corte_id(corte)
        if not (path / MANIFEST).is_file():
            raise PackageError(
                f"No existe el paquete del corte {corte} en {packages_dir}. Constrúyalo con"
                " 'prepush build'."
            )
        return Package.open(path)
    newest = newest_corte(packages_dir)
    if newest is None:
        raise PackageError(
            f"No hay paquetes en {packages_dir}. Construya el corte con 'prepush build'."
        )
    return Package.open(packages_dir / newest)

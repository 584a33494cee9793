"""Small signed packages and directory difusores, for tests of the run around the protocol.

A package here is the real thing (files, manifest, Ed25519 signature), only small: a test of
retries, deadlines or corte switches needs cortes that differ, not the PREP's figures. A
:class:`LocalSite` is a difusor whose site is a directory of this machine, reached through the
local transport (the one ``prepush pull`` writes with); :func:`local_connector` opens it,
optionally as a subclass that injects a fault.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import asyncssh

from prepush.package import (
    DEFAULT_ENTRY_FILES,
    MANIFEST,
    SIGNATURE,
    FileEntry,
    Manifest,
    Package,
    load_signing_key,
    sha256_bytes,
    sign,
)
from prepush.settings import Difusor, Settings
from prepush.transports import Connector
from prepush.transports.base import Transport
from prepush.transports.local import LocalTransport
from tests.conftest import UNREACHED


def corte_files(corte: str, *, changed: str = "") -> dict[str, bytes]:
    """A corte of the usual shape: entry files, a content-addressed object, a ZIP."""
    objeto = json.dumps({"corte": corte, "votos": changed or corte}).encode()
    return {
        "index.html": b"<html>sitio del PREP</html>",
        "json/main.json": json.dumps({"corte": corte, "index": "json/o/indice.json"}).encode(),
        f"json/o/{sha256_bytes(objeto)[:16]}.json": objeto,
        "json/o/comun.json": b'{"igual": "en todos los cortes"}',
        f"datos/{corte}_PREP.zip": f"zip del corte {corte}".encode(),
    }


def write_package(
    packages: Path,
    corte: str,
    files: Mapping[str, bytes],
    key: Path,
    *,
    mode: str = "prepush",
    entry_files: tuple[str, ...] = DEFAULT_ENTRY_FILES,
) -> Package:
    """A signed package of ``files`` in ``packages/<corte>``; a simulacro (no embargo)."""
    root = packages / corte
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    manifest = Manifest(
        corte=corte,
        corte_time=datetime.strptime(corte, "%Y%m%d_%H%M").replace(tzinfo=UTC),
        kind="simulacro",
        mode="site" if mode == "site" else "prepush",
        process="Prueba",
        entry_files=entry_files,
        files=tuple(
            FileEntry(path, len(data), sha256_bytes(data)) for path, data in sorted(files.items())
        ),
    )
    (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_bytes(manifest.to_bytes())
    (root / SIGNATURE).write_bytes(sign(manifest.to_bytes(), load_signing_key(key)))
    return Package(root, manifest)


@dataclasses.dataclass
class LocalSite:
    """A difusor whose site is ``root``. The roster needs SFTP fields, never used to connect;
    its key file must exist all the same, as a difusor's secrets are checked before it is
    contacted (a throwaway key beside the site)."""

    name: str
    root: Path

    def roster_entry(self) -> dict[str, object]:
        return {**UNREACHED, "name": self.name, "key_file": str(self._key_file())}

    def _key_file(self) -> Path:
        path = self.root.parent / f"{self.name}-llave.pem"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            path.write_bytes(key.export_private_key("openssh"))
            path.chmod(0o600)
        return path

    def served_corte(self) -> str | None:
        main = self.root / "json" / "main.json"
        return str(json.loads(main.read_bytes())["corte"]) if main.exists() else None


def local_connector(
    sites: list[LocalSite],
    kinds: Mapping[str, Callable[[str, Path, float], LocalTransport]] | None = None,
) -> Connector:
    """Opens each site's local transport (or the kind ``kinds`` names for it)."""
    roots = {site.name: site.root for site in sites}
    made = dict(kinds or {})

    async def connect(difusor: Difusor, settings: Settings) -> Transport:
        kind = made.get(difusor.name, LocalTransport)
        timeout = settings.roster.publish.request_timeout_seconds
        return kind(difusor.name, roots[difusor.name], timeout)

    return connect

"""The night's catalogue: the casillas of each election, as the first corte built showed them.

Every acta the PREP expects is in the catalogue of actas esperadas, fixed before the night:
a corte's rows may add a casilla, never lose one (checked on the seven Campeche cortes). So
the first corte built records, per election, its casillas (their claves) and how many actas
ACTAS_ESPERADAS counts beyond its rows (DIP_LOC's 10 actas of representación proporcional of
special casillas have no row). Later cortes are held to it: a catalogue clave without a row,
or more rowless actas than recorded, is a cut or damaged file, never a quirk.

A count of rowless actas is recorded only from a corte that proved it (zero, or declared in
the roster's ``election.rowless_actas``); a build forced with ``--allow-mismatch`` and a
simulacro record nothing, so a cut file can never become the yardstick of the next one.
Stored in ``paquetes/.catalogo.json``, beside the packages it describes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prepush.corte.model import Election
from prepush.corte.summary import printed_esperadas
from prepush.exceptions import PackageError

CATALOGUE_FILE = ".catalogo.json"
FORMAT = 1


@dataclass(frozen=True)
class RowlessProof:
    """How many actas ACTAS_ESPERADAS may count without a row, and what proves it."""

    count: int
    source: str
    # A declaration in the roster, before any catalogue, is a statement of the catalogue:
    # exact. The catalogue itself is a bound (a later corte may add a casilla's row).
    exact: bool = False

    @property
    def described(self) -> str:
        return f"{self.count} ({self.source})" if self.source else "ninguna probada"


@dataclass(frozen=True)
class CatalogueCheck:
    """What the night's catalogue says of one election's rows in a corte."""

    rowless: RowlessProof
    missing: tuple[str, ...] = ()
    recorded_corte: str | None = None
    recorded_esperadas: int | None = None


@dataclass
class _Entry:
    first_corte: str
    corte: str
    esperadas: int
    rowless: int
    claves: set[str]

    def as_json(self) -> dict[str, object]:
        return {
            "first_corte": self.first_corte,
            "corte": self.corte,
            "esperadas": self.esperadas,
            "rowless": self.rowless,
            "claves": sorted(self.claves),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> _Entry:
        claves = raw["claves"]
        if not isinstance(claves, list):
            raise TypeError("claves debe ser una lista")
        return cls(
            first_corte=str(raw["first_corte"]),
            corte=str(raw["corte"]),
            esperadas=int(str(raw["esperadas"])),
            rowless=int(str(raw["rowless"])),
            claves={str(c) for c in claves},
        )


class Catalogue:
    def __init__(self, path: Path, entries: dict[str, _Entry]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def load(cls, packages_dir: Path) -> Catalogue:
        path = packages_dir / CATALOGUE_FILE
        try:
            raw = json.loads(path.read_bytes())
            entries = {str(code): _Entry.from_json(e) for code, e in raw["elections"].items()}
        except FileNotFoundError:
            return cls(path, {})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PackageError(
                f"El catálogo de la noche {path} está dañado ({exc}). Muévalo fuera de"
                " paquetes/: el siguiente corte oficial construido lo vuelve a registrar."
            ) from None
        return cls(path, entries)

    def check(self, e: Election, corte: str, declared: int | None) -> CatalogueCheck:
        entry = self._entries.get(e.code)
        if entry is None:
            if not declared:
                return CatalogueCheck(RowlessProof(0, ""))
            return CatalogueCheck(
                RowlessProof(declared, "declaradas en election.rowless_actas", exact=True)
            )
        count = entry.rowless if declared is None else min(entry.rowless, declared)
        proof = RowlessProof(count, f"catálogo de la noche, registrado en {entry.first_corte}")
        if corte < entry.corte:
            # An older corte than the catalogue knows: its own preamble is the yardstick.
            return CatalogueCheck(proof)
        rows = {a.clave for a in e.actas}
        return CatalogueCheck(
            proof,
            missing=tuple(sorted(entry.claves - rows)),
            recorded_corte=entry.corte,
            recorded_esperadas=entry.esperadas,
        )

    def record(self, elections: Iterable[Election], corte: str) -> None:
        """Add a proven corte: new elections start their entry, known ones gain claves."""
        for e in elections:
            esperadas = printed_esperadas(e)
            if esperadas is None:
                continue
            claves = {a.clave for a in e.actas}
            entry = self._entries.get(e.code)
            if entry is None:
                rowless = max(0, esperadas - len(e.actas))
                self._entries[e.code] = _Entry(corte, corte, esperadas, rowless, claves)
                continue
            entry.claves |= claves
            if corte >= entry.corte:
                entry.corte, entry.esperadas = corte, esperadas
        self._save()

    def _save(self) -> None:
        document = {
            "format": FORMAT,
            "elections": {code: e.as_json() for code, e in sorted(self._entries.items())},
        }
        data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".catalogo-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

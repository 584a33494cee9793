"""Each acta's digitized image as the results CSV describes it.

The PREP publishes, per acta, the SHA-256 of its digitized image (``SHA``; the INE calls it
``CODIGO_INTEGRIDAD``), how it was digitized (``DIGITALIZACION``: MOVIL or ESCANER), where
(``ORIGEN``: CASILLA or CATD), what was digitized (``TIPO_DOCUMENTO``) and ``CLAVE_ACTA``.
The site shows them beside the acta's figures, so anyone holding the image can check it.

These columns are read here, from the rows of the results file ``prep`` already checked,
and matched to its actas by distrito (or municipio) and CLAVE_CASILLA, in file order: the
same casilla key can appear in two municipios (Campeche's sección 0333 is split between
Champotón and Seybaplaya). A column the file does not have is left empty.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from prepush.build.prep import GROUP_COLUMNS, Election, decode

COLUMNS = {
    "clave_acta": ("CLAVE_ACTA",),
    "sha256": ("SHA", "CODIGO_INTEGRIDAD", "SHA256"),
    "digitalizacion": ("DIGITALIZACION",),
    "origen": ("ORIGEN",),
    "tipo_documento": ("TIPO_DOCUMENTO",),
}
# What the PREP prints where there is no image (an acta that did not arrive).
EMPTY = {"", "-", "N/A", "NA", "SIN DATO"}


@dataclass(frozen=True)
class Digitized:
    clave_acta: str = ""
    sha256: str = ""
    digitalizacion: str = ""
    origen: str = ""
    tipo_documento: str = ""

    def as_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in COLUMNS}


NOT_DIGITIZED = Digitized()


def cell(text: str) -> str:
    """A key as the PREP may quote it: ``'040001B0100``, ``"…"`` or ``="…"``."""
    value = text.strip()
    if value.startswith('="') and value.endswith('"'):
        value = value[2:-1]
    if value.startswith("'"):
        value = value[1:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.strip()


def digitization_of(e: Election) -> list[Digitized]:
    """Each acta's digitization, in the order of ``e.actas``."""
    found = _rows(e)
    return [_take(found, (cell(a.group_id), cell(a.clave))) for a in e.actas]


def _take(found: dict[tuple[str, str], deque[Digitized]], key: tuple[str, str]) -> Digitized:
    rows = found.get(key)
    return rows.popleft() if rows else NOT_DIGITIZED


def _rows(e: Election) -> dict[tuple[str, str], deque[Digitized]]:
    source = next((s for s in e.sources if s.name == e.source_name), None)
    if source is None or e.header_line < 1:
        return {}
    lines = decode(source).splitlines()
    header_text = lines[e.header_line - 1]
    delimiter = "|" if header_text.count("|") > header_text.count(",") else ","
    header = [cell(h) for h in next(csv.reader([header_text], delimiter=delimiter))]
    index = {name: i for i, name in enumerate(header)}
    if "CLAVE_CASILLA" not in index:
        return {}
    group = _first(index, [g[0] for g in GROUP_COLUMNS])
    wanted = {field: _first(index, names) for field, names in COLUMNS.items()}
    found: dict[tuple[str, str], deque[Digitized]] = {}
    for row in csv.reader(lines[e.header_line :], delimiter=delimiter):
        if len(row) != len(header):
            continue
        key = (_value(row, group, keep_dash=True), cell(row[index["CLAVE_CASILLA"]]))
        values = {f: _value(row, i) for f, i in wanted.items()}
        found.setdefault(key, deque()).append(Digitized(**values))
    return found


def _first(index: dict[str, int], names: Sequence[str]) -> int | None:
    return next((index[n] for n in names if n in index), None)


def _value(row: Sequence[str], column: int | None, keep_dash: bool = False) -> str:
    if column is None:
        return ""
    value = cell(row[column])
    return value if keep_dash or value.upper() not in EMPTY else ""

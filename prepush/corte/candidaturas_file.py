"""A candidaturas file: each candidatura (party, person, suplente) with its group and line,
the groups numbered within their entidad where the file names more than one.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from prepush.corte import formats
from prepush.corte.formats import normal
from prepush.corte.model import Candidatura, SourceFile
from prepush.corte.text import Text, clean
from prepush.exceptions import InputError

KINDS = {
    "ID_DISTRITO_LOCAL": "distrito",
    "ID_DISTRITO_FEDERAL": "distrito",
    "ID_DISTRITO": "distrito",
    "DISTRITO": "distrito",
    "ID_MUNICIPIO_LOCAL": "municipio",
    "ID_MUNICIPIO": "municipio",
    "MUNICIPIO": "municipio",
    "ID_JUNTA": "junta",
}


@dataclass(frozen=True)
class CandidaturasFile:
    text: Text
    header_index: int
    header: tuple[str, ...]
    party: int
    name: int
    suplente: int | None
    entidad: int | None
    group: int | None
    kind: str | None

    @classmethod
    def of(cls, source: SourceFile) -> CandidaturasFile:
        text = Text.of(source)
        index = text.next_content(text.first - 1)
        if index is None:
            raise InputError(source.name, 1, None, "el archivo de candidaturas está vacío")
        header = tuple(text.cells(index))
        party, name = formats.find(header, formats.PARTY), formats.find(header, formats.PROPIETARIA)
        if party is None or name is None:
            raise InputError(
                source.name,
                index + 1,
                None,
                "no se reconoce el encabezado de candidaturas: faltan"
                f" {formats.spelled(formats.PARTY)} o {formats.spelled(formats.PROPIETARIA)}",
            )
        group_role = next(
            (r for r in formats.CANDIDATURA_GROUPS if formats.find(header, r) is not None), None
        )
        group = formats.find(header, group_role) if group_role else None
        if group is None:
            # Any other numbered column: the group of a PREP prepush has not seen.
            entity = formats.find(header, formats.CANDIDATURA_ENTIDAD)
            group = next(
                (i for i, h in enumerate(header) if normal(h).startswith("ID_") and i != entity),
                None,
            )
        return cls(
            text=text,
            header_index=index,
            header=header,
            party=party,
            name=name,
            suplente=formats.find(header, formats.SUPLENTE),
            entidad=formats.find(header, formats.CANDIDATURA_ENTIDAD),
            group=group,
            kind=KINDS.get(group_role.key) if group_role else None,
        )

    @property
    def multi_entity(self) -> bool:
        """Whether its groups belong to more than one entidad (INE's distritos)."""
        return len({e for _, e, g in self._parsed() if e.isdigit() and g}) > 1

    def rows(self, multi_entity: bool | None) -> Iterator[Candidatura]:
        """Each candidatura with its line; ``multi_entity`` (None: as the file says) numbers
        a group within its entidad, as the results of a federal election are."""
        parsed = list(self._parsed())
        if multi_entity is None:
            multi_entity = self.multi_entity
        for candidatura, entidad, group in parsed:
            number = int(group) if group.isdigit() else None
            if number is not None and multi_entity:
                number = int(entidad) * 1000 + number if entidad.isdigit() else None
            yield dataclasses.replace(candidatura, group=number)

    def _parsed(self) -> Iterator[tuple[Candidatura, str, str]]:
        text, width = self.text, len(self.header)
        delimiter = text.delimiter(self.header_index) or ","
        body = text.lines[self.header_index + 1 :]
        for offset, row in enumerate(csv.reader(body, delimiter=delimiter)):
            number = self.header_index + 2 + offset
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise InputError(
                    text.name,
                    number,
                    min(len(row), width) + 1,
                    f"fila incompleta: {len(row)} campos y el encabezado {width}",
                )
            group = clean(row[self.group]) if self.group is not None else ""
            entidad = clean(row[self.entidad]) if self.entidad is not None else ""
            candidatura = Candidatura(
                party=clean(row[self.party]),
                name=clean(row[self.name]),
                suplente=clean(row[self.suplente]) if self.suplente is not None else None,
                group=None,
                line=number,
            )
            if normal(group) in formats.NATIONAL:
                group = ""
            yield candidatura, entidad, group


def read_candidaturas(source: SourceFile) -> list[Candidatura]:
    """A candidaturas file on its own (its groups numbered within their entidad when it
    names more than one)."""
    return list(CandidaturasFile.of(source).rows(None))

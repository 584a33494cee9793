"""A results file read into an ``Election``: its acta header and columns by role, its
preamble, and each row an ``Acta``, naming file, line and column where one can't be read.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from prepush.corte import formats
from prepush.corte.candidaturas_file import CandidaturasFile
from prepush.corte.file_roles import acta_header, summary_names
from prepush.corte.formats import election_code, normal
from prepush.corte.model import NO_IMAGE, Acta, ActaImage, Election, SourceFile
from prepush.corte.preamble import Preamble
from prepush.corte.text import Text, clean, fitted
from prepush.exceptions import InputError

OUT_OF_CATALOGUE = "FUERA DE CATALOGO"


def parse_election(
    source: SourceFile,
    candidaturas: SourceFile | None,
    sources: tuple[SourceFile, ...] = (),
    zone: tzinfo | None = None,
) -> Election:
    text = Text.of(source)
    last_line = text.last_line
    if last_line == 0:
        raise InputError(source.name, 1, None, "el archivo está vacío")
    header_index = _header_or_refuse(text, last_line)
    delimiter = text.delimiter(header_index)
    if delimiter is None:
        raise InputError(
            source.name,
            header_index + 1,
            None,
            "no se reconoce el delimitador (se esperan comas o barras verticales |)",
        )
    header = tuple(text.cells(header_index))
    cand = CandidaturasFile.of(candidaturas) if candidaturas else None
    columns = _Columns.of(header, source.name, header_index + 1, cand.kind if cand else None)
    preamble = Preamble.of(text, header_index)
    corte = preamble.corte_time(zone)
    compose = cand.multi_entity if cand else False
    actas, fuera, multi_entity = _rows(text, header_index, delimiter, header, columns, compose)
    code = _election_code(source)
    return Election(
        code=code,
        name=preamble.name or code,
        corte_time=corte.moment,
        preamble=preamble.figures,
        header=header,
        group_kind=columns.group_kind,
        group_label=columns.group_label,
        vote_columns=tuple(header[i] for i in columns.votes),
        actas=tuple(actas),
        fuera_catalogo=fuera,
        candidaturas=tuple(cand.rows(multi_entity or compose)) if cand else (),
        sources=sources or (source,),
        source_name=source.name,
        candidaturas_name=candidaturas.name if candidaturas else None,
        header_line=header_index + 1,
        last_line=last_line,
        preamble_headers=preamble.headers,
        summary_line=preamble.names_line,
        corte_printed=corte.printed,
        corte_line=corte.line,
        corte_offset_printed=corte.offset_printed,
    )


def _election_code(source: SourceFile) -> str:
    """From the file's name; from its folder's (``..._PREP_PRES``) when the name says none."""
    code = election_code(source.name)
    if code in formats.ELECTION_CODES:
        return code
    return formats.container_code(source.container) or code


def _header_or_refuse(text: Text, last_line: int) -> int:
    index = acta_header(text)
    if index is not None:
        return index
    if summary_names(text, len(text.lines)) is not None and last_line <= 12:
        what = "termina antes del encabezado de las actas: ¿está cortado?"
    else:
        what = (
            "no se reconoce el encabezado de las actas: ninguna línea con CLAVE_CASILLA, o"
            " SECCION y TIPO_CASILLA, seguida de filas de su mismo ancho (nombres aceptados en"
            " docs/package-format.md)"
        )
    raise InputError(
        text.name, last_line, None, f"{what}; el archivo termina en la línea {last_line}"
    )


@dataclass(frozen=True)
class _Columns:
    clave: int | None
    entidad: int | None
    entidad_name: int | None
    seccion: int
    id_casilla: int | None
    tipo: int
    ext: int | None
    group_id: int | None
    group_name: int | None
    group_kind: str
    group_label: str
    lista_nominal: int
    observaciones: int
    contabilizada: int
    votes: tuple[int, ...]
    calculado: int | None
    published: tuple[int, ...]
    boletas: tuple[int, int] | None
    # formats.IMAGE's columns, each None where the file has none.
    image: tuple[int | None, ...]

    @classmethod
    def of(cls, header: Sequence[str], source: str, line: int, kind: str | None) -> _Columns:
        def at(role: formats.Role) -> int | None:
            return formats.find(header, role)

        missing = [r for r in formats.REQUIRED if at(r) is None]
        if missing:
            listing = ", ".join(formats.spelled(r) for r in missing)
            raise InputError(
                source,
                line,
                None,
                f"no se reconoce el encabezado de las actas: falta la columna {listing}",
            )
        group = _group(header, kind)
        votes = _vote_block(header, source, line)
        sobrantes, votaron = at(formats.BOLETAS_SOBRANTES), at(formats.PERSONAS_VOTARON)
        return cls(
            clave=at(formats.CLAVE_CASILLA),
            entidad=at(formats.ENTIDAD_ID),
            entidad_name=at(formats.ENTIDAD_NAME),
            seccion=_required(at(formats.SECCION)),
            id_casilla=at(formats.ID_CASILLA),
            tipo=_required(at(formats.TIPO_CASILLA)),
            ext=at(formats.EXT_CONTIGUA),
            group_id=formats.find(header, group.id) if group else None,
            group_name=formats.find(header, group.name) if group else None,
            group_kind=group.kind if group else "entidad",
            group_label=_group_label(group, kind),
            lista_nominal=_required(at(formats.LISTA_NOMINAL)),
            observaciones=_required(at(formats.OBSERVACIONES)),
            contabilizada=_required(at(formats.CONTABILIZADA)),
            votes=votes,
            calculado=at(formats.VOTOS_CALCULADO),
            published=tuple(i for role in formats.PUBLISHED if (i := at(role)) is not None),
            boletas=(sobrantes, votaron) if sobrantes is not None and votaron is not None else None,
            image=tuple(at(role) for role in formats.IMAGE),
        )


def _required(index: int | None) -> int:
    assert index is not None  # checked by _Columns.of
    return index


def _group_label(group: formats.Group | None, kind: str | None) -> str:
    """The group's name on the site. Where the candidaturas file groups by a kind the results
    have no column for, the results' group column holds that kind: Campeche's JUNTAS puts
    each junta municipal (PICH, TIXMUCUY) in DISTRITO_LOCAL, its candidaturas by ID_JUNTA."""
    if group is None:
        return "Entidad"
    if kind in formats.KIND_LABELS and kind != group.kind:
        return formats.KIND_LABELS[kind]
    return group.label


def _group(header: Sequence[str], kind: str | None) -> formats.Group | None:
    present = [g for g in formats.GROUPS if formats.find(header, g.id) is not None]
    preferred = [g for g in present if g.kind == kind]
    return next(iter(preferred or present), None)


def _vote_block(header: Sequence[str], source: str, line: int) -> tuple[int, ...]:
    """The vote columns: the run of columns that are not the acta's identification, counts
    or totals (parties, coalitions and independents go by any name), with NO_REGISTRADOS and
    NULOS; the run that holds NULOS, else the longest."""
    known = {normal(n) for role in formats.ACTA_ROLES for n in role.names}
    closing = {normal(n) for role in (formats.NO_REGISTRADOS, formats.NULOS) for n in role.names}
    runs: list[list[int]] = [[]]
    for index, name in enumerate(header):
        key = normal(name)
        if key and (key not in known or key in closing):
            runs[-1].append(index)
        elif runs[-1]:
            runs.append([])
    nulos = {formats.find(header, formats.NULOS)}
    block = next((r for r in runs if nulos & set(r)), max(runs, key=len))
    if not block:
        raise InputError(
            source,
            line,
            None,
            "no se reconocen las columnas de votos: se esperan, entre la identificación del"
            " acta (SECCION, TIPO_CASILLA... TOTAL_VOTOS_SACADOS) y sus totales"
            " (TOTAL_VOTOS_ASENTADO...), las de los partidos, NO_REGISTRADOS y NULOS",
        )
    return tuple(block)


def _rows(
    text: Text,
    header_index: int,
    delimiter: str,
    header: Sequence[str],
    c: _Columns,
    compose: bool = False,
) -> tuple[list[Acta], int, bool]:
    """The catalogue's actas, the out-of-catalogue count, and whether groups are numbered
    within their entidad: when the file spans more than one (INE's federal elections, whose
    distritos restart at 1 in each entidad), or when ``compose`` (its candidaturas do)."""
    actas: list[Acta] = []
    entidades: list[tuple[str, str]] = []
    fuera = 0
    width = len(header)
    last_line = text.last_line
    body = text.lines[header_index + 1 :]
    for offset, cells in enumerate(csv.reader(body, delimiter=delimiter)):
        number = header_index + 2 + offset
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        row = fitted(cells, header)
        if row is None:
            raise InputError(
                text.name,
                number,
                min(len(cells), width) + 1,
                _width_problem(len(cells), width, number == last_line, not actas and not fuera),
            )
        clave = _clave(row, c)
        observaciones = row[c.observaciones].strip()
        if clave in ("", "-") or OUT_OF_CATALOGUE in normal(observaciones).replace("_", " "):
            fuera += 1
            continue
        actas.append(_acta(row, c, clave, observaciones, text.name, number))
        entidades.append(_entidad(row, c))
    numbered = {e for e, _ in entidades if e.isdigit()}
    if len(numbered) <= 1 and not (compose and numbered):
        return actas, fuera, False
    return [_within_entidad(a, e) for a, e in zip(actas, entidades, strict=True)], fuera, True


def _width_problem(cells: int, width: int, last: bool, first: bool) -> str:
    said = f"la fila tiene {cells} campos y el encabezado {width}"
    if last:
        return f"{said}: es la última, el archivo parece truncado"
    if first:
        return f"{said} desde la primera fila: no se reconoce la forma de las filas"
    return f"{said}: fila dañada o con el delimitador equivocado"


def _clave(row: Sequence[str], c: _Columns) -> str:
    if c.clave is not None:
        return clean(row[c.clave])
    # INE 2012 and 2015 print no CLAVE_CASILLA: composed as the LEEMEs define it (entidad
    # in 2 digits, sección 4, tipo, casilla 2, contigua 2: 010338B0100).
    parts = ((c.entidad, 2), (c.seccion, 4), (c.tipo, 0), (c.id_casilla, 2), (c.ext, 2))
    cells = [(clean(row[i]), width) for i, width in parts if i is not None]
    if not any(cell for cell, _ in cells):
        return ""
    return "".join(cell.zfill(width) if cell.isdigit() else cell for cell, width in cells)


def _entidad(row: Sequence[str], c: _Columns) -> tuple[str, str]:
    number = clean(row[c.entidad]) if c.entidad is not None else ""
    name = row[c.entidad_name].strip() if c.entidad_name is not None else ""
    if not number and name.isdigit():
        number, name = name, ""
    return number, name


def _within_entidad(acta: Acta, entidad: tuple[str, str]) -> Acta:
    """Distrito 1 of Aguascalientes is ``01001``: two digits of entidad, three of group."""
    number, name = entidad
    if not (number.isdigit() and acta.group_id.isdigit()):
        return acta
    group_id = f"{int(number):02d}{int(acta.group_id):03d}"
    label = f"{name}: {acta.group_name}" if name and acta.group_name else acta.group_name
    return dataclasses.replace(acta, group_id=group_id, group_name=label)


def _acta(
    row: Sequence[str], c: _Columns, clave: str, observaciones: str, source: str, number: int
) -> Acta:
    contabilizada = _contabilizada(row[c.contabilizada], source, number, c.contabilizada + 1)
    votes: tuple[int, ...] | None = None
    if contabilizada is not None:
        strict = contabilizada == 1
        votes = tuple(_vote(row[i], source, number, i + 1, strict) for i in c.votes)
    return Acta(
        clave=clave,
        seccion=clean(row[c.seccion]),
        id_casilla=clean(row[c.id_casilla]) if c.id_casilla is not None else "",
        tipo=clean(row[c.tipo]),
        ext=clean(row[c.ext]) if c.ext is not None else "",
        group_id=_group_id(row, c),
        group_name=_readable(row[c.group_name]) if c.group_name is not None else "",
        lista_nominal=_int(row[c.lista_nominal], source, number, c.lista_nominal + 1),
        contabilizada=contabilizada,
        observaciones=observaciones,
        votes=votes,
        published=_published(row, c) if contabilizada is not None else "",
        boletas=_boletas(row, c) if contabilizada is not None else None,
        calculado=_number(row[c.calculado]) if c.calculado is not None else None,
        line=number,
        image=_image(row, c),
    )


def _image(row: Sequence[str], c: _Columns) -> ActaImage:
    cells = [_readable(clean(row[i])) if i is not None else "" for i in c.image]
    return ActaImage(*cells) if any(cells) else NO_IMAGE


def _group_id(row: Sequence[str], c: _Columns) -> str:
    """As in the CSV (``007``); a value the PREP did not fill (``N/A``) is no group."""
    if c.group_id is None:
        return ""
    value = _readable(clean(row[c.group_id]))
    return value if re.fullmatch(r"[A-Za-z0-9_-]*", value) else ""


def _readable(cell: str) -> str:
    value = cell.strip()
    return "" if formats.unreadable(value) else value


def _number(cell: str) -> int | None:
    value = clean(cell)
    return int(value) if value.isdigit() else None


def _boletas(row: Sequence[str], c: _Columns) -> int | None:
    if c.boletas is None:
        return None
    cells = [clean(row[i]) for i in c.boletas]
    return sum(int(cell) for cell in cells) if all(cell.isdigit() for cell in cells) else None


STAMP = re.compile(
    r"^(?:(?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{4})|(?P<Y>\d{4})[-/](?P<mo>\d{2})[-/](?P<dd>\d{2}))"
    r"[ T](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
)


def _published(row: Sequence[str], c: _Columns) -> str:
    """The acta's publication time, normalized so that it sorts as text.

    The PREP publishes an acta in the first corte after its verification, and an acta never
    changes afterwards (checked on every corte of Campeche 2021): ordered by this time, the
    actas of a corte are those of the previous corte followed by the new ones.
    """
    for column in c.published:
        match = STAMP.match(clean(row[column]))
        if match:
            if match["y"]:
                date = f"{match['y']}-{match['m']}-{match['d']}"
            else:
                date = f"{match['Y']}-{match['mo']}-{match['dd']}"
            return f"{date} {match['H']}:{match['M']}:{match['S'] or '00'}"
    return ""


def _contabilizada(cell: str, source: str, line: int, column: int) -> int | None:
    value = clean(cell)
    if value in ("", "-"):
        return None
    if value in ("0", "1", "2"):
        return int(value)
    raise InputError(
        source, line, column, f"no se reconoce CONTABILIZADA {value!r} (se espera 0, 1, 2 o vacío)"
    )


def _vote(cell: str, source: str, line: int, column: int, strict: bool) -> int:
    """A vote; what the PREP could not read counts as zero. In a counted acta anything else
    is refused (a shifted column or a damaged row would show up so); in an acta not counted
    the PREP prints reasons (``Sin Acta``), and its votes add to nothing."""
    value = clean(cell)
    if value.isdigit():
        return int(value)
    if formats.unreadable(value) or not strict:
        return 0
    raise InputError(source, line, column, f"voto no numérico {value!r}")


def _int(cell: str, source: str, line: int, column: int) -> int:
    value = clean(cell)
    if value.isdigit():
        return int(value)
    if formats.unreadable(value):
        return 0
    raise InputError(source, line, column, f"valor no numérico {value!r}")

"""Read the PREP's CSV files: robustly, and naming file, line and column when they can't be.

The layout is the one the PREP publishes (see ``shared/data/prep/README.md``): a preamble
with the election name, the corte time and a summary, then one row per acta. Other PREPs vary
it, so nothing here counts lines: the summary is the line after ``ACTAS_ESPERADAS``, the rows
start after the line that begins with ``CLAVE_CASILLA``, party columns are read from the
header, and the encoding (UTF-8 with or without BOM, Latin-1) and delimiter (comma or pipe)
are detected.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from prepush.exceptions import InputError

SUMMARY_FIELDS = (
    "ACTAS_ESPERADAS",
    "ACTAS_REGISTRADAS",
    "ACTAS_FUERA_CATALOGO",
    "ACTAS_CAPTURADAS",
    "PORCENTAJE_ACTAS_CAPTURADAS",
    "ACTAS_CONTABILIZADAS",
    "PORCENTAJE_ACTAS_CONTABILIZADAS",
    "PORCENTAJE_ACTAS_INCONSISTENCIAS",
    "ACTAS_NO_CONTABILIZADAS",
    "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
    "TOTAL_VOTOS_C_CS",
    "TOTAL_VOTOS_S_CS",
    "PORCENTAJE_PARTICIPACION_CIUDADANA",
)
REQUIRED_COLUMNS = (
    "CLAVE_CASILLA",
    "SECCION",
    "TIPO_CASILLA",
    "LISTA_NOMINAL",
    "OBSERVACIONES",
    "CONTABILIZADA",
)
# Columns that open the vote block, in order of preference, and the ones that close it.
VOTES_AFTER = ("TOTAL_VOTOS_SACADOS", "TOTAL_REP_PARTIDO_CI_VOTARON", "TOTAL_PERSONAS_VOTARON")
VOTES_BEFORE = ("TOTAL_VOTOS_ASENTADO", "TOTAL_VOTOS_CALCULADO", "LISTA_NOMINAL")
GROUP_COLUMNS = (
    ("ID_DISTRITO_LOCAL", "DISTRITO_LOCAL", "distrito", "Distrito local"),
    ("ID_DISTRITO_FEDERAL", "DISTRITO_FEDERAL", "distrito", "Distrito federal"),
    ("ID_DISTRITO", "DISTRITO", "distrito", "Distrito"),
    ("ID_MUNICIPIO", "MUNICIPIO", "municipio", "Municipio"),
    ("ID_MUNICIPIO_LOCAL", "MUNICIPIO_LOCAL", "municipio", "Municipio"),
)
# What the PREP prints in a vote cell it could not read; it counts as zero.
UNREADABLE = {"", "-", "ilegible", "sin dato", "sin datos", "n/a", "na", "null", "x"}
OUT_OF_CATALOGUE = "FUERA DE CATALOGO"
CORTE_LINE = re.compile(
    r"(?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{4}) (?P<H>\d{2}):(?P<M>\d{2})"
    r"(?:\s*\(UTC(?P<off>[+-]\d{1,2})(?::?(?P<offm>\d{2}))?\))?"
)
CONTAINER_CODE = re.compile(r"_PREP_(?P<code>[A-Z0-9_]+?)_[A-Z]+$")
# When an acta was published: verified, else captured, else received (the first one present).
PUBLISHED_COLUMNS = ("FECHA_HORA_VERIFICACION", "FECHA_HORA_CAPTURA", "FECHA_HORA_ACOPIO")
STAMP = re.compile(
    r"^(?:(?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{4})|(?P<Y>\d{4})-(?P<mo>\d{2})-(?P<dd>\d{2}))"
    r"[ T](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
)


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Acta:
    clave: str
    seccion: str
    id_casilla: str
    tipo: str
    ext: str
    group_id: str
    group_name: str
    lista_nominal: int
    contabilizada: int | None
    observaciones: str
    votes: tuple[int, ...] | None
    # "AAAA-MM-DD HH:MM:SS" local time, or "" when the row carries no time.
    published: str = ""
    # Boletas the casilla received for this acta (sobrantes plus the people who voted), when
    # the CSV has both columns and the acta was captured.
    boletas: int | None = None

    @property
    def captured(self) -> bool:
        return self.contabilizada is not None

    @property
    def counted(self) -> bool:
        return self.contabilizada == 1

    @property
    def total(self) -> int | None:
        return None if self.votes is None else sum(self.votes)


@dataclass(frozen=True)
class Candidatura:
    party: str
    name: str
    suplente: str | None
    group: int | None
    # 1-based line of the row in its file, for messages.
    line: int = 0


@dataclass(frozen=True)
class Election:
    code: str
    name: str
    corte_time: datetime
    preamble: dict[str, str]
    header: tuple[str, ...]
    group_kind: str
    group_label: str
    vote_columns: tuple[str, ...]
    actas: tuple[Acta, ...]
    fuera_catalogo: int
    candidaturas: tuple[Candidatura, ...] = ()
    sources: tuple[SourceFile, ...] = field(default=())
    # Where the data came from, for messages: the results file, the candidaturas file (None
    # when it was not among the inputs), the header line and the last line with content.
    source_name: str = ""
    candidaturas_name: str | None = None
    header_line: int = 0
    last_line: int = 0

    @property
    def expected_candidaturas_name(self) -> str:
        return candidaturas_name_for(self.source_name)


# --- collecting the files ------------------------------------------------------------------


def collect_sources(inputs: Sequence[Path]) -> list[SourceFile]:
    """Every CSV and LEEME under ``inputs`` (files, directories, ZIPs with nested ZIPs)."""
    for path in inputs:
        if not path.exists():
            raise InputError(str(path), None, None, "no existe")
    return _unique(source for path in inputs for source in _from_path(path))


def sources_from_zip(name: str, data: bytes) -> list[SourceFile]:
    """Every CSV and LEEME of a ZIP already read into memory (with its nested ZIPs)."""
    return _unique(_from_zip(name, data))


def _unique(sources: Iterable[SourceFile]) -> list[SourceFile]:
    found: dict[str, SourceFile] = {}
    for source in sources:
        if source.name in found and found[source.name].data != source.data:
            raise InputError(source.name, None, None, "aparece dos veces con contenido distinto")
        found[source.name] = source
    return [found[name] for name in sorted(found)]


def _from_path(path: Path) -> Iterator[SourceFile]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() in (".csv", ".txt", ".zip"):
                yield from _from_file(child.name, child.read_bytes(), child.parent.name)
    else:
        yield from _from_file(path.name, path.read_bytes(), path.parent.name)


def _from_file(name: str, data: bytes, container: str) -> Iterator[SourceFile]:
    lower = name.lower()
    if lower.endswith(".zip"):
        yield from _from_zip(name, data)
    elif lower.endswith(".csv"):
        yield SourceFile(name, data)
    elif lower.startswith("leeme") and lower.endswith(".txt"):
        yield SourceFile(_leeme_name(name, container), data)


def _from_zip(name: str, data: bytes) -> Iterator[SourceFile]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
        contents = [(m.filename, archive.read(m)) for m in members]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise InputError(name, None, None, f"no es un ZIP legible ({exc})") from None
    container = PurePosixPath(name).stem
    for member, content in contents:
        member_path = PurePosixPath(member)
        parent = member_path.parent.name or container
        yield from _from_file(member_path.name, content, parent)


def _leeme_name(name: str, container: str) -> str:
    match = CONTAINER_CODE.search(container)
    suffix = match["code"] if match else container
    return f"LEEME_{suffix}.txt" if suffix else name


# --- parsing -------------------------------------------------------------------------------


def election_code(filename: str) -> str:
    """``CAMP_DIP_LOC_2021.csv`` -> ``DIP_LOC``: drop the state prefix and the year."""
    tokens = PurePosixPath(filename).stem.upper().split("_")
    if tokens and tokens[-1].isdigit():
        tokens = tokens[:-1]
    if "CANDIDATURA" in tokens:
        tokens.remove("CANDIDATURA")
    return "_".join(tokens[1:]) if len(tokens) > 1 else "_".join(tokens)


def candidaturas_name_for(filename: str) -> str:
    """``CAMP_GOB_2021.csv`` -> ``CAMP_GOB_CANDIDATURA_2021.csv``, the PREP's naming."""
    path = PurePosixPath(filename)
    tokens = path.stem.split("_")
    if len(tokens) > 1 and tokens[-1].isdigit():
        tokens.insert(len(tokens) - 1, "CANDIDATURA")
    else:
        tokens.append("CANDIDATURA")
    return "_".join(tokens) + (path.suffix or ".csv")


def parse_sources(sources: Sequence[SourceFile]) -> list[Election]:
    results = [
        s
        for s in sources
        if s.name.lower().endswith(".csv") and "CANDIDATURA" not in s.name.upper()
    ]
    candidaturas = {
        election_code(s.name): s
        for s in sources
        if s.name.lower().endswith(".csv") and "CANDIDATURA" in s.name.upper()
    }
    leemes = {s.name: s for s in sources if s.name.upper().startswith("LEEME")}
    elections = []
    for source in results:
        code = election_code(source.name)
        extra = [candidaturas[code]] if code in candidaturas else []
        extra += [s for n, s in leemes.items() if code in n.upper() or n.upper() == "LEEME.TXT"]
        elections.append(parse_election(source, candidaturas.get(code), (source, *extra)))
    return sorted(elections, key=lambda e: election_order(e.code))


def election_order(code: str) -> tuple[int, str]:
    order = {"PRES": 0, "GOB": 1, "SEN": 2, "DIP_FED": 3, "DIP_LOC": 4, "AYUN": 5, "JUNTAS": 6}
    return (order.get(code, 99), code)


def decode(source: SourceFile) -> str:
    data = source.data
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _clean(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith("'"):
        cell = cell[1:]
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1]
    return cell


def _delimiter(line: str, source: str, number: int) -> str:
    if line.count("|") > line.count(","):
        return "|"
    if "," in line:
        return ","
    raise InputError(
        source,
        number,
        None,
        "no se reconoce el delimitador (se esperan comas o barras verticales |)",
    )


def parse_election(
    source: SourceFile, candidaturas: SourceFile | None, sources: tuple[SourceFile, ...] = ()
) -> Election:
    text = decode(source)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(source.name, 1, None, "el archivo está vacío")
    last_line = max(number for number, line in enumerate(lines, start=1) if line.strip())
    summary_index = _find_line(
        lines, "ACTAS_ESPERADAS", source.name, "la línea ACTAS_ESPERADAS", last_line
    )
    header_index = _find_line(
        lines, "CLAVE_CASILLA", source.name, "el encabezado CLAVE_CASILLA", last_line
    )
    delimiter = _delimiter(lines[header_index], source.name, header_index + 1)
    header = tuple(_clean(c) for c in next(csv.reader([lines[header_index]], delimiter=delimiter)))
    preamble = _preamble(lines, summary_index, delimiter, source.name)
    name = next((_clean(line) for line in lines[:summary_index] if line.strip()), "")
    corte_time = _corte_time(lines[:summary_index], source.name)
    columns = _columns(header, source.name, header_index + 1)
    actas, fuera = _rows(lines, header_index, delimiter, header, columns, source.name)
    code = election_code(source.name)
    return Election(
        code=code,
        name=name.strip(",| ") or code,
        corte_time=corte_time,
        preamble=preamble,
        header=header,
        group_kind=columns.group_kind,
        group_label=columns.group_label,
        vote_columns=tuple(header[i] for i in columns.votes),
        actas=tuple(actas),
        fuera_catalogo=fuera,
        candidaturas=tuple(_candidaturas(candidaturas)) if candidaturas else (),
        sources=sources or (source,),
        source_name=source.name,
        candidaturas_name=candidaturas.name if candidaturas else None,
        header_line=header_index + 1,
        last_line=last_line,
    )


def _find_line(lines: Sequence[str], prefix: str, source: str, what: str, last: int) -> int:
    for index, line in enumerate(lines):
        if _clean(line.lstrip("\ufeff")).startswith(prefix):
            return index
    raise InputError(
        source,
        last,
        None,
        f"no se encontró {what} (el archivo termina en la línea {last}); ¿es un CSV del PREP"
        " completo?",
    )


def _preamble(lines: Sequence[str], index: int, delimiter: str, source: str) -> dict[str, str]:
    names = [_clean(c) for c in next(csv.reader([lines[index]], delimiter=delimiter))]
    if index + 1 >= len(lines):
        raise InputError(source, index + 2, None, "falta la línea de valores del resumen")
    values = [_clean(c) for c in next(csv.reader([lines[index + 1]], delimiter=delimiter))]
    if len(values) != len(names):
        raise InputError(
            source,
            index + 2,
            min(len(values), len(names)) + 1,
            f"el resumen tiene {len(values)} valores para {len(names)} campos",
        )
    return dict(zip(names, values, strict=True))


def _corte_time(lines: Sequence[str], source: str) -> datetime:
    for line in lines:
        match = CORTE_LINE.search(line)
        if match:
            hours = int(match["off"]) if match["off"] else -6
            minutes = int(match["offm"] or 0) * (-1 if hours < 0 else 1)
            zone = timezone(timedelta(hours=hours, minutes=minutes))
            return datetime(
                int(match["y"]),
                int(match["m"]),
                int(match["d"]),
                int(match["H"]),
                int(match["M"]),
                tzinfo=zone,
            )
    raise InputError(source, 2, None, "no se encontró la fecha y hora del corte (DD/MM/AAAA HH:MM)")


@dataclass(frozen=True)
class _Columns:
    clave: int
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
    published: tuple[int, ...]
    boletas: tuple[int, int] | None


BOLETAS_COLUMNS = ("TOTAL_BOLETAS_SOBRANTES", "TOTAL_PERSONAS_VOTARON")


def _columns(header: Sequence[str], source: str, line: int) -> _Columns:
    index = {name: i for i, name in enumerate(header)}
    for required in REQUIRED_COLUMNS:
        if required not in index:
            raise InputError(source, line, None, f"falta la columna obligatoria {required}")
    group = next((g for g in GROUP_COLUMNS if g[0] in index), None)
    start = next((index[c] for c in VOTES_AFTER if c in index), None)
    end = next((index[c] for c in VOTES_BEFORE if c in index), None)
    if start is None or end is None or end <= start + 1:
        raise InputError(
            source,
            line,
            None,
            "no se encontraron las columnas de votos (entre"
            " TOTAL_VOTOS_SACADOS y TOTAL_VOTOS_ASENTADO)",
        )
    return _Columns(
        clave=index["CLAVE_CASILLA"],
        seccion=index["SECCION"],
        id_casilla=index.get("ID_CASILLA"),
        tipo=index["TIPO_CASILLA"],
        ext=index.get("EXT_CONTIGUA"),
        group_id=index[group[0]] if group else None,
        group_name=index.get(group[1]) if group else None,
        group_kind=group[2] if group else "entidad",
        group_label=group[3] if group else "Entidad",
        lista_nominal=index["LISTA_NOMINAL"],
        observaciones=index["OBSERVACIONES"],
        contabilizada=index["CONTABILIZADA"],
        votes=tuple(range(start + 1, end)),
        published=tuple(index[name] for name in PUBLISHED_COLUMNS if name in index),
        boletas=(index[BOLETAS_COLUMNS[0]], index[BOLETAS_COLUMNS[1]])
        if all(name in index for name in BOLETAS_COLUMNS)
        else None,
    )


def _rows(
    lines: Sequence[str],
    header_index: int,
    delimiter: str,
    header: Sequence[str],
    c: _Columns,
    source: str,
) -> tuple[list[Acta], int]:
    actas: list[Acta] = []
    fuera = 0
    width = len(header)
    body = lines[header_index + 1 :]
    for offset, row in enumerate(csv.reader(body, delimiter=delimiter)):
        number = header_index + 2 + offset
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise InputError(
                source,
                number,
                min(len(row), width) + 1,
                f"la fila tiene {len(row)} campos y el encabezado {width}: archivo truncado o"
                " con el delimitador equivocado",
            )
        clave = _clean(row[c.clave])
        observaciones = row[c.observaciones].strip()
        if clave in ("", "-") or OUT_OF_CATALOGUE in observaciones.upper():
            fuera += 1
            continue
        actas.append(_acta(row, c, clave, observaciones, source, number))
    return actas, fuera


def _acta(
    row: Sequence[str], c: _Columns, clave: str, observaciones: str, source: str, number: int
) -> Acta:
    contabilizada = _contabilizada(row[c.contabilizada], source, number, c.contabilizada + 1)
    votes: tuple[int, ...] | None = None
    if contabilizada is not None:
        votes = tuple(_vote(row[i], source, number, i + 1) for i in c.votes)
    return Acta(
        clave=clave,
        seccion=_clean(row[c.seccion]),
        id_casilla=_clean(row[c.id_casilla]) if c.id_casilla is not None else "",
        tipo=_clean(row[c.tipo]),
        ext=_clean(row[c.ext]) if c.ext is not None else "",
        group_id=_clean(row[c.group_id]) if c.group_id is not None else "",
        group_name=row[c.group_name].strip() if c.group_name is not None else "",
        lista_nominal=_int(row[c.lista_nominal], source, number, c.lista_nominal + 1),
        contabilizada=contabilizada,
        observaciones=observaciones,
        votes=votes,
        published=_published(row, c) if contabilizada is not None else "",
        boletas=_boletas(row, c) if contabilizada is not None else None,
    )


def _boletas(row: Sequence[str], c: _Columns) -> int | None:
    if c.boletas is None:
        return None
    cells = [_clean(row[i]) for i in c.boletas]
    return sum(int(cell) for cell in cells) if all(cell.isdigit() for cell in cells) else None


def _published(row: Sequence[str], c: _Columns) -> str:
    """The acta's publication time, normalized so that it sorts as text.

    The PREP publishes an acta in the first corte after its verification, and an acta never
    changes afterwards (checked on every corte of Campeche 2021): ordered by this time, the
    actas of a corte are those of the previous corte followed by the new ones.
    """
    for column in c.published:
        match = STAMP.match(row[column].strip())
        if match:
            if match["y"]:
                date = f"{match['y']}-{match['m']}-{match['d']}"
            else:
                date = f"{match['Y']}-{match['mo']}-{match['dd']}"
            return f"{date} {match['H']}:{match['M']}:{match['S'] or '00'}"
    return ""


def _contabilizada(cell: str, source: str, line: int, column: int) -> int | None:
    value = _clean(cell)
    if value in ("", "-"):
        return None
    if value in ("0", "1", "2"):
        return int(value)
    raise InputError(source, line, column, f"CONTABILIZADA {value!r} no es 0, 1, 2 ni vacío")


def _vote(cell: str, source: str, line: int, column: int) -> int:
    value = cell.strip()
    if value.isdigit():
        return int(value)
    if value.lower() in UNREADABLE:
        return 0
    raise InputError(source, line, column, f"voto no numérico {value!r}")


def _int(cell: str, source: str, line: int, column: int) -> int:
    value = _clean(cell)
    if value.isdigit():
        return int(value)
    if value in ("", "-"):
        return 0
    raise InputError(source, line, column, f"valor no numérico {value!r}")


def _candidaturas(source: SourceFile) -> Iterator[Candidatura]:
    text = decode(source)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return
    delimiter = _delimiter(lines[0], source.name, 1)
    reader = csv.reader(lines, delimiter=delimiter)
    header = [_clean(h) for h in next(reader)]
    index = {name: i for i, name in enumerate(header)}
    if "PARTIDO_CI" not in index or "CANDIDATURA_PROPIETARIA" not in index:
        raise InputError(source.name, 1, None, "faltan PARTIDO_CI o CANDIDATURA_PROPIETARIA")
    group_column = next(
        (h for h in header if h.startswith("ID_") and h not in ("ID_ESTADO", "ID_ENTIDAD")), None
    )
    for number, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise InputError(source.name, number, min(len(row), len(header)) + 1, "fila incompleta")
        group = _clean(row[index[group_column]]) if group_column else ""
        suplente = index.get("CANDIDATURA_SUPLENTE")
        yield Candidatura(
            party=_clean(row[index["PARTIDO_CI"]]),
            name=row[index["CANDIDATURA_PROPIETARIA"]].strip(),
            suplente=row[suplente].strip() if suplente is not None else None,
            group=int(group) if group.isdigit() else None,
            line=number,
        )


# --- the summary ---------------------------------------------------------------------------


def truncated_percentage(numerator: int, denominator: int) -> str:
    """Percentage truncated (not rounded) to 4 decimals, printed as the PREP prints it."""
    if denominator <= 0:
        return "0"
    scaled = numerator * 1_000_000 // denominator
    whole, fraction = divmod(scaled, 10_000)
    text = f"{whole}.{fraction:04d}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class Summary:
    actas_esperadas: int
    actas_registradas: int
    actas_fuera_catalogo: int
    actas_capturadas: int
    porcentaje_actas_capturadas: str
    actas_contabilizadas: int
    porcentaje_actas_contabilizadas: str
    porcentaje_actas_inconsistencias: str
    actas_no_contabilizadas: int
    lista_nominal_actas_contabilizadas: int
    total_votos_c_cs: int
    total_votos_s_cs: int
    porcentaje_participacion_ciudadana: str

    def as_json(self) -> dict[str, int | str]:
        return {name.lower(): getattr(self, name.lower()) for name in SUMMARY_FIELDS}


def compute_summary(e: Election) -> Summary:
    """The summary computed from the rows: the cross-check of the preamble, never shown in
    its place (see ``prepush.build.reconcile``).

    ACTAS_ESPERADAS is a catalogue fact the rows cannot always give (DIP_LOC expects 10 actas
    of representación proporcional that have no row): the preamble's value is the denominator
    of the percentages when it is at least the catalogue rows. Participation is
    TOTAL_VOTOS_C_CS over the lista nominal of counted actas.
    """
    captured = [a for a in e.actas if a.captured]
    counted = [a for a in captured if a.counted]
    # Not counted for an inconsistency in the acta itself; a missing acta ("SIN ACTA ...")
    # is not an inconsistency.
    inconsistent = sum(
        1 for a in captured if not a.counted and not a.observaciones.upper().startswith("SIN ACTA")
    )
    expected = _int_or(e.preamble.get("ACTAS_ESPERADAS"), 0)
    expected = max(expected, len(e.actas))
    lista = sum(a.lista_nominal for a in counted)
    with_special = sum(a.total or 0 for a in counted)
    without_special = sum(a.total or 0 for a in counted if a.tipo != "S")
    return Summary(
        actas_esperadas=expected,
        actas_registradas=len(captured) + e.fuera_catalogo,
        actas_fuera_catalogo=e.fuera_catalogo,
        actas_capturadas=len(captured),
        porcentaje_actas_capturadas=truncated_percentage(len(captured), expected),
        actas_contabilizadas=len(counted),
        porcentaje_actas_contabilizadas=truncated_percentage(len(counted), expected),
        porcentaje_actas_inconsistencias=truncated_percentage(inconsistent, expected),
        actas_no_contabilizadas=len(captured) - len(counted),
        lista_nominal_actas_contabilizadas=lista,
        total_votos_c_cs=with_special,
        total_votos_s_cs=without_special,
        porcentaje_participacion_ciudadana=truncated_percentage(with_special, lista),
    )


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default

"""Read a PREP's files by what they contain, naming file, line and column when they can't be.

PREPs differ from year to year and from institute to institute (see
``shared/data/prep/README.md`` and the table of names in ``prepush.corte.formats``). So
nothing here goes by a file's name or counts lines:

- a file's **role** (results, candidaturas, LEEME) is read from its content: the results file
  has an acta header (``CLAVE_CASILLA``, or ``SECCION`` and ``TIPO_CASILLA``) or a summary line,
  the candidaturas file a header with a party and a candidate, the LEEME is prose. A results
  file is paired with the candidaturas file and LEEME of its own folder or ZIP.
- the **layout**: the encoding (UTF-8 with or without BOM, Windows-1252, Latin-1), the line
  ends, the delimiter (comma or pipe, or the one a ``sep=`` first line names); the preamble is
  whatever precedes the acta header, blank lines and all: its summary is the line of figure
  names and the line after it, the corte's time the line that holds a date and an hour.
- the **columns** by role, each under any of its spellings; the vote columns are those between
  the acta's identification and counts and its totals.
- **values** written ``'0001``, ``="0001"`` or ``"0001"`` are ``0001``; a vote the PREP could
  not read (``Ilegible``, ``Sin dato``, ``N/A``...) counts as zero, as each LEEME says.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Literal

from prepush.corte import formats
from prepush.corte.formats import SUMMARY_FIELDS, election_code, election_order, normal
from prepush.exceptions import InputError

__all__ = [
    "SUMMARY_FIELDS",
    "Acta",
    "Candidatura",
    "Election",
    "SourceFile",
    "Summary",
    "collect_sources",
    "compute_summary",
    "election_code",
    "election_order",
    "parse_election",
    "parse_sources",
    "read_candidaturas",
    "sources_from_zip",
    "truncated_percentage",
]

OUT_OF_CATALOGUE = "FUERA DE CATALOGO"
SPECIAL = "S"
Role = Literal["results", "candidaturas", "leeme"]


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes
    # The folder or ZIP it came in (``20210607_2000_PREP_GOB_CAMP``): a results file goes with
    # the candidaturas file and LEEME beside it.
    container: str = ""


@dataclass(frozen=True, slots=True)
class ActaImage:
    """The acta's digitized image as the results CSV describes it, for the site: anyone
    holding the image can check it against ``sha256``. Empty where the PREP printed none."""

    clave_acta: str = ""
    sha256: str = ""
    digitalizacion: str = ""
    origen: str = ""
    tipo_documento: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "clave_acta": self.clave_acta,
            "sha256": self.sha256,
            "digitalizacion": self.digitalizacion,
            "origen": self.origen,
            "tipo_documento": self.tipo_documento,
        }


NO_IMAGE = ActaImage()


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
    # TOTAL_VOTOS_CALCULADO as printed in the row (the PREP's own sum of its votes), when
    # numeric; and the row's line in its file.
    calculado: int | None = None
    line: int = 0
    image: ActaImage = NO_IMAGE

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
    # 1-based line of the row in its file.
    line: int = 0


@dataclass(frozen=True)
class Election:
    code: str
    name: str
    corte_time: datetime
    # The preamble's figures as printed, in the PREP's order: under their canonical name
    # (``formats.SUMMARY``) when prepush recognises it, else under the PREP's own header.
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
    # Each preamble key's header as the PREP printed it (``ACTAS_FUERA_DE_CATALOGO``), and the
    # line of the figures' names.
    preamble_headers: dict[str, str] = field(default_factory=dict)
    summary_line: int = 0
    # The corte's line as printed, its number, and whether it printed its UTC offset (when it
    # did not, the roster's election.timezone gave it).
    corte_printed: str = ""
    corte_line: int = 0
    corte_offset_printed: bool = True

    @property
    def expected_candidaturas_name(self) -> str:
        return candidaturas_name_for(self.source_name)


# --- collecting the files ------------------------------------------------------------------


def collect_sources(inputs: Sequence[Path]) -> list[SourceFile]:
    """Every file under ``inputs`` that may be a PREP's (files, directories, ZIPs with
    nested ZIPs); ``parse_sources`` tells them apart by content."""
    for path in inputs:
        if not path.exists():
            raise InputError(str(path), None, None, "no existe")
    return _unique(source for path in inputs for source in _from_path(path))


def sources_from_zip(name: str, data: bytes) -> list[SourceFile]:
    """Every file of a ZIP already read into memory (with its nested ZIPs)."""
    return _unique(_from_zip(name, data))


def _unique(sources: Iterable[SourceFile]) -> list[SourceFile]:
    found: dict[tuple[str, str], SourceFile] = {}
    for source in sources:
        if not _kept(source):
            continue
        key = (source.container, source.name)
        if key in found and found[key].data != source.data:
            raise InputError(source.name, None, None, "aparece dos veces con contenido distinto")
        found[key] = source
    return [found[key] for key in sorted(found)]


def _kept(source: SourceFile) -> bool:
    """CSVs always (a CSV prepush cannot tell apart is refused later, never dropped); other
    text files only when they are a PREP's (a LEEME, or results published as .txt)."""
    if source.name.lower().endswith(".csv"):
        return True
    return role_of(source) is not None


def _from_path(path: Path) -> Iterator[SourceFile]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() in (".csv", ".txt", ".zip"):
                container = child.parent.relative_to(path.parent).as_posix()
                yield from _from_file(child.name, child.read_bytes(), container)
    else:
        yield from _from_file(path.name, path.read_bytes(), path.parent.name)


def _from_file(name: str, data: bytes, container: str) -> Iterator[SourceFile]:
    lower = name.lower()
    if lower.endswith(".zip"):
        yield from _from_zip(name, data, container)
    elif lower.endswith((".csv", ".txt")):
        yield SourceFile(name, data, container)


def _from_zip(name: str, data: bytes, parent: str = "") -> Iterator[SourceFile]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
        contents = [(m.filename, archive.read(m)) for m in members]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise InputError(name, None, None, f"no es un ZIP legible ({exc})") from None
    base = "/".join(p for p in (parent, PurePosixPath(name).stem) if p)
    for member, content in contents:
        member_path = PurePosixPath(member)
        folder = "/".join(p for p in (base, str(member_path.parent)) if p and p != ".")
        yield from _from_file(member_path.name, content, folder)


# --- reading a file's text -----------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    name: str
    # Physical lines without their ends, as an editor numbers them (line n is lines[n - 1]).
    lines: list[str]
    # The delimiter a ``sep=`` first line names, if any.
    sep: str | None

    @classmethod
    def of(cls, source: SourceFile) -> _Text:
        lines = re.split(r"\r\n|\r|\n", decode(source))
        sep = None
        if lines:
            hint = re.fullmatch(r'\s*"?sep=(.)"?\s*', lines[0], flags=re.IGNORECASE)
            sep = hint[1] if hint else None
        return cls(source.name, lines, sep)

    @property
    def first(self) -> int:
        """Index of the first line of content (after a ``sep=`` line)."""
        return 1 if self.sep else 0

    @property
    def last_line(self) -> int:
        """Number of the last line with content, 0 if none."""
        return max((n for n, line in enumerate(self.lines, start=1) if line.strip()), default=0)

    def delimiter(self, index: int) -> str | None:
        if self.sep:
            return self.sep
        line = self.lines[index]
        if line.count("|") > line.count(","):
            return "|"
        return "," if "," in line else None

    def cells(self, index: int) -> list[str]:
        delimiter = self.delimiter(index) or ","
        return [_clean(c) for c in next(csv.reader([self.lines[index]], delimiter=delimiter))]

    def next_content(self, index: int, end: int | None = None) -> int | None:
        stop = len(self.lines) if end is None else end
        return next((i for i in range(index + 1, stop) if self.lines[i].strip()), None)


def decode(source: SourceFile) -> str:
    data = source.data
    for bom, encoding in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    source.name, None, None, f"dice ser {encoding} y no lo es ({exc.reason})"
                ) from None
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _clean(cell: str) -> str:
    """``'0001``, ``="0001"`` and ``"0001"`` are ``0001``: spreadsheet quoting, not data."""
    cell = cell.strip()
    if cell.startswith('="') and cell.endswith('"') and len(cell) >= 3:
        cell = cell[2:-1]
    if cell.startswith("'"):
        cell = cell[1:]
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1]
    return cell.strip()


# --- what a file is ------------------------------------------------------------------------


# What a file is shows in its first lines: role_of reads no more (INE's results run to
# hundreds of MB).
HEAD_BYTES = 256 * 1024


def role_of(source: SourceFile) -> Role | None:
    head = source.data
    if len(head) > HEAD_BYTES:
        # Whole lines only: a character cut in two would change how the head decodes.
        head = head[: max(head.rfind(b"\n", 0, HEAD_BYTES), head.rfind(b"\r", 0, HEAD_BYTES)) + 1]
    text = _Text.of(SourceFile(source.name, head, source.container))
    if _acta_header(text) is not None or _summary_names(text, len(text.lines)) is not None:
        return "results"
    if _candidaturas_header(text) is not None:
        return "candidaturas"
    if _is_leeme(source.name, text):
        return "leeme"
    return None


def _acta_header(text: _Text) -> int | None:
    """The line that opens the actas: CLAVE_CASILLA, or SECCION and TIPO_CASILLA, among names
    only, followed by nothing or by a row of the same width (a LEEME quotes the header too,
    followed by prose)."""
    for index in range(text.first, len(text.lines)):
        line = text.lines[index]
        if "CASILLA" not in normal(line):
            continue
        if text.delimiter(index) is None:
            # A header in a delimiter PREPs do not use: a results file, refused for it.
            cells = re.split(r"[;\t]", line)
            if len(cells) >= 5 and formats.find(cells, formats.CLAVE_CASILLA) is not None:
                return index
            continue
        cells = text.cells(index)
        if len(cells) < 5 or not formats.looks_like_names(cells):
            continue
        has_clave = formats.find(cells, formats.CLAVE_CASILLA) is not None
        has_parts = all(formats.find(cells, r) is not None for r in formats.CLAVE_PARTS[:2])
        if not (has_clave or has_parts):
            continue
        following = text.next_content(index)
        if (
            following is None
            or _fitted(text.cells(following), cells) is not None
            # A row cut short at the end of the file: a cut results file is still one.
            or text.next_content(following) is None
        ):
            return index
    return None


# The preamble is at the top: a LEEME's or a candidaturas file's summary-like lines further
# down are not one.
PREAMBLE_LINES = 30


def _summary_names(text: _Text, end: int, check_width: bool = True) -> int | None:
    """The line of the preamble's figure names (``ACTAS_ESPERADAS,...``), before ``end``;
    to tell a results file by it, followed by a line of as many values (or by nothing)."""
    for index in range(text.first, min(end, text.first + PREAMBLE_LINES)):
        cells = [c for c in text.cells(index) if c]
        if len(cells) < 2 or not formats.looks_like_names(cells):
            continue
        if any(formats.summary_key(c) for c in cells):
            following = text.next_content(index, end)
            if (
                not check_width
                or following is None
                or len(text.cells(following)) == len(text.cells(index))
            ):
                return index
    return None


def _candidaturas_header(text: _Text) -> int | None:
    index = text.next_content(text.first - 1)
    if index is None:
        return None
    cells = text.cells(index)
    if not formats.looks_like_names(cells):
        return None
    has_party = formats.find(cells, formats.PARTY) is not None
    has_name = formats.find(cells, formats.PROPIETARIA) is not None
    return index if has_party and has_name else None


PROSE = re.compile(r"[a-záéíóúñ]{2,}(?:[ \t]+[a-záéíóúñ,.()]{2,}){4,}")


def _is_leeme(name: str, text: _Text) -> bool:
    """A LEEME describes the files in prose (whatever it is called: LEEME.txt, Léeme.txt)."""
    if normal(PurePosixPath(name).stem).startswith(("LEEME", "LEAME", "README")):
        return True
    prose = sum(1 for line in text.lines if PROSE.search(line))
    return prose >= 5 and "ACTAS" in normal(" ".join(text.lines[:400]))


# --- the elections of an input -------------------------------------------------------------


def candidaturas_name_for(filename: str) -> str:
    """``CAMP_GOB_2021.csv`` -> ``CAMP_GOB_CANDIDATURA_2021.csv``, the usual naming."""
    path = PurePosixPath(filename)
    tokens = path.stem.split("_")
    if len(tokens) > 1 and tokens[-1].isdigit():
        tokens.insert(len(tokens) - 1, "CANDIDATURA")
    else:
        tokens.append("CANDIDATURA")
    return "_".join(tokens) + (path.suffix or ".csv")


def parse_sources(sources: Sequence[SourceFile], zone: tzinfo | None = None) -> list[Election]:
    """The elections of an input: each results file with its candidaturas file and LEEME."""
    by_role: dict[Role, list[SourceFile]] = defaultdict(list)
    for source in sources:
        role = _role_or_refuse(source)
        if role is not None:
            by_role[role].append(source)
    by_role["results"] = _distinct(by_role["results"])
    pairs = _pair(by_role["results"], by_role["candidaturas"])
    elections = []
    for results in by_role["results"]:
        candidaturas = pairs.get(results)
        leemes = _leemes_for(results, by_role["leeme"])
        extra = ([candidaturas] if candidaturas else []) + leemes
        elections.append(parse_election(results, candidaturas, (results, *extra), zone))
    _refuse_repeated_codes(elections)
    return sorted(elections, key=lambda e: election_order(e.code))


def _distinct(results: Sequence[SourceFile]) -> list[SourceFile]:
    """The same results file given twice (the PREP's ZIP and its unpacked folder) is one."""
    seen: dict[tuple[str, bytes], SourceFile] = {}
    for source in results:
        seen.setdefault((source.name, source.data), source)
    return list(seen.values())


def _role_or_refuse(source: SourceFile) -> Role | None:
    role = role_of(source)
    if role is None and source.name.lower().endswith(".csv"):
        text = _Text.of(source)
        if text.last_line == 0:
            raise InputError(source.name, 1, None, "el archivo está vacío")
        raise InputError(
            source.name,
            None,
            None,
            "no se reconoce qué archivo del PREP es: no tiene el encabezado de las actas"
            " (CLAVE_CASILLA, o SECCION y TIPO_CASILLA, con sus filas) ni una línea de resumen"
            " (ACTAS_ESPERADAS...), ni el encabezado de un archivo de candidaturas (PARTIDO_CI"
            " y CANDIDATURA_PROPIETARIA). Si no es del PREP, construya sin él; si lo es, su"
            " formato es nuevo: vea los nombres que se reconocen en docs/package-format.md",
        )
    return role


def _pair(
    results: Sequence[SourceFile], candidaturas: Sequence[SourceFile]
) -> dict[SourceFile, SourceFile]:
    """Each results file's candidaturas file: the one beside it (same folder or ZIP), by
    election code when there are several; then, among the rest, the one of the same code."""
    paired: dict[SourceFile, SourceFile] = {}
    used: set[int] = set()
    by_container: dict[str, list[SourceFile]] = defaultdict(list)
    for c in candidaturas:
        by_container[c.container].append(c)
    for container in sorted({r.container for r in results}):
        here = [r for r in results if r.container == container]
        options = by_container.get(container, [])
        if len(here) == 1 and len(options) == 1:
            paired[here[0]] = options[0]
            used.add(id(options[0]))
            continue
        for r in here:
            match = _same_election(r, [c for c in options if id(c) not in used])
            if match is not None:
                paired[r] = match
                used.add(id(match))
    for r in results:
        if r not in paired:
            match = _same_election(r, [c for c in candidaturas if id(c) not in used], exact=True)
            if match is not None:
                paired[r] = match
                used.add(id(match))
    return paired


def _same_election(
    results: SourceFile, options: Sequence[SourceFile], exact: bool = False
) -> SourceFile | None:
    code = election_code(results.name)
    same = [c for c in options if election_code(c.name) == code]
    if len(same) == 1 or exact:
        return same[0] if len(same) == 1 else None
    # QROO_DIP_LOC_2019.csv and QROO_DIP_CANDIDATURAS_2019.csv
    related = [c for c in options if _related(code, election_code(c.name))]
    return related[0] if len(related) == 1 else None


def _related(a: str, b: str) -> bool:
    return a.startswith(b + "_") or b.startswith(a + "_")


def _leemes_for(results: SourceFile, leemes: Sequence[SourceFile]) -> list[SourceFile]:
    here = [s for s in leemes if s.container == results.container]
    if len(here) <= 1:
        return here
    code = election_code(results.name)
    return [s for s in here if election_code(s.name) == code] or here


def _refuse_repeated_codes(elections: Sequence[Election]) -> None:
    seen: dict[str, Election] = {}
    for e in elections:
        other = seen.setdefault(e.code, e)
        if other is not e and other.corte_printed == e.corte_printed:
            raise InputError(
                e.source_name,
                None,
                None,
                f"es la elección {e.code} del mismo corte que {other.source_name}: un paquete"
                " lleva un solo archivo de resultados por elección",
            )


# --- parsing a results file ----------------------------------------------------------------


def parse_election(
    source: SourceFile,
    candidaturas: SourceFile | None,
    sources: tuple[SourceFile, ...] = (),
    zone: tzinfo | None = None,
) -> Election:
    text = _Text.of(source)
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
    cand = _CandidaturasFile.of(candidaturas) if candidaturas else None
    columns = _Columns.of(header, source.name, header_index + 1, cand.kind if cand else None)
    preamble = _Preamble.of(text, header_index)
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


def _header_or_refuse(text: _Text, last_line: int) -> int:
    index = _acta_header(text)
    if index is not None:
        return index
    if _summary_names(text, len(text.lines)) is not None and last_line <= 12:
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
class _CorteTime:
    moment: datetime
    printed: str
    line: int
    offset_printed: bool


DATE_TIME = re.compile(
    r"(?:(?P<d>\d{1,2})[/-](?P<m>\d{1,2})[/-](?P<y>\d{4})"
    r"|(?P<Y>\d{4})[/-](?P<mo>\d{1,2})[/-](?P<dd>\d{1,2}))"
    r"[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::\d{2})?(?:\s*(?P<ampm>[aApP])\.?\s*[mM]\b\.?)?"
)
# The hour alone, with the date in words on another line (INE 2012 and 2015):
# "20:00 horas (UTC-5)" and "Domingo 7 de junio de 2015".
HOUR_ONLY = re.compile(r"^\W*(?P<H>\d{1,2}):(?P<M>\d{2})\s*(?:h|hrs|horas)?\b", re.IGNORECASE)
DATE_WORDS = re.compile(r"(?P<d>\d{1,2})\s+de\s+(?P<month>[a-záéíóú]+)\s+de\s+(?P<y>\d{4})", re.I)
MONTHS = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
]
OFFSET = re.compile(r"(?:UTC|GMT)\s*(?:(?P<sign>[+\-−])\s*(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?)?")


@dataclass(frozen=True)
class _Preamble:
    """What precedes the acta header: the election's name, the corte's time, the summary."""

    text: _Text
    end: int
    names_line: int
    figures: dict[str, str]
    headers: dict[str, str]
    name: str

    @classmethod
    def of(cls, text: _Text, end: int) -> _Preamble:
        names_index = _summary_names(text, end, check_width=False)
        figures: dict[str, str] = {}
        headers: dict[str, str] = {}
        if names_index is not None:
            for header, value in _summary_pairs(text, names_index, end):
                key = formats.summary_key(header) or header
                if key in figures:
                    key = header
                figures[key] = value
                headers[key] = header
        stop = names_index if names_index is not None else end
        name = next(
            (
                _clean(line).strip(",|; ")
                for line in text.lines[text.first : stop]
                if line.strip() and not _is_time_line(line)
            ),
            "",
        )
        return cls(text, end, (names_index or -1) + 1, figures, headers, name)

    def corte_time(self, zone: tzinfo | None) -> _CorteTime:
        lines = self.text.lines[: self.end]
        found = _date_and_hour(lines) or _hour_and_date_in_words(lines)
        if found is None:
            raise InputError(
                self.text.name,
                max(1, self.end),
                None,
                "no se encontró la fecha y hora del corte (DD/MM/AAAA HH:MM o AAAA/MM/DD HH:MM)"
                f" en el preámbulo (líneas 1 a {self.end})",
            )
        index, parts = found
        return self._moment(index, parts, zone)

    def _moment(self, index: int, parts: Moment, zone: tzinfo | None) -> _CorteTime:
        line = self.text.lines[index]
        printed = _clean(line).strip(",|; ")
        try:
            local = datetime(*parts)
        except ValueError as exc:
            raise InputError(
                self.text.name, index + 1, None, f"fecha del corte inválida ({exc})"
            ) from None
        offset = _offset(" ".join(self.text.lines[index : index + 2]))
        if offset is not None:
            return _CorteTime(local.replace(tzinfo=timezone(offset)), printed, index + 1, True)
        if zone is None:
            raise InputError(
                self.text.name,
                index + 1,
                None,
                "la hora del corte no trae su desfase UTC y no se indicó la zona de la elección",
            )
        return _CorteTime(local.replace(tzinfo=zone), printed, index + 1, False)


def _summary_pairs(text: _Text, index: int, end: int) -> list[tuple[str, str]]:
    names = text.cells(index)
    values_index = text.next_content(index, end)
    if values_index is None:
        raise InputError(text.name, index + 2, None, "falta la línea de valores del resumen")
    values = text.cells(values_index)
    if len(values) != len(names):
        raise InputError(
            text.name,
            values_index + 1,
            min(len(values), len(names)) + 1,
            f"el resumen tiene {len(values)} valores para {len(names)} campos",
        )
    return [(n, v) for n, v in zip(names, values, strict=True) if n]


Moment = tuple[int, int, int, int, int]


def _date_and_hour(lines: Sequence[str]) -> tuple[int, Moment] | None:
    """``05/06/2022 21:20 (UTC-5)``, ``2019/06/03 05:47``, ``05/06/2022 08:00 p.m.``."""
    for index, line in enumerate(lines):
        match = DATE_TIME.search(line)
        if match:
            if match["y"]:
                y, m, d = int(match["y"]), int(match["m"]), int(match["d"])
            else:
                y, m, d = int(match["Y"]), int(match["mo"]), int(match["dd"])
            return index, (y, m, d, _hour24(int(match["H"]), match["ampm"]), int(match["M"]))
    return None


def _hour_and_date_in_words(lines: Sequence[str]) -> tuple[int, Moment] | None:
    """``20:00 horas (UTC-5)`` and, on another line, ``Domingo 7 de junio de 2015``."""
    hours = [(i, m) for i, line in enumerate(lines) if (m := HOUR_ONLY.match(line))]
    dates = [m for line in lines if (m := DATE_WORDS.search(line))]
    months = [d for d in dates if normal(d["month"]).lower() in MONTHS]
    if not hours or not months:
        return None
    (index, hour), date = hours[0], months[0]
    month = MONTHS.index(normal(date["month"]).lower()) + 1
    return index, (int(date["y"]), month, int(date["d"]), int(hour["H"]), int(hour["M"]))


def _hour24(hour: int, ampm: str | None) -> int:
    """``08:00 p.m.`` is 20:00; ``12:30 a.m.``, 00:30."""
    if ampm is None:
        return hour
    return hour % 12 + (12 if ampm.lower() == "p" else 0)


def _is_time_line(line: str) -> bool:
    return bool(DATE_TIME.search(line) or HOUR_ONLY.match(line) or DATE_WORDS.search(line))


def _offset(text: str) -> timedelta | None:
    for match in OFFSET.finditer(text.upper()):
        if match["sign"] is None:
            # "(UTC)" alone: the corte is in UTC; "UTC" inside a word is not an offset.
            if re.search(r"\(\s*(UTC|GMT)\s*\)", text.upper()):
                return timedelta(0)
            continue
        sign = -1 if match["sign"] in "-−" else 1
        return sign * timedelta(hours=int(match["h"]), minutes=int(match["m"] or 0))
    return None


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
            listing = ", ".join(_spellings(r) for r in missing)
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


def _spellings(role: formats.Role) -> str:
    others = role.names[1:]
    return role.names[0] + (f" (o {', '.join(others)})" if others else "")


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
    text: _Text,
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
        row = _fitted(cells, header)
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


def _fitted(cells: list[str], header: Sequence[str]) -> list[str] | None:
    """The row as wide as the header; empty cells a trailing delimiter leaves (on the row or
    on the header) are no field."""
    width = len(header)
    if len(cells) > width and not any(c.strip() for c in cells[width:]):
        return cells[:width]
    if len(cells) < width and not any(h.strip() for h in header[len(cells) :]):
        return cells + [""] * (width - len(cells))
    return cells if len(cells) == width else None


def _width_problem(cells: int, width: int, last: bool, first: bool) -> str:
    said = f"la fila tiene {cells} campos y el encabezado {width}"
    if last:
        return f"{said}: es la última, el archivo parece truncado"
    if first:
        return f"{said} desde la primera fila: no se reconoce la forma de las filas"
    return f"{said}: fila dañada o con el delimitador equivocado"


def _clave(row: Sequence[str], c: _Columns) -> str:
    if c.clave is not None:
        return _clean(row[c.clave])
    # INE 2012 and 2015 print no CLAVE_CASILLA: composed as the LEEMEs define it (entidad
    # in 2 digits, sección 4, tipo, casilla 2, contigua 2: 010338B0100).
    parts = ((c.entidad, 2), (c.seccion, 4), (c.tipo, 0), (c.id_casilla, 2), (c.ext, 2))
    cells = [(_clean(row[i]), width) for i, width in parts if i is not None]
    if not any(cell for cell, _ in cells):
        return ""
    return "".join(cell.zfill(width) if cell.isdigit() else cell for cell, width in cells)


def _entidad(row: Sequence[str], c: _Columns) -> tuple[str, str]:
    number = _clean(row[c.entidad]) if c.entidad is not None else ""
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
        seccion=_clean(row[c.seccion]),
        id_casilla=_clean(row[c.id_casilla]) if c.id_casilla is not None else "",
        tipo=_clean(row[c.tipo]),
        ext=_clean(row[c.ext]) if c.ext is not None else "",
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
    cells = [_readable(_clean(row[i])) if i is not None else "" for i in c.image]
    return ActaImage(*cells) if any(cells) else NO_IMAGE


def _group_id(row: Sequence[str], c: _Columns) -> str:
    """As in the CSV (``007``); a value the PREP did not fill (``N/A``) is no group."""
    if c.group_id is None:
        return ""
    value = _readable(_clean(row[c.group_id]))
    return value if re.fullmatch(r"[A-Za-z0-9_-]*", value) else ""


def _readable(cell: str) -> str:
    value = cell.strip()
    return "" if formats.unreadable(value) else value


def _number(cell: str) -> int | None:
    value = _clean(cell)
    return int(value) if value.isdigit() else None


def _boletas(row: Sequence[str], c: _Columns) -> int | None:
    if c.boletas is None:
        return None
    cells = [_clean(row[i]) for i in c.boletas]
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
        match = STAMP.match(_clean(row[column]))
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
    raise InputError(
        source, line, column, f"no se reconoce CONTABILIZADA {value!r} (se espera 0, 1, 2 o vacío)"
    )


def _vote(cell: str, source: str, line: int, column: int, strict: bool) -> int:
    """A vote; what the PREP could not read counts as zero. In a counted acta anything else
    is refused (a shifted column or a damaged row would show up so); in an acta not counted
    the PREP prints reasons (``Sin Acta``), and its votes add to nothing."""
    value = _clean(cell)
    if value.isdigit():
        return int(value)
    if formats.unreadable(value) or not strict:
        return 0
    raise InputError(source, line, column, f"voto no numérico {value!r}")


def _int(cell: str, source: str, line: int, column: int) -> int:
    value = _clean(cell)
    if value.isdigit():
        return int(value)
    if formats.unreadable(value):
        return 0
    raise InputError(source, line, column, f"valor no numérico {value!r}")


# --- the candidaturas file -----------------------------------------------------------------

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
class _CandidaturasFile:
    text: _Text
    header_index: int
    header: tuple[str, ...]
    party: int
    name: int
    suplente: int | None
    entidad: int | None
    group: int | None
    kind: str | None

    @classmethod
    def of(cls, source: SourceFile) -> _CandidaturasFile:
        text = _Text.of(source)
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
                f" {_spellings(formats.PARTY)} o {_spellings(formats.PROPIETARIA)}",
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
            group = _clean(row[self.group]) if self.group is not None else ""
            entidad = _clean(row[self.entidad]) if self.entidad is not None else ""
            candidatura = Candidatura(
                party=_clean(row[self.party]),
                name=_clean(row[self.name]),
                suplente=_clean(row[self.suplente]) if self.suplente is not None else None,
                group=None,
                line=number,
            )
            if normal(group) in formats.NATIONAL:
                group = ""
            yield candidatura, entidad, group


def read_candidaturas(source: SourceFile) -> list[Candidatura]:
    """A candidaturas file on its own (its groups numbered within their entidad when it
    names more than one)."""
    return list(_CandidaturasFile.of(source).rows(None))


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


INCONSISTENCY_WORDS = ("ILEGIB", "SIN DATO", "EXCEDE", "VACIO", "TODOS LOS CAMPOS")


def inconsistencies(e: Election) -> tuple[int, int]:
    """Actas with inconsistencies by the two rules PREPs use, as (not counted, annotated).

    Campeche 2021 counts the captured actas not counted, except those without an acta;
    Oaxaca 2022, Coahuila 2023 and Quintana Roo 2019 (and INE's LEEMEs since 2018) the actas
    whose OBSERVACIONES name an inconsistency (illegible or missing data, exceeding the lista
    nominal), counted or not, except those without an acta. Checked on every dataset of
    shared/data/prep."""
    not_counted = annotated = 0
    for a in e.actas:
        if not a.captured:
            continue
        note = normal(a.observaciones).replace("_", " ")
        if note.startswith("SIN ACTA"):
            continue
        not_counted += not a.counted
        annotated += any(word in note for word in INCONSISTENCY_WORDS)
    return not_counted, annotated


def compute_summary(e: Election) -> Summary:
    """The summary computed from the rows: the cross-check of the preamble, never shown in
    its place (see ``prepush.corte.reconcile``).

    ACTAS_ESPERADAS is a catalogue fact the rows cannot always give (DIP_LOC expects 10 actas
    of representación proporcional that have no row): the preamble's value is the denominator
    of the percentages when it is at least the catalogue rows. Participation is
    TOTAL_VOTOS_C_CS over the lista nominal of counted actas. Inconsistencies follow the rule
    whose result the PREP printed (see ``inconsistencies``), the annotated one otherwise.
    """
    captured = [a for a in e.actas if a.captured]
    counted = [a for a in captured if a.counted]
    expected = max(printed_esperadas(e) or 0, len(e.actas))
    not_counted, annotated = inconsistencies(e)
    printed = e.preamble.get("PORCENTAJE_ACTAS_INCONSISTENCIAS", "")
    inconsistent = not_counted if same_percentage(printed, not_counted, expected) else annotated
    lista = sum(a.lista_nominal for a in counted)
    with_special = sum(a.total or 0 for a in counted)
    without_special = sum(a.total or 0 for a in counted if a.tipo != SPECIAL)
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


def printed_esperadas(e: Election) -> int | None:
    """ACTAS_ESPERADAS as printed; where a PREP prints none (INE 2012, 2015), ACTAS_CAPTURADAS
    plus ACTAS_POR_CAPTURAR, both printed."""
    esperadas = e.preamble.get("ACTAS_ESPERADAS")
    if esperadas is not None:
        return printed_count(esperadas)
    capturadas = printed_count(e.preamble.get("ACTAS_CAPTURADAS", ""))
    pending = printed_count(e.preamble.get("ACTAS_POR_CAPTURAR", ""))
    return capturadas + pending if capturadas is not None and pending is not None else None


def printed_count(text: str | None) -> int | None:
    """A count as printed: ``1190``, or ``1,190`` with thousands separators."""
    text = (text or "").strip()
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", text):
        text = text.replace(",", "")
    return int(text) if text.isdigit() else None


def same_percentage(printed: str, numerator: int, denominator: int) -> bool:
    """The printed percentage is numerator/denominator truncated to 4 decimals. PREPs
    truncate in floating point and sometimes lose the last unit (Oaxaca 2022: 76.3272 for
    4356/5707 = 76.32731…, 36.9022 for 526059/1425544 = 36.90233…), so one unit less in the
    fourth decimal is the same figure. A ``%`` sign is no part of the number."""
    exact = Decimal(truncated_percentage(numerator, denominator))
    try:
        value = Decimal(printed.strip().removesuffix("%").strip())
    except InvalidOperation:
        return False
    return value == exact or (value == exact - Decimal("0.0001") and value >= 0)

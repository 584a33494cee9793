"""Read a PREP's files by what they contain, naming file, line and column when they can't be:
the elections of an input, each results file with its candidaturas file and LEEME.

PREPs differ from year to year and from institute to institute (see
``shared/data/prep/README.md`` and the table of names in ``prepush.corte.formats``). So
nothing here goes by a file's name or counts lines:

- a file's **role** (results, candidaturas, LEEME) is read from its content: the results file
  has an acta header (``CLAVE_CASILLA``, or ``SECCION`` and ``TIPO_CASILLA``) or a summary line,
  the candidaturas file a header with a party and a candidate, the LEEME is prose. A results
  file is paired with the candidaturas file and LEEME of its own folder or ZIP (here; the
  recognition in ``file_roles``).
- the **layout**: the encoding (UTF-8 with or without BOM, Windows-1252, Latin-1), the line
  ends, the delimiter (comma or pipe, or the one a ``sep=`` first line names); the preamble is
  whatever precedes the acta header, blank lines and all: its summary is the line of figure
  names and the line after it, the corte's time the line that holds a date and an hour
  (``text``, ``preamble``).
- the **columns** by role, each under any of its spellings; the vote columns are those between
  the acta's identification and counts and its totals (``results_file``,
  ``candidaturas_file``).
- **values** written ``'0001``, ``="0001"`` or ``"0001"`` are ``0001``; a vote the PREP could
  not read (``Ilegible``, ``Sin dato``, ``N/A``...) counts as zero, as each LEEME says.
"""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import tzinfo
from pathlib import Path, PurePosixPath

from prepush.corte.file_roles import Role, role_of
from prepush.corte.formats import election_code, election_order
from prepush.corte.model import Election, SourceFile
from prepush.corte.results_file import parse_election
from prepush.corte.text import Text
from prepush.exceptions import InputError


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
        text = Text.of(source)
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

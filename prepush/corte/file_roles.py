"""What a file is, read from its first lines and never from its name: a PREP's results (an
acta header, or a summary line), its candidaturas file (a header with a party and a
candidate), or its LEEME (prose).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from prepush.corte import formats
from prepush.corte.formats import normal
from prepush.corte.model import SourceFile
from prepush.corte.text import Text, fitted

Role = Literal["results", "candidaturas", "leeme"]


# What a file is shows in its first lines: role_of reads no more (INE's results run to
# hundreds of MB).
HEAD_BYTES = 256 * 1024


def role_of(source: SourceFile) -> Role | None:
    head = source.data
    if len(head) > HEAD_BYTES:
        # Whole lines only: a character cut in two would change how the head decodes.
        head = head[: max(head.rfind(b"\n", 0, HEAD_BYTES), head.rfind(b"\r", 0, HEAD_BYTES)) + 1]
    text = Text.of(SourceFile(source.name, head, source.container))
    if acta_header(text) is not None or summary_names(text, len(text.lines)) is not None:
        return "results"
    if _candidaturas_header(text) is not None:
        return "candidaturas"
    if _is_leeme(source.name, text):
        return "leeme"
    return None


def acta_header(text: Text) -> int | None:
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
            or fitted(text.cells(following), cells) is not None
            # A row cut short at the end of the file: a cut results file is still one.
            or text.next_content(following) is None
        ):
            return index
    return None


# The preamble is at the top: a LEEME's or a candidaturas file's summary-like lines further
# down are not one.
PREAMBLE_LINES = 30


def summary_names(text: Text, end: int, check_width: bool = True) -> int | None:
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


def _candidaturas_header(text: Text) -> int | None:
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


def _is_leeme(name: str, text: Text) -> bool:
    """A LEEME describes the files in prose (whatever it is called: LEEME.txt, Léeme.txt)."""
    if normal(PurePosixPath(name).stem).startswith(("LEEME", "LEAME", "README")):
        return True
    prose = sum(1 for line in text.lines if PROSE.search(line))
    return prose >= 5 and "ACTAS" in normal(" ".join(text.lines[:400]))

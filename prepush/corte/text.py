"""A PREP file's text as an editor shows it: decoded (UTF-8 with or without BOM, Windows-1252,
Latin-1), its physical lines, each line's delimiter (comma or pipe, or the one a ``sep=``
first line names), and cells without spreadsheet quoting (``'0001``, ``="0001"``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass

from prepush.corte.model import SourceFile
from prepush.exceptions import InputError


@dataclass(frozen=True)
class Text:
    name: str
    # Physical lines without their ends, as an editor numbers them (line n is lines[n - 1]).
    lines: list[str]
    # The delimiter a ``sep=`` first line names, if any.
    sep: str | None

    @classmethod
    def of(cls, source: SourceFile) -> Text:
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
        return [clean(c) for c in next(csv.reader([self.lines[index]], delimiter=delimiter))]

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


def clean(cell: str) -> str:
    """``'0001``, ``="0001"`` and ``"0001"`` are ``0001``: spreadsheet quoting, not data."""
    cell = cell.strip()
    if cell.startswith('="') and cell.endswith('"') and len(cell) >= 3:
        cell = cell[2:-1]
    if cell.startswith("'"):
        cell = cell[1:]
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1]
    return cell.strip()


def fitted(cells: list[str], header: Sequence[str]) -> list[str] | None:
    """The row as wide as the header; empty cells a trailing delimiter leaves (on the row or
    on the header) are no field."""
    width = len(header)
    if len(cells) > width and not any(c.strip() for c in cells[width:]):
        return cells[:width]
    if len(cells) < width and not any(h.strip() for h in header[len(cells) :]):
        return cells + [""] * (width - len(cells))
    return cells if len(cells) == width else None

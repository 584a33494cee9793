"""What precedes a results file's acta header: the election's name, the corte's date, hour
and UTC offset as printed, and the summary's figures under their names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from prepush.corte import formats
from prepush.corte.file_roles import summary_names
from prepush.corte.formats import normal
from prepush.corte.text import Text, clean
from prepush.exceptions import InputError


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
class Preamble:
    """What precedes the acta header: the election's name, the corte's time, the summary."""

    text: Text
    end: int
    names_line: int
    figures: dict[str, str]
    headers: dict[str, str]
    name: str

    @classmethod
    def of(cls, text: Text, end: int) -> Preamble:
        names_index = summary_names(text, end, check_width=False)
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
                clean(line).strip(",|; ")
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
        printed = clean(line).strip(",|; ")
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


def _summary_pairs(text: Text, index: int, end: int) -> list[tuple[str, str]]:
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

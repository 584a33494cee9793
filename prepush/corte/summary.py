"""The summary computed from the rows by the PREP's own rules (percentages truncated, its two
rules for inconsistencies), and the printed counts it is checked against (see
``prepush.corte.reconcile``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prepush.corte.formats import SUMMARY_FIELDS, normal
from prepush.corte.model import Election

SPECIAL = "S"


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

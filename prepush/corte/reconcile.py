"""The PREP's preamble against its rows: every difference classified, named and bounded.

The preamble of each CSV is the PREP's official statement: the site shows its figures as
printed, digits and all. The rows are how prepush checks it, and how it notices a file that
was cut or damaged on its way. Each difference is one of three kinds:

- **refused**: the rows fall short of the preamble (fewer actas registered, captured or
  counted, fewer votes or less lista nominal than printed), or the input is structurally
  incomplete (fewer rows than ACTAS_ESPERADAS without a proven reason, a vote column the
  candidaturas file names missing, no candidaturas file, a casilla of the night's catalogue
  without its row). An ``oficial`` build stops, naming file, figure, both values and the line
  where the data ends.
- **explained**: a difference the data itself accounts for, accepted only within the bound
  the data proves, and named in the package with its evidence: DIP_LOC's actas of
  representación proporcional of special casillas, which have no row; JUNTAS' printed
  TOTAL_VOTOS_S_CS = 0; participation computed with TOTAL_VOTOS_S_CS.
- **warning**: anything else (the preamble disagreeing with its own arithmetic, rows that
  exceed it): built, and the warning reaches the build output, the ledger and ``report``.

Empty preamble figures (the pre-election corte prints no votes) are shown computed from the
rows, and marked as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from prepush.corte import formats
from prepush.corte.candidaturas import unresolved_codes
from prepush.corte.catalogue import CatalogueCheck, RowlessProof
from prepush.corte.formats import SUMMARY_FIELDS
from prepush.corte.model import Candidatura, Election
from prepush.corte.summary import (
    Summary,
    inconsistencies,
    printed_count,
    printed_esperadas,
    same_percentage,
    truncated_percentage,
)

Kind = Literal["refused", "explained", "warning"]

ESPERADAS = "ACTAS_ESPERADAS"
REGISTRADAS = "ACTAS_REGISTRADAS"
FUERA = "ACTAS_FUERA_CATALOGO"
CAPTURADAS = "ACTAS_CAPTURADAS"
PCT_CAPTURADAS = "PORCENTAJE_ACTAS_CAPTURADAS"
CONTABILIZADAS = "ACTAS_CONTABILIZADAS"
PCT_CONTABILIZADAS = "PORCENTAJE_ACTAS_CONTABILIZADAS"
PCT_INCONSISTENCIAS = "PORCENTAJE_ACTAS_INCONSISTENCIAS"
NO_CONTABILIZADAS = "ACTAS_NO_CONTABILIZADAS"
LISTA = "LISTA_NOMINAL_ACTAS_CONTABILIZADAS"
C_CS = "TOTAL_VOTOS_C_CS"
S_CS = "TOTAL_VOTOS_S_CS"
PARTICIPACION = "PORCENTAJE_PARTICIPACION_CIUDADANA"
# Figures the rows add up; the percentages follow from them and the preamble's own counts.
COUNTS = (REGISTRADAS, FUERA, CAPTURADAS, CONTABILIZADAS, NO_CONTABILIZADAS, LISTA, C_CS, S_CS)
SPECIAL = "S"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    name: str
    election: str
    file: str
    line: int | None
    message: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def text(self) -> str:
        return f"{self.where}: {self.election}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


@dataclass(frozen=True)
class Reconciliation:
    election: Election
    rows: Summary
    # Every figure of the preamble as the site shows it, in the PREP's order: its string as
    # printed, under its canonical name in lower case (``actas_esperadas``) or, when prepush
    # does not recognise the name, under the PREP's own header. Where the preamble printed a
    # known figure empty, the rows' (those keys are listed in ``from_rows``).
    shown: dict[str, str]
    from_rows: tuple[str, ...]
    findings: tuple[Finding, ...] = field(default=())
    # The header each shown figure had in the preamble, and why the rows could not check a
    # shown figure (only those).
    headers: dict[str, str] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: Kind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def reconcile(e: Election, rows: Summary, catalogue: CatalogueCheck) -> Reconciliation:
    shown, from_rows, headers = shown_summary(e, rows)
    figures = _Figures(e, rows, catalogue.rowless)
    findings = [*_structure(e, catalogue), *figures.findings(), *_acta_sums(e)]
    unchecked = {
        shown_key(name): why
        for name, why in figures.unchecked().items()
        if shown_key(name) in shown
    }
    return Reconciliation(e, rows, shown, from_rows, tuple(findings), headers, unchecked)


def shown_key(name: str) -> str:
    """A preamble key as the site knows it: canonical names in lower case, others as printed."""
    known = name in SUMMARY_FIELDS or formats.summary_key(name) == name
    return name.lower() if known else name


def shown_summary(
    e: Election, rows: Summary
) -> tuple[dict[str, str], tuple[str, ...], dict[str, str]]:
    computed = rows.as_json()
    shown: dict[str, str] = {}
    headers: dict[str, str] = {}
    from_rows: list[str] = []
    for name, value in e.preamble.items():
        key = shown_key(name)
        printed = value.strip()
        headers[key] = e.preamble_headers.get(name, name)
        if printed or key not in computed:
            shown[key] = printed
        else:
            shown[key] = str(computed[key])
            from_rows.append(key)
    return shown, tuple(from_rows), headers


# --- structure ---------------------------------------------------------------------------


def _structure(e: Election, catalogue: CatalogueCheck) -> Iterator[Finding]:
    yield from _candidaturas(e)
    yield from _rows_against_expected(e, catalogue.rowless)
    if catalogue.missing:
        first = ", ".join(catalogue.missing[:3])
        yield _refused(
            e,
            "catalogo_incompleto",
            f"faltan {len(catalogue.missing)} casilla(s) del catálogo de la noche (registrado"
            f" hasta el corte {catalogue.recorded_corte}), p. ej. {first}; los datos terminan"
            f" en la línea {e.last_line}",
        )
    expected = printed_esperadas(e)
    if catalogue.recorded_esperadas not in (None, expected):
        yield _warning(
            e,
            "esperadas_cambiaron",
            f"{ESPERADAS} pasó de {catalogue.recorded_esperadas} (corte"
            f" {catalogue.recorded_corte}) a {expected}",
        )


def _candidaturas(e: Election) -> Iterator[Finding]:
    if e.candidaturas_name is None:
        yield Finding(
            "refused",
            "sin_candidaturas",
            e.code,
            e.source_name,
            None,
            f"falta el archivo de candidaturas de {e.source_name} (p. ej."
            f" {e.expected_candidaturas_name}: un CSV con PARTIDO_CI y CANDIDATURA_PROPIETARIA,"
            " en la misma carpeta o ZIP), que el PREP entrega junto a los resultados: sin él"
            " no se puede comprobar que estén todas las columnas de votos",
        )
        return
    missing: dict[str, Candidatura] = {}
    for candidatura, code in unresolved_codes(e):
        missing.setdefault(code, candidatura)
    for code, candidatura in missing.items():
        yield Finding(
            "refused",
            "columna_de_votos_faltante",
            e.code,
            e.source_name,
            e.header_line,
            f"falta la columna de votos {code}, que nombra {e.candidaturas_name}:"
            f"{candidatura.line} (candidatura {candidatura.party}): sus votos no estarían en"
            " los resultados",
        )


def _rows_against_expected(e: Election, proof: RowlessProof) -> Iterator[Finding]:
    expected = printed_esperadas(e)
    if expected is None:
        printed = e.preamble.get(ESPERADAS)
        what = (
            f"{ESPERADAS} {printed!r} no es un número"
            if printed is not None
            else f"el preámbulo no trae {ESPERADAS} (ni ACTAS_CAPTURADAS y ACTAS_POR_CAPTURAR)"
            + ("" if e.preamble else ": no se reconoce su línea de resumen")
        )
        yield Finding(
            "refused",
            "esperadas_ilegibles",
            e.code,
            e.source_name,
            e.summary_line or e.header_line,
            f"{what}: no se puede comprobar que el archivo esté completo",
        )
        return
    rows = len(e.actas)
    rowless = expected - rows
    if rowless > proof.count:
        hint = ""
        specials = sum(1 for a in e.actas if a.tipo == SPECIAL)
        # Only where rowless actas of special casillas could account for the gap.
        if not proof.source and rowless <= specials:
            hint = (
                ". Si el instituto confirma que el PREP cuenta actas sin fila (p. ej. las de"
                " representación proporcional de casillas especiales), declárelas en el padrón:"
                f" election.rowless_actas: {{{e.code}: N}}; un archivo cortado se ve igual"
            )
        yield _refused(
            e,
            "filas_faltantes",
            f"{ESPERADAS}: el preámbulo espera {expected} actas y el archivo trae {rows} filas"
            f" de casillas: faltan {rowless - proof.count} (actas sin fila probadas:"
            f" {proof.described}); los datos terminan en la línea {e.last_line}{hint}",
        )
    elif rowless < 0:
        yield _warning(
            e,
            "filas_de_mas",
            f"el archivo trae {rows} filas de casillas y el preámbulo espera {expected} actas"
            f" ({-rowless} de más)",
        )
    elif rowless < proof.count and proof.exact:
        yield _refused(
            e,
            "actas_sin_fila_no_cuadran",
            f"{ESPERADAS} ({expected}) deja {rowless} actas sin fila y el padrón declara"
            f" {proof.count}: la declaración no describe este archivo (corrija"
            f" election.rowless_actas) y, mientras no cuadre, una fila de menos pasaría"
            f" inadvertida; los datos terminan en la línea {e.last_line}",
        )
    elif rowless < proof.count:
        yield _warning(
            e,
            "menos_actas_sin_fila",
            f"{ESPERADAS} ({expected}) deja {rowless} actas sin fila y se probaron"
            f" {proof.described}",
        )


# --- figures -----------------------------------------------------------------------------


class _Figures:
    """The preamble's figures against the rows', for an election whose structure is known."""

    def __init__(self, e: Election, rows: Summary, proof: RowlessProof) -> None:
        self.e = e
        self.rows = rows
        self.proof = proof
        self.computed = rows.as_json()
        self.printed: dict[str, int] = {}
        self.unreadable: list[str] = []
        # The preamble figures some check compared (with the rows or with the others).
        self.checked: set[str] = set()
        for name in COUNTS:
            text = e.preamble.get(name, "").strip()
            value = _int(text)
            if value is not None:
                self.printed[name] = value
            elif text:
                self.unreadable.append(name)

    def findings(self) -> list[Finding]:
        found: list[Finding] = [
            _warning(self.e, "cifra_ilegible", f"{n} {self.e.preamble[n]!r} no es un número")
            for n in self.unreadable
        ]
        found.extend(self._unknown())
        covered: set[str] = set()
        rowless, reason, extra_captured = self._rowless_actas_ahead()
        if rowless is not None:
            found.append(rowless)
            covered |= {CAPTURADAS, CONTABILIZADAS, NO_CONTABILIZADAS, C_CS}
        s_cs_zero = self._s_cs_printed_zero()
        if s_cs_zero is not None:
            found.append(s_cs_zero)
            covered.add(S_CS)
        found.extend(self._counts(covered, reason))
        found.extend(self._percentages())
        found.extend(self._participation())
        found.extend(self._arithmetic(extra_captured if rowless is not None else 0))
        return found

    def unchecked(self) -> dict[str, str]:
        """Each printed figure no check could compare, and why: said, never hidden."""
        if printed_esperadas(self.e) is not None:
            self.checked |= {ESPERADAS, "ACTAS_POR_CAPTURAR"}
        why: dict[str, str] = {}
        for name, value in self.e.preamble.items():
            if name in self.checked or not value.strip():
                continue
            if name not in SUMMARY_FIELDS and formats.summary_key(name) is None:
                why[name] = "prepush no reconoce esta cifra: se muestra como la imprimió el PREP"
            elif name in self.unreadable:
                why[name] = "no es un número"
            else:
                why[name] = "faltan en el preámbulo las cifras con que se comprueba"
        return why

    def _unknown(self) -> Iterator[Finding]:
        for name, header in self.e.preamble_headers.items():
            if name not in SUMMARY_FIELDS and formats.summary_key(name) is None:
                yield _warning(
                    self.e,
                    "cifra_no_reconocida",
                    f"el preámbulo trae {header} = {self.e.preamble[name]!r}, que prepush no"
                    " reconoce: se muestra tal cual, con su nombre, sin comprobarla con las filas",
                )

    def _row(self, name: str) -> int:
        return int(self.computed[name.lower()])

    def _excess(self, name: str) -> int | None:
        printed = self.printed.get(name)
        return None if printed is None else printed - self._row(name)

    def _counts(self, covered: set[str], reason: str) -> Iterator[Finding]:
        self.checked |= set(self.printed)
        for name in COUNTS:
            difference = self._excess(name)
            if name in covered or not difference:
                continue
            printed, rows = self.printed[name], self._row(name)
            if difference > 0:
                why = f"; {reason}" if reason and name == CAPTURADAS else ""
                yield _refused(
                    self.e,
                    "filas_cortas",
                    f"{name}: el preámbulo dice {printed} y las filas dan {rows} (faltan"
                    f" {difference}); los datos terminan en la línea {self.e.last_line}{why}",
                )
            else:
                yield _warning(
                    self.e,
                    "filas_de_mas",
                    f"{name}: las filas dan {rows}, más que el {printed} del preámbulo",
                )

    def _rowless_actas_ahead(self) -> tuple[Finding | None, str, int]:
        """DIP_LOC from 20210607_1320 on: the preamble counts 3 or 4 actas more than the rows.

        They are actas of representación proporcional of special casillas, which have no row
        (ESPERADAS 1200 against 1190 rows: one per special casilla). The data proves it, and
        bounds it: at most as many as the rowless actas proven and the special casillas in
        the rows; ACTAS_REGISTRADAS leaves them out (they were never registered as rows);
        they add no lista nominal and no vote to TOTAL_VOTOS_S_CS (special casillas have no
        lista nominal, and S_CS leaves them out), so both match the rows exactly; and their
        votes are at most the boletas of a special casilla each. Their votes themselves
        cannot be checked: no row holds them.

        Returns the finding (None when it does not apply), why it does not apply, and the
        extra captured actas it explains.
        """
        captured = self._excess(CAPTURADAS)
        if captured is None or captured <= 0 or self.proof.count == 0:
            return None, "", 0
        e = self.e
        expected = _int(e.preamble.get(ESPERADAS)) or 0
        present = expected - len(e.actas)
        specials = [a for a in e.actas if a.tipo == SPECIAL]
        counted = self._excess(CONTABILIZADAS) or 0
        not_counted = self._excess(NO_CONTABILIZADAS) or 0
        votes = self._excess(C_CS) or 0
        boletas = max((a.boletas for a in specials if a.boletas is not None), default=None)
        failures = [
            (captured <= present, f"sólo hay {present} actas esperadas sin fila"),
            (captured <= len(specials), f"sólo hay {len(specials)} casillas especiales"),
            (0 <= counted <= captured, f"{CONTABILIZADAS} crece {counted}"),
            (not_counted == captured - counted, f"{NO_CONTABILIZADAS} no cuadra"),
            (self._excess(REGISTRADAS) == 0, f"{REGISTRADAS} tampoco cuadra con las filas"),
            (self._excess(FUERA) == 0, f"{FUERA} no cuadra con las filas"),
            (self._excess(LISTA) == 0, f"{LISTA} no cuadra con las filas"),
            (self._excess(S_CS) == 0, f"{S_CS} no cuadra con las filas"),
            (votes >= 0, f"{C_CS} es menor que el de las filas"),
            (
                votes == 0 or (boletas is not None and votes <= counted * boletas),
                f"{votes} votos de más exceden las boletas de {counted} casilla(s) especial(es)"
                f" ({boletas if boletas is not None else 'sin dato'} cada una)",
            ),
        ]
        unmet = [why for holds, why in failures if not holds]
        if unmet:
            return None, f"no se explican como actas sin fila: {'; '.join(unmet)}", 0
        bound = f" ≤ {counted} × {boletas} boletas" if votes else ""
        finding = Finding(
            "explained",
            "actas_rp_sin_fila",
            e.code,
            e.source_name,
            e.last_line,
            f"el preámbulo cuenta {captured} acta(s) capturada(s) y {counted} contabilizada(s)"
            f" más que las filas, con {votes} votos: actas de representación proporcional de"
            f" casillas especiales, que no tienen fila. Pruebas: {present} actas esperadas sin"
            f" fila y {len(specials)} casillas especiales;"
            f" {REGISTRADAS} ({self.printed[REGISTRADAS]}) no las cuenta; {LISTA} y {S_CS}"
            f" coinciden con las filas (una casilla especial no tiene lista nominal y S_CS la"
            f" excluye); {votes} votos{bound}. Sus votos no se pueden comprobar con filas.",
        )
        return finding, "", captured

    def _s_cs_printed_zero(self) -> Finding | None:
        """JUNTAS prints TOTAL_VOTOS_S_CS = 0. With no special casilla, S_CS would be C_CS,
        which is checked: the zero hides nothing, and nothing else is accepted."""
        rows = self._row(S_CS)
        specials = sum(1 for a in self.e.actas if a.tipo == SPECIAL)
        if self.printed.get(S_CS) != 0 or rows == 0 or specials:
            return None
        return Finding(
            "explained",
            "s_cs_en_cero",
            self.e.code,
            self.e.source_name,
            None,
            f"{S_CS} impreso en 0 y las filas dan {rows}: la elección no tiene casillas"
            f" especiales, así que S_CS sería igual a {C_CS}, que sí se comprueba",
        )

    def _percentages(self) -> Iterator[Finding]:
        """A printed percentage must follow from the preamble's own counts; the counts are
        checked against the rows above."""
        expected = printed_esperadas(self.e)
        for name, count in ((PCT_CAPTURADAS, CAPTURADAS), (PCT_CONTABILIZADAS, CONTABILIZADAS)):
            printed = self.e.preamble.get(name, "").strip()
            if not printed or expected is None or count not in self.printed:
                continue
            self.checked.add(name)
            if not same_percentage(printed, self.printed[count], expected):
                own = truncated_percentage(self.printed[count], expected)
                yield _warning(
                    self.e,
                    "aritmetica_del_preambulo",
                    f"{name} {printed} no es {count}/{ESPERADAS} = {self.printed[count]}/"
                    f"{expected} = {own}",
                )
        printed = self.e.preamble.get(PCT_INCONSISTENCIAS, "").strip()
        if printed and expected is not None:
            self.checked.add(PCT_INCONSISTENCIAS)
            rules = inconsistencies(self.e)
            if not any(same_percentage(printed, n, expected) for n in rules):
                not_counted, annotated = (truncated_percentage(n, expected) for n in rules)
                yield _warning(
                    self.e,
                    "inconsistencias",
                    f"{PCT_INCONSISTENCIAS}: el preámbulo dice {printed} y las filas dan"
                    f" {annotated} (actas con observación de inconsistencia) o {not_counted}"
                    " (actas no contabilizadas), sin contar las que no tienen acta",
                )

    def _figure(self, name: str) -> int | None:
        """A count as printed; the rows' where the preamble does not print it at all (INE
        2015 prints participation without its lista nominal and votes)."""
        if name in self.printed:
            return self.printed[name]
        return self._row(name) if name not in self.e.preamble else None

    def _participation(self) -> Iterator[Finding]:
        printed = self.e.preamble.get(PARTICIPACION, "").strip()
        lista, votes = self._figure(LISTA), self._figure(C_CS)
        if not printed or lista is None or votes is None:
            return
        self.checked.add(PARTICIPACION)
        with_special = truncated_percentage(votes, lista)
        if same_percentage(printed, votes, lista):
            return
        without = self._figure(S_CS)
        if without is not None and same_percentage(printed, without, lista):
            yield Finding(
                "explained",
                "participacion_con_s_cs",
                self.e.code,
                self.e.source_name,
                None,
                f"{PARTICIPACION} {printed} es {S_CS}/{LISTA} ({without}/{lista}); con {C_CS}"
                f" sería {with_special}: el PREP usó en este corte la fórmula sin casillas"
                " especiales",
            )
            return
        yield _warning(
            self.e,
            "aritmetica_del_preambulo",
            f"{PARTICIPACION} {printed} no es {C_CS}/{LISTA} ({with_special}) ni {S_CS}/{LISTA}",
        )

    def _arithmetic(self, rowless_captured: int) -> Iterator[Finding]:
        p = self.printed
        if (
            all(n in p for n in (CAPTURADAS, CONTABILIZADAS, NO_CONTABILIZADAS))
            and p[CAPTURADAS] != p[CONTABILIZADAS] + p[NO_CONTABILIZADAS]
        ):
            yield _warning(
                self.e,
                "aritmetica_del_preambulo",
                f"{CAPTURADAS} ({p[CAPTURADAS]}) no es {CONTABILIZADAS} + {NO_CONTABILIZADAS}"
                f" ({p[CONTABILIZADAS]} + {p[NO_CONTABILIZADAS]})",
            )
        if all(n in p for n in (REGISTRADAS, CAPTURADAS, FUERA)):
            # The rowless actas are captured but never registered: that gap is explained.
            gap = p[CAPTURADAS] + p[FUERA] - p[REGISTRADAS]
            if gap not in (0, rowless_captured):
                yield _warning(
                    self.e,
                    "aritmetica_del_preambulo",
                    f"{REGISTRADAS} ({p[REGISTRADAS]}) no es {CAPTURADAS} + {FUERA}"
                    f" ({p[CAPTURADAS]} + {p[FUERA]})",
                )


# --- each acta's own sum ----------------------------------------------------------------


def _acta_sums(e: Election) -> Iterator[Finding]:
    """Each counted acta's votes against its TOTAL_VOTOS_CALCULADO, the PREP's own sum of
    them: a vote column missing, or a column taken for votes that is not one, shows here even
    where no candidatura names it (checked on every acta of shared/data/prep)."""
    wrong = [
        a
        for a in e.actas
        if a.counted and a.calculado is not None and a.total is not None and a.total != a.calculado
    ]
    if not wrong:
        return
    first = wrong[0]
    yield Finding(
        "refused",
        "suma_del_acta",
        e.code,
        e.source_name,
        first.line,
        f"en {len(wrong)} acta(s) contabilizada(s) la suma de las columnas de votos no es"
        f" TOTAL_VOTOS_CALCULADO (p. ej. {first.clave}: {first.total} contra {first.calculado}):"
        " falta una columna de votos, o prepush tomó por votos una columna que no lo es"
        f" (columnas de votos leídas: {', '.join(e.vote_columns)})",
    )


# --- helpers -------------------------------------------------------------------------------


def _refused(e: Election, name: str, message: str) -> Finding:
    return Finding("refused", name, e.code, e.source_name, e.last_line, message)


def _warning(e: Election, name: str, message: str) -> Finding:
    return Finding("warning", name, e.code, e.source_name, None, message)


def _int(text: str | None) -> int | None:
    return printed_count(text)

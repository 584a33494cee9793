"""Votos por candidatura: the PREP's rule, read from the candidaturas file.

The results CSV has one vote column per party, per independent candidacy and per
*combination* (a ballot marked for more than one party of a coalition: ``C_PAN_PRI``). The
candidaturas file says who runs, one row per ``PARTIDO_CI``. A candidatura's votes are:

- ``SUM-A-B``: A + B + every combination column whose parties are all among A and B
  (``C_A_B``; with three parties, every combination of two or three of them);
- a code that names one column (a party; an independent ``CI1`` for ``CAND_IND_1``): that
  column;
- rows that name a combination (``C_PAN_PRD``, ``PAN-PRD``: files that list one row per
  vote column, each with the candidate's name, as Quintana Roo 2019 and the INE do) declare a
  coalition: those that name the same candidate are one coalition, read as ``SUM-`` of all
  their parties. A row of one of its parties is the same candidatura listed per column, and
  must name the same candidate.

A party code that is not exactly a column is resolved by one rule, in this order, each step
only if it gives exactly one party column (real files abbreviate differently from their own
header: Oaxaca 2022 writes ``PV`` for the column ``PVEM``):

1. the same code ignoring case and every character that is not a letter or a digit;
2. an independent candidacy (``CI1``, ``CI_01``, ``CAND_IND_1``, ``IND1``) is the column of
   an independent candidacy with the same number;
3. an abbreviation: the one party column that starts with the code (ignoring case and
   separators; the code at least two characters). Never the other way round: a code longer
   than a column (a typo such as ``MORX``) is not taken for it;
4. within a combination's code only (``PRI-NA``, ``SUM-PRI-NA``), a part that steps 1–3 leave
   without a column: the one combination column with as many parties that holds every part
   already resolved, whose parties are all party columns, and whose remaining parties each
   contain one remaining part (INE 2018
   writes ``NA`` for Nueva Alianza, whose columns are ``PANAL`` and ``C_PRI_PANAL``).

Anything else (a code that names no column or more than one, a party claimed by two
candidaturas, a party row that names another candidate than its coalition) refuses the
build naming the file, the line and the code: never a silent wrong sum.

Percentages are the PREP's: votes over the contest's total votes (every vote column of the
counted actas, candidaturas no registradas and votos nulos included: TOTAL_VOTOS_C_CS in
the LEEME's words), truncated to 4 decimals.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prepush.corte.model import Candidatura, Election
from prepush.corte.summary import truncated_percentage
from prepush.exceptions import InputError

# Vote columns that are no candidatura: shown after the candidaturas, in the total.
OTHER_COLUMNS = frozenset(
    {"NO_REGISTRADOS", "NO_REGISTRADAS", "CANDIDATURAS_NO_REGISTRADAS", "NULOS", "VOTOS_NULOS"}
)
SUM_PREFIX = "SUM-"
COMBINATION_PREFIX = "C_"
INDEPENDENT = re.compile(r"^(?:CI|CANDIND|IND|CANDIDATURAINDEPENDIENTE)0*(\d+)$")
SEPARATORS = re.compile(r"[-_]")
MIN_ABBREVIATION = 2

Scope = Literal["election", "group", "none"]


def normalized(code: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", code.upper())


# --- the vote columns -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ballot:
    """The vote columns of an election: parties (and independents), combinations, others."""

    columns: tuple[str, ...]
    parties: tuple[str, ...]
    combinations: dict[str, frozenset[str]]
    others: tuple[str, ...]

    def position(self, column: str) -> int:
        return self.columns.index(column)

    def in_order(self, columns: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(columns), key=self.position))


class _Unresolved(Exception):
    """A code that names no party column (``candidates`` empty) or several."""

    def __init__(self, code: str, candidates: Sequence[str]) -> None:
        super().__init__(code)
        self.code = code
        self.candidates = tuple(candidates)

    def explain(self) -> str:
        if self.candidates:
            return (
                f"{self.code!r} puede ser cualquiera de las columnas {', '.join(self.candidates)}"
            )
        return f"{self.code!r} no es ninguna columna de partido ni de candidatura independiente"


def resolve_party(code: str, parties: Sequence[str]) -> str:
    """The party column ``code`` names, by the module's rule; _Unresolved otherwise."""
    if code in parties:
        return code
    wanted = normalized(code)
    steps = (
        [p for p in parties if normalized(p) == wanted],
        _same_independent(wanted, parties),
        [p for p in parties if _abbreviates(wanted, normalized(p))],
    )
    for found in steps:
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise _Unresolved(code, found)
    raise _Unresolved(code, ())


def _same_independent(wanted: str, parties: Sequence[str]) -> list[str]:
    number = INDEPENDENT.match(wanted)
    if not number:
        return []
    return [
        p
        for p in parties
        if (m := INDEPENDENT.match(normalized(p))) and int(m[1]) == int(number[1])
    ]


def _abbreviates(code: str, column: str) -> bool:
    return len(code) >= MIN_ABBREVIATION and column.startswith(code)


def ballot_of(e: Election) -> Ballot:
    """The election's vote columns, classified; a combination whose parties are not columns
    refuses the build (its votes would belong to nobody)."""
    columns, parties, named, others = _classified(e.vote_columns)
    combinations: dict[str, frozenset[str]] = {}
    for column, parts in named.items():
        try:
            combinations[column] = frozenset(resolve_party(part, parties) for part in parts)
        except _Unresolved as unresolved:
            raise InputError(
                e.source_name,
                e.header_line,
                e.header.index(column) + 1 if column in e.header else None,
                f"la columna de combinación {column}: {unresolved.explain()}; sin saber de qué"
                " partidos es, sus votos no se pueden sumar a ninguna candidatura",
            ) from None
    return Ballot(columns, parties, combinations, others)


def _classified(
    vote_columns: Sequence[str],
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, list[str]], tuple[str, ...]]:
    """(columns, party columns, combination columns with the codes in their names, others)."""
    columns = tuple(vote_columns)
    others = tuple(c for c in columns if c.upper() in OTHER_COLUMNS)
    named = _combination_parts(columns, others)
    parties = tuple(c for c in columns if c not in others and c not in named)
    return columns, parties, named, others


def _combination_parts(columns: Sequence[str], others: Sequence[str]) -> dict[str, list[str]]:
    """Combination columns and the party codes in their names: ``C_PAN_PRI`` always;
    ``PAN-PRI`` or ``PVEM_PT`` (the INE's) when every part is itself a column."""
    plain = {normalized(c) for c in columns if not SEPARATORS.search(c)}
    found: dict[str, list[str]] = {}
    for column in columns:
        if column in others:
            continue
        if column.upper().startswith(COMBINATION_PREFIX):
            parts = [p for p in SEPARATORS.split(column[len(COMBINATION_PREFIX) :]) if p]
            if len(parts) >= 2:
                found[column] = parts
            continue
        parts = [p for p in SEPARATORS.split(column) if p]
        if len(parts) >= 2 and all(normalized(p) in plain for p in parts):
            found[column] = parts
    return found


# --- the candidaturas of each contest ---------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One candidatura of a contest and the vote columns whose sum is its votes."""

    # The same in every contest for the same party or coalition: its column, or
    # ``SUM-`` and its party columns in the header's order.
    key: str
    # PARTIDO_CI as the file prints it (of its first row).
    code: str
    name: str
    suplente: str | None
    parties: tuple[str, ...]
    columns: tuple[str, ...]
    lines: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "code": self.code,
            "name": self.name,
            "suplente": self.suplente,
            "parties": list(self.parties),
            "columns": list(self.columns),
            "lines": list(self.lines),
        }


@dataclass(frozen=True)
class Contests:
    """Where an election's candidaturas are: one contest for the whole election (GOB), one
    per distrito or municipio (DIP_LOC, AYUN, JUNTAS), or none (no candidaturas file)."""

    scope: Scope
    by_group: dict[int | None, tuple[Contender, ...]] = field(default_factory=dict)
    # Each combination column and its party columns (empty without a candidaturas file).
    combinations: dict[str, frozenset[str]] = field(default_factory=dict)

    def of_group(self, group_id: str) -> tuple[Contender, ...]:
        if self.scope == "election":
            return self.by_group.get(None, ())
        if self.scope == "group" and group_id.isdigit():
            return self.by_group.get(int(group_id), ())
        return ()

    @property
    def of_election(self) -> tuple[Contender, ...]:
        return self.by_group.get(None, ()) if self.scope == "election" else ()


@dataclass(frozen=True)
class _Row:
    source: Candidatura
    parties: frozenset[str]
    # A SUM- code: a whole candidatura by itself.
    summed: bool
    # A SUM- code or a combination: a coalition's candidatura (or part of one).
    coalition: bool


def contests_of(e: Election) -> Contests:
    if e.candidaturas_name is None or not e.candidaturas:
        return Contests("none")
    file = e.candidaturas_name
    grouped = {c.group is not None for c in e.candidaturas}
    if len(grouped) > 1:
        opening = e.candidaturas[0].group is not None
        odd = next(c for c in e.candidaturas if (c.group is not None) != opening)
        raise InputError(
            file,
            odd.line or None,
            None,
            "unas filas tienen distrito o municipio y otras no: no se sabe si la elección es"
            " una sola contienda o una por distrito o municipio",
        )
    ballot = ballot_of(e)
    rows: dict[int | None, list[_Row]] = {}
    for candidatura in _without_repeats(e.candidaturas):
        rows.setdefault(candidatura.group, []).append(_row(candidatura, ballot, file))
    by_group = {group: _contest(group_rows, ballot, file) for group, group_rows in rows.items()}
    scope: Scope = "group" if grouped == {True} else "election"
    return Contests(scope, by_group, ballot.combinations)


def _without_repeats(candidaturas: Sequence[Candidatura]) -> list[Candidatura]:
    """The rows that say something: INE 2021 lists each distrito's rows two or three times,
    the last time without names. A row with the code of an earlier row of its contest, and
    that row's name or none, repeats it; a different name is kept (and refused as a
    conflict)."""
    named: dict[tuple[int | None, str], str] = {}
    kept = []
    for candidatura in candidaturas:
        key = (candidatura.group, normalized(candidatura.party))
        person = _person(candidatura)
        if key in named and person in (named[key], ""):
            continue
        named[key] = person or named.get(key, "")
        kept.append(candidatura)
    return kept


def unresolved_codes(e: Election) -> list[tuple[Candidatura, str]]:
    """Each candidatura row with a party code in it that names no vote column: a results file
    without a column its candidaturas file names (reconcile refuses it)."""
    columns, parties, named, others = _classified(e.vote_columns)
    unchecked = Ballot(columns, parties, {c: frozenset(p) for c, p in named.items()}, others)
    missing: list[tuple[Candidatura, str]] = []
    for candidatura in e.candidaturas:
        try:
            _resolved_row(candidatura, candidatura.party.strip(), unchecked)
        except _Unresolved as unresolved:
            if not unresolved.candidates:
                missing.append((candidatura, unresolved.code))
    return missing


def _row(candidatura: Candidatura, ballot: Ballot, file: str) -> _Row:
    code = candidatura.party.strip()
    try:
        return _resolved_row(candidatura, code, ballot)
    except _Unresolved as unresolved:
        raise InputError(
            file,
            candidatura.line or None,
            None,
            f"PARTIDO_CI {code!r}: {unresolved.explain()} en {', '.join(ballot.columns)};"
            " sin eso no se pueden sumar sus votos. Corrija el archivo de candidaturas o"
            " pida al PREP el que corresponde a estos resultados",
        ) from None


def _resolved_row(candidatura: Candidatura, code: str, ballot: Ballot) -> _Row:
    if code.upper().startswith(SUM_PREFIX):
        parts = [p for p in code[len(SUM_PREFIX) :].split("-") if p]
        if not parts:
            raise _Unresolved(code, ())
        return _Row(candidatura, _combination_parties(parts, ballot), summed=True, coalition=True)
    exact = _exact_party(code, ballot.parties)
    if exact is not None:
        return _Row(candidatura, frozenset({exact}), summed=False, coalition=False)
    combination = [c for c in ballot.combinations if normalized(c) == normalized(code)]
    if len(combination) == 1:
        parties = ballot.combinations[combination[0]]
        return _Row(candidatura, parties, summed=False, coalition=True)
    parts = [p for p in SEPARATORS.split(_without_combination_prefix(code)) if p]
    if len(parts) >= 2:
        return _Row(candidatura, _combination_parties(parts, ballot), summed=False, coalition=True)
    party = resolve_party(code, ballot.parties)
    return _Row(candidatura, frozenset({party}), summed=False, coalition=False)


def _combination_parties(parts: Sequence[str], ballot: Ballot) -> frozenset[str]:
    """The party columns of a combination's code: steps 1–3 for each part, then step 4 for
    the parts they leave without a column."""
    resolved: set[str] = set()
    pending: list[str] = []
    for part in parts:
        try:
            resolved.add(resolve_party(part, ballot.parties))
        except _Unresolved as unresolved:
            if unresolved.candidates:
                raise
            pending.append(part)
    if not pending:
        return frozenset(resolved)
    matches = {
        members
        for members in ballot.combinations.values()
        if len(members) == len(parts)
        and resolved <= members
        and members <= set(ballot.parties)
        and _each_contained(pending, members - resolved)
    }
    if len(matches) == 1:
        return matches.pop()
    columns = sorted(c for c, members in ballot.combinations.items() if members in matches)
    raise _Unresolved(pending[0], columns)


def _each_contained(parts: Sequence[str], parties: Iterable[str]) -> bool:
    """Whether each part is inside a different one of ``parties`` (ignoring case and
    separators), one to one."""
    wanted = [normalized(p) for p in parts]
    names = [normalized(p) for p in parties]
    return len(wanted) == len(names) and any(
        all(part in name for part, name in zip(wanted, order, strict=True))
        for order in itertools.permutations(names)
    )


def _exact_party(code: str, parties: Sequence[str]) -> str | None:
    """Steps 1 and 2 of the rule (not the abbreviation): a code such as ``PAN-PRI`` must be
    read as a coalition before ``PAN`` could be taken for its abbreviation."""
    if code in parties:
        return code
    wanted = normalized(code)
    same = [p for p in parties if normalized(p) == wanted]
    for found in (same, _same_independent(wanted, parties)):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise _Unresolved(code, found)
    return None


def _without_combination_prefix(code: str) -> str:
    return code[len(COMBINATION_PREFIX) :] if code.upper().startswith(COMBINATION_PREFIX) else code


@dataclass
class _Coalition:
    parties: set[str]
    rows: list[_Row]

    @property
    def person(self) -> str:
        return _person(self.rows[0].source)


def _person(c: Candidatura) -> str:
    return " ".join(c.name.split()).casefold()


def _contest(rows: Sequence[_Row], ballot: Ballot, file: str) -> tuple[Contender, ...]:
    coalitions = [_Coalition(set(r.parties), [r]) for r in rows if r.summed]
    declared: dict[str, _Coalition] = {}
    for row in (r for r in rows if r.coalition and not r.summed):
        known = declared.get(_person(row.source))
        if known is None:
            declared[_person(row.source)] = _Coalition(set(row.parties), [row])
        else:
            known.parties |= row.parties
            known.rows.append(row)
    coalitions += declared.values()
    _disjoint(coalitions, file)
    alone: list[_Row] = []
    for row in (r for r in rows if not r.coalition):
        (party,) = row.parties
        owner = next((c for c in coalitions if party in c.parties), None)
        if owner is None:
            alone.append(row)
        elif _person(row.source) == owner.person:
            owner.rows.append(row)
        else:
            raise _conflict(file, row, owner.rows[0], party)
    _distinct(alone, file)
    contenders = [_coalition_contender(c, ballot) for c in coalitions]
    contenders += [_party_contender(r) for r in alone]
    return tuple(sorted(contenders, key=lambda c: c.lines[0]))


def _disjoint(coalitions: Sequence[_Coalition], file: str) -> None:
    for i, first in enumerate(coalitions):
        for second in coalitions[i + 1 :]:
            shared = first.parties & second.parties
            if shared:
                raise _conflict(file, second.rows[0], first.rows[0], sorted(shared)[0])


def _distinct(rows: Sequence[_Row], file: str) -> None:
    seen: dict[frozenset[str], _Row] = {}
    for row in rows:
        if row.parties in seen:
            (party,) = row.parties
            raise _conflict(file, row, seen[row.parties], party)
        seen[row.parties] = row


def _conflict(file: str, row: _Row, other: _Row, party: str) -> InputError:
    return InputError(
        file,
        row.source.line or None,
        None,
        f"PARTIDO_CI {row.source.party!r} ({row.source.name}) y la línea {other.source.line}"
        f" ({other.source.party!r}, {other.source.name}) reclaman los votos de {party} en la"
        " misma contienda: no pueden ser de dos candidaturas. Corrija el archivo de"
        " candidaturas",
    )


def _coalition_contender(coalition: _Coalition, ballot: Ballot) -> Contender:
    parties = ballot.in_order(coalition.parties)
    combinations = [c for c, members in ballot.combinations.items() if members <= coalition.parties]
    first = min(coalition.rows, key=lambda r: r.source.line)
    summed = next((r for r in coalition.rows if r.summed), first)
    return Contender(
        key=SUM_PREFIX + "-".join(parties),
        code=summed.source.party.strip(),
        name=first.source.name,
        suplente=first.source.suplente,
        parties=parties,
        columns=ballot.in_order([*parties, *combinations]),
        lines=tuple(sorted(r.source.line for r in coalition.rows)),
    )


def _party_contender(row: _Row) -> Contender:
    (party,) = row.parties
    return Contender(
        key=party,
        code=row.source.party.strip(),
        name=row.source.name,
        suplente=row.source.suplente,
        parties=(party,),
        columns=(party,),
        lines=(row.source.line,),
    )


# --- the figures ----------------------------------------------------------------------------


def tally(
    contenders: Sequence[Contender], columns: Sequence[str], totals: Sequence[int]
) -> dict[str, Any]:
    """Votos por candidatura of a contest (or of a distrito of a one-contest election), in
    the order of the candidaturas file; then votes of columns no candidatura claims (only
    those with votes, so that the figures add up to the total), and the other columns
    (candidaturas no registradas, votos nulos)."""
    total = sum(totals)
    votes = dict(zip(columns, totals, strict=True))
    claimed = {column for c in contenders for column in c.columns}
    rows: list[dict[str, Any]] = []
    for c in contenders:
        count = sum(votes[column] for column in c.columns)
        rows.append(
            {"key": c.key, "votes": count, "percentage": truncated_percentage(count, total)}
        )
    unclaimed = [
        c for c in columns if c not in claimed and c.upper() not in OTHER_COLUMNS and votes[c]
    ]
    others = [c for c in columns if c.upper() in OTHER_COLUMNS]
    return {
        "candidaturas": rows,
        "sin_candidatura": [_figure(c, votes[c], total) for c in unclaimed],
        "otros": [_figure(c, votes[c], total) for c in others],
        "total": total,
        "leader": leader(rows),
    }


def _figure(column: str, votes: int, total: int) -> dict[str, Any]:
    return {"column": column, "votes": votes, "percentage": truncated_percentage(votes, total)}


def leader(rows: Sequence[dict[str, Any]]) -> str | None:
    """The key of the candidatura with the most votes; none on a tie or without votes."""
    ranked = sorted((int(r["votes"]) for r in rows), reverse=True)
    if not ranked or ranked[0] == 0 or (len(ranked) > 1 and ranked[0] == ranked[1]):
        return None
    return next(str(r["key"]) for r in rows if r["votes"] == ranked[0])


def percentages(totals: Sequence[int]) -> list[str]:
    """Each vote column's share of the total, by the PREP's rule."""
    total = sum(totals)
    return [truncated_percentage(v, total) for v in totals]

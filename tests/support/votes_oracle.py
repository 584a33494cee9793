"""Votes by candidatura computed straight from the PREP's CSVs, without prepush's code.

The oracle of the browser tests: what the page shows for every candidatura must equal what
this computes. Its own small CSV reading (encoding, delimiter, preamble, quoted keys) and its
own reading of the rule in shared/data/prep/README.md: ``SUM-A-B`` is A + B + every
combination column ``C_…`` whose parties are all among A and B; a plain code is its column
(``CI1`` is ``CAND_IND_1``; an abbreviation such as ``PV`` is the one column that starts with
it); rows that name a combination column list one coalition's candidate column by column,
and that candidate's votes are the sum for all the parties those rows name.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

VOTES_FROM = "TOTAL_VOTOS_SACADOS"
VOTES_TO = "TOTAL_VOTOS_ASENTADO"
GROUPS = ("ID_DISTRITO_LOCAL", "ID_DISTRITO", "ID_MUNICIPIO", "ID_MUNICIPIO_LOCAL")
OTHERS = {"NO_REGISTRADOS", "NO_REGISTRADAS", "NULOS"}


def text_of(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def clean(cell: str) -> str:
    return cell.strip().removeprefix("=").strip('"').lstrip("'").strip()


def table(text: str, first: str) -> tuple[list[str], list[list[str]]]:
    """The header that starts with ``first`` and the rows under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if clean(line).startswith(first))
    delimiter = "|" if lines[start].count("|") > lines[start].count(",") else ","
    rows = [r for r in csv.reader(lines[start:], delimiter=delimiter) if any(c.strip() for c in r)]
    return [clean(c) for c in rows[0]], rows[1:]


@dataclass
class Contest:
    """One contest: its vote totals by column and its candidaturas as (name, votes)."""

    totals: dict[str, int] = field(default_factory=dict)
    candidaturas: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.totals.values())


def results(csv_path: Path) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Vote columns, and each group's totals over the counted actas (CONTABILIZADA 1)."""
    header, rows = table(text_of(csv_path), "CLAVE_CASILLA")
    columns = header[header.index(VOTES_FROM) + 1 : header.index(VOTES_TO)]
    group = next((header.index(g) for g in GROUPS if g in header), None)
    counted = header.index("CONTABILIZADA")
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(columns, 0))
    for row in rows:
        if clean(row[0]) in ("", "-") or clean(row[counted]) != "1":
            continue
        key = str(int(clean(row[group]))) if group is not None else "0"
        for column in columns:
            cell = clean(row[header.index(column)])
            sums[key][column] += int(cell) if cell.isdigit() else 0
    return columns, dict(sums)


def party(code: str, columns: list[str]) -> str:
    """The column of a party code: itself, an independent's by number, or by abbreviation."""
    if code in columns:
        return code
    number = re.fullmatch(r"CI_?0*(\d+)", code)
    if number:
        (found,) = [c for c in columns if re.fullmatch(rf"(?:CAND_IND_|CI_?)0*{number[1]}", c)]
        return found
    (found,) = [
        c
        for c in columns
        if not c.startswith("C_") and c not in OTHERS and (c.startswith(code) or code.startswith(c))
    ]
    return found


def members(combination: str) -> set[str]:
    return set(combination[2:].split("_"))


def same(token: str, name: str) -> bool:
    return token == name or token.startswith(name) or name.startswith(token)


def coalition_votes(parties: set[str], votes: dict[str, int]) -> int:
    """The parties' own columns and every combination of only them."""
    columns = list(votes)
    own = {party(p, columns) for p in parties}
    combinations = [
        c
        for c in columns
        if c.startswith("C_") and all(any(same(t, p) for p in parties) for t in members(c))
    ]
    return sum(votes[c] for c in own) + sum(votes[c] for c in combinations)


def candidaturas(cand_path: Path) -> dict[str, list[tuple[str, str]]]:
    """Each group's (PARTIDO_CI, CANDIDATURA_PROPIETARIA) rows; one group "0" without groups."""
    header, rows = table(text_of(cand_path), "")
    group = next(
        (
            i
            for i, h in enumerate(header)
            if h.startswith("ID_") and h not in ("ID_ESTADO", "ID_ENTIDAD")
        ),
        None,
    )
    code, name = header.index("PARTIDO_CI"), header.index("CANDIDATURA_PROPIETARIA")
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        key = str(int(clean(row[group]))) if group is not None else "0"
        found[key].append((clean(row[code]), row[name].strip()))
    return dict(found)


def contest(rows: list[tuple[str, str]], votes: dict[str, int]) -> list[tuple[str, int]]:
    """(name, votes) of each candidatura of one contest."""
    coalition_of: dict[str, set[str]] = defaultdict(set)
    for code, name in rows:
        if code.startswith("C_"):
            coalition_of[name] |= members(code)
    out: list[tuple[str, int]] = []
    for code, name in rows:
        if code.startswith("SUM-"):
            out.append((name, coalition_votes(set(code[4:].split("-")), votes)))
        elif name in coalition_of:
            if not code.startswith("C_"):
                coalition_of[name].add(code)  # the same candidate listed on a party's column
        else:
            out.append((name, votes[party(code, list(votes))]))
    out += [(name, coalition_votes(parties, votes)) for name, parties in coalition_of.items()]
    return out


def contests(corte_dir: Path) -> dict[str, Contest]:
    """Every contest of one election's folder by group ("0": the whole election)."""
    files = [p for p in corte_dir.iterdir() if p.suffix.lower() == ".csv"]
    (cand_path,) = [p for p in files if "CANDIDATURA" in p.name.upper()]
    (csv_path,) = [p for p in files if "CANDIDATURA" not in p.name.upper()]
    columns, by_group = results(csv_path)
    rows = candidaturas(cand_path)
    found: dict[str, Contest] = {}
    if set(rows) == {"0"}:
        whole = {c: sum(g[c] for g in by_group.values()) for c in columns}
        found["0"] = Contest(whole, contest(rows["0"], whole))
        return found
    for key, group_rows in rows.items():
        votes = by_group.get(key, dict.fromkeys(columns, 0))
        found[key] = Contest(votes, contest(group_rows, votes))
    return found

"""Votos por candidatura by the PREP's rule (prepush/corte/candidaturas.py).

The real files are the oracle: Campeche 2021 (``SUM-`` codes), Oaxaca 2022 (``PV`` in the
candidaturas file for the column ``PVEM``), Quintana Roo 2019 (one row per vote column, each
with the candidate's name) and the INE 2024 layout (combinations named ``PAN-PRI`` and
``PVEM_PT``, independents ``CI_01``). Each refusal names the file, the line and the code.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.corte.candidaturas import (
    Contender,
    contests_of,
    leader,
    percentages,
    resolve_party,
    tally,
    unresolved_codes,
)
from prepush.corte.inputs import collect_sources, parse_sources
from prepush.corte.model import Candidatura, Election, SourceFile
from prepush.exceptions import InputError
from tests.conftest import Workdir
from tests.support.prepdata import cortes_dir, prep_data_dir

CAMPECHE_GOB = [
    *("PAN", "PRI", "PRD", "PT", "PVEM", "MC", "MOR", "PES", "RSP", "FM"),
    *("C_PAN_PRI_PRD", "C_PAN_PRI", "C_PAN_PRD", "C_PRI_PRD", "C_PT_MOR"),
    *("NO_REGISTRADOS", "NULOS"),
]
CANDIDATURAS = "CAMP_GOB_CANDIDATURA_2021.csv"


def election(
    columns: Sequence[str],
    rows: Sequence[tuple[str, str] | tuple[str, str, int | None]],
    file: str = CANDIDATURAS,
) -> Election:
    """An election with these vote columns and candidaturas rows (line 2 onwards)."""
    candidaturas = tuple(
        Candidatura(
            party=row[0],
            name=row[1],
            suplente=None,
            group=row[2] if len(row) > 2 else None,  # type: ignore[misc]
            line=line,
        )
        for line, row in enumerate(rows, start=2)
    )
    header = ("CLAVE_CASILLA", "TOTAL_VOTOS_SACADOS", *columns, "TOTAL_VOTOS_ASENTADO")
    return Election(
        code="GOB",
        name="GUBERNATURA",
        corte_time=datetime(2021, 6, 7, tzinfo=UTC),
        preamble={},
        header=header,
        group_kind="distrito",
        group_label="Distrito local",
        vote_columns=tuple(columns),
        actas=(),
        fuera_catalogo=0,
        candidaturas=candidaturas,
        source_name="CAMP_GOB_2021.csv",
        candidaturas_name=file,
        header_line=6,
    )


def only(e: Election) -> dict[str, Contender]:
    return {c.name: c for c in contests_of(e).of_election}


def refusal(e: Election) -> InputError:
    with pytest.raises(InputError) as raised:
        contests_of(e)
    return raised.value


# --- Campeche 2021: SUM- codes --------------------------------------------------------------


def campeche(corte: str) -> list[Election]:
    return parse_sources(collect_sources(sorted(cortes_dir().glob(f"{corte}_PREP_*"))))


def totals_of(e: Election, group: str | None = None) -> list[int]:
    totals = [0] * len(e.vote_columns)
    for acta in e.actas:
        if acta.counted and acta.votes is not None and group in (None, acta.group_id):
            for i, votes in enumerate(acta.votes):
                totals[i] += votes
    return totals


def test_campeche_gob_at_1320_layda_leads_with_pt_mor_and_their_combination() -> None:
    gob = next(e for e in campeche("20210607_1320") if e.code == "GOB")
    contests = contests_of(gob)
    assert contests.scope == "election"
    by_name = {c.name: c for c in contests.of_election}
    layda = by_name["LAYDA ELENA SANSORES SAN ROMAN"]
    assert layda.columns == ("PT", "MOR", "C_PT_MOR")
    assert layda.parties == ("PT", "MOR")
    assert layda.key == layda.code == "SUM-PT-MOR"
    castro = by_name["CHRISTIAN MISHEL CASTRO BELLO"]
    assert castro.columns == (
        "PAN",
        "PRI",
        "PRD",
        "C_PAN_PRI_PRD",
        "C_PAN_PRI",
        "C_PAN_PRD",
        "C_PRI_PRD",
    )
    totals = totals_of(gob)
    column = dict(zip(gob.vote_columns, totals, strict=True))
    # The figures of shared/data/prep/README.md.
    assert (column["PT"], column["MOR"], column["C_PT_MOR"]) == (4490, 102873, 1499)
    figures = tally(contests.of_election, gob.vote_columns, totals)
    votes = {row["key"]: row["votes"] for row in figures["candidaturas"]}
    assert votes["SUM-PT-MOR"] == 108862
    assert votes["SUM-PAN-PRI-PRD"] == 101468
    assert votes["MC"] == 104178
    assert figures["leader"] == "SUM-PT-MOR"
    assert figures["total"] == sum(totals)
    shown = sum(votes.values()) + sum(o["votes"] for o in figures["otros"])
    assert shown == figures["total"]
    assert figures["sin_candidatura"] == []
    percentage = next(r for r in figures["candidaturas"] if r["key"] == "SUM-PT-MOR")["percentage"]
    assert percentage == "33.1046"  # 108862 / 328842, truncated


def test_every_campeche_contest_has_its_candidaturas_and_every_vote_column_a_place() -> None:
    for e in campeche("20210607_2000"):
        contests = contests_of(e)
        assert contests.scope == ("election" if e.code == "GOB" else "group"), e.code
        groups = {a.group_id for a in e.actas}
        for group in groups:
            contenders = contests.of_group(group)
            assert contenders, (e.code, group)
            figures = tally(contenders, e.vote_columns, totals_of(e, group))
            assert figures["sin_candidatura"] == [], (e.code, group)
            claimed = [column for c in contenders for column in c.columns]
            assert len(claimed) == len(set(claimed))
    ayun = next(e for e in campeche("20210607_2000") if e.code == "AYUN")
    (independent,) = [c for c in contests_of(ayun).of_group("5") if c.code == "CI1"]
    assert independent.columns == ("CAND_IND_1",)
    assert independent.key == "CAND_IND_1"


# --- the rule on small ballots ----------------------------------------------------------------


def test_sum_of_three_parties_takes_every_combination_of_two_or_three_of_them() -> None:
    columns = ["PAN", "PRI", "PRD", "MC", "C_PAN_PRI_PRD", "C_PAN_PRI", "C_PRI_PRD", "C_PAN_MC"]
    e = election([*columns, "NULOS"], [("SUM-PAN-PRI-PRD", "A"), ("MC", "B")])
    by_name = only(e)
    assert by_name["A"].columns == ("PAN", "PRI", "PRD", "C_PAN_PRI_PRD", "C_PAN_PRI", "C_PRI_PRD")
    assert by_name["B"].columns == ("MC",)
    # C_PAN_MC belongs to no candidatura: its votes are shown apart, never dropped.
    figures = tally(contests_of(e).of_election, [*columns, "NULOS"], [1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert [r["votes"] for r in figures["candidaturas"]] == [1 + 2 + 3 + 5 + 6 + 7, 4]
    assert figures["sin_candidatura"] == [
        {"column": "C_PAN_MC", "votes": 8, "percentage": "17.7777"}
    ]
    assert figures["otros"] == [{"column": "NULOS", "votes": 9, "percentage": "20"}]
    assert figures["total"] == 45


def test_percentages_are_truncated_over_the_total_with_nulos_and_no_registrados() -> None:
    e = election(["A", "B", "NO_REGISTRADOS", "NULOS"], [("A", "Ana"), ("B", "Beto")])
    figures = tally(contests_of(e).of_election, e.vote_columns, [2, 1, 0, 0])
    assert [r["percentage"] for r in figures["candidaturas"]] == ["66.6666", "33.3333"]
    assert percentages([1050, 140, 0]) == ["88.2352", "11.7647", "0"]
    assert percentages([0, 0]) == ["0", "0"]


def test_no_leader_on_a_tie_or_without_votes() -> None:
    assert leader([{"key": "A", "votes": 3}, {"key": "B", "votes": 3}]) is None
    assert leader([{"key": "A", "votes": 0}, {"key": "B", "votes": 0}]) is None
    assert leader([{"key": "A", "votes": 2}, {"key": "B", "votes": 3}]) == "B"
    assert leader([]) is None


@pytest.mark.parametrize(
    ("code", "columns", "expected"),
    [
        ("PAN", ["PAN", "PANAL"], "PAN"),
        ("morena", ["PAN", "MORENA"], "MORENA"),
        ("PV", ["PVEM", "PT"], "PVEM"),
        ("CI1", ["PAN", "CAND_IND_1", "CAND_IND_2"], "CAND_IND_1"),
        ("CI_01", ["PAN", "CAND_IND_1"], "CAND_IND_1"),
        ("CAND_IND_2", ["CI1", "CI2"], "CI2"),
    ],
)
def test_a_party_code_is_resolved_by_the_documented_rule(
    code: str, columns: list[str], expected: str
) -> None:
    assert resolve_party(code, columns) == expected


# --- real layouts -----------------------------------------------------------------------------


def read_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("sep=")]
    delimiter = "|" if lines[0].count("|") > lines[0].count(",") else ","
    return list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))


def vote_columns(text: str) -> list[str]:
    """The vote columns of a results CSV, read here (not by prepush)."""
    line = next(line for line in text.splitlines() if line.startswith("CLAVE_CASILLA"))
    header = line.split("|" if line.count("|") > line.count(",") else ",")
    return header[header.index("TOTAL_VOTOS_SACADOS") + 1 : header.index("TOTAL_VOTOS_ASENTADO")]


def test_oaxaca_2022_writes_pv_for_pvem_and_its_coalition_takes_its_eleven_combinations() -> None:
    folder = prep_data_dir() / "oaxaca_2022" / "20220606_1500_PREP_GUB_OAX"
    columns = vote_columns((folder / "OAX_GUB_2022.csv").read_text())
    rows = read_rows((folder / "OAX_GUB_Candidatura_2022.csv").read_text())
    e = election(columns, [(r[1], r[2]) for r in rows[1:]], "OAX_GUB_Candidatura_2022.csv")
    by_name = only(e)
    jara = by_name["Salomon Jara Cruz"]
    assert jara.parties == ("PT", "PVEM", "PUP", "MOR")
    assert jara.code == "SUM-PT-PV-PUP-MOR"
    assert [c for c in jara.columns if c.startswith("C_")] == [
        c for c in columns if c.startswith("C_") and c != "C_PRI_PRD"
    ]
    assert len(jara.columns) == 4 + 11
    assert by_name["Alejandro Aviles Alvarez"].columns == ("PRI", "PRD", "C_PRI_PRD")
    assert by_name["Mauricio Cruz Vargas"].columns == ("CI1",)
    assert unresolved_codes(e) == []


def test_quintana_roo_2019_lists_one_row_per_column_and_a_coalition_is_one_candidatura() -> None:
    folder = prep_data_dir() / "quintana_roo_2019" / "20190603_0547_PREP_DIP_QROO"
    columns = vote_columns((folder / "QROO_DIP_LOC_2019.csv").read_text())
    rows = read_rows((folder / "QROO_DIP_CANDIDATURAS_2019.csv").read_bytes().decode("latin-1"))
    e = election(
        columns,
        [(r[2], r[3], int(r[1])) for r in rows[1:]],
        "QROO_DIP_CANDIDATURAS_2019.csv",
    )
    contests = contests_of(e)
    assert contests.scope == "group"
    second = {c.name: c for c in contests.of_group("2")}
    teresa_like = second["MAURICIO DELFIN AVENDAÑO"]
    assert teresa_like.key == "SUM-PAN-PRD-PESQROO"
    assert teresa_like.columns == (
        "PAN",
        "PRD",
        "PESQROO",
        "C_PAN_PRD_PESQROO",
        "C_PAN_PRD",
        "C_PAN_PESQROO",
        "C_PRD_PESQROO",
    )
    assert len(teresa_like.lines) == 7  # its seven rows, one per column
    hernan = second["HERNAN VILLATORO BARRIOS"]
    assert hernan.parties == ("PVEM", "PT", "MORENA")
    assert len(hernan.columns) == 7
    # Every contest: no column claimed twice, no row left out.
    for group in {c.group for c in e.candidaturas}:
        contenders = contests.of_group(str(group))
        claimed = [column for c in contenders for column in c.columns]
        assert len(claimed) == len(set(claimed)), group
        lines = sorted(line for c in contenders for line in c.lines)
        assert lines == sorted(c.line for c in e.candidaturas if c.group == group)


def test_the_ine_2024_layout_combinations_without_c_and_independents_ci_01() -> None:
    columns = [
        *("PAN", "PRI", "PRD", "PVEM", "PT", "MC", "MORENA", "CI_01"),
        *("PAN-PRI-PRD", "PAN-PRI", "PAN-PRD", "PRI-PRD"),
        *("PVEM_PT_MORENA", "PVEM_PT", "PVEM_MORENA", "PT_MORENA", "NO_REGISTRADAS", "NULOS"),
    ]
    rows = [
        *((party, "Bertha") for party in ("PAN", "PRI", "PRD")),
        *((party, "Claudia") for party in ("PVEM", "PT", "MORENA")),
        ("MC", "Jorge"),
        *(
            (combination, "Bertha")
            for combination in ("PAN-PRI-PRD", "PAN-PRI", "PAN-PRD", "PRI-PRD")
        ),
        ("CI1", "Independiente"),
    ]
    by_name = only(election(columns, rows))
    assert by_name["Bertha"].columns == (
        "PAN",
        "PRI",
        "PRD",
        "PAN-PRI-PRD",
        "PAN-PRI",
        "PAN-PRD",
        "PRI-PRD",
    )
    # Without a combination row, parties that name the same person are not merged by name:
    # the file gives no coalition (Campeche's JUNTAS repeat a placeholder name on many rows).
    assert "Claudia" in by_name
    assert by_name["Jorge"].columns == ("MC",)
    assert by_name["Independiente"].columns == ("CI_01",)


def test_campeche_placeholder_names_stay_separate_candidaturas() -> None:
    rows = [("PVEM", "Nombre Apellido Apellido"), ("PES", "Nombre Apellido Apellido"), ("MC", "X")]
    contenders = contests_of(election(["PVEM", "PES", "MC", "NULOS"], rows)).of_election
    assert [c.columns for c in contenders] == [("PVEM",), ("PES",), ("MC",)]


# --- refusals: file, line and code ----------------------------------------------------------


def test_a_code_that_names_no_column_refuses_naming_file_line_and_code() -> None:
    error = refusal(election(CAMPECHE_GOB, [("MC", "A"), ("SUM-PT-MOR-X", "B")]))
    assert (error.file, error.line) == (CANDIDATURAS, 3)
    assert "'X'" in error.what
    assert "SUM-PT-MOR-X" in error.what
    assert f"{CANDIDATURAS}:3:" in str(error)


def test_a_code_longer_than_a_column_is_not_taken_for_it() -> None:
    error = refusal(election(["PT", "MOR"], [("PT", "A"), ("MORX", "B")]))
    assert error.line == 3
    assert "'MORX'" in error.what


def test_an_ambiguous_abbreviation_refuses_naming_both_columns() -> None:
    error = refusal(election(["PRI", "PRD", "PT"], [("PT", "A"), ("PR", "B")]))
    assert error.line == 3
    assert "PRI" in error.what
    assert "PRD" in error.what


def test_a_party_claimed_by_two_candidaturas_refuses() -> None:
    columns = ["PAN", "PRI", "PRD", "C_PAN_PRI", "C_PAN_PRD"]
    error = refusal(election(columns, [("SUM-PAN-PRI", "A"), ("SUM-PAN-PRD", "B")]))
    assert (error.file, error.line) == (CANDIDATURAS, 3)
    assert "PAN" in error.what
    assert "línea 2" in error.what
    error = refusal(election(["PAN", "PRI"], [("PAN", "A"), ("PRI", "B"), ("PAN", "C")]))
    assert error.line == 4


def test_a_party_row_naming_another_candidate_than_its_coalition_refuses() -> None:
    columns = ["PAN", "PRD", "C_PAN_PRD"]
    rows = [("C_PAN_PRD", "Teresa"), ("PAN", "Teresa"), ("PRD", "Otra persona")]
    error = refusal(election(columns, rows))
    assert error.line == 4
    assert "PRD" in error.what


def test_a_combination_column_of_unknown_parties_refuses_naming_the_header() -> None:
    error = refusal(election(["PAN", "PRI", "C_PAN_XYZ"], [("SUM-PAN-PRI", "A")]))
    assert (error.file, error.line, error.column) == ("CAMP_GOB_2021.csv", 6, 5)
    assert "C_PAN_XYZ" in error.what


def test_rows_with_and_without_distrito_refuse() -> None:
    error = refusal(election(["PAN", "PRI"], [("PAN", "A", 1), ("PRI", "B", None)]))
    assert error.line == 3


def test_unresolved_codes_are_what_reconcile_reports_as_missing_columns() -> None:
    e = election([c for c in CAMPECHE_GOB if c != "PAN"], [("SUM-PAN-PRI-PRD", "A"), ("MC", "B")])
    assert [(c.line, code) for c, code in unresolved_codes(e)] == [(2, "PAN")]


def test_without_a_candidaturas_file_there_is_no_contest() -> None:
    e = election(CAMPECHE_GOB, [], file="")
    e = Election(**{**e.__dict__, "candidaturas_name": None})
    assert contests_of(e).scope == "none"
    assert contests_of(e).of_group("001") == ()


def test_the_candidatura_keeps_its_line_in_the_file() -> None:
    folder = next(cortes_dir().glob("20210607_1320_PREP_GOB_CAMP"))
    data = (folder / CANDIDATURAS).read_bytes()
    (gob,) = parse_sources(
        [
            SourceFile(CANDIDATURAS, data),
            SourceFile("CAMP_GOB_2021.csv", (folder / "CAMP_GOB_2021.csv").read_bytes()),
        ]
    )
    lines = {c.party: c.line for c in gob.candidaturas}
    assert lines["SUM-PT-MOR"] == 8
    assert lines["PVEM"] == 2


def test_build_refuses_an_ambiguous_code_naming_file_line_and_code_and_builds_nothing(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corte = "20210607_1320"
    inputs = []
    for source in sorted(cortes_dir().glob(f"{corte}_PREP_*")):
        target = tmp_path / source.name
        shutil.copytree(source, target)
        for path in target.iterdir():
            path.chmod(0o644)
        inputs.append(target)
    gob = tmp_path / f"{corte}_PREP_GOB_CAMP" / CANDIDATURAS
    # PR: PRI or PRD? The build cannot tell, and says so.
    gob.write_text(gob.read_text().replace("SUM-PT-MOR,", "SUM-PR-MOR,"))
    workdir.write_roster([])
    capsys.readouterr()
    for kind in ([], ["--simulacro"]):
        code = main(["-C", str(workdir.path), "build", *kind, *map(str, inputs)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"{CANDIDATURAS}:8:" in err
        assert "'PR' puede ser cualquiera de las columnas PRI, PRD" in err
        assert "no se construyó ningún paquete" in err
        assert not (workdir.path / "paquetes" / corte).exists()

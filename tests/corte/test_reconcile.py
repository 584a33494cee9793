"""The PREP's preamble shown as printed; the rows check it: every difference named, every
cut file refused (prepush/corte/reconcile.py, the night's catalogue, build's CLI and ledger)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.corte.catalogue import CATALOGUE_FILE, CatalogueCheck, RowlessProof
from prepush.corte.formats import SUMMARY_FIELDS
from prepush.corte.model import Election, SourceFile
from prepush.corte.reconcile import Finding, Reconciliation, reconcile
from prepush.corte.results_file import parse_election as parse
from prepush.corte.summary import compute_summary
from prepush.ledger import Ledger
from tests.conftest import CAMPECHE_ROWLESS_ACTAS, Workdir
from tests.support.prepdata import CORTES, cortes_dir

ELECTIONS = ("GOB", "DIP_LOC", "AYUN", "JUNTAS")
# Every difference between preamble and rows that the data explains in the seven Campeche
# cortes. JUNTAS prints TOTAL_VOTOS_S_CS = 0; the 13:20 and 14:40 cortes compute
# participation with TOTAL_VOTOS_S_CS; DIP_LOC counts from 13:20 on 3 or 4 actas of
# representación proporcional of special casillas, which have no row.
MIDDAY = {"GOB": {"participacion_con_s_cs"}, "AYUN": {"participacion_con_s_cs"}}
EXPLAINED: dict[tuple[str, str], set[str]] = {
    ("20210606_2320", "JUNTAS"): {"s_cs_en_cero"},
    ("20210606_2340", "JUNTAS"): {"s_cs_en_cero"},
    **{
        (corte, code): names
        for corte in ("20210607_1320", "20210607_1440")
        for code, names in {
            **MIDDAY,
            "DIP_LOC": {"actas_rp_sin_fila", "participacion_con_s_cs"},
            "JUNTAS": {"s_cs_en_cero"},
        }.items()
    },
    ("20210607_2000", "DIP_LOC"): {"actas_rp_sin_fila"},
    ("20210607_2000", "JUNTAS"): {"s_cs_en_cero"},
}
# Built in order, the first corte of the night records the catalogue; at 22:40 AYUN drops
# three duplicated rows and JUNTAS gains a casilla, and both change ACTAS_ESPERADAS with it.
WARNED = {"20210606_2240": ["AYUN", "JUNTAS"]}
ESPERADAS_CHANGED = "ACTAS_ESPERADAS pasó de"


def csv_path(corte: str, code: str) -> Path:
    return cortes_dir() / f"{corte}_PREP_{code}_CAMP" / f"CAMP_{code}_2021.csv"


def candidaturas_path(corte: str, code: str) -> Path:
    return csv_path(corte, code).with_name(f"CAMP_{code}_CANDIDATURA_2021.csv")


def printed_preamble(corte: str, code: str) -> dict[str, str]:
    """The summary lines as the file has them, read without prepush's parser."""
    lines = csv_path(corte, code).read_text(encoding="utf-8").split("\n")
    names, values = lines[2].split(","), lines[3].split(",")
    assert tuple(names) == SUMMARY_FIELDS
    return {n.lower(): v for n, v in zip(names, values, strict=True)}


def proof_for(code: str) -> RowlessProof:
    declared = CAMPECHE_ROWLESS_ACTAS.get(code, 0)
    return RowlessProof(declared, "padrón", exact=True) if declared else RowlessProof(0, "")


def reconcile_bytes(corte: str, code: str, data: bytes, proof: RowlessProof) -> Reconciliation:
    path, candidaturas = csv_path(corte, code), candidaturas_path(corte, code)
    election = parse(
        SourceFile(path.name, data), SourceFile(candidaturas.name, candidaturas.read_bytes())
    )
    return reconcile(election, compute_summary(election), CatalogueCheck(proof))


def names(findings: list[Finding]) -> set[str]:
    return {f.name for f in findings}


# --- the night as published ------------------------------------------------------------------


def test_a_night_in_order_shows_the_preamble_verbatim_and_names_every_difference(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    for corte in CORTES:
        inputs = [str(p) for p in sorted(cortes_dir().glob(f"{corte}_PREP_*"))]
        capsys.readouterr()
        assert main(["-C", str(workdir.path), "build", "--json", *inputs]) == 0
        built = json.loads(capsys.readouterr().out)
        warned = sorted(w.split(": ")[1] for w in built["warnings"])
        assert warned == WARNED.get(corte, []), built["warnings"]
        assert all(ESPERADAS_CHANGED in w for w in built["warnings"])
        assert built["forced"] == []
        package = workdir.path / "paquetes" / corte
        main_json = json.loads((package / "json/main.json").read_bytes())
        index = json.loads((package / main_json["index"]).read_bytes())["objects"]
        for election in main_json["elections"]:
            code = election["code"]
            printed = printed_preamble(corte, code)
            resumen = json.loads((package / index[f"{code.lower()}/resumen.json"]).read_bytes())
            for shown in (election, resumen):
                assert_shown_as_printed(shown, printed)
            explained = {d["name"] for d in resumen["explained_differences"]}
            assert explained == EXPLAINED.get((corte, code), set()), (corte, code)
        assert sorted(e["code"] for e in main_json["elections"]) == sorted(ELECTIONS)
        assert len(built["explained"]) == sum(len(EXPLAINED.get((corte, c), ())) for c in ELECTIONS)


def assert_shown_as_printed(shown: dict[str, object], printed: dict[str, str]) -> None:
    summary, rows = shown["summary"], shown["summary_rows"]
    assert isinstance(summary, dict)
    assert isinstance(rows, dict)
    assert set(summary) == set(rows) == set(printed)
    from_rows = [key for key, value in printed.items() if value == ""]
    assert shown["summary_from_rows"] == from_rows
    for key, value in printed.items():
        # The PREP's own digits; where it printed nothing, the rows' figure, marked.
        assert summary[key] == (value if value else str(rows[key])), key


def test_the_figures_the_issue_names_are_the_printed_ones(workdir: Workdir) -> None:
    workdir.write_roster([])
    shown = {}
    for corte in ("20210607_1320", "20210607_1440", "20210607_2000"):
        main_json = json.loads((workdir.build(corte) / "json/main.json").read_bytes())
        shown[corte] = {e["code"]: e for e in main_json["elections"]}
    participation = "porcentaje_participacion_ciudadana"
    assert shown["20210607_1320"]["GOB"]["summary"][participation] == "62.3157"
    assert shown["20210607_1320"]["GOB"]["summary_rows"][participation] == "62.6617"
    assert shown["20210607_1440"]["GOB"]["summary"][participation] == "62.6701"
    dip_loc = shown["20210607_2000"]["DIP_LOC"]
    assert {k: dip_loc["summary"][k] for k in ("actas_capturadas", "actas_contabilizadas")} == {
        "actas_capturadas": "1100",
        "actas_contabilizadas": "1060",
    }
    assert dip_loc["summary"]["porcentaje_actas_contabilizadas"] == "88.3333"
    assert dip_loc["summary"]["total_votos_c_cs"] == "372947"
    assert dip_loc["summary"][participation] == "62.9104"
    assert dip_loc["summary_rows"]["actas_capturadas"] == 1096
    assert dip_loc["summary_rows"]["total_votos_c_cs"] == 371665


# --- cut files -------------------------------------------------------------------------------


def cut_points(header_line: int, last_line: int) -> list[int]:
    """Ten line counts to keep: seven from the header alone to 21 rows before the end, and
    three within the last 20 rows."""
    span = last_line - 21 - header_line
    spread = [header_line + span * i // 6 for i in range(7)]
    points = [*spread, last_line - 1, last_line - 8, last_line - 19]
    assert len(set(points)) == 10
    return points


def without_column(data: bytes, column: str, header_line: int) -> bytes:
    lines = data.split(b"\n")
    header = lines[header_line - 1].split(b",")
    index = header.index(column.encode())
    for number in range(header_line - 1, len(lines)):
        cells = lines[number].split(b",")
        if len(cells) == len(header):
            lines[number] = b",".join(cells[:index] + cells[index + 1 :])
    return b"\n".join(lines)


@pytest.mark.parametrize("corte", CORTES)
def test_every_campeche_csv_cut_at_ten_lines_or_without_a_vote_column_is_refused(
    corte: str,
) -> None:
    for code in ELECTIONS:
        data = csv_path(corte, code).read_bytes()
        whole = reconcile_bytes(corte, code, data, proof_for(code))
        assert whole.of_kind("refused") == [], (corte, code)
        e = whole.election
        lines = data.split(b"\n")
        assert e.last_line == len(lines) - 1  # the file ends with a newline
        for keep in cut_points(e.header_line, e.last_line):
            cut = b"\n".join(lines[:keep]) + b"\n"
            refused = reconcile_bytes(corte, code, cut, proof_for(code)).of_kind("refused")
            where = f"{e.source_name}:{keep}"
            assert any(f.where == where for f in refused), (corte, code, keep, refused)
        dropped = without_column(data, "PAN", e.header_line)
        refused = reconcile_bytes(corte, code, dropped, proof_for(code)).of_kind("refused")
        missing = [f for f in refused if f.name == "columna_de_votos_faltante"]
        assert [f.where for f in missing] == [f"{e.source_name}:{e.header_line}"]
        assert "PAN" in missing[0].message


def corte_copy(tmp_path: Path, corte: str) -> list[Path]:
    """A writable copy of a corte's four election directories."""
    copies = []
    for source in sorted(cortes_dir().glob(f"{corte}_PREP_*")):
        target = tmp_path / "entrada" / corte / source.name
        shutil.copytree(source, target)
        for path in target.iterdir():
            path.chmod(0o644)
        copies.append(target)
    return copies


def changed(tmp_path: Path, corte: str, code: str, change: Callable[[bytes], bytes]) -> list[Path]:
    copies = corte_copy(tmp_path, corte)
    target = next(p for p in copies if p.name == f"{corte}_PREP_{code}_CAMP")
    path = target / f"CAMP_{code}_2021.csv"
    path.write_bytes(change(path.read_bytes()))
    return copies


def head(count: int) -> Callable[[bytes], bytes]:
    return lambda data: b"\n".join(data.split(b"\n")[:count]) + b"\n"


CLI_CUTS: dict[str, tuple[str, str, Callable[[bytes], bytes], str]] = {
    # The issue's cases: head -n 600 of the final GOB, 300 lines of the 22:40 GOB, no PAN.
    "gob_final_600": ("20210607_2000", "GOB", head(600), "CAMP_GOB_2021.csv:600"),
    "gob_2240_300": ("20210606_2240", "GOB", head(300), "CAMP_GOB_2021.csv:300"),
    "gob_sin_pan": (
        "20210607_2000",
        "GOB",
        lambda data: without_column(data, "PAN", 6),
        "CAMP_GOB_2021.csv:6",
    ),
    # The last two lines of the final DIP_LOC are out-of-catalogue actas.
    "dip_loc_sin_2_lineas": ("20210607_2000", "DIP_LOC", head(1197), "CAMP_DIP_LOC_2021.csv:1197"),
}


@pytest.mark.parametrize("case", sorted(CLI_CUTS))
def test_a_cut_file_exits_2_naming_file_and_line_builds_nothing_and_is_recorded(
    case: str, workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corte, code, change, where = CLI_CUTS[case]
    workdir.write_roster([])
    inputs = changed(tmp_path, corte, code, change)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "build", *map(str, inputs)]) == 2
    err = capsys.readouterr().err
    assert f"{where}:" in err
    assert "--allow-mismatch" in err
    assert not (workdir.path / "paquetes" / corte).exists()
    assert not (workdir.path / "paquetes" / CATALOGUE_FILE).exists()
    with Ledger(workdir.path / "prepush.db") as ledger:
        (run,) = ledger.runs()
        assert (run.command, run.corte, run.status) == ("build", corte, "refused")
        assert any(where in e.message for e in ledger.events("build_refused"))


def test_allow_mismatch_builds_a_refused_input_and_the_report_says_so(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    workdir.build("20210601_1852")
    catalogue = (workdir.path / "paquetes" / CATALOGUE_FILE).read_bytes()
    inputs = changed(tmp_path, "20210607_2000", "GOB", head(600))
    capsys.readouterr()
    args = ["-C", str(workdir.path), "build", "--allow-mismatch", *map(str, inputs)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Construido con --allow-mismatch: CAMP_GOB_2021.csv:600:" in out
    # Shown as the PREP printed it, even when the rows are cut.
    main_json = json.loads(
        (workdir.path / "paquetes" / "20210607_2000" / "json/main.json").read_bytes()
    )
    gob = next(e for e in main_json["elections"] if e["code"] == "GOB")
    assert gob["summary"]["actas_contabilizadas"] == "1050"
    assert gob["summary_rows"]["actas_contabilizadas"] == 528
    # A forced corte never becomes the yardstick of the next ones.
    assert (workdir.path / "paquetes" / CATALOGUE_FILE).read_bytes() == catalogue
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.runs()[-1].status == "forced"
        assert ledger.events("build_forced")
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "report", "--format", "md"]) == 0
    report = capsys.readouterr().out
    assert "## Fidelidad de los datos" in report
    assert "corte 20210607_2000: **construido con --allow-mismatch**" in report
    assert "CAMP_GOB_2021.csv:600" in report


def test_a_simulacro_warns_where_an_oficial_build_refuses(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    inputs = changed(tmp_path, "20210607_2000", "GOB", head(600))
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "build", "--simulacro", "--json", *map(str, inputs)]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["kind"] == "simulacro"
    assert any(
        w.startswith("(en un corte oficial se rechazaría) CAMP_GOB_2021.csv:600:")
        for w in built["warnings"]
    )
    assert not (workdir.path / "paquetes" / CATALOGUE_FILE).exists()


# --- explained only within the bound the data proves -------------------------------------


def with_preamble(corte: str, code: str, **figures: str) -> bytes:
    lines = csv_path(corte, code).read_bytes().split(b"\n")
    values = dict(zip(lines[2].decode().split(","), lines[3].decode().split(","), strict=True))
    values.update(figures)
    lines[3] = ",".join(values.values()).encode()
    return b"\n".join(lines)


FINAL = "20210607_2000"
BEYOND_THE_BOUND: dict[str, tuple[str, dict[str, str], RowlessProof | None]] = {
    # DIP_LOC's rowless actas need a proof: without one, 10 rows are simply missing.
    "sin_prueba": ("DIP_LOC", {}, RowlessProof(0, "")),
    # More actas ahead than actas without a row.
    "mas_actas_que_sin_fila": (
        "DIP_LOC",
        {"ACTAS_CAPTURADAS": "1107", "ACTAS_CONTABILIZADAS": "1067"},
        None,
    ),
    # Lista nominal ahead: rowless actas of special casillas add none.
    "lista_nominal": ("DIP_LOC", {"LISTA_NOMINAL_ACTAS_CONTABILIZADAS": "592922"}, None),
    # Votes beyond four special casillas' boletas.
    "votos": ("DIP_LOC", {"TOTAL_VOTOS_C_CS": "376947"}, None),
    # GOB has no rowless actas at all.
    "gob": ("GOB", {"ACTAS_CAPTURADAS": "1093", "ACTAS_CONTABILIZADAS": "1051"}, None),
}


@pytest.mark.parametrize("case", sorted(BEYOND_THE_BOUND))
def test_an_explanation_never_stretches_beyond_its_evidence(case: str) -> None:
    code, figures, proof = BEYOND_THE_BOUND[case]
    data = with_preamble(FINAL, code, **figures)
    result = reconcile_bytes(FINAL, code, data, proof or proof_for(code))
    assert result.of_kind("refused"), case
    assert "actas_rp_sin_fila" not in names(result.of_kind("explained"))


def test_without_a_proof_the_refusal_says_how_to_declare_rowless_actas() -> None:
    data = csv_path(FINAL, "DIP_LOC").read_bytes()
    (refused, *_) = reconcile_bytes(FINAL, "DIP_LOC", data, RowlessProof(0, "")).of_kind("refused")
    assert refused.name == "filas_faltantes"
    assert "election.rowless_actas: {DIP_LOC: N}" in refused.message
    assert refused.where == "CAMP_DIP_LOC_2021.csv:1199"


def test_a_declaration_that_does_not_describe_the_file_is_refused() -> None:
    data = csv_path("20210601_1852", "GOB").read_bytes()
    declared = RowlessProof(10, "padrón", exact=True)
    result = reconcile_bytes("20210601_1852", "GOB", data, declared)
    assert names(result.of_kind("refused")) == {"actas_sin_fila_no_cuadran"}


def test_the_preamble_disagreeing_with_itself_builds_with_a_warning_everywhere(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 42 actas not counted, printed as 41: CAPTURADAS is no longer CONTABILIZADAS plus
    # NO_CONTABILIZADAS, and the rows (complete) count one more.
    data = with_preamble(FINAL, "GOB", ACTAS_NO_CONTABILIZADAS="41")
    result = reconcile_bytes(FINAL, "GOB", data, RowlessProof(0, ""))
    assert result.of_kind("refused") == []
    assert names(result.of_kind("warning")) == {"aritmetica_del_preambulo", "filas_de_mas"}
    workdir.write_roster([])
    inputs = changed(tmp_path, FINAL, "GOB", lambda _: data)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "build", *map(str, inputs)]) == 0
    out = capsys.readouterr().out
    assert "Aviso: CAMP_GOB_2021.csv: GOB: ACTAS_CAPTURADAS (1092) no es" in out
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert len(ledger.events("build_warning")) == 2
    assert main(["-C", str(workdir.path), "report", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [n["kind"] for n in report["fidelity"]] == ["build_warning", "build_warning"]
    assert main(["-C", str(workdir.path), "report"]) == 0
    assert "Fidelidad de los datos" in capsys.readouterr().out


def test_a_printed_s_cs_of_zero_is_explained_only_without_special_casillas() -> None:
    corte = "20210607_1320"
    data = csv_path(corte, "JUNTAS").read_bytes()
    whole = reconcile_bytes(corte, "JUNTAS", data, proof_for("JUNTAS"))
    assert "s_cs_en_cero" in names(whole.findings)
    # One counted casilla made special: S_CS would now leave its votes out.
    clave = next(a.clave for a in whole.election.actas if a.counted).encode()
    lines = data.split(b"\n")
    tipo = lines[5].split(b",").index(b"TIPO_CASILLA")
    row = next(n for n, line in enumerate(lines) if line.startswith(clave + b","))
    cells = lines[row].split(b",")
    cells[tipo] = b"S"
    lines[row] = b",".join(cells)
    result = reconcile_bytes(corte, "JUNTAS", b"\n".join(lines), proof_for("JUNTAS"))
    assert "s_cs_en_cero" not in names(result.findings)
    assert "filas_de_mas" in names(result.of_kind("warning"))


# --- the night's catalogue ---------------------------------------------------------------------


def test_the_catalogue_proves_rowless_actas_and_a_cut_file_cannot_hide_behind_it(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    workdir.build("20210601_1852")
    catalogue = json.loads((workdir.path / "paquetes" / CATALOGUE_FILE).read_bytes())
    assert catalogue["elections"]["DIP_LOC"]["rowless"] == 10
    assert catalogue["elections"]["GOB"]["rowless"] == 0
    assert len(catalogue["elections"]["GOB"]["claves"]) == 1190
    # The declaration goes; the catalogue proves DIP_LOC's rowless actas on its own. And a
    # roster that over-declares GOB cannot widen what the catalogue proves.
    workdir.write_roster([], rowless_actas={"GOB": 10})
    workdir.build("20210606_2240")
    middle = changed(tmp_path, "20210606_2320", "GOB", _without_rows(500, 505))
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "build", *map(str, middle)]) == 2
    err = capsys.readouterr().err
    assert "faltan 5 casilla(s) del catálogo de la noche" in err
    assert "ACTAS_ESPERADAS: el preámbulo espera 1190 actas y el archivo trae 1185" in err


def _without_rows(first: int, end: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        lines = data.split(b"\n")
        return b"\n".join(lines[: first - 1] + lines[end - 1 :])

    return change


def test_an_election_as_parsed_knows_where_its_data_ends() -> None:
    path = csv_path(FINAL, "GOB")
    election: Election = parse(SourceFile(path.name, path.read_bytes()), None)
    assert (election.header_line, election.last_line) == (6, 1199)
    assert election.candidaturas_name is None
    assert election.expected_candidaturas_name == "CAMP_GOB_CANDIDATURA_2021.csv"
    result = reconcile(election, compute_summary(election), CatalogueCheck(RowlessProof(0, "")))
    assert names(result.of_kind("refused")) == {"sin_candidaturas"}

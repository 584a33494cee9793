"""Every PREP as published: each real dataset of shared/data/prep builds with its preamble
verbatim and its corte as printed; files are read by role, whatever their names and layout;
cut files and missing vote columns are refused; a complete file in an unknown layout is
refused saying what was not recognised (prepush/corte/inputs.py and the modules it reads with,
formats.py, reconcile.py)."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from prepush.__main__ import main
from prepush.corte import formats
from prepush.corte.candidaturas import ballot_of, contests_of
from prepush.corte.candidaturas_file import read_candidaturas
from prepush.corte.catalogue import CatalogueCheck, RowlessProof
from prepush.corte.file_roles import role_of
from prepush.corte.inputs import collect_sources, parse_sources
from prepush.corte.model import SourceFile
from prepush.corte.reconcile import reconcile
from prepush.corte.results_file import parse_election
from prepush.corte.summary import compute_summary
from prepush.exceptions import InputError
from tests.conftest import Workdir
from tests.support.prepdata import (
    CORTES,
    OAXACA_CORTES,
    coahuila_dir,
    cortes_dir,
    ine_docs_dir,
    oaxaca_dir,
    quintana_roo_dir,
    quintana_roo_zip,
)
from tests.support.servers import Endpoint, sftp_read_tree

COUNTS = (
    "ACTAS_REGISTRADAS",
    "ACTAS_FUERA_CATALOGO",
    "ACTAS_CAPTURADAS",
    "ACTAS_CONTABILIZADAS",
    "ACTAS_NO_CONTABILIZADAS",
    "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
    "TOTAL_VOTOS_C_CS",
    "TOTAL_VOTOS_S_CS",
)


# --- the preamble as the file prints it, read without prepush ------------------------------


@dataclass(frozen=True)
class Printed:
    figures: dict[str, str]
    corte_id: str
    corte_time: str


def printed(path: Path) -> Printed:
    """The summary's names and values and the corte's line, split by hand: the delimiter is
    a pipe when the file says ``sep=|``; a value's leading apostrophe is spreadsheet quoting."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.splitlines()
    delimiter = "|" if lines[0].startswith("sep=") else ","
    at = next(i for i, line in enumerate(lines) if line.startswith("ACTAS_ESPERADAS"))
    names = lines[at].split(delimiter)
    values = next(line for line in lines[at + 1 :] if line.strip()).split(delimiter)
    figures = {n: v.removeprefix("'") for n, v in zip(names, values, strict=True)}
    corte = next(line for line in lines[:at] if "UTC" in line)
    match = re.search(
        r"(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2}) \(UTC([+-]\d+)\)|"
        r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}) \(UTC([+-]\d+)\)",
        corte,
    )
    assert match is not None, corte
    if match[1]:
        d, m, y, hh, mm, off = match.groups()[:6]
    else:
        y, m, d, hh, mm, off = match.groups()[6:]
    offset = f"{int(off):+03d}:00"
    return Printed(figures, f"{y}{m}{d}_{hh}{mm}", f"{y}-{m}-{d}T{hh}:{mm}:00{offset}")


# --- the datasets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    inputs: tuple[Path, ...]
    # Each election's results file, by code.
    results: dict[str, Path]
    timezone: str
    rowless: dict[str, int]
    # What refuses an oficial build of it, built with --allow-mismatch.
    forced: tuple[str, ...] = ()


def campeche(corte: str) -> Dataset:
    dirs = tuple(sorted(cortes_dir().glob(f"{corte}_PREP_*")))
    results = {
        code: cortes_dir() / f"{corte}_PREP_{code}_CAMP" / f"CAMP_{code}_2021.csv"
        for code in ("GOB", "DIP_LOC", "AYUN", "JUNTAS")
    }
    return Dataset(dirs, results, "America/Merida", {"DIP_LOC": 10})


def oaxaca(corte: str) -> Dataset:
    folder = oaxaca_dir(corte)
    return Dataset((folder,), {"GUB": folder / "OAX_GUB_2022.csv"}, "America/Mexico_City", {})


def quintana_roo(zipped: bool) -> Dataset:
    results = {"DIP_LOC": quintana_roo_dir() / "QROO_DIP_LOC_2019.csv"}
    inputs = (quintana_roo_zip() if zipped else quintana_roo_dir(),)
    return Dataset(inputs, results, "America/Cancun", {})


def coahuila() -> Dataset:
    results = {"GUB": coahuila_dir() / "COAH_GUB_2023.csv"}
    return Dataset((coahuila_dir(),), results, "America/Monterrey", {}, ("sin_candidaturas",))


DATASETS: dict[str, Callable[[], Dataset]] = {
    **{f"campeche_{c}": partial(campeche, c) for c in CORTES},
    **{f"oaxaca_{c}": partial(oaxaca, c) for c in OAXACA_CORTES},
    "quintana_roo_carpeta": lambda: quintana_roo(zipped=False),
    "quintana_roo_zip": lambda: quintana_roo(zipped=True),
    "coahuila": coahuila,
}


def build_json(
    workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["-C", str(workdir.path), "build", "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def resumen_of(package: Path, main_json: dict[str, Any], code: str) -> dict[str, Any]:
    index = json.loads((package / str(main_json["index"])).read_bytes())["objects"]
    document: dict[str, Any] = json.loads(
        (package / index[f"{code.lower()}/resumen.json"]).read_bytes()
    )
    return document


@pytest.mark.parametrize("case", sorted(DATASETS))
def test_every_dataset_builds_with_its_preamble_verbatim_and_its_corte_as_printed(
    case: str, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = DATASETS[case]()
    workdir.write_roster([], timezone=dataset.timezone, rowless_actas=dataset.rowless)
    inputs = [str(p) for p in dataset.inputs]
    if dataset.forced:
        code, _, err = build_json(workdir, capsys, *inputs)
        assert code == 2
        assert all(name.split("_")[0] in err for name in dataset.forced), err
        code, built, _ = build_json(workdir, capsys, "--allow-mismatch", *inputs)
        assert len(built["forced"]) == len(dataset.forced), built["forced"]
    else:
        code, built, _ = build_json(workdir, capsys, *inputs)
        assert built["forced"] == []
    assert code == 0
    assert built["warnings"] == []
    prints = {code: printed(path) for code, path in dataset.results.items()}
    (corte,) = {p.corte_id for p in prints.values()}
    assert built["corte"] == corte
    package = workdir.path / "paquetes" / corte
    main_json = json.loads((package / "json/main.json").read_bytes())
    # The corte as printed: its date, hour and UTC offset, named by them.
    assert main_json["corte"] == corte
    assert {main_json["corte_time"]} == {p.corte_time for p in prints.values()}
    assert main_json["kind"] == "oficial"
    assert sorted(e["code"] for e in main_json["elections"]) == sorted(dataset.results)
    for election in main_json["elections"]:
        figures = prints[election["code"]].figures
        resumen = resumen_of(package, main_json, election["code"])
        for shown in (election, resumen):
            assert_verbatim(shown, figures)


def assert_verbatim(shown: dict[str, Any], figures: dict[str, str]) -> None:
    """Each printed figure under its name, as printed; where the PREP printed nothing, the
    rows', marked; every figure the rows can compare, compared."""
    summary, rows, headers = shown["summary"], shown["summary_rows"], shown["summary_headers"]
    assert shown["summary_order"] == [name.lower() for name in figures]
    assert shown["summary_from_rows"] == [n.lower() for n, v in figures.items() if not v]
    assert shown["summary_unchecked"] == {}
    for name, value in figures.items():
        key = name.lower()
        assert headers[key] == name
        assert summary[key] == (value if value else str(rows[key])), key


# Complete files, whose rows give exactly the printed counts (shared/data/prep/README.md).
EXACT = ("oaxaca", "quintana_roo", "coahuila")


@pytest.mark.parametrize("case", [c for c in sorted(DATASETS) if c.startswith(EXACT)])
def test_the_rows_give_exactly_the_printed_counts_of_the_complete_files(case: str) -> None:
    dataset = DATASETS[case]()
    for election in parse_sources(collect_sources(list(dataset.inputs))):
        figures = printed(dataset.results[election.code]).figures
        rows = compute_summary(election).as_json()
        for name in COUNTS:
            assert rows[name.lower()] == int(figures[name]), (case, name)
        result = reconcile(election, compute_summary(election), CatalogueCheck(RowlessProof(0, "")))
        assert [f.name for f in result.of_kind("warning")] == []
        assert result.unchecked == {}


def test_coahuila_shows_its_parties_without_candidate_names(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = coahuila()
    workdir.write_roster([], timezone=dataset.timezone, rowless_actas={})
    code, built, _ = build_json(workdir, capsys, "--allow-mismatch", str(coahuila_dir()))
    assert code == 0
    package = workdir.path / "paquetes" / str(built["corte"])
    main_json = json.loads((package / "json/main.json").read_bytes())
    resumen = resumen_of(package, main_json, "GUB")
    assert resumen["candidaturas"] == []
    assert resumen["columns"][:7] == ["PAN", "PRI", "PRD", "PVEM", "PT", "UDC", "MORENA"]
    assert "NO_REGISTRADAS" in resumen["columns"]
    assert resumen["group_kind"] == "municipio"


def test_the_oaxaca_night_in_order_is_published_to_a_real_difusor(
    sshd_plain: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([sshd_plain], timezone="America/Mexico_City", rowless_actas={})
    published: list[str] = []
    for corte in OAXACA_CORTES:
        code, built, _ = build_json(workdir, capsys, str(oaxaca_dir(corte)))
        assert code == 0
        assert built["corte"] == corte
        capsys.readouterr()
        assert main(["-C", str(workdir.path), "publish", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        (delivery,) = report["deliveries"]
        assert delivery["outcome"] == "delivered", delivery
        published.append(corte)
        remote = sftp_read_tree(sshd_plain, sshd_plain.key_file)
        served = json.loads(remote["json/main.json"])
        assert served["corte"] == corte
        assert remote["json/main.json"] == workdir.package_tree(corte)["json/main.json"]
        for path, data in workdir.package_tree(corte).items():
            if not path.startswith(".prepush/"):
                assert remote[path] == data, path
        figures = printed(oaxaca_dir(corte) / "OAX_GUB_2022.csv").figures
        (gub,) = served["elections"]
        assert {k: gub["summary"][k.lower()] for k in figures} == figures


# --- cut files and missing vote columns -------------------------------------------------------


def oaxaca_files(corte: str) -> tuple[Path, Path | None]:
    return oaxaca_dir(corte) / "OAX_GUB_2022.csv", oaxaca_dir(
        corte
    ) / "OAX_GUB_Candidatura_2022.csv"


CUT_FILES: dict[str, Callable[[], tuple[Path, Path | None]]] = {
    **{f"oaxaca_{c}": partial(oaxaca_files, c) for c in OAXACA_CORTES},
    "quintana_roo": lambda: (
        quintana_roo_dir() / "QROO_DIP_LOC_2019.csv",
        quintana_roo_dir() / "QROO_DIP_CANDIDATURAS_2019.csv",
    ),
    "coahuila": lambda: (coahuila_dir() / "COAH_GUB_2023.csv", None),
    "campeche_gob_final": lambda: (
        cortes_dir() / "20210607_2000_PREP_GOB_CAMP" / "CAMP_GOB_2021.csv",
        cortes_dir() / "20210607_2000_PREP_GOB_CAMP" / "CAMP_GOB_CANDIDATURA_2021.csv",
    ),
}


def findings_or_error(data: bytes, path: Path, candidaturas: Path | None) -> set[str]:
    """Where the refusal points (``file:line``): each refused finding, or the input error."""
    source = SourceFile(path.name, data)
    extra = SourceFile(candidaturas.name, candidaturas.read_bytes()) if candidaturas else None
    try:
        e = parse_election(source, extra)
    except InputError as error:
        return {f"{error.file}:{error.line}"}
    result = reconcile(e, compute_summary(e), CatalogueCheck(RowlessProof(0, "")))
    return {f.where for f in result.of_kind("refused")}


def last_content_line(lines: list[bytes]) -> int:
    return max(n for n, line in enumerate(lines, start=1) if line.strip())


@pytest.mark.parametrize("case", sorted(CUT_FILES))
def test_each_file_cut_at_random_lines_is_refused_where_it_ends(case: str) -> None:
    path, candidaturas = CUT_FILES[case]()
    data = path.read_bytes()
    whole = findings_or_error(data, path, candidaturas)
    expected_whole = {f"{path.name}"} if candidaturas is None else set()
    assert whole == expected_whole, whole
    lines = data.splitlines(keepends=True)
    chooser = random.Random(f"corte-{case}")
    cuts = sorted(chooser.sample(range(1, len(lines)), 12))
    for keep in cuts:
        cut = b"".join(lines[:keep])
        where = f"{path.name}:{last_content_line(cut.splitlines())}"
        assert where in findings_or_error(cut, path, candidaturas), (case, keep)


def vote_columns_with_votes(path: Path) -> tuple[int, list[str], bytes]:
    """The header's line index, the vote columns that carry votes, and the delimiter."""
    (election,) = parse_sources([SourceFile(path.name, path.read_bytes())])
    totals = [0] * len(election.vote_columns)
    for acta in election.actas:
        for i, votes in enumerate(acta.votes or ()):
            totals[i] += votes
    named = [c for c, t in zip(election.vote_columns, totals, strict=True) if t]
    delimiter = b"|" if path.read_bytes().startswith(b"sep=") else b","
    return election.header_line - 1, named, delimiter


def without_column(data: bytes, header_index: int, column: str, delimiter: bytes) -> bytes:
    lines = data.split(b"\n")
    header = lines[header_index].rstrip(b"\r").split(delimiter)
    index = header.index(column.encode())
    for number in range(header_index, len(lines)):
        cells = lines[number].split(delimiter)
        if len(cells) == len(header):
            lines[number] = delimiter.join(cells[:index] + cells[index + 1 :])
    return b"\n".join(lines)


@pytest.mark.parametrize("case", sorted(CUT_FILES))
def test_each_file_without_one_of_its_vote_columns_is_refused(case: str) -> None:
    path, candidaturas = CUT_FILES[case]()
    header_index, columns, delimiter = vote_columns_with_votes(path)
    chooser = random.Random(f"columna-{case}")
    for column in chooser.sample(columns, 3):
        dropped = without_column(path.read_bytes(), header_index, column, delimiter)
        source = SourceFile(path.name, dropped)
        extra = SourceFile(candidaturas.name, candidaturas.read_bytes()) if candidaturas else None
        e = parse_election(source, extra)
        assert column not in e.vote_columns
        result = reconcile(e, compute_summary(e), CatalogueCheck(RowlessProof(0, "")))
        refused = {f.name for f in result.of_kind("refused")}
        # Its votes are gone from the totals and from each acta's own sum.
        assert {"filas_cortas", "suma_del_acta"} <= refused, (case, column, refused)


def test_a_cut_oaxaca_corte_exits_2_naming_file_and_line(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = oaxaca_dir("20220605_2340")
    target = tmp_path / source.name
    shutil.copytree(source, target)
    csv = target / "OAX_GUB_2022.csv"
    csv.chmod(0o644)
    lines = csv.read_bytes().splitlines(keepends=True)
    csv.write_bytes(b"".join(lines[:3000]))
    workdir.write_roster([], timezone="America/Mexico_City", rowless_actas={})
    code, _, err = build_json(workdir, capsys, str(target))
    assert code == 2
    assert "OAX_GUB_2022.csv:3000:" in err
    assert not (workdir.path / "paquetes" / "20220605_2340").exists()


# --- read by role, whatever the names and layout ---------------------------------------------


def campeche_final_ayun() -> tuple[str, str]:
    folder = cortes_dir() / "20210607_2000_PREP_AYUN_CAMP"
    return (
        (folder / "CAMP_AYUN_2021.csv").read_text(encoding="utf-8"),
        (folder / "CAMP_AYUN_CANDIDATURA_2021.csv").read_text(encoding="utf-8"),
    )


def renamed(text: str, renames: dict[str, str], line: int) -> str:
    lines = text.split("\n")
    cells = lines[line].split(",")
    lines[line] = ",".join(renames.get(c, c) for c in cells)
    return "\n".join(lines)


def quoted_claves(text: str) -> str:
    lines = text.split("\n")
    for n in range(6, len(lines)):
        cells = lines[n].split(",")
        if len(cells) > 2 and cells[0] not in ("", "-"):
            cells[0] = f'="{cells[0].removeprefix(chr(39))}"'
            lines[n] = ",".join(cells)
    values = lines[3].split(",")
    lines[3] = ",".join(f"'{v}" if "." in v else v for v in values)
    return "\n".join(lines)


HEADER_RENAMES = {
    "ID_ESTADO": "ID_ENTIDAD",
    "ESTADO": "ENTIDAD",
    "SHA": "CODIGO_INTEGRIDAD",
    "NO_REGISTRADOS": "NO_REGISTRADAS",
    "SECCION": "SECCIÓN",
    "ID_MUNICIPIO": "ID_MUNICIPIO_LOCAL",
    "MUNICIPIO": "MUNICIPIO_LOCAL",
}
SUMMARY_RENAMES = {
    "ACTAS_FUERA_CATALOGO": "ACTAS_FUERA_DE_CATALOGO",
    "PORCENTAJE_ACTAS_INCONSISTENCIAS": "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS",
}
# (results, candidaturas) -> the same files as another PREP would lay them out.
LAYOUTS: dict[str, Callable[[str, str], tuple[bytes, bytes, str]]] = {
    "sep_barras": lambda r, c: (
        ("sep=|\n" + r.replace(",", "|")).encode(),
        ("sep=|\r\n" + c.replace(",", "|").replace("\n", "\r\n")).encode("latin-1"),
        "AYUN_candidaturas.CSV",
    ),
    "bom_crlf_latin1": lambda r, c: (
        b"\xef\xbb\xbf" + r.replace("\n", "\r\n").encode(),
        c.replace("\n", "\r\n").encode("latin-1"),
        "camp_ayun_Candidatura_2021.csv",
    ),
    "preambulo_de_7_lineas": lambda r, c: (
        r.replace("\n", "\n\n", 1).replace("\nACTAS_ESP", "\n\nACTAS_ESP", 1).encode(),
        c.encode(),
        "CAMP_AYUN_CANDIDATURAS_2021.csv",
    ),
    "fecha_aaaa_mm_dd_y_comillas": lambda r, c: (
        quoted_claves(r.replace("07/06/2021 20:00", "2021/06/07 20:00")).encode(),
        c.encode(),
        "Candidatura.csv",
    ),
    "nombres_de_otros_prep": lambda r, c: (
        renamed(renamed(r, HEADER_RENAMES, 5), SUMMARY_RENAMES, 2).encode(),
        c.replace("ID_ESTADO", "ID_ENTIDAD").encode(),
        "CAMP_AYUN_CANDIDATURA_2021.csv",
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_same_prep_in_another_layout_reads_alike(layout: str, tmp_path: Path) -> None:
    results, candidaturas = campeche_final_ayun()
    reference = tmp_path / "referencia"
    reference.mkdir()
    (reference / "CAMP_AYUN_2021.csv").write_text(results, encoding="utf-8")
    (reference / "CAMP_AYUN_CANDIDATURA_2021.csv").write_text(candidaturas, encoding="utf-8")
    data, cand_data, cand_name = LAYOUTS[layout](results, candidaturas)
    other = tmp_path / "otro" / "20210607_2000_PREP_AYUN_CAMP"
    other.mkdir(parents=True)
    (other / "CAMP_AYUN_2021.csv").write_bytes(data)
    (other / cand_name).write_bytes(cand_data)
    (original,) = parse_sources(collect_sources([reference]))
    (changed,) = parse_sources(collect_sources([other.parent]))
    assert changed.code == original.code == "AYUN"
    assert changed.candidaturas_name == cand_name
    # The same actas, each on its own line of its file.
    assert [replace(a, line=0) for a in changed.actas] == [
        replace(a, line=0) for a in original.actas
    ]
    assert compute_summary(changed) == compute_summary(original)
    assert changed.preamble == original.preamble
    assert changed.corte_time == original.corte_time
    assert changed.group_kind == "municipio"
    assert [(c.party, c.name, c.group) for c in changed.candidaturas] == [
        (c.party, c.name, c.group) for c in original.candidaturas
    ]
    assert len(changed.vote_columns) == len(original.vote_columns)
    proof = CatalogueCheck(RowlessProof(0, ""))
    assert reconcile(changed, compute_summary(changed), proof).findings == ()


ELECTION_CODES = {
    "CAMP_DIP_LOC_2021.csv": "DIP_LOC",
    "CAMP_GOB_CANDIDATURA_2021.csv": "GOB",
    "OAX_GUB_2022.csv": "GUB",
    "OAX_GUB_Candidatura_2022.csv": "GUB",
    "QROO_DIP_LOC_2019.csv": "DIP_LOC",
    "COAH_GUB_2023.csv": "GUB",
    "PRES_2024.csv": "PRES",
    "DIP_FED_2024.csv": "DIP_FED",
    "SEN_CANDIDATURAS_2024.csv": "SEN",
    "EDOMEX_GOB_2023.csv": "GOB",
}


@pytest.mark.parametrize("name", sorted(ELECTION_CODES))
def test_the_election_code_comes_from_any_naming(name: str) -> None:
    assert formats.election_code(name) == ELECTION_CODES[name]


# --- INE: candidaturas of 2015-2024, and a results file in INE's layout -----------------------

INE_CANDIDATURAS = {
    # file: (rows, first (party, name, suplente, group, line), a coalition's code)
    "ine_2012_2021/01_datos/20150608_2010-listaActas/Cat_Candidatos_Diputado.csv": (
        2663,
        ("PAN", "GERARDO FEDERICO SALAS DIAZ", "J. ROBERTO ZAPATA GUERRA", 1001, 3),
        "PRI-PVEM",
    ),
    "ine_2012_2021/01_datos/20180702_2100_PREP_diputaciones/diputaciones_candidaturas_2018.csv": (
        5570,
        ("PAN", "FRANCISCO JAVIER LUEVANO NUÑEZ", "GUSTAVO ARMENDARIZ VIRAMONTES", 1001, 3),
        "PAN-PRD-MC",
    ),
    "ine_2012_2021/01_datos/20210607_2000_PREP_Diputaciones/Diputaciones_candidatura_2021.csv": (
        11882,
        ("PAN", "NOEL MATA ATILANO", "ARNULFO FEDERICO VARGAS GOMEZ", 1001, 2),
        "PAN-PRI-PRD",
    ),
    "ine_2024/20240603_2005_PREP/20240603_2005_PREP_PRES/PRES_CANDIDATURAS_2024.csv": (
        15,
        ("PAN", "Bertha Xóchitl Gálvez Ruíz", None, None, 2),
        "PVEM_PT_MORENA",
    ),
    "ine_2024/20240603_2005_PREP/20240603_2005_PREP_SEN/SEN_CANDIDATURAS_2024.csv": (
        4036,
        ("PAN", "Juan Antonio Martín del Campo Martín del Campo", None, 1001, 2),
        "PAN-PRI-PRD",
    ),
    "ine_2024/20240603_2005_PREP/20240603_2005_PREP_DIP_FED/DIP_FED_CANDIDATURAS_2024.csv": (
        4318,
        ("PAN", "Humberto Ambriz Delgadillo", "Juan Manuel Méndez Noriega", 1001, 2),
        "PAN-PRI-PRD",
    ),
}


@pytest.mark.parametrize("name", sorted(INE_CANDIDATURAS))
def test_each_ine_candidaturas_file_is_read(name: str) -> None:
    path = ine_docs_dir() / name
    source = SourceFile(path.name, path.read_bytes())
    assert role_of(source) == "candidaturas"
    count, first, coalition = INE_CANDIDATURAS[name]
    rows = read_candidaturas(source)
    assert len(rows) == count
    party, candidate, suplente, group, line = first
    assert (rows[0].party, rows[0].name, rows[0].group, rows[0].line) == (
        party,
        candidate,
        group,
        line,
    )
    if suplente is not None:
        assert rows[0].suplente == suplente
    assert coalition in {c.party for c in rows}
    # Distritos restart at 1 in each entidad: numbered within it (entidad × 1000 + distrito).
    groups = {c.group for c in rows}
    assert groups == {None} or len(groups) == 300
    # Each row's line is its line in the file.
    text = path.read_bytes().decode("utf-8-sig", errors="replace").splitlines()
    assert rows[-1].line == len([line for line in text if line.strip()])


LEEME_2024 = "ine_2024/20240603_2005_PREP/20240603_2005_PREP_PRES/LEEME.txt"
INE_LEEMES = (
    "ine_2012_2021/01_datos/20120702_2000-listaActas/LEEME.txt",
    "ine_2012_2021/01_datos/20150608_2010-listaActas/LEEME.txt",
    "ine_2012_2021/01_datos/20180702_2100_PREP_diputaciones/LEEME.txt",
    "ine_2012_2021/01_datos/20210607_2000_PREP_Diputaciones/LEEME.txt",
    LEEME_2024,
)


@pytest.mark.parametrize("leeme", INE_LEEMES)
def test_each_ine_leeme_is_read_as_a_leeme(leeme: str) -> None:
    path = ine_docs_dir() / leeme
    assert role_of(SourceFile("LEEME.txt", path.read_bytes())) == "leeme"
    # By its content, whatever it is called.
    assert role_of(SourceFile("descripcion.txt", path.read_bytes())) == "leeme"


def ine_fields() -> list[str]:
    """The results file's columns as INE's 2024 LEEME lists them."""
    text = (ine_docs_dir() / LEEME_2024).read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("CLAVE_CASILLA|"))
    return [field.strip() for field in line.split("|")]


def truncated(numerator: int, denominator: int) -> str:
    value = Decimal(numerator * 100) / Decimal(denominator)
    return str(value.quantize(Decimal("0.0001"), rounding=ROUND_DOWN))


# (entidad, nombre, distrito, nombre del distrito, sección, tipo, lista nominal, contabilizada)
INE_ACTAS = (
    ("01", "AGUASCALIENTES", "001", "JESUS MARIA", "0338", "B", 600, "1"),
    ("01", "AGUASCALIENTES", "001", "JESUS MARIA", "0338", "C", 598, "1"),
    ("01", "AGUASCALIENTES", "002", "AGUASCALIENTES", "0101", "B", 510, "1"),
    ("02", "BAJA CALIFORNIA", "001", "MEXICALI", "0001", "B", 700, "1"),
    ("02", "BAJA CALIFORNIA", "001", "MEXICALI", "0001", "S", 0, "1"),
    ("02", "BAJA CALIFORNIA", "001", "MEXICALI", "0002", "B", 420, "0"),
)


def ine_results(election: str, delimiter: str) -> tuple[str, dict[str, int]]:
    """A small results file in INE's 2024 layout, built from its LEEME's field list, with
    its preamble computed from its rows; and its printed counts."""
    fields = ine_fields()
    first, last = fields.index("TOTAL_VOTOS_SACADOS") + 1, fields.index("TOTAL_VOTOS_ASENTADO")
    votes_columns = fields[first:last]
    rows, counted, lista, c_cs, s_cs = [], 0, 0, 0, 0
    for n, (ent, ent_name, dist, dist_name, secc, tipo, ln, cont) in enumerate(INE_ACTAS):
        votes = [(n * 7 + i * 3) % 11 for i in range(len(votes_columns))]
        total = sum(votes)
        clave = f"{ent}{secc}{tipo}0100"
        values = dict.fromkeys(fields, "")
        values.update(
            {
                "CLAVE_CASILLA": clave,
                "CLAVE_ACTA": clave + "2",
                "ID_ENTIDAD": ent,
                "ENTIDAD": ent_name,
                "ID_DISTRITO_FEDERAL": dist,
                "DISTRITO_FEDERAL": dist_name,
                "SECCION": secc,
                "ID_CASILLA": "01",
                "TIPO_CASILLA": tipo,
                "EXT_CONTIGUA": "00",
                "UBICACION_CASILLA": "1",
                "TIPO_ACTA": "2",
                "TOTAL_VOTOS_ASENTADO": str(total),
                "TOTAL_VOTOS_CALCULADO": str(total),
                "LISTA_NOMINAL": str(ln),
                "OBSERVACIONES": "-" if cont == "1" else "Excede lista nominal",
                "CONTABILIZADA": cont,
                "FECHA_HORA_VERIFICACION": f"02/06/2024 19:{n:02d}:00",
                **dict(zip(votes_columns, map(str, votes), strict=True)),
            }
        )
        rows.append(delimiter.join(values[f] for f in fields))
        if cont == "1":
            counted += 1
            lista += ln
            c_cs += total
            s_cs += total if tipo != "S" else 0
    expected = len(INE_ACTAS)
    counts = {
        "ACTAS_ESPERADAS": expected,
        "ACTAS_REGISTRADAS": expected,
        "ACTAS_FUERA_CATALOGO": 0,
        "ACTAS_CAPTURADAS": expected,
        "ACTAS_CONTABILIZADAS": counted,
        "ACTAS_NO_CONTABILIZADAS": expected - counted,
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS": lista,
        "TOTAL_VOTOS_C_CS": c_cs,
        "TOTAL_VOTOS_S_CS": s_cs,
    }
    summary = {
        **counts,
        "PORCENTAJE_ACTAS_CAPTURADAS": truncated(expected, expected),
        "PORCENTAJE_ACTAS_CONTABILIZADAS": truncated(counted, expected),
        "PORCENTAJE_ACTAS_INCONSISTENCIAS": truncated(expected - counted, expected),
        "PORCENTAJE_PARTICIPACION_CIUDADANA": truncated(c_cs, lista),
    }
    order = [name.strip() for name in LEEME_SUMMARY.split(",")]
    preamble = [
        election,
        "03/06/2024 20:05 (UTC-6)",
        ", ".join(order),
        delimiter.join(str(summary[name]) for name in order),
        "",
    ]
    return "\n".join([*preamble, delimiter.join(fields), *rows]) + "\n", counts


# As INE's 2024 LEEME prints the summary's names (with a space after each comma).
LEEME_SUMMARY = (
    "ACTAS_ESPERADAS, ACTAS_REGISTRADAS, ACTAS_FUERA_CATALOGO, ACTAS_CAPTURADAS,"
    " PORCENTAJE_ACTAS_CAPTURADAS, ACTAS_CONTABILIZADAS, PORCENTAJE_ACTAS_CONTABILIZADAS,"
    " PORCENTAJE_ACTAS_INCONSISTENCIAS, ACTAS_NO_CONTABILIZADAS,"
    " LISTA_NOMINAL_ACTAS_CONTABILIZADAS, TOTAL_VOTOS_C_CS, TOTAL_VOTOS_S_CS,"
    " PORCENTAJE_PARTICIPACION_CIUDADANA"
)


def test_a_results_file_in_ines_layout_builds_with_its_election_code_and_groups(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corte_dir = tmp_path / "20240603_2005_PREP"
    source = ine_docs_dir() / "ine_2024" / "20240603_2005_PREP"
    printed_counts = {}
    for election, name, delimiter in (
        ("PRES", "PRESIDENCIA", ","),
        ("DIP_FED", "DIPUTACIONES", "|"),
    ):
        folder = corte_dir / f"20240603_2005_PREP_{election}"
        folder.mkdir(parents=True)
        for original in (source / folder.name).iterdir():
            shutil.copyfile(original, folder / original.name)
        text, printed_counts[election] = ine_results(name, delimiter)
        (folder / f"{election}_2024.csv").write_text(text, encoding="utf-8")
    workdir.write_roster([], timezone="America/Mexico_City", rowless_actas={})
    code, built, err = build_json(workdir, capsys, str(corte_dir))
    assert code == 0, err
    assert built["warnings"] == []
    assert built["forced"] == []
    package = workdir.path / "paquetes" / "20240603_2005"
    main_json = json.loads((package / "json/main.json").read_bytes())
    assert main_json["corte_time"] == "2024-06-03T20:05:00-06:00"
    assert [e["code"] for e in main_json["elections"]] == ["PRES", "DIP_FED"]
    index = json.loads((package / main_json["index"]).read_bytes())["objects"]
    for election in main_json["elections"]:
        code = election["code"]
        counts = printed_counts[code]
        assert {k: election["summary"][k.lower()] for k in counts} == {
            k: str(v) for k, v in counts.items()
        }
        assert {k: election["summary_rows"][k.lower()] for k in counts} == counts
        resumen = resumen_of(package, main_json, code)
        assert resumen["group_label"] == "Distrito federal"
        # Distrito 1 of Aguascalientes and of Baja California: each its own group.
        assert [g["id"] for g in resumen["groups"]] == ["01001", "01002", "02001"]
        assert resumen["groups"][2]["name"] == "BAJA CALIFORNIA: MEXICALI"
        assert "PAN-PRI-PRD" in resumen["columns"]
        assert "CI_01" in resumen["columns"]
    pres = resumen_of(package, main_json, "PRES")
    # Its 15 rows are 3 candidaturas: two coalitions, listed column by column, and MC.
    by_name = {c["name"]: c for c in pres["candidaturas"]}
    assert len(by_name) == 3
    assert set(by_name["Claudia Sheinbaum Pardo"]["parties"]) == {"PVEM", "PT", "MORENA"}
    assert "PVEM_PT_MORENA" in by_name["Claudia Sheinbaum Pardo"]["columns"]
    catalogue = json.loads((package / index["dip_fed/distrito/01001/catalogo.json"]).read_bytes())
    ambriz = next(c for c in catalogue["candidaturas"] if c["name"] == "Humberto Ambriz Delgadillo")
    assert ambriz["suplente"] == "Juan Manuel Méndez Noriega"
    assert set(ambriz["parties"]) == {"PAN", "PRI", "PRD"}
    mexicali = json.loads((package / index["dip_fed/distrito/02001/catalogo.json"]).read_bytes())
    assert all(c["name"] != "Humberto Ambriz Delgadillo" for c in mexicali["candidaturas"])
    assert mexicali["candidaturas"]


# --- the preamble and the corte as printed, and what is not recognised ------------------------


def final_gob(tmp_path: Path, change: Callable[[str], str]) -> Path:
    source = cortes_dir() / "20210607_2000_PREP_GOB_CAMP"
    target = tmp_path / "entrada" / source.name
    shutil.copytree(source, target)
    csv = target / "CAMP_GOB_2021.csv"
    csv.chmod(0o644)
    csv.write_text(change(csv.read_text(encoding="utf-8")), encoding="utf-8")
    return target


def test_a_figure_under_another_name_is_shown_as_printed_never_computed(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: a known figure spelled otherwise, printed 16.09, stays 16.09; a
    figure prepush does not know is shown under its own header, never computed."""

    def change(text: str) -> str:
        lines = text.split("\n")
        names, values = lines[2].split(","), lines[3].split(",")
        names[names.index("PORCENTAJE_ACTAS_INCONSISTENCIAS")] = (
            "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS"
        )
        values[7] = "16.09"
        names[names.index("TOTAL_VOTOS_S_CS")] = "TOTAL_VOTOS_SIN_CASILLAS_ESPECIALES"
        lines[2], lines[3] = ",".join(names), ",".join(values)
        return "\n".join(lines)

    workdir.write_roster([])
    code, built, _ = build_json(workdir, capsys, str(final_gob(tmp_path, change)))
    assert code == 0
    main_json = json.loads((workdir.path / "paquetes/20210607_2000/json/main.json").read_bytes())
    (gob,) = main_json["elections"]
    assert gob["summary"]["porcentaje_actas_inconsistencias"] == "16.09"
    # Neither rule gives 16.09: the rows' figure follows INE's (annotated actas, 258/1190).
    assert gob["summary_rows"]["porcentaje_actas_inconsistencias"] == "21.6806"
    assert gob["summary_headers"]["porcentaje_actas_inconsistencias"] == (
        "PORCENTAJE_ACTAS_CON_INCONSISTENCIAS"
    )
    assert "total_votos_s_cs" not in gob["summary"]
    assert gob["summary"]["TOTAL_VOTOS_SIN_CASILLAS_ESPECIALES"] == "370108"
    assert "TOTAL_VOTOS_SIN_CASILLAS_ESPECIALES" in gob["summary_unchecked"]
    warnings = " ".join(built["warnings"])
    assert "TOTAL_VOTOS_SIN_CASILLAS_ESPECIALES = '370108', que prepush no reconoce" in warnings
    assert "el preámbulo dice 16.09" in warnings


def test_a_printed_offset_other_than_the_rosters_is_refused_unless_the_operator_says_so(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([], timezone="America/Cancun", rowless_actas={})
    args = ["--allow-mismatch", str(coahuila_dir())]
    code, _, err = build_json(workdir, capsys, *args)
    assert code == 2
    err = err.replace("\n", " ")
    assert "COAH_GUB_2023.csv:2" in err
    assert "'05/06/2023 13:15 (UTC-6)'" in err
    assert "America/Cancun" in err
    assert "UTC-5" in err
    assert "--allow-offset-mismatch" in err
    assert not (workdir.path / "paquetes").exists() or not any(
        (workdir.path / "paquetes").iterdir()
    )
    code, built, _ = build_json(workdir, capsys, "--allow-offset-mismatch", *args)
    assert code == 0
    assert built["corte"] == "20230605_1315"
    main_json = json.loads((workdir.path / "paquetes/20230605_1315/json/main.json").read_bytes())
    assert main_json["corte_time"] == "2023-06-05T13:15:00-06:00"
    assert any("--allow-offset-mismatch" in w for w in built["warnings"])


def test_a_corte_printed_without_offset_takes_the_rosters(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([])
    target = final_gob(tmp_path, lambda t: t.replace(" (UTC-5)", "", 1))
    code, built, _ = build_json(workdir, capsys, str(target))
    assert code == 0
    assert built["corte"] == "20210607_2000"
    main_json = json.loads((workdir.path / "paquetes/20210607_2000/json/main.json").read_bytes())
    assert main_json["corte_time"] == "2021-06-07T20:00:00-05:00"


UNKNOWN_LAYOUTS: dict[str, tuple[Callable[[str], str], str]] = {
    # Complete files whose layout prepush does not know: refused saying what it did not
    # recognise, never as cut or incomplete.
    "columna_desconocida": (
        lambda t: t.replace("CONTABILIZADA,", "ESTATUS_DEL_ACTA,", 1),
        "no se reconoce el encabezado de las actas: falta la columna CONTABILIZADA",
    ),
    "encabezado_desconocido": (
        lambda t: t.replace("CLAVE_CASILLA,", "CLAVE,", 1).replace("TIPO_CASILLA,", "TIPO,", 1),
        "no se reconoce el encabezado de las actas",
    ),
    "archivo_desconocido": (
        lambda _t: "a,b,c\n1,2,3\n",
        "no se reconoce qué archivo del PREP es",
    ),
    "contabilizada_desconocida": (
        lambda t: t.replace(",1,F,", ",SI,F,", 1),
        "no se reconoce CONTABILIZADA 'SI'",
    ),
}


@pytest.mark.parametrize("case", sorted(UNKNOWN_LAYOUTS))
def test_a_complete_file_in_an_unknown_layout_is_refused_saying_what_was_not_recognised(
    case: str, workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, words = UNKNOWN_LAYOUTS[case]
    workdir.write_roster([])
    code, _, err = build_json(workdir, capsys, str(final_gob(tmp_path, change)))
    assert code == 2
    err = err.replace("\n", " ")
    assert "CAMP_GOB_2021.csv" in err
    assert words in err, err
    assert "cortado" not in err
    assert "incomplet" not in err


def test_a_preamble_without_actas_esperadas_is_a_mismatch_allow_mismatch_builds(
    workdir: Workdir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(t: str) -> str:
        return t.replace("ACTAS_ESPERADAS", "ACTAS_PREVISTAS", 1)

    workdir.write_roster([])
    target = final_gob(tmp_path, change)
    code, _, err = build_json(workdir, capsys, str(target))
    assert code == 2
    assert "CAMP_GOB_2021.csv:3: GOB: el preámbulo no trae ACTAS_ESPERADAS" in err
    code, _built, _ = build_json(workdir, capsys, "--allow-mismatch", str(target))
    assert code == 0
    main_json = json.loads((workdir.path / "paquetes/20210607_2000/json/main.json").read_bytes())
    assert main_json["elections"][0]["summary"]["ACTAS_PREVISTAS"] == "1190"


# --- the table of names in the docs ------------------------------------------------------------


def test_the_docs_table_lists_every_recognised_name_with_its_dataset() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "package-format.md"
    rows = set(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([^|]+?) \|$", docs.read_text(), re.M))
    expected = set(formats.table(formats.all_roles()))
    assert expected <= rows, sorted(expected - rows)


# --- INE's layouts of 2015-2024, from their LEEME files ------------------------------------------

INE_YEARS = {
    # year: (LEEME, candidaturas file, codes that name no column exactly, and their parties)
    "2015": (
        "ine_2012_2021/01_datos/20150608_2010-listaActas/LEEME.txt",
        "ine_2012_2021/01_datos/20150608_2010-listaActas/Cat_Candidatos_Diputado.csv",
        {},
    ),
    "2018": (
        "ine_2012_2021/01_datos/20180702_2100_PREP_diputaciones/LEEME.txt",
        "ine_2012_2021/01_datos/20180702_2100_PREP_diputaciones/diputaciones_candidaturas_2018.csv",
        # NA in the candidaturas, PANAL in the columns: resolved by step 4 of the rule.
        {"PRI-NA": {"PRI", "PANAL"}, "PVEM-NA": {"PVEM", "PANAL"}},
    ),
    "2021": (
        "ine_2012_2021/01_datos/20210607_2000_PREP_Diputaciones/LEEME.txt",
        "ine_2012_2021/01_datos/20210607_2000_PREP_Diputaciones/Diputaciones_candidatura_2021.csv",
        {},
    ),
    "2024": (
        LEEME_2024,
        "ine_2024/20240603_2005_PREP/20240603_2005_PREP_DIP_FED/DIP_FED_CANDIDATURAS_2024.csv",
        {},
    ),
}


def leeme_fields(leeme: str) -> list[str]:
    """A results file's columns as its LEEME lists them: the line (or lines) from
    CLAVE_CASILLA to COTEJADA, or, in 2015, the numbered description of each field."""
    data = (ine_docs_dir() / leeme).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if "CLAVE_CASILLA|" in text:
        start = text.index("CLAVE_CASILLA|")
        end = text.index("COTEJADA", start) + len("COTEJADA")
        return [f.strip() for f in re.split(r"[|\n]", text[start:end]) if f.strip()]
    described = text[text.index("Segunda secci") :]
    return re.findall(r"(?m)^\s*\d+\.\s*([A-Z][A-Z_0-9]+)\b", described)


@pytest.mark.parametrize("year", sorted(INE_YEARS))
def test_ines_header_of_each_year_is_read_and_its_candidaturas_name_its_columns(year: str) -> None:
    leeme, candidaturas, unknown = INE_YEARS[year]
    fields = leeme_fields(leeme)
    text = "\n".join(
        [
            "DIPUTACIONES",
            "07/06/2021 20:00 (UTC-5)",
            "ACTAS_ESPERADAS|ACTAS_CAPTURADAS",
            "0|0",
            "",
            "|".join(fields),
        ]
    )
    path = ine_docs_dir() / candidaturas
    e = parse_election(
        SourceFile(f"diputaciones_{year}.csv", text.encode()),
        SourceFile(path.name, path.read_bytes()),
    )
    assert e.vote_columns[-2:] in (("NO_REGISTRADOS", "NULOS"), ("NO_REGISTRADAS", "NULOS"))
    assert "PAN" in e.vote_columns
    assert not {"TOTAL_VOTOS_SACADOS", "CODIGOS_UTILIZADOS", "NUM_BOLETAS_EXTRAIDAS"} & set(
        e.vote_columns
    )
    assert e.group_label == "Distrito federal" if year != "2015" else e.group_label == "Distrito"
    result = reconcile(e, compute_summary(e), CatalogueCheck(RowlessProof(0, "")))
    assert [f for f in result.findings if f.name == "columna_de_votos_faltante"] == []
    ballot = ballot_of(e)
    contests = contests_of(e)
    assert contests.scope == "group"
    for code, parties in unknown.items():
        row = next(c for c in e.candidaturas if c.party == code)
        (contender,) = (c for c in contests.of_group(str(row.group)) if row.line in c.lines)
        assert parties <= set(contender.parties)
        combination = next(c for c, members in ballot.combinations.items() if members == parties)
        assert combination in contender.columns


def test_a_results_file_in_ines_2015_layout_is_read() -> None:
    """No CLAVE_CASILLA (composed), no ACTAS_ESPERADAS (CAPTURADAS plus POR_CAPTURAR), the
    hour and the date in words on two lines, participation without its lista nominal."""
    fields = leeme_fields(INE_YEARS["2015"][0])
    first, last = fields.index("NUM_BOLETAS_EXTRAIDAS") + 1, fields.index("TOTAL_VOTOS")
    rows = []
    for n, (secc, tipo, cont) in enumerate(
        (("0338", "B", "1"), ("0338", "C", "1"), ("0339", "B", "0"))
    ):
        votes = [str((n + i) % 5) for i in range(last - first)]
        values = dict.fromkeys(fields, "")
        values.update(
            {
                "ID_ESTADO": "1",
                "ESTADO": "AGUASCALIENTES",
                "ID_DISTRITO": "1",
                "DISTRITO": "JESUS MARIA",
                "SECCION": secc,
                "ID_CASILLA": "1",
                "TIPO_CASILLA": tipo,
                "EXT_CONTIGUA": "0",
                "TOTAL_VOTOS": str(sum(map(int, votes))),
                "LISTA_NOMINAL": "500",
                "CONTABILIZADA": cont,
                "HORA_REGISTRO": f"07/06/2015 19:0{n}",
                **dict(zip(fields[first:last], votes, strict=True)),
            }
        )
        rows.append("|".join(values[f] for f in fields))
    counted = sum(int(r.split("|")[fields.index("TOTAL_VOTOS")]) for r in rows[:2])
    text = "\n".join(
        [
            "20:00 horas (UTC-5)",
            "Domingo 7 de junio de 2015",
            "ACTAS_CAPTURADAS|ACTAS_POR_CAPTURAR|PORCENTAJE_ACTAS_CAPTURADAS|"
            "ACTAS_CONTABILIZADAS|ACTAS_NO_CONTABILIZADAS|PARTICIPACION_CIUDADANA",
            f"3|0|100.0000|2|1|{truncated(counted, 1000)}",
            "|".join(fields),
            *rows,
        ]
    )
    e = parse_election(SourceFile("diputados.csv", text.encode()), None)
    assert e.corte_time.isoformat() == "2015-06-07T20:00:00-05:00"
    assert [a.clave for a in e.actas] == ["010338B0100", "010338C0100", "010339B0100"]
    result = reconcile(e, compute_summary(e), CatalogueCheck(RowlessProof(0, "")))
    assert result.shown["porcentaje_participacion_ciudadana"] == truncated(counted, 1000)
    assert result.headers["porcentaje_participacion_ciudadana"] == "PARTICIPACION_CIUDADANA"
    assert result.shown["actas_por_capturar"] == "0"
    assert {f.name for f in result.of_kind("refused")} == {"sin_candidaturas"}
    assert result.of_kind("warning") == []
    assert result.unchecked == {}


def test_a_results_file_named_otherwise_takes_its_election_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "20190603_0547_PREP_DIP_LOC_QROO"
    folder.mkdir()
    for name, target in (
        ("QROO_DIP_LOC_2019.csv", "resultados.csv"),
        ("QROO_DIP_CANDIDATURAS_2019.csv", "candidatos.csv"),
    ):
        shutil.copyfile(quintana_roo_dir() / name, folder / target)
    (election,) = parse_sources(collect_sources([folder]))
    assert election.code == "DIP_LOC"
    assert election.candidaturas_name == "candidatos.csv"


def test_the_same_results_given_as_zip_and_folder_build_once(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([], timezone="America/Cancun", rowless_actas={})
    code, built, _ = build_json(workdir, capsys, str(quintana_roo_zip()), str(quintana_roo_dir()))
    assert code == 0
    assert built["corte"] == "20190603_0547"


def test_a_trailing_delimiter_on_every_row_is_no_field(tmp_path: Path) -> None:
    results, candidaturas = campeche_final_ayun()
    lines = results.split("\n")
    with_trailing = "\n".join(lines[:6] + [line + "," if line else line for line in lines[6:]])
    folder = tmp_path / "AYUN"
    folder.mkdir()
    (folder / "CAMP_AYUN_2021.csv").write_text(with_trailing, encoding="utf-8")
    (folder / "CAMP_AYUN_CANDIDATURA_2021.csv").write_text(candidaturas, encoding="utf-8")
    (election,) = parse_sources(collect_sources([folder]))
    assert len(election.actas) == 1193


def test_counts_with_thousands_separators_and_percentages_with_a_sign_are_checked() -> None:
    """Shown as printed (``1,190``, ``88.2352%``), compared as the numbers they are."""
    path = cortes_dir() / "20210607_2000_PREP_GOB_CAMP" / "CAMP_GOB_2021.csv"
    candidaturas = path.with_name("CAMP_GOB_CANDIDATURA_2021.csv")
    lines = path.read_text(encoding="utf-8").split("\n")
    values = lines[3].split(",")
    values[0], values[6] = '"1,190"', "88.2352%"
    lines[3] = ",".join(values)
    lines[1] = lines[1].replace("07/06/2021", "07-06-2021")
    e = parse_election(
        SourceFile(path.name, "\n".join(lines).encode()),
        SourceFile(candidaturas.name, candidaturas.read_bytes()),
    )
    assert e.corte_time.isoformat() == "2021-06-07T20:00:00-05:00"
    result = reconcile(e, compute_summary(e), CatalogueCheck(RowlessProof(0, "")))
    assert result.shown["actas_esperadas"] == "1,190"
    assert result.shown["porcentaje_actas_contabilizadas"] == "88.2352%"
    assert result.findings == ()


def test_each_group_is_named_for_the_contest_the_candidaturas_file_groups_by() -> None:
    """Campeche's JUNTAS holds each junta municipal (PICH, TIXMUCUY) in DISTRITO_LOCAL and its
    candidaturas by ID_JUNTA: its groups are juntas, not distritos; DIP_LOC's are distritos."""
    folder = cortes_dir() / "20210607_2000_PREP_JUNTAS_CAMP"
    juntas = parse_election(
        SourceFile("CAMP_JUNTAS_2021.csv", (folder / "CAMP_JUNTAS_2021.csv").read_bytes()),
        SourceFile(
            "CAMP_JUNTAS_CANDIDATURA_2021.csv",
            (folder / "CAMP_JUNTAS_CANDIDATURA_2021.csv").read_bytes(),
        ),
    )
    assert juntas.group_label == "Junta municipal"
    assert {a.group_name for a in juntas.actas} >= {"PICH", "TIXMUCUY"}
    folder = cortes_dir() / "20210607_2000_PREP_DIP_LOC_CAMP"
    dip_loc = parse_election(
        SourceFile("CAMP_DIP_LOC_2021.csv", (folder / "CAMP_DIP_LOC_2021.csv").read_bytes()),
        SourceFile(
            "CAMP_DIP_LOC_CANDIDATURA_2021.csv",
            (folder / "CAMP_DIP_LOC_CANDIDATURA_2021.csv").read_bytes(),
        ),
    )
    assert dip_loc.group_label == "Distrito local"

"""A deterministic synthetic election night, in the PREP's own CSV layout.

For simulacros and the benchmark: a catalogue of distritos, municipios, secciones and
casillas (B, C, E, S, with extraordinarias and contiguas), lista nominal, parties, coalitions
and candidacies; then the night's cortes, with actas arriving on a realistic curve, some not
counted (with the PREP's OBSERVACIONES) and a few out of catalogue. Every casilla's fate is a
pure function of (seed, casilla), so corte k never needs cortes 0..k-1, and an acta that
arrived stays byte-identical in later cortes. ``prepush build`` reads the output exactly like
real files.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from prepush.corte.summary import truncated_percentage

PARTIES = ("PAN", "PRI", "PRD", "PT", "PVEM", "MC", "MOR")
COALITIONS = ("C_PAN_PRI_PRD", "C_PAN_PRI", "C_PAN_PRD", "C_PRI_PRD", "C_PT_MOR")
ELECTIONS = {
    "GOB": ("GUBERNATURA", "ID_DISTRITO_LOCAL", "DISTRITO_LOCAL", 5),
    "DIP_LOC": ("DIPUTACIONES LOCALES", "ID_DISTRITO_LOCAL", "DISTRITO_LOCAL", 3),
    "AYUN": ("AYUNTAMIENTOS", "ID_MUNICIPIO", "MUNICIPIO", 2),
    "DIP_FED": ("DIPUTACIONES FEDERALES", "ID_DISTRITO_FEDERAL", "DISTRITO_FEDERAL", 6),
}
SUMMARY = (
    "ACTAS_ESPERADAS,ACTAS_REGISTRADAS,ACTAS_FUERA_CATALOGO,ACTAS_CAPTURADAS,"
    "PORCENTAJE_ACTAS_CAPTURADAS,ACTAS_CONTABILIZADAS,PORCENTAJE_ACTAS_CONTABILIZADAS,"
    "PORCENTAJE_ACTAS_INCONSISTENCIAS,ACTAS_NO_CONTABILIZADAS,"
    "LISTA_NOMINAL_ACTAS_CONTABILIZADAS,TOTAL_VOTOS_C_CS,TOTAL_VOTOS_S_CS,"
    "PORCENTAJE_PARTICIPACION_CIUDADANA"
)
HEAD = (
    "CLAVE_CASILLA,CLAVE_ACTA,ID_ESTADO,ESTADO,{gid},{gname},SECCION,ID_CASILLA,TIPO_CASILLA,"
    "EXT_CONTIGUA,UBICACION_CASILLA,TIPO_ACTA,TOTAL_BOLETAS_SOBRANTES,TOTAL_PERSONAS_VOTARON,"
    "TOTAL_REP_PARTIDO_CI_VOTARON,TOTAL_VOTOS_SACADOS,{parties},NO_REGISTRADOS,NULOS,"
    "TOTAL_VOTOS_ASENTADO,TOTAL_VOTOS_CALCULADO,LISTA_NOMINAL,REPRESENTANTES_PP_CI,"
    "OBSERVACIONES,CONTABILIZADA,MECANISMOS_TRASLADO,SHA,FECHA_HORA_ACOPIO,"
    "FECHA_HORA_CAPTURA,FECHA_HORA_VERIFICACION,ORIGEN,DIGITALIZACION,TIPO_DOCUMENTO"
)
NOT_COUNTED = (
    ("TODOS ILEGIBLES O SIN DATO", 0.45),
    ("EXCEDE LISTA NOMINAL", 0.15),
    ("SIN ACTA POR PAQUETE ENTREGADO SIN SOBRE", 0.4),
)
NAMES = ("MARIA", "JOSE", "GUADALUPE", "JUAN", "ROSA", "LUIS", "ANA", "CARLOS", "ELENA")
SURNAMES = ("HERNANDEZ", "GARCIA", "MARTINEZ", "LOPEZ", "PEREZ", "CHAN", "UC", "CANUL", "PECH")
SIZES = {"tiny": 60, "small": 1_200, "medium": 3_000, "large": 20_000, "federal": 170_000}


@dataclass(frozen=True)
class SynthSpec:
    seed: int
    casillas: int
    cortes: int
    start: datetime
    interval_minutes: int
    elections: tuple[str, ...] = ("GOB", "DIP_LOC", "AYUN")
    state_id: int = 4
    state: str = "SINTETICO"
    state_code: str = "SINT"

    def corte_time(self, k: int) -> datetime:
        return self.start + timedelta(minutes=self.interval_minutes * k)

    def corte_id(self, k: int) -> str:
        return self.corte_time(k).strftime("%Y%m%d_%H%M")


def spec_for(
    size: str, seed: int, cortes: int, start: datetime, interval_minutes: int
) -> SynthSpec:
    elections = ("DIP_FED",) if size == "federal" else ("GOB", "DIP_LOC", "AYUN")
    return SynthSpec(seed, SIZES[size], cortes, start, interval_minutes, elections)


@dataclass(frozen=True, slots=True)
class Casilla:
    seccion: int
    tipo: str
    number: int
    ext: int
    distrito: int
    municipio: int
    distrito_federal: int
    lista_nominal: int

    @property
    def clave(self) -> str:
        return f"{self.seccion:04d}{self.tipo}{self.number:02d}{self.ext:02d}"


def catalogue(spec: SynthSpec) -> list[Casilla]:
    rng = random.Random(spec.seed)
    distritos = max(3, min(40, spec.casillas // 55))
    municipios = max(2, min(125, spec.casillas // 90))
    federales = max(3, min(300, spec.casillas // 560))
    casillas: list[Casilla] = []
    seccion = 0
    while len(casillas) < spec.casillas:
        seccion += 1
        distrito = 1 + (seccion * distritos) // (spec.casillas // 2 + 1) % distritos
        municipio = 1 + (seccion * municipios) // (spec.casillas // 2 + 1) % municipios
        federal = 1 + (seccion * federales) // (spec.casillas // 2 + 1) % federales
        kinds = [("B", 1, 0)] + [("C", i, 0) for i in range(1, 1 + rng.choice((0, 1, 1, 2, 3)))]
        if rng.random() < 0.06:
            kinds += [("E", 1, 0), ("E", 1, 1)]
        if rng.random() < 0.02:
            kinds.append(("S", 1, 0))
        for tipo, number, ext in kinds:
            ln = rng.randint(40, 120) if tipo == "S" else rng.randint(280, 750)
            casillas.append(Casilla(seccion, tipo, number, ext, distrito, municipio, federal, ln))
    return casillas[: spec.casillas]


def _casilla_rng(spec: SynthSpec, index: int, code: str) -> random.Random:
    digest = hashlib.blake2b(f"{spec.seed}:{index}:{code}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def arrival_corte(spec: SynthSpec, index: int) -> int | None:
    """The corte (0-based) in which the casilla's acta first appears, or None: never."""
    rng = _casilla_rng(spec, index, "arrival")
    if rng.random() < 0.05:
        return None
    # Slow start at the opening, fast in the middle of the night, a long tail.
    moment = rng.betavariate(2.2, 3.0)
    return min(spec.cortes - 1, 1 + int(moment * (spec.cortes - 1)))


def _row(
    spec: SynthSpec, code: str, index: int, c: Casilla, arrived_at: int | None, k: int
) -> tuple[str, dict[str, int]]:
    name, _, _, acta_type = ELECTIONS[code]
    columns = _columns(code)
    group = _group(code, c)
    clave = f"{spec.state_id:02d}{c.clave}"
    prefix = (
        f"{clave},{clave}{acta_type:02d},{spec.state_id:02d},{spec.state},{group:03d},"
        f"{group:03d}. {name.split()[0][:4]} {group},{c.seccion:04d},{c.number:02d},{c.tipo},"
        f"{c.ext:02d},1,{acta_type}"
    )
    if arrived_at is None or arrived_at > k:
        blanks = "," * (8 + len(columns))
        return f"{prefix}{blanks},{c.lista_nominal}" + "," * 11, {}
    rng = _casilla_rng(spec, index, code)
    turnout = rng.uniform(0.4, 0.75)
    voters = int(c.lista_nominal * turnout) if c.tipo != "S" else rng.randint(20, 90)
    weights = [rng.uniform(0.2, 1.0) * (3 if p in ("MOR", "PAN", "PRI") else 1) for p in columns]
    total_weight = sum(weights)
    votes = [int(voters * 0.95 * w / total_weight) for w in weights]
    nulos = voters - sum(votes)
    counted_votes = [*votes, 0, nulos]
    observation, contabilizada = "", 1
    draw = rng.random()
    if draw < 0.03:
        pick = rng.random()
        for text, share in NOT_COUNTED:
            if pick < share:
                observation = text
                break
            pick -= share
        contabilizada = 0
    elif draw < 0.2:
        observation = "ALGUN CAMPO ILEGIBLE O SIN DATO"
    cells = ",".join(str(v) for v in counted_votes)
    total = sum(counted_votes)
    sha = hashlib.sha256(f"{spec.seed}{clave}{code}".encode()).hexdigest()
    acopio, captura, verificacion = _stamps(spec, arrived_at, rng)
    row = (
        f"{prefix},{c.lista_nominal - voters},{voters},{rng.randint(0, 8)},{voters},{cells},"
        f"{total},{total},{c.lista_nominal},{rng.randint(0, 8)},{observation},{contabilizada},"
        f"F,{sha},{acopio},{captura},{verificacion},CATD,ESCANER,ACTA PREP"
    )
    figures = {
        "captured": 1,
        "counted": int(contabilizada == 1),
        "inconsistent": int(contabilizada == 0 and not observation.startswith("SIN ACTA")),
        "ln": c.lista_nominal if contabilizada == 1 else 0,
        "c_cs": total if contabilizada == 1 else 0,
        "s_cs": total if contabilizada == 1 and c.tipo != "S" else 0,
    }
    return row, figures


def _stamps(spec: SynthSpec, arrived_at: int, rng: random.Random) -> tuple[str, str, str]:
    """Received, captured and verified, as the PREP prints them: verified between the
    previous corte and the one the acta first appears in."""
    end = spec.corte_time(arrived_at) - timedelta(seconds=5)
    start = spec.corte_time(arrived_at - 1) if arrived_at else end - timedelta(hours=1)
    verified = start + (end - start) * rng.random()
    captured = verified - timedelta(seconds=rng.randint(30, 480))
    received = captured - timedelta(seconds=rng.randint(120, 1800))
    shown = "%d/%m/%Y %H:%M:%S"
    return received.strftime(shown), captured.strftime(shown), verified.strftime(shown)


def _columns(code: str) -> tuple[str, ...]:
    coalitions = COALITIONS if code != "AYUN" else COALITIONS[:4]
    independent = ("CAND_IND_1",) if code == "AYUN" else ()
    return (*PARTIES, *independent, *coalitions)


def _group(code: str, c: Casilla) -> int:
    return {"AYUN": c.municipio, "DIP_FED": c.distrito_federal}.get(code, c.distrito)


def write_corte(spec: SynthSpec, k: int, out_dir: Path) -> Path:
    """Corte k (0-based): one directory per election, as the PREP publishes them."""
    corte = spec.corte_id(k)
    casillas = catalogue(spec)
    arrivals = [arrival_corte(spec, i) for i in range(len(casillas))]
    target = out_dir / corte
    for code in spec.elections:
        folder = target / f"{corte}_PREP_{code}_{spec.state_code}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_election(spec, k, code, casillas, arrivals, folder)
    return target


def _write_election(
    spec: SynthSpec,
    k: int,
    code: str,
    casillas: list[Casilla],
    arrivals: list[int | None],
    folder: Path,
) -> None:
    name, gid, gname, _ = ELECTIONS[code]
    totals = dict.fromkeys(("captured", "counted", "inconsistent", "ln", "c_cs", "s_cs"), 0)
    rows = []
    for index, casilla in enumerate(casillas):
        row, figures = _row(spec, code, index, casilla, arrivals[index], k)
        rows.append(row)
        for key, value in figures.items():
            totals[key] += value
    fuera = min(3, k // 4)
    rows += [_out_of_catalogue(spec, code, i) for i in range(fuera)]
    expected = len(casillas)
    final = k == spec.cortes - 1
    participation = truncated_percentage(totals["c_cs" if final else "s_cs"], totals["ln"])
    summary = ",".join(
        str(v)
        for v in (
            expected,
            totals["captured"] + fuera,
            fuera,
            totals["captured"],
            truncated_percentage(totals["captured"], expected),
            totals["counted"],
            truncated_percentage(totals["counted"], expected),
            truncated_percentage(totals["inconsistent"], expected),
            totals["captured"] - totals["counted"],
            totals["ln"],
            totals["c_cs"],
            totals["s_cs"],
            participation,
        )
    )
    when = spec.corte_time(k)
    offset = int((when.utcoffset() or timedelta()).total_seconds() // 3600)
    header = HEAD.format(gid=gid, gname=gname, parties=",".join(_columns(code)))
    text = "\n".join(
        [
            name,
            f"{when.strftime('%d/%m/%Y %H:%M')} (UTC{offset:+d})",
            SUMMARY,
            summary,
            "",
            header,
            *rows,
        ]
    )
    (folder / f"{spec.state_code}_{code}_2027.csv").write_text(text + "\n", encoding="utf-8")
    (folder / f"{spec.state_code}_{code}_CANDIDATURA_2027.csv").write_text(
        _candidaturas(spec, code), encoding="utf-8"
    )
    (folder / "LEEME.txt").write_bytes(LEEME.replace("\n", "\r\n").encode())


def _out_of_catalogue(spec: SynthSpec, code: str, i: int) -> str:
    dashes = ",".join(["-"] * (len(_columns(code)) + 10))
    sha = hashlib.sha256(f"{spec.seed}-fuera-{code}-{i}".encode()).hexdigest()
    return (
        f"-,-,{spec.state_id},{spec.state},-,-,-,-,-,-,-,-,{dashes},FUERA DE CATALOGO,0,F,{sha},"
        "2027-06-07 01:15:00.000000,-,-,CATD,Escaner,ACTA PREP"
    )


def _candidaturas(spec: SynthSpec, code: str) -> str:
    """One candidatura per party or coalition, as the PREP writes them (``SUM-`` codes):
    every vote column of the ballot belongs to one, as on election night."""
    rng = random.Random(f"{spec.seed}-{code}-cand")
    lines = ["ID_ESTADO,PARTIDO_CI,CANDIDATURA_PROPIETARIA"]
    independent = ("CI1",) if "CAND_IND_1" in _columns(code) else ()
    for party in ("SUM-PAN-PRI-PRD", "SUM-PT-MOR", "MC", "PVEM", *independent):
        name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)} {rng.choice(SURNAMES)}"
        lines.append(f"{spec.state_id},{party},{name}")
    return "\n".join(lines) + "\n"


def write_night(spec: SynthSpec, out_dir: Path) -> list[Path]:
    return [write_corte(spec, k, out_dir) for k in range(spec.cortes)]


LEEME = """LEEME - Base de datos sintética del PREP (simulacro)

Estos archivos los genera prepush para ensayos. NO son resultados de ninguna elección.
Siguen la estructura de las bases de datos del PREP: un preámbulo con el nombre de la
elección, la fecha y hora del corte y el resumen (ACTAS_ESPERADAS ... PORCENTAJE_PARTICIPACION_
CIUDADANA), seguido de una fila por acta con CLAVE_CASILLA, SECCION, TIPO_CASILLA, votos por
partido y coalición, LISTA_NOMINAL, OBSERVACIONES y CONTABILIZADA.
"""

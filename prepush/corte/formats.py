"""The names prepush recognises in a PREP's files, by role, each with the dataset it came from.

A PREP's files vary from year to year and from institute to institute: the same figure or
column is spelled ``ACTAS_FUERA_CATALOGO`` or ``ACTAS_FUERA_DE_CATALOGO``, ``ID_ESTADO`` or
``ID_ENTIDAD``, ``SHA`` or ``CODIGO_INTEGRIDAD``. Every name is compared in its normal form
(upper case, no accents, spaces and hyphens as underscores), and each role lists the spellings
seen in real PREPs. docs/package-format.md carries the same table for people; a test keeps
the two in step.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Where each spelling was seen: the datasets of shared/data/prep/ and INE's LEEME files,
# which list every column. ANALOGY marks a spelling not yet seen, accepted because its
# counterpart in the other file (results or candidaturas) was.
CAMPECHE = "Campeche 2021"
OAXACA = "Oaxaca 2022"
QROO = "Quintana Roo 2019"
COAHUILA = "Coahuila 2023"
INE_2015_LEEME = "LEEME de INE 2015"
INE_2015 = "candidaturas de INE 2015"
INE_2018 = "LEEME de INE 2018"
INE_2021 = "LEEME de INE 2021"
INE_2024 = "INE 2024 (LEEME y candidaturas)"
ANALOGY = "por analogía (no visto aún)"


@dataclass(frozen=True)
class Role:
    """One thing a PREP's file holds, and every spelling seen for it, in order of preference."""

    key: str
    spellings: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.spellings)


def normal(name: str) -> str:
    """``Sección`` -> ``SECCION``; ``PAN-PRI PRD`` -> ``PAN_PRI_PRD``: the form names compare in."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\s\-_]+", "_", plain.strip().strip("'\"").upper()).strip("_")


def _role(key: str, *spellings: tuple[str, str]) -> Role:
    return Role(key, spellings)


# --- the preamble: the PREP's summary of the corte ---------------------------------------------

SUMMARY = (
    _role("ACTAS_ESPERADAS", ("ACTAS_ESPERADAS", CAMPECHE)),
    _role("ACTAS_REGISTRADAS", ("ACTAS_REGISTRADAS", CAMPECHE)),
    _role(
        "ACTAS_FUERA_CATALOGO",
        ("ACTAS_FUERA_CATALOGO", CAMPECHE),
        ("ACTAS_FUERA_DE_CATALOGO", INE_2018),
    ),
    _role("ACTAS_CAPTURADAS", ("ACTAS_CAPTURADAS", CAMPECHE)),
    _role("PORCENTAJE_ACTAS_CAPTURADAS", ("PORCENTAJE_ACTAS_CAPTURADAS", CAMPECHE)),
    _role("ACTAS_CONTABILIZADAS", ("ACTAS_CONTABILIZADAS", CAMPECHE)),
    _role("PORCENTAJE_ACTAS_CONTABILIZADAS", ("PORCENTAJE_ACTAS_CONTABILIZADAS", CAMPECHE)),
    _role(
        "PORCENTAJE_ACTAS_INCONSISTENCIAS",
        ("PORCENTAJE_ACTAS_INCONSISTENCIAS", CAMPECHE),
        ("PORCENTAJE_ACTAS_CON_INCONSISTENCIAS", INE_2018),
    ),
    _role("ACTAS_NO_CONTABILIZADAS", ("ACTAS_NO_CONTABILIZADAS", CAMPECHE)),
    _role(
        "LISTA_NOMINAL_ACTAS_CONTABILIZADAS",
        ("LISTA_NOMINAL_ACTAS_CONTABILIZADAS", CAMPECHE),
        ("LISTA_NOMINAL_ACTAS_CONTABILZADAS", INE_2018),
    ),
    _role("TOTAL_VOTOS_C_CS", ("TOTAL_VOTOS_C_CS", CAMPECHE)),
    _role("TOTAL_VOTOS_S_CS", ("TOTAL_VOTOS_S_CS", CAMPECHE)),
    _role(
        "PORCENTAJE_PARTICIPACION_CIUDADANA",
        ("PORCENTAJE_PARTICIPACION_CIUDADANA", CAMPECHE),
        ("PARTICIPACION_CIUDADANA", INE_2015_LEEME),
    ),
)
# Printed by older PREPs beside the thirteen: shown under their name; ACTAS_POR_CAPTURAR with
# ACTAS_CAPTURADAS gives the actas expected (INE 2012 and 2015 print no ACTAS_ESPERADAS).
SUMMARY_EXTRA = (_role("ACTAS_POR_CAPTURAR", ("ACTAS_POR_CAPTURAR", INE_2015_LEEME)),)
SUMMARY_FIELDS = tuple(role.key for role in SUMMARY)


def summary_key(header: str) -> str | None:
    """The canonical name of a preamble figure, or None when prepush does not know it."""
    return _lookup(header, (*SUMMARY, *SUMMARY_EXTRA))


# --- the results file: one row per acta ---------------------------------------------------------

CLAVE_CASILLA = _role("CLAVE_CASILLA", ("CLAVE_CASILLA", CAMPECHE))
CLAVE_ACTA = _role("CLAVE_ACTA", ("CLAVE_ACTA", CAMPECHE))
ENTIDAD_ID = _role("ID_ESTADO", ("ID_ESTADO", CAMPECHE), ("ID_ENTIDAD", COAHUILA))
ENTIDAD_NAME = _role("ESTADO", ("ESTADO", CAMPECHE), ("ENTIDAD", COAHUILA))
SECCION = _role("SECCION", ("SECCION", CAMPECHE))
ID_CASILLA = _role("ID_CASILLA", ("ID_CASILLA", CAMPECHE))
TIPO_CASILLA = _role("TIPO_CASILLA", ("TIPO_CASILLA", CAMPECHE))
EXT_CONTIGUA = _role("EXT_CONTIGUA", ("EXT_CONTIGUA", CAMPECHE))
LISTA_NOMINAL = _role("LISTA_NOMINAL", ("LISTA_NOMINAL", CAMPECHE))
OBSERVACIONES = _role("OBSERVACIONES", ("OBSERVACIONES", CAMPECHE))
CONTABILIZADA = _role("CONTABILIZADA", ("CONTABILIZADA", CAMPECHE))
BOLETAS_SOBRANTES = _role(
    "TOTAL_BOLETAS_SOBRANTES",
    ("TOTAL_BOLETAS_SOBRANTES", CAMPECHE),
    ("NUM_BOLETAS_SOBRANTES", INE_2015_LEEME),
)
PERSONAS_VOTARON = _role(
    "TOTAL_PERSONAS_VOTARON",
    ("TOTAL_PERSONAS_VOTARON", CAMPECHE),
    ("TOTAL_CIUDADANOS_VOTARON", INE_2015_LEEME),
)
VOTOS_CALCULADO = _role(
    "TOTAL_VOTOS_CALCULADO", ("TOTAL_VOTOS_CALCULADO", CAMPECHE), ("TOTAL_VOTOS", INE_2015_LEEME)
)
# The acta's digitized image: its SHA-256, how (MOVIL, ESCANER) and where (CASILLA, CATD) it
# was digitized, and what was (TIPO_DOCUMENTO); with CLAVE_ACTA, what the site shows of it.
CODIGO_INTEGRIDAD = _role("CODIGO_INTEGRIDAD", ("SHA", CAMPECHE), ("CODIGO_INTEGRIDAD", OAXACA))
DIGITALIZACION = _role("DIGITALIZACION", ("DIGITALIZACION", CAMPECHE))
ORIGEN = _role("ORIGEN", ("ORIGEN", CAMPECHE))
TIPO_DOCUMENTO = _role("TIPO_DOCUMENTO", ("TIPO_DOCUMENTO", CAMPECHE))
IMAGE = (CLAVE_ACTA, CODIGO_INTEGRIDAD, DIGITALIZACION, ORIGEN, TIPO_DOCUMENTO)
# Identification and counts of the acta that come before its votes: the vote columns start
# after the last of them.
BEFORE_VOTES = (
    CLAVE_CASILLA,
    CLAVE_ACTA,
    ENTIDAD_ID,
    ENTIDAD_NAME,
    SECCION,
    ID_CASILLA,
    TIPO_CASILLA,
    EXT_CONTIGUA,
    _role("UBICACION_CASILLA", ("UBICACION_CASILLA", CAMPECHE)),
    _role("TIPO_ACTA", ("TIPO_ACTA", CAMPECHE)),
    BOLETAS_SOBRANTES,
    PERSONAS_VOTARON,
    _role("TOTAL_REP_PARTIDO_CI_VOTARON", ("TOTAL_REP_PARTIDO_CI_VOTARON", CAMPECHE)),
    _role(
        "TOTAL_VOTOS_SACADOS",
        ("TOTAL_VOTOS_SACADOS", CAMPECHE),
        ("NUM_BOLETAS_EXTRAIDAS", INE_2015_LEEME),
    ),
    _role("CODIGOS_ENTREGADOS_PMDC", ("CODIGOS_ENTREGADOS_PMDC", INE_2021)),
    _role("CODIGOS_SOBRANTES", ("CODIGOS_SOBRANTES", INE_2021), ("CODIGOS_SONBRANTES", INE_2021)),
    _role("CODIGOS_UTILIZADOS", ("CODIGOS_UTILIZADOS", INE_2021)),
)
# The first of these closes the vote block.
AFTER_VOTES = (
    _role("TOTAL_VOTOS_ASENTADO", ("TOTAL_VOTOS_ASENTADO", CAMPECHE)),
    VOTOS_CALCULADO,
    LISTA_NOMINAL,
    _role("REPRESENTANTES_PP_CI", ("REPRESENTANTES_PP_CI", CAMPECHE)),
    OBSERVACIONES,
    CONTABILIZADA,
    _role("MECANISMOS_TRASLADO", ("MECANISMOS_TRASLADO", CAMPECHE), ("CRYT", INE_2015_LEEME)),
    CODIGO_INTEGRIDAD,
    _role("FECHA_HORA_ACOPIO", ("FECHA_HORA_ACOPIO", CAMPECHE), ("HORA_ACOPIO", INE_2015_LEEME)),
    _role("FECHA_HORA_CAPTURA", ("FECHA_HORA_CAPTURA", CAMPECHE), ("HORA_CAPTURA", INE_2015_LEEME)),
    _role(
        "FECHA_HORA_VERIFICACION",
        ("FECHA_HORA_VERIFICACION", CAMPECHE),
        ("HORA_REGISTRO", INE_2015_LEEME),
    ),
    ORIGEN,
    DIGITALIZACION,
    TIPO_DOCUMENTO,
    _role("COTEJADA", ("COTEJADA", INE_2018)),
)
# Vote columns the block always ends with (votes for candidaturas not registered, and null).
NO_REGISTRADOS = _role("NO_REGISTRADOS", ("NO_REGISTRADOS", CAMPECHE), ("NO_REGISTRADAS", COAHUILA))
NULOS = _role("NULOS", ("NULOS", CAMPECHE))
# An acta's row cannot be read without these (a clave can be composed when CLAVE_CASILLA is
# missing, as in INE 2012 and 2015; see ``CLAVE_PARTS``).
REQUIRED = (SECCION, TIPO_CASILLA, LISTA_NOMINAL, OBSERVACIONES, CONTABILIZADA)
CLAVE_PARTS = (SECCION, TIPO_CASILLA, ID_CASILLA, EXT_CONTIGUA)


@dataclass(frozen=True)
class Group:
    """The column a results file is divided by (distrito, municipio...), with its label."""

    id: Role
    name: Role
    kind: str
    label: str


GROUPS = (
    Group(
        _role("ID_DISTRITO_LOCAL", ("ID_DISTRITO_LOCAL", CAMPECHE)),
        _role("DISTRITO_LOCAL", ("DISTRITO_LOCAL", CAMPECHE)),
        "distrito",
        "Distrito local",
    ),
    Group(
        _role("ID_DISTRITO_FEDERAL", ("ID_DISTRITO_FEDERAL", INE_2018)),
        _role("DISTRITO_FEDERAL", ("DISTRITO_FEDERAL", INE_2018)),
        "distrito",
        "Distrito federal",
    ),
    Group(
        _role("ID_DISTRITO", ("ID_DISTRITO", QROO)),
        _role("DISTRITO", ("DISTRITO", QROO)),
        "distrito",
        "Distrito",
    ),
    Group(
        _role("ID_MUNICIPIO_LOCAL", ("ID_MUNICIPIO_LOCAL", ANALOGY)),
        _role("MUNICIPIO_LOCAL", ("MUNICIPIO_LOCAL", ANALOGY)),
        "municipio",
        "Municipio",
    ),
    Group(
        _role("ID_MUNICIPIO", ("ID_MUNICIPIO", CAMPECHE)),
        _role("MUNICIPIO", ("MUNICIPIO", CAMPECHE)),
        "municipio",
        "Municipio",
    ),
)

# Kinds of contest a candidaturas file groups by with no column of their own in the results.
KIND_LABELS = {"junta": "Junta municipal"}

# When an acta was published: verified, else captured, else received (the first one present).
PUBLISHED = tuple(
    next(r for r in AFTER_VOTES if r.key == key)
    for key in ("FECHA_HORA_VERIFICACION", "FECHA_HORA_CAPTURA", "FECHA_HORA_ACOPIO")
)
# Every column of an acta's row that is not a vote (the vote columns are the rest).
ACTA_ROLES = (*BEFORE_VOTES, *AFTER_VOTES, *(r for g in GROUPS for r in (g.id, g.name)))


# --- the candidaturas file ---------------------------------------------------------------------

PARTY = _role("PARTIDO_CI", ("PARTIDO_CI", CAMPECHE), ("PARTIDO", INE_2015))
PROPIETARIA = _role(
    "CANDIDATURA_PROPIETARIA",
    ("CANDIDATURA_PROPIETARIA", CAMPECHE),
    ("CANDIDATO_PROPIETARIO", INE_2015),
)
SUPLENTE = _role(
    "CANDIDATURA_SUPLENTE", ("CANDIDATURA_SUPLENTE", CAMPECHE), ("CANDIDATO_SUPLENTE", INE_2015)
)
# The candidaturas file names its entidad and group by number; INE 2015-2021 write ESTADO and
# DISTRITO (numbers) where the OPLs write ID_ESTADO and ID_DISTRITO_LOCAL.
CANDIDATURA_ENTIDAD = _role(
    "ID_ESTADO",
    ("ID_ESTADO", CAMPECHE),
    ("ID_ENTIDAD", INE_2024),
    ("ESTADO", INE_2015),
    ("ENTIDAD", ANALOGY),
)
CANDIDATURA_GROUPS = (
    _role("ID_DISTRITO_LOCAL", ("ID_DISTRITO_LOCAL", CAMPECHE)),
    _role("ID_DISTRITO_FEDERAL", ("ID_DISTRITO_FEDERAL", INE_2024)),
    _role("ID_DISTRITO", ("ID_DISTRITO", ANALOGY)),
    _role("ID_MUNICIPIO_LOCAL", ("ID_MUNICIPIO_LOCAL", CAMPECHE)),
    _role("ID_MUNICIPIO", ("ID_MUNICIPIO", ANALOGY)),
    _role("ID_JUNTA", ("ID_JUNTA", CAMPECHE)),
    _role("DISTRITO", ("DISTRITO", INE_2015)),
    _role("MUNICIPIO", ("MUNICIPIO", ANALOGY)),
)
# A value that names no group: the candidatura is the whole election's (INE 2024's PRES).
NATIONAL = {"NACIONAL", "ESTATAL", "N/A", "", "-"}


# --- values ------------------------------------------------------------------------------------

# What the PREP prints in a vote cell it could not read: it counts as zero (each LEEME says so).
UNREADABLE = (
    ("", CAMPECHE),
    ("-", CAMPECHE),
    ("ILEGIBLE", OAXACA),
    ("SIN DATO", OAXACA),
    ("SIN DATOS", ANALOGY),
    ("SIN ACTA", OAXACA),
    ("N/A", COAHUILA),
    ("NA", ANALOGY),
    ("NO APLICA", INE_2024),
    ("NULL", ANALOGY),
    ("X", ANALOGY),
)
UNREADABLE_VALUES = {value for value, _ in UNREADABLE}


def unreadable(cell: str) -> bool:
    return " ".join(cell.split()).upper() in UNREADABLE_VALUES


# --- election codes ----------------------------------------------------------------------------

# The codes PREPs put in their file names, longest first so that DIP_LOC wins over DIP.
ELECTION_CODES = (
    "DIP_FED",
    "DIP_LOC",
    "DIP_MR",
    "DIP_RP",
    "PRES",
    "PRESIDENCIA",
    "GOB",
    "GUB",
    "SEN",
    "DIP",
    "AYUN",
    "JUNTAS",
    "PM",
    "ALC",
)
ELECTION_ORDER = ("PRES", "PRESIDENCIA", "GOB", "GUB", "SEN", "DIP_FED", "DIP_LOC", "DIP", "AYUN")
# The state prefixes of OPL file names (CAMP_GOB_2021.csv); INE's carry none (PRES_2024.csv).
STATE_PREFIXES = frozenset(
    [
        "AGS",
        "BC",
        "BCS",
        "CAMP",
        "COAH",
        "COL",
        "CHIS",
        "CHIH",
        "CDMX",
        "DF",
        "DGO",
        "GTO",
        "GRO",
        "HGO",
        "JAL",
        "MEX",
        "EDOMEX",
        "MICH",
        "MOR",
        "NAY",
        "NL",
        "OAX",
        "PUE",
        "QRO",
        "QROO",
        "QR",
        "SLP",
        "SIN",
        "SON",
        "TAB",
        "TAMPS",
        "TAM",
        "TLAX",
        "VER",
        "YUC",
        "ZAC",
    ]
)
NOT_CODE_TOKENS = frozenset(
    {"CANDIDATURA", "CANDIDATURAS", "CANDIDATO", "CANDIDATOS", "CAT", "CATALOGO", "PREP"}
)


def election_code(filename: str) -> str:
    """``CAMP_DIP_LOC_2021.csv`` -> ``DIP_LOC``; ``DIP_FED_2024.csv`` -> ``DIP_FED``;
    ``QROO_DIP_CANDIDATURAS_2019.csv`` -> ``DIP``: the state prefix, the year and the words of
    the candidaturas file dropped."""
    stem = filename.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    tokens = [t for t in re.split(r"[_\-\s.]+", normal(stem)) if t]
    tokens = [t for t in tokens if not t.isdigit() and t not in NOT_CODE_TOKENS]
    joined = "_".join(tokens)
    for code in sorted(ELECTION_CODES, key=len, reverse=True):
        if joined == code or joined.endswith("_" + code):
            prefix = joined[: -len(code)].strip("_")
            if prefix.count("_") == 0:
                return code
    if len(tokens) > 1 and tokens[0] in STATE_PREFIXES:
        tokens = tokens[1:]
    return "_".join(tokens) or normal(stem)


def container_code(container: str) -> str | None:
    """``20240603_2005_PREP_PRES`` -> ``PRES``; ``20210601_1852_PREP_GOB_CAMP`` -> ``GOB``: the
    election a PREP's folder or ZIP is named after, for a results file whose own name does not
    say it (``resultados.csv``)."""
    last = normal(container.rsplit("/", 1)[-1])
    match = re.search(r"(?:^|_)PREP_(.+)$", last)
    if match is None:
        return None
    tokens = [t for t in match[1].split("_") if t and not t.isdigit()]
    if len(tokens) > 1 and tokens[-1] in STATE_PREFIXES:
        tokens = tokens[:-1]
    return "_".join(tokens) or None


def election_order(code: str) -> tuple[int, str]:
    rest = ("JUNTAS",)
    order = {c: i for i, c in enumerate((*ELECTION_ORDER, *rest))}
    return (order.get(code, 99), code)


def _lookup(header: str, roles: Iterable[Role]) -> str | None:
    key = normal(header)
    for role in roles:
        if key in {normal(n) for n in role.names}:
            return role.key
    return None


def find(header: Sequence[str], role: Role) -> int | None:
    """The index of ``role``'s column in ``header`` (its first spelling present), or None."""
    wanted = [normal(n) for n in role.names]
    normals = [normal(h) for h in header]
    for name in wanted:
        if name in normals:
            return normals.index(name)
    return None


def looks_like_names(cells: Sequence[str]) -> bool:
    """A header or summary line: names such as ``ACTAS_ESPERADAS``, no prose, no figures."""
    names = [c.strip() for c in cells if c.strip()]
    return bool(names) and all(re.fullmatch(r"[^\W\d_][\w\-. ]{0,80}", n) for n in names)


def spelled(role: Role) -> str:
    """``PARTIDO_CI (o PARTIDO)``: a role's spellings, for a message."""
    others = role.names[1:]
    return role.names[0] + (f" (o {', '.join(others)})" if others else "")


def table(roles: Iterable[Role]) -> list[tuple[str, str, str]]:
    """(canonical name, spelling, dataset) for every spelling: the docs' table."""
    return [(role.key, name, where) for role in roles for name, where in role.spellings]


def all_roles() -> list[Role]:
    """Every role with its spellings, for the documentation and its test."""
    groups = [r for g in GROUPS for r in (g.id, g.name)]
    return [
        *SUMMARY,
        *SUMMARY_EXTRA,
        *BEFORE_VOTES,
        NO_REGISTRADOS,
        NULOS,
        *AFTER_VOTES,
        *groups,
        PARTY,
        PROPIETARIA,
        SUPLENTE,
        CANDIDATURA_ENTIDAD,
        *CANDIDATURA_GROUPS,
    ]

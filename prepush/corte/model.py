"""What a PREP's files become: each file as read (``SourceFile``), and each election with its
actas, their images and its candidaturas (``Election``, ``Acta``, ``ActaImage``,
``Candidatura``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes
    # The folder or ZIP it came in (``20210607_2000_PREP_GOB_CAMP``): a results file goes with
    # the candidaturas file and LEEME beside it.
    container: str = ""


@dataclass(frozen=True, slots=True)
class ActaImage:
    """The acta's digitized image as the results CSV describes it, for the site: anyone
    holding the image can check it against ``sha256``. Empty where the PREP printed none."""

    clave_acta: str = ""
    sha256: str = ""
    digitalizacion: str = ""
    origen: str = ""
    tipo_documento: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "clave_acta": self.clave_acta,
            "sha256": self.sha256,
            "digitalizacion": self.digitalizacion,
            "origen": self.origen,
            "tipo_documento": self.tipo_documento,
        }


NO_IMAGE = ActaImage()


@dataclass(frozen=True, slots=True)
class Acta:
    clave: str
    seccion: str
    id_casilla: str
    tipo: str
    ext: str
    group_id: str
    group_name: str
    lista_nominal: int
    contabilizada: int | None
    observaciones: str
    votes: tuple[int, ...] | None
    # "AAAA-MM-DD HH:MM:SS" local time, or "" when the row carries no time.
    published: str = ""
    # Boletas the casilla received for this acta (sobrantes plus the people who voted), when
    # the CSV has both columns and the acta was captured.
    boletas: int | None = None
    # TOTAL_VOTOS_CALCULADO as printed in the row (the PREP's own sum of its votes), when
    # numeric; and the row's line in its file.
    calculado: int | None = None
    line: int = 0
    image: ActaImage = NO_IMAGE

    @property
    def captured(self) -> bool:
        return self.contabilizada is not None

    @property
    def counted(self) -> bool:
        return self.contabilizada == 1

    @property
    def total(self) -> int | None:
        return None if self.votes is None else sum(self.votes)


@dataclass(frozen=True)
class Candidatura:
    party: str
    name: str
    suplente: str | None
    group: int | None
    # 1-based line of the row in its file.
    line: int = 0


@dataclass(frozen=True)
class Election:
    code: str
    name: str
    corte_time: datetime
    # The preamble's figures as printed, in the PREP's order: under their canonical name
    # (``formats.SUMMARY``) when prepush recognises it, else under the PREP's own header.
    preamble: dict[str, str]
    header: tuple[str, ...]
    group_kind: str
    group_label: str
    vote_columns: tuple[str, ...]
    actas: tuple[Acta, ...]
    fuera_catalogo: int
    candidaturas: tuple[Candidatura, ...] = ()
    sources: tuple[SourceFile, ...] = field(default=())
    # Where the data came from, for messages: the results file, the candidaturas file (None
    # when it was not among the inputs), the header line and the last line with content.
    source_name: str = ""
    candidaturas_name: str | None = None
    header_line: int = 0
    last_line: int = 0
    # Each preamble key's header as the PREP printed it (``ACTAS_FUERA_DE_CATALOGO``), and the
    # line of the figures' names.
    preamble_headers: dict[str, str] = field(default_factory=dict)
    summary_line: int = 0
    # The corte's line as printed, its number, and whether it printed its UTC offset (when it
    # did not, the roster's election.timezone gave it).
    corte_printed: str = ""
    corte_line: int = 0
    corte_offset_printed: bool = True

    @property
    def expected_candidaturas_name(self) -> str:
        return candidaturas_name_for(self.source_name)


def candidaturas_name_for(filename: str) -> str:
    """``CAMP_GOB_2021.csv`` -> ``CAMP_GOB_CANDIDATURA_2021.csv``, the usual naming."""
    path = PurePosixPath(filename)
    tokens = path.stem.split("_")
    if len(tokens) > 1 and tokens[-1].isdigit():
        tokens.insert(len(tokens) - 1, "CANDIDATURA")
    else:
        tokens.append("CANDIDATURA")
    return "_".join(tokens) + (path.suffix or ".csv")

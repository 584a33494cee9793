"""Where the real PREP data lives: ``$PREP_DATA`` or the ``shared/`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def prep_data_dir() -> Path:
    if "PREP_DATA" in os.environ:
        return Path(os.environ["PREP_DATA"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "prep"
        if candidate.is_dir():
            return candidate
    pytest.skip("no se encontraron los datos del PREP (shared/data/prep o $PREP_DATA)")


def campeche_dir() -> Path:
    return prep_data_dir() / "campeche_2021"


def cortes_dir() -> Path:
    return campeche_dir() / "cortes"


CORTES = (
    "20210601_1852",
    "20210606_2240",
    "20210606_2320",
    "20210606_2340",
    "20210607_1320",
    "20210607_1440",
    "20210607_2000",
)


# --- the other PREPs of shared/data/prep (see its README) ----------------------------------

OAXACA_CORTES = ("20220605_2120", "20220605_2340", "20220606_0000", "20220606_1500")


def oaxaca_dir(corte: str) -> Path:
    return prep_data_dir() / "oaxaca_2022" / f"{corte}_PREP_GUB_OAX"


def quintana_roo_dir() -> Path:
    return prep_data_dir() / "quintana_roo_2019" / "20190603_0547_PREP_DIP_QROO"


def quintana_roo_zip() -> Path:
    return prep_data_dir() / "quintana_roo_2019" / "20190603_0547_PREP_DIP_QROO.zip"


def coahuila_dir() -> Path:
    return prep_data_dir() / "coahuila_2023"


def ine_docs_dir() -> Path:
    return prep_data_dir() / "ine_docs"

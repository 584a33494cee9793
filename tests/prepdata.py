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

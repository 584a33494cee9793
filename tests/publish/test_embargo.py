"""Embargo: nothing oficial before the start or after the end, to the second, in local time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prepush.exceptions import EmbargoError
from prepush.package import Kind, Manifest
from prepush.publish.embargo import embargo_violation, enforce_embargo
from prepush.settings import Election, Publication


def election(zone: str) -> Election:
    return Election(
        process="Prueba",
        timezone=zone,
        publication=Publication(
            start=datetime(2027, 6, 6, 20, 0, 0), end=datetime(2027, 6, 7, 20, 0, 0)
        ),
    )


def manifest(kind: Kind) -> Manifest:
    return Manifest(
        corte="20270606_2000",
        corte_time=datetime(2027, 6, 6, 20, tzinfo=UTC),
        kind=kind,
        mode="prepush",
        process="Prueba",
        entry_files=(),
        files=(),
    )


# 20:00 local is 02:00 UTC in Mexico City (UTC-6, no DST since 2022) and 03:00 UTC in
# Mazatlán (UTC-7): the same wall-clock window is a different instant in each zone.
@pytest.mark.parametrize(
    ("zone", "start_utc"),
    [
        ("America/Mexico_City", datetime(2027, 6, 7, 2, 0, 0, tzinfo=UTC)),
        ("America/Mazatlan", datetime(2027, 6, 7, 3, 0, 0, tzinfo=UTC)),
    ],
)
def test_window_boundaries_to_the_second(zone: str, start_utc: datetime) -> None:
    e = election(zone)
    oficial = manifest("oficial")
    second = timedelta(seconds=1)
    end_utc = start_utc + timedelta(days=1)
    assert embargo_violation(oficial, e, start_utc - second) is not None
    assert embargo_violation(oficial, e, start_utc) is None
    assert embargo_violation(oficial, e, end_utc) is None
    assert embargo_violation(oficial, e, end_utc + second) is not None


def test_message_names_the_local_start_and_the_way_out() -> None:
    e = election("America/Mazatlan")
    early = datetime(2027, 6, 7, 2, 59, 59, tzinfo=UTC)
    with pytest.raises(EmbargoError) as caught:
        enforce_embargo(manifest("oficial"), e, early, None)
    text = str(caught.value)
    assert "06/06/2027 20:00:00" in text
    assert "19:59:59" in text
    assert "--override-embargo" in text


def test_simulacro_is_exempt() -> None:
    e = election("America/Mexico_City")
    long_before = datetime(2027, 5, 1, tzinfo=UTC)
    assert embargo_violation(manifest("simulacro"), e, long_before) is None


def test_override_needs_a_reason_and_returns_the_violation() -> None:
    e = election("America/Mexico_City")
    early = datetime(2027, 6, 6, 12, tzinfo=UTC)
    with pytest.raises(EmbargoError):
        enforce_embargo(manifest("oficial"), e, early, "   ")
    violation = enforce_embargo(manifest("oficial"), e, early, "prueba autorizada")
    assert violation is not None

"""Nothing ``oficial`` is published outside the official window.

The window is in the election's local time (zoneinfo, so DST changes are handled); the
comparison is between aware instants. Simulacro packages are exempt. The only way around it
is an explicit override with the operator's reason, which the ledger records.
"""

from __future__ import annotations

from datetime import datetime

from prepush.exceptions import EmbargoError
from prepush.package import Manifest
from prepush.settings import Election


def embargo_violation(manifest: Manifest, election: Election, now: datetime) -> str | None:
    """Why publishing ``manifest`` at ``now`` breaks the embargo, or None when it may go."""
    if manifest.kind == "simulacro":
        return None
    start, end = election.window()
    local = now.astimezone(election.zone)
    if now < start:
        return (
            f"El corte {manifest.corte} es oficial y la publicación empieza el"
            f" {_show(start)}; ahora son las {_show(local)} ({election.timezone})."
        )
    if now > end:
        return (
            f"El corte {manifest.corte} es oficial y la publicación terminó el {_show(end)};"
            f" ahora son las {_show(local)} ({election.timezone})."
        )
    return None


def enforce_embargo(
    manifest: Manifest, election: Election, now: datetime, override_reason: str | None
) -> str | None:
    """Raise unless allowed; returns the violation when an override lets it through."""
    violation = embargo_violation(manifest, election, now)
    if violation is None:
        return None
    if override_reason is None or not override_reason.strip():
        raise EmbargoError(
            f"{violation} No se publicó nada. Si de verdad debe publicarse, use"
            ' --override-embargo "MOTIVO"; el motivo queda en la bitácora. Para ensayos,'
            " construya el paquete con --simulacro."
        )
    return violation


def _show(moment: datetime) -> str:
    return moment.strftime("%d/%m/%Y %H:%M:%S %Z")

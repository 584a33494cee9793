"""What a publish decides before any difusor is contacted: refusals of the whole run.

Kept apart from the delivery loop (publisher.py) on purpose: these are the operator's slips
that must never reach the public sites, answered with exit 2 before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from prepush.exceptions import ConfigError
from prepush.ledger import Ledger
from prepush.settings import Difusor


class GoingBackError(ConfigError):
    """``publish`` of a corte older than one a difusor serves: only ``rollback`` goes back."""


def refuse_going_back(ledger: Ledger, difusores: Sequence[Difusor], corte: str) -> None:
    """An older corte than the one served goes out only through ``rollback``, which holds it
    there (a publish would not: the timer would flip every site forward again)."""
    ahead: dict[str, list[str]] = {}
    for difusor in difusores:
        if ledger.active_suspension(difusor.name) is not None:
            continue  # nothing is sent to it
        serving = ledger.serving(difusor.name)
        if serving is not None and serving.corte > corte:
            ahead.setdefault(serving.corte, []).append(difusor.name)
    if not ahead:
        return
    newest = max(ahead)
    listing = "; ".join(f"{', '.join(names)} sirve(n) {c}" for c, names in sorted(ahead.items()))
    raise GoingBackError(
        f"No se publica el corte {corte}: es anterior al que ya se sirve ({listing})."
        f" Publicarlo regresaría esos sitios a {corte} sin retenerlos ahí, y el siguiente"
        f" publish (o el temporizador) los volvería a adelantar. Para mostrar un corte anterior"
        f" use 'prepush rollback --to {corte}' (queda retenido hasta 'prepush resume-latest');"
        f" para publicar el más reciente ({newest} o uno nuevo), 'prepush publish' sin CORTE."
        " No se escribió nada en ningún difusor."
    )

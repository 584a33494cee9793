"""Ctrl-C during a publish or a rollback: what each difusor's public sees at that moment.

Kept apart from the delivery loop (publisher.py): the run's events pass through
:class:`SeenByThePublic` on their way to the view, which notes each difusor whose last entry
file (``json/main.json``) was replaced; when the run is cancelled, that is what the ledger
records and the operator is told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from prepush.ledger import Ledger
from prepush.package import Package
from prepush.publish.protocol_types import Event, EventSink
from prepush.settings import Difusor


class SeenByThePublic:
    """The run's events, passed on, watching which difusores' public sites changed to the
    corte (their last entry file replaced), to say so if the run is interrupted."""

    def __init__(
        self,
        events: EventSink,
        package: Package,
        difusores: Sequence[Difusor],
        ledger: Ledger,
    ) -> None:
        self.events = events
        self.corte = package.corte
        self.last_entry = f"flip:{package.manifest.entry_files[-1]}"
        self.before = {d.name: ledger.serving(d.name) for d in difusores}
        # When each difusor's public site changed to the corte, as this run saw it.
        self.flipped: dict[str, datetime] = {}
        self.current: set[str] = set()

    def __call__(self, event: Event) -> None:
        if event.stage == "step" and event.detail == self.last_entry:
            self.flipped.setdefault(event.difusor, datetime.now(UTC))
        elif event.stage in ("delivered", "up_to_date"):
            self.current.add(event.difusor)
        self.events(event)

    def serving_now(self) -> dict[str, str]:
        """What each difusor's public sees, in a sentence."""
        said = {}
        for name, before in self.before.items():
            if name in self.flipped or name in self.current:
                said[name] = f"el corte {self.corte} (ya lo recibió)"
            elif before is not None:
                said[name] = f"sigue en el corte {before.corte} completo; el {self.corte} no llegó"
            else:
                said[name] = f"sin corte publicado aún; el {self.corte} no llegó"
        return said


async def unwound(difusores: Sequence[Difusor], timeout: float) -> None:
    """Give the difusores' cancelled tasks (named after them) a moment to unwind before the
    ledger is closed under them."""
    names = {d.name for d in difusores}
    tasks = [t for t in asyncio.all_tasks() if t.get_name() in names and not t.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)

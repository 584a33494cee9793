"""One delivery to one difusor, whatever its direction (publish or pull): the run around the
protocol's attempts.

The protocol (:mod:`prepush.publish.protocol`) brings one difusor to one corte in one
attempt. This module is what both ``publish`` and ``pull`` wrap around it, written once:

1. **Deadline.** The attempts run in a task of their own; at the deadline it is cancelled
   (the attempt aborts its connection and waits on nothing) and given a few seconds to
   unwind. *No difusor outlives its corte.*
2. **Retries.** A transient failure (the caller says which classes) is retried with
   exponential backoff and jitter within the deadline; any other ends the delivery.
3. **Corte switch.** Before an attempt the caller may offer a newer corte; the delivery takes
   it only if no attempt has flipped its corte yet (:func:`switch_corte`). *A delivery names
   the corte the public was shown, never one that was only tried after it.*
4. **Outcome.** ``delivered`` exactly when the flip of the delivery's corte happened (its
   ``flip_at``), whatever failed after it; ``failed`` otherwise (:func:`conclude`).
5. **Messages true to it.** A failure before the flip says the site stays on the previous
   corte; one after it says the corte is served and what is left (:func:`said_after`).

Nothing here knows a transport, the ledger or the protocol: the callers hand in what
changes (the attempt, which failures retry, what to say between attempts).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from prepush.exceptions import DeadlineError, DifusorError

# After the deadline, the attempt (already aborted) gets this long to unwind.
UNWIND_SECONDS = 5.0
# The message an attempt's cancellation carries when the operator interrupted the run (any
# other cancellation of an attempt is its deadline).
INTERRUPTED = "interrumpido por el operador"


Outcome = Literal[
    "delivered", "up_to_date", "failed", "skipped_suspended", "skipped_held", "dry_run"
]


class Flight(Protocol):
    """What the runner reads and decides of a delivery (``protocol_types.Delivery`` is one)."""

    difusor: str
    corte: str
    outcome: Outcome
    flip_at: datetime | None
    flip_sent_at: datetime | None
    error_class: str | None
    error_message: str | None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``first``, doubling, at most ``most`` seconds."""

    first: float = 0.25
    most: float = 4.0
    jitter: float = 0.5

    def wait(self, retry: int) -> float:
        base: float = min(self.most, self.first * 2.0 ** max(0, retry - 1))
        return base + random.uniform(0, self.jitter)


@dataclass(frozen=True)
class Retry:
    """Which failures are worth another attempt, and how long to wait before it."""

    transient: tuple[type[BaseException], ...]
    backoff: Backoff = Backoff()
    # Retried at once, without waiting (the origin moved on to another corte).
    at_once: tuple[type[BaseException], ...] = ()


# The attempt number (from 1) -> one attempt.
Attempt = Callable[[int], Awaitable[None]]
# (attempt number, its failure, seconds until the next) -> told before waiting.
OnRetry = Callable[[int, BaseException, float], None]


class DeliveryRunner:
    """Attempts of one delivery until one succeeds, a failure is final, or the deadline."""

    def __init__(
        self,
        deadline_s: float,
        retry: Retry,
        *,
        on_retry: OnRetry = lambda _n, _exc, _wait: None,
        silence: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        where: str = "su sitio",
        stays: Callable[[], str] | None = None,
    ) -> None:
        """``stays``: what the site keeps showing while the corte is not flipped, when
        "the previous corte" would not be true (a destination with nothing published yet)."""
        self.deadline_s = deadline_s
        self.retry = retry
        self.on_retry = on_retry
        self.silence = silence
        self.clock = clock
        self.name = name
        self.where = where
        self.stays = stays
        self.attempts = 0

    async def run(self, attempt: Attempt, flight: Callable[[], Flight | None]) -> None:
        """Raises the final failure; at the deadline, a :class:`DeadlineError` true to
        whether the corte was flipped (said by :func:`deadline_error`). ``flight`` is the
        delivery as it stands (None while its corte is not known yet: a pull's first
        requests)."""
        task = asyncio.create_task(self._attempts(attempt))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.deadline_s)
        except asyncio.CancelledError:
            # Ctrl-C: cancelling a wait leaves its task running, and the attempt would go on
            # (even flip) after the caller told what each site shows and closed the ledger.
            task.cancel(INTERRUPTED)
            await asyncio.wait({task}, timeout=UNWIND_SECONDS)
            raise
        if task in done:
            task.result()
            return
        silence = self.silence()
        task.cancel()
        await asyncio.wait({task}, timeout=UNWIND_SECONDS)
        stays = self.stays() if self.stays is not None else None
        raise deadline_error(
            flight(), self.deadline_s, silence, name=self.name, where=self.where, stays=stays
        )

    async def _attempts(self, attempt: Attempt) -> None:
        started = self.clock()
        while True:
            self.attempts += 1
            try:
                await attempt(self.attempts)
                return
            except self.retry.transient as exc:
                wait = 0.0 if isinstance(exc, self.retry.at_once) else self._wait()
                if self.clock() - started + wait >= self.deadline_s:
                    raise
                self.on_retry(self.attempts, exc, wait)
                if wait:
                    await asyncio.sleep(wait)

    def _wait(self) -> float:
        return self.retry.backoff.wait(self.attempts)


def switch_corte(flight: Flight, corte: str) -> bool:
    """Move the delivery to ``corte`` for its next attempt: only while no attempt has sent
    the flip of the corte it names (after it the public may see that corte, and the delivery
    must end on it: finished, or delivered with its error)."""
    if corte == flight.corte or flight.flip_at is not None or flight.flip_sent_at is not None:
        return False
    flight.corte = corte
    return True


def conclude(flight: Flight, error: DifusorError | None) -> None:
    """The outcome: ``delivered`` exactly when its corte was flipped; the error, if any, said
    as it is after (or before) the flip."""
    if error is None:
        return
    flight.outcome = "delivered" if flight.flip_at is not None else "failed"
    flight.error_class = type(error).__name__
    # A deadline's message is made true to the flip where it is made (deadline_error).
    deadline = isinstance(error, DeadlineError)
    flight.error_message = error.message if deadline else said_after(flight, error.message)


# Sentences a transport says when it fails before any flip (that the site still shows the
# previous corte): false once the corte was flipped.
_BEFORE_THE_FLIP = re.compile(
    r"[^.]*(?:corte anterior|último corte completo|sitio sigue)[^.]*\.\s*", re.IGNORECASE
)


def said_after(flight: Flight, message: str) -> str:
    """``message`` as true as it is: before the flip, as it was; after it, saying first that
    the corte is served, without any claim that the site is still on the previous one."""
    if flight.flip_at is None:
        return message
    rest = _without_before_the_flip(message) or "sin más detalle."
    return (
        f"El corte {flight.corte} ya se publicó (json/main.json cambió a las"
        f" {flight.flip_at:%H:%M:%S} UTC) y el sitio lo muestra completo; falló después: {rest}"
        " La siguiente publicación termina lo que falta."
    )


def _without_before_the_flip(message: str) -> str:
    return _BEFORE_THE_FLIP.sub("", message).strip()


def deadline_error(
    flight: Flight | None,
    deadline_s: float,
    silence: float | None,
    *,
    name: str = "",
    where: str = "su sitio",
    stays: str | None = None,
) -> DeadlineError:
    """The deadline's failure, said as it is: before the flip the site (``where``) stays on
    the previous corte (or what ``stays`` says it keeps showing: a destination with nothing
    published yet); after it the corte is served and what follows the flip is left."""
    why = ""
    if silence is not None and silence >= 1:
        why = (
            f" El servidor estaba sin respuesta desde hacía {silence:.0f} s; se cortó la conexión."
        )
    last = flight.error_message if flight is not None else None
    flipped = flight is not None and flight.flip_at is not None
    if last and flipped:
        last = _without_before_the_flip(last)
    tail = f" Último error: {last}" if last else ""
    if flight is not None and flipped:
        message = (
            f"No terminó dentro del plazo de {deadline_s:g} s, después de publicar el corte"
            f" {flight.corte}: json/main.json ya cambió y el sitio lo muestra completo; quedó"
            f" pendiente lo que sigue al cambio (invalidación, estado, limpieza), que la"
            f" siguiente publicación termina.{why}{tail}"
        )
    else:
        kept = stays or f"{where} sigue en el corte anterior completo"
        message = f"No terminó dentro del plazo de {deadline_s:g} s; {kept}.{why}{tail}"
    return DeadlineError(flight.difusor if flight is not None else name, message)

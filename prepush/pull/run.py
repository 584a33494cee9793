"""A pull run: one pass (``prepush pull``) or pass after pass (``prepush pull --watch``),
under the working directory's lock (two pulls never run at once in one directory) and
recorded in the ledger as a run. The pass itself is :mod:`prepush.pull.puller`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prepush.ledger import Ledger
from prepush.publish.protocol_types import Event, LockOwner
from prepush.publish.runlock import RunLock
from prepush.pull.config import PullSettings, describe
from prepush.pull.puller import PassResult, Puller

LOCK_FILE = ".prepush-pull.lock"


def _run_status(result: PassResult) -> str:
    return {
        "delivered": "ok",
        "up_to_date": "ok",
        "unchanged": "nothing",
        "nothing": "nothing",
        "refused": "refused",
        "failed": "failed",
    }[result.outcome]


def pull(settings: PullSettings, events: Callable[[Event], None] | None = None) -> PassResult:
    """One pass, under the local lock, recorded in the ledger."""

    async def once() -> PassResult:
        with RunLock(settings.workdir / LOCK_FILE, 0), Ledger(settings.ledger_path) as ledger:
            ledger.mark_interrupted()
            owner_id = LockOwner.new_id()
            run_id = ledger.start_run("pull", None, {**describe(settings), "lock_owner": owner_id})
            owner = LockOwner(owner_id, run_id, workdir=str(settings.workdir))
            puller = Puller(settings, ledger, run_id, owner, events)
            try:
                result = await puller.run_pass()
            finally:
                await puller.close()
            ledger.finish_run(run_id, _run_status(result), note=result.message or None)
            return result

    return asyncio.run(once())


def watch(
    settings: PullSettings,
    on_result: Callable[[PassResult], None],
    events: Callable[[Event], None] | None = None,
    *,
    passes: int | None = None,
) -> None:
    """Pass after pass, one every poll interval, until interrupted (or ``passes`` passes)."""

    async def loop() -> None:
        with RunLock(settings.workdir / LOCK_FILE, 0), Ledger(settings.ledger_path) as ledger:
            ledger.mark_interrupted()
            owner_id = LockOwner.new_id()
            run_id = ledger.start_run(
                "pull-watch", None, {**describe(settings), "lock_owner": owner_id}
            )
            owner = LockOwner(owner_id, run_id, workdir=str(settings.workdir))
            puller = Puller(settings, ledger, run_id, owner, events)
            done = 0
            try:
                while passes is None or done < passes:
                    started = time.monotonic()
                    on_result(await puller.run_pass())
                    done += 1
                    left = settings.interval - (time.monotonic() - started)
                    if left > 0 and (passes is None or done < passes):
                        await asyncio.sleep(left)
            finally:
                await puller.close()
                ledger.finish_run(run_id, "ok")

    asyncio.run(loop())

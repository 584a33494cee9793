"""Publish the newest corte and kill this process (SIGKILL) at one step of the protocol.

    python -m tests.support.crash_driver WORKDIR STEP [DIFUSOR]

STEP is a step name the protocol announces (``lock``, ``upload``, ``flip:json/main.json``,
...) or ``mid-upload`` (half the corte's files sent), of DIFUSOR if one is named (it may be
served by a worker process: the step reaches this one as an event). Exits 3 if the step
never came.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from prepush.publish.protocol_types import Event
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import load_settings


def reached(event: Event, step: str) -> bool:
    if step == "mid-upload":
        return (
            event.stage == "uploading"
            and event.files_total > 0
            and event.files_done * 2 >= event.files_total
        )
    return event.stage == "step" and event.detail == step


def main() -> int:
    workdir, step = Path(sys.argv[1]), sys.argv[2]
    only = sys.argv[3] if len(sys.argv) > 3 else None
    settings = load_settings(workdir)

    def kill_at(event: Event) -> None:
        if reached(event, step) and only in (None, event.difusor):
            os.kill(os.getpid(), signal.SIGKILL)

    publish(PublishRequest(settings, settings.roster.difusores), kill_at)
    return 3


if __name__ == "__main__":
    sys.exit(main())

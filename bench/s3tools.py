"""What the two S3 benchmarks (``s3.py``: publishing to buckets; ``pull.py``: difusores
downloading from one) share: the tools prepush is measured against, their credentials for the
local endpoint, and the medians of one measure."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from prepush.sim.s3local import KEY_ID, SECRET
from tools import Sample

AWS = "/usr/bin/aws"
RCLONE = "/usr/bin/rclone"
TOOLS = ("prepush", "prepush-watch", "aws", "rclone")
# prepush reads the endpoint's keys from these (the roster names them); aws and rclone from
# AWS_*, as they would on a difusor's machine.
KEY_ENV, SECRET_ENV = "BENCH_S3_LLAVE", "BENCH_S3_SECRETO"
TRANSFERS = 32


def credentials_for_every_tool() -> None:
    """Stop unless aws and rclone are installed; give every tool the local endpoint's keys."""
    for binary in (AWS, RCLONE):
        if not Path(binary).exists():
            raise SystemExit(f"falta {binary}: make bench instala awscli y rclone (Debian)")
    os.environ.update({KEY_ENV: KEY_ID, SECRET_ENV: SECRET})
    os.environ.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"


@dataclass
class Timed:
    """The samples of one tool (one push, for s3.py) and their medians."""

    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None

    @property
    def wall_s(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def cpu_s(self) -> float:
        return statistics.median(s.cpu_s for s in self.samples)

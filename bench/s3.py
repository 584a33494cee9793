"""Benchmark of S3 difusores: prepush against ``aws s3 sync`` and rclone's S3 backend.

    .venv/bin/python bench/s3.py [--dataset large] [--buckets 10] [--repeat 3]

Every tool pushes the same two cortes of the dataset (the full first corte, then the next
one) to N buckets on one local S3 endpoint (moto's server mode in a process of its own,
``prepush.sim.s3local``), the tools in turns, each push timed with ``/usr/bin/time -v``:

- ``prepush publish`` (one command per corte) and ``prepush publish --watch`` (one client
  per bucket kept between cortes), each bucket a ``transport: s3`` difusor;
- ``aws s3 sync`` (Debian's awscli), one process per bucket, all at once;
- ``rclone copy`` to its S3 backend, one process per bucket, all at once, with
  ``--checksum`` (it compares the MD5 its listing gives, no HEAD per object: its best case)
  and ``--transfers 32`` (prepush's files in flight).

The trees the other tools push are the packages without ``.prepush/``; a file of the next
corte equal to the previous corte's keeps the older time, a changed one gets the time it
changed (after the first push), as on the night: ``aws s3 sync``'s size-and-time check
skips exactly the unchanged files. After every push every bucket is listed and must hold
every file of the corte with its MD5 (or the benchmark stops). Results go to
bench/results/s3-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml

import datasets
import tools
from datasets import Dataset
from prepush.sim.s3local import KEY_ID, SECRET, LocalS3
from s3tools import (
    AWS,
    KEY_ENV,
    RCLONE,
    SECRET_ENV,
    TOOLS,
    TRANSFERS,
    Timed,
    credentials_for_every_tool,
)
from tools import PushFailed, Sample

WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "results"


@dataclass
class Measure(Timed):
    push: str = ""
    tool: str = ""


class Buckets:
    """N fresh buckets per push pair, dropped after it (moto keeps objects in memory)."""

    def __init__(self, local: LocalS3, count: int) -> None:
        self.local = local
        self.count = count
        self.round = 0
        self.names: list[str] = []

    def fresh(self) -> list[str]:
        self.drop()
        self.round += 1
        self.names = [f"banco-{self.round:03d}-{i:02d}" for i in range(self.count)]
        for name in self.names:
            self.local.make_bucket(name)
        return self.names

    def drop(self) -> None:
        s3 = self.local.client()
        for name in self.names:
            keys = [
                {"Key": item["Key"]}
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name)
                for item in page.get("Contents", [])
            ]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=name, Delete={"Objects": keys[start : start + 1000]})
            s3.delete_bucket(Bucket=name)
        self.names = []

    def verify(self, tree: Path) -> None:
        """Every file of ``tree`` in every bucket, with its MD5 as ETag."""
        wanted = {
            p.relative_to(tree).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in tree.rglob("*")
            if p.is_file()
        }
        s3 = self.local.client()
        for name in self.names:
            held = {
                str(item["Key"]): str(item["ETag"]).strip('"')
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name)
                for item in page.get("Contents", [])
            }
            wrong = [p for p, digest in wanted.items() if held.get(p) != digest]
            if wrong:
                raise PushFailed(f"{name}: {len(wrong)} archivos faltan o difieren: {wrong[:3]}")


def trees(dataset: Dataset, base: Path) -> tuple[Path, Path]:
    """The two cortes as plain trees; every file an hour old, for now."""
    made = []
    for corte in dataset.cortes:
        target = base / corte
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(dataset.package(corte), target, ignore=shutil.ignore_patterns(".prepush"))
        made.append(target)
    return made[0], made[1]


def age_trees(first: Path, second: Path) -> None:
    """Before a pair: both trees older than the first push; the next corte's changed files
    are stamped when it is pushed (``touch_changed``)."""
    old = time.time() - 3600
    for tree in (first, second):
        for path in tree.rglob("*"):
            os.utime(path, (old, old))


def touch_changed(first: Path, second: Path) -> None:
    now = time.time()
    for path in second.rglob("*"):
        before = first / path.relative_to(second)
        if path.is_file() and not (before.is_file() and filecmp.cmp(path, before, False)):
            os.utime(path, (now, now))


def write_roster(dataset: Dataset, local: LocalS3, names: list[str]) -> None:
    roster_path = dataset.workdir / "difusores.yaml"
    roster = yaml.safe_load(roster_path.read_text())
    roster["publish"]["files_in_flight"] = TRANSFERS
    roster["difusores"] = [
        {
            "name": name,
            "transport": "s3",
            "url": local.site_url(name),
            "s3": {
                "bucket": name,
                "endpoint_url": local.endpoint,
                "access_key_id_env": KEY_ENV,
                "secret_access_key_env": SECRET_ENV,
            },
        }
        for name in names
    ]
    roster_path.write_text(yaml.safe_dump(roster, sort_keys=False))
    (dataset.workdir / "prepush.db").unlink(missing_ok=True)


def aws_push(tree: Path, local: LocalS3, names: list[str], work: Path, timeout: float) -> Sample:
    commands = [
        f"{AWS} s3 sync {tree} s3://{name}/ --endpoint-url {local.endpoint} --only-show-errors"
        for name in names
    ]
    return tools.timed(tools.parallel(commands), work, timeout)


def rclone_push(tree: Path, local: LocalS3, names: list[str], work: Path, timeout: float) -> Sample:
    commands = [
        # rclone refuses a CA bundle over plain HTTP; the endpoint is http://127.0.0.1.
        f"env -u AWS_CA_BUNDLE {RCLONE} copy {tree} :s3:{name} --s3-provider Other --s3-endpoint {local.endpoint}"
        f" --s3-access-key-id {KEY_ID} --s3-secret-access-key {SECRET} --s3-region us-east-1"
        f" --s3-force-path-style --checksum --fast-list --transfers {TRANSFERS}"
        " --config /dev/null"
        for name in names
    ]
    return tools.timed(tools.parallel(commands), work, timeout)


def run_pair(
    tool: str,
    dataset: Dataset,
    local: LocalS3,
    buckets: Buckets,
    pair: tuple[Measure, Measure],
    first: Path,
    second: Path,
    timeout: float,
) -> None:
    names = buckets.fresh()
    write_roster(dataset, local, names)
    age_trees(first, second)
    work = WORK / "s3-tiempos"
    work.mkdir(parents=True, exist_ok=True)
    watcher = tools.PrepushWatch(dataset, poll_s=0.1) if tool == "prepush-watch" else None
    if watcher is not None:
        watcher.start()
    try:
        for measure, corte, tree in zip(pair, dataset.cortes, (first, second), strict=True):
            if tree is second:
                touch_changed(first, second)
            try:
                if tool == "prepush":
                    sample = tools.prepush_once(dataset, corte, work, timeout)
                elif watcher is not None:
                    sample = watcher.push(corte, timeout)
                elif tool == "aws":
                    sample = aws_push(tree, local, names, work, timeout)
                else:
                    sample = rclone_push(tree, local, names, work, timeout)
                buckets.verify(tree)
            except PushFailed as exc:
                measure.failed = str(exc)
                print(f"     {measure.push}: {exc}", flush=True)
                return
            measure.samples.append(sample)
            print(f"     {tool} {measure.push}: {sample.wall_s:.2f} s", flush=True)
    finally:
        if watcher is not None:
            watcher.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="large", choices=datasets.NAMES)
    parser.add_argument("--buckets", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    chosen = [t for t in args.tools.split(",") if t]
    credentials_for_every_tool()
    datasets.compile_prepush()
    started = time.monotonic()
    print(f"Construyendo {args.dataset}...", flush=True)
    dataset = datasets.build(args.dataset, WORK / "s3-conjuntos")
    first, second = trees(dataset, WORK / "s3-arboles")
    measures = {
        (tool, push): Measure(push=push, tool=tool)
        for tool in chosen
        for push in ("completo", "siguiente")
    }
    with LocalS3(WORK / "s3-servidor", log=False) as local:
        buckets = Buckets(local, args.buckets)
        for repetition in range(args.repeat):
            order = chosen[repetition % len(chosen) :] + chosen[: repetition % len(chosen)]
            for tool in order:
                pair = (measures[(tool, "completo")], measures[(tool, "siguiente")])
                if pair[0].failed or pair[1].failed:
                    continue
                print(f"   {args.dataset}: {tool} (repetición {repetition + 1})", flush=True)
                run_pair(tool, dataset, local, buckets, pair, first, second, args.timeout)
        buckets.drop()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_results(stamp, args, list(measures.values()), time.monotonic() - started)
    return 0


def write_results(
    stamp: str,
    args: argparse.Namespace,
    measures: list[Measure],
    seconds: float,
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    by = {(m.tool, m.push): m for m in measures}
    data: dict[str, Any] = {
        "stamp": stamp,
        "dataset": args.dataset,
        "buckets": args.buckets,
        "repeat": args.repeat,
        "seconds": round(seconds),
        "measures": [{**asdict(m), "wall_s": m.wall_s if m.samples else None} for m in measures],
    }
    (RESULTS / f"s3-{stamp}.json").write_text(json.dumps(data, indent=2, default=str))
    lines = [
        f"# S3: {args.dataset} a {args.buckets} buckets (corrida {stamp})",
        "",
        f"Punto de acceso local: moto en modo servidor. Mediana de {args.repeat}; tiempos en"
        f" segundos; {round(seconds)} s en total.",
        "",
        "| envío | prepush | prepush --watch | aws s3 sync | rclone | mejor otra |"
        " prepush ÷ mejor | --watch ÷ mejor |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for push in ("completo", "siguiente"):
        walls = {
            tool: by[(tool, push)].wall_s
            for tool in TOOLS
            if (tool, push) in by and by[(tool, push)].samples and not by[(tool, push)].failed
        }
        others = {t: w for t, w in walls.items() if t in ("aws", "rclone")}
        best = min(others, key=lambda t: others[t]) if others else None

        def cell(tool: str, walls: dict[str, float] = walls) -> str:
            return f"{walls[tool]:.2f}" if tool in walls else "-"

        def ratio(tool: str, walls: dict[str, float] = walls, best: str | None = best) -> str:
            if best is None or tool not in walls:
                return "-"
            return f"{walls[tool] / walls[best]:.2f}"

        lines.append(
            f"| {push} | {cell('prepush')} | {cell('prepush-watch')} | {cell('aws')} |"
            f" {cell('rclone')} | {best or '-'} | {ratio('prepush')} | {ratio('prepush-watch')} |"
        )
    lines += ["", "| herramienta | envío | CPU s (mediana) | peticiones | bytes enviados |"]
    lines += ["|---|---|---:|---:|---:|"]
    for m in measures:
        if not m.samples:
            lines.append(f"| {m.tool} | {m.push} | falló: {m.failed} | | |")
            continue
        last = m.samples[-1]
        requests = "-" if last.requests is None else str(last.requests)
        sent = "-" if last.sent_bytes is None else f"{last.sent_bytes / 1e6:.2f} MB"
        lines.append(f"| {m.tool} | {m.push} | {m.cpu_s:.2f} | {requests} | {sent} |")
    (RESULTS / f"s3-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

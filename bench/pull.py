"""Benchmark of pull difusores: ``prepush pull`` against ``aws s3 sync`` and ``rclone sync``
downloading the next corte from the same origin bucket.

    .venv/bin/python bench/pull.py [--dataset large] [--difusores 4] [--repeat 3]

The institute publishes the dataset's first corte to an origin bucket (``origin: true``) on
one local S3 endpoint (moto's server mode in a process of its own, ``prepush.sim.s3local``).
Each tool brings N difusores' directories to that corte (not timed), then the institute
publishes the next corte, and each tool, in turns, brings its N directories to it, the N
processes at once, timed with ``/usr/bin/time -v``:

- ``prepush pull`` (one pass): signature against the pinned key, only the files its cache
  lacks downloaded, each checked by size and sha256, the package verified, then published
  to the directory with main.json last; retention cleaned.
- ``prepush pull --watch`` (a poll every 0.1 s, its process and connections kept between
  cortes, as on the night): the N processes are stopped (SIGSTOP) while the institute
  publishes the next corte, resumed (SIGCONT) when the clock starts, and timed until every
  directory's json/main.json names the next corte; CPU from /proc.
- ``aws s3 sync s3://origen/ DIR --delete --exclude '.prepush/*'`` (Debian's awscli): size
  and time (it set each file's time to its object's when it downloaded it).
- ``rclone sync :s3:origen DIR --checksum --fast-list --transfers 32 --exclude
  '.prepush/**'``: the MD5 of each object against the local file's.

Neither aws nor rclone checks a signature, and neither orders its writes (main.json may land
before the files it names). After every timed step, each directory must hold every file of
the next corte byte for byte (or the benchmark stops). Results go to
bench/results/pull-<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml

import datasets
import tools
from datasets import PREPUSH, Dataset
from prepush.package import Package
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
    tool: str = ""
    downloaded_bytes: list[int] = field(default_factory=list)


def publish(dataset: Dataset, local: LocalS3, bucket: str, corte: str) -> None:
    roster_path = dataset.workdir / "difusores.yaml"
    roster = yaml.safe_load(roster_path.read_text())
    roster["publish"]["files_in_flight"] = TRANSFERS
    roster["difusores"] = [
        {
            "name": "origen",
            "transport": "s3",
            "origin": True,
            "s3": {
                "bucket": bucket,
                "endpoint_url": local.endpoint,
                "access_key_id_env": KEY_ENV,
                "secret_access_key_env": SECRET_ENV,
            },
        }
    ]
    roster_path.write_text(yaml.safe_dump(roster, sort_keys=False))
    work = WORK / "pull-tiempos"
    work.mkdir(parents=True, exist_ok=True)
    tools.timed([PREPUSH, "-C", str(dataset.workdir), "publish", corte], work, 600)


def pull_config(dataset: Dataset, local: LocalS3, bucket: str, home: Path, site: Path) -> Path:
    home.mkdir(parents=True)
    public = home / "instituto.pub"
    shutil.copyfile(dataset.workdir / "claves" / "firma.pem.pub", public)
    config = {
        "difusor": home.name,
        "public_key": str(public),
        "origin": {
            "s3": {
                "bucket": bucket,
                "endpoint_url": local.endpoint,
                "access_key_id_env": KEY_ENV,
                "secret_access_key_env": SECRET_ENV,
            }
        },
        "destination": {"directory": str(site)},
        "files_in_flight": TRANSFERS,
        "deadline_seconds": 600,
        "interval_seconds": 0.1,
    }
    path = home / "pull.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Watchers:
    """N ``prepush pull --watch`` processes, one per difusor."""

    def __init__(self, configs: list[Path], sites: list[Path]) -> None:
        self.sites = sites
        self.processes = [
            subprocess.Popen(
                [PREPUSH, "pull", "--config", str(c), "--watch"],
                stdout=(c.parent / "watch.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for c in configs
        ]

    def wait_for(self, corte: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(served(site) == corte for site in self.sites):
            if time.monotonic() > deadline:
                raise PushFailed(f"prepush pull --watch no publicó {corte} en {timeout:g} s")
            if any(p.poll() is not None for p in self.processes):
                raise PushFailed("un prepush pull --watch terminó solo")
            time.sleep(0.005)

    def signal(self, number: int) -> None:
        for process in self.processes:
            process.send_signal(number)

    def timed(self, corte: str, timeout: float) -> Sample:
        cpu_before = sum(tools._proc_cpu(p.pid) for p in self.processes)
        started = time.perf_counter()
        self.signal(signal.SIGCONT)
        self.wait_for(corte, timeout)
        wall = time.perf_counter() - started
        cpu = sum(tools._proc_cpu(p.pid) for p in self.processes) - cpu_before
        rss = max(tools._proc_peak_rss_mb(p.pid) for p in self.processes)
        return Sample(wall, cpu, rss)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def served(site: Path) -> str | None:
    try:
        return str(json.loads((site / "json" / "main.json").read_bytes())["corte"])
    except (OSError, ValueError, KeyError):
        return None


def commands(
    tool: str, local: LocalS3, bucket: str, sites: list[Path], configs: list[Path]
) -> list[str]:
    if tool == "prepush":
        return [
            f"{PREPUSH} pull --config {config} --json > {config.parent / 'pasada.json'}"
            for config in configs
        ]
    if tool == "aws":
        return [
            f"{AWS} s3 sync s3://{bucket}/ {site} --endpoint-url {local.endpoint} --delete"
            " --exact-timestamps --exclude '.prepush/*' --only-show-errors"
            for site in sites
        ]
    return [
        # rclone refuses a CA bundle over plain HTTP; the endpoint is http://127.0.0.1.
        f"env -u AWS_CA_BUNDLE {RCLONE} sync :s3:{bucket} {site} --s3-provider Other"
        f" --s3-endpoint {local.endpoint} --s3-access-key-id {KEY_ID}"
        f" --s3-secret-access-key {SECRET} --s3-region us-east-1 --s3-force-path-style"
        f" --checksum --fast-list --transfers {TRANSFERS} --exclude '.prepush/**'"
        " --config /dev/null"
        for site in sites
    ]


def check(package: Package, sites: list[Path]) -> None:
    """Every file of the corte in every directory, byte for byte."""
    for site in sites:
        wrong = []
        for entry in package.manifest.files:
            target = site / entry.path
            if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != (
                entry.sha256
            ):
                wrong.append(entry.path)
        if wrong:
            raise PushFailed(f"{site}: {len(wrong)} archivos faltan o difieren: {wrong[:3]}")


def repetition(
    rep: int,
    order: list[str],
    dataset: Dataset,
    local: LocalS3,
    count: int,
    measures: dict[str, Measure],
    timeout: float,
) -> None:
    bucket = f"pull-origen-{rep:03d}"
    local.make_bucket(bucket)
    (dataset.workdir / "prepush.db").unlink(missing_ok=True)
    first, following = dataset.cortes
    publish(dataset, local, bucket, first)
    base = WORK / "pull-difusores"
    shutil.rmtree(base, ignore_errors=True)
    work = WORK / "pull-tiempos"
    layout: dict[str, tuple[list[Path], list[Path]]] = {}
    watchers: Watchers | None = None
    try:
        for tool in order:
            sites = [base / tool / f"sitio-{i:02d}" for i in range(count)]
            for site in sites:
                site.mkdir(parents=True)
            configs = (
                [
                    pull_config(dataset, local, bucket, base / tool / f"difusor-{i:02d}", site)
                    for i, site in enumerate(sites)
                ]
                if tool.startswith("prepush")
                else []
            )
            layout[tool] = (sites, configs)
            # Every directory at the first corte, as after the previous corte of the night.
            if tool == "prepush-watch":
                watchers = Watchers(configs, sites)
                watchers.wait_for(first, timeout)
                watchers.signal(signal.SIGSTOP)
            else:
                command = tools.parallel(commands(tool, local, bucket, sites, configs))
                tools.timed(command, work, timeout)
            check(Package.open(dataset.package(first)), sites)
        publish(dataset, local, bucket, following)
        package = Package.open(dataset.package(following))
        for tool in order:
            timed_step(tool, local, bucket, layout[tool], watchers, package, measures, rep, timeout)
    finally:
        if watchers is not None:
            watchers.stop()


def timed_step(
    tool: str,
    local: LocalS3,
    bucket: str,
    layout: tuple[list[Path], list[Path]],
    watchers: Watchers | None,
    package: Package,
    measures: dict[str, Measure],
    rep: int,
    timeout: float,
) -> None:
    following = package.corte
    work = WORK / "pull-tiempos"
    measure = measures[tool]
    if measure.failed:
        return
    sites, configs = layout
    try:
        if watchers is not None and tool == "prepush-watch":
            sample = watchers.timed(following, timeout)
        else:
            sample = tools.timed(
                tools.parallel(commands(tool, local, bucket, sites, configs)), work, timeout
            )
        check(package, sites)
    except PushFailed as exc:
        measure.failed = str(exc)
        print(f"     {tool}: {exc}", flush=True)
        return
    if tool == "prepush":
        passes = [json.loads((c.parent / "pasada.json").read_text()) for c in configs]
        if any(p["outcome"] != "delivered" or p["corte"] != following for p in passes):
            measure.failed = f"una pasada no entregó {following}: {passes}"
            return
        measure.downloaded_bytes.append(sum(int(p["bytes_downloaded"]) for p in passes))
        sample.requests = sum(int(p["requests"]) for p in passes)
    measure.samples.append(sample)
    print(f"     {tool} (repetición {rep + 1}): {sample.wall_s:.2f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="large", choices=datasets.NAMES)
    parser.add_argument("--difusores", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    chosen = [t for t in args.tools.split(",") if t]
    credentials_for_every_tool()
    datasets.compile_prepush()
    started = time.monotonic()
    print(f"Construyendo {args.dataset}...", flush=True)
    dataset = datasets.build(args.dataset, WORK / "pull-conjuntos")
    measures = {tool: Measure(tool=tool) for tool in chosen}
    with LocalS3(WORK / "pull-servidor", log=False) as local:
        for rep in range(args.repeat):
            order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
            print(f"   {args.dataset}: repetición {rep + 1} ({', '.join(order)})", flush=True)
            repetition(rep, order, dataset, local, args.difusores, measures, args.timeout)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    write_results(stamp, args, dataset, list(measures.values()), time.monotonic() - started)
    return 0


def write_results(
    stamp: str,
    args: argparse.Namespace,
    dataset: Dataset,
    measures: list[Measure],
    seconds: float,
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    first, following = (Package.open(dataset.package(c)) for c in dataset.cortes)
    known = {f.sha256 for f in first.manifest.files}
    new = [f for f in following.manifest.files if f.sha256 not in known]
    data: dict[str, Any] = {
        "stamp": stamp,
        "dataset": args.dataset,
        "difusores": args.difusores,
        "repeat": args.repeat,
        "seconds": round(seconds),
        "corte_files": len(following.manifest.files),
        "corte_bytes": following.manifest.total_bytes,
        "new_files": len(new),
        "new_bytes": sum(f.size for f in new),
        "measures": [{**asdict(m), "wall_s": m.wall_s if m.samples else None} for m in measures],
    }
    (RESULTS / f"pull-{stamp}.json").write_text(json.dumps(data, indent=2, default=str))
    walls = {m.tool: m.wall_s for m in measures if m.samples and not m.failed}
    others = {t: w for t, w in walls.items() if not t.startswith("prepush")}
    best = min(others, key=lambda t: others[t]) if others else None

    def cell(tool: str) -> str:
        return f"{walls[tool]:.2f}" if tool in walls else "-"

    def ratio(tool: str) -> str:
        if best is None or tool not in walls:
            return "-"
        return f"{walls[tool] / walls[best]:.2f}"

    lines = [
        f"# pull: el siguiente corte de {args.dataset} a {args.difusores} difusores"
        f" (corrida {stamp})",
        "",
        f"Origen: un bucket en moto (modo servidor). El corte: {data['corte_files']} archivos,"
        f" {data['corte_bytes'] / 1e6:.1f} MB; nuevos respecto del anterior: {len(new)}"
        f" archivos, {data['new_bytes'] / 1e6:.1f} MB. Mediana de {args.repeat}; tiempos en"
        f" segundos (los {args.difusores} procesos a la vez); {round(seconds)} s en total.",
        "",
        "| prepush pull | pull --watch | aws s3 sync | rclone sync | mejor otra |"
        " pull ÷ mejor | --watch ÷ mejor |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    lines.append(
        f"| {cell('prepush')} | {cell('prepush-watch')} | {cell('aws')} | {cell('rclone')} |"
        f" {best or '-'} | {ratio('prepush')} | {ratio('prepush-watch')} |"
    )
    lines += ["", "| herramienta | CPU s (mediana) | RSS máx. MB | descargado (prepush) |"]
    lines += ["|---|---:|---:|---:|"]
    for m in measures:
        if not m.samples:
            lines.append(f"| {m.tool} | falló: {m.failed} | | |")
            continue
        rss = max(s.peak_rss_mb for s in m.samples)
        got = f"{statistics.median(m.downloaded_bytes) / 1e6:.2f} MB" if m.downloaded_bytes else "-"
        lines.append(f"| {m.tool} | {m.cpu_s:.2f} | {rss:.0f} | {got} |")
    (RESULTS / f"pull-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

"""Benchmark: prepush against rsync, lftp and rclone, pushing the same cortes to real sshd.

    make bench                                   # everything, about half an hour
    .venv/bin/python bench/run.py --datasets campeche,large --tools prepush,rsync --repeat 3

Every tool pushes the same package trees to the same fleet of OpenSSH sshd difusores (web
roots on tmpfs): a first full corte, then the next corte. Two ways of running are measured:

- one command per corte, as a systemd timer or cron runs it (``prepush publish``, rsync,
  lftp, rclone): each push pays for starting up and for its SSH handshakes;
- kept connections, as a night-long service runs it (``prepush publish --watch``; rsync over
  an OpenSSH ControlMaster per difusor): the first corte opens the connections, the next
  corte reuses them.

All OpenSSH-based tools use the key exchange and cipher prepush negotiates
(curve25519-sha256, aes128-gcm), so the comparison is of the tools, not of the crypto.
Tools run in turns and every measurement is repeated (--repeat): the median is kept, since
the machine is shared and noisy. After every push every difusor is read back and must hold
the package byte for byte (or the benchmark stops), and whether json/main.json changed last
is recorded. Then: the per-byte limit of one OpenSSH sftp stream, difusores behind 50 Mbit/s
links (network namespaces and tc tbf), and 10, 50 and 100 difusores. Results go to
bench/results/<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncssh

import datasets
import report
import tools
from datasets import Dataset, write_roster
from fleet import Fleet, RsyncFleet
from tests.support.servers import Endpoint
from tools import PushFailed, Sample
from verify import changed_content, check_push, tree_size

WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "results"
ONE_SHOT = ("prepush", "rsync", "lftp", "rclone")
KEPT = ("prepush-watch", "rsync-cm", "prepush-rsync-watch")
ALL_TOOLS = ONE_SHOT + KEPT[:2]
# The rsync transport against plain rsync, to the same rsync daemons.
RSYNC_TOOLS = ("prepush-rsync", "prepush-rsync-watch", "rsync-a", "rsync-a-nodelay")


@dataclass
class Measure:
    dataset: str
    push: str  # "completo" | "siguiente"
    tool: str
    mode: str  # "una orden por corte" | "conexiones abiertas"
    difusores: int
    bytes: int
    files: int
    samples: list[Sample] = field(default_factory=list)
    main_json_last: bool = True
    failed: str | None = None

    def median(self, name: str) -> float:
        return statistics.median(getattr(s, name) for s in self.samples)

    @property
    def wall_s(self) -> float:
        return self.median("wall_s")

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        if self.samples:
            data |= {
                "wall_s": self.wall_s,
                "cpu_s": self.median("cpu_s"),
                "peak_rss_mb": max(s.peak_rss_mb for s in self.samples),
            }
        return data


def client_key() -> Path:
    path = WORK / "claves" / "bench.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        path.write_bytes(key.export_private_key("openssh"))
        path.chmod(0o600)
        Path(f"{path}.pub").write_bytes(key.export_public_key("openssh"))
    return path


def mode_of(tool: str) -> str:
    return "conexiones abiertas" if tool in KEPT else "una orden por corte"


# --- one dataset ----------------------------------------------------------------------------


class Runner:
    def __init__(self, fleet: Fleet | RsyncFleet, key: Path, args: argparse.Namespace) -> None:
        self.fleet = fleet
        self.key = key
        self.args = args
        self.rclone_transfers = args.rclone_transfers

    def run_dataset(self, dataset: Dataset, tools_: list[str], difusores: int) -> list[Measure]:
        endpoints = self.fleet.endpoints[:difusores]
        write_roster(dataset.workdir, endpoints)
        first, second = (dataset.package(c) for c in dataset.cortes)
        full = tree_size(first)
        changed = changed_content(first, second)
        measures = {
            (tool, push): Measure(dataset.name, push, tool, mode_of(tool), difusores, *size)
            for tool in tools_
            for push, size in (("completo", full), ("siguiente", changed))
        }
        for repetition in range(self.args.repeat):
            # Tools in turns, rotated, so a noisy minute does not always hit the same one.
            order = tools_[repetition % len(tools_) :] + tools_[: repetition % len(tools_)]
            for tool in order:
                pair = (measures[(tool, "completo")], measures[(tool, "siguiente")])
                if pair[0].failed or pair[1].failed:
                    continue
                self._push_pair(dataset, tool, endpoints, pair)
        return list(measures.values())

    def _push_pair(
        self,
        dataset: Dataset,
        tool: str,
        endpoints: list[Endpoint],
        pair: tuple[Measure, Measure],
    ) -> None:
        self.fleet.reset()
        (dataset.workdir / "prepush.db").unlink(missing_ok=True)
        print(f"   {dataset.name}: {tool}", flush=True)
        pushers = self._pushers(dataset, tool, endpoints)
        try:
            for measure, corte, push in zip(pair, dataset.cortes, pushers.pushes, strict=True):
                try:
                    sample = push(corte)
                except PushFailed as exc:
                    measure.failed = str(exc)
                    print(f"     {measure.push}: {exc}", flush=True)
                    return
                measure.samples.append(sample)
                try:
                    last = check_push(endpoints, dataset.package(corte))
                except RuntimeError as exc:
                    measure.failed = f"verificación: {exc}"
                    print(f"     {measure.push}: {exc}", flush=True)
                    return
                measure.main_json_last = measure.main_json_last and last
        finally:
            pushers.close()

    def _pushers(self, dataset: Dataset, tool: str, endpoints: list[Endpoint]) -> _Pushers:
        timeout = self.args.timeout
        work = WORK
        if tool in ("prepush", "prepush-rsync"):
            push = lambda c: tools.prepush_once(dataset, c, work, timeout)  # noqa: E731
            return _Pushers([push, push])
        if tool in ("rsync-a", "rsync-a-nodelay"):
            assert isinstance(self.fleet, RsyncFleet)
            urls = [self.fleet.url(e) for e in endpoints]
            nodelay = tool == "rsync-a-nodelay"

            def daemon(corte: str) -> Sample:
                return tools.rsync_daemon_once(
                    dataset.tree(corte), urls, self.fleet.password, work, timeout, nodelay=nodelay
                )

            return _Pushers([daemon, daemon])
        if tool in ("prepush-watch", "prepush-rsync-watch"):
            watcher = tools.PrepushWatch(dataset)
            watcher.start()
            push = lambda c: watcher.push(c, timeout)  # noqa: E731
            return _Pushers([push, push], watcher.stop)
        if tool == "rsync-cm":
            master = tools.RsyncMaster(endpoints, self.key, work)
            return _Pushers(
                [
                    lambda c: master.push(dataset.tree(c), timeout, first=True),
                    lambda c: master.push(dataset.tree(c), timeout, first=False),
                ],
                master.stop,
            )
        if tool == "rclone":

            def rclone(corte: str) -> Sample:
                return tools.rclone_once(
                    dataset.tree(corte), endpoints, self.key, work, timeout, self.rclone_transfers
                )

            return _Pushers([rclone, rclone])
        once = {"rsync": tools.rsync_once, "lftp": tools.lftp_once}[tool]
        push = lambda c: once(dataset.tree(c), endpoints, self.key, work, timeout)  # noqa: E731
        return _Pushers([push, push])

    def calibrate_rclone(self, dataset: Dataset) -> dict[int, float]:
        """rclone's best --transfers on the file-heavy tree: a full push with each."""
        endpoints = self.fleet.endpoints[: self.args.difusores]
        tried: dict[int, float] = {}
        for transfers in (4, 16, 64):
            self.fleet.reset()
            try:
                sample = tools.rclone_once(
                    dataset.tree(dataset.cortes[0]),
                    endpoints,
                    self.key,
                    WORK,
                    self.args.timeout,
                    transfers,
                )
            except PushFailed:
                continue
            tried[transfers] = sample.wall_s
            print(f"   rclone --transfers {transfers}: {sample.wall_s:.1f} s", flush=True)
        if tried:
            self.rclone_transfers = min(tried, key=lambda t: tried[t])
        return tried


@dataclass
class _Pushers:
    pushes: list[tools.Pusher]
    close: Callable[[], None] = lambda: None


# --- limits, scale, shaped links ----------------------------------------------------------


def per_byte_limit(fleet: Fleet, key: Path, size_mb: int) -> dict[str, float]:
    """One large file, one difusor: OpenSSH sftp against prepush (a --site package)."""
    blob = WORK / "limite" / "sitio" / "grande.bin"
    if not blob.exists() or blob.stat().st_size != size_mb << 20:
        blob.parent.mkdir(parents=True, exist_ok=True)
        with blob.open("wb") as stream:
            for _ in range(size_mb):
                stream.write(os.urandom(1 << 20))
    endpoint = fleet.endpoints[0]
    fleet.reset()
    sftp = tools.single_stream_sftp(endpoint, key, blob, WORK)
    workdir = WORK / "limite"
    (workdir / "paquetes").exists() and shutil.rmtree(workdir / "paquetes")
    write_roster(workdir, [endpoint])
    site = blob.parent
    (site / "json").mkdir(exist_ok=True)
    (site / "json" / "main.json").write_text('{"corte": "20270606_2000"}')
    (site / "index.html").write_text("<html></html>")
    datasets._build_site(workdir, site, "20270606_2000")
    fleet.reset()
    (workdir / "prepush.db").unlink(missing_ok=True)
    sample = tools.timed(
        [datasets.PREPUSH, "-C", str(workdir), "publish", "20270606_2000"], WORK, None
    )
    fleet.reset()
    mb = blob.stat().st_size / 1e6
    return {
        "mb": mb,
        "sftp_mb_s": sftp,
        "prepush_mb_s": mb / sample.wall_s,
        "prepush_wall_s": sample.wall_s,
        "prepush_transfer_mb_s": mb / _connected_to_flip(workdir),
    }


def _connected_to_flip(workdir: Path) -> float:
    """Seconds from the connection to the flip, as prepush's ledger measured them."""
    with contextlib.closing(sqlite3.connect(workdir / "prepush.db")) as db:
        connected, flipped = db.execute(
            "SELECT connected_at, flip_at FROM deliveries ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return (datetime.fromisoformat(flipped) - datetime.fromisoformat(connected)).total_seconds()


def scaling(fleet: Fleet, key: Path, dataset: Dataset, args: argparse.Namespace) -> list:
    """The bytes-heavy full push with the pusher on one core (taskset -c 0) and on all: what
    more cores buy prepush (its workers) and rsync (a process per difusor)."""
    endpoints = fleet.endpoints[: args.difusores]
    write_roster(dataset.workdir, endpoints)
    corte = dataset.cortes[0]
    rows = []
    for repetition in range(args.repeat):
        for tool in ("prepush", "rsync"):
            for pin in (None, "0"):
                fleet.reset()
                (dataset.workdir / "prepush.db").unlink(missing_ok=True)
                if tool == "prepush":
                    sample = tools.prepush_once(dataset, corte, WORK, args.timeout, pin=pin)
                else:
                    sample = tools.rsync_once(
                        dataset.tree(corte), endpoints, key, WORK, args.timeout, pin=pin
                    )
                check_push(endpoints, dataset.package(corte))
                rows.append(
                    {
                        "tool": tool,
                        "cpus": "0" if pin else f"0-{(os.cpu_count() or 1) - 1}",
                        "repetition": repetition,
                        "wall_s": sample.wall_s,
                        "cpu_s": sample.cpu_s,
                    }
                )
                print(f"   {tool} en CPU {rows[-1]['cpus']}: {sample.wall_s:.2f} s", flush=True)
    return rows


def profile(fleet: Fleet, dataset: Dataset, args: argparse.Namespace) -> dict[str, object]:
    """Where one process spends a full push of the bytes-heavy tree (cProfile, one process:
    workers=1, so the profile sees every difusor's packets)."""
    endpoints = fleet.endpoints[: args.difusores]
    write_roster(dataset.workdir, endpoints, workers=1)
    fleet.reset()
    (dataset.workdir / "prepush.db").unlink(missing_ok=True)
    output = WORK / "perfil.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(output), "-m", "prepush"]
    sample = tools.timed(
        [*command, "-C", str(dataset.workdir), "publish", dataset.cortes[0]], WORK, args.timeout
    )
    write_roster(dataset.workdir, endpoints)
    stats = pstats.Stats(str(output))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, _, tottime, cumtime, _ = entry
        where = f"{Path(filename).name}:{line}({function})" if line else function
        rows.append({"where": where, "calls": calls, "tottime": tottime, "cumtime": cumtime})
    rows.sort(key=lambda r: -float(r["tottime"]))
    return {"wall_s": sample.wall_s, "total_s": total, "top": rows[:20]}


def scale(fleet: Fleet, dataset: Dataset, counts: list[int], args: argparse.Namespace) -> list:
    rows = []
    for count in counts:
        endpoints = fleet.endpoints[:count]
        write_roster(dataset.workdir, endpoints)
        fleet.reset()
        (dataset.workdir / "prepush.db").unlink(missing_ok=True)
        full = tools.prepush_once(dataset, dataset.cortes[0], WORK, args.timeout)
        check_push(endpoints, dataset.package(dataset.cortes[0]))
        following = tools.prepush_once(dataset, dataset.cortes[1], WORK, args.timeout)
        check_push(endpoints, dataset.package(dataset.cortes[1]))
        fleet.reset()
        (dataset.workdir / "prepush.db").unlink(missing_ok=True)
        watcher = tools.PrepushWatch(dataset)
        watcher.start()
        try:
            watched = [watcher.push(c, args.timeout) for c in dataset.cortes]
        finally:
            watcher.stop()
        check_push(endpoints, dataset.package(dataset.cortes[1]))
        rows.append(
            {
                "difusores": count,
                "dataset": dataset.name,
                "completo_s": full.wall_s,
                "completo_cpu_s": full.cpu_s,
                "completo_rss_mb": full.peak_rss_mb,
                "completo_rss_total_mb": full.peak_rss_total_mb,
                "siguiente_s": following.wall_s,
                "watch_siguiente_s": watched[1].wall_s,
                "watch_rss_mb": watched[1].peak_rss_mb,
                "watch_rss_total_mb": watched[1].peak_rss_total_mb,
            }
        )
        print(
            f"   {count} difusores: {full.wall_s:.2f} s, {full.peak_rss_total_mb:.0f} MB en"
            f" total; --watch siguiente {watched[1].wall_s:.2f} s,"
            f" {watched[1].peak_rss_total_mb:.0f} MB en total",
            flush=True,
        )
    return rows


def shaped(
    key: Path, built: dict[str, Dataset], args: argparse.Namespace
) -> list[dict[str, object]]:
    """Difusores behind shaped links: publish time against bytes ÷ rate."""
    fleet = Fleet(args.difusores, key, rate_mbit=args.rate_mbit)
    fleet.start()
    rows: list[dict[str, object]] = []
    try:
        for name in ("campeche", "large"):
            if name in built:
                rows += _shaped_dataset(built[name], fleet, key, args)
    finally:
        fleet.stop()
        for dataset in built.values():
            write_roster(dataset.workdir, [])
    return rows


def _shaped_dataset(
    dataset: Dataset, fleet: Fleet, key: Path, args: argparse.Namespace
) -> list[dict[str, object]]:
    first, second = (dataset.package(c) for c in dataset.cortes)
    sizes = {"completo": tree_size(first)[0], "siguiente": changed_content(first, second)[0]}
    endpoints = fleet.endpoints
    rows: list[dict[str, object]] = []
    variants = (
        ("prepush", False, False),
        ("prepush --watch", False, True),
        ("prepush --watch + compresión SSH", True, True),
        ("rsync", False, False),
        ("rsync -z", True, False),
    )
    for label, compression, kept in variants:
        fleet.reset()
        (dataset.workdir / "prepush.db").unlink(missing_ok=True)
        write_roster(dataset.workdir, endpoints, compression=compression)
        watcher = tools.PrepushWatch(dataset) if kept else None
        if watcher:
            watcher.start()
        try:
            for corte, kind in zip(dataset.cortes, ("completo", "siguiente"), strict=True):
                if watcher:
                    sample = watcher.push(corte, args.timeout)
                elif label.startswith("rsync"):
                    sample = tools.rsync_once(
                        dataset.tree(corte),
                        endpoints,
                        key,
                        WORK,
                        args.timeout,
                        compress=compression,
                    )
                else:
                    sample = tools.prepush_once(dataset, corte, WORK, args.timeout)
                check_push(endpoints, dataset.package(corte))
                bound = sizes[kind] * 8 / (args.rate_mbit * 1e6)
                rows.append(
                    {
                        "dataset": dataset.name,
                        "push": kind,
                        "tool": label,
                        "rate_mbit": args.rate_mbit,
                        "bytes": sizes[kind],
                        "wall_s": sample.wall_s,
                        "bound_s": bound,
                        "ratio": sample.wall_s / bound if bound else None,
                    }
                )
                print(
                    f"   {dataset.name} {kind} {label}: {sample.wall_s:.2f} s (límite {bound:.2f} s)",
                    flush=True,
                )
        finally:
            if watcher:
                watcher.stop()
    return rows


# --- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--difusores", type=int, default=10)
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--tools", default=",".join(ALL_TOOLS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--repeat-large-site",
        type=int,
        default=1,
        help="repeticiones para site-large (20,000 archivos)",
    )
    parser.add_argument("--scale", default="10,50,100")
    parser.add_argument("--rate-mbit", type=float, default=50.0)
    parser.add_argument("--no-shaped", action="store_true")
    parser.add_argument("--no-limit", action="store_true")
    parser.add_argument("--no-scaling", action="store_true", help="sin la corrida en un CPU")
    parser.add_argument("--no-profile", action="store_true", help="sin el perfil de cProfile")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="publish.workers de prepush (por omisión, el del padrón: uno por núcleo)",
    )
    parser.add_argument("--limit-mb", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=300.0, help="plazo por envío (s)")
    parser.add_argument("--rclone-transfers", type=int, default=16)
    parser.add_argument(
        "--rsync-datasets",
        default="campeche,large,site-medium",
        help="conjuntos para el transporte rsync contra rsync -a a los mismos demonios"
        " ('' para omitirlo)",
    )
    parser.add_argument(
        "--calibrate-rclone",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="probar --transfers 4, 16 y 64 con site-medium y usar el mejor",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("El benchmark levanta sshd, monta tmpfs y crea netns: ejecútelo como root.")
        return 2
    if args.workers is not None:
        datasets.PUBLISH_OVERRIDES["workers"] = args.workers
    datasets.compile_prepush()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    key = client_key()
    wanted = [t for t in args.tools.split(",") if t]
    missing = [
        t for t in wanted if t.split("-")[0] != "prepush" and not shutil.which(t.split("-")[0])
    ]
    tools_ = [t for t in wanted if t not in missing]
    names = [n for n in args.datasets.split(",") if n]
    started = time.monotonic()
    print(f"== construyendo {', '.join(names)}", flush=True)
    built = {name: datasets.build(name, WORK / "conjuntos") for name in _build_order(names)}
    counts = [int(n) for n in args.scale.split(",") if n]
    fleet = Fleet(max([args.difusores, *counts]), key)
    fleet.start()
    document: dict[str, object] = {
        "when": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "difusores": args.difusores,
        "repeat": args.repeat,
        "workers": args.workers,
        "tools_missing": missing,
        "cpu": _cpu_model(),
    }
    try:
        runner = Runner(fleet, key, args)
        if args.calibrate_rclone and "rclone" in tools_ and "site-medium" in built:
            print("== rclone: --transfers", flush=True)
            document["rclone_transfers_tried"] = runner.calibrate_rclone(built["site-medium"])
        document["rclone_transfers"] = runner.rclone_transfers
        measures: list[Measure] = []
        for name in names if tools_ else []:
            print(f"== {name}: {', '.join(tools_)} con {args.difusores} difusores", flush=True)
            if name == "site-large":
                runner.args = argparse.Namespace(**{**vars(args), "repeat": args.repeat_large_site})
            measures += runner.run_dataset(built[name], tools_, args.difusores)
            runner.args = args
            document["measures"] = [m.as_json() for m in measures]
            save(document)
        _beyond_the_table(fleet, key, built, counts, args, document)
    finally:
        fleet.stop()
    rsync_names = [n for n in args.rsync_datasets.split(",") if n in built]
    if rsync_names:
        document["rsync_measures"] = rsync_daemons(key, built, rsync_names, args)
        save(document)
    if not args.no_shaped:
        print(f"== enlaces de {args.rate_mbit:g} Mbit/s (netns + tbf)", flush=True)
        document["shaped"] = shaped(key, built, args)
    document["minutes"] = (time.monotonic() - started) / 60
    print(save(document))
    return 0


def rsync_daemons(
    key: Path, built: dict[str, Dataset], names: list[str], args: argparse.Namespace
) -> list[dict[str, object]]:
    """prepush's rsync transport (one command per corte, and --watch) against plain
    ``rsync -a`` of the same trees, to the same rsync daemons."""
    fleet = RsyncFleet(args.difusores)
    fleet.start()
    measures: list[Measure] = []
    try:
        runner = Runner(fleet, key, args)
        for name in names:
            print(f"== rsync, {name}: {', '.join(RSYNC_TOOLS)} con {args.difusores} demonios")
            measures += runner.run_dataset(built[name], list(RSYNC_TOOLS), args.difusores)
    finally:
        fleet.stop()
        for dataset in built.values():
            write_roster(dataset.workdir, [])
    return [m.as_json() for m in measures]


def _beyond_the_table(
    fleet: Fleet,
    key: Path,
    built: dict[str, Dataset],
    counts: list[int],
    args: argparse.Namespace,
    document: dict[str, object],
) -> None:
    """The per-byte limit, the cores, the profile and the scale, each saved as it ends."""
    if not args.no_limit:
        print("== límite por byte: un archivo, un flujo", flush=True)
        document["limit"] = per_byte_limit(fleet, key, args.limit_mb)
        save(document)
    if "site-heavy" in built and not args.no_scaling:
        print("== núcleos: site-heavy completo en un CPU y en todos", flush=True)
        document["scaling"] = scaling(fleet, key, built["site-heavy"], args)
        save(document)
    if "site-heavy" in built and not args.no_profile:
        print("== perfil: site-heavy completo, un proceso", flush=True)
        document["profile"] = profile(fleet, built["site-heavy"], args)
        save(document)
    scaled = next((built[n] for n in ("large", "campeche") if n in built), None)
    if counts and scaled is not None:
        print(f"== escala: {args.scale} difusores, {scaled.name}", flush=True)
        document["scale"] = scale(fleet, scaled, counts, args)


def save(document: dict[str, object]) -> str:
    """Write the results so far: a long run that fails late still leaves its figures."""
    stamp = str(document["when"])
    (RESULTS / f"{stamp}.json").write_text(json.dumps(document, indent=2, default=str))
    table = report.markdown(document)
    (RESULTS / f"{stamp}.md").write_text(table)
    return table


def _build_order(names: list[str]) -> list[str]:
    # site-medium takes its ZIP from large: build large first when both are asked for.
    return sorted(names, key=lambda n: (n != "large", names.index(n)))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    return f"{os.cpu_count()} CPU"


if __name__ == "__main__":
    sys.exit(main())

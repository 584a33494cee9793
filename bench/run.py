"""Benchmark: prepush against rsync, lftp and rclone, pushing the same cortes to real sshd.

    make bench                       # 10 difusores, Campeche and the 20,000-casilla state
    .venv/bin/python bench/run.py --difusores 10 --datasets campeche,large --scale 10,50,100

Every tool pushes the same package trees to the same fleet of OpenSSH sshd difusores on
127.0.0.1: a first full corte, then the next corte. Each push is one process tree timed by
``/usr/bin/time -v`` (wall, user+sys CPU of the tree, peak RSS of its largest process); the
tools run in turns and each measurement is repeated (--repeat) and the median kept, since the
machine is shared and noisy. After every push every difusor is read back and must hold the
package byte for byte. Results go to bench/results/<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncssh
import yaml

from prepush.synth import spec_for, write_corte
from tests.prepdata import cortes_dir
from tests.servers import Endpoint, SshdServer, read_tree

WORK = REPO / "bench" / "work"
RESULTS = REPO / "bench" / "results"
PREPUSH = str(Path(sys.executable).with_name("prepush"))
TIME = "/usr/bin/time"
TRANSFERS = 16


@dataclass
class Measure:
    dataset: str
    tool: str
    push: str
    difusores: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    bytes: int
    files: int

    @property
    def mb_s(self) -> float:
        return self.bytes * self.difusores / 1e6 / self.wall_s

    @property
    def files_s(self) -> float:
        return self.files * self.difusores / self.wall_s


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s of the whole process tree, peak RSS MB of its largest process)."""
    report = WORK / "time.txt"
    result = subprocess.run(
        [TIME, "-v", "-o", str(report), *command],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} falló ({result.returncode}): {result.stderr[-2000:]}")
    text = report.read_text()

    def field(name: str) -> str:
        match = re.search(rf"{re.escape(name)}: (.+)", text)
        assert match, name
        return match.group(1).strip()

    clock = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(v * 60**i for i, v in enumerate(reversed(clock)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) / 1024
    return wall, cpu, rss


# --- the fleet ----------------------------------------------------------------------------


def start_fleet(count: int, key: Path) -> tuple[list[SshdServer], list[Endpoint]]:
    servers, endpoints = [], []
    for i in range(count):
        server = SshdServer(key, chroot=False)
        servers.append(server)
        try:
            endpoint = server.start()
        except BaseException:
            for started in servers:
                started.stop()
            raise
        endpoints.append(Endpoint(**{**endpoint.__dict__, "name": f"difusor{i + 1:03d}"}))
    return servers, endpoints


def client_key() -> Path:
    path = WORK / "claves" / "bench.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        path.write_bytes(key.export_private_key("openssh"))
        path.chmod(0o600)
        Path(f"{path}.pub").write_bytes(key.export_public_key("openssh"))
    return path


def write_roster(workdir: Path, endpoints: list[Endpoint]) -> None:
    roster = {
        "election": {
            "process": "Benchmark",
            "timezone": "America/Mexico_City",
            "publication": {"start": "2000-01-01T00:00:00", "end": "2099-12-31T23:59:00"},
            "corte_interval_minutes": 15,
        },
        "publish": {"connect_timeout_seconds": 30},
        "difusores": [e.roster_entry() for e in endpoints],
    }
    (workdir / "difusores.yaml").write_text(yaml.safe_dump(roster, sort_keys=False))


def reset(endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        endpoint.empty()


# --- datasets -------------------------------------------------------------------------------


def build_datasets(names: list[str]) -> dict[str, tuple[Path, Path]]:
    """Two consecutive cortes per dataset, built by prepush into bench/work/<name>/paquetes."""
    shutil.rmtree(WORK / "trees", ignore_errors=True)  # copies of the packages, rebuilt below
    built = {}
    for name in names:
        workdir = WORK / name
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        write_roster(workdir, [])
        if name == "site":
            built[name] = build_vendor_site(workdir)
            continue
        if name == "campeche":
            inputs = [
                sorted(cortes_dir().glob(f"{c}_PREP_*")) for c in ("20210606_2320", "20210606_2340")
            ]
        else:
            start = datetime(2027, 6, 6, 20, 0, tzinfo=ZoneInfo("America/Mexico_City"))
            spec = spec_for(name, 1, 12, start, 15)
            inputs = [[write_corte(spec, k, workdir / "prep")] for k in (5, 6)]
        cortes = []
        for paths in inputs:
            out = subprocess.run(
                [PREPUSH, "-C", str(workdir), "build", "--json", *map(str, paths)],
                capture_output=True,
                text=True,
                check=True,
            )
            cortes.append(Path(json.loads(out.stdout)["path"]))
        built[name] = (cortes[0], cortes[1])
    return built


def build_vendor_site(workdir: Path, files: int = 3000) -> tuple[Path, Path]:
    """A vendor-style tree (``--site``): each corte in its own directory, 3,000 small JSON
    files and the corte's database ZIP; the next corte changes 10% of the JSON."""
    rng = random.Random(7)
    sizes = [rng.randint(500, 20_000) for _ in range(files)]
    zip_data = next((WORK / "large" / "paquetes").glob("*/datos/*.zip"), None)
    packages = []
    for number, corte in enumerate(("20270606_2100", "20270606_2115")):
        tree = workdir / "sitio" / corte
        base = tree / corte
        (base / "json").mkdir(parents=True)
        for i, size in enumerate(sizes):
            version = number if i % 10 == 0 else 0  # 10% change in the next corte
            body = json.dumps({"i": i, "v": version, "pad": "x" * size})
            (base / "json" / f"{i:05d}.json").write_text(body)
        (base / "datos.zip").write_bytes(zip_data.read_bytes() if zip_data else os.urandom(1 << 20))
        (tree / "json").mkdir()
        (tree / "json" / "main.json").write_text(json.dumps({"corte": corte}))
        (tree / "index.html").write_text(f"<html><body>{corte}</body></html>")
        subprocess.run(
            [PREPUSH, "-C", str(workdir), "build", "--site", str(tree), "--corte", corte],
            capture_output=True,
            check=True,
        )
        packages.append(workdir / "paquetes" / corte)
    return packages[0], packages[1]


def tree_without_meta(package: Path) -> Path:
    """The package as the other tools push it: without prepush's own .prepush/ folder."""
    target = WORK / "trees" / package.parent.parent.name / package.name
    if not target.exists():
        shutil.copytree(package, target, ignore=shutil.ignore_patterns(".prepush"))
    return target


# --- the tools ------------------------------------------------------------------------------


def push_prepush(workdir: Path, corte: str) -> tuple[float, float, float]:
    return timed([PREPUSH, "-C", str(workdir), "publish", corte])


def _ssh(key: Path) -> str:
    return f"ssh -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def _parallel(commands: list[str]) -> list[str]:
    script = " & ".join(f"( {c} )" for c in commands) + " & wait"
    checked = f"set -e; pids=''; {script}"
    return ["bash", "-c", checked]


def push_rsync(tree: Path, endpoints: list[Endpoint], key: Path) -> tuple[float, float, float]:
    commands = [
        f"rsync -a -e '{_ssh(key)} -p {e.port}' {tree}/ {e.user}@{e.host}:{e.remote_dir}/"
        for e in endpoints
    ]
    return timed(_parallel(commands))


def push_lftp(tree: Path, endpoints: list[Endpoint], key: Path) -> tuple[float, float, float]:
    commands = []
    for e in endpoints:
        script = (
            f'set sftp:connect-program "{_ssh(key)} -a -x"; '
            f"open sftp://{e.user}:@{e.host}:{e.port}; "
            f"mirror -R --parallel={TRANSFERS} {tree} {e.remote_dir}"
        )
        commands.append(f"lftp -c '{script}'")
    return timed(_parallel(commands))


def push_rclone(tree: Path, endpoints: list[Endpoint], key: Path) -> tuple[float, float, float]:
    commands = [
        f"rclone copy {tree} :sftp:{e.remote_dir} --sftp-host {e.host} --sftp-port {e.port}"
        f" --sftp-user {e.user} --sftp-key-file {key} --transfers {TRANSFERS}"
        " --sftp-disable-hashcheck --config /dev/null"
        for e in endpoints
    ]
    return timed(_parallel(commands))


def verify(endpoints: list[Endpoint], package: Path) -> None:
    expected = read_tree(package)
    for e in endpoints:
        held = read_tree(e.local_root)
        wrong = [p for p, data in expected.items() if held.get(p) != data]
        if wrong:
            raise RuntimeError(f"{e.name} no tiene el paquete {package.name}: {wrong[:3]}")


def changed(first: Path, second: Path) -> tuple[int, int]:
    old, new = read_tree(first), read_tree(second)
    diff = {p: d for p, d in new.items() if old.get(p) != d}
    return sum(len(d) for d in diff.values()), len(diff)


def run_dataset(
    name: str,
    cortes: tuple[Path, Path],
    endpoints: list[Endpoint],
    key: Path,
    tools: list[str],
    repeat: int,
) -> list[Measure]:
    first, second = cortes
    workdir = first.parent.parent
    write_roster(workdir, endpoints)
    full_bytes = sum(len(d) for d in read_tree(first).values())
    full_files = len(read_tree(first))
    next_bytes, next_files = changed(first, second)
    samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for _ in range(repeat):
        for tool in tools:  # tools in turns, so a noisy minute hits all of them
            reset(endpoints)
            (workdir / "prepush.db").unlink(missing_ok=True)
            for push, package in (("completo", first), ("siguiente", second)):
                if tool == "prepush":
                    figures = push_prepush(workdir, package.name)
                else:
                    tree = tree_without_meta(package)
                    figures = {"rsync": push_rsync, "lftp": push_lftp, "rclone": push_rclone}[tool](
                        tree, endpoints, key
                    )
                verify(endpoints, package)
                samples.setdefault((tool, push), []).append(figures)
    measures = []
    for (tool, push), runs in samples.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        size, files = (full_bytes, full_files) if push == "completo" else (next_bytes, next_files)
        measures.append(Measure(name, tool, push, len(endpoints), wall, cpu, rss, size, files))
    return measures


def single_stream_sftp(endpoint: Endpoint, key: Path, size_mb: int = 200) -> float:
    """OpenSSH sftp, one large file: the per-byte limit of this machine."""
    blob = WORK / "grande.bin"
    if not blob.exists() or blob.stat().st_size != size_mb << 20:
        with blob.open("wb") as stream:
            for _ in range(size_mb):
                stream.write(os.urandom(1 << 20))
    batch = WORK / "sftp.batch"
    batch.write_text(f"put {blob} {endpoint.remote_dir}/grande.bin\n")
    started = time.perf_counter()
    subprocess.run(
        [
            "sftp",
            "-q",
            "-b",
            str(batch),
            "-i",
            str(key),
            "-P",
            str(endpoint.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            f"{endpoint.user}@{endpoint.host}",
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    (endpoint.local_root / "grande.bin").unlink()
    return (size_mb << 20) / 1e6 / seconds


def markdown(measures: list[Measure], limit_mb_s: float, scale: list[dict[str, float]]) -> str:
    lines = [
        "| conjunto | envío | herramienta | difusores | s (mediana) | MB/s | archivos/s | CPU s | RSS máx MB | prepush ÷ esta |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in sorted(measures, key=lambda m: (m.dataset, m.push, m.wall_s)):
        mine = next(
            x for x in measures if (x.dataset, x.push, x.tool) == (m.dataset, m.push, "prepush")
        )
        lines.append(
            f"| {m.dataset} | {m.push} | {m.tool} | {m.difusores} | {m.wall_s:.2f} | {m.mb_s:.1f} |"
            f" {m.files_s:.0f} | {m.cpu_s:.2f} | {m.peak_rss_mb:.0f} | {mine.wall_s / m.wall_s:.2f} |"
        )
    lines += ["", f"OpenSSH sftp, un archivo de 200 MB, un flujo: {limit_mb_s:.0f} MB/s.", ""]
    if scale:
        lines += ["| difusores | s (completo, Campeche) | RSS máx MB |", "|---:|---:|---:|"]
        lines += [
            f"| {int(s['difusores'])} | {s['wall_s']:.2f} | {s['peak_rss_mb']:.0f} |" for s in scale
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--difusores", type=int, default=10)
    parser.add_argument("--datasets", default="campeche,large")
    parser.add_argument("--tools", default="prepush,rsync,lftp,rclone")
    parser.add_argument("--scale", default="10,50,100")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("El benchmark levanta sshd y un usuario de prueba: ejecútelo como root.")
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    key = client_key()
    tools = [t for t in args.tools.split(",") if t == "prepush" or shutil.which(t)]
    datasets = build_datasets(args.datasets.split(","))
    largest = max(int(n) for n in args.scale.split(",")) if args.scale else args.difusores
    servers, endpoints = start_fleet(max(largest, args.difusores), key)
    try:
        measures: list[Measure] = []
        fleet = endpoints[: args.difusores]
        for name, cortes in datasets.items():
            print(f"== {name}: {', '.join(tools)} con {len(fleet)} difusores", flush=True)
            measures += run_dataset(name, cortes, fleet, key, tools, args.repeat)
        limit = single_stream_sftp(fleet[0], key)
        scale = []
        for count in [int(n) for n in args.scale.split(",") if n]:
            sub = endpoints[:count]
            reset(sub)
            campeche = datasets.get("campeche") or next(iter(datasets.values()))
            workdir = campeche[0].parent.parent
            write_roster(workdir, sub)
            (workdir / "prepush.db").unlink(missing_ok=True)
            wall, _, rss = push_prepush(workdir, campeche[0].name)
            verify(sub, campeche[0])
            scale.append({"difusores": count, "wall_s": wall, "peak_rss_mb": rss})
    finally:
        for server in servers:
            server.stop()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "when": stamp,
        "difusores": args.difusores,
        "sftp_single_stream_mb_s": limit,
        "measures": [asdict(m) | {"mb_s": m.mb_s, "files_s": m.files_s} for m in measures],
        "scale": scale,
    }
    (RESULTS / f"{stamp}.json").write_text(json.dumps(document, indent=2))
    table = markdown(measures, limit, scale)
    (RESULTS / f"{stamp}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

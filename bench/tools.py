"""The pushers: prepush and the tools it is measured against, each pushing the same trees.

Every push is measured from outside: wall time, CPU seconds (user + system) of every process
that pushes, the peak RSS of the largest one and the peak of all of them together (sampled
from /proc: prepush runs workers, rsync a process and an ssh per difusor). One-shot pushes (a
command per corte, as a timer runs them) go through ``/usr/bin/time -v``. Kept-connection
pushes (``prepush publish --watch``, rsync over an OpenSSH ControlMaster) are timed from the
moment the corte appears to the moment the tool reports it done, with the CPU of the
long-running processes (and their children) read from /proc before and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets import PREPUSH, Dataset
from tests.support.servers import Endpoint

TIME = "/usr/bin/time"
LFTP_PARALLEL = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    # From prepush's ledger: payload bytes, prepush's own bookkeeping bytes, SFTP requests.
    sent_bytes: int | None = None
    meta_bytes: int | None = None
    requests: int | None = None
    # Every process of the push together, at its peak.
    peak_rss_total_mb: float = 0.0


class PushFailed(RuntimeError):
    pass


def timed(
    command: list[str], work: Path, timeout: float | None = None, *, pin: str | None = None
) -> Sample:
    """(wall, CPU of the whole process tree, peak RSS of its largest process and of all of
    them together). ``pin``: the CPUs it may run on (taskset), e.g. "0"."""
    report = work / "time.txt"
    prefix = ["taskset", "-c", pin] if pin else []
    started = time.perf_counter()
    process = subprocess.Popen(
        [*prefix, TIME, "-v", "-o", str(report), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = TreeMemory(process.pid)
    peak.start()
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process.pid)
        process.communicate()
        raise PushFailed(f"{command[0]}: más de {timeout:g} s") from None
    finally:
        peak.stop()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise PushFailed(f"{command[0]} falló ({process.returncode}): {stderr[-1500:]}")
    text = report.read_text()

    def field(name: str) -> float:
        match = re.search(rf"{re.escape(name)}: ([\d.]+)", text)
        if not match:
            raise PushFailed(f"/usr/bin/time no dio {name}")
        return float(match.group(1))

    cpu = field("User time (seconds)") + field("System time (seconds)")
    largest = field("Maximum resident set size (kbytes)") / 1024
    return Sample(wall, cpu, largest, peak_rss_total_mb=peak.peak_mb)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _kill_tree(pid: int) -> None:
    for member in reversed(process_tree(pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class TreeMemory:
    """The peak of the RSS of a process and all below it, summed, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, sum(_rss_mb(p) for p in process_tree(self.pid)))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def ssh_command(key: Path, *extra: str) -> str:
    options = (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        " -o Ciphers=aes128-gcm@openssh.com -o KexAlgorithms=curve25519-sha256"
    )
    return " ".join(["ssh", "-i", str(key), options, *extra])


def parallel(commands: list[str]) -> list[str]:
    """One shell running every command at once; fails if any fails."""
    body = "\n".join(f'( {c} ) & pids="$pids $!"' for c in commands)
    return ["bash", "-c", f"pids=''\n{body}\nfor p in $pids; do wait $p || exit 1; done"]


# --- one command per corte ---------------------------------------------------------------


def prepush_once(
    dataset: Dataset, corte: str, work: Path, timeout: float, *, pin: str | None = None
) -> Sample:
    command = [PREPUSH, "-C", str(dataset.workdir), "publish", corte]
    sample = timed(command, work, timeout, pin=pin)
    return _with_ledger(sample, dataset.workdir)


def _with_ledger(sample: Sample, workdir: Path) -> Sample:
    with contextlib.closing(sqlite3.connect(workdir / "prepush.db")) as db:
        row = db.execute(
            "SELECT SUM(bytes_sent), SUM(meta_bytes), SUM(requests) FROM deliveries"
            " WHERE run_id = (SELECT MAX(id) FROM runs)"
        ).fetchone()
    sample.sent_bytes, sample.meta_bytes, sample.requests = (int(v or 0) for v in row)
    return sample


def rsync_once(
    tree: Path,
    endpoints: list[Endpoint],
    key: Path,
    work: Path,
    timeout: float,
    *,
    compress: bool = False,
    pin: str | None = None,
) -> Sample:
    flags = "-az" if compress else "-a"
    commands = [
        f"rsync {flags} -e '{ssh_command(key, '-p', str(e.port))}' {tree}/"
        f" {e.user}@{e.host}:{e.remote_dir}/"
        for e in endpoints
    ]
    return timed(parallel(commands), work, timeout, pin=pin)


def rsync_daemon_once(
    tree: Path,
    urls: list[str],
    password: str,
    work: Path,
    timeout: float,
    *,
    nodelay: bool = False,
) -> Sample:
    """Plain ``rsync -a`` of the tree to each difusor's rsync daemon, all at once. With
    ``nodelay``, also the client socket option prepush's rsync transport sets."""
    flags = "-a --sockopts=TCP_NODELAY" if nodelay else "-a"
    commands = [f"RSYNC_PASSWORD='{password}' rsync {flags} {tree}/ {url}" for url in urls]
    return timed(parallel(commands), work, timeout)


def lftp_once(
    tree: Path, endpoints: list[Endpoint], key: Path, work: Path, timeout: float
) -> Sample:
    commands = []
    for e in endpoints:
        script = (
            f'set sftp:connect-program "{ssh_command(key)} -a -x"; '
            f"open sftp://{e.user}:@{e.host}:{e.port}; "
            f"mirror -R --parallel={LFTP_PARALLEL} {tree} {e.remote_dir}"
        )
        commands.append(f"lftp -c '{script}'")
    return timed(parallel(commands), work, timeout)


def rclone_once(
    tree: Path,
    endpoints: list[Endpoint],
    key: Path,
    work: Path,
    timeout: float,
    transfers: int,
) -> Sample:
    # copy, like the other tools: sync would also delete the previous corte's files.
    commands = [
        f"rclone copy {tree} :sftp:{e.remote_dir} --sftp-host {e.host} --sftp-port {e.port}"
        f" --sftp-user {e.user} --sftp-key-file {key} --transfers {transfers}"
        " --sftp-disable-hashcheck --config /dev/null"
        for e in endpoints
    ]
    return timed(parallel(commands), work, timeout)


# --- kept connections ----------------------------------------------------------------------


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_peak_rss_mb(pid: int) -> float:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PrepushWatch:
    """``prepush publish --watch``: each corte appears in paquetes/ (a rename, as ``build``
    does) and is timed until the watcher prints its report."""

    def __init__(self, dataset: Dataset, poll_s: float = 0.01) -> None:
        self.dataset = dataset
        self.held = dataset.workdir / "reserva"
        self.poll_s = poll_s
        self.process: subprocess.Popen[str] | None = None
        self.reports: list[dict[str, object]] = []
        self.arrived = threading.Condition()

    def start(self) -> None:
        self.held.mkdir(exist_ok=True)
        for corte in self.dataset.cortes:
            os.rename(self.dataset.package(corte), self.held / corte)
        self.process = subprocess.Popen(
            [
                *(PREPUSH, "-C", str(self.dataset.workdir), "publish"),
                *("--watch", str(self.poll_s), "--json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read_reports, daemon=True).start()

    def _read_reports(self) -> None:
        """One JSON document per corte, printed with indent: it ends at a bare "}" line."""
        assert self.process is not None
        assert self.process.stdout is not None
        lines: list[str] = []
        for line in self.process.stdout:
            lines.append(line)
            if line.rstrip("\n") != "}":
                continue
            document = json.loads("".join(lines))
            lines.clear()
            with self.arrived:
                self.reports.append(document)
                self.arrived.notify_all()

    def push(self, corte: str, timeout: float) -> Sample:
        assert self.process is not None
        pid = self.process.pid
        seen = len(self.reports)
        # The watcher and its worker processes.
        cpu_before = sum(_proc_cpu(p) for p in process_tree(pid))
        memory = TreeMemory(pid)
        memory.start()
        started = time.perf_counter()
        os.rename(self.held / corte, self.dataset.package(corte))
        try:
            with self.arrived:
                if not self.arrived.wait_for(lambda: len(self.reports) > seen, timeout):
                    raise PushFailed(f"prepush --watch no publicó {corte} en {timeout:g} s")
        finally:
            memory.stop()
        wall = time.perf_counter() - started
        report = self.reports[-1]
        if report.get("corte") != corte or report.get("status") != "ok":
            raise PushFailed(f"prepush --watch: {json.dumps(report)[:1500]}")
        deliveries = report["deliveries"]
        assert isinstance(deliveries, list)
        return Sample(
            wall,
            sum(_proc_cpu(p) for p in process_tree(pid)) - cpu_before,
            max(_proc_peak_rss_mb(p) for p in process_tree(pid)),
            sum(int(d["bytes_sent"]) for d in deliveries),
            sum(int(d["meta_bytes"]) for d in deliveries),
            sum(int(d["requests"]) for d in deliveries),
            peak_rss_total_mb=memory.peak_mb,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        for corte in self.dataset.cortes:
            if (self.held / corte).exists():
                os.rename(self.held / corte, self.dataset.package(corte))


class RsyncMaster:
    """rsync over an OpenSSH ControlMaster per difusor: the connection outlives each push."""

    def __init__(self, endpoints: list[Endpoint], key: Path, work: Path) -> None:
        self.endpoints = endpoints
        self.key = key
        self.sockets = [work / f"cm-{i}" for i in range(len(endpoints))]
        self.masters: list[int] = []
        self.work = work

    def _ssh(self, index: int) -> str:
        e = self.endpoints[index]
        return ssh_command(self.key, "-S", str(self.sockets[index]), "-p", str(e.port))

    def connect(self) -> list[str]:
        return [
            f"{self._ssh(i)} -M -o ControlPersist=yes -fN {e.user}@{e.host}"
            for i, e in enumerate(self.endpoints)
        ]

    def push(self, tree: Path, timeout: float, *, first: bool) -> Sample:
        before = sum(_proc_cpu(pid) for pid in self.masters)
        rsyncs = [
            f"rsync -a -e '{self._ssh(i)}' {tree}/ {e.user}@{e.host}:{e.remote_dir}/"
            for i, e in enumerate(self.endpoints)
        ]
        if first:
            commands = [f"{c} && {r}" for c, r in zip(self.connect(), rsyncs, strict=True)]
        else:
            commands = rsyncs
        sample = timed(parallel(commands), self.work, timeout)
        if first:
            self.masters = [self._master_pid(i) for i in range(len(self.endpoints))]
        sample.cpu_s += sum(_proc_cpu(pid) for pid in self.masters) - before
        sample.peak_rss_mb = max(
            [sample.peak_rss_mb, *(_proc_peak_rss_mb(pid) for pid in self.masters)]
        )
        return sample

    def _master_pid(self, index: int) -> int:
        e = self.endpoints[index]
        check = subprocess.run(
            [*self._ssh(index).split(), "-O", "check", f"{e.user}@{e.host}"],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"pid=(\d+)", check.stderr + check.stdout)
        if not match:
            raise PushFailed(f"ControlMaster de {e.name} no responde: {check.stderr}")
        return int(match.group(1))

    def stop(self) -> None:
        for pid in self.masters:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.masters = []
        for socket in self.sockets:
            socket.unlink(missing_ok=True)


Pusher = Callable[[str], Sample]


def single_stream_sftp(endpoint: Endpoint, key: Path, blob: Path, work: Path) -> float:
    """OpenSSH sftp, one large file, one connection: MB/s (the per-byte limit)."""
    batch = work / "sftp.batch"
    batch.write_text(f"put {blob} {endpoint.remote_dir}/{blob.name}\n")
    command = [
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
        "-o",
        "Ciphers=aes128-gcm@openssh.com",
        "-o",
        "KexAlgorithms=curve25519-sha256",
        f"{endpoint.user}@{endpoint.host}",
    ]
    sample = timed(command, work)
    (endpoint.local_root / blob.name).unlink()
    return blob.stat().st_size / 1e6 / sample.wall_s

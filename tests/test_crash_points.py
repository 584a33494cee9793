"""The crash-point matrix: cut or kill at every step of the protocol, and nobody sees it.

Real OpenSSH (chroot + internal-sftp) with its web root on a tmpfs, behind the fault proxy,
served by nginx. For a package built from the PREP's CSVs and for a vendor's ``--site``
package, three rounds of cortes: each corte of a round is cut at one step of the protocol
(the proxy resets the connection; the same run retries) or prepush is SIGKILLed there (the
next run takes over). Right after each cut or kill, every file the served main.json's corte
needs is present and byte-equal; the next publish delivers the newest corte exactly (exit
0, the tree of the retained cortes and nothing else). All the while a reader reads the
whole site through nginx, again and again, and must never read a torn one.

The same matrix (one round) runs against the guide's rsync daemon; and rsync difusores (the
daemon, and sshd with rrsync) receive ten cortes through a proxy that cuts connections at
random, with one SIGKILL of prepush mid-transfer, under the same reader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from prepush.__main__ import main
from prepush.package import Package
from prepush.publish.protocol_types import Event
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import load_settings
from prepush.sim.faultproxy import FaultProxy
from prepush.sim.fleet import ServerThread
from prepush.sim.sshd import SshdDifusor, sshd_available
from prepush.sim.synth import spec_for, write_corte
from tests.conftest import Workdir
from tests.crash_driver import reached
from tests.rsync_servers import (
    daemon_endpoint,
    guide_daemon,
    guide_rrsync_sshd,
    rsync_servers_available,
    ssh_endpoint,
)
from tests.servers import Endpoint, Nginx, nginx_available, read_tree

STEPS = (
    "lock",
    "state",
    "dirs",
    "mid-upload",
    "upload",
    "pending",
    "flip:index.html",
    "flip:json/main.json",
    "invalidate",
    "record",
    "cleanup",
    "done",
    "release",
)
ROUNDS = 3
RETENTION = 3
ZONE = ZoneInfo("America/Merida")

pytestmark = pytest.mark.skipif(
    not (sshd_available() and nginx_available()), reason="requiere sshd, nginx y root"
)


@pytest.fixture(scope="module")
def difusor(client_key: Path) -> Iterator[Endpoint]:
    daemon = SshdDifusor(client_key, chroot=True, tmpfs_size="256m")
    info = daemon.start()
    try:
        yield Endpoint(
            name="tmpfs",
            host=info.host,
            port=info.port,
            user=info.user,
            key_file=client_key,
            host_key_line=info.host_key_line,
            remote_dir=info.remote_dir,
            local_root=info.local_root,
        )
    finally:
        daemon.stop()


class Reader(threading.Thread):
    """Reads the whole site through nginx, again and again: main.json, then every file of
    the corte it announces, each checked against the versions that path ever had."""

    def __init__(self, url: str) -> None:
        super().__init__(name="lector", daemon=True)
        self.url = url
        self.manifests: dict[str, dict[str, str]] = {}
        self.versions: dict[str, set[str]] = {}
        self.stop = threading.Event()
        self.reads = 0
        self.torn: list[tuple[str, str, int]] = []

    def learn(self, package: Package) -> None:
        files = {f.path: f.sha256 for f in package.manifest.files if f.path != "json/main.json"}
        for path, digest in files.items():
            self.versions.setdefault(path, set()).add(digest)
        self.manifests[package.corte] = files

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stop.is_set():
                self.read_once(client)

    def read_once(self, client: httpx.Client) -> None:
        response = client.get("json/main.json", params={"t": str(self.reads)})
        if response.status_code != 200:
            self.stop.wait(0.05)
            return
        try:
            corte = str(json.loads(response.content)["corte"])
        except (ValueError, KeyError) as exc:
            self.torn.append(("json/main.json", repr(exc), response.status_code))
            return
        files = self.manifests.get(corte)
        if files is None:
            return
        for path in files:
            got = client.get(path)
            digest = hashlib.sha256(got.content).hexdigest()
            if got.status_code != 200 or digest not in self.versions[path]:
                self.torn.append((corte, path, got.status_code))
        self.reads += 1


# --- the two kinds of package, corte after corte --------------------------------------------


class Cortes:
    """Builds corte k of one kind of package into the work dir."""

    def __init__(self, kind: str, workdir: Workdir, scratch: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.scratch = scratch
        start = datetime(2027, 6, 6, 20, 0, tzinfo=ZONE)
        self.spec = spec_for("tiny", 11, 80, start, 15)

    def build(self, k: int) -> Package:
        corte = self.spec.corte_id(k)
        if self.kind == "prep":
            source = write_corte(self.spec, k, self.scratch / "prep")
            args = ["build", str(source)]
        else:
            source = write_site(self.scratch / "sitio", corte, k)
            args = ["build", "--site", str(source), "--corte", corte]
        assert main(["-C", str(self.workdir.path), *args]) == 0
        return Package.open(self.workdir.path / "paquetes" / corte)


def write_site(root: Path, corte: str, k: int) -> Path:
    """A vendor's site: per-corte data under the corte's directory (most files unchanged
    from the previous corte, so linked on the server), constant assets, a fixed-path file
    that changes every corte (replaced by rename) and the two entry files."""
    site = root / corte
    files: dict[str, str] = {
        "index.html": f"<html><!-- {corte} --><script src='assets/app.js'></script></html>",
        "assets/app.js": "console.log('prep');" * 40,
        "json/avance.json": json.dumps({"corte": corte, "actas": k * 17}),
        "json/main.json": json.dumps({"corte": corte, "datos": f"{corte}/"}),
    }
    for i in range(30):
        version = k if i < 6 else 0
        files[f"{corte}/distritos/{i:02d}.json"] = f"distrito {i} version {version} " * 200
    for relative, text in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return site


# --- the matrix -------------------------------------------------------------------------------


def served_corte_is_whole(root: Path, reader: Reader) -> str:
    """Every file the served main.json's corte needs is on disk, byte-equal."""
    corte = str(json.loads((root / "json/main.json").read_bytes())["corte"])
    for path in reader.manifests[corte]:
        digest = hashlib.sha256((root / path).read_bytes()).hexdigest()
        assert digest in reader.versions[path], path
    return corte


def expected_tree(workdir: Workdir, cortes: list[str]) -> dict[str, bytes]:
    tree: dict[str, bytes] = {}
    for corte in cortes[-RETENTION:]:
        tree.update(workdir.package_tree(corte))
    tree.update(workdir.package_tree(cortes[-1]))
    return tree


def publish_cut_at(
    workdir: Workdir,
    step: str,
    difusor: str,
    cut: Callable[[], None],
    check: Callable[[], None],
) -> tuple[int, str]:
    """Publish in this process; at ``difusor``'s ``step`` the proxy cuts its connection (the
    run retries)."""
    settings = load_settings(workdir.path)
    fired: list[bool] = []

    def hook(event: Event) -> None:
        if not fired and event.difusor == difusor and reached(event, step):
            fired.append(True)
            cut()
            check()

    report = publish(PublishRequest(settings, settings.roster.difusores), hook)
    assert fired, f"el paso {step} nunca llegó"
    (delivery,) = [d for d in report.deliveries if d.difusor == difusor]
    return int(report.exit_code), delivery.outcome


def publish_killed_at(workdir: Workdir, step: str, difusor: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", str(workdir.path), step, difusor],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, (step, done.returncode, done.stderr[-2000:])


@pytest.mark.parametrize(
    ("transport", "kind", "fault", "processes"),
    [
        *[
            (transport, kind, fault, 1)
            for transport in ("sftp", "rsync")
            for kind in ("prep", "site")
            for fault in ("corte", "sigkill")
        ],
        # The difusor under fault served by a worker process, another one by the parent.
        ("sftp", "prep", "corte", 2),
        ("sftp", "prep", "sigkill", 2),
    ],
)
def test_every_step_survives_a_cut_and_a_kill(
    transport: str,
    kind: str,
    fault: str,
    processes: int,
    request: pytest.FixtureRequest,
    servers_loop: ServerThread,
    nginx_factory: Callable[..., Nginx],
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    """SFTP to OpenSSH in a chroot, three rounds; an rsync daemon (the guide's), one round:
    its steps are the same protocol's, over another transport."""
    if transport == "sftp":
        difusor: Endpoint = request.getfixturevalue("difusor")
        rounds = ROUNDS
    else:
        difusor = request.getfixturevalue("rsync_difusores")["demonio"]
        rounds = 1
    difusor.empty()
    proxy = FaultProxy(difusor.host, difusor.port)
    servers_loop.run(proxy.start())
    web = nginx_factory(difusor.local_root)
    proxied = dataclasses.replace(difusor, port=proxy.port)
    fleet = [request.getfixturevalue("sshd_plain"), proxied] if processes > 1 else [proxied]
    # Synthetic cortes: every acta has its row (Campeche's declaration does not apply).
    workdir.write_roster(
        fleet,
        deadline=30,
        retention=RETENTION,
        rowless_actas={},
        publish={"workers": processes},
    )
    cortes = Cortes(kind, workdir, tmp_path)
    reader = Reader(web.url)
    published: list[str] = []
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        reader.start()
        k = 0
        # prepush's own index.html is the same every corte: it has no flip of its own.
        steps = [s for s in STEPS if kind == "site" or s != "flip:index.html"]
        for _round in range(rounds):
            for step in steps:
                k += 1
                package = cortes.build(k)
                reader.learn(package)

                def check() -> None:
                    served_corte_is_whole(difusor.local_root, reader)

                if fault == "corte":
                    code, outcome = publish_cut_at(
                        workdir, step, proxied.name, lambda: servers_loop.run(proxy.cut()), check
                    )
                else:
                    publish_killed_at(workdir, step, proxied.name)
                    check()
                    code = main(["-C", str(workdir.path), "publish"])
                    outcome = "delivered"
                assert (code, outcome) == (0, "delivered"), (step, code, outcome)
                published.append(package.corte)
                served = read_tree(difusor.local_root)
                assert served == expected_tree(workdir, published), step
                assert served_corte_is_whole(difusor.local_root, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
        servers_loop.run(proxy.stop())
    print(
        f"{transport}/{kind}/{fault}/{processes}: {len(published)} cortes,"
        f" {reader.reads} lecturas completas"
    )
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    assert not [p for p in os.listdir(difusor.local_root) if p.endswith((".prepush-tmp",))]


# --- rsync difusores: random cuts and a SIGKILL, with the reader -----------------------------

RSYNC_CORTES = 10
RSYNC_KILLED_AT = 5
# Per chunk the proxy relays upstream: rsync sends many small ones, a publish some hundreds.
CUT_PROBABILITY = 0.01


@pytest.fixture(scope="module")
def rsync_difusores(client_key: Path) -> Iterator[dict[str, Endpoint]]:
    """The guide's rsync daemon and sshd with rrsync, their web roots on tmpfs."""
    if not rsync_servers_available():
        pytest.skip("requiere rsync (con rrsync), sshd y ser root")
    daemon = guide_daemon(tmpfs_size="256m")
    sshd = guide_rrsync_sshd(client_key, tmpfs_size="256m")
    try:
        yield {
            "demonio": daemon_endpoint(daemon, name="rsync-demonio"),
            "ssh": ssh_endpoint(sshd, client_key, name="rsync-ssh"),
        }
    finally:
        daemon.stop()
        sshd.stop()


def rsync_children_of(port: int) -> list[str]:
    """rsync or ssh processes still talking to ``port``: none may outlive prepush."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        talks = any(f":{port}/".encode() in w or w == str(port).encode() for w in words)
        if words and words[0].endswith((b"rsync", b"ssh")) and talks:
            found.append(" ".join(w.decode(errors="replace") for w in words))
    return found


def children_left(port: int, within: float = 2.0) -> list[str]:
    """The rsync or ssh processes of ``port`` still there ``within`` seconds of prepush's
    death (each dies with its parent; the kernel needs a moment to run the chain)."""
    deadline = time.monotonic() + within
    while (left := rsync_children_of(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("form", ["demonio", "ssh"])
def test_rsync_difusores_never_serve_a_torn_site_through_cuts_and_a_kill(
    form: str,
    rsync_difusores: dict[str, Endpoint],
    servers_loop: ServerThread,
    nginx_factory: Callable[..., Nginx],
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    """Ten cortes to an rsync difusor behind a proxy that cuts connections at random, and
    one SIGKILL of prepush mid-transfer: the reader never reads a torn site, each publish
    ends with exactly the retained cortes, and no rsync or ssh outlives a killed prepush."""
    difusor = rsync_difusores[form]
    difusor.empty()
    proxy = FaultProxy(difusor.host, difusor.port, seed=15)
    servers_loop.run(proxy.start())
    web = nginx_factory(difusor.local_root)
    workdir.write_roster(
        [dataclasses.replace(difusor, port=proxy.port)],
        deadline=60,
        retention=RETENTION,
        rowless_actas={},
    )
    cortes = Cortes("prep", workdir, tmp_path)
    reader = Reader(web.url)
    published: list[str] = []
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        reader.start()
        proxy.faults.reset_probability = CUT_PROBABILITY
        for k in range(1, RSYNC_CORTES + 1):
            package = cortes.build(k)
            reader.learn(package)
            if k == RSYNC_KILLED_AT:
                publish_killed_at(workdir, "mid-upload", difusor.name)
                assert served_corte_is_whole(difusor.local_root, reader) == published[-1]
                assert children_left(proxy.port) == []
            code = main(["-C", str(workdir.path), "publish"])
            assert code == 0, k
            published.append(package.corte)
            assert read_tree(difusor.local_root) == expected_tree(workdir, published), k
            assert served_corte_is_whole(difusor.local_root, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
        servers_loop.run(proxy.stop())
    print(
        f"rsync {form}: {len(published)} cortes, {proxy.resets} cortes de conexión,"
        f" {reader.reads} lecturas completas"
    )
    assert proxy.resets > 0, "the proxy cut no connection: the test proved nothing"
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    # The killed run's runtime directory (its socket, its scratch files) was swept by the next.
    assert not list(Path(tempfile.gettempdir()).glob("prepush-rsync-*"))

"""The crash matrix's parts, shared by the tests that cut or kill a run: a reader that reads
the whole site again and again and must never see a torn one, cortes of either kind of
package, and a publish cut (or SIGKILLed) at one step of the protocol."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from prepush.__main__ import main
from prepush.package import Package
from prepush.publish.protocol_types import Event
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.settings import load_settings
from prepush.sim.synth import spec_for, write_corte
from tests.conftest import Workdir
from tests.support.crash_driver import reached
from tests.support.s3 import S3Endpoint

ZONE = ZoneInfo("America/Merida")


class Reader(threading.Thread):
    """Reads the whole site through nginx, again and again: main.json, then every file of
    the corte it announces, each checked against the versions that path ever had; and the
    cortes it read, in order (a reader's corte must never go back)."""

    def __init__(self, url: str) -> None:
        super().__init__(name=f"lector {url}", daemon=True)
        self.url = url
        self.manifests: dict[str, dict[str, str]] = {}
        self.versions: dict[str, set[str]] = {}
        self.stop = threading.Event()
        self.reads = 0
        self.seen: list[str] = []
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
        if not self.seen or self.seen[-1] != corte:
            self.seen.append(corte)
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


# --- what a reader may see on the difusor, after a cut --------------------------------------


def served_corte_is_whole(root: Path, reader: Reader) -> str:
    """Every file the served main.json's corte needs is on disk, byte-equal."""
    corte = str(json.loads((root / "json/main.json").read_bytes())["corte"])
    for path in reader.manifests[corte]:
        digest = hashlib.sha256((root / path).read_bytes()).hexdigest()
        assert digest in reader.versions[path], path
    return corte


def served_corte_is_whole_in_bucket(bucket: S3Endpoint, reader: Reader) -> str:
    """Every file the bucket's served corte needs is there, byte-equal."""
    tree = bucket.tree()
    corte = str(json.loads(tree["json/main.json"])["corte"])
    for path in reader.manifests[corte]:
        digest = hashlib.sha256(tree[path]).hexdigest()
        assert digest in reader.versions[path], path
    return corte


# --- a publish cut or killed at one step ----------------------------------------------------


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
        [sys.executable, "-m", "tests.support.crash_driver", str(workdir.path), step, difusor],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, (step, done.returncode, done.stderr[-2000:])

"""The benchmark's packages: two consecutive cortes of each dataset, built by ``prepush build``.

- ``campeche``: the real cortes 2021-06-06 23:20 and 23:40 (shared/data/prep).
- ``large``: the synthetic 20,000-casilla state, cortes 6 and 7 of a 12-corte night (the
  middle of the night, when most distritos get new actas in every corte).
- ``site-medium``: a vendor-style tree (``build --site``) of about 3,000 files and 30 MB:
  3,000 JSON files of 0.5-20 KB under a directory per corte and the corte's database ZIP;
  the next corte changes 10% of the JSON, under a new directory.
- ``site-heavy``: the same shape as site-medium, heavy in bytes: 3,000 JSON files and a
  30 MB database ZIP of random bytes (compression cannot help), new in every corte: about
  66 MB per corte, as a national PREP's vendor tree is.
- ``site-large``: a vendor-style tree of about 20,000 files and 200 MB from the synthetic
  20,000-casilla state: one JSON per casilla at fixed paths (its actas of the three
  elections and a stand-in for the acta's scanned image); the next corte rewrites in place
  the casillas whose actas arrived.

The ZIPs are the ones ``prepush build`` makes from the synthetic election's CSVs.
"""

from __future__ import annotations

import compileall
import csv
import filecmp
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

import prepush
from prepush.keys import generate_key_pair
from prepush.sim.synth import SynthSpec, spec_for, write_corte
from tests.conftest import UNREACHED
from tests.support.prepdata import cortes_dir
from tests.support.servers import Endpoint

PREPUSH = str(Path(sys.executable).with_name("prepush"))


def compile_prepush() -> None:
    """Run prepush from bytecode, as an installed copy runs (pip compiles on install): from
    a checkout with PYTHONDONTWRITEBYTECODE set, every start would compile each module of
    prepush again (40-60 ms of every one-shot publish, measured)."""
    compileall.compile_dir(Path(prepush.__file__).parent, quiet=1)


NAMES = ("campeche", "large", "site-medium", "site-heavy", "site-large")
CAMPECHE = ("20210606_2320", "20210606_2340")
SYNTH_CORTES = (5, 6)
SITE_ENTRY_FILES = ["index.html", "json/main.json"]


@dataclass(frozen=True)
class Dataset:
    name: str
    workdir: Path
    cortes: tuple[str, str]

    @property
    def packages(self) -> Path:
        return self.workdir / "paquetes"

    def package(self, corte: str) -> Path:
        return self.packages / corte

    def tree(self, corte: str) -> Path:
        """The package as the other tools push it: without prepush's own .prepush/ folder.

        Every file gets the corte's time as its mtime, as if written when the corte was
        made: rsync skips a file whose size and mtime match what the difusor has, and two
        cortes built in the same second would fool it (main.json has the same size in every
        corte). A file the previous corte has at the same path with the same bytes keeps
        that corte's mtime, as a build that leaves unchanged files alone: the other tools'
        quick checks skip it, their best case.
        """
        target = self.workdir / "arboles" / corte
        if target.exists():
            return target
        shutil.copytree(self.package(corte), target, ignore=shutil.ignore_patterns(".prepush"))
        stamp = datetime.strptime(corte, "%Y%m%d_%H%M").timestamp()
        position = self.cortes.index(corte)
        previous = self.tree(self.cortes[position - 1]) if position > 0 else None
        for path in target.rglob("*"):
            os.utime(path, (stamp, stamp))
            if previous is not None and path.is_file():
                _keep_unchanged_mtime(path, previous / path.relative_to(target))
        return target


def _keep_unchanged_mtime(path: Path, before: Path) -> None:
    if before.is_file() and filecmp.cmp(path, before, shallow=False):
        mtime = before.stat().st_mtime
        os.utime(path, (mtime, mtime))


# Campeche's DIP_LOC counts 10 actas of representación proporcional that have no row.
ROWLESS_ACTAS = {"campeche": {"DIP_LOC": 10}}


# publish: settings every roster of the run gets (bench/run.py --workers).
PUBLISH_OVERRIDES: dict[str, object] = {}


def write_roster(workdir: Path, endpoints: list[Endpoint], **publish: object) -> None:
    # publish sends only packages signed with the roster's key.
    signing = workdir / "claves" / "firma.pem"
    if not signing.exists():
        generate_key_pair(signing, comment="prepush-bench")
    roster = {
        "election": {
            "process": "Benchmark",
            "timezone": "America/Mexico_City",
            "publication": {"start": "2000-01-01T00:00:00", "end": "2099-12-31T23:59:00"},
            "corte_interval_minutes": 15,
            "signing_key": str(signing),
            "rowless_actas": ROWLESS_ACTAS.get(workdir.name, {}),
        },
        "publish": {
            "connect_timeout_seconds": 60,
            "entry_files": SITE_ENTRY_FILES,
            **PUBLISH_OVERRIDES,
            **publish,
        },
        # Building needs no difusor, but a roster names at least one: a placeholder that is
        # never contacted stands in until the fleet is up.
        "difusores": [e.roster_entry() for e in endpoints] or [UNREACHED],
    }
    (workdir / "difusores.yaml").write_text(yaml.safe_dump(roster, sort_keys=False))


def build(name: str, root: Path) -> Dataset:
    workdir = root / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    write_roster(workdir, [])
    if name == "campeche":
        inputs = [sorted(cortes_dir().glob(f"{c}_PREP_*")) for c in CAMPECHE]
        cortes = [_build(workdir, paths) for paths in inputs]
    elif name == "large":
        cortes = [_build(workdir, [path]) for path in _synthetic_cortes(workdir)]
    elif name == "site-medium":
        zip_data = _zip_of_large(root)
        cortes = _vendor_site(workdir, [zip_data, zip_data])
    elif name == "site-heavy":
        cortes = _vendor_site(workdir, [random.Random(n).randbytes(30 << 20) for n in (1, 2)])
    elif name == "site-large":
        cortes = _site_large(workdir)
    else:
        raise SystemExit(f"conjunto desconocido: {name} (hay {', '.join(NAMES)})")
    return Dataset(name, workdir, (cortes[0], cortes[1]))


def _build(workdir: Path, inputs: list[Path]) -> str:
    out = subprocess.run(
        [PREPUSH, "-C", str(workdir), "build", "--json", *map(str, inputs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["corte"])


def _build_site(workdir: Path, tree: Path, corte: str) -> str:
    subprocess.run(
        [PREPUSH, "-C", str(workdir), "build", "--site", str(tree), "--corte", corte],
        capture_output=True,
        check=True,
    )
    return corte


def _spec() -> SynthSpec:
    start = datetime(2027, 6, 6, 20, 0, tzinfo=ZoneInfo("America/Mexico_City"))
    return spec_for("large", 1, 12, start, 15)


def _synthetic_cortes(workdir: Path) -> list[Path]:
    spec = _spec()
    return [write_corte(spec, k, workdir / "prep") for k in SYNTH_CORTES]


def _zip_of_large(root: Path) -> bytes:
    """The database ZIP of the large state's first corte, built by prepush."""
    built = sorted((root / "large" / "paquetes").glob("*/datos/*.zip"))
    if built:
        return built[0].read_bytes()
    scratch = root / "_zip"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    write_roster(scratch, [])
    corte = _build(scratch, _synthetic_cortes(scratch)[:1])
    data = next((scratch / "paquetes" / corte / "datos").glob("*.zip")).read_bytes()
    shutil.rmtree(scratch)
    return data


def _vendor_site(workdir: Path, zips: list[bytes], files: int = 3000) -> list[str]:
    """Two cortes of a vendor tree: JSON files under the corte's directory (10% change in the
    next corte) and the corte's database ZIP (the next one's is ``zips[1]``)."""
    rng = random.Random(7)
    sizes = [rng.randint(500, 20_000) for _ in range(files)]
    cortes = []
    cortes_ids = ("20270606_2100", "20270606_2115")
    for number, (corte, zip_data) in enumerate(zip(cortes_ids, zips, strict=True)):
        tree = workdir / "sitio" / corte
        base = tree / corte
        (base / "json").mkdir(parents=True)
        for i, size in enumerate(sizes):
            version = number if i % 10 == 0 else 0  # 10% change in the next corte
            body = json.dumps({"i": i, "v": version, "pad": "x" * size})
            (base / "json" / f"{i:05d}.json").write_text(body)
        (base / "datos.zip").write_bytes(zip_data)
        _entry_files(tree, corte)
        cortes.append(_build_site(workdir, tree, corte))
    return cortes


def _entry_files(tree: Path, corte: str) -> None:
    (tree / "json").mkdir(parents=True, exist_ok=True)
    (tree / "json" / "main.json").write_text(json.dumps({"corte": corte}))
    (tree / "index.html").write_text(f"<html><body>{corte}</body></html>")


def _site_large(workdir: Path) -> list[str]:
    spec = _spec()
    cortes = []
    for k, csv_dir in zip(SYNTH_CORTES, _synthetic_cortes(workdir), strict=True):
        corte = spec.corte_id(k)
        tree = workdir / "sitio" / corte
        for clave, actas in _casillas(csv_dir).items():
            seccion = clave[2:6]
            target = tree / "json" / "casillas" / seccion / f"{clave}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_casilla_page(clave, actas))
        _entry_files(tree, corte)
        zip_dir = workdir / "zips"
        zip_dir.mkdir(exist_ok=True)
        write_roster(zip_dir, [])
        built = _build(zip_dir, [csv_dir])
        (tree / "datos").mkdir()
        shutil.copy(next((zip_dir / "paquetes" / built / "datos").glob("*.zip")), tree / "datos")
        cortes.append(_build_site(workdir, tree, corte))
    return cortes


def _casillas(csv_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    """Every casilla's rows, by election, from the corte's CSVs."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for path in sorted(csv_dir.glob("*/*_20??.csv")):
        if "CANDIDATURA" in path.name:
            continue
        election = path.parent.name.split("_PREP_")[1].rsplit("_", 1)[0]
        lines = path.read_text(encoding="utf-8").splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("CLAVE_CASILLA"))
        for row in csv.DictReader(lines[header:]):
            clave = row["CLAVE_CASILLA"]
            if clave != "-":
                found.setdefault(clave, {})[election] = row
    return found


def _casilla_page(clave: str, actas: dict[str, dict[str, str]]) -> str:
    arrived = any(row.get("TOTAL_VOTOS_CALCULADO") for row in actas.values())
    # A stand-in for the scanned acta the vendor's page links: about 6 KB, new once it arrives.
    seed = hashlib.sha256(f"{clave}:{arrived}".encode()).digest()
    image = hashlib.shake_256(seed).hexdigest(3000)
    page = {"clave": clave, "actas": actas, "imagen": image if arrived else "", "pad": ""}
    if not arrived:
        page["pad"] = "-" * 6000
    return json.dumps(page, ensure_ascii=False, indent=1, sort_keys=True)

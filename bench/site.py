"""Benchmark of the public site: its weight and how soon a phone on a slow network shows it.

    .venv/bin/python bench/site.py              # part of make bench; a couple of minutes
    .venv/bin/python bench/site.py --repeat 5

The Campeche corte of 2021-06-07 13:20 is built with ``prepush build`` and served by
Debian's nginx with the guide's server block (docs/difusores.md), once as the guide leaves
it and once with gzip on for text (a line a difusor may add). Debian's Chromium opens it as a
phone (360 x 780) with a cold cache, with Chromium's own network throttling (DevTools
protocol, Network.emulateNetworkConditions) and the CPU slowed 4 times, as Lighthouse does
for a mobile page, in each profile of PROFILES. Measured from the navigation's start:

- first contentful paint (the page's own text: header and legend);
- the results on screen: the site's ``prep:pintado`` mark, set when a view is painted with
  its figures (home: every election's summary; ``#gob``: votes by candidatura);
- bytes transferred, and the page budget: HTML + JS + CSS, gzip -9 (what the page costs
  before any figure), checked against BUDGET_BYTES.

Results: bench/results/sitio-<stamp>.json and .md. The median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import write_roster
from prepush.__main__ import main as prepush
from prepush.corte.builder import PAGE_BUDGET_BYTES
from tests.conftest import chromium
from tests.support.prepdata import cortes_dir
from tests.support.servers import Nginx, nginx_available

WORK = REPO / "bench" / "work" / "sitio"
RESULTS = REPO / "bench" / "results"
CORTE = "20210607_1320"
BUDGET_BYTES = PAGE_BUDGET_BYTES
# Chromium DevTools' own presets (front_end/core/sdk/NetworkManager.ts): bytes per second
# and round-trip latency in milliseconds.
PROFILES = {
    "3G lento": {"download": 50_000, "upload": 50_000, "latency": 2000},
    "4G lento": {"download": 180_000, "upload": 84_375, "latency": 562.5},
}
CPU_SLOWDOWN = 4
ROUTES = {"inicio": "", "gubernatura": "#gob"}
GZIP = "gzip on; gzip_comp_level 6; gzip_types text/css application/javascript application/json;"


def build() -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    workdir = WORK / "campeche"
    workdir.mkdir(parents=True)
    write_roster(workdir, [])
    inputs = [str(p) for p in sorted(cortes_dir().glob(f"{CORTE}_PREP_*"))]
    assert prepush(["-C", str(workdir), "build", *inputs]) == 0
    return workdir / "paquetes" / CORTE


def budget(package: Path) -> dict[str, Any]:
    main = json.loads((package / "json/main.json").read_bytes())
    index = json.loads((package / main["index"]).read_bytes())["objects"]
    page = [package / "index.html", *sorted((package / "assets").iterdir())]
    data = {
        "json/main.json": package / "json/main.json",
        "índice": package / main["index"],
        "gob/resumen.json": package / index["gob/resumen.json"],
    }

    def sizes(path: Path) -> dict[str, int]:
        raw = path.read_bytes()
        return {"bytes": len(raw), "gzip": len(gzip.compress(raw, 9))}

    files = {p.name: sizes(p) for p in page}
    return {
        "page": files,
        "page_gzip": sum(f["gzip"] for f in files.values()),
        "page_bytes": sum(f["bytes"] for f in files.values()),
        "budget_gzip": BUDGET_BYTES,
        "data": {name: sizes(path) for name, path in data.items()},
    }


MEASURE = """
var done = arguments[arguments.length - 1];
function check() {
    var painted = performance.getEntriesByName('prep:pintado');
    if (!painted.length) { setTimeout(check, 50); return; }
    var fcp = performance.getEntriesByName('first-contentful-paint');
    var nav = performance.getEntriesByType('navigation')[0];
    var bytes = nav.transferSize + performance.getEntriesByType('resource').reduce(
        function (sum, e) { return sum + e.transferSize; }, 0);
    done({fcp: fcp.length ? fcp[0].startTime : null, results: painted[0].startTime,
          bytes: bytes});
}
check();
"""


def measure(url: str, profile: dict[str, float], repeat: int) -> dict[str, float]:
    runs = []
    for n in range(repeat):
        driver = chromium(WORK / f"perfil-{n}")
        try:
            driver.set_window_size(360, 780)
            driver.set_script_timeout(120)
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
            driver.execute_cdp_cmd(
                "Network.emulateNetworkConditions",
                {
                    "offline": False,
                    "latency": profile["latency"],
                    "downloadThroughput": profile["download"],
                    "uploadThroughput": profile["upload"],
                },
            )
            driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
            driver.get(url)
            runs.append(driver.execute_async_script(MEASURE))
        finally:
            driver.quit()
            shutil.rmtree(WORK / f"perfil-{n}", ignore_errors=True)
    return {
        key: round(statistics.median(r[key] for r in runs if r[key] is not None), 1)
        for key in ("fcp", "results", "bytes")
    }


def report(results: dict[str, Any]) -> str:
    b = results["budget"]
    lines = [
        f"# Sitio: peso y primera vista ({results['stamp']})",
        "",
        f"Corte {CORTE} de Campeche; Chromium {results['chromium']}, 360 x 780, CPU"
        f" {CPU_SLOWDOWN}x más lenta, caché vacía; mediana de {results['repeat']} corridas.",
        "",
        f"Página (HTML + JS + CSS, gzip -9): **{b['page_gzip']:,} bytes** de un presupuesto de"
        f" {b['budget_gzip']:,} ({b['page_bytes']:,} sin comprimir).",
        "",
        "| archivo | bytes | gzip -9 |",
        "|---|---:|---:|",
        *(
            f"| {n} | {s['bytes']:,} | {s['gzip']:,} |"
            for n, s in {**b["page"], **b["data"]}.items()
        ),
        "",
        "| nginx | red | vista | primer texto (ms) | resultados en pantalla (ms) | bytes transferidos |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in results["runs"]:
        lines.append(
            f"| {row['nginx']} | {row['profile']} | {row['route']} | {row['fcp']:,.0f} |"
            f" {row['results']:,.0f} | {row['bytes']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def run(repeat: int) -> dict[str, Any]:
    if not nginx_available():
        raise SystemExit("El benchmark del sitio necesita nginx (Debian) y ser root.")
    package = build()
    results: dict[str, Any] = {
        "stamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "corte": CORTE,
        "repeat": repeat,
        "budget": budget(package),
        "runs": [],
    }
    for label, extra in (("bloque de la guía", ""), ("con gzip", GZIP)):
        server = Nginx(package, http_extra=extra).start()
        try:
            for profile_name, profile in PROFILES.items():
                for route_name, route in ROUTES.items():
                    figures = measure(server.url + route, profile, repeat)
                    row = {"nginx": label, "profile": profile_name, "route": route_name}
                    results["runs"].append({**row, **figures})
                    print(row, figures, flush=True)
        finally:
            server.stop()
    driver = chromium(WORK / "perfil-version")
    results["chromium"] = driver.capabilities.get("browserVersion", "")
    driver.quit()
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = run(args.repeat)
    RESULTS.mkdir(exist_ok=True)
    base = RESULTS / f"sitio-{results['stamp']}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    base.with_suffix(".md").write_text(report(results))
    print(report(results))
    if results["budget"]["page_gzip"] > BUDGET_BYTES:
        raise SystemExit(
            f"La página pesa {results['budget']['page_gzip']:,} bytes comprimida: más que el"
            f" presupuesto de {BUDGET_BYTES:,}."
        )


if __name__ == "__main__":
    cli()

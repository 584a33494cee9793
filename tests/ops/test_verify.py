"""verify against real nginx serving what prepush published to a real sshd; torn-state test."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from prepush.__main__ import main
from prepush.package import Package
from prepush.sim.synth import spec_for, write_corte
from tests.conftest import ProxyFactory, Workdir
from tests.support.commands import run_json
from tests.support.servers import Endpoint, Nginx

CORTES = ("20210606_2320", "20210606_2340")


@pytest.fixture
def published(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> Endpoint:
    web = nginx_factory(sshd_plain.local_root)
    difusor = dataclasses.replace(sshd_plain, url=web.url)
    workdir.write_roster([difusor])
    for corte in CORTES:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    return difusor


def only(report: dict) -> dict:  # type: ignore[type-arg]
    (result,) = report["results"]
    return result  # type: ignore[no-any-return]


def test_an_untouched_corte_passes(
    published: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_json(workdir, capsys, "verify")
    result = only(report)
    assert code == 0, result
    assert result["status"] == "pass"
    assert result["corte"] == CORTES[1]
    assert result["files_checked"] == len(
        Package.open(workdir.path / "paquetes" / CORTES[1]).manifest.files
    )


def test_one_changed_byte_fails_naming_the_file(
    published: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    main_json = json.loads((published.local_root / "json/main.json").read_bytes())
    index = json.loads((published.local_root / main_json["index"]).read_bytes())
    target = index["objects"]["gob/distrito/001.json"]
    data = (published.local_root / target).read_bytes()
    (published.local_root / target).write_bytes(data.replace(b'"total":', b'"total" :', 1))
    code, report = run_json(workdir, capsys, "verify")
    result = only(report)
    assert code == 3
    assert result["mismatched"] == [target]


def test_a_deleted_file_is_named_as_missing(
    published: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    zip_path = json.loads((published.local_root / "json/main.json").read_bytes())["zip"]
    (published.local_root / zip_path).unlink()
    code, report = run_json(workdir, capsys, "verify")
    assert code == 3
    assert only(report)["missing"] == [zip_path]


def test_an_injected_script_in_index_html_is_caught(
    published: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    page = published.local_root / "index.html"
    page.write_bytes(page.read_bytes().replace(b"</body>", b"<script>alert(1)</script></body>"))
    code, report = run_json(workdir, capsys, "verify")
    assert code == 3
    assert only(report)["mismatched"] == ["index.html"]


def test_without_the_header_rule_it_warns(
    sshd_plain: Endpoint,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
) -> None:
    web = nginx_factory(sshd_plain.local_root, cache_rule=False)
    workdir.write_roster([dataclasses.replace(sshd_plain, url=web.url)])
    workdir.build(CORTES[0])
    assert run_json(workdir, capsys, "publish")[0] == 0
    code, report = run_json(workdir, capsys, "verify")
    result = only(report)
    assert code == 0
    assert result["status"] == "warn"
    assert any("Cache-Control" in note for note in result["notes"])


def test_a_difusor_serving_the_previous_corte_shows_its_lag(
    published: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    # Someone on the difusor's side put back the previous main.json (a stale cache would too).
    previous = workdir.path / "paquetes" / CORTES[0] / "json" / "main.json"
    (published.local_root / "json/main.json").write_bytes(previous.read_bytes())
    (published.local_root / "index.html").write_bytes(
        (workdir.path / "paquetes" / CORTES[0] / "index.html").read_bytes()
    )
    code, report = run_json(workdir, capsys, "verify")
    result = only(report)
    assert code == 0  # a lag warns, it does not fail
    assert result["corte"] == CORTES[0]
    assert result["delivered"] == CORTES[1]
    assert result["cortes_behind"] == 1
    assert result["status"] == "warn"
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    assert status["difusores"][0]["public_corte"] == CORTES[0]


def test_readers_never_see_a_torn_site(
    sshd_plain: Endpoint,
    fault_proxy: ProxyFactory,
    workdir: Workdir,
    nginx_factory: Callable[..., Nginx],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Ten cortes in a row, uploads cut at random, a reader that never stops reading."""
    web = nginx_factory(sshd_plain.local_root)
    proxy, proxied = fault_proxy(sshd_plain)
    proxy.faults.reset_probability = 0.005
    # Synthetic data: every acta esperada has its row.
    workdir.write_roster([proxied], deadline=10, rowless_actas={})
    start = datetime(2027, 6, 6, 20, 0, tzinfo=ZoneInfo("America/Merida"))
    spec = spec_for("small", 3, 10, start, 15)
    manifests: dict[str, dict[str, str]] = {}
    stop = threading.Event()
    reads = {"count": 0, "inconsistent": []}  # type: dict[str, object]

    def reader() -> None:
        with httpx.Client(base_url=web.url, timeout=5) as client:
            while not stop.is_set():
                response = client.get("json/main.json", params={"t": "x"})
                if response.status_code != 200:
                    stop.wait(0.05)  # nothing published yet
                    continue
                corte = json.loads(response.content)["corte"]
                expected = manifests.get(corte)
                if expected is None:
                    continue
                for path, digest in expected.items():
                    got = client.get(path)
                    if got.status_code != 200 or hashlib.sha256(got.content).hexdigest() != digest:
                        reads["inconsistent"].append((corte, path, got.status_code))  # type: ignore[attr-defined]
                reads["count"] = int(reads["count"]) + 1  # type: ignore[call-overload]

    thread = threading.Thread(target=reader, name="lector")
    thread.start()
    delivered = 0
    try:
        for k in range(spec.cortes):
            corte_dir = write_corte(spec, k, tmp_path / "prep")
            capsys.readouterr()
            assert main(["-C", str(workdir.path), "build", str(corte_dir)]) == 0
            package = Package.open(workdir.path / "paquetes" / spec.corte_id(k))
            manifests[package.corte] = {
                f.path: f.sha256 for f in package.manifest.files if f.path != "json/main.json"
            }
            code, report = run_json(workdir, capsys, "publish")
            outcome = report["deliveries"][0]["outcome"]
            # A run that reached no difusor exits 3; every cut that is not retried away fails it.
            assert code == (0 if outcome == "delivered" else 3), report
            delivered += outcome == "delivered"
    finally:
        stop.set()
        thread.join(30)
    print(f"lecturas completas del sitio: {reads['count']}; cortes entregados: {delivered}")
    assert reads["inconsistent"] == [], str(reads["inconsistent"])[:2000]
    assert int(reads["count"]) > 10  # type: ignore[call-overload]
    assert delivered >= 3
    assert proxy.resets > 0

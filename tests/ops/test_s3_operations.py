"""What the operator has for SFTP difusores, on S3 difusores: status, report, verify over the
bucket's URL, suspension with the 'interrupted' notice, embargo, --watch over one client, a
lost state rebuilt from one listing, and large files in parts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prepush.__main__ import main
from prepush.ledger import Ledger
from prepush.package import Package
from prepush.publish.publisher import ConnectionPool
from prepush.publish.request import PublishReport, PublishRequest
from prepush.publish.watch import watch
from prepush.settings import Difusor, Settings, load_settings
from prepush.transports.base import Transport
from tests.conftest import BucketFactory, FaultProxyFactory, Workdir
from tests.support.commands import run_json
from tests.support.prepdata import CORTES
from tests.support.s3 import NO_CACHE
from tests.support.trees import expected_tree


def test_status_report_and_verify_over_the_bucket_url(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    for corte in CORTES[2:4]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    code, status = run_json(workdir, capsys, "status")
    assert code == 0
    assert status["difusores"][0]["serving_corte"] == CORTES[3]
    assert status["difusores"][0]["cortes_behind"] == 0
    code, verified = run_json(workdir, capsys, "verify")
    (result,) = verified["results"] if "results" in verified else verified["difusores"]
    assert code == 0, result
    assert result["status"] == "pass", result
    assert result["corte"] == CORTES[3]
    assert result["files_checked"] == len(
        Package.open(workdir.path / "paquetes" / CORTES[3]).manifest.files
    )
    code, report = run_json(workdir, capsys, "report")
    assert code == 0
    assert report["difusores"][0]["cortes_delivered"] == 2
    # Somebody changes a file behind prepush's back: verify says which.
    bucket.local.client().put_object(
        Bucket=bucket.bucket, Key="index.html", Body=b"<html>otro</html>"
    )
    code, verified = run_json(workdir, capsys, "verify")
    (result,) = verified["results"] if "results" in verified else verified["difusores"]
    assert result["status"] == "fail"
    assert "index.html" in json.dumps(result)


def test_suspension_marks_the_bucket_and_resume_puts_the_real_corte_back(
    s3_bucket: BucketFactory,
    fault_proxies: FaultProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_bucket()
    proxy = fault_proxies(bucket.host, bucket.port)
    proxied = bucket.through(proxy.port)
    workdir.write_roster([proxied], deadline=2, notice_on_suspend=True)
    workdir.build(CORTES[2])
    assert run_json(workdir, capsys, "publish")[0] == 0
    proxy.faults.reset_after_bytes = 20_000  # small requests pass, a corte does not
    outcomes = []
    for corte in CORTES[3:6]:
        workdir.build(corte)
        outcomes.append(run_json(workdir, capsys, "publish")[1]["deliveries"][0]["outcome"])
    assert outcomes == ["failed"] * 3
    served = json.loads(bucket.tree()["json/main.json"])
    assert served["corte"] == CORTES[2]
    assert served["aviso"].startswith("Actualización interrumpida")
    assert bucket.objects()["json/main.json"]["cache_control"] == NO_CACHE
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger.active_suspension(proxied.name) is not None
        assert [e.kind for e in ledger.events("notice")] == ["notice"]
    _, report = run_json(workdir, capsys, "publish")
    assert report["deliveries"][0]["outcome"] == "skipped_suspended"
    proxy.faults.clear()
    assert main(["-C", str(workdir.path), "resume", proxied.name]) == 0
    assert run_json(workdir, capsys, "publish")[0] == 0
    served = json.loads(bucket.tree()["json/main.json"])
    assert served["corte"] == CORTES[5]
    assert "aviso" not in served


def test_an_official_corte_before_the_window_reaches_no_bucket(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket()
    workdir.write_roster(
        [bucket], publication={"start": "2099-06-06T19:00:00", "end": "2099-12-31T23:59:00"}
    )
    workdir.build(CORTES[2])
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "publish"]) == 2
    assert "es oficial y la publicación empieza" in capsys.readouterr().err
    assert bucket.tree(with_meta=True) == {}


def test_watch_publishes_each_new_corte_over_the_same_client(
    s3_bucket: BucketFactory, workdir: Workdir
) -> None:
    from prepush.publish.publisher import publish_async
    from prepush.transports.s3.connect import open_s3

    bucket = s3_bucket()
    workdir.write_roster([bucket])
    workdir.build(CORTES[2])
    settings = load_settings(workdir.path)
    published: list[str | None] = []
    opened: list[str] = []

    async def connector(difusor: Difusor, settings: Settings) -> Transport:
        opened.append(difusor.name)
        return await open_s3(difusor, settings)

    class Enough(Exception):
        pass

    async def run(request: PublishRequest, pool: ConnectionPool) -> PublishReport:
        published.append(request.corte)
        report = await publish_async(request, lambda _: None, pool)
        assert report.exit_code == 0
        if len(published) == 1:
            workdir.build(CORTES[3])
        else:
            raise Enough
        return report

    with pytest.raises(Enough):
        watch(PublishRequest(settings, settings.roster.difusores), 0.01, run, connector)
    assert published == [CORTES[2], CORTES[3]]
    assert opened == [bucket.name], "the second corte reuses the client"
    assert bucket.main_json_corte() == CORTES[3]


def test_a_lost_state_is_rebuilt_from_one_listing_and_held_files_are_not_sent_again(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    for corte in CORTES[2:4]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    bucket.local.client().delete_object(Bucket=bucket.bucket, Key=".prepush/state.json")
    workdir.build(CORTES[4])
    bucket.local.clear_records()
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0
    (row,) = report["deliveries"]
    listings = [r for r in bucket.local.records() if r.method == "GET" and "list-type=2" in r.query]
    assert len(listings) == 1
    old = Package.open(workdir.path / "paquetes" / CORTES[3]).manifest.by_path()
    new = Package.open(workdir.path / "paquetes" / CORTES[4]).manifest
    changed = {f.path for f in new.files if f.path not in old or old[f.path].sha256 != f.sha256}
    sent = {
        r.path.split("/", 2)[2]
        for r in bucket.local.records()
        if r.method == "PUT" and not r.path.split("/", 2)[2].startswith(".prepush/")
    }
    # The entry files are flipped again whatever the bucket holds: no state says which
    # corte's entry file is there. Every other file already there is not sent again.
    assert sent == changed | {"index.html"}
    # Nothing was deleted on a state that could not vouch for it; the corte is whole.
    assert bucket.main_json_corte() == CORTES[4]
    tree = bucket.tree()
    assert expected_tree(workdir, list(CORTES[2:5])).items() <= tree.items()
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert [e.kind for e in ledger.events("state_missing")] == ["state_missing"]
    # The next corte trusts the new state again: no listing.
    workdir.build(CORTES[5])
    bucket.local.clear_records()
    assert run_json(workdir, capsys, "publish")[0] == 0
    assert not [r for r in bucket.local.records() if "list-type=2" in r.query]
    assert row["outcome"] == "delivered"


def test_a_large_file_goes_in_parts_and_arrives_whole(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os

    from prepush.transports.s3 import transport as s3_transport

    monkeypatch.setattr(s3_transport, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_transport, "PART_SIZE", 5 * 1024 * 1024)
    site = tmp_path / "sitio"
    (site / "json").mkdir(parents=True)
    (site / "datos").mkdir()
    (site / "index.html").write_text("<html>prep</html>")
    (site / "json/main.json").write_text(json.dumps({"corte": "20270606_2000"}))
    big = os.urandom(12 * 1024 * 1024)
    (site / "datos/grande.bin").write_bytes(big)
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    assert (
        main(["-C", str(workdir.path), "build", "--site", str(site), "--corte", "20270606_2000"])
        == 0
    )
    code, report = run_json(workdir, capsys, "publish")
    assert code == 0, report
    head = bucket.local.client().head_object(Bucket=bucket.bucket, Key="datos/grande.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ETag"].strip('"') == s3_transport.s3_etag(big)
    assert bucket.tree()["datos/grande.bin"] == big


def test_rollback_flips_the_bucket_back_and_cloudfront_drops_it(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket(cloudfront=True)
    workdir.write_roster([bucket])
    for corte in CORTES[2:5]:
        workdir.build(corte)
        assert run_json(workdir, capsys, "publish")[0] == 0
    bucket.local.clear_records()
    code, report = run_json(workdir, capsys, "rollback", "--to", CORTES[3])
    assert code == 0, report
    assert bucket.main_json_corte() == CORTES[3]
    tree = bucket.tree()
    for path, data in workdir.package_tree(CORTES[3]).items():
        assert tree[path] == data, path
    asked = bucket.local.records()
    # Only the entry file changes: no object of the corte is sent again.
    puts = {r.path for r in asked if r.method == "PUT" and "/.prepush/" not in r.path}
    assert puts == {f"/{bucket.bucket}/json/main.json"}
    assert [r for r in asked if r.method == "POST" and r.path.endswith("/invalidation")]
    assert bucket.objects()["json/main.json"]["cache_control"] == NO_CACHE

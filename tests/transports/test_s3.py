"""S3 difusores against a real endpoint over HTTP (moto's server mode): what the bucket holds
after each corte, byte for byte and header by header, what each corte costs in requests, and
what the operator is told when the bucket or its credentials are wrong.

Every object is read back with boto3, not the client that wrote it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from prepush.__main__ import main
from prepush.sim.s3local import SITE_POLICY, LocalS3
from prepush.transports.s3.transport import content_type
from tests.conftest import BucketFactory, Workdir
from tests.support.commands import deliveries, publish
from tests.support.prepdata import CORTES
from tests.support.s3 import IMMUTABLE, NO_CACHE, S3Endpoint, guide_bucket_policy
from tests.support.trees import expected_tree

ENTRY_FILES = ("index.html", "json/main.json")


def assert_headers(bucket: S3Endpoint) -> None:
    for path, found in bucket.objects().items():
        if path.startswith(".prepush/"):
            assert found["cache_control"] == NO_CACHE, path
            continue
        wanted = NO_CACHE if path in ENTRY_FILES else IMMUTABLE
        assert found["cache_control"] == wanted, path
        assert found["content_type"] == content_type(path), path


def test_seven_campeche_cortes_leave_exactly_each_corte_in_the_bucket(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket()
    workdir.write_roster([bucket], deadline=60)
    published: list[str] = []
    for corte in CORTES:
        workdir.build(corte)
        code, report = publish(workdir, capsys)
        rows = deliveries(report)
        row = rows[bucket.name]
        assert code == 0, (row["error_class"], row["error_message"])
        assert row["outcome"] == "delivered"
        assert row["atomic"] is True
        published.append(corte)
        assert bucket.tree() == expected_tree(workdir, published)
        assert bucket.main_json_corte() == corte
        assert_headers(bucket)
    assert {".prepush/state.json"} == {p for p in bucket.tree(with_meta=True) if p[0] == "."}


def test_the_content_types_of_a_corte() -> None:
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("json/main.json") == "application/json; charset=utf-8"
    assert content_type("assets/app.js") == "text/javascript; charset=utf-8"
    assert content_type("assets/app.css") == "text/css; charset=utf-8"
    assert content_type("datos/PREP.zip") == "application/zip"
    assert content_type("datos/x.unknownext") == "application/octet-stream"


def test_the_same_corte_again_costs_only_the_lock_and_the_state(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    workdir.build(CORTES[2])
    assert publish(workdir, capsys)[0] == 0
    bucket.local.clear_records()
    code, report = publish(workdir, capsys)
    rows = deliveries(report)
    assert code == 0
    assert rows[bucket.name]["outcome"] == "up_to_date"
    asked = [(r.method, r.path.split("/", 2)[-1]) for r in bucket.local.records()]
    # HeadBucket, lock create, state + pending reads, lock release: never a listing nor a PUT
    # of the corte's files.
    assert len(asked) == rows[bucket.name]["requests"] + 1, asked
    assert not [a for a in asked if a[0] == "GET" and a[1] == ""], asked
    assert {p for m, p in asked if m == "PUT"} == {".prepush/lock"}, asked


# --- check ----------------------------------------------------------------------------------


def run_check(workdir: Workdir, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["-C", str(workdir.path), "check", "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, {d["difusor"]: {c["name"]: c for c in d["checks"]} for d in report["difusores"]}


SMALL_PROBE = {"probe_size_mb": 1, "min_throughput_mb_s": 0.1}


def test_check_passes_on_a_bucket_with_the_guide_policy_and_cloudfront(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket(cloudfront=True)
    workdir.write_roster([bucket], requirements=SMALL_PROBE)
    code, checks = run_check(workdir, capsys)
    found = checks[bucket.name]
    assert code == 0, [c for c in found.values() if c["status"] != "pass"]
    for name in ("auth", "extensions", "space", "write", "throughput", "clock", "http"):
        assert found[name]["status"] == "pass", found[name]
    assert found["cache_control"]["status"] == "pass", found["cache_control"]
    assert found["private_dir"]["status"] == "pass", found["private_dir"]
    assert found["cdn"]["status"] == "pass", found["cdn"]
    assert "MinTTL 0" in found["cdn"]["detail"]
    # The probes are gone: only prepush's own objects would remain, and none does.
    assert bucket.tree(with_meta=True) == {}


def test_check_warns_when_cloudfront_keeps_main_json(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = s3_bucket(cloudfront=True, main_json_min_ttl=60)
    workdir.write_roster([bucket], requirements=SMALL_PROBE)
    code, checks = run_check(workdir, capsys)
    cdn = checks[bucket.name]["cdn"]
    assert code == 0
    assert cdn["status"] == "warn"
    assert "al menos 60 s" in cdn["detail"]
    assert "CachingDisabled" in cdn["detail"]


def test_a_missing_bucket_is_said_in_spanish_and_fails_that_difusor_only(
    s3_bucket: BucketFactory, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    good = s3_bucket("bueno")
    missing = dataclasses.replace(s3_bucket("sin-bucket"), bucket="no-existe-este-bucket")
    workdir.write_roster([good, missing], requirements=SMALL_PROBE)
    code, checks = run_check(workdir, capsys)
    assert code == 1
    assert checks[missing.name]["s3"]["status"] == "fail"
    assert "El bucket no-existe-este-bucket no existe" in checks[missing.name]["s3"]["detail"]
    workdir.build(CORTES[2])
    code, report = publish(workdir, capsys)
    rows = deliveries(report)
    assert code == 1
    assert rows[good.name]["outcome"] == "delivered"
    assert rows[missing.name]["outcome"] == "failed"
    assert "Revise bucket, region y endpoint_url" in str(rows[missing.name]["error_message"])


def test_a_bucket_that_refuses_writes_is_told_with_what_to_ask(
    s3_bucket: BucketFactory,
    local_s3: LocalS3,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_bucket()
    refusing = {
        "Version": "2012-10-17",
        "Statement": [
            *SITE_POLICY["Statement"],
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::BUCKET/*",
            },
        ],
    }
    local_s3.make_bucket(bucket.bucket, policy=refusing)
    workdir.write_roster([bucket])
    workdir.build(CORTES[2])
    code, report = publish(workdir, capsys)
    rows = deliveries(report)
    row = rows[bucket.name]
    assert code == 3
    assert row["error_class"] == "AuthError"
    message = str(row["error_message"])
    assert "negó el permiso al crear .prepush/lock" in message
    assert "s3:PutObject" in message
    assert bucket.tree(with_meta=True) == {}


def test_cleanup_checks_each_key_deleteobjects_answers(
    s3_bucket: BucketFactory,
    local_s3: LocalS3,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_bucket()
    workdir.write_roster([bucket], retention=2)
    guide = guide_bucket_policy()
    no_zip_deletes = {
        **guide,
        "Statement": [
            *guide["Statement"],
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": "arn:aws:s3:::BUCKET/datos/*",
            },
        ],
    }
    published: list[str] = []
    for corte in CORTES[2:4]:
        workdir.build(corte)
        assert publish(workdir, capsys)[0] == 0
        published.append(corte)
    local_s3.make_bucket(bucket.bucket, policy=no_zip_deletes)
    workdir.build(CORTES[4])
    code, report = publish(workdir, capsys)
    rows = deliveries(report)
    row = rows[bucket.name]
    published.append(CORTES[4])
    # Delivered (the flip happened), with the refused keys named.
    assert (code, row["outcome"]) == (0, "delivered")
    message = str(row["error_message"])
    assert "S3 no borró 1 de" in message
    assert f"datos/{CORTES[2]}" in message
    assert "AccessDenied" in message
    left = set(bucket.tree()) - set(expected_tree(workdir, published, retention=2))
    assert len(left) == 1
    assert left.pop().startswith(f"datos/{CORTES[2]}")
    # Allowed again, the next publish of the same corte finishes the cleanup.
    local_s3.make_bucket(bucket.bucket, policy=guide_bucket_policy())
    code, report = publish(workdir, capsys)
    rows = deliveries(report)
    assert (code, rows[bucket.name]["outcome"]) == (0, "up_to_date")
    assert bucket.tree() == expected_tree(workdir, published, retention=2)

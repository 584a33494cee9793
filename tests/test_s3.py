"""S3 difusores against a real endpoint over HTTP (moto's server mode): what the bucket holds
after each corte, byte for byte and header by header, what each corte costs in requests, and
what the operator is told when the bucket or its credentials are wrong.

Every object is read back with boto3, not the client that wrote it.
"""

from __future__ import annotations

import json

import pytest

from prepush.__main__ import main
from prepush.transports.s3 import content_type
from tests.conftest import BucketFactory, Workdir
from tests.prepdata import CORTES
from tests.s3 import IMMUTABLE, NO_CACHE, S3Endpoint

ENTRY_FILES = ("index.html", "json/main.json")


def publish(
    workdir: Workdir, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, dict[str, object]]]:
    capsys.readouterr()
    code = main(["-C", str(workdir.path), "publish", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    return code, {str(d["difusor"]): d for d in report["deliveries"]}


def expected_tree(workdir: Workdir, published: list[str], retention: int = 3) -> dict[str, bytes]:
    tree: dict[str, bytes] = {}
    for corte in published[-retention:]:
        tree.update(workdir.package_tree(corte))
    tree.update(workdir.package_tree(published[-1]))
    return tree


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
        code, rows = publish(workdir, capsys)
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
    code, rows = publish(workdir, capsys)
    assert code == 0
    assert rows[bucket.name]["outcome"] == "up_to_date"
    asked = [(r.method, r.path.split("/", 2)[-1]) for r in bucket.local.records()]
    # HeadBucket, lock create, state + pending reads, lock release: never a listing nor a PUT
    # of the corte's files.
    assert len(asked) == rows[bucket.name]["requests"] + 1, asked
    assert not [a for a in asked if a[0] == "GET" and a[1] == ""], asked
    assert {p for m, p in asked if m == "PUT"} == {".prepush/lock"}, asked

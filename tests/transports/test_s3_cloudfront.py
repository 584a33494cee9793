"""CloudFront in front of an S3 difusor: json/main.json the last PUT of each corte, sent after
every other PUT was answered; after it, and never before, an invalidation of exactly the entry
paths that changed, waited for, its completion in the ledger. The order is read from the
endpoint's own request records (prepush.sim.s3local --log)."""

from __future__ import annotations

import json

import pytest

from prepush.__main__ import main
from prepush.ledger import Ledger
from prepush.package import Package
from prepush.sim.s3local import LocalS3, Recorded
from tests.conftest import BucketFactory, Workdir
from tests.support.prepdata import CORTES


def flips_and_invalidations(records: list[Recorded], bucket: str) -> list[Recorded]:
    return [
        r
        for r in records
        if (r.method == "PUT" and r.path == f"/{bucket}/json/main.json")
        or (r.method == "POST" and r.path.endswith("/invalidation"))
    ]


def main_json_last(records: list[Recorded], bucket: str) -> None:
    """In one publish: json/main.json is the last PUT of the corte's files, started only
    after every other one was answered (prepush's own .prepush/ files aside)."""
    puts = [
        r
        for r in records
        if r.method == "PUT" and r.path.startswith(f"/{bucket}/") and "/.prepush/" not in r.path
    ]
    (flip,) = [r for r in puts if r.path == f"/{bucket}/json/main.json"]
    others = [r for r in puts if r is not flip]
    assert others, "the corte sent nothing before main.json"
    assert all(r.status == 200 and r.finished <= flip.started for r in others), flip


def test_an_invalidation_of_the_flipped_entry_paths_follows_each_flip(
    s3_bucket: BucketFactory,
    local_s3: LocalS3,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_bucket(cloudfront=True)
    assert bucket.distribution_id is not None
    workdir.write_roster([bucket])
    cortes = CORTES[2:5]
    flipped: list[set[str]] = []
    previous: Package | None = None
    records: list[Recorded] = []
    for corte in cortes:
        workdir.build(corte)
        package = Package.open(workdir.path / "paquetes" / corte)
        flipped.append(
            {
                "/" + path
                for path in package.manifest.entry_files
                if previous is None
                or previous.manifest.by_path()[path].sha256
                != package.manifest.by_path()[path].sha256
            }
        )
        previous = package
        capsys.readouterr()
        local_s3.clear_records()
        assert main(["-C", str(workdir.path), "publish", "--json"]) == 0
        json.loads(capsys.readouterr().out)
        main_json_last(local_s3.records(), bucket.bucket)
        records += local_s3.records()
    sequence = flips_and_invalidations(records, bucket.bucket)
    assert [r.method for r in sequence] == ["PUT", "POST"] * len(cortes), sequence
    for put, post in zip(sequence[::2], sequence[1::2], strict=True):
        assert post.started >= put.finished, (put, post)
        assert post.path == f"/2020-05-31/distribution/{bucket.distribution_id}/invalidation"
    cloudfront = local_s3.client("cloudfront")
    listed = cloudfront.list_invalidations(DistributionId=bucket.distribution_id)
    ids = [item["Id"] for item in listed["InvalidationList"].get("Items", [])]
    paths = [
        set(
            cloudfront.get_invalidation(DistributionId=bucket.distribution_id, Id=ident)[
                "Invalidation"
            ]["InvalidationBatch"]["Paths"]["Items"]
        )
        for ident in ids
    ]
    assert sorted(map(sorted, paths)) == sorted(map(sorted, flipped))
    assert {"/json/main.json"} <= set.intersection(*paths)
    with Ledger(workdir.path / "prepush.db") as ledger:
        recorded = [e for e in ledger.events("invalidation") if e.difusor == bucket.name]
    assert len(recorded) == len(cortes)
    assert all("completada" in e.message for e in recorded)

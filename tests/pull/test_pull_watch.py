"""``prepush pull --watch``: all night, under faults, and as the last link of the chain.

- Ten cortes under faults: the institute publishes to its origin bucket (``origin: true``);
  a difusor runs ``pull --watch`` (a process of its own) from it through one fault proxy into
  its own bucket through another. Each corte is hit by connection cuts (downloads cut
  mid-body at the origin side, uploads reset at the destination side) or, once, by a SIGKILL
  of the watch while the corte is half uploaded (the watch is started again). A reader polls
  the destination bucket over HTTP the whole time and must never see a torn site; each corte
  ends whole in the destination, and the report tells the incidents.
- The chain end to end: ``publish`` to the origin bucket, two difusores' ``pull --watch``
  into their own buckets, ``prepush verify`` over HTTP against the institute's manifests for
  both; each difusor's ledger records every corte, verified and flipped.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml

from prepush.__main__ import main
from prepush.exceptions import ExitCode
from prepush.package import MAIN_JSON, Package
from prepush.sim.s3local import LocalS3
from tests.conftest import BucketFactory, FaultProxyFactory, Workdir
from tests.support.crashes import Cortes, Reader, served_corte_is_whole_in_bucket
from tests.support.prepdata import CORTES
from tests.support.pull import AsOrigin, PullDifusor, public_key_of, s3_fields
from tests.support.s3 import S3Endpoint
from tests.support.trees import expected_tree

RETENTION = 3
ARRIVAL_SECONDS = 60


def keys(bucket: S3Endpoint) -> set[str]:
    listing = bucket.local.client().list_objects_v2(Bucket=bucket.bucket)
    return {str(item["Key"]) for item in listing.get("Contents", [])}


def served(bucket: S3Endpoint) -> str | None:
    try:
        found = bucket.local.client().get_object(Bucket=bucket.bucket, Key=MAIN_JSON)
    except Exception:  # not yet published
        return None
    return str(json.loads(found["Body"].read())["corte"])


def wait_for(condition: Callable[[], bool], what: str, seconds: float = ARRIVAL_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not _holds(condition):
        assert time.monotonic() < deadline, f"no llegó: {what}"
        time.sleep(0.05)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except botocore.exceptions.ClientError:  # listed, then removed by the watch meanwhile
        return False


class Watch:
    """``prepush pull --watch`` in a process of its own, as systemd would run it."""

    def __init__(self, difusor: PullDifusor) -> None:
        self.difusor = difusor
        self.process: subprocess.Popen[str] | None = None
        self.logs: list[str] = []

    def start(self) -> None:
        log = self.difusor.path / f"watch-{len(self.logs)}.log"
        self.logs.append(str(log))
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prepush",
                    "pull",
                    "--config",
                    str(self.difusor.config),
                    "--watch",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(10) == -signal.SIGKILL
        self.process = None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            code = None
        self.process = None
        return code

    def output(self) -> str:
        return "\n".join(Path(p).read_text(errors="replace") for p in self.logs)


@pytest.fixture
def watches() -> Iterator[Callable[[PullDifusor], Watch]]:
    started: list[Watch] = []

    def make(difusor: PullDifusor) -> Watch:
        watch = Watch(difusor)
        started.append(watch)
        return watch

    yield make
    for watch in started:
        watch.stop()


def report(difusor: PullDifusor, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert difusor.run("--report", *args) == 0
    return capsys.readouterr().out


def test_ten_cortes_with_cuts_and_a_kill_never_show_a_torn_site(
    s3_bucket: BucketFactory,
    fault_proxies: FaultProxyFactory,
    watches: Callable[[PullDifusor], Watch],
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(17)
    origin, destination = s3_bucket("origen"), s3_bucket("destino")
    to_origin = fault_proxies(origin.host, origin.port)
    to_destination = fault_proxies(destination.host, destination.port)
    workdir.write_roster([AsOrigin(origin)], deadline=60, retention=RETENTION, rowless_actas={})
    difusor = PullDifusor(
        "medio-s3",
        tmp_path / "difusor",
        {"s3": s3_fields(origin.through(to_origin.port))},
        {"s3": s3_fields(destination.through(to_destination.port))},
        public_key_of(workdir.signing_key, tmp_path / "entregado"),
    )
    difusor.write_config(interval_seconds=0.1, deadline_seconds=20, files_in_flight=2)
    cortes = Cortes("prep", workdir, tmp_path)
    reader = Reader(destination.url)
    watch = watches(difusor)
    published: list[str] = []
    faults: list[str] = []
    killed = None
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        watch.start()
        wait_for(lambda: served(destination) == first.corte, first.corte)
        reader.start()
        schedule = ["origen"] * 5 + ["destino"] * 4 + ["kill"]
        rng.shuffle(schedule)
        for k, fault in enumerate(schedule, 1):
            package = cortes.build(k)
            reader.learn(package)
            earlier = {f.path for p in published for f in cortes_files(workdir, p)}
            new = {f.path for f in package.manifest.files} - earlier - {MAIN_JSON}
            if fault == "origen":
                # Two downloads from the origin cut mid-body (main.json, the signed
                # manifest, a file of the corte): downloaded again over new connections.
                at = rng.randrange(1_000, 2_500)
                to_origin.faults.reset_down_after_bytes = at
                to_origin.faults.down_resets_left = 2
                faults.append(f"origen@{at}")
            elif fault == "destino":
                at = rng.randrange(1_000, 2_500)
                to_destination.faults.reset_after_bytes = at
                to_destination.faults.resets_left = 2
                faults.append(f"destino@{at}")
            else:
                # Slow uploads, to catch the watch with the corte half in the bucket.
                to_destination.faults.rate_bytes_per_s = 8_000
                faults.append("kill")
            resets = to_origin.resets + to_destination.resets
            assert main(["-C", str(workdir.path), "publish"]) == 0
            if fault == "kill":
                wait_for(lambda new=new: bool(new & keys(destination)), f"{package.corte} a medias")
                assert served(destination) == published[-1]
                watch.kill()
                killed = package.corte
                to_destination.faults.clear()
                assert served_corte_is_whole_in_bucket(destination, reader) == published[-1]
                watch.start()
            wait_for(lambda c=package.corte: served(destination) == c, package.corte)
            if fault != "kill":
                cuts = to_origin.resets + to_destination.resets - resets
                assert cuts > 0, faults[-1]
                faults[-1] += f" ({cuts} cortes de conexión)"
            to_origin.faults.clear()
            to_destination.faults.clear()
            published.append(package.corte)
            wait_for(
                lambda p=tuple(published): destination.tree() == expected_tree(workdir, list(p)),
                f"{package.corte}: lo retenido y nada más",
                10,
            )
            assert served_corte_is_whole_in_bucket(destination, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
        code = watch.stop()
    print(f"fallas: {faults}; {reader.reads} lecturas completas")
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    # Stopped by Ctrl-C (SIGINT), as an operator would.
    assert code == ExitCode.INTERRUPTED, watch.output()[-3000:]
    check_the_report(difusor, capsys, published, killed)


def check_the_report(
    difusor: PullDifusor,
    capsys: pytest.CaptureFixture[str],
    published: list[str],
    killed: str | None,
) -> None:
    """Every corte verified and flipped; the faults as incidents with their cause."""
    document = json.loads(report(difusor, capsys, "--format", "json"))
    lines = {c["corte"]: c for c in document["cortes"]}
    assert sorted(lines) == published
    for corte in published:
        assert lines[corte]["result"] == "verificado", lines[corte]
        assert lines[corte]["flip_at"] is not None, lines[corte]
    incidents = document["incidents"]
    for incident in incidents:
        assert incident["cause"]
        assert incident["end"] is not None, incident
        assert incident["duration_s"] >= 0, incident
    # The kill: the corte it held back, until the watch started again delivered it.
    (interrupted,) = [i for i in incidents if "se detuvo a media pasada" in i["cause"]]
    assert interrupted["cortes"] == [killed]
    assert interrupted["end"] == lines[killed]["flip_at"]
    # The cuts at the origin that the pass's own retries did not absorb: said as such.
    for incident in incidents:
        if incident is not interrupted:
            assert "conexión" in incident["cause"], incident
    table = report(difusor, capsys, "--format", "csv", "--tabla", "incidencias")
    assert len(table.splitlines()) == len(incidents) + 1
    assert "## Reporte de incidencias" in report(difusor, capsys)


def cortes_files(workdir: Workdir, corte: str) -> tuple[Any, ...]:
    return Package.open(workdir.path / "paquetes" / corte).manifest.files


def test_the_chain_publish_to_an_origin_pull_by_two_difusores_and_verify_what_the_public_sees(
    s3_bucket: BucketFactory,
    local_s3: LocalS3,
    watches: Callable[[PullDifusor], Watch],
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = s3_bucket("origen")
    workdir.write_roster([AsOrigin(origin)], deadline=60, retention=RETENTION)
    public = public_key_of(workdir.signing_key, tmp_path / "entregado")
    # medio-b has CloudFront in front of its bucket: invalidated after each flip.
    buckets = {"medio-a": s3_bucket("medio-a"), "medio-b": s3_bucket("medio-b", cloudfront=True)}
    distribution = buckets["medio-b"].distribution_id
    assert distribution is not None
    difusores = {
        name: PullDifusor(
            name,
            tmp_path / name,
            {"s3": s3_fields(origin)},
            {"s3": s3_fields(bucket, cloudfront_distribution_id=bucket.distribution_id)},
            public,
        )
        for name, bucket in buckets.items()
    }
    local_s3.clear_records()
    for difusor in difusores.values():
        difusor.write_config(interval_seconds=0.1, deadline_seconds=20)
    # The institute checks what the public sees on each pull difusor: a roster of its own
    # for verify, with the difusores' public urls and the institute's packages.
    observatory = tmp_path / "observatorio"
    observatory.mkdir()
    roster = yaml.safe_load((workdir.path / "difusores.yaml").read_text())
    roster["paths"] = {"packages": str(workdir.path / "paquetes")}
    roster["difusores"] = [bucket.roster_entry() for bucket in buckets.values()]
    (observatory / "difusores.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True))
    running = [watches(d) for d in difusores.values()]
    published: list[str] = []
    for corte in CORTES[:4]:
        workdir.build(corte)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(corte)
        if len(published) == 1:
            for watch in running:
                watch.start()
        for name, bucket in buckets.items():
            wait_for(lambda b=bucket, c=corte: served(b) == c, f"{name}: {corte}")
        capsys.readouterr()
        code = main(["-C", str(observatory), "verify", "--json"])
        results = json.loads(capsys.readouterr().out)["results"]
        assert code == 0, results
        assert sorted(r["difusor"] for r in results) == sorted(buckets)
        manifest = Package.open(workdir.path / "paquetes" / corte).manifest
        for result in results:
            assert (result["status"], result["corte"]) == ("pass", corte), result
            assert result["files_checked"] == len(manifest.files), result
            assert (result["mismatched"], result["missing"]) == ([], []), result
        for name, bucket in buckets.items():
            assert bucket.tree() == expected_tree(workdir, published), (name, corte)
    for watch in running:
        watch.stop()
    for difusor in difusores.values():
        document = json.loads(report(difusor, capsys, "--format", "json"))
        lines = [(c["corte"], c["result"]) for c in document["cortes"]]
        assert lines == [(c, "verificado") for c in published], difusor.name
        for line in document["cortes"]:
            assert line["flip_at"] is not None
            assert line["arrived_at"] is not None
            assert line["arrived_at"] <= line["flip_at"]
            assert line["lag_s"] > 0
        assert document["incidents"] == []
        table = report(difusor, capsys, "--format", "csv").splitlines()
        assert table[0].startswith("corte,hora_corte,visto_en_origen,llegada_verificada")
        assert [row.split(",")[0] for row in table[1:]] == published
    # On medio-b each flip (main.json's PUT) is followed by its invalidation, never preceded.
    medio_b = buckets["medio-b"].bucket
    invalidation = f"/2020-05-31/distribution/{distribution}/invalidation"
    sequence = [
        r
        for r in local_s3.records()
        if (r.method == "PUT" and r.path == f"/{medio_b}/json/main.json")
        or (r.method == "POST" and r.path == invalidation)
    ]
    assert [r.method for r in sequence] == ["PUT", "POST"] * len(published), sequence
    for put, post in zip(sequence[::2], sequence[1::2], strict=True):
        assert post.started >= put.finished, (put, post)

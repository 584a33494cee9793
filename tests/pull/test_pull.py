"""``prepush pull``: the seven Campeche cortes from each kind of origin into each kind of
destination, in order and byte for byte.

The institute fills two origins with ``prepush publish`` itself (``origin: true`` in its
roster): an SFTP difusor whose web root nginx serves over HTTPS (a throwaway certificate made
here with openssl, basic auth), and a bucket on the local S3 endpoint. Four difusores pull:
from each origin into a directory and into a bucket of their own. After each corte, each
destination holds exactly the retained cortes, and its main.json names the new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from prepush.__main__ import main
from prepush.package import (
    load_public_key,
    published_manifest,
    published_signature,
    signature_is_valid,
)
from tests.conftest import BucketFactory, Workdir
from tests.support.prepdata import CORTES
from tests.support.pull import (
    AsOrigin,
    HttpsOrigin,
    PullDifusor,
    https_origin,
    https_origin_config,
    public_key_of,
    s3_fields,
    s3_to_directory,
)
from tests.support.servers import Endpoint
from tests.support.trees import expected_tree

__all__ = ["https_origin"]  # the fixture, used by name

RETENTION = 3


def test_seven_campeche_cortes_arrive_in_order_and_exact_from_each_origin_into_each_destination(
    https_origin: tuple[Endpoint, HttpsOrigin],
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sftp_origin, web = https_origin
    origin_bucket = s3_bucket("origen-s3")
    workdir.write_roster(
        [AsOrigin(sftp_origin), AsOrigin(origin_bucket)], deadline=60, retention=RETENTION
    )
    public = public_key_of(workdir.signing_key, tmp_path / "entregado")
    https = https_origin_config(web.url, web.cert)
    bucket_origin = {"s3": s3_fields(origin_bucket)}
    buckets = {"https": s3_bucket("destino-https"), "s3": s3_bucket("destino-s3")}
    difusores: list[tuple[PullDifusor, Callable[[], dict[str, bytes]]]] = []
    for origin_name, origin in (("https", https), ("s3", bucket_origin)):
        site = tmp_path / f"sitio-desde-{origin_name}"
        site.mkdir()
        to_dir = PullDifusor(
            f"de-{origin_name}-a-directorio",
            tmp_path / f"difusor-{origin_name}-dir",
            origin,
            {"directory": str(site)},
            public,
        )
        bucket = buckets[origin_name]
        to_bucket = PullDifusor(
            f"de-{origin_name}-a-bucket",
            tmp_path / f"difusor-{origin_name}-bucket",
            origin,
            {"s3": s3_fields(bucket)},
            public,
        )
        difusores += [(to_dir, to_dir.site), (to_bucket, bucket.tree)]
    for difusor, _ in difusores:
        difusor.write_config()
    published: list[str] = []
    for corte in CORTES:
        workdir.build(corte)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(corte)
        for difusor, site in difusores:
            code, result = difusor.run_json(capsys)
            assert code == 0, (difusor.name, result)
            assert (result["outcome"], result["corte"]) == ("delivered", corte), difusor.name
            assert site() == expected_tree(workdir, published), (difusor.name, corte)
            assert json.loads(site()["json/main.json"])["corte"] == corte
    # A second pull with nothing new asks the origin one conditional question.
    for difusor, _ in difusores:
        code, result = difusor.run_json(capsys)
        assert (code, result["outcome"], result["requests"]) == (0, "unchanged", 1)


def test_an_origin_serves_each_retained_cortes_signed_manifest_and_an_ordinary_difusor_not(
    s3_bucket: BucketFactory, workdir: Workdir
) -> None:
    origin, ordinary = s3_bucket("origen"), s3_bucket("comun")
    workdir.write_roster([AsOrigin(origin), ordinary], retention=RETENTION)
    trusted = load_public_key(Path(f"{workdir.signing_key}.pub"))
    for corte in CORTES[:4]:
        workdir.build(corte)
        assert main(["-C", str(workdir.path), "publish"]) == 0
    tree = origin.tree()
    signed = {p for p in tree if p.startswith("firmas/")}
    retained = CORTES[1:4]
    assert signed == {published_manifest(c) for c in retained} | {
        published_signature(c) for c in retained
    }
    for corte in retained:
        manifest = tree[published_manifest(corte)]
        assert (
            manifest == (workdir.path / "paquetes" / corte / ".prepush/manifest.json").read_bytes()
        )
        assert signature_is_valid(manifest, tree[published_signature(corte)], trusted)
    # Public, outside .prepush/: anyone who may read the site may read them.
    answer = httpx.get(origin.url + published_signature(CORTES[3]), timeout=10)
    assert (answer.status_code, answer.content) == (200, tree[published_signature(CORTES[3])])
    assert {p for p in ordinary.tree() if p.startswith("firmas/")} == set()


def test_before_the_institute_publishes_a_pull_has_nothing_to_do_and_says_where_it_looked(
    s3_bucket: BucketFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An origin without json/main.json yet: exit 0 (a timer runs before 20:00), nothing
    written at the destination, and the message names the origin it asked, in case the
    address is what is wrong."""
    workdir.write_roster([])
    origin = s3_bucket("origen-vacio")
    difusor = s3_to_directory(origin, workdir.signing_key, tmp_path)
    difusor.write_config()
    code, result = difusor.run_json(capsys)
    assert code == 0
    assert result["outcome"] == "nothing"
    assert "todavía no publica ningún corte" in result["message"]
    assert f"s3://{origin.bucket}" in result["message"]
    assert "pull.yaml" in result["message"]
    assert difusor.site() == {}

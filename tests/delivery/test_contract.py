"""The per-file contract (prepush/delivery/contract.py), as each transport maps it.

Each test is a defect the contract closes (issue 30): a name left as a hard link to a served
file is never written through (SFTP, local); the bytes that leave are the verified ones, S3's
multipart uploads included; a path that may change under its name is never cached as
immutable, and is invalidated when it changes; a listing made to verify names is never reused
by a later upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.delivery.contract import (
    ENTRY,
    FRESH,
    FRESH_MUTABLE,
    REPLACED,
    UNVOUCHED,
    UNVOUCHED_MUTABLE,
    Contract,
    decide,
)
from prepush.exceptions import LocalFileError
from prepush.package import FileCache
from prepush.settings import load_settings
from prepush.transports.base import TEMP_SUFFIX, Upload
from prepush.transports.local import LocalTransport
from prepush.transports.s3.connect import open_s3
from prepush.transports.s3.transport import MULTIPART_THRESHOLD
from prepush.transports.sftp.connect import open_sftp
from tests.conftest import BucketFactory, Workdir
from tests.support.s3 import IMMUTABLE
from tests.support.servers import Endpoint

SERVED = b'{"servido": "el corte que el publico lee"}'
OTHER = b'{"otro": "contenido de otro corte, escrito con otro nombre"}'


def upload(path: str, data: bytes, contract: Contract = FRESH) -> Upload:
    return Upload(path, len(data), hashlib.sha256(data).hexdigest(), data=data, contract=contract)


def test_the_protocol_decides_each_contract() -> None:
    assert decide(state_vouches=True, changes_now=False, entry=False, fixed_path=False) == FRESH
    assert (
        decide(state_vouches=True, changes_now=False, entry=False, fixed_path=True) == FRESH_MUTABLE
    )
    assert (
        decide(state_vouches=False, changes_now=False, entry=False, fixed_path=False) == UNVOUCHED
    )
    assert (
        decide(state_vouches=False, changes_now=False, entry=False, fixed_path=True)
        == UNVOUCHED_MUTABLE
    )
    assert decide(state_vouches=True, changes_now=True, entry=False, fixed_path=False) == REPLACED
    assert decide(state_vouches=False, changes_now=True, entry=True, fixed_path=False) == ENTRY
    assert Contract(served=True, mutable=True, verify=False) == REPLACED
    assert Contract(served=True, mutable=False, verify=True) == UNVOUCHED


# --- scenario 5: a hard link left by a cut or a kill is never written through -----------------


def test_a_temporary_name_a_kill_left_linked_to_a_served_file_is_never_written_into(
    tmp_path: Path,
) -> None:
    """The local transport links a repeated file under ``<name>.prepush-tmp`` and renames it
    over; killed in between, that name stays a second link to the served file. The next
    write of ``<name>`` must not open it for writing."""
    (tmp_path / "json").mkdir()
    served = tmp_path / "json" / "a.json"
    served.write_bytes(SERVED)
    os.link(served, tmp_path / "json" / f"b.json{TEMP_SUFFIX}")

    async def write() -> None:
        transport = LocalTransport("destino", tmp_path, 10)
        try:
            await transport.upload([upload("json/b.json", OTHER)], 4)
        finally:
            await transport.close()

    asyncio.run(write())
    assert served.read_bytes() == SERVED
    assert (tmp_path / "json" / "b.json").read_bytes() == OTHER


@pytest.mark.parametrize("server", ["sshd_plain", "asyncssh_difusor"])
def test_a_name_a_cut_attempt_linked_to_a_served_file_is_never_written_into(
    server: str, request: pytest.FixtureRequest, workdir: Workdir
) -> None:
    """A cut attempt hard-linked ``b.json`` to the served ``a.json`` (same content, as its
    plan said) and died before its pending record: the state does not list ``b.json``. The
    next corte has other bytes under ``b.json``: they must not land in ``a.json``'s inode."""
    endpoint: Endpoint = request.getfixturevalue(server)
    owner = endpoint.local_root.stat()
    (endpoint.local_root / "json").mkdir(parents=True, exist_ok=True)
    served = endpoint.local_root / "json" / "a.json"
    served.write_bytes(SERVED)
    os.link(served, endpoint.local_root / "json" / "b.json")
    for made in (endpoint.local_root / "json", served):
        os.chown(made, owner.st_uid, owner.st_gid)
    workdir.write_roster([endpoint])
    settings = load_settings(workdir.path)

    async def write() -> None:
        transport = await open_sftp(settings.roster.difusores[0], settings)
        try:
            await transport.upload([upload("json/b.json", OTHER)], 4)
        finally:
            await transport.close()

    asyncio.run(write())
    assert served.read_bytes() == SERVED
    assert (endpoint.local_root / "json" / "b.json").read_bytes() == OTHER


# --- scenario 3: the bytes that leave are the verified ones, multipart included ---------------


def test_a_large_file_altered_after_verification_never_reaches_s3(
    s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path
) -> None:
    """A ZIP over the multipart threshold, changed on disk (same size) after the package
    was verified: its parts carry only their MD5, so the sha256 must be checked before the
    first part leaves."""
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    settings = load_settings(workdir.path)
    original = os.urandom(MULTIPART_THRESHOLD + 1024)
    local = tmp_path / "c_PREP.zip"
    local.write_bytes(b"X" + original[1:])
    zip_upload = Upload(
        "datos/c_PREP.zip", len(original), hashlib.sha256(original).hexdigest(), local=str(local)
    )

    async def send() -> None:
        transport = await open_s3(settings.roster.difusores[0], settings)
        try:
            await transport.upload([zip_upload], 4, None, FileCache())
        finally:
            await transport.close()

    with pytest.raises(LocalFileError, match=r"datos/c_PREP\.zip"):
        asyncio.run(send())
    assert "datos/c_PREP.zip" not in bucket.tree()


# --- scenario 4: a path that may change under its name is never cached as immutable ----------


def build_site(workdir: Workdir, site: Path, corte: str, version: str) -> None:
    (site / "json").mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text(f"<html>{version}</html>")
    (site / "json" / "main.json").write_text(json.dumps({"corte": corte}))
    (site / "json" / "resultados.json").write_text(json.dumps({"votos": version}))
    (site / "json" / "fijo.json").write_text('{"siempre": "igual"}')
    assert main(["-C", str(workdir.path), "build", "--site", str(site), "--corte", corte]) == 0


def test_site_paths_are_never_cached_as_immutable_and_a_changed_one_is_invalidated(
    s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path
) -> None:
    bucket = s3_bucket(cloudfront=True)
    assert bucket.distribution_id is not None
    workdir.write_roster([bucket])
    site = tmp_path / "sitio"
    build_site(workdir, site, "20210606_2300", "v1")
    assert main(["-C", str(workdir.path), "publish"]) == 0
    objects = bucket.objects()
    # resultados.json keeps its name and changes in the next corte: a year-long cache would
    # serve readers the old figures under the new main.json.
    assert objects["json/resultados.json"]["cache_control"] != IMMUTABLE
    assert objects["json/fijo.json"]["cache_control"] != IMMUTABLE
    build_site(workdir, site, "20210606_2315", "v2")
    assert main(["-C", str(workdir.path), "publish"]) == 0
    cloudfront = bucket.local.client("cloudfront")
    listed = cloudfront.list_invalidations(DistributionId=bucket.distribution_id)
    newest = max(listed["InvalidationList"]["Items"], key=lambda item: item["CreateTime"])
    paths = cloudfront.get_invalidation(DistributionId=bucket.distribution_id, Id=newest["Id"])[
        "Invalidation"
    ]["InvalidationBatch"]["Paths"]["Items"]
    assert "/json/resultados.json" in paths
    assert "/json/main.json" in paths
    assert "/json/fijo.json" not in paths


# --- scenario 9: a listing made to verify names is not reused by a later upload ---------------


def test_a_listing_of_the_bucket_never_outlives_its_upload(
    s3_bucket: BucketFactory, workdir: Workdir
) -> None:
    """With --watch one connection lasts the night. A name to verify in one corte lists the
    bucket; an object changed since (another machine, the operator) must not be vouched for
    by that listing in a later corte."""
    bucket = s3_bucket()
    workdir.write_roster([bucket])
    settings = load_settings(workdir.path)
    s3 = bucket.local.client()

    async def night() -> None:
        transport = await open_s3(settings.roster.difusores[0], settings)
        try:
            s3.put_object(Bucket=bucket.bucket, Key="json/o/a.json", Body=SERVED)
            await transport.upload([upload("json/o/a.json", SERVED, contract=UNVOUCHED)], 4)
            s3.put_object(Bucket=bucket.bucket, Key="json/o/a.json", Body=b"?" * len(SERVED))
            await transport.upload([upload("json/o/a.json", SERVED, contract=UNVOUCHED)], 4)
        finally:
            await transport.close()

    asyncio.run(night())
    assert bucket.tree()["json/o/a.json"] == SERVED

"""A mixed fleet in one run: SFTP, rsync (daemon and rrsync over SSH) and S3 difusores publish
together, and an S3 difusor that stops answering (a stalled link in front of its endpoint)
delays nobody else."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from prepush.__main__ import main
from tests.conftest import BucketFactory, FaultProxyFactory, Workdir
from tests.support.prepdata import CORTES
from tests.support.rsync_servers import RsyncEndpoint
from tests.support.servers import Endpoint, read_tree

DEADLINE = 8.0


def moment(row: dict[str, object], name: str) -> datetime:
    return datetime.fromisoformat(str(row[name]))


def seconds(row: dict[str, object]) -> float:
    return (moment(row, "finished_at") - moment(row, "started_at")).total_seconds()


def test_sftp_rsync_and_s3_in_one_run_and_a_stalled_bucket_delays_no_other(
    asyncssh_difusor: Endpoint,
    rsyncd: RsyncEndpoint,
    rrsync: RsyncEndpoint,
    s3_bucket: BucketFactory,
    fault_proxies: FaultProxyFactory,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = s3_bucket("s3-bueno")
    stalled_bucket = s3_bucket("s3-atorado")
    proxy = fault_proxies(stalled_bucket.host, stalled_bucket.port)
    try:
        stalled = stalled_bucket.through(proxy.port)
        workdir.write_roster(
            [asyncssh_difusor, rsyncd, rrsync, good, stalled],
            deadline=DEADLINE,
            publish={"request_timeout_seconds": 30, "connect_timeout_seconds": 30},
        )
        workdir.build(CORTES[2])
        assert main(["-C", str(workdir.path), "publish"]) == 0  # everyone, healthy
        workdir.build(CORTES[3])
        proxy.set_stall(True)
        capsys.readouterr()
        code = main(["-C", str(workdir.path), "publish", "--json"])
        rows = {d["difusor"]: d for d in json.loads(capsys.readouterr().out)["deliveries"]}
    finally:
        proxy.set_stall(False)
    assert code == 1
    assert rows[stalled.name]["outcome"] == "failed"
    assert rows[stalled.name]["error_class"] == "DeadlineError"
    assert "sigue en el corte anterior completo" in str(rows[stalled.name]["error_message"])
    # Delays nobody: every other difusor flipped while the stalled one was still waited for
    # (the order of events, not a bet on how fast a loaded machine delivers).
    stalled_until = moment(rows[stalled.name], "finished_at")
    for name in (asyncssh_difusor.name, rsyncd.name, rrsync.name, good.name):
        assert rows[name]["outcome"] == "delivered", rows[name]
        assert moment(rows[name], "flip_at") < stalled_until, (name, rows[name])
        assert moment(rows[name], "finished_at") < stalled_until, (name, rows[name])
    assert seconds(rows[stalled.name]) >= DEADLINE
    expected = {**workdir.package_tree(CORTES[2]), **workdir.package_tree(CORTES[3])}
    for root in (asyncssh_difusor.local_root, rsyncd.local_root, rrsync.local_root):
        assert read_tree(root) == expected
    assert good.tree() == expected
    assert stalled_bucket.main_json_corte() == CORTES[2]

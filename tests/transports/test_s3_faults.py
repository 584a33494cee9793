"""An S3 difusor under faults, with a reader: ten cortes, each hit by a connection reset from
the fault proxy in front of the endpoint (at a random byte, or at a random protocol step) or
by a SIGKILL of prepush at a random step. A reader polls the bucket over HTTP the whole time
(json/main.json, then every file of the corte it announces) and must never see a torn site;
after each fault the served corte is whole, and the next publish leaves exactly the retained
cortes in the bucket.
"""

from __future__ import annotations

import random
from pathlib import Path

from prepush.__main__ import main
from prepush.sim.fleet import ServerThread
from tests.conftest import BucketFactory, FaultProxyFactory, Workdir
from tests.support.crashes import (
    Cortes,
    Reader,
    publish_cut_at,
    publish_killed_at,
    served_corte_is_whole_in_bucket,
)
from tests.support.trees import expected_tree

RETENTION = 3
STEPS = (
    "lock",
    "state",
    "mid-upload",
    "upload",
    "pending",
    "flip:json/main.json",
    "invalidate",
    "record",
    "cleanup",
    "done",
)


def test_ten_cortes_with_resets_and_kills_never_show_a_torn_site(
    s3_bucket: BucketFactory,
    servers_loop: ServerThread,
    fault_proxies: FaultProxyFactory,
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    rng = random.Random(16)
    bucket = s3_bucket()
    proxy = fault_proxies(bucket.host, bucket.port)
    proxied = bucket.through(proxy.port)
    workdir.write_roster([proxied], deadline=60, retention=RETENTION, rowless_actas={})
    cortes = Cortes("prep", workdir, tmp_path)
    reader = Reader(bucket.url)
    published: list[str] = []
    faults: list[str] = []
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        reader.start()
        schedule = ["bytes"] * 3 + ["step"] * 4 + ["kill"] * 3
        rng.shuffle(schedule)
        for k, fault in enumerate(schedule, 1):
            package = cortes.build(k)
            reader.learn(package)
            step = rng.choice(STEPS)
            if fault == "bytes":
                # Bytes on one connection of the many in flight: early in the corte or late.
                at = rng.randrange(1, max(2, package.manifest.total_bytes // 8))
                proxy.faults.reset_after_bytes = at
                proxy.faults.resets_left = 1
                code = main(["-C", str(workdir.path), "publish"])
                assert proxy.faults.resets_left == 0, "el corte no llegó a cortarse"
                proxy.faults.clear()
                faults.append(f"reset@{at}")
            elif fault == "step":
                code, outcome = publish_cut_at(
                    workdir,
                    step,
                    proxied.name,
                    lambda: servers_loop.run(proxy.cut()),
                    lambda: served_corte_is_whole_in_bucket(bucket, reader) and None,
                )
                assert outcome == "delivered", (step, outcome)
                faults.append(f"corte@{step}")
            else:
                publish_killed_at(workdir, step, proxied.name)
                served_corte_is_whole_in_bucket(bucket, reader)
                code = main(["-C", str(workdir.path), "publish"])
                faults.append(f"kill@{step}")
            assert code == 0, faults[-1]
            published.append(package.corte)
            assert bucket.tree() == expected_tree(workdir, published), faults[-1]
            assert served_corte_is_whole_in_bucket(bucket, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
    print(f"fallas: {faults}; {reader.reads} lecturas completas")
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    assert len(published) == 11, faults

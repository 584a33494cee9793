"""The crash-point matrix: cut or kill at every step of the protocol, and nobody sees it.

Real OpenSSH (chroot + internal-sftp) with its web root on a tmpfs, behind the fault proxy,
served by nginx. For a package built from the PREP's CSVs and for a vendor's ``--site``
package, three rounds of cortes: each corte of a round is cut at one step of the protocol
(the proxy resets the connection; the same run retries) or prepush is SIGKILLed there (the
next run takes over). Right after each cut or kill, every file the served main.json's corte
needs is present and byte-equal; the next publish delivers the newest corte exactly (exit
0, the tree of the retained cortes and nothing else). All the while a reader reads the
whole site through nginx, again and again, and must never read a torn one.

The same matrix (one round) runs against the guide's rsync daemon; and rsync difusores (the
daemon, and sshd with rrsync) receive ten cortes through a proxy that cuts connections at
random, with one SIGKILL of prepush mid-transfer, under the same reader.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prepush.__main__ import main
from prepush.sim.fleet import ServerThread
from prepush.sim.sshd import SshdDifusor, sshd_available
from tests.conftest import FaultProxyFactory, Workdir
from tests.support.crashes import (
    Cortes,
    Reader,
    publish_cut_at,
    publish_killed_at,
    served_corte_is_whole,
)
from tests.support.rsync_servers import (
    daemon_endpoint,
    guide_daemon,
    guide_rrsync_sshd,
    rsync_servers_available,
    ssh_endpoint,
)
from tests.support.servers import Endpoint, Nginx, nginx_available, read_tree
from tests.support.trees import expected_tree

STEPS = (
    "lock",
    "state",
    "dirs",
    "mid-upload",
    "upload",
    "pending",
    "flip:index.html",
    "flip:json/main.json",
    "invalidate",
    "record",
    "cleanup",
    "done",
    "release",
)
ROUNDS = 3
RETENTION = 3

pytestmark = pytest.mark.skipif(
    not (sshd_available() and nginx_available()), reason="requiere sshd, nginx y root"
)


@pytest.fixture(scope="module")
def difusor(client_key: Path) -> Iterator[Endpoint]:
    daemon = SshdDifusor(client_key, chroot=True, tmpfs_size="256m")
    info = daemon.start()
    try:
        yield Endpoint(
            name="tmpfs",
            host=info.host,
            port=info.port,
            user=info.user,
            key_file=client_key,
            host_key_line=info.host_key_line,
            remote_dir=info.remote_dir,
            local_root=info.local_root,
        )
    finally:
        daemon.stop()


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "kind", "fault", "processes"),
    [
        *[
            (transport, kind, fault, 1)
            for transport in ("sftp", "rsync")
            for kind in ("prep", "site")
            for fault in ("corte", "sigkill")
        ],
        # The difusor under fault served by a worker process, another one by the parent.
        ("sftp", "prep", "corte", 2),
        ("sftp", "prep", "sigkill", 2),
    ],
)
def test_every_step_survives_a_cut_and_a_kill(
    transport: str,
    kind: str,
    fault: str,
    processes: int,
    request: pytest.FixtureRequest,
    servers_loop: ServerThread,
    fault_proxies: FaultProxyFactory,
    nginx_factory: Callable[..., Nginx],
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    """SFTP to OpenSSH in a chroot, three rounds; an rsync daemon (the guide's), one round:
    its steps are the same protocol's, over another transport."""
    if transport == "sftp":
        difusor: Endpoint = request.getfixturevalue("difusor")
        rounds = ROUNDS
    else:
        difusor = request.getfixturevalue("rsync_difusores")["demonio"]
        rounds = 1
    difusor.empty()
    proxy = fault_proxies(difusor.host, difusor.port)
    web = nginx_factory(difusor.local_root)
    proxied = dataclasses.replace(difusor, port=proxy.port)
    fleet = [request.getfixturevalue("sshd_plain"), proxied] if processes > 1 else [proxied]
    # Synthetic cortes: every acta has its row (Campeche's declaration does not apply).
    workdir.write_roster(
        fleet,
        deadline=30,
        retention=RETENTION,
        rowless_actas={},
        publish={"workers": processes},
    )
    cortes = Cortes(kind, workdir, tmp_path)
    reader = Reader(web.url)
    published: list[str] = []
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        reader.start()
        k = 0
        # prepush's own index.html is the same every corte: it has no flip of its own.
        steps = [s for s in STEPS if kind == "site" or s != "flip:index.html"]
        for _round in range(rounds):
            for step in steps:
                k += 1
                package = cortes.build(k)
                reader.learn(package)

                def check() -> None:
                    served_corte_is_whole(difusor.local_root, reader)

                if fault == "corte":
                    code, outcome = publish_cut_at(
                        workdir, step, proxied.name, lambda: servers_loop.run(proxy.cut()), check
                    )
                else:
                    publish_killed_at(workdir, step, proxied.name)
                    check()
                    code = main(["-C", str(workdir.path), "publish"])
                    outcome = "delivered"
                assert (code, outcome) == (0, "delivered"), (step, code, outcome)
                published.append(package.corte)
                served = read_tree(difusor.local_root)
                assert served == expected_tree(workdir, published), step
                assert served_corte_is_whole(difusor.local_root, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
    print(
        f"{transport}/{kind}/{fault}/{processes}: {len(published)} cortes,"
        f" {reader.reads} lecturas completas"
    )
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    assert not [p for p in os.listdir(difusor.local_root) if p.endswith((".prepush-tmp",))]


# --- rsync difusores: random cuts and a SIGKILL, with the reader -----------------------------

RSYNC_CORTES = 10
RSYNC_KILLED_AT = 5
# Per chunk the proxy relays upstream: rsync sends many small ones, a publish some hundreds.
CUT_PROBABILITY = 0.01


@pytest.fixture(scope="module")
def rsync_difusores(client_key: Path) -> Iterator[dict[str, Endpoint]]:
    """The guide's rsync daemon and sshd with rrsync, their web roots on tmpfs."""
    if not rsync_servers_available():
        pytest.skip("requiere rsync (con rrsync), sshd y ser root")
    daemon = guide_daemon(tmpfs_size="256m")
    sshd = guide_rrsync_sshd(client_key, tmpfs_size="256m")
    try:
        yield {
            "demonio": daemon_endpoint(daemon, name="rsync-demonio"),
            "ssh": ssh_endpoint(sshd, client_key, name="rsync-ssh"),
        }
    finally:
        daemon.stop()
        sshd.stop()


def rsync_children_of(port: int) -> list[str]:
    """rsync or ssh processes still talking to ``port``: none may outlive prepush."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        talks = any(f":{port}/".encode() in w or w == str(port).encode() for w in words)
        if words and words[0].endswith((b"rsync", b"ssh")) and talks:
            found.append(" ".join(w.decode(errors="replace") for w in words))
    return found


def children_left(port: int, within: float = 2.0) -> list[str]:
    """The rsync or ssh processes of ``port`` still there ``within`` seconds of prepush's
    death (each dies with its parent; the kernel needs a moment to run the chain)."""
    deadline = time.monotonic() + within
    while (left := rsync_children_of(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("form", ["demonio", "ssh"])
def test_rsync_difusores_never_serve_a_torn_site_through_cuts_and_a_kill(
    form: str,
    rsync_difusores: dict[str, Endpoint],
    fault_proxies: FaultProxyFactory,
    nginx_factory: Callable[..., Nginx],
    workdir: Workdir,
    tmp_path: Path,
) -> None:
    """Ten cortes to an rsync difusor behind a proxy that cuts connections at random, and
    one SIGKILL of prepush mid-transfer: the reader never reads a torn site, each publish
    ends with exactly the retained cortes, and no rsync or ssh outlives a killed prepush."""
    difusor = rsync_difusores[form]
    difusor.empty()
    proxy = fault_proxies(difusor.host, difusor.port, seed=15)
    web = nginx_factory(difusor.local_root)
    workdir.write_roster(
        [dataclasses.replace(difusor, port=proxy.port)],
        deadline=60,
        retention=RETENTION,
        rowless_actas={},
    )
    cortes = Cortes("prep", workdir, tmp_path)
    reader = Reader(web.url)
    published: list[str] = []
    try:
        first = cortes.build(0)
        reader.learn(first)
        assert main(["-C", str(workdir.path), "publish"]) == 0
        published.append(first.corte)
        reader.start()
        proxy.faults.reset_probability = CUT_PROBABILITY
        for k in range(1, RSYNC_CORTES + 1):
            package = cortes.build(k)
            reader.learn(package)
            if k == RSYNC_KILLED_AT:
                publish_killed_at(workdir, "mid-upload", difusor.name)
                assert served_corte_is_whole(difusor.local_root, reader) == published[-1]
                assert children_left(proxy.port) == []
            code = main(["-C", str(workdir.path), "publish"])
            assert code == 0, k
            published.append(package.corte)
            assert read_tree(difusor.local_root) == expected_tree(workdir, published), k
            assert served_corte_is_whole(difusor.local_root, reader) == package.corte
    finally:
        reader.stop.set()
        if reader.is_alive():
            reader.join(30)
    print(
        f"rsync {form}: {len(published)} cortes, {proxy.resets} cortes de conexión,"
        f" {reader.reads} lecturas completas"
    )
    assert proxy.resets > 0, "the proxy cut no connection: the test proved nothing"
    assert reader.torn == [], reader.torn[:20]
    assert reader.reads >= len(published)
    # The killed run's runtime directory (its socket, its scratch files) was swept by the next.
    assert not list(Path(tempfile.gettempdir()).glob("prepush-rsync-*"))

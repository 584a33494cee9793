"""rsync difusores (issue 15): the real rsync against a real rsync daemon and a real sshd
with rrsync, both set up from docs/difusores.md.

Every tree is read back from the difusor's disk, byte by byte, and compared with the
packages; the lock, the exit codes and the ledger are checked as for SFTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from prepush.exceptions import ConnectError
from prepush.ledger import Ledger
from prepush.settings import load_settings
from prepush.sim.rsyncd import RsyncDaemon, rrsync_path
from prepush.transports import connect
from prepush.transports.rsync.errors import Where, translate
from prepush.transports.rsync.process import Finished
from prepush.transports.rsync.transport import RsyncTransport
from tests.conftest import Workdir
from tests.support.commands import publish
from tests.support.prepdata import CORTES
from tests.support.rsync_servers import (
    PASSWORD_ENV,
    RsyncEndpoint,
    daemon_endpoint,
    guide_daemon,
    guide_rrsync_sshd,
    rsync_servers_available,
    ssh_endpoint,
)
from tests.support.servers import read_tree
from tests.support.trees import expected_tree

FORMS = ["rsyncd", "rrsync"]


def only_delivery(report: dict[str, object]) -> dict[str, object]:
    rows = report["deliveries"]
    assert isinstance(rows, list)
    (row,) = rows
    assert isinstance(row, dict)
    return row


def served(endpoint: RsyncEndpoint) -> dict[str, bytes]:
    """Everything the difusor's web root holds (prepush's .prepush/ aside), from its disk."""
    return read_tree(endpoint.local_root)


@pytest.mark.parametrize("form", FORMS)
def test_the_seven_campeche_cortes_land_byte_identical(
    form: str,
    request: pytest.FixtureRequest,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint: RsyncEndpoint = request.getfixturevalue(form)
    workdir.write_roster([endpoint])
    published: list[str] = []
    for corte in CORTES:
        workdir.build(corte)
        code, report = publish(workdir, capsys)
        delivery = only_delivery(report)
        assert code == 0, (delivery["error_class"], delivery["error_message"])
        assert delivery["outcome"] == "delivered"
        assert delivery["atomic"] is True
        published.append(corte)
        tree = served(endpoint)
        assert tree == expected_tree(workdir, published), corte
        assert json.loads(tree["json/main.json"])["corte"] == corte
    # The ledger tells what rsync did: files, bytes and invocations, measured.
    assert isinstance(delivery["requests"], int)
    assert 5 <= delivery["requests"] <= 14, delivery["requests"]
    assert isinstance(delivery["bytes_sent"], int)
    assert delivery["bytes_sent"] > 0
    again_code, again = publish(workdir, capsys)
    assert again_code == 0
    assert only_delivery(again)["outcome"] == "up_to_date"


def test_a_wrong_pinned_host_key_is_refused_and_nothing_is_written(
    rrsync: RsyncEndpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    other = tmp_path / "otra_llave"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    impostor = dataclasses.replace(
        rrsync, host_key_line=" ".join(Path(f"{other}.pub").read_text().split()[:2])
    )
    workdir.write_roster([impostor])
    workdir.build(CORTES[0])
    code, report = publish(workdir, capsys)
    delivery = only_delivery(report)
    assert code == 3
    assert delivery["error_class"] == "HostKeyError"
    message = str(delivery["error_message"])
    assert "NO coincide" in message
    assert "no se escribió nada" in message
    assert list(rrsync.local_root.iterdir()) == []


def test_a_wrong_daemon_password_is_refused_in_spanish_and_nothing_is_written(
    rsyncd: RsyncEndpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "otra-contraseña")
    workdir.write_roster([rsyncd])
    workdir.build(CORTES[0])
    code, report = publish(workdir, capsys)
    delivery = only_delivery(report)
    assert code == 3
    assert delivery["error_class"] == "AuthError"
    message = str(delivery["error_message"])
    assert "rechazó la contraseña" in message
    assert PASSWORD_ENV in message
    assert "no se escribió nada" in message
    assert "otra-contraseña" not in message
    assert list(rsyncd.local_root.iterdir()) == []
    with Ledger(workdir.path / "prepush.db") as ledger:
        assert ledger is not None
    assert "otra-contraseña" not in (workdir.path / "prepush.db").read_bytes().decode("latin-1")


def test_two_publishers_never_both_take_the_lock(rsyncd: RsyncEndpoint, workdir: Workdir) -> None:
    """Exclusive create and compare-and-swap over rsync: of many at once, exactly one wins."""
    workdir.write_roster([rsyncd])
    settings = load_settings(workdir.path)
    (difusor,) = settings.roster.difusores

    async def race() -> tuple[list[bool], list[bool], bytes | None]:
        transports = [await connect(difusor, settings) for _ in range(6)]
        try:
            await transports[0].prepare_dirs([".prepush"])
            created = await asyncio.gather(
                *(
                    t.create_exclusive(".prepush/lock", f"dueño {i}".encode())
                    for i, t in enumerate(transports)
                )
            )
            winner = created.index(True)
            held = f"dueño {winner}".encode()
            swapped = await asyncio.gather(
                *(
                    t.replace_if(".prepush/lock", held, f"nuevo {i}".encode())
                    for i, t in enumerate(transports)
                )
            )
            return created, swapped, await transports[0].read_file(".prepush/lock")
        finally:
            for t in transports:
                await t.close()

    created, swapped, final = asyncio.run(race())
    assert created.count(True) == 1
    assert swapped.count(True) == 1
    assert final == f"nuevo {swapped.index(True)}".encode()


def test_the_runtime_directory_and_every_child_are_gone_after_close(
    rrsync: RsyncEndpoint, workdir: Workdir
) -> None:
    workdir.write_roster([rrsync])
    settings = load_settings(workdir.path)
    (difusor,) = settings.roster.difusores

    async def open_and_close() -> tuple[Path, int]:
        transport = await connect(difusor, settings)
        assert isinstance(transport, RsyncTransport)
        runtime = transport._runtime
        master = transport._master
        assert master is not None
        assert master.process is not None
        assert (runtime / "ssh").is_socket()
        pid = master.process.pid
        await transport.close()
        return runtime, pid

    runtime, pid = asyncio.run(open_and_close())
    assert not runtime.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_roster_guides_rsync_example_validates() -> None:
    """docs/roster.md's two rsync difusores, as written, with an election around them."""
    from prepush.settings import parse_roster

    text = Path(__file__).resolve().parents[2].joinpath("docs/roster.md").read_text()
    example = text.split("### Difusores rsync", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    election = (
        "election:\n  process: x\n"
        "  publication: {start: 2024-06-02T20:00:00, end: 2024-06-03T20:00:00}\n"
    )
    roster = parse_roster(election + example, "roster.md")
    ssh, daemon = roster.difusores
    assert (ssh.transport, ssh.rsync_daemon, ssh.port) == ("rsync", False, 22)
    assert (daemon.transport, daemon.rsync_daemon, daemon.port) == ("rsync", True, 873)


def test_rsync_roster_mistakes_are_named_with_their_place() -> None:
    from prepush.exceptions import RosterError
    from prepush.settings import parse_roster

    text = """election:
  process: x
  publication: {start: 2024-06-02T20:00:00, end: 2024-06-03T20:00:00}
difusores:
  - name: sin-modulo
    host: h
    user: u
    transport: rsync
    rsync: {mode: daemon}
    password_env: X
  - name: sftp-con-rsync
    host: h
    user: u
    rsync: {mode: ssh}
    key_file: k
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
  - name: demonio-sin-clave
    host: h
    user: u
    transport: rsync
    rsync: {mode: daemon, module: prep}
  - name: demonio-con-llave
    host: h
    user: u
    transport: rsync
    rsync: {mode: daemon, module: prep}
    password_env: X
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
  - name: errata
    host: h
    user: u
    transport: rsync
    key_file: k
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
    rsync: {modo: ssh}
"""
    with pytest.raises(RosterError) as raised:
        parse_roster(text, "difusores.yaml")
    problems = raised.value.problems
    assert len(problems) == 5, problems
    expected = [
        ("difusores.yaml:9:12: difusores[sin-modulo].rsync:", "falta module"),
        ("difusores.yaml:11:5: difusores[sftp-con-rsync]:", "sólo aplica con transport: rsync"),
        ("difusores.yaml:17:5: difusores[demonio-sin-clave]:", "indique password_env"),
        ("difusores.yaml:22:5: difusores[demonio-con-llave]:", "host_key no aplica"),
        ("difusores.yaml:35:13: difusores[errata].rsync.modo:", "campo desconocido"),
    ]
    for (where, what), problem in zip(expected, problems, strict=True):
        assert problem.startswith(where), problem
        assert what in problem, problem


def test_simulate_and_the_bench_set_rsync_difusores_up_as_the_guide_says() -> None:
    """prepush/sim/rsyncd.py's rsyncd.conf and rrsync line are the guide's, field for field."""
    from prepush.sim.rsyncd import CONFIG, RRSYNC_LINE
    from tests.support.guide import snippet

    def lines(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    config = snippet(
        "rsyncd_conf",
        {
            "uid = prep": "uid = {user}",
            "gid = prep": "gid = {user}",
            "auth users = prep": "auth users = {user}",
            "[prep]": "[{module}]",
            "/srv/prep/www": "{root}",
            "/etc/rsyncd.secrets": "{secrets}",
            "203.0.113.10": "{allow}",
        },
    )
    assert lines(config) == lines(CONFIG)
    line = snippet(
        "authorized_keys_rrsync",
        {"/usr/bin/rrsync": "{rrsync}", "/srv/prep/www": "{root}", "203.0.113.10": "{allow}"},
    )
    assert line.split(" ssh-ed25519 ")[0] + " {key}" == RRSYNC_LINE


FAILURES = {
    # name: (what the daemon is given, error class, what the message says)
    "disco-lleno": ({"tmpfs_size": "160k"}, "RemoteError", "Sin espacio en el servidor"),
    "solo-lectura": ({"module": "read only = yes"}, "RemoteError", "sólo permite leer"),
    "sin-permiso": ({"owner": "root"}, "RemoteError", "Permiso denegado"),
    "sin-enlaces": ({"module": "refuse options = links"}, "RemoteError", "rechazó una opción"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_what_rsync_refuses_is_said_in_spanish_and_the_site_stays_whole(
    failure: str, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk, a read-only module, a web root not ours, a daemon that refuses an option
    prepush needs: each failure in Spanish with rsync's code, nothing half-written."""
    from tests.support.rsync_servers import daemon_endpoint, guide_daemon, rsync_servers_available

    if not rsync_servers_available():
        pytest.skip("requiere rsync y ser root; 'make test' lo instala")
    given, error_class, says = FAILURES[failure]
    daemon = guide_daemon(tmpfs_size=given.get("tmpfs_size"))
    assert daemon.config is not None
    if "module" in given:
        daemon.config = daemon.config.replace("    read only = no\n", f"    {given['module']}\n")
    try:
        endpoint = daemon_endpoint(daemon, name=failure)
        if "owner" in given:
            os.chown(endpoint.local_root, 0, 0)
        workdir.write_roster([endpoint])
        workdir.build(CORTES[-1])
        code, report = publish(workdir, capsys)
        delivery = only_delivery(report)
        assert code == 3
        assert delivery["error_class"] == error_class, delivery["error_message"]
        message = str(delivery["error_message"])
        assert says in message
        assert "(rsync, código" in message
        assert not (endpoint.local_root / "json/main.json").exists()
        assert not [p for p in endpoint.local_root.rglob(".*.??????") if p.is_file()]
    finally:
        daemon.stop()


def test_a_daemon_difusor_takes_nothing_of_ssh_from_defaults() -> None:
    from prepush.settings import parse_roster

    text = """election:
  process: x
  publication: {start: 2024-06-02T20:00:00, end: 2024-06-03T20:00:00}
defaults:
  port: 22
  key_file: claves/prepush.pem
  host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc"
difusores:
  - name: por-ssh
    host: h
    user: u
    transport: rsync
  - name: demonio
    host: h
    user: u
    transport: rsync
    rsync: {mode: daemon, module: prep}
    password_env: X
"""
    ssh, daemon = parse_roster(text, "difusores.yaml").difusores
    assert (ssh.port, ssh.key_file) == (22, "claves/prepush.pem")
    assert (daemon.port, daemon.key_file, daemon.host_key) == (873, None, None)


@pytest.mark.parametrize("link", ["json", "json/o"])
def test_a_linked_directory_at_any_depth_stops_the_publish_and_nothing_goes_through_it(
    link: str,
    rsyncd: RsyncEndpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """rsync reports a listed path's parents as directories even when they are links: the
    transport looks at each depth on its own, and refuses as SFTP does."""
    outside = rsyncd.local_root.parent / "fuera"
    outside.mkdir(exist_ok=True)
    try:
        parent = rsyncd.local_root / link
        parent.parent.mkdir(parents=True, exist_ok=True)
        parent.symlink_to(outside)
        workdir.write_roster([rsyncd])
        workdir.build(CORTES[0])
        code, report = publish(workdir, capsys)
        delivery = only_delivery(report)
        assert code == 3
        assert f"{link} es un enlace simbólico" in str(delivery["error_message"])
        assert list(outside.iterdir()) == []
        assert not (rsyncd.local_root / "index.html").exists()
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_rrsync_busy_with_a_cut_session_is_retried_not_blamed_on_the_roster() -> None:
    """After a cut, rrsync on the server may still hold its lock for the old session: that is
    a connection to retry, not a remote_dir to fix (seen in the crash-point test)."""
    where = Where("rsync-ssh", "127.0.0.1:22", "prepush", daemon=False)
    busy = Finished(
        12,
        errors=[
            "/usr/bin/rrsync error: Another instance of rrsync is already accessing this"
            " directory.",
            "rsync error: error in rsync protocol data stream (code 12)",
        ],
    )
    error = translate(where, busy, "conectar")
    assert isinstance(error, ConnectError)
    assert "se reintenta" in error.message
    assert "remote_dir" not in error.message
    other = Finished(12, errors=["/usr/bin/rrsync error: do not use .. in any path!"])
    assert "remote_dir" in translate(where, other, "conectar").message


def test_a_package_file_altered_after_verification_never_reaches_the_public(
    rsyncd: RsyncEndpoint, workdir: Workdir
) -> None:
    """rsync reads the package from the disk after publish verified it. An object altered
    in between (same size, so rsync's quick check cannot tell) fails the difusor before its
    flip and is taken back; an entry file altered in between is sent as it was verified."""
    from prepush.publish.protocol_types import Event
    from prepush.publish.publisher import publish as publish_in_process
    from prepush.publish.request import PublishRequest

    workdir.write_roster([rsyncd])
    first, second = CORTES[0], CORTES[1]
    workdir.build(first)
    settings = load_settings(workdir.path)
    assert publish_in_process(PublishRequest(settings, settings.roster.difusores)).exit_code == 0
    old = workdir.package_tree(first)
    path = workdir.build(second)
    new = workdir.package_tree(second)
    victim = next(p for p in sorted(new) if p not in old and p.startswith("json/"))
    original = (path / victim).read_bytes()
    main_json = (path / "json/main.json").read_bytes()

    def alter(target: str, data: bytes) -> Callable[[Event], None]:
        def hook(event: Event) -> None:
            if event.stage == "uploading" and (path / target).read_bytes() != data:
                (path / target).write_bytes(data)

        return hook

    tampered = bytes(b ^ 1 for b in original)
    report = publish_in_process(
        PublishRequest(settings, settings.roster.difusores), alter(victim, tampered)
    )
    (delivery,) = report.deliveries
    assert delivery.outcome == "failed"
    assert delivery.error_class == "LocalFileError"
    assert "cambió en el disco" in (delivery.error_message or "")
    assert victim in (delivery.error_message or "")
    site = served(rsyncd)
    whole = expected_tree(workdir, [first])
    assert {p: site.get(p) for p in whole} == whole, "the first corte, whole"
    assert not (rsyncd.local_root / victim).exists(), "what was sent of it, taken back"

    (path / victim).write_bytes(original)
    report = publish_in_process(
        PublishRequest(settings, settings.roster.difusores),
        alter("json/main.json", main_json.replace(b'"corte"', b'"Corte"')),
    )
    assert report.exit_code == 0, report.deliveries[0].error_message
    assert (rsyncd.local_root / "json/main.json").read_bytes() == main_json
    (path / "json/main.json").write_bytes(main_json)
    assert served(rsyncd) == expected_tree(workdir, [first, second])


def test_what_rsync_read_is_confirmed_by_the_verification_s_stat_or_hashed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the run's cache verified is confirmed by its stat alone; any write since
    (even one that puts the same bytes back) refuses it. A file the cache could not keep is
    hashed once for every difusor, and only if nothing wrote to it while rsync read it."""
    from prepush.package import FileCache, sha256_bytes
    from prepush.transports.base import Upload
    from prepush.transports.rsync import transport as rsync_transport

    hashed: list[Path] = []
    real_sha256_file = rsync_transport.sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha256_file(path)

    monkeypatch.setattr(rsync_transport, "sha256_file", counting)
    sources = rsync_transport._ConfirmedSources()
    cache = FileCache(budget=8 << 10)  # keeps files up to 1 KiB
    small, large = tmp_path / "json" / "a.json", tmp_path / "datos.zip"
    small.parent.mkdir()
    small.write_bytes(b'{"a": 1}')
    large.write_bytes(os.urandom(4096))
    kept = Upload("json/a.json", 8, sha256_bytes(small.read_bytes()), local=str(small))
    streamed = Upload("datos.zip", 4096, sha256_bytes(large.read_bytes()), local=str(large))
    cache.vouch(str(small), cache.read(str(small)))

    def confirm(upload: Upload) -> bool:
        (before,) = rsync_transport._source_stats(tmp_path, [upload], cache).values() or [None]
        return sources.confirm(tmp_path, upload, before, cache)

    assert rsync_transport._source_stats(tmp_path, [kept], cache) == {}, "no stat needed"
    assert confirm(kept)
    assert confirm(streamed)
    assert confirm(streamed), "the second difusor"
    assert hashed == [large], "hashed once, and only the file the cache could not keep"

    # A write lands a clock tick after the read it follows (the kernel stamps files with a
    # coarse clock; a write within the same tick as the verification is not seen by stat).
    time.sleep(0.05)
    small.write_bytes(small.read_bytes())  # the same bytes, written again
    assert not confirm(kept)
    original = large.read_bytes()
    large.write_bytes(bytes(4096))
    assert not confirm(streamed), "other bytes"
    time.sleep(0.05)
    large.write_bytes(original)
    assert confirm(streamed), "the right bytes again, hashed again"
    before = rsync_transport._stat_key(str(large))
    time.sleep(0.05)
    large.write_bytes(original)
    assert not sources.confirm(tmp_path, streamed, before, cache), "written while rsync read"


# rsync 3.2.7-1+deb12u6 (Debian 12 without bookworm-security), verbatim, as the receiver of
# the --delete-missing-args that removes the lock.
UNREADABLE_MISSING_ARG = Finished(
    2,
    errors=[
        "invalid file mode 00 for .prepush/lock [Receiver]",
        "rsync error: protocol incompatibility (code 2) at flist.c(874) [Receiver=3.2.7]",
    ],
)


def test_a_receiver_that_cannot_take_delete_missing_args_is_told_from_other_failures() -> None:
    """rsync 3.4.3 and Debian 12's 3.2.7 with its backports refuse --delete-missing-args as a
    protocol error, and a daemon may refuse the option: both are deleted some other way."""
    from prepush.transports.rsync.transport import cannot_delete_missing

    assert cannot_delete_missing(UNREADABLE_MISSING_ARG)
    refused = Finished(
        4,
        errors=[
            "rsync: [sender] The server is configured to refuse --delete-missing-args",
            "rsync error: requested action not supported (code 4) at clientserver.c(1136)",
        ],
    )
    assert cannot_delete_missing(refused)
    denied = Finished(
        23, errors=["rsync: [generator] delete_file: unlink(x) failed: Permission denied (13)"]
    )
    assert not cannot_delete_missing(denied)
    other_protocol = Finished(2, errors=["rsync error: protocol incompatibility (code 2)"])
    assert not cannot_delete_missing(other_protocol)


def _refusing_delete_missing_args() -> RsyncDaemon:
    daemon = guide_daemon()
    assert daemon.config is not None
    daemon.config = daemon.config.replace(
        "    read only = no\n", "    read only = no\n    refuse options = delete-missing-args\n"
    )
    return daemon


def test_without_delete_missing_args_files_are_taken_away_unread(workdir: Workdir) -> None:
    """A daemon that refuses --delete-missing-args: each file goes with --remove-source-files
    against a placeholder of its size, so the server never reads it (here it cannot: the old
    ZIP is unreadable to the daemon's user, and its directory writable)."""
    if not rsync_servers_available():
        pytest.skip("requiere rsync y ser root; 'make test' lo instala")
    daemon = _refusing_delete_missing_args()
    try:
        endpoint = daemon_endpoint(daemon)
        old_zip = endpoint.local_root / "datos" / "viejo.zip"
        old_zip.parent.mkdir()
        old_zip.write_bytes(os.urandom(2_000_000))
        old_zip.chmod(0)
        (endpoint.local_root / ".prepush").mkdir()
        (endpoint.local_root / ".prepush" / "lock").symlink_to("prepush:ZHVlw7Fv")
        owner = endpoint.local_root.stat()
        for path in (old_zip.parent, endpoint.local_root / ".prepush"):
            os.chown(path, owner.st_uid, owner.st_gid)
        workdir.write_roster([endpoint])
        settings = load_settings(workdir.path)
        (difusor,) = settings.roster.difusores

        async def remove() -> tuple[str, ...]:
            transport = await connect(difusor, settings)
            try:
                paths = ["datos/viejo.zip", ".prepush/lock", "no/existe.json"]
                await transport.remove_many(paths, 1)
                return transport.capabilities.features
            finally:
                await transport.close()

        features = asyncio.run(remove())
        assert "borrado con --remove-source-files" in features
        assert list(old_zip.parent.iterdir()) == []
        assert list((endpoint.local_root / ".prepush").iterdir()) == []
    finally:
        daemon.stop()


def test_without_delete_missing_args_every_corte_lands_and_nothing_of_prepush_stays(
    workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four cortes (the first leaves retention with the fourth) to a daemon that refuses
    --delete-missing-args: the tree is exact each time, the pending record and the lock are
    gone after each publish."""
    if not rsync_servers_available():
        pytest.skip("requiere rsync y ser root; 'make test' lo instala")
    daemon = _refusing_delete_missing_args()
    try:
        endpoint = daemon_endpoint(daemon)
        workdir.write_roster([endpoint], deadline=60)
        published: list[str] = []
        for corte in CORTES[:4]:
            workdir.build(corte)
            code, report = publish(workdir, capsys)
            delivery = only_delivery(report)
            assert code == 0, (delivery["error_class"], delivery["error_message"])
            assert delivery["outcome"] == "delivered"
            assert delivery["error_message"] is None
            published.append(corte)
            assert served(endpoint) == expected_tree(workdir, published), corte
            assert sorted(p.name for p in (endpoint.local_root / ".prepush").iterdir()) == [
                "state.json"
            ]
    finally:
        daemon.stop()


def test_rrsync_that_refuses_deletions_fails_at_once_in_spanish_naming_the_option(
    client_key: Path, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    """rrsync -no-del refuses --delete-missing-args and --remove-source-files: the difusor
    fails with the option rrsync named and what to ask the difusor, not at the deadline."""
    if not rsync_servers_available():
        pytest.skip("requiere rsync (con rrsync), sshd y ser root; 'make test' los instala")
    sshd = guide_rrsync_sshd(client_key)
    assert sshd.authorized_key is not None
    command = f'command="{rrsync_path()} '
    assert command in sshd.authorized_key
    sshd.authorized_key = sshd.authorized_key.replace(command, f"{command}-no-del ")
    try:
        endpoint = ssh_endpoint(sshd, client_key, name="sin-borrar")
        workdir.write_roster([endpoint], deadline=120)
        outcomes = []
        for corte in CORTES[:2]:
            workdir.build(corte)
            code, report = publish(workdir, capsys)
            outcomes.append((code, only_delivery(report)))
        assert [d["difusor"] for _, d in outcomes] == ["sin-borrar"] * 2
        messages = [str(d["error_message"]) for _, d in outcomes]
        for message in messages:
            assert "rechazó una opción de rsync" in message, message
            assert "option --remove-source-files has been disabled on this server" in message
            assert "-no-del" in message, message
            assert "plazo" not in message, message
        # The first corte went whole (its flip came before the refused removal); the second
        # cannot take the lock its predecessor could not release, and changes nothing.
        assert outcomes[0][1]["outcome"] == "delivered"
        assert outcomes[1][0] == 3
        assert outcomes[1][1]["outcome"] == "failed"
        assert outcomes[1][1]["error_class"] == "RemoteError"
        main_json = json.loads((endpoint.local_root / "json" / "main.json").read_bytes())
        assert main_json["corte"] == CORTES[0]
    finally:
        sshd.stop()

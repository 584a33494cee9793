"""publish verifies before it sends: an altered, unsigned or foreign-signed package reaches no
difusor, for any of them, and the ledger records the refusal (prepush/publish/integrity.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from prepush.__main__ import main
from prepush.ledger import Ledger
from prepush.package import MANIFEST, SIGNATURE, Package, sign
from prepush.publish.integrity import package_problems
from prepush.publish.protocol_types import LockOwner
from prepush.publish.request import PublishRequest
from prepush.publish.share import Connections, SharePublisher
from prepush.settings import load_settings
from tests.conftest import Workdir, interrupt
from tests.support.servers import Endpoint, read_tree

FIRST, SECOND = "20210606_2320", "20210606_2340"


def change_a_byte(package: Path) -> str:
    target = package / "json/main.json"
    data = target.read_bytes()
    target.write_bytes(data.replace(b'"kind":"oficial"', b'"kind":"oficiaL"'))
    return "json/main.json: el contenido no coincide con el manifiesto"


def add_a_file(package: Path) -> str:
    (package / "assets" / "extra.js").write_text("document.title = 'alterado';\n")
    return "assets/extra.js: archivo que no está en el manifiesto"


def remove_a_file(package: Path) -> str:
    manifest = json.loads((package / MANIFEST).read_bytes())
    victim = next(f["path"] for f in manifest["files"] if f["path"].startswith("json/o/"))
    (package / victim).unlink()
    return f"{victim}: falta en el paquete"


def sign_with_another_key(package: Path) -> str:
    other = asyncssh.generate_private_key("ssh-ed25519")
    (package / SIGNATURE).write_bytes(sign((package / MANIFEST).read_bytes(), other))
    return f"{MANIFEST}: la firma no corresponde a la llave de confianza"


def remove_the_signature(package: Path) -> str:
    (package / SIGNATURE).unlink()
    return f"{SIGNATURE}: el paquete no está firmado"


TAMPERS: dict[str, Callable[[Path], str]] = {
    "byte_changed": change_a_byte,
    "file_added": add_a_file,
    "file_removed": remove_a_file,
    "other_key": sign_with_another_key,
    "unsigned": remove_the_signature,
}


def remote_trees(endpoints: list[Endpoint]) -> dict[str, dict[str, bytes]]:
    """Everything on each difusor, prepush's own lock and state included."""
    return {e.name: read_tree(e.local_root, skip_meta=False) for e in endpoints}


def assert_refusal_recorded(workdir: Workdir, corte: str, named: str) -> None:
    with Ledger(workdir.path / "prepush.db") as ledger:
        run = ledger.runs()[-1]
        assert (run.command, run.corte, run.status) == ("publish", corte, "refused")
        (event,) = ledger.events("package_refused")
        assert named in event.message
        assert not [d for d in ledger.deliveries() if d.corte == corte]


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_an_altered_package_is_refused_for_every_difusor_and_nothing_is_written(
    tamper: str,
    sshd_plain: Endpoint,
    asyncssh_difusor: Endpoint,
    workdir: Workdir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoints = [sshd_plain, asyncssh_difusor]
    workdir.write_roster(endpoints)
    named = TAMPERS[tamper](workdir.build(SECOND))
    before = remote_trees(endpoints)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "publish"]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "No se escribió nada en ningún difusor" in err
    assert remote_trees(endpoints) == before == {e.name: {} for e in endpoints}
    assert_refusal_recorded(workdir, SECOND, named)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "report", "--format", "md"]) == 0
    assert "**publicación rechazada: paquete alterado o sin firma válida**" in (
        capsys.readouterr().out
    )


def test_a_roster_without_a_signing_key_publishes_nothing_and_says_how_to_fix_it(
    asyncssh_difusor: Endpoint, workdir: Workdir, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir.write_roster([asyncssh_difusor], signing_key=None)
    workdir.build(FIRST)
    capsys.readouterr()
    assert main(["-C", str(workdir.path), "publish"]) == 2
    err = capsys.readouterr().err
    assert "election.signing_key" in err
    assert "prepush keygen --out claves/firma.pem" in err
    assert remote_trees([asyncssh_difusor]) == {asyncssh_difusor.name: {}}
    assert_refusal_recorded(workdir, FIRST, "election.signing_key")


def test_watch_refuses_a_tampered_new_package_and_the_difusor_keeps_its_corte(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    """The night's publisher refuses the altered package, says so, and keeps watching."""
    workdir.write_roster([asyncssh_difusor])
    workdir.build(FIRST)
    assert main(["-C", str(workdir.path), "publish"]) == 0
    before = remote_trees([asyncssh_difusor])
    change_a_byte(workdir.build(SECOND))
    watcher = workdir.watch("0.1")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _refused(workdir):
            time.sleep(0.1)
        assert watcher.poll() is None, "one refused package does not stop --watch"
    finally:
        err = interrupt(watcher)
    assert watcher.returncode == 130
    assert "json/main.json" in err
    assert remote_trees([asyncssh_difusor]) == before
    shown = json.loads(before[asyncssh_difusor.name]["json/main.json"])
    assert shown["corte"] == FIRST
    assert_refusal_recorded(workdir, SECOND, "json/main.json")


def _refused(workdir: Workdir) -> bool:
    with Ledger(workdir.path / "prepush.db") as ledger:
        return bool(ledger.events("package_refused"))


def test_a_package_that_appears_mid_run_is_sent_only_if_intact(
    asyncssh_difusor: Endpoint, workdir: Workdir
) -> None:
    """A retry switches to the newest package when publishing the latest: never to one that
    does not verify; the refusal is recorded in the run."""
    workdir.write_roster([asyncssh_difusor])
    first = Package.open(workdir.build(FIRST))
    settings = load_settings(workdir.path)
    request = PublishRequest(settings=settings, difusores=settings.roster.difusores)
    with Ledger(settings.ledger_location) as ledger:
        run_id = ledger.start_run("publish", FIRST, {})
        owner = LockOwner(LockOwner.new_id(), run_id)
        publisher = SharePublisher(
            request, ledger, owner, lambda _: None, Connections(_no_connection, keep=False)
        )
        add_a_file(workdir.build(SECOND))
        assert publisher._package_for_attempt(first).corte == FIRST
        (event,) = ledger.events("package_refused")
        assert event.message.startswith(f"corte {SECOND}: assets/extra.js")
        (workdir.path / "paquetes" / SECOND / "assets" / "extra.js").unlink()
        assert publisher._package_for_attempt(first).corte == SECOND


async def _no_connection(*_: object) -> object:
    raise AssertionError("nothing connects in this test")


def test_the_bytes_verified_are_the_bytes_sent(workdir: Workdir) -> None:
    """Each file is read once, through the package's cache: a change on disk after the
    check does not reach the upload, which reads the same cache."""
    workdir.write_roster([])
    package = Package.open(workdir.build(FIRST))
    assert package_problems(package, load_settings(workdir.path)) == []
    target = package.file("json/main.json")
    verified = target.read_bytes()
    change_a_byte(package.path)
    assert package.cache.read(package.local_path("json/main.json")) == verified
    assert target.read_bytes() != verified


def test_a_workers_copy_holds_only_the_files_that_still_match(workdir: Workdir) -> None:
    """A worker process opens its own copy of the package: it holds (sends without reading
    or hashing again) the files that match the signed manifest, and not one changed since."""
    workdir.write_roster([])
    path = workdir.build(FIRST)
    change_a_byte(path)
    copy = Package.open(path)
    copy.hold_verified()
    assert copy.cache.held(copy.local_path("json/main.json")) is None
    others = [e.path for e in copy.manifest.files if e.path != "json/main.json"]
    assert others
    assert all(copy.cache.held(copy.local_path(p)) is not None for p in others)

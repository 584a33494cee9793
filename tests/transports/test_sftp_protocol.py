"""The SFTP transport against a scripted server: every request, every status, every misdeed.

Every request type the transport sends (through asyncssh's client or through prepush's own
pump) is answered with every non-OK status code, and the operation must raise with the code
kept, or do what that status documents (a file not there is None for a read, a removal of a
file already gone is fine). No request is left without its reply, and no case waits for
the request timeout (one that did would fail with "Sin respuesta"). Then the misdeeds one
at a time: silence, short reads, replies out of order, oversized and malformed packets, a
server that never starts its SFTP subsystem; and what the client keeps in flight, measured
at the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from prepush.delivery.contract import REPLACED, UNVOUCHED
from prepush.exceptions import ConnectError, DifusorError, LocalFileError, RemoteError
from prepush.settings import Difusor, Settings, parse_roster
from prepush.sim.fleet import ServerThread
from prepush.transports.base import Delta, DiskFiles, Upload
from prepush.transports.sftp.connect import open_sftp
from prepush.transports.sftp.pump import DEFAULT_BUDGET
from prepush.transports.sftp.transport import SFTPTransport
from tests.support.scripted_sftp import EXTENSIONS, Filesystem, Script, ScriptedServer

T = TypeVar("T")
# The request timeout: long enough that no answered request ever meets it on a loaded
# machine. A case that waited for it fails with "Sin respuesta", and that is what the cases
# check (an event), not how long they took.
TIMEOUT = 10.0
# The silent server's cases wait it out on purpose.
SILENCE_TIMEOUT = 1.5
# Every status a server may answer instead of OK: v3's, later drafts' that some v3 servers
# send (11 exists, 14 no space, 15 quota), and one nobody defined.
CODES = (1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 15, 99)


@pytest.fixture
def scripted(servers_loop: ServerThread) -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def make(script: Script | None = None) -> ScriptedServer:
        server = ScriptedServer(script)
        servers_loop.run(server.start())
        started.append(server)
        return server

    yield make
    for server in started:
        servers_loop.run(server.stop())


def roster_for(
    server: ScriptedServer, key: Path, workdir: Path, timeout: float = TIMEOUT
) -> tuple[Difusor, Settings]:
    text = yaml.safe_dump(
        {
            "election": {
                "process": "Prueba",
                "publication": {"start": "2021-06-06T19:00:00", "end": "2099-01-01T00:00:00"},
            },
            "publish": {"connect_timeout_seconds": 3, "request_timeout_seconds": timeout},
            "difusores": [
                {
                    "name": "guion",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "user": "prep",
                    "key_file": str(key),
                    "host_key": server.host_key_line,
                    "remote_dir": "/",
                }
            ],
        }
    )
    roster = parse_roster(text, "prueba.yaml")
    return roster.difusores[0], Settings(roster, workdir, workdir / "prueba.yaml")


def unresolved(transport: SFTPTransport) -> int:
    """Requests still waiting for a reply, in the pump and in asyncssh's client."""
    pump = len(transport._pump._pending)
    control = len(transport._control._handler._requests)
    return pump + control


@dataclass
class Outcome:
    value: object = None
    error: BaseException | None = None
    seconds: float = 0.0
    waiting: int = 0


def run_against(
    server: ScriptedServer,
    key: Path,
    workdir: Path,
    operation: Callable[[SFTPTransport], Awaitable[object]],
    timeout: float = TIMEOUT,
) -> Outcome:
    async def main() -> Outcome:
        difusor, settings = roster_for(server, key, workdir, timeout)
        transport = await open_sftp(difusor, settings)
        assert isinstance(transport, SFTPTransport)
        outcome = Outcome()
        started = time.monotonic()
        try:
            # Nothing may wait past its timeout: a whole operation gets a few of them.
            outcome.value = await asyncio.wait_for(operation(transport), timeout * 6)
        except DifusorError as exc:
            outcome.error = exc
        outcome.seconds = time.monotonic() - started
        await asyncio.sleep(0.1)  # replies already on the wire arrive
        outcome.waiting = unresolved(transport) if transport.alive else 0
        transport.abort()
        return outcome

    return asyncio.run(main())


def timed_out(outcome: Outcome) -> bool:
    """The operation failed because a request went unanswered for the request timeout."""
    return isinstance(outcome.error, DifusorError) and "Sin respuesta" in outcome.error.message


def wait_until(condition: Callable[[], bool], what: str, within: float = 30) -> None:
    """Until ``condition`` holds; ``within`` only bounds a failure."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --- the table ---------------------------------------------------------------------------

CONTENT = b"contenido del archivo " * 50
SHA = hashlib.sha256(CONTENT).hexdigest()


def upload_of(path: str, **fields: Any) -> Upload:
    return Upload(path, len(CONTENT), SHA, data=CONTENT, **fields)


@dataclass
class Op:
    name: str
    kinds: tuple[str, ...]
    run: Callable[[SFTPTransport], Awaitable[object]]
    setup: Callable[[Filesystem], None] = lambda _fs: None
    extensions: dict[bytes, bytes] = field(default_factory=lambda: dict(EXTENSIONS))
    # (kind, code) -> "ok": the status is part of the operation's normal course;
    # "error": it fails, with the server's code or one of its own.
    special: dict[tuple[str, int], str] = field(default_factory=dict)
    # Narrow a rule on 'open' to one path (reads and writes both open).
    open_path: str = ""


def _file(path: str, data: bytes = CONTENT) -> Callable[[Filesystem], None]:
    def setup(fs: Filesystem) -> None:
        fs.dirs.update({"/json", "/json/o", "/.prepush"})
        fs.files[path] = bytearray(data)

    return setup


def _dirs(fs: Filesystem) -> None:
    fs.dirs.update({"/json", "/json/o", "/.prepush"})


WITHOUT_POSIX = {k: v for k, v in EXTENSIONS.items() if k != b"posix-rename@openssh.com"}

OPS = [
    Op(
        "read_file",
        ("open", "fstat", "read", "close"),
        lambda t: t.read_file(".prepush/state.json"),
        _file("/.prepush/state.json"),
        special={("open", 2): "ok", ("read", 1): "error"},
    ),
    Op(
        "stat",
        ("lstat",),
        lambda t: t.stat("json/a.json"),
        _file("/json/a.json"),
        special={("lstat", 2): "ok"},
    ),
    Op("space", ("statvfs",), lambda t: t.space()),
    Op(
        "write_file",
        ("open", "write", "fsync", "close", "posix-rename"),
        lambda t: t.write_file(".prepush/state.json", CONTENT),
        _dirs,
        # Advertised but refused: the server is then treated as one without it.
        special={("posix-rename", 8): "ok"},
    ),
    Op(
        "write_file_sin_posix_rename",
        ("open", "write", "close", "rename", "remove"),
        lambda t: t.write_file(".prepush/state.json", CONTENT),
        _file("/.prepush/state.json", b"anterior"),
        WITHOUT_POSIX,
        special={("remove", 2): "ok"},
    ),
    Op(
        "create_exclusive",
        ("open", "write", "fsync", "close"),
        lambda t: t.create_exclusive(".prepush/lock", CONTENT),
        _dirs,
    ),
    Op(
        "upload_nuevo",
        ("open", "write", "fsync", "close"),
        lambda t: t.upload([upload_of("json/o/a.json")], 4),
        _dirs,
    ),
    Op(
        "upload_quizas_servido",
        ("lstat", "fstat", "read"),
        lambda t: t.upload([upload_of("json/o/a.json", contract=UNVOUCHED)], 4),
        _file("/json/o/a.json"),
        special={("lstat", 2): "error", ("read", 1): "error"},
    ),
    Op(
        "upload_reemplazo",
        ("open", "write", "fsync", "close", "posix-rename"),
        lambda t: t.upload([upload_of("json/a.json", contract=REPLACED)], 4),
        _file("/json/a.json", b"version anterior"),
        special={("posix-rename", 8): "ok"},
    ),
    Op(
        "upload_reconstruido",
        ("open", "copy-data"),
        lambda t: t.upload(
            [upload_of("json/o/b.json", delta=Delta("json/o/base.json", len(CONTENT), 400, 400))],
            4,
        ),
        _file("/json/o/base.json"),
        open_path="base",
        special={("open", code): "ok" for code in CODES},
    ),
    Op(
        "enlace",
        ("hardlink",),
        lambda t: t.upload([upload_of("json/copia.json", link_from="json/o/base.json")], 4),
        _file("/json/o/base.json"),
        special={("hardlink", 8): "ok"},
    ),
    Op(
        "remove_many",
        ("remove",),
        lambda t: t.remove_many(["json/a.json"], 4),
        _file("/json/a.json"),
        special={("remove", 2): "ok"},
    ),
    Op(
        "prepare_dirs",
        ("lstat", "mkdir"),
        lambda t: t.prepare_dirs(["nuevo"]),
        special={("lstat", 2): "ok"},
    ),
    Op(
        "replace_if",
        ("rename", "open", "read"),
        lambda t: t.replace_if(".prepush/lock", CONTENT, b"nuevo"),
        _file("/.prepush/lock"),
        open_path="lock.",
        # The lock moved aside then said missing: not swapped, nothing lost.
        special={("read", 1): "error", ("open", 2): "ok"},
    ),
]
CASES = [(op, kind, code) for op in OPS for kind in op.kinds for code in CODES]


@pytest.mark.parametrize(
    ("op", "kind", "code"), CASES, ids=[f"{o.name}-{k}-{c}" for o, k, c in CASES]
)
def test_every_request_and_every_status(
    op: Op,
    kind: str,
    code: int,
    scripted: Callable[..., ScriptedServer],
    client_key: Path,
    tmp_path: Path,
) -> None:
    script = Script(extensions=op.extensions, rules={kind: ("status", code)})
    if kind == "open" and op.open_path:
        script.rule_paths["open"] = op.open_path
    server = scripted(script)
    op.setup(server.fs)
    outcome = run_against(server, client_key, tmp_path, op.run)
    asked = [k for k, _ in server.stats.requests]
    assert kind in asked, f"{op.name} never sent {kind}: {asked}"
    expected = op.special.get((kind, code), "code")
    if expected == "ok":
        assert outcome.error is None, outcome.error
    elif expected == "error":
        assert isinstance(outcome.error, DifusorError), outcome.value
    else:
        assert isinstance(outcome.error, DifusorError), f"{op.name}: {outcome.value!r}"
        assert outcome.error.sftp_code == code, outcome.error.message
        assert f"código SFTP {code}" in outcome.error.message or code in (6, 7)
    assert outcome.waiting == 0
    assert not timed_out(outcome), outcome.error  # every request was answered, none waited
    assert outcome.seconds < TIMEOUT


# --- misdeeds ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["write", "posix-rename", "lstat", "open"])
def test_a_silent_server_fails_within_the_timeout(
    kind: str, scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted(Script(rules={kind: ("silence",)}))
    _dirs(server.fs)

    async def work(t: SFTPTransport) -> None:
        await t.prepare_dirs(["json"]) if kind == "lstat" else None
        await t.write_file("json/main.json", CONTENT)

    outcome = run_against(server, client_key, tmp_path, work, timeout=SILENCE_TIMEOUT)
    assert isinstance(outcome.error, ConnectError), outcome.error
    assert timed_out(outcome)
    assert SILENCE_TIMEOUT <= outcome.seconds < SILENCE_TIMEOUT + 1.5


def test_short_reads_are_read_to_the_end(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted(Script(max_read=10_000))
    data = os.urandom(100_000)
    server.fs.files["/estado.json"] = bytearray(data)
    outcome = run_against(server, client_key, tmp_path, lambda t: t.read_file("estado.json"))
    assert outcome.value == data


def test_replies_out_of_order_settle_each_file_once_all_its_replies_are_in(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted(Script(reorder=True))
    _dirs(server.fs)
    files = {f"json/o/{i}.json": os.urandom(i * 997 % 70_000) for i in range(200)}
    done: list[str] = []

    async def work(t: SFTPTransport) -> None:
        uploads = [
            Upload(p, len(d), hashlib.sha256(d).hexdigest(), data=d) for p, d in files.items()
        ]
        await t.upload(uploads, 32, lambda u: done.append(u.path))

    outcome = run_against(server, client_key, tmp_path, work)
    assert outcome.error is None, outcome.error
    assert sorted(done) == sorted(files)
    assert {p: bytes(server.fs.files["/" + p]) for p in files} == files


def test_a_write_refused_after_its_close_was_answered_fails_the_file(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    """Out of order, the close's OK arrives before the write's failure: the file is not
    done, it failed."""
    server = scripted(Script(reorder=True, rules={"write": ("status", 4)}))
    _dirs(server.fs)
    done: list[str] = []

    async def work(t: SFTPTransport) -> None:
        await t.upload([upload_of("json/o/a.json")], 4, lambda u: done.append(u.path))

    outcome = run_against(server, client_key, tmp_path, work)
    assert isinstance(outcome.error, RemoteError)
    assert outcome.error.sftp_code == 4
    assert done == []


@pytest.mark.parametrize("misdeed", ["oversized", "malformed"])
@pytest.mark.parametrize("kind", ["write", "lstat"])
def test_oversized_and_malformed_packets_end_the_session_without_hanging(
    misdeed: str,
    kind: str,
    scripted: Callable[..., ScriptedServer],
    client_key: Path,
    tmp_path: Path,
) -> None:
    server = scripted(Script(rules={kind: (misdeed,)}))
    _dirs(server.fs)

    async def work(t: SFTPTransport) -> None:
        await t.stat("json") if kind == "lstat" else None
        await t.upload([upload_of("json/o/a.json")], 4)

    outcome = run_against(server, client_key, tmp_path, work)
    assert isinstance(outcome.error, DifusorError), outcome.value
    # Ended by the bad packet itself, not by waiting out the silence after it.
    assert not timed_out(outcome), outcome.error
    assert outcome.seconds < TIMEOUT


def test_a_server_that_never_starts_sftp_is_refused_and_the_connection_closed(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted(Script(silent_init=True))
    difusor, settings = roster_for(server, client_key, tmp_path)

    async def main() -> tuple[BaseException | None, float]:
        started = time.monotonic()
        try:
            await open_sftp(difusor, settings)
        except DifusorError as exc:
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    error, seconds = asyncio.run(main())
    assert isinstance(error, ConnectError)
    assert "SFTP" in error.message
    assert seconds < 3 + 1.5
    wait_until(lambda: server.closed_connections >= 1, "the connection was closed")


def test_a_local_read_error_is_said_as_such_and_the_connection_goes_on(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted()
    _dirs(server.fs)

    class Files(DiskFiles):
        def read(self, path: str) -> bytes:
            if path.endswith("7.json"):
                raise OSError(5, "Input/output error")
            return CONTENT

    async def work(t: SFTPTransport) -> tuple[BaseException | None, bool]:
        uploads = [
            Upload(f"json/o/{i}.json", len(CONTENT), SHA, local=f"/paquete/{i}.json")
            for i in range(20)
        ]
        try:
            await t.upload(uploads, 8, None, Files())
        except DifusorError as exc:
            await t.write_file("json/otro.json", b"sigue")
            return exc, t.alive
        return None, t.alive

    outcome = run_against(server, client_key, tmp_path, work)
    error, alive = outcome.value  # type: ignore[misc]
    assert isinstance(error, LocalFileError)
    assert "7.json" in error.message
    assert "Input/output error" in error.message
    assert alive
    assert bytes(server.fs.files["/json/otro.json"]) == b"sigue"


# --- what is in flight, measured at the server -------------------------------------------


def test_the_bytes_in_flight_stay_within_the_budget_with_the_widest_setting(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    """10,000 files of 1 MiB with 512 in flight: the server holds every write's reply and
    counts what arrives unanswered. Then cancelling stops the upload: no file is opened
    after the cancel."""
    script = Script(hold_writes=True, discard_writes=True)
    server = scripted(script)
    _dirs(server.fs)
    size = 1 << 20
    block = b"x" * size
    digest = hashlib.sha256(block).hexdigest()

    class Same(DiskFiles):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, path: str) -> bytes:
            return self.data

    async def work(t: SFTPTransport) -> tuple[int, int, int]:
        uploads = [Upload(f"json/o/{i}.json", size, digest, local=f"/p/{i}") for i in range(10_000)]
        task = asyncio.create_task(t.upload(uploads, 512, None, Same(block)))
        await asyncio.sleep(1.0)
        held = server.stats.held_bytes
        opened = len(server.stats.opens_at)
        task.cancel()
        cancelled_at = time.monotonic()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.5)
        late_opens = len([at for at in server.stats.opens_at if at > cancelled_at + 0.05])
        return held, opened, late_opens

    outcome = run_against(server, client_key, tmp_path, work, timeout=30)
    held, opened, late_opens = outcome.value  # type: ignore[misc]
    assert held > 0
    assert server.stats.peak_held_bytes <= DEFAULT_BUDGET, server.stats.peak_held_bytes
    assert opened <= 4  # two files fit the budget; nothing else starts until they are acked
    assert late_opens == 0


def test_a_rebuilt_file_counts_its_two_handles(
    scripted: Callable[..., ScriptedServer], client_key: Path, tmp_path: Path
) -> None:
    server = scripted(Script(max_handles=8))
    _dirs(server.fs)
    server.fs.files["/json/o/base.json"] = bytearray(CONTENT)

    async def work(t: SFTPTransport) -> None:
        uploads = [
            upload_of(f"json/o/{i}.json", delta=Delta("json/o/base.json", len(CONTENT), 400, 400))
            for i in range(40)
        ]
        await t.upload(uploads, 512, None)

    outcome = run_against(server, client_key, tmp_path, work)
    assert outcome.error is None, outcome.error
    # limits says 8 handles: prepush keeps 4 for itself and its reads, so 4 are for puts.
    assert server.stats.peak_handles <= 4 + 1  # + asyncssh's own, at most one
    assert all(bytes(server.fs.files[f"/json/o/{i}.json"]) == CONTENT for i in range(40))

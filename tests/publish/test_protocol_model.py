"""The protocol against a model of a difusor, by Hypothesis stateful testing (issue 30).

Hypothesis plays a night: new cortes arrive, publishes run (one machine, or two machines at
once), each with one fault at any request (the connection cut, prepush killed, an error
reply, no reply), a newer corte may arrive while a retry waits, the operator rolls back and
resumes. The publishes are the real ones (``publish_async``: the run, the delivery runner,
the protocol, the state, the ledger) over an in-memory difusor (tests/support/difusor_model.py) with
the mechanics of each transport kind. After every step:

- a reader sees one whole corte: every file of the corte main.json names, with its bytes;
- the difusor's state (state.json and any pending record) covers every served file, unless
  it says it cannot (lost, damaged, or naming cortes this machine lacks);
- the ledger says ``delivered`` exactly when the served corte changed (and names it);
- nothing retained is deleted: the files of the served corte and of the one before it.

CI runs a fixed number of examples, derandomized (the same ones every run, well under three
minutes on two cores); ``PREPUSH_MODEL_EXAMPLES=500`` runs more (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import asyncssh
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from prepush.delivery.runner import Backoff
from prepush.ledger import Ledger
from prepush.package import MAIN_JSON, LocalManifests, Manifest, Package, sha256_bytes
from prepush.publish.protocol_types import Event
from prepush.publish.publisher import ConnectionPool, publish_async
from prepush.publish.request import PublishRequest
from prepush.publish.state import LOCK_PATH, PENDING_PATH, STATE_PATH, RemoteState, merge_pending
from prepush.settings import Difusor, Settings, load_settings
from prepush.transports.base import Transport
from tests.conftest import Workdir
from tests.support.difusor_model import STEPS, Fault, Killed, Kind, ModelTransport, Network, Store
from tests.support.tiny import LocalSite, write_package

NAME = "modelo"
RETENTION = 2
CORTES = tuple(f"20210606_2{minute:03d}" for minute in range(0, 60, 10))
EXAMPLES = int(os.environ.get("PREPUSH_MODEL_EXAMPLES", "20"))
STEP_COUNT = int(os.environ.get("PREPUSH_MODEL_STEPS", "15"))


def model_files(index: int) -> dict[str, bytes]:
    """Corte ``index``: results in content-addressed objects (one shared with the corte
    before, one new), an alias of the previous corte's object (a link on servers that
    link), a ZIP, and the entry files."""
    corte = CORTES[index]
    shared = json.dumps({"votos": index // 2}).encode()
    own = json.dumps({"corte": corte}).encode()
    previous = json.dumps({"corte": CORTES[index - 1] if index else "ninguno"}).encode()
    return {
        "index.html": b"<html>PREP</html>",
        MAIN_JSON: json.dumps({"corte": corte}).encode(),
        f"json/o/{sha256_bytes(shared)[:16]}.json": shared,
        f"json/o/{sha256_bytes(own)[:16]}.json": own,
        f"json/o/alias-{index}.json": previous,
        f"datos/{corte}_PREP.zip": f"zip {corte}".encode() * 20,
    }


def faults(most: int, *kinds: str) -> st.SearchStrategy[Fault | None]:
    """No fault, or one of ``kinds``: at one of the first ``most`` requests, or at one of
    the first requests after a step of the protocol."""
    kind = st.sampled_from(kinds)
    anywhere = st.builds(Fault, st.integers(1, most), kind)
    after_a_step = st.builds(Fault, st.integers(1, 3), kind, st.sampled_from(STEPS))
    return st.none() | anywhere | after_a_step


@dataclass
class Machine:
    """One machine that publishes: its working directory, roster, ledger and packages."""

    workdir: Path
    settings: Settings

    @property
    def difusor(self) -> Difusor:
        return self.settings.roster.difusores[0]

    def ledger(self) -> Ledger:
        return Ledger(self.settings.ledger_location)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every corte's package, built once; and the key that signed them."""
    root = tmp_path_factory.mktemp("modelo")
    key = root / "firma.pem"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh"))
    for index, corte in enumerate(CORTES):
        write_package(root / "paquetes", corte, model_files(index), key)
    return root / "paquetes", key


class DifusorNight(RuleBasedStateMachine):
    """One difusor of one transport kind, through a night of publishes with faults."""

    kind: Kind = "sftp"
    packages: Path
    key: Path

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="prepush-modelo-"))
        self.store = Store()
        self.network = Network(None)
        self.arrived = 0
        # The cortes main.json named, in order (each change once): the truth.
        self.shown: list[str] = []
        self.held: str | None = None
        self.machines = [self._machine("a"), self._machine("b")]
        self.manifests = LocalManifests(self.packages)

    def _machine(self, name: str) -> Machine:
        workdir = self.tmp / name
        workdir.mkdir()
        (workdir / "paquetes").mkdir()
        Workdir(workdir, self.key).write_roster(
            [LocalSite(NAME, self.tmp)],
            deadline=5,
            publish={"workers": 1},
            retention=RETENTION,
            max_failed_cortes=100,
        )
        return Machine(workdir, load_settings(workdir))

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- what happens in the night ----------------------------------------------------------

    @initialize()
    def first_corte(self) -> None:
        self.arrive()

    def arrive(self) -> None:
        """The next corte's package reaches both machines."""
        if self.arrived >= len(CORTES):
            return
        corte = CORTES[self.arrived]
        for machine in self.machines:
            (machine.workdir / "paquetes" / corte).symlink_to(self.packages / corte)
        self.arrived += 1

    @precondition(lambda self: self.arrived < len(CORTES))
    @rule()
    def a_new_corte_arrives(self) -> None:
        self.arrive()

    @rule(fault=faults(45, "cut", "kill", "error", "noreply"), newer=st.booleans())
    def publish(self, fault: Fault | None, newer: bool) -> None:
        """Machine a publishes the newest corte; a newer one may arrive when the fault hits."""
        self.run([self.newest(self.machines[0])], fault, newer)

    @rule(step=st.sampled_from(STEPS), at=st.integers(1, 2), newer=st.booleans())
    def prepush_is_killed_after_a_step(self, step: str, at: int, newer: bool) -> None:
        """Machine a publishes and is killed (SIGKILL) at a request right after ``step``."""
        self.run([self.newest(self.machines[0])], Fault(at, "kill", step), newer)

    @rule(fault=faults(45, "cut", "error", "noreply"))
    def two_machines_publish_at_once(self, fault: Fault | None) -> None:
        """Both machines publish the newest corte at once; the fault hits whichever asks."""
        self.run([self.newest(machine) for machine in self.machines], fault, newer=False)
        self.clear_leftover_lock()

    @precondition(lambda self: len(set(self.shown)) >= 2 and self.held is None)
    @rule(fault=faults(30, "cut", "error", "noreply"))
    def rollback(self, fault: Fault | None) -> None:
        """The operator rolls back to the corte shown before the current one."""
        served = self.store.served_corte()
        earlier = [c for c in self.shown if c != served]
        target = earlier[-1]
        machine = self.machines[0]
        request = PublishRequest(machine.settings, [machine.difusor], corte=target, rollback=True)
        self.run([(machine, request)], fault, newer=False)
        with machine.ledger() as ledger:
            hold = ledger.active_hold(NAME)
        self.held = hold.corte if hold is not None else None

    @precondition(lambda self: self.held is not None)
    @rule()
    def resume_latest(self) -> None:
        with self.machines[0].ledger() as ledger:
            ledger.release_hold(NAME)
        self.held = None

    # --- running a publish -----------------------------------------------------------------

    @staticmethod
    def newest(machine: Machine) -> tuple[Machine, PublishRequest]:
        return machine, PublishRequest(machine.settings, [machine.difusor])

    def run(
        self, requests: list[tuple[Machine, PublishRequest]], fault: Fault | None, newer: bool
    ) -> None:
        before = self.store.served_corte()
        known = {id(m): self._ledger_serving(m) for m, _ in requests}
        last_row = {id(m): self._last_row(m) for m, _ in requests}
        self.network = Network(fault, self.arrive if newer else lambda: None)
        killed = False

        def heard(event: Event) -> None:
            if event.stage == "step":
                self.network.step(event.detail)

        async def connector(difusor: Difusor, settings: Settings) -> Transport:
            return ModelTransport(self.kind, self.store, self.network, difusor.name)

        async def all_of_them() -> None:
            await asyncio.gather(
                *(
                    publish_async(r, heard, ConnectionPool(connector, keep=False))
                    for _, r in requests
                )
            )

        # Retries wait a millisecond: the model's time is its requests, not the clock.
        with mock.patch.object(Backoff, "wait", return_value=0.001):
            try:
                asyncio.run(all_of_them())
            except Killed:
                killed = True
        after = self.store.served_corte()
        if after is not None and (not self.shown or self.shown[-1] != after):
            self.shown.append(after)
        if killed:
            return
        rows = [row for m, _ in requests for row in self._rows_after(m, last_row[id(m)])]
        delivered = [r for r in rows if r.outcome == "delivered"]
        for row in delivered:
            assert row.flip_at is not None, row
            assert row.corte == after, (row, before, after)
        for row in rows:
            if row.outcome == "up_to_date":  # (another machine may have flipped it just now)
                assert row.corte == after, (row, before, after)
        if before != after:
            assert delivered, (rows, before, after)
        elif delivered:
            # A corte flipped again without changing what is shown: only after a run that
            # flipped it and never told this machine's ledger (killed, or another machine).
            assert all(known[id(m)] != after for m, _ in requests), (rows, known, after)

    def _ledger_serving(self, machine: Machine) -> str | None:
        with machine.ledger() as ledger:
            serving = ledger.serving(NAME)
        return serving.corte if serving is not None else None

    def _last_row(self, machine: Machine) -> int:
        with machine.ledger() as ledger:
            rows = ledger.deliveries(difusor=NAME)
        return rows[-1].id if rows else 0

    def _rows_after(self, machine: Machine, last: int) -> list[Any]:
        with machine.ledger() as ledger:
            return [r for r in ledger.deliveries(difusor=NAME) if r.id > last]

    def clear_leftover_lock(self) -> None:
        """A lock the fault left behind goes with its machine's next run (it knows it as its
        own): that run, without faults, keeps the night from waiting on staleness."""
        data = self.store.read(LOCK_PATH)
        if data is None:
            return
        owner = json.loads(data)["owner"]
        for machine in self.machines:
            with machine.ledger() as ledger:
                own = ledger.is_own_lock_owner(owner)
            if own:
                self.run(
                    [(machine, PublishRequest(machine.settings, [machine.difusor]))],
                    None,
                    newer=False,
                )
                return

    # --- the invariants -------------------------------------------------------------------

    def manifest(self, corte: str) -> Manifest:
        return Package.open(self.packages / corte).manifest

    def whole(self, corte: str) -> list[str]:
        """The files of ``corte`` a reader would miss or get wrong (entry files but
        main.json are the same in every corte here)."""
        manifest = self.manifest(corte)
        return [
            f.path
            for f in manifest.files
            if f.path != "index.html" and not self.store.holds(f.path, f.sha256)
        ]

    @invariant()
    def a_reader_sees_one_whole_corte(self) -> None:
        served = self.store.served_corte()
        if served is not None:
            assert self.whole(served) == [], f"el corte {served} servido está incompleto"

    @invariant()
    def the_state_covers_every_served_file(self) -> None:
        served = self.store.served_corte()
        state_bytes = self.store.read(STATE_PATH)
        if served is None or state_bytes is None:
            return  # nothing served, or no state: the protocol then assumes nothing
        try:
            state = RemoteState.from_bytes(state_bytes, self.manifests)
        except (ValueError, KeyError, TypeError):
            return
        pending = self.store.read(PENDING_PATH)
        if pending is not None:
            merge_pending(state, pending, self.manifests)
        if not state.trusted:
            return
        uncovered = [
            f.path
            for f in self.manifest(served).immutable_files
            if (held := state.files.get(f.path)) is None or held.sha256 != f.sha256
        ]
        assert uncovered == [], f"el estado no cubre {uncovered} del corte servido {served}"
        named = {*state.history, *state.possibly_shown()}
        assert served in named, f"el estado no nombra el corte servido {served}"

    @invariant()
    def nothing_retained_is_deleted(self) -> None:
        for corte in self.shown[-2:]:
            missing = [p for p in self.whole(corte) if p != MAIN_JSON]
            assert missing == [], f"se borraron {missing} del corte {corte}, aún retenido"


def night_of(kind: Kind) -> type[DifusorNight]:
    return type(f"DifusorNight_{kind}", (DifusorNight,), {"kind": kind})


@pytest.mark.parametrize("kind", ["sftp", "local", "rsync", "s3"])
def test_a_night_of_faults_never_breaks_the_promise(kind: Kind, built: tuple[Path, Path]) -> None:
    machine = night_of(kind)
    machine.packages, machine.key = built
    test = machine.TestCase
    test.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEP_COUNT,
        derandomize=True,
        database=None,
        deadline=None,
        # One broken promise, shrunk to its shortest night, is the report: shrinking every
        # distinct failure Hypothesis meets ran past the 300 s timeout and said nothing.
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    test("runTest").runTest()

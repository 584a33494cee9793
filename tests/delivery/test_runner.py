"""The run around the protocol (prepush/delivery/runner.py), shared by publish and pull.

"delivered" exactly when the flip of that corte happened: a retry never moves a delivery to
another corte after a flip; a deadline or a dead worker after the flip is a delivery, said as
one; a notice that meets a broken main.json never ends the run. Each test is a scenario of
issue 30, seen failing before its fix. Difusores here are directories (the local transport)
with faults injected in a subclass: the protocol and the run are the real ones.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from prepush.delivery.runner import Backoff, DeliveryRunner, Retry, said_after, switch_corte
from prepush.exceptions import ConnectError, RemoteError, RemoteLockedError
from prepush.ledger import Ledger
from prepush.publish.protocol import RemoteLock
from prepush.publish.protocol_types import Delivery, Hooks, LockOwner, ProtocolSettings
from prepush.publish.publisher import publish
from prepush.publish.request import PublishRequest
from prepush.publish.state import META_DIR, STATE_PATH
from prepush.settings import load_settings
from prepush.transports.local import LocalTransport
from tests.conftest import Workdir
from tests.support.tiny import LocalSite, corte_files, local_connector, write_package

C1, C2 = "20210606_2300", "20210606_2315"


def site(tmp_path: Path, name: str = "local") -> LocalSite:
    root = tmp_path / name
    root.mkdir()
    return LocalSite(name, root)


def ledger_rows(workdir: Workdir) -> list[tuple[str, str, str, datetime | None, str | None]]:
    with Ledger(workdir.path / "prepush.db") as ledger:
        return [
            (r.difusor, r.corte, r.outcome, r.flip_at, r.error_message) for r in ledger.deliveries()
        ]


# --- scenario 2: no corte switch after a flip ---------------------------------------------------


def test_a_retry_after_the_flip_stays_on_the_flipped_corte(
    workdir: Workdir, tmp_path: Path
) -> None:
    """Attempt 1 flips C1 and is cut writing the state; meanwhile C2 appears. Attempt 2 must
    not take C2 (the public sees C1): it fails, and the ledger says C1 delivered."""
    local = site(tmp_path)
    workdir.write_roster([local], deadline=30)
    packages = workdir.path / "paquetes"
    write_package(packages, C1, corte_files(C1), workdir.signing_key)
    aside = tmp_path / "aparte"
    write_package(aside, C2, corte_files(C2), workdir.signing_key)
    cut: list[str] = []

    class CutAfterTheFlip(LocalTransport):
        async def write_file(self, path: str, data: bytes) -> None:
            if path == STATE_PATH and not cut:
                cut.append(path)
                (aside / C2).rename(packages / C2)  # a newer corte arrives meanwhile
                raise ConnectError(self._name, "la conexión se cortó al escribir el estado")
            await super().write_file(path, data)

        async def prepare_dirs(self, dirs: Sequence[str]) -> None:
            if cut:
                raise RemoteError(
                    self._name, "Permiso denegado. El sitio sigue en el corte anterior."
                )
            await super().prepare_dirs(dirs)

    settings = load_settings(workdir.path)
    report = publish(
        PublishRequest(settings, settings.roster.difusores),
        connector=local_connector([local], {local.name: CutAfterTheFlip}),
    )
    assert local.served_corte() == C1
    (delivery,) = report.deliveries
    assert (delivery.corte, delivery.outcome) == (C1, "delivered")
    assert delivery.attempts == 2
    message = delivery.error_message or ""
    assert f"El corte {C1} ya se publicó" in message
    assert "corte anterior" not in message
    ((name, corte, outcome, flip_at, _),) = ledger_rows(workdir)
    assert (name, corte, outcome) == (local.name, C1, "delivered")
    assert flip_at is not None


def test_a_switch_is_taken_only_before_any_flip() -> None:
    delivery = Delivery("d", C1)
    assert switch_corte(delivery, C2)
    assert delivery.corte == C2
    delivery.flip_at = datetime.now().astimezone()
    assert not switch_corte(delivery, "20210606_2330")
    assert delivery.corte == C2


def test_a_failure_said_after_the_flip_never_claims_the_previous_corte() -> None:
    delivery = Delivery("d", C1, flip_at=datetime.now().astimezone())
    said = said_after(
        delivery, "No se pudo escribir. El sitio sigue en el corte anterior completo."
    )
    assert said.startswith(f"El corte {C1} ya se publicó")
    assert "anterior" not in said
    assert "No se pudo escribir." in said


def test_the_runner_retries_transient_failures_and_gives_up_on_others() -> None:
    seen: list[int] = []
    told: list[int] = []

    async def attempt(number: int) -> None:
        seen.append(number)
        if number < 3:
            raise ConnectError("d", "se cortó")
        if number == 3:
            raise RemoteError("d", "permiso denegado")

    runner = DeliveryRunner(
        10,
        Retry((ConnectError,), Backoff(first=0.0, most=0.0, jitter=0.0)),
        on_retry=lambda n, _exc, _wait: told.append(n),
    )
    delivery = Delivery("d", C1)
    with pytest.raises(RemoteError, match="permiso denegado"):
        asyncio.run(runner.run(attempt, lambda: delivery))
    assert seen == [1, 2, 3]
    assert told == [1, 2]


def test_cancelling_the_runner_cancels_its_attempt_before_it_returns() -> None:
    """Ctrl-C cancels the difusor's task: its attempt stops and unwinds with it, never going
    on (to a flip) after the run told what each site shows and closed the ledger."""
    unwound: list[str] = []

    async def attempt(_number: int) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # aborting its connection
            unwound.append("attempt")
            raise

    async def interrupted() -> None:
        runner = DeliveryRunner(60, Retry(()))
        task = asyncio.create_task(runner.run(attempt, lambda: None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert unwound == ["attempt"]
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    asyncio.run(interrupted())


# --- scenario 8: the deadline after the flip -----------------------------------------------------


def test_a_deadline_after_the_flip_is_a_delivery_said_as_one(
    workdir: Workdir, tmp_path: Path
) -> None:
    """The corte's deadline comes while a CDN's invalidation is awaited: main.json already
    changed, so the corte is delivered and the message says so."""
    local = site(tmp_path)
    workdir.write_roster([local], deadline=2)
    write_package(workdir.path / "paquetes", C1, corte_files(C1), workdir.signing_key)

    class SlowCdn(LocalTransport):
        async def invalidate(self, paths: Sequence[str]) -> str | None:
            await asyncio.Event().wait()  # never: the deadline ends it
            return None

    settings = load_settings(workdir.path)
    report = publish(
        PublishRequest(settings, settings.roster.difusores),
        connector=local_connector([local], {local.name: SlowCdn}),
    )
    assert local.served_corte() == C1
    (delivery,) = report.deliveries
    assert delivery.outcome == "delivered"
    assert delivery.error_class == "DeadlineError"
    message = delivery.error_message or ""
    assert "corte anterior" not in message
    assert C1 in message


# --- scenario 8: a worker that dies after its flip ----------------------------------------------


def test_a_worker_that_dies_after_its_flip_is_recorded_as_delivered(
    workdir: Workdir, tmp_path: Path
) -> None:
    """The parent hears each flip of its workers' difusores: a worker that dies after one
    leaves the ledger saying the truth, that the corte is served."""
    first, second = site(tmp_path, "primero"), site(tmp_path, "segundo")
    workdir.write_roster([first, second], deadline=30, publish={"workers": 2})
    write_package(workdir.path / "paquetes", C1, corte_files(C1), workdir.signing_key)

    class DiesAfterTheFlip(LocalTransport):
        async def invalidate(self, paths: Sequence[str]) -> str | None:
            os._exit(1)  # the worker process dies here, after json/main.json changed

    settings = load_settings(workdir.path)
    report = publish(
        PublishRequest(settings, settings.roster.difusores),
        connector=local_connector([first, second], {second.name: DiesAfterTheFlip}),
    )
    assert second.served_corte() == C1
    by_name = {d.difusor: d for d in report.deliveries}
    assert by_name[first.name].outcome == "delivered"
    lost = by_name[second.name]
    assert lost.outcome == "delivered"
    assert lost.flip_at is not None
    assert "último corte completo" not in (lost.error_message or "")
    rows = {
        name: (corte, outcome, flip_at, message)
        for name, corte, outcome, flip_at, message in ledger_rows(workdir)
    }
    corte, outcome, flip_at, message = rows[second.name]
    assert (corte, outcome) == (C1, "delivered")
    assert flip_at is not None
    assert f"El corte {C1} ya se publicó" in (message or "")


# --- scenario 7: a notice that meets a broken main.json -----------------------------------------


def test_a_notice_that_meets_a_main_json_not_of_prepush_never_ends_the_run(
    workdir: Workdir, tmp_path: Path
) -> None:
    broken, fine = site(tmp_path, "roto"), site(tmp_path, "bien")
    (broken.root / "json").mkdir()
    (broken.root / "json" / "main.json").write_bytes(b"[]")
    workdir.write_roster([broken, fine], deadline=30, max_failed_cortes=1, notice_on_suspend=True)
    write_package(workdir.path / "paquetes", C1, corte_files(C1), workdir.signing_key)

    class Refuses(LocalTransport):
        async def upload(self, *args: object, **kwargs: object) -> None:
            raise RemoteError(self._name, "Permiso denegado al escribir.")

    settings = load_settings(workdir.path)
    report = publish(
        PublishRequest(settings, settings.roster.difusores),
        connector=local_connector([broken, fine], {broken.name: Refuses}),
    )
    by_name = {d.difusor: d for d in report.deliveries}
    assert by_name[fine.name].outcome == "delivered"
    assert by_name[broken.name].outcome == "failed"
    assert int(report.exit_code) == 1
    with Ledger(workdir.path / "prepush.db") as ledger:
        failed = [e for e in ledger.events("notice_failed") if e.difusor == broken.name]
        (run,) = ledger.runs()
    assert len(failed) == 1
    assert "main.json" in failed[0].message
    assert run.status == "partial"


# --- scenario 9: the lock refresher after a failed renewal ---------------------------------------


def test_a_failed_renewal_does_not_stop_the_refresher_and_an_aging_lock_stops_the_flip(
    tmp_path: Path,
) -> None:
    """Every renewal of the lock fails (the server refuses the swap): the refresher keeps
    trying, and before the flip the protocol refuses a lock that may look abandoned."""
    renewals: list[float] = []
    third = asyncio.Event()

    class RefusesRenewals(LocalTransport):
        async def replace_if(self, path: str, expected: bytes, data: bytes | None) -> bool:
            renewals.append(time.monotonic())
            if len(renewals) >= 3:
                third.set()
            raise RemoteError(self._name, "Permiso denegado al renovar el candado.")

    settings = ProtocolSettings(
        retention=3, width=4, lock_stale_seconds=4, connect_timeout_seconds=5
    )
    hooks = Hooks(
        event=lambda _e: None, record=lambda _k, _m: None, is_own_leftover=lambda _o: False
    )

    async def hold() -> None:
        transport = RefusesRenewals("d", tmp_path, 10)
        lock = RemoteLock(transport, "d", LockOwner(LockOwner.new_id(), 1), hooks, settings)
        await transport.prepare_dirs([META_DIR])
        await lock.take()
        lock.ensure_held()  # just taken
        try:
            await asyncio.wait_for(third.wait(), 20)
            with pytest.raises(RemoteLockedError, match="no se pudo renovar"):
                lock.ensure_held()
        finally:
            lock.stop_refreshing()
            await transport.close()

    asyncio.run(hold())
    assert len(renewals) >= 3

"""The publish protocol on one difusor: its steps, in order, each with the invariant it keeps.

The promise: a reader of the difusor sees one whole corte or the previous one, and what
prepush records on the difusor (``.prepush/``) always covers every file a reader may be
served. Each step says what holds if the connection is cut or prepush is killed right after
it; tests/publish/test_crash_points.py cuts and kills at each one, against real OpenSSH.

1. ``lock``: take ``.prepush/lock`` by exclusive create. The owner is unique per run; the
   lock is refreshed while the attempt lasts; a stale lock (or one a killed run of ours left)
   is taken over by compare-and-swap, and only our own is released. *One writer at a time.*
2. ``state``: read ``.prepush/state.json`` and any pending record. *state + pending cover
   every file a reader may be served* (a lost or damaged state covers nothing, and then
   nothing below is assumed: new names are verified, nothing is deleted).
3. ``plan``: what the difusor lacks for the corte. No request; unchanged content costs none.
4. ``dirs``: every directory the corte writes into exists as a real directory inside the
   remote directory (never a symbolic link). *Nothing served changes.*
5. ``upload``: objects, the ZIP, replaced and linked files, and the corte's extras (files
   outside its manifest: an origin's copy of the signed manifest, the CSVs a pull
   extracts), retained with the corte. Each file goes with its contract
   (:mod:`prepush.delivery.contract`, decided here from the state): a path that may be
   served is written under a temporary name and renamed over; one the state cannot vouch
   for is kept only if its bytes match; no existing name is ever written into. *No served
   file is ever rewritten in place; the served main.json's files are untouched.*
6. ``pending``: write the pending record (temporary name and rename): the corte's manifest
   and the files step 5 added. *Every file of the corte is on the server, and recorded.*
7. ``flip``: the entry files one by one, ``json/main.json`` last, each by temporary name and
   rename (atomic with posix-rename; see docs/publishing.md for servers without it); then a
   CDN in front of the server, if any, is told to drop them and every other name whose
   content changed (``invalidate``). *A reader gets
   the old or the new entry file whole; after main.json, the new corte whole.*
8. ``record``: write the state: the corte recorded, the files no retained corte uses listed
   as garbage. *The state covers the corte; the garbage is no longer served.*
9. ``cleanup``: remove the garbage (never a file of the current or the previous corte).
10. ``done``: remove the pending record. A record still naming the current corte tells the
    next publish to finish this one's cleanup.
11. ``release``: remove the lock if it is still ours. A lock left by a cut is stale after
    ``publish.lock_stale_seconds`` (a killed run of this machine's is recognised at once).

With a shared ledger (a publisher and its standby, :mod:`prepush.publish.lease`) the lock
also records the lease's epoch. A lock from a lower epoch belongs to a publisher that lost its
turn: taken over at once. A lock from a higher epoch means this run lost its turn: it stops.
And before taking the lock and before every write that changes what a reader may be served
(the directories, the pending record, each entry file of the flip, the state, the cleanup)
the run checks that it still holds the lease (``Hooks.fence``): a paused or cut-off
publisher whose lease expired never flips after the one that took over.

A cancelled attempt (the deadline) aborts the connection and waits on nothing: the lock is
left for the next attempt, which recognises it as its own run's, or for staleness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prepush.delivery.contract import ENTRY, REPLACED, UNVOUCHED_MUTABLE, Contract, decide
from prepush.exceptions import (
    ConnectError,
    DifusorError,
    LeaseLostError,
    RemoteError,
    RemoteLockedError,
)
from prepush.package import FileEntry, Package, sha256_bytes
from prepush.publish.delta import DeltaPlanner
from prepush.publish.protocol_types import (
    FLIPPED,
    Delivery,
    Event,
    Extra,
    Hooks,
    LockOwner,
    ProtocolSettings,
)
from prepush.publish.state import (
    LOCK_PATH,
    META_DIR,
    PENDING_PATH,
    STATE_PATH,
    Plan,
    RemoteState,
    Resolver,
    forget,
    garbage,
    leftover_garbage,
    links_entries,
    merge_pending,
    pending_record,
    plan_corte,
    record_corte,
)
from prepush.transports.base import Delta, Transport, Upload

log = logging.getLogger("prepush")
# How often the live view hears of the bytes of an upload while they flow.
PROGRESS_SECONDS = 0.25


class Session:
    """One attempt to bring one difusor to one corte, over one connection."""

    def __init__(
        self,
        transport: Transport,
        package: Package,
        delivery: Delivery,
        *,
        settings: ProtocolSettings,
        owner: LockOwner,
        hooks: Hooks,
        manifests: Resolver,
        planner: DeltaPlanner,
        dry_run: bool = False,
        rollback: bool = False,
        kept: bool = False,
        extras: Sequence[Extra] = (),
    ) -> None:
        self.t = transport
        self.package = package
        self.manifest = package.manifest
        self.delivery = delivery
        self.name = delivery.difusor
        self.settings = settings
        self.owner = owner
        self.hooks = hooks
        self.manifests = manifests
        self.planner = planner
        self.dry_run = dry_run
        self.rollback = rollback
        self.kept = kept
        self.extras = {extra.entry.path: extra for extra in extras}
        self.extra_entries = tuple(extra.entry for extra in extras)
        clashing = sorted(set(self.extras) & set(self.manifest.by_path()))
        if clashing:
            raise RemoteError(
                self.name,
                f"El corte {self.manifest.corte} ya trae {', '.join(clashing[:3])}, que prepush"
                " escribe aparte en este difusor (firmas/ de un origen, CSV extraídos): no se"
                " publica para no pisarlos. Cambie esas rutas del paquete.",
            )
        self.lock = RemoteLock(
            transport, self.name, owner, hooks, settings, on_write=self._count_meta
        )
        # Lock, pending record and state: prepush's own bookkeeping, counted apart from the
        # corte's files.
        self.meta_bytes = 0

    def event(self, stage: str, detail: str = "", **progress: int) -> None:
        self.hooks.event(Event(self.name, stage, detail, **progress))

    def _count_meta(self, data: bytes) -> None:
        self.meta_bytes += len(data)

    def step(self, name: str) -> None:
        self.event("step", name)

    async def run(self) -> None:
        try:
            if self.dry_run:
                await self._plan_only()
                return
            await self._first_contact(self._lock_the_difusor())
            await self._steps()
        except asyncio.CancelledError:
            # The deadline: cut the connection and wait on nothing.
            self.lock.stop_refreshing()
            self.t.abort()
            raise
        except BaseException:
            await self.lock.release_quietly()
            raise
        await self.lock.release()
        self.step("release")

    async def _lock_the_difusor(self) -> None:
        self.hooks.fence(self.name)
        await self.t.prepare_dirs([META_DIR])
        await self.lock.take()
        self.step("lock")

    async def _first_contact(self, step: Awaitable[None]) -> None:
        """A kept connection may have died quietly since the last corte (a rebooted server, a
        dropped NAT entry): its first step gets the connect timeout, then a retry connects
        afresh."""
        if not self.kept:
            await step
            return
        timeout = self.settings.connect_timeout_seconds
        try:
            await asyncio.wait_for(step, timeout)
        except TimeoutError:
            self.t.abort()
            raise ConnectError(
                self.name,
                f"La conexión abierta desde el corte anterior no respondió en {timeout:g} s; se"
                " reintenta con una conexión nueva.",
            ) from None

    async def _plan_only(self) -> None:
        state = await self.read_state()
        plan = self.plan(state)
        if plan.up_to_date:
            self.delivery.outcome = "up_to_date"
            return
        if self.rollback:
            self.refuse_unless_retained(plan)
        self.delivery.outcome = "dry_run"

    async def _steps(self) -> None:
        state = await self.read_state()
        self.step("state")
        plan = self.plan(state)
        if plan.up_to_date:
            await self._finish_unfinished(state)
            # A retry after this run's own flip finds the corte there: it was delivered.
            self.delivery.outcome = "delivered" if self.delivery.flip_at else "up_to_date"
            self.delivery.atomic = state.atomic
            return
        if self.rollback:
            self.refuse_unless_retained(plan)
        self.still_on_duty()
        await self.t.prepare_dirs(plan.dirs)
        self.step("dirs")
        await self.upload(plan, state)
        self.step("upload")
        await self.write_meta(
            PENDING_PATH, pending_record(self.manifest, plan, state, self.extra_entries)
        )
        self.step("pending")
        self.lock.ensure_held()
        await self.flip(plan, state)
        leftovers = self.record(state)
        await self.write_meta(STATE_PATH, state.to_bytes(self.manifests))
        self.step("record")
        await self.cleanup([*state.garbage, *leftovers])
        self.step("cleanup")
        self.still_on_duty()
        await self.t.remove_many([PENDING_PATH], 1)
        self.step("done")
        # A flip that changed nothing the public sees (it already showed this corte before
        # this delivery) is not a delivery.
        self.delivery.outcome = "delivered" if self.delivery.flip_at else "up_to_date"

    def still_on_duty(self) -> None:
        """Before a write that changes what readers may be served: this run still holds the
        publisher's lease (a shared ledger), and the difusor's lock is still its own."""
        self.hooks.fence(self.name)
        self.lock.ensure_held()

    # --- 2 and 3: what the difusor holds, and what it lacks -------------------------------

    async def read_state(self) -> RemoteState:
        data, pending = await asyncio.gather(
            self.t.read_file(STATE_PATH), self.t.read_file(PENDING_PATH)
        )
        state = self._parse_state(data)
        if pending is not None:
            merge_pending(state, pending, self.manifests)
        if data is None and not await self._nothing_served():
            # Files are served but no state says which: the operator deleted it.
            if not self.dry_run:
                self.hooks.record(
                    "state_missing",
                    f"el difusor publica un sitio pero no tiene {STATE_PATH}; se verifica cada"
                    " archivo que ya esté y no se borra nada",
                )
            state.cautious = True
        return state

    async def _nothing_served(self) -> bool:
        """A difusor without a state is new if its last entry file is not there."""
        return await self.t.stat(self.manifest.entry_files[-1]) is None

    def _parse_state(self, data: bytes | None) -> RemoteState:
        if data is None:
            return RemoteState()
        try:
            return RemoteState.from_bytes(data, self.manifests)
        except (ValueError, KeyError, TypeError) as exc:
            if _newer_format(data):
                raise RemoteError(
                    self.name,
                    f"El estado remoto {STATE_PATH} lo escribió una versión más nueva de prepush"
                    f" ({exc}). Actualice prepush en esta máquina antes de publicar a este"
                    " difusor.",
                ) from None
        # Unreadable: nothing is assumed about the files, so nothing served is rewritten or
        # deleted (names already there are verified) and the state is written anew.
        self.hooks.record(
            "state_damaged",
            f"el estado remoto {STATE_PATH} está dañado; se publica sin suponer nada de lo que"
            " hay en el difusor (cada archivo se verifica y nada se borra)",
        )
        log.warning(
            "[%s] el estado remoto %s está dañado: se verifica cada archivo y no se borra nada.",
            self.name,
            STATE_PATH,
        )
        return RemoteState(cautious=True)

    def plan(self, state: RemoteState) -> Plan:
        if not state.complete and not self.dry_run:
            self.hooks.record(
                "incomplete_state",
                "el difusor tiene cortes cuyo paquete no está en esta máquina"
                f" ({', '.join(sorted(state.unresolved))}): cada archivo que ya esté se verifica"
                " y no se borra nada hasta que salgan de la retención",
            )
        plan = plan_corte(
            self.manifest,
            state,
            hardlink=self.t.capabilities.links,
            extras=self.extra_entries,
        )
        self.delivery.plan = plan
        self.delivery.files_skipped = plan.skipped
        return plan

    def refuse_unless_retained(self, plan: Plan) -> None:
        """A rollback only re-points the entry files: every other file must still be there."""
        missing = len(plan.uploads) + len(plan.replaces) + len(plan.links)
        if missing:
            raise RemoteError(
                self.name,
                f"El corte {self.manifest.corte} ya no está retenido en este difusor (faltan"
                f" {missing} archivos); no se revierte y sigue mostrando el corte que tenía."
                " Un difusor conserva sólo los últimos cortes publicados (election.retention):"
                " elija uno más reciente que aún conserve.",
            )

    # --- 5: the files -----------------------------------------------------------------------

    async def upload(self, plan: Plan, state: RemoteState) -> None:
        total_files = len(plan.uploads) + len(plan.replaces) + len(plan.links)
        total_bytes = plan.bytes_to_send - sum(f.size for f in plan.flips)
        done = {"files": 0, "bytes": 0}

        def sent(upload: Upload) -> None:
            done["files"] += 1
            done["bytes"] += 0 if upload.link_from else upload.size
            self.event(
                "uploading",
                files_done=done["files"],
                files_total=total_files,
                bytes_done=done["bytes"],
                bytes_total=total_bytes,
            )

        deltas: dict[str, Delta] = {}
        if self.t.capabilities.copy_ranges:
            deltas = self.planner.deltas(state, (*plan.uploads, *plan.replaces))
        fresh = self.contract_of_new(state)
        uploads = [self.upload_of(e, fresh, delta=deltas.get(e.path)) for e in plan.uploads]
        uploads += [self.upload_of(e, REPLACED, delta=deltas.get(e.path)) for e in plan.replaces]
        uploads += [self.upload_of(link.entry, fresh, link_from=link.source) for link in plan.links]
        self.event("uploading", files_total=total_files, bytes_total=total_bytes)
        base = self.t.bytes_sent

        def flowing() -> None:
            # Bytes as they flow, not only when a file completes: a large file counts too.
            flowed = min(max(self.t.bytes_sent - base, done["bytes"]), total_bytes)
            self.event(
                "uploading",
                files_done=done["files"],
                files_total=total_files,
                bytes_done=flowed,
                bytes_total=total_bytes,
            )

        async with _every(PROGRESS_SECONDS, flowing):
            await self.t.upload(uploads, self.settings.width, sent, self.package.cache)
        self.delivery.files_uploaded = len(plan.uploads) + len(plan.replaces) - len(deltas)
        self.delivery.files_rebuilt = len(deltas)
        self.delivery.files_linked = len(plan.links)

    def contract_of_new(self, state: RemoteState) -> Contract:
        """A name the plan writes that the state does not list with other content."""
        return decide(
            state_vouches=state.trusted,
            changes_now=False,
            entry=False,
            fixed_path=self.manifest.mode == "site",
        )

    def upload_of(
        self,
        entry: FileEntry,
        contract: Contract,
        *,
        delta: Delta | None = None,
        link_from: str | None = None,
    ) -> Upload:
        extra = self.extras.get(entry.path)
        return Upload(
            entry.path,
            entry.size,
            entry.sha256,
            local=self.package.local_path(entry.path) if extra is None else extra.local,
            data=None if extra is None else extra.data,
            contract=contract,
            delta=delta,
            link_from=link_from,
        )

    async def write_meta(self, path: str, data: bytes) -> None:
        self.still_on_duty()
        await self.t.write_file(path, data)
        self._count_meta(data)

    # --- 7: the flip ------------------------------------------------------------------------

    async def flip(self, plan: Plan, state: RemoteState) -> None:
        self.event("flipping")
        naming = self.manifest.entry_files[-1]
        sent_before = self.delivery.flip_sent_at
        shown_already = await self._shows_this_corte_already(plan, state)
        # One at a time, in order: json/main.json is always the last to change.
        for entry in plan.flips:
            upload = self.upload_of(entry, ENTRY)
            # Right before each entry file, json/main.json last: never after a newer holder.
            self.still_on_duty()
            if entry.path == naming and self.delivery.flip_sent_at is None:
                self.delivery.flip_sent_at = datetime.now(UTC)
            await self.t.upload([upload], 1, None, self.package.cache)
            self.step(f"flip:{entry.path}")
        if self.delivery.flip_at is None:
            # A retry may flip the same corte again; the public saw it at the first flip
            # (an earlier attempt's, if its answer was lost). One that finds the corte already
            # shown from before this delivery changed nothing.
            if not shown_already:
                self.delivery.flip_at = datetime.now(UTC)
            elif sent_before is not None:
                self.delivery.flip_at = sent_before
        # The run hears it (a worker's parent records the truth if the worker dies now).
        self.step(FLIPPED)
        self.delivery.files_uploaded += len(plan.flips)
        self.delivery.atomic = self.t.capabilities.atomic_flip
        invalidated = await self.t.invalidate(self.changed_under_their_names(plan, state))
        if invalidated is not None:
            self.hooks.record("invalidation", invalidated)
        self.step("invalidate")

    async def _shows_this_corte_already(self, plan: Plan, state: RemoteState) -> bool:
        """Whether the served entry file that names the corte (json/main.json) already holds
        this corte's bytes. Asked of the server only when the state cannot say (lost,
        damaged, incomplete, or a pending record of another corte): one read, never on the
        usual path."""
        naming = self.manifest.entries_in_flip_order[-1]
        if not any(entry.path == naming.path for entry in plan.flips):
            return False
        if state.trusted and not state.entries_unknown and naming.path in state.files:
            return False  # the state says it holds other bytes
        data = await self.t.read_file(naming.path)
        return data is not None and sha256_bytes(data) == naming.sha256

    def changed_under_their_names(self, plan: Plan, state: RemoteState) -> list[str]:
        """What a cache in front of the server may hold with other content: the entry files,
        the replaced files, and the mutable names a state that vouches for nothing may
        have found already there."""
        changed = [entry.path for entry in (*plan.replaces, *plan.flips)]
        if self.contract_of_new(state) == UNVOUCHED_MUTABLE:
            changed += [entry.path for entry in (*plan.uploads, *links_entries(plan.links))]
        return changed

    # --- 8 to 10: record, clean up, done ------------------------------------------------

    def record(self, state: RemoteState) -> list[str]:
        """Record the corte; returns the garbage an unfinished publish left behind. The cortes
        that may have been shown before this flip (the one the state named, and any a
        pending record names) are kept whatever the retention: readers who loaded their
        main.json a moment ago still fetch their files."""
        leftovers = leftover_garbage(state)
        shown_before = {*state.possibly_shown(), *([state.current] if state.current else [])}
        record_corte(state, self.manifest, self.extra_entries)
        state.atomic = self.t.capabilities.atomic_flip
        doomed = garbage(state, self.manifest, self.settings.retention, keep=shown_before)
        forget(state, doomed, self.settings.retention, keep=shown_before)
        state.garbage = doomed
        return [path for path in leftovers if path not in state.files and path not in doomed]

    async def cleanup(self, doomed: list[str]) -> None:
        """A failure here comes after the flip: the corte is delivered and the error is
        reported with it; the pending record stays, so the next publish cleans up again."""
        if not doomed:
            return
        self.still_on_duty()
        self.event("cleaning", f"{len(doomed)} archivos de cortes ya no retenidos")
        await self.t.remove_many(doomed, self.settings.width)
        self.delivery.files_deleted = len(doomed)

    async def _finish_unfinished(self, state: RemoteState) -> None:
        """Up to date, but the last publish was cut before its cleanup ended: end it."""
        if not state.unfinished:
            return
        await self.cleanup(leftover_garbage(state))
        await self.t.remove_many([PENDING_PATH], 1)


class RemoteLock:
    """A difusor's lock (``.prepush/lock``), held by one run at a time."""

    def __init__(
        self,
        transport: Transport,
        name: str,
        owner: LockOwner,
        hooks: Hooks,
        settings: ProtocolSettings,
        *,
        on_write: Callable[[bytes], None] = lambda _data: None,
    ) -> None:
        self.t = transport
        self.name = name
        self.owner = owner
        self.hooks = hooks
        self.settings = settings
        self.on_write = on_write
        self.held: bytes | None = None
        self.refreshed_at = 0.0
        self.lost = False
        self._refresher: asyncio.Task[None] | None = None

    async def take(self) -> None:
        data = self.owner.lock_bytes()
        for _ in range(3):
            if await self.t.create_exclusive(LOCK_PATH, data):
                self._hold(data)
                return
            current = await self.t.read_file(LOCK_PATH)
            if current is None:
                continue  # released in between: try again
            if await self._take_over(current, data):
                self._hold(data)
                return
        raise RemoteLockedError(
            self.name, "El candado remoto cambió de dueño varias veces seguidas; se reintenta."
        )

    async def _take_over(self, current: bytes, data: bytes) -> bool:
        holder = _LockHolder.parse(current)
        mine = holder.owner == self.owner.id
        superseded = self._superseded(holder)
        leftover = not mine and not superseded and self.hooks.is_own_leftover(holder.owner)
        age = holder.age_seconds()
        stale = self.settings.lock_stale_seconds
        if not (mine or superseded or leftover or age >= stale):
            raise RemoteLockedError(
                self.name,
                f"Otro publicador ({holder.describe()}) tiene el candado remoto desde hace"
                f" {age:.0f} s. Si ya no está en marcha, el candado se liberará solo a los"
                f" {stale:g} s.",
            )
        if not await self.t.replace_if(LOCK_PATH, current, data):
            return False
        if not mine:
            why = "una corrida anterior de esta máquina" if leftover else f"hace {age:.0f} s"
            if superseded:
                why = f"concesión {holder.epoch}, anterior a la {self.owner.epoch} de esta máquina"
            self.hooks.record(
                "lock_taken_over",
                f"candado remoto abandonado por {holder.describe()} ({why}); se tomó",
            )
        return True

    def _superseded(self, holder: _LockHolder) -> bool:
        """The lock is from an older lease epoch (a publisher that lost its turn): taken at
        once. One from a newer epoch means this run lost its own turn: it stops here."""
        ours = self.owner.epoch
        if ours is None or holder.epoch is None:
            return False
        if holder.epoch > ours:
            raise LeaseLostError(
                self.name,
                f"El candado remoto es de la concesión {holder.epoch} ({holder.describe()}),"
                f" posterior a la {ours} de esta máquina: otra máquina tiene el turno de"
                " publicar y ésta no escribe más en este difusor.",
            )
        return holder.epoch < ours

    def _hold(self, data: bytes) -> None:
        self.held = data
        self.refreshed_at = time.monotonic()
        self.on_write(data)
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        """Keep the lock fresh while the attempt lasts, so nobody takes it as abandoned."""
        interval = self.settings.lock_refresh_seconds
        while self.held is not None:
            await asyncio.sleep(interval)
            fresh = self.owner.lock_bytes()
            try:
                swapped = await self.t.replace_if(LOCK_PATH, self.held, fresh)
            except RemoteLockedError:
                # Another publisher is swapping our lock: taking it over. Nothing else of
                # the attempt would notice, so main.json must not change.
                self.lost = True
                return
            except DifusorError as exc:
                # Tried again next round; meanwhile the lock ages, and ensure_held refuses
                # the flip once it may look abandoned to another publisher.
                log.warning("[%s] no se pudo renovar el candado remoto: %s", self.name, exc.message)
                if not self.t.alive:
                    return  # the attempt's own requests meet the same failure and report it
                continue
            if not swapped:
                self.lost = True
                return
            self.held = fresh
            self.refreshed_at = time.monotonic()
            self.on_write(fresh)

    def ensure_held(self) -> None:
        """Before the flip: the lock is still ours and was renewed recently enough that no
        other publisher can have judged it abandoned."""
        if self.lost:
            raise RemoteLockedError(
                self.name,
                "Otro publicador tomó el candado remoto durante este intento (lo creyó"
                " abandonado); no se cambia main.json. Se reintenta.",
            )
        age = time.monotonic() - self.refreshed_at
        if age >= self.settings.lock_trusted_seconds:
            raise RemoteLockedError(
                self.name,
                f"El candado remoto no se pudo renovar en {age:.0f} s (envejece a los"
                f" {self.settings.lock_stale_seconds:g} s y otro publicador podría tomarlo);"
                " no se cambia main.json. Se reintenta.",
            )

    def stop_refreshing(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def release(self) -> None:
        """Remove the lock only if it is ours. Refreshed within half the stale time and never
        lost, nobody can have taken it over, so a plain remove does; otherwise compare and
        swap."""
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        held, self.held = self.held, None
        if held is None or not self.t.alive:
            return
        fresh = time.monotonic() - self.refreshed_at < self.settings.lock_stale_seconds / 2
        if fresh and not self.lost and self._on_duty():
            await self.t.remove_many([LOCK_PATH], 1)
        else:
            await self.t.replace_if(LOCK_PATH, held, None)

    def _on_duty(self) -> bool:
        """Still holding the publisher's lease: nobody can have taken this lock over."""
        try:
            self.hooks.fence(self.name)
        except LeaseLostError:
            return False
        return True

    async def release_quietly(self) -> None:
        """After a failure: release if possible; the failure already reported says why."""
        try:
            await self.release()
        except DifusorError as exc:
            log.warning("[%s] no se pudo liberar el candado remoto: %s", self.name, exc.message)


@dataclass(frozen=True)
class _LockHolder:
    owner: str
    host: str
    since: datetime | None
    epoch: int | None = None

    @classmethod
    def parse(cls, data: bytes) -> _LockHolder:
        try:
            raw = json.loads(data)
            epoch = raw.get("epoch")
            return cls(
                str(raw["owner"]),
                str(raw.get("host", "?")),
                datetime.fromisoformat(raw["since"]),
                epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
            )
        except (ValueError, KeyError, TypeError):
            return cls("desconocido", "?", None)

    def age_seconds(self) -> float:
        if self.since is None:
            return float("inf")
        return (datetime.now(UTC) - self.since).total_seconds()

    def describe(self) -> str:
        return f"{self.host}, corrida {self.owner[:8]}"


def _newer_format(data: bytes) -> bool:
    try:
        raw = json.loads(data)
        return isinstance(raw, dict) and int(raw.get("format", 0)) > 3
    except (ValueError, TypeError):
        return False


@contextlib.asynccontextmanager
async def _every(seconds: float, tick: Callable[[], None]) -> AsyncIterator[None]:
    """Call ``tick`` every ``seconds`` while the body runs (progress of a long step)."""

    async def ticking() -> None:
        while True:
            await asyncio.sleep(seconds)
            tick()

    ticker = asyncio.create_task(ticking())
    try:
        yield
    finally:
        ticker.cancel()

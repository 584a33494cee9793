"""One pull pass: from the institute's origin to the difusor's own site.

The run around it, once or pass after pass (``--watch``), is :mod:`prepush.pull.run`.

A pass, bounded by the deadline (the poll interval unless the configuration says otherwise):

1. ``json/main.json`` from the origin. When the last pass concluded, conditionally: an
   unchanged origin is one small request and nothing else.
2. The corte it names, unless the destination already shows it (the ledger says so).
3. The corte's signed manifest and signature (``firmas/<corte>.json`` and ``.sig``, which an
   origin difusor publishes): the signature checked against the **pinned** key on the exact
   bytes served, the manifest parsed (a path that would leave the site refuses it), main.json
   checked against it.
4. The package assembled in the local cache (:mod:`prepush.pull.cache`): only the files the
   cache lacks are downloaded, each checked as it arrives; the whole package verified.
5. The package published to the destination with the institute's own protocol
   (:mod:`prepush.publish.protocol`): objects first, entry files last, ``json/main.json``
   the very last, CloudFront invalidated after, the retention cleaned, a lock on the
   destination, recovery after a kill.

What does not verify is **refused**: nothing is written where the public reads, the ledger
says which file and why, and the pass is not repeated until the origin changes (asked
conditionally: the refused files' ETags). A transient failure (the network, a cut download,
the origin moving on to the next corte mid-pass, the destination's lock) is retried with
backoff within the deadline. Two pulls never run at once in one working directory (a local
``flock``), nor on one destination (the protocol's lock there).

The ledger (SQLite, :mod:`prepush.ledger`) gets a delivery per corte attempted (arrival of the
verified package, flip, delay from the corte time), every attempt, and the incidents: the
first failure of a failing period (``pull_failed`` or ``pull_refused``) and the recovery
(``pull_recovered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prepush.delivery.runner import (
    Backoff,
    DeliveryRunner,
    Retry,
    said_after,
    switch_corte,
)
from prepush.exceptions import (
    ConnectError,
    DeadlineError,
    DifusorError,
    InternalError,
    PrepushError,
    PullRefusedError,
    RemoteLockedError,
)
from prepush.ledger import DeliveryResult, Ledger
from prepush.package import (
    MAIN_JSON,
    LocalManifests,
    Manifest,
    Package,
    check_corte_id,
    published_manifest,
    published_signature,
    safe_relative_path,
    sha256_bytes,
    signature_is_valid,
)
from prepush.publish.delta import DeltaPlanner
from prepush.publish.protocol import Session
from prepush.publish.protocol_types import (
    Delivery,
    Event,
    Extra,
    Hooks,
    LockOwner,
    ProtocolSettings,
)
from prepush.pull.cache import Assembly, CacheError, FileProblem, PackageCache, Signed, extracted
from prepush.pull.config import PullSettings
from prepush.pull.destinations import open_destination
from prepush.pull.origins import Got, Origin, open_origin
from prepush.transports.base import Transport

log = logging.getLogger("prepush")

MEMO_FILE = ".prepush-pull-origen.json"
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0
UNWIND_SECONDS = 5.0
FAILED = "pull_failed"
REFUSED = "pull_refused"
RECOVERED = "pull_recovered"
ROLLED_BACK = "origin_rollback"
INCIDENT_EVENTS = (FAILED, REFUSED, RECOVERED)

Outcome = Literal["unchanged", "nothing", "up_to_date", "delivered", "refused", "failed"]
OK_OUTCOMES: tuple[Outcome, ...] = ("unchanged", "nothing", "up_to_date", "delivered")


class OriginMoved(ConnectError):
    """The origin flipped to another corte during the pass: retried at once, with it."""


@dataclass
class PassResult:
    outcome: Outcome
    corte: str | None = None
    message: str = ""
    error_class: str | None = None
    # Refusal again, found by conditional requests: nothing new to say or record.
    repeated: bool = False
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_linked: int = 0
    # Files the cache already held for this very corte (a corte seen before comes whole).
    files_cached: int = 0
    # The corte the destination showed when the origin went back to an older one.
    went_back_from: str | None = None
    files_written: int = 0
    flip_at: datetime | None = None
    lag_s: float | None = None
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["flip_at"] = self.flip_at.isoformat() if self.flip_at else None
        return found


@dataclass
class Memo:
    """What the last pass concluded (``.prepush-pull-origen.json``), so the next asks the
    origin only what may have changed."""

    etag: str | None = None
    last_modified: str | None = None
    corte: str | None = None
    concluded: bool = False
    # The files a refusal rests on, each with the ETag of what the origin served.
    refused: list[tuple[str, str | None]] = field(default_factory=list)
    refused_why: str = ""

    @classmethod
    def load(cls, path: os.PathLike[str]) -> Memo:
        try:
            raw = json.loads(Path(path).read_bytes())
            return cls(
                etag=raw.get("etag"),
                last_modified=raw.get("last_modified"),
                corte=raw.get("corte"),
                concluded=bool(raw.get("concluded")),
                refused=[(str(p), e) for p, e in raw.get("refused", [])],
                refused_why=str(raw.get("refused_why", "")),
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()

    def save(self, path: os.PathLike[str]) -> None:
        data = json.dumps(asdict(self), sort_keys=True).encode()
        temporary = f"{os.fspath(path)}.tmp"
        with open(temporary, "wb") as out:
            out.write(data)
        os.replace(temporary, path)


class _Pass:
    """The ledger rows of one pass: a delivery once the corte is known."""

    def __init__(self) -> None:
        self.delivery: Delivery | None = None
        self.delivery_id: int | None = None
        self.attempt = 0
        self.attempt_id: int | None = None
        self.assembly: Assembly | None = None
        self.requests_at_start = 0


class Puller:
    """Pulls for one difusor, pass after pass, over kept connections."""

    def __init__(
        self,
        settings: PullSettings,
        ledger: Ledger,
        run_id: int,
        owner: LockOwner,
        events: Callable[[Event], None] | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self.name = settings.name
        self.ledger = ledger
        self.run_id = run_id
        self.owner = owner
        self.events = events or (lambda _event: None)
        self.trusted = settings.trusted_key()
        self.cache = PackageCache(settings.packages_dir, self.trusted)
        self.memo_path = settings.workdir / MEMO_FILE
        self.memo = Memo.load(self.memo_path)
        self.manifests = LocalManifests(settings.packages_dir)
        self.protocol = ProtocolSettings(
            retention=self.config.retention,
            width=self.config.files_in_flight,
            lock_stale_seconds=self.config.lock_stale_seconds,
            connect_timeout_seconds=self.config.connect_timeout_seconds,
        )
        self.origin: Origin | None = None
        self.destination: Transport | None = None
        self.failing = self._open_incident()

    # --- the pass, with retries ----------------------------------------------------------

    async def run_pass(self) -> PassResult:
        """One pass, by the delivery runner: transient failures retried with backoff until
        the deadline (the origin moving on, at once); a refusal ends it."""
        started = time.monotonic()
        deadline = self.settings.deadline().total_seconds()
        state = _Pass()
        runner = DeliveryRunner(
            deadline,
            Retry(
                (ConnectError, RemoteLockedError, CacheError),
                Backoff(BACKOFF_FIRST, min(BACKOFF_MAX, max(deadline / 4, BACKOFF_FIRST)), 0.0),
                at_once=(OriginMoved,),
            ),
            on_retry=self._before_retry,
            name=self.name,
            where="el destino",
            stays=self._stays,
        )
        results: list[PassResult] = []

        async def attempt(number: int) -> None:
            state.attempt = number
            self._start_attempt(state)
            try:
                result = await self._attempt(state)
            except (ConnectError, RemoteLockedError, CacheError) as exc:
                self._finish_attempt(state, "failed", exc)
                self._note_failure(exc)
                await self._drop_broken()
                raise
            self._finish_attempt(state, result.outcome, None)
            results.append(result)

        try:
            await runner.run(attempt, lambda: state.delivery)
            result = results[-1]
        except DeadlineError as exc:
            await self._abort()
            result = self._failed(state, exc)
        except PullRefusedError as exc:
            result = self._refused(state, exc.keeping(self._stays()))
        except PrepushError as exc:
            result = self._failed(state, exc)
        except Exception as exc:  # a defect: said, recorded, and the next pass goes on
            log.debug("[%s] error interno", self.name, exc_info=True)
            internal = InternalError(
                self.name,
                f"Error interno de prepush pull ({type(exc).__name__}: {exc}). Repita con -v"
                " para el detalle y repórtelo a los desarrolladores.",
            )
            result = self._failed(state, internal)
        result.seconds = time.monotonic() - started
        self._conclude(state, result)
        return result

    def _before_retry(self, _number: int, exc: BaseException, wait: float) -> None:
        if wait:
            log.warning("[%s] %s Reintento en %.1f s.", self.name, _said(exc), wait)

    async def _attempt(self, state: _Pass) -> PassResult:
        origin = await self._origin()
        state.requests_at_start = origin.requests
        main = await self._main_json(origin, state)
        if isinstance(main, PassResult):
            return main
        corte = self._corte_of(main.data)
        serving = self.ledger.serving(self.name)
        if serving is not None and serving.corte == corte:
            self._remember(main, corte)
            return PassResult("up_to_date", corte, f"el destino ya muestra el corte {corte}")
        went_back_from = None
        if serving is not None and corte < serving.corte:
            went_back_from = serving.corte
            self.ledger.record_event(
                self.run_id,
                self.name,
                ROLLED_BACK,
                f"el origen volvió del corte {serving.corte} al {corte}; se publica (si el"
                " instituto no revirtió, avísele)",
            )
        self._ensure_delivery(state, corte)
        signed = await self._signed(origin, corte, main)
        assert state.delivery is not None
        assert state.delivery_id is not None
        self.ledger.set_delivery_corte(state.delivery_id, corte, signed.manifest.corte_time, None)
        package = await self._assemble(origin, signed, state)
        ready = datetime.now(UTC)
        state.delivery.package_ready_at = ready
        self.ledger.set_delivery_corte(state.delivery_id, corte, signed.manifest.corte_time, ready)
        extras = self._extras(package)
        await self._publish(package, extras, state)
        self._remember(main, corte)
        current = self.ledger.serving(self.name)
        self.cache.prune(self.config.retention + 1, {corte, current.corte if current else corte})
        delivery = state.delivery
        outcome: Outcome = "delivered" if delivery.outcome == "delivered" else "up_to_date"
        result = PassResult(outcome, corte, f"corte {corte} publicado en el destino")
        result.went_back_from = went_back_from
        return result

    def _stays(self) -> str:
        """What the destination's public keeps seeing while a pass does not publish."""
        serving = self.ledger.serving(self.name)
        if serving is None:
            return "el destino sigue sin ningún corte publicado por prepush pull"
        return f"el destino sigue mostrando el corte {serving.corte} completo"

    async def _main_json(self, origin: Origin, state: _Pass) -> Got | PassResult:
        memo = self.memo
        if memo.concluded and state.attempt == 1 and memo.corte is not None:
            main = await origin.get(MAIN_JSON, etag=memo.etag, last_modified=memo.last_modified)
            if main.status == "not_modified":
                if not memo.refused:
                    return PassResult("unchanged", memo.corte, "el origen no cambió")
                if await self._still_refused(origin):
                    return PassResult(
                        "refused",
                        memo.corte,
                        memo.refused_why,
                        PullRefusedError.__name__,
                        repeated=True,
                    )
                # Something the refusal rested on changed: the whole pass again.
                main = await origin.get(MAIN_JSON)
        else:
            main = await origin.get(MAIN_JSON)
        if main.status != "ok":
            return PassResult(
                "nothing",
                None,
                f"el origen todavía no publica ningún corte (no hay {MAIN_JSON} en"
                f" {self.settings.origin_description()}); si el instituto ya publicó, revise"
                " la dirección del origen en pull.yaml",
            )
        return main

    async def _still_refused(self, origin: Origin) -> bool:
        """Whether every file a refusal rested on is still what the origin served (asked
        with its ETag: an unchanged file is a small 304)."""
        for path, etag in self.memo.refused:
            got = await origin.get(path, etag=etag) if etag else await origin.get(path)
            if got.status == "ok" or (got.status == "missing" and etag):
                return False
        return True

    def _corte_of(self, main_json: bytes) -> str:
        try:
            return check_corte_id(str(json.loads(main_json)["corte"]))
        except (ValueError, KeyError, TypeError, PrepushError):
            raise PullRefusedError(
                None,
                MAIN_JSON,
                "el json/main.json del origen no nombra un corte (AAAAMMDD_HHMM): no es el de"
                " un paquete de prepush",
            ) from None

    async def _signed(self, origin: Origin, corte: str, main: Got) -> Signed:
        manifest_path, signature_path = published_manifest(corte), published_signature(corte)
        got, signature = await asyncio.gather(origin.get(manifest_path), origin.get(signature_path))
        if got.status != "ok":
            self._refusal_rests_on([(manifest_path, None)])
            raise PullRefusedError(
                corte,
                manifest_path,
                "el origen no publica el manifiesto firmado del corte (el instituto debe"
                " publicar a este origen con origin: true en su padrón)",
            )
        if signature.status != "ok":
            self._refusal_rests_on([(manifest_path, got.etag), (signature_path, None)])
            raise PullRefusedError(
                corte, signature_path, "falta la firma del manifiesto: nada sin firma se publica"
            )
        if not signature_is_valid(got.data, signature.data, self.trusted):
            self._refusal_rests_on([(manifest_path, got.etag), (signature_path, signature.etag)])
            raise PullRefusedError(corte, manifest_path, self._why_unsigned(signature.data))
        escaping = _escaping_path(got.data)
        if escaping is not None:
            self._refusal_rests_on([(manifest_path, got.etag)])
            raise PullRefusedError(
                corte,
                escaping,
                f"el manifiesto firmado ({manifest_path}) nombra esta ruta, que saldría del"
                " destino (absoluta, con '..', '\\' o caracteres de control): no se escribe"
                " ningún archivo de este corte",
            )
        try:
            manifest = Manifest.from_bytes(got.data, manifest_path)
        except PrepushError as exc:
            self._refusal_rests_on([(manifest_path, got.etag)])
            raise PullRefusedError(corte, manifest_path, str(exc).rstrip(".")) from None
        if manifest.corte != corte:
            self._refusal_rests_on([(manifest_path, got.etag)])
            raise PullRefusedError(
                corte,
                manifest_path,
                f"el manifiesto firmado es del corte {manifest.corte}, no del {corte} que anuncia"
                " json/main.json",
            )
        entry = manifest.by_path().get(MAIN_JSON)
        if entry is None or sha256_bytes(main.data) != entry.sha256:
            await self._unless_moved(origin, main)
            self._refusal_rests_on([(MAIN_JSON, main.etag)])
            raise PullRefusedError(
                corte,
                MAIN_JSON,
                "el json/main.json del origen no es el del manifiesto firmado (sha256): fue"
                " alterado",
            )
        return Signed(manifest, got.data, signature.data, main.data)

    def _why_unsigned(self, signature: bytes) -> str:
        try:
            signer = str(json.loads(signature)["public_key"]).split()[:2]
        except (ValueError, KeyError, TypeError, AttributeError):
            signer = []
        pinned = self.trusted.export_public_key("openssh").decode().split()[:2]
        if signer and signer != pinned:
            return (
                "el manifiesto está firmado con otra llave, no con la del instituto que fijó en"
                f" public_key ({self.trusted.get_fingerprint()}): no se publica"
            )
        return (
            "la firma no corresponde al manifiesto con la llave del instituto: el manifiesto o"
            " su firma fueron alterados"
        )

    async def _unless_moved(self, origin: Origin, main: Got) -> None:
        """A file that does not match may be the origin flipping to the next corte under our
        feet: if its main.json changed, the pass starts again with it (not a refusal)."""
        again = await origin.get(MAIN_JSON)
        if again.status == "ok" and again.data != main.data:
            raise OriginMoved(
                self.name, "El origen cambió de corte durante la descarga; se sigue con el nuevo."
            )

    async def _assemble(self, origin: Origin, signed: Signed, state: _Pass) -> Package:
        def progress(done: int, total: int) -> None:
            self.events(Event(self.name, "downloading", files_done=done, files_total=total))

        try:
            package, assembly = await self.cache.assemble(
                signed, origin, self.config.files_in_flight, progress
            )
        except FileProblem as problem:
            await self._unless_moved(origin, Got("ok", signed.main_json))
            self._refusal_rests_on([(problem.path, problem.etag)])
            raise PullRefusedError(signed.manifest.corte, problem.path, problem.why) from None
        state.assembly = assembly
        self.manifests.add(package.manifest)
        return package

    def _extras(self, package: Package) -> list[Extra]:
        if not self.config.extract:
            return []
        return extracted(package, self.config.extract_dir)

    async def _publish(self, package: Package, extras: list[Extra], state: _Pass) -> None:
        assert state.delivery is not None
        assert state.delivery_id is not None
        delivery = state.delivery
        transport = await self._destination()
        if delivery.connected_at is None:
            delivery.connected_at = datetime.now(UTC)
            self.ledger.set_connected(state.delivery_id, delivery.connected_at)

        def record(kind: str, message: str) -> None:
            self.ledger.record_event(self.run_id, self.name, kind, message)

        session = Session(
            transport,
            package,
            delivery,
            settings=self.protocol,
            owner=self.owner,
            hooks=Hooks(
                event=self.events, record=record, is_own_leftover=self.ledger.is_own_lock_owner
            ),
            manifests=self.manifests,
            planner=DeltaPlanner(package),
            extras=extras,
        )
        requests, sent, reused = transport.requests, transport.bytes_sent, transport.bytes_reused
        try:
            await session.run()
        except asyncio.CancelledError:
            transport.abort()
            raise
        except BaseException:
            await self._close_destination()
            raise
        finally:
            delivery.requests += transport.requests - requests
            delivery.bytes_sent += transport.bytes_sent - sent - session.meta_bytes
            delivery.bytes_reused += transport.bytes_reused - reused
            delivery.meta_bytes += session.meta_bytes

    # --- connections -----------------------------------------------------------------------

    async def _origin(self) -> Origin:
        if self.origin is not None and not self.origin.alive:
            await self.origin.close()
            self.origin = None
        if self.origin is None:
            self.origin = await open_origin(self.settings)
        return self.origin

    async def _destination(self) -> Transport:
        if self.destination is not None and not self.destination.alive:
            await self._close_destination()
        if self.destination is None:
            self.destination = await open_destination(self.settings)
        return self.destination

    async def _close_destination(self) -> None:
        destination, self.destination = self.destination, None
        if destination is not None:
            await destination.close()

    async def _drop_broken(self) -> None:
        if self.origin is not None and not self.origin.alive:
            await self.origin.close()
            self.origin = None
        if self.destination is not None and not self.destination.alive:
            await self._close_destination()

    async def _abort(self) -> None:
        """After the deadline: cut both ends; the next pass connects afresh."""
        for end in (self.origin, self.destination):
            if end is not None:
                end.abort()
        origin, self.origin = self.origin, None
        if origin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(origin.close(), UNWIND_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._close_destination(), UNWIND_SECONDS)

    async def close(self) -> None:
        if self.origin is not None:
            await self.origin.close()
            self.origin = None
        await self._close_destination()

    # --- the ledger --------------------------------------------------------------------------

    def _ensure_delivery(self, state: _Pass, corte: str) -> None:
        """The pass's delivery row names the corte the origin serves now. A corte switch
        only before any flip of the row's corte; after one, that row ends as delivered (the
        public sees its corte) and a new row starts for the new corte."""
        guess = datetime.strptime(corte, "%Y%m%d_%H%M").replace(tzinfo=self.settings.zone)
        delivery = state.delivery
        if delivery is not None and state.delivery_id is not None and delivery.corte != corte:
            if switch_corte(delivery, corte):
                self.ledger.set_delivery_corte(state.delivery_id, corte, guess, None)
                return
            self._finish_flipped(state)
        if state.delivery_id is None:
            state.delivery = Delivery(self.name, corte)
            state.delivery_id = self.ledger.start_delivery(
                self.run_id, self.name, corte, guess, None, "publish"
            )
            self._start_attempt(state)

    def _finish_flipped(self, state: _Pass) -> None:
        """The origin moved on after this pass flipped its corte: that delivery is done."""
        assert state.delivery is not None
        assert state.delivery_id is not None
        # This attempt found the corte already there and the origin on another one.
        self._finish_attempt(state, "up_to_date", None)
        delivery = state.delivery
        message = delivery.error_message and said_after(delivery, delivery.error_message)
        self.ledger.finish_delivery(
            state.delivery_id, self._delivery_result(state, "delivered", None, message)
        )
        state.delivery, state.delivery_id = None, None

    def _start_attempt(self, state: _Pass) -> None:
        state.attempt_id = None
        if state.delivery_id is not None and state.delivery is not None:
            state.delivery.attempts = state.attempt
            state.attempt_id = self.ledger.start_attempt(state.delivery_id, state.attempt)

    def _finish_attempt(self, state: _Pass, outcome: str, exc: PrepushError | None) -> None:
        attempt_id, state.attempt_id = state.attempt_id, None
        if attempt_id is None:
            return
        self.ledger.finish_attempt(
            attempt_id,
            outcome,
            type(exc).__name__ if exc is not None else None,
            _said(exc) if exc is not None else None,
        )

    def _failed(self, state: _Pass, error: PrepushError) -> PassResult:
        self._finish_attempt(state, "failed", error)
        self._note_failure(error)
        return PassResult(
            "failed",
            state.delivery.corte if state.delivery else None,
            _said(error),
            type(error).__name__,
        )

    def _refused(self, state: _Pass, error: PullRefusedError) -> PassResult:
        self._finish_attempt(state, "refused", error)
        self.memo.concluded = True
        self.memo.corte = error.corte
        self.memo.refused_why = _said(error)
        if self.failing != _said(error):
            self.ledger.record_event(self.run_id, self.name, REFUSED, _said(error))
            self.failing = _said(error)
        log.error("[%s] %s", self.name, _said(error))
        return PassResult("refused", error.corte, _said(error), type(error).__name__)

    def _note_failure(self, error: PrepushError) -> None:
        """The first failure of a failing period opens an incident; a new cause is noted."""
        said = _said(error)
        if self.failing is None or _cause(self.failing) != _cause(said):
            self.ledger.record_event(self.run_id, self.name, FAILED, said)
        self.failing = said

    def _conclude(self, state: _Pass, result: PassResult) -> None:
        if result.ok and self.failing is not None:
            self.ledger.record_event(
                self.run_id, self.name, RECOVERED, result.message or "el destino está al día"
            )
            self.failing = None
        if result.ok:
            self.memo.refused = []
            self.memo.refused_why = ""
        if result.outcome == "failed":
            self.memo.concluded = False
        with contextlib.suppress(OSError):
            self.memo.save(self.memo_path)
        if state.delivery_id is not None and state.delivery is not None:
            delivery = state.delivery
            outcome = (
                result.outcome if result.outcome in ("refused", "failed") else delivery.outcome
            )
            if result.ok and outcome == "failed":
                outcome = "up_to_date"
            message = None if result.ok else result.message
            if outcome == "failed" and delivery.flip_at is not None:
                # After the flip the public sees the corte: delivered, with the error noted.
                outcome = "delivered"
                result.outcome = "delivered"
                if result.error_class != DeadlineError.__name__:
                    result.message = message = said_after(delivery, result.message)
            self.ledger.finish_delivery(
                state.delivery_id,
                self._delivery_result(state, outcome, result.error_class, message),
            )
            result.flip_at = delivery.flip_at
            if delivery.flip_at is not None:
                row = next(
                    (
                        r
                        for r in self.ledger.deliveries(difusor=self.name)
                        if r.id == state.delivery_id
                    ),
                    None,
                )
                result.lag_s = row.lag_s if row is not None else None
            result.files_written = delivery.files_uploaded + delivery.files_linked
        if state.assembly is not None:
            result.files_downloaded = state.assembly.downloaded
            result.bytes_downloaded = state.assembly.downloaded_bytes
            result.files_linked = state.assembly.linked
            result.files_cached = state.assembly.kept
        if self.origin is not None:
            result.requests = self.origin.requests - state.requests_at_start

    def _delivery_result(
        self, state: _Pass, outcome: str, error_class: str | None, message: str | None
    ) -> DeliveryResult:
        assert state.delivery is not None
        delivery = state.delivery
        return DeliveryResult(
            outcome=outcome,
            finished_at=datetime.now(UTC),
            flip_at=delivery.flip_at,
            attempts=delivery.attempts,
            files_uploaded=delivery.files_uploaded,
            files_linked=delivery.files_linked,
            files_skipped=delivery.files_skipped,
            files_deleted=delivery.files_deleted,
            bytes_sent=delivery.bytes_sent,
            meta_bytes=delivery.meta_bytes,
            requests=delivery.requests,
            atomic=delivery.atomic,
            error_class=error_class,
            error_message=message,
            files_rebuilt=delivery.files_rebuilt,
            bytes_reused=delivery.bytes_reused,
        )

    def _remember(self, main: Got, corte: str) -> None:
        self.memo = Memo(main.etag, main.last_modified, corte, concluded=True)

    def _refusal_rests_on(self, files: list[tuple[str, str | None]]) -> None:
        self.memo.refused = files

    def _open_incident(self) -> str | None:
        """A failing period left open by an earlier run (its cause), if any."""
        last = [
            e for e in self.ledger.events() if e.kind in INCIDENT_EVENTS and e.difusor == self.name
        ]
        if last and last[-1].kind in (FAILED, REFUSED):
            return last[-1].message
        return None


def _said(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, DifusorError):
        return exc.message
    return str(exc)


def _escaping_path(manifest_bytes: bytes) -> str | None:
    """The first path of a manifest that would leave the site, if any (a manifest that does
    not parse is left to :meth:`Manifest.from_bytes` to explain)."""
    try:
        files = json.loads(manifest_bytes)["files"]
        paths = [str(f["path"]) for f in files]
    except (ValueError, KeyError, TypeError):
        return None
    for path in paths:
        try:
            safe_relative_path(path)
        except PrepushError:
            return path
    return None


def _cause(message: str) -> str:
    """What kind of failure a message says, without the details that change every time."""
    return message.split(";", maxsplit=1)[0].split(" (", maxsplit=1)[0]

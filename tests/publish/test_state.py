"""Planning against the remote state: only what changed is sent; retention keeps the last N."""

from __future__ import annotations

from datetime import UTC, datetime

from prepush.package import FileEntry, Manifest
from prepush.publish.state import (
    RemoteState,
    Resolver,
    forget,
    garbage,
    merge_pending,
    no_manifests,
    pending_record,
    plan_corte,
    record_corte,
)

ENTRIES = ("index.html", "json/main.json")


def manifest(corte: str, files: dict[str, str]) -> Manifest:
    entries = tuple(FileEntry(p, len(sha), sha) for p, sha in sorted(files.items()))
    return Manifest(
        corte=corte,
        corte_time=datetime(2027, 6, 6, 20, tzinfo=UTC),
        kind="oficial",
        mode="prepush",
        process="Prueba",
        entry_files=ENTRIES,
        files=entries,
    )


def corte(n: int, changed: list[str]) -> Manifest:
    files = {
        "index.html": "idx",
        "json/main.json": f"main{n}",
        "assets/app.1.js": "js",
        f"datos/c{n}_PREP.zip": f"zip{n}",
    }
    for name in ("a", "b", "c", "d"):
        version = n if name in changed else 0
        files[f"json/o/{name}{version}.json"] = f"{name}{version}"
    return manifest(f"20270606_2{n:03d}", files)


def resolver(*manifests: Manifest) -> Resolver:
    """This machine's packages: the manifests it has."""
    by_corte = {m.corte: m for m in manifests}

    def resolve(corte: str, digest: str) -> Manifest | None:
        found = by_corte.get(corte)
        return found if found is not None and found.digest == digest else None

    return resolve


ALL = resolver(*(corte(n, ["a", "b"]) for n in range(6)))


def deliver(state: RemoteState, m: Manifest, retention: int = 3) -> list[str]:
    record_corte(state, m)
    doomed = garbage(state, m, retention)
    forget(state, doomed, retention)
    return doomed


def test_first_corte_sends_everything_and_entries_last() -> None:
    m = corte(0, [])
    plan = plan_corte(m, RemoteState(), hardlink=True)
    assert {f.path for f in plan.uploads} == {f.path for f in m.immutable_files}
    assert [f.path for f in plan.flips] == list(ENTRIES)
    assert plan.mkdirs == ("assets", "datos", "json", "json/o")
    assert not plan.up_to_date


def test_next_corte_sends_only_what_changed() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    plan = plan_corte(corte(1, ["b"]), state, hardlink=True)
    assert sorted(f.path for f in plan.uploads) == ["datos/c1_PREP.zip", "json/o/b1.json"]
    assert [f.path for f in plan.flips] == ["json/main.json"]
    assert plan.skipped == 5
    assert plan.mkdirs == ()


def test_same_corte_again_is_up_to_date() -> None:
    state = RemoteState()
    m = corte(0, [])
    deliver(state, m)
    plan = plan_corte(m, state, hardlink=True)
    assert plan.up_to_date
    assert plan.files_to_send == 0


def test_pending_record_covers_an_interrupted_publish() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    next_corte = corte(1, ["a"])
    plan = plan_corte(next_corte, state, hardlink=True)
    record = pending_record(next_corte, plan, state)
    merge_pending(state, record)
    # The files uploaded before the crash are known, so they are never written again...
    again = plan_corte(next_corte, state, hardlink=True)
    assert again.uploads == ()
    # ...while no entry file is known (it may have flipped some): every flip is redone.
    assert [f.path for f in again.flips] == list(ENTRIES)
    assert state.pending == "20270606_2001"
    assert state.current == "20270606_2000"


def test_a_torn_pending_record_is_ignored() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    merge_pending(state, b'{"format":1,"corte":"2027')
    assert state.pending is None


def test_retention_removes_only_unreferenced_files_of_old_cortes() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    deliver(state, corte(1, ["a"]))
    deliver(state, corte(2, ["a"]))
    doomed = deliver(state, corte(3, ["a", "b"]))
    # Corte 0 is the only one out of the last three: its own zip and its a0 object go;
    # b0, c0, d0 are still used by cortes 1 and 2.
    assert sorted(doomed) == ["datos/c0_PREP.zip", "json/o/a0.json"]
    assert state.history == ["20270606_2001", "20270606_2002", "20270606_2003"]
    assert "json/main.json" in state.files


def test_current_and_previous_are_never_collected_even_with_tight_retention() -> None:
    state = RemoteState()
    deliver(state, corte(0, []), retention=2)
    deliver(state, corte(1, ["a"]), retention=2)
    doomed = deliver(state, corte(2, ["a"]), retention=2)
    assert "json/o/a1.json" not in doomed
    assert "datos/c1_PREP.zip" not in doomed


def test_site_mode_replaces_changed_paths_and_links_moved_content() -> None:
    state = RemoteState()
    first = manifest("20270606_2000", {"index.html": "i", "json/main.json": "m0", "a.json": "x"})
    deliver(state, first)
    second = manifest(
        "20270606_2001",
        {"index.html": "i", "json/main.json": "m1", "a.json": "y", "b/copia.json": "x"},
    )
    plan = plan_corte(second, state, hardlink=True)
    assert [f.path for f in plan.replaces] == ["a.json"]
    assert [(link.source, link.entry.path) for link in plan.links] == [("a.json", "b/copia.json")]
    assert plan.mkdirs == ("b",)
    without_links = plan_corte(second, state, hardlink=False)
    assert [f.path for f in without_links.uploads] == ["b/copia.json"]


def test_state_round_trips() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    state.atomic = True
    here = resolver(corte(0, []))
    again = RemoteState.from_bytes(state.to_bytes(here), here)
    assert again.to_bytes(here) == state.to_bytes(here)
    assert again.files == state.files
    assert again.current == "20270606_2000"
    assert again.complete
    assert again.holds_corte(corte(0, []))
    assert not again.holds_corte(corte(1, ["c"]))


def test_the_state_names_manifests_instead_of_listing_their_files() -> None:
    state = RemoteState()
    for n, changed in enumerate(([], ["a"], ["a", "b"])):
        deliver(state, corte(n, changed))
    here = resolver(*(corte(n, c) for n, c in enumerate(([], ["a"], ["a", "b"]))))
    data = state.to_bytes(here)
    assert b"json/o/" not in data  # every file is explained by a retained corte's manifest
    assert len(data) < 1000
    again = RemoteState.from_bytes(data, here)
    assert again.files == state.files
    assert again.dirs == state.dirs
    # A file the manifests do not explain (a notice rewrote main.json) is listed itself.
    state.files["json/main.json"].sha256 = "aviso"
    again = RemoteState.from_bytes(state.to_bytes(here), here)
    assert again.files == state.files


def test_without_the_packages_the_state_is_incomplete_and_nothing_is_deleted() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    deliver(state, corte(1, ["a"]))
    here = resolver(corte(0, []), corte(1, ["a"]))
    elsewhere = RemoteState.from_bytes(state.to_bytes(here), no_manifests)
    assert not elsewhere.complete
    assert elsewhere.unresolved == {"20270606_2000", "20270606_2001"}
    # Nothing is assumed to be on the server, and nothing may be deleted.
    third = corte(2, ["b"])
    plan = plan_corte(third, elsewhere, hardlink=True)
    assert {f.path for f in plan.uploads} == {f.path for f in third.immutable_files}
    assert deliver(elsewhere, third, retention=1) == []
    # Once the unknown cortes leave retention, the state is complete again.
    for n in (3, 4):
        deliver(elsewhere, corte(n, ["a"]), retention=1)
    assert elsewhere.complete


def test_a_state_written_by_format_1_is_still_read() -> None:
    old = (
        b'{"atomic":true,"current":"20270606_2000","dirs":["json"],"files":{"json/main.json":'
        b'{"cortes":["20270606_2000"],"sha256":"m","size":1}},"format":1,'
        b'"history":["20270606_2000"],"pending":null}'
    )
    state = RemoteState.from_bytes(old, no_manifests)
    assert state.complete
    assert state.files["json/main.json"].sha256 == "m"


def test_a_retry_after_a_lost_final_state_keeps_the_pending_files() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    next_corte = corte(1, ["a", "b"])
    first_try = pending_record(next_corte, plan_corte(next_corte, state, hardlink=True), state)
    # The flip happened but the final state was lost: the retry starts from the old state.
    retry = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(retry, first_try)
    second_plan = plan_corte(next_corte, retry, hardlink=True)
    assert second_plan.uploads == ()
    second_try = pending_record(next_corte, second_plan, retry)
    # Its own pending record still names every file of the first try.
    again = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(again, second_try)
    assert plan_corte(next_corte, again, hardlink=True).uploads == ()


def test_a_possibly_flipped_pending_corte_is_retained() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    merge_pending(
        state,
        pending_record(corte(1, ["a"]), plan_corte(corte(1, ["a"]), state, hardlink=True), state),
    )
    doomed = deliver(state, corte(2, ["a"]), retention=2)
    assert "json/o/a1.json" not in doomed
    assert "20270606_2001" in state.history


def killed_after_the_flip(state: RemoteState, flipped: Manifest) -> RemoteState:
    """The state a publish of ``flipped`` left when killed after json/main.json, before it
    wrote its state: the old state.json and its pending record, read back."""
    record = pending_record(flipped, plan_corte(flipped, state, hardlink=True), state)
    read = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(read, record, ALL)
    return read


def test_a_rollback_after_a_killed_flip_flips_again() -> None:
    """Issue 30, scenario 1: P killed after its flip, before its record; ``rollback --to C``
    (C the corte state.json names) must not find C 'up to date' while the site serves P."""
    c, p = corte(1, ["a", "b"]), corte(2, ["a", "b"])
    state = RemoteState()
    deliver(state, corte(0, ["a", "b"]))
    deliver(state, c)
    read = killed_after_the_flip(state, p)
    plan = plan_corte(c, read, hardlink=True)
    assert not plan.up_to_date
    assert [f.path for f in plan.flips] == list(ENTRIES)
    # Recorded, the entry files are known again: the next plan of C is up to date.
    deliver(read, c)
    assert plan_corte(c, read, hardlink=True).up_to_date


def test_an_unresolvable_pending_corte_leaves_the_state_untrusted_until_it_leaves() -> None:
    """Issue 30, scenario 6: a pending corte whose manifest this machine lacks (rebuilt,
    moved, another machine's) may be served and may use any retained file: nothing is
    deleted, also after the next corte is recorded and the state read back."""
    state = RemoteState()
    for n in range(3):
        deliver(state, corte(n, ["a", "b"]))
    elsewhere = corte(7, ["c"])  # not among this machine's manifests (ALL)
    record = pending_record(elsewhere, plan_corte(elsewhere, state, hardlink=True), state)
    read = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(read, record, ALL)
    assert not read.trusted
    assert deliver(read, corte(3, ["a", "b"]), retention=2) == []
    again = RemoteState.from_bytes(read.to_bytes(ALL), ALL)
    assert elsewhere.corte in again.unresolved
    assert deliver(again, corte(4, ["a", "b"]), retention=2) == []


def test_an_entry_file_is_never_the_source_of_a_link() -> None:
    """Found by the model test: a new file with main.json's bytes was hard-linked to the
    served main.json, whose content the state cannot vouch for (a rollback's flip whose
    state was never written) and which changes at every flip."""
    state = RemoteState()
    deliver(state, corte(0, []))
    twin = corte(1, [])
    copy = FileEntry("json/copia-de-main.json", 5, "main0")
    with_copy = manifest(twin.corte, {**{f.path: f.sha256 for f in twin.files}, copy.path: "main0"})
    plan = plan_corte(with_copy, state, hardlink=True)
    assert copy.path in {f.path for f in plan.uploads}
    assert all(link.source not in ENTRIES for link in plan.links)


def test_a_corte_shown_before_is_kept_past_the_retention_and_carried_by_later_records() -> None:
    """Found by the model test: a rollback to C0 flips and dies before its state; another
    publish's pending record replaced the rollback's; the next record must still keep C0
    (readers loaded its main.json a moment ago), whatever the retention."""
    c0, c1, c2, c3 = (corte(n, ["a", "b"]) for n in range(4))
    state = RemoteState()
    deliver(state, c0)
    deliver(state, c1)
    # The rollback to c0: its pending record, flipped, no state written.
    rollback = pending_record(c0, plan_corte(c0, state, hardlink=True), state)
    read = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(read, rollback, ALL)
    # Another publish of c2 writes its own pending record and fails before its flip.
    replaced = pending_record(c2, plan_corte(c2, read, hardlink=True), read)
    again = RemoteState.from_bytes(state.to_bytes(ALL), ALL)
    merge_pending(again, replaced, ALL)
    assert c0.corte in again.possibly_shown()
    # c3 is recorded with a retention of 2: c0 (shown before it) keeps its files.
    shown_before = {*again.possibly_shown(), again.current or ""}
    record_corte(again, c3)
    doomed = garbage(again, c3, 2, keep=shown_before)
    assert not {f.path for f in c0.immutable_files} & set(doomed)

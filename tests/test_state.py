"""Planning against the remote state: only what changed is sent; retention keeps the last N."""

from __future__ import annotations

from datetime import UTC, datetime

from prepush.package import FileEntry, Manifest
from prepush.state import (
    RemoteState,
    forget,
    garbage,
    merge_pending,
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
    # ...while the entry files still count as the old ones: the flip is redone.
    assert [f.path for f in again.flips] == ["json/main.json"]
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
    again = RemoteState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
    assert again.current == "20270606_2000"
    assert again.holds_corte(corte(0, []))
    assert not again.holds_corte(corte(1, ["c"]))


def test_a_retry_after_a_lost_final_state_keeps_the_pending_files() -> None:
    state = RemoteState()
    deliver(state, corte(0, []))
    next_corte = corte(1, ["a", "b"])
    first_try = pending_record(next_corte, plan_corte(next_corte, state, hardlink=True), state)
    # The flip happened but the final state was lost: the retry starts from the old state.
    retry = RemoteState.from_bytes(state.to_bytes())
    merge_pending(retry, first_try)
    second_plan = plan_corte(next_corte, retry, hardlink=True)
    assert second_plan.uploads == ()
    second_try = pending_record(next_corte, second_plan, retry)
    # Its own pending record still names every file of the first try.
    again = RemoteState.from_bytes(state.to_bytes())
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

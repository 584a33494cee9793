"""Rebuilds measured on the previous corte's package: its bytes must be the signed ones.

Real packages built from the Campeche cortes; the difusor's state is the one a publish of
the previous corte leaves.
"""

from __future__ import annotations

from pathlib import Path

from prepush.package import Package
from prepush.publish.delta import DeltaPlanner
from prepush.publish.state import RemoteFile, RemoteState
from prepush.transports.base import Delta
from tests.conftest import Workdir

PREVIOUS, NEXT = "20210607_1320", "20210607_1440"


def served(package: Package) -> RemoteState:
    """What a difusor holds after ``package`` was published to it."""
    return RemoteState(
        files={
            f.path: RemoteFile(f.sha256, f.size, [package.corte]) for f in package.manifest.files
        },
        history=[package.corte],
    )


def rebuilds(planner: DeltaPlanner, previous: Package, new: Package) -> dict[str, Delta]:
    held = previous.manifest.by_path()
    lacking = [
        f for f in new.manifest.files if f.path not in held or held[f.path].sha256 != f.sha256
    ]
    return planner.deltas(served(previous), lacking)


def spoil_bases(package: Package, deltas: dict[str, Delta]) -> None:
    """Every base altered on disk, same size: its sha256 is no longer the signed one."""
    for delta in deltas.values():
        path = Path(package.local_path(delta.base))
        path.write_bytes(b"x" * path.stat().st_size)


def test_an_altered_base_on_disk_is_not_measured(workdir: Workdir) -> None:
    workdir.write_roster([])
    previous = Package.open(workdir.build(PREVIOUS))
    new = Package.open(workdir.build(NEXT))
    found = rebuilds(DeltaPlanner(new), previous, new)
    assert len(found) >= 10, "the changed objects are rebuilt from the previous ones"
    spoil_bases(previous, found)
    assert rebuilds(DeltaPlanner(Package.open(new.path)), previous, new) == {}


def test_watch_measures_bases_on_the_bytes_verified_when_they_were_published(
    workdir: Workdir,
) -> None:
    """With --watch the previous corte's package is still in memory, verified: its bases are
    neither read nor hashed again, so an altered copy on disk changes nothing."""
    workdir.write_roster([])
    previous = Package.open(workdir.build(PREVIOUS))
    new = Package.open(workdir.build(NEXT))
    previous.hold_verified()
    expected = rebuilds(DeltaPlanner(new), previous, new)
    spoil_bases(previous, expected)
    planner = DeltaPlanner(Package.open(new.path), {PREVIOUS: previous})
    assert rebuilds(planner, previous, new) == expected

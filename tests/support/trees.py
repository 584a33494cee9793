"""What a difusor must hold after a run: the retained cortes, the newest one's entry files."""

from __future__ import annotations

from tests.conftest import Workdir

# The tests' rosters keep prepush's default retention unless they say otherwise.
RETENTION = 3


def expected_tree(
    workdir: Workdir, published: list[str], retention: int = RETENTION
) -> dict[str, bytes]:
    """The retained cortes' files, with the entry files of the newest."""
    tree: dict[str, bytes] = {}
    for corte in published[-retention:]:
        tree.update(workdir.package_tree(corte))
    tree.update(workdir.package_tree(published[-1]))
    return tree

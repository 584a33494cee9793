"""After every push: does every difusor hold exactly the package, and did main.json flip last?"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.servers import Endpoint, read_tree

MAIN_JSON = "json/main.json"


def check_push(endpoints: list[Endpoint], package: Path) -> bool:
    """Raise unless every difusor holds every file of ``package`` byte for byte.

    Returns whether json/main.json changed after every other file of the corte on every
    difusor: its ctime (the rename, or the last write) is not older than any other file's.
    ctime cannot be set from user space, so this holds for every tool alike.
    """
    expected = read_tree(package)
    main_last = True
    for endpoint in endpoints:
        root = endpoint.local_root
        wrong = []
        for relative, data in expected.items():
            try:
                held = (root / relative).read_bytes()
            except FileNotFoundError:
                held = None
            if held != data:
                wrong.append(relative)
        if wrong:
            raise RuntimeError(
                f"{endpoint.name} no tiene el paquete {package.name}: {len(wrong)} archivos"
                f" faltan o difieren, p. ej. {wrong[:3]}"
            )
        main_last = main_last and _main_json_last(root, expected)
    return main_last


def _main_json_last(root: Path, expected: dict[str, bytes]) -> bool:
    if MAIN_JSON not in expected:
        return False
    flipped = (root / MAIN_JSON).stat().st_ctime_ns
    return all(
        (root / relative).stat().st_ctime_ns <= flipped
        for relative in expected
        if relative != MAIN_JSON
    )


def changed_content(first: Path, second: Path) -> tuple[int, int]:
    """(bytes, files) of the second corte whose content the first does not have.

    By content, not by path: a vendor tree that moves unchanged files under the new corte's
    directory has changed only what it rewrote.
    """
    old = {hashlib.sha256(d).digest() for d in read_tree(first).values()}
    new = read_tree(second)
    diff = [d for d in new.values() if hashlib.sha256(d).digest() not in old]
    return sum(len(d) for d in diff), len(diff)


def tree_size(package: Path) -> tuple[int, int]:
    tree = read_tree(package)
    return sum(len(d) for d in tree.values()), len(tree)

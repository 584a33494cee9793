"""The snippets of docs/difusores.md, the guide the institute hands to each difusor.

Each snippet follows a marker ``<!-- prepush:NAME -->`` and is the fenced block right after
it. The tests start sshd and nginx with them and run prepush against the result, so the
guide cannot drift from what is tested. A replacement that no longer matches fails loudly:
the guide changed, and the test must follow it on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "difusores.md"
README = GUIDE.parents[1] / "README.md"
FENCED = re.compile(r"\s*```[^\n]*\n(?P<body>.*?)\n```", re.DOTALL)


def snippet(
    name: str, replacements: dict[str, str] | None = None, *, document: Path = GUIDE
) -> str:
    """The text of snippet ``name`` of ``document`` (the guide unless said), with each
    ``old: new`` of ``replacements`` applied."""
    text = document.read_text(encoding="utf-8")
    where = document.relative_to(GUIDE.parents[1])
    marker = f"<!-- prepush:{name} -->"
    assert marker in text, f"{where} no tiene el fragmento {name}"
    found = FENCED.match(text.split(marker, 1)[1])
    assert found is not None, f"{where}: {marker} no va seguido de un bloque de código"
    body = found.group("body") + "\n"
    for old, new in (replacements or {}).items():
        assert old in body, f"{where} ({name}) ya no contiene {old!r}"
        body = body.replace(old, new)
    return body


def authorized_keys_line(public_line: str) -> str:
    """The guide's authorized_keys line for ``public_line``, from this machine."""
    line = snippet("authorized_keys", {'from="203.0.113.10"': 'from="127.0.0.1"'})
    example = re.search(r"ssh-ed25519 \S+ \S+", line)
    assert example is not None, "docs/difusores.md: la línea de authorized_keys no tiene llave"
    return line.replace(example.group(0), public_line.strip())

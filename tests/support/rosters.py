"""A valid roster as text, for the tests that parse rosters (and break them on purpose), and
what parsing a broken one says."""

from __future__ import annotations

import pytest

from prepush.exceptions import RosterError
from prepush.settings import parse_roster

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEBiL5oz7/JqC1sl5t3YQjqbxMQxfK9PVdAYhvmpjTkT"

VALID = f"""\
election:
  process: Prueba
  timezone: America/Mazatlan
  publication: {{start: 2027-06-06T20:00:00, end: 2027-06-07T20:00:00}}
defaults:
  user: prep
  key_file: claves/prepush.pem
difusores:
  - name: uno
    host: 127.0.0.1
    host_key: "{HOST_KEY}"
  - name: dos
    host: 127.0.0.1
    port: 2222
    host_key: "{HOST_KEY}"
"""


def problems_of(text: str) -> list[str]:
    """The problems the roster parser finds in ``text`` (it must find some)."""
    with pytest.raises(RosterError) as caught:
        parse_roster(text, "difusores.yaml")
    return caught.value.problems

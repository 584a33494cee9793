"""The roster of difusores (``difusores.yaml``): election settings and the difusores.

The roster is validated once, on load, with pydantic. Every problem is reported at once, each
as ``file:line:column``, the field path and what is wrong, in Spanish. Secrets never live in
the YAML: passwords and key passphrases are read from environment variables named there.

The structure of the roster is the institute's configuration: any problem stops every
command at load (exit 2). What one difusor needs from this machine (its ``key_file`` and
``known_hosts`` files, each ``*_env`` variable) is that difusor's: checked, with the same
locations, only when a command is about to connect to it (:meth:`Settings.credential_problems`),
so a secret missing for one difusor fails that difusor and never the others, and one not
selected or suspended is not looked at. Commands that only read the ledger or build packages
never look at them.

- :mod:`.schema`: the roster's pydantic models, each field with its rule and message.
- :mod:`.load`: the YAML with file:line:column, the Spanish messages, :func:`load_settings`,
  :class:`Settings` and ``init``'s template.
- :mod:`.credentials`: keys, passwords and host keys on this machine.
"""

from prepush.settings.credentials import pin_host_key
from prepush.settings.load import (
    ROSTER_FILE,
    Settings,
    create_roster,
    load_located_yaml,
    load_settings,
    located_problems,
    location,
    parse_roster,
    read_utf8,
)
from prepush.settings.schema import (
    ENV_NAME,
    Difusor,
    Election,
    Publication,
    Requirements,
    S3Fields,
    known_zone,
)

__all__ = [
    "ENV_NAME",
    "ROSTER_FILE",
    "Difusor",
    "Election",
    "Publication",
    "Requirements",
    "S3Fields",
    "Settings",
    "create_roster",
    "known_zone",
    "load_located_yaml",
    "load_settings",
    "located_problems",
    "location",
    "parse_roster",
    "pin_host_key",
    "read_utf8",
]

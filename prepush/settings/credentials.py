"""What this machine needs to reach a difusor: its ``*_env`` variables set, its key and
``known_hosts`` files readable (a key's passphrase opening it), and the host key pinned into
the roster by ``check --learn-host-keys``.

Each is that difusor's: checked only when a command is about to connect to it, so a secret
missing for one difusor fails that difusor and never the others, and one not selected or
suspended is not looked at. The only one every command needs is the institute's own: the
password of a shared ledger. Each problem names the roster field it belongs to;
:mod:`prepush.settings.load` says where that field sits in the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import yaml

from prepush.exceptions import ConfigError, describe_os_error
from prepush.settings.schema import HOST_TRANSPORTS, Difusor, Roster

# A field of the roster (``("s3", "access_key_id_env")``) and what this machine lacks for it.
Missing = tuple[tuple[str | int, ...], str]


def institute_credential_problems(roster: Roster) -> list[Missing]:
    """What every command needs of this machine's environment, the institute's own: the
    password of a shared ledger. A difusor's secrets are that difusor's
    (:func:`difusor_credential_problems`)."""
    name = roster.paths.ledger_password_env
    if name is None or name in os.environ:
        return []
    return [
        (
            ("paths", "ledger_password_env"),
            f"la variable de entorno {name} (la contraseña de la bitácora) no está definida."
            " Expórtela antes de ejecutar prepush (con systemd, en el EnvironmentFile de la"
            " unidad); no se intentó ninguna conexión",
        )
    ]


def difusor_credential_problems(difusor: Difusor, base: Path) -> list[Missing]:
    """What this machine lacks to connect to one difusor, each by its field in the difusor's
    entry; relative key and known_hosts paths are resolved from ``base``."""
    found: list[Missing] = []
    # SSH's fields may reach an S3 difusor through defaults: only its own are checked.
    env_fields: list[tuple[str | int, ...]] = (
        [("password_env",), ("passphrase_env",)] if difusor.transport in HOST_TRANSPORTS else []
    )
    if difusor.s3 is not None:
        env_fields += [
            ("s3", f) for f in ("access_key_id_env", "secret_access_key_env", "session_token_env")
        ]
    for env_field in env_fields:
        name = _field_value(difusor, env_field)
        if name is not None and name not in os.environ:
            found.append(
                (
                    env_field,
                    f"la variable de entorno {name} no está definida en esta máquina. Expórtela"
                    " antes de ejecutar prepush (con systemd, en el EnvironmentFile de la"
                    " unidad); no se intentó la conexión con este difusor",
                )
            )
    if difusor.key_file and difusor.over_ssh:
        problem = _key_problem(_resolve(base, difusor.key_file), difusor.passphrase_env)
        if problem is not None:
            found.append((("key_file",), problem))
    if difusor.known_hosts and difusor.over_ssh:
        problem = _known_hosts_problem(_resolve(base, difusor.known_hosts))
        if problem is not None:
            found.append((("known_hosts",), problem))
    return found


def _field_value(difusor: Difusor, path: tuple[str | int, ...]) -> str | None:
    """The value at ``path`` (``("s3", "access_key_id_env")``), or None where it is absent."""
    value: object = difusor
    for part in path:
        value = getattr(value, str(part), None)
    return value if isinstance(value, str) else None


def _resolve(base: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _key_problem(path: Path, passphrase_env: str | None) -> str | None:
    if not path.is_file():
        return (
            f"la llave privada {path} no existe. Créela con 'prepush keygen --out {path}' o"
            " corrija la ruta; no se intentó la conexión con este difusor"
        )
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    try:
        asyncssh.read_private_key(path, passphrase)
    except OSError as exc:
        return f"no se pudo leer la llave privada {path}: {describe_os_error(exc)}"
    except (asyncssh.KeyImportError, ValueError) as exc:
        text = str(exc).lower()
        if "passphrase" in text and passphrase is None:
            return (
                f"la llave privada {path} está cifrada: indique passphrase_env con la variable"
                " que guarda su frase de paso"
            )
        if "passphrase" in text:
            return f"la frase de paso de {passphrase_env} no abre la llave privada {path}"
        return f"{path} no es una llave privada OpenSSH legible ({exc})"
    return None


def _known_hosts_problem(path: Path) -> str | None:
    if not path.is_file():
        return (
            f"el archivo known_hosts {path} no existe. Créelo con la llave de host que le"
            " entregó el difusor (o use host_key); no se intentó la conexión con este difusor"
        )
    try:
        asyncssh.read_known_hosts(str(path))
    except OSError as exc:
        return f"no se pudo leer {path}: {describe_os_error(exc)}"
    except (asyncssh.KeyImportError, ValueError) as exc:
        return f"{path} no es un archivo known_hosts válido ({exc})"
    return None


def pin_host_key(path: Path, name: str, key_line: str) -> None:
    """Write ``host_key`` for difusor ``name`` into the roster, keeping its comments."""
    text = path.read_text(encoding="utf-8")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    entry = _difusor_node(root, name)
    if entry is None:
        raise ConfigError(f"No hay un difusor llamado {name!r} en {path}.")
    lines = text.splitlines(keepends=True)
    quoted = '"' + key_line.strip().replace('"', "") + '"'
    for key_node, value_node in entry.value:
        if key_node.value == "host_key":
            line = lines[value_node.start_mark.line]
            start, end = value_node.start_mark.column, value_node.end_mark.column
            lines[value_node.start_mark.line] = line[:start] + quoted + line[end:]
            break
    else:
        first_key = entry.value[0][0].start_mark
        indent = " " * first_key.column
        after = max(k.start_mark.line for k, _ in entry.value if k.value in ("name", "host"))
        lines.insert(after + 1, f"{indent}host_key: {quoted}\n")
    path.write_text("".join(lines), encoding="utf-8")


def _difusor_node(root: yaml.Node | None, name: str) -> yaml.MappingNode | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, value_node in root.value:
        if key_node.value == "difusores" and isinstance(value_node, yaml.SequenceNode):
            for item in value_node.value:
                if isinstance(item, yaml.MappingNode) and any(
                    k.value == "name" and v.value == name for k, v in item.value
                ):
                    return item
    return None

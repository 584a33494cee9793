"""Reading the roster (``difusores.yaml``): the YAML with where each value sits, every
problem at once, each as ``file:line:column``, the field path and what is wrong, in Spanish;
``defaults:`` merged into each difusor; the :class:`Settings` a command works with; and
``init``'s commented template.

What one difusor needs from this machine is checked apart, with the same locations, only when
a command is about to connect to it (:meth:`Settings.credential_problems`,
:mod:`prepush.settings.credentials`). Commands that only read the ledger or build packages
never look at it. pull.yaml is read with the same machinery (:func:`load_located_yaml`,
:func:`located_problems`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from prepush.exceptions import ConfigError, RosterError, describe_os_error
from prepush.keys import generate_key_pair
from prepush.ledger.location import LedgerLocation, PostgresLocation, is_postgres_url
from prepush.settings.credentials import (
    difusor_credential_problems,
    institute_credential_problems,
)
from prepush.settings.schema import Difusor, Roster

ROSTER_FILE = "difusores.yaml"


@dataclass(frozen=True)
class Settings:
    """A validated roster and the working directory its relative paths refer to."""

    roster: Roster
    workdir: Path
    roster_path: Path
    # Where each value sits in the roster file, to locate a difusor's credential problems.
    labels: _Labels | None = field(default=None, compare=False, repr=False)

    def credential_problems(self, difusor: Difusor) -> list[str]:
        """What this machine lacks to connect to ``difusor`` (an unset ``*_env`` variable, a
        key or known_hosts file missing or unreadable), each as ``file:line:column: field:
        what``; empty when nothing is missing. Looked at only for a difusor about to be
        contacted."""
        index = self.roster.difusores.index(difusor)
        labels = self.labels or _Labels(str(self.roster_path), {}, {}, {})
        problems: list[str] = []
        for field_path, what in difusor_credential_problems(difusor, self.roster_path.parent):
            line = labels.problem(("difusores", index, *field_path), what)
            if line not in problems:
                problems.append(line)
        return problems

    @property
    def packages_dir(self) -> Path:
        return self.resolve(self.roster.paths.packages)

    @property
    def ledger_location(self) -> LedgerLocation:
        """The SQLite file, or the PostgreSQL database the pair of publishers shares."""
        paths = self.roster.paths
        if is_postgres_url(paths.ledger):
            return PostgresLocation(paths.ledger, paths.ledger_password_env)
        return self.resolve(paths.ledger)

    @property
    def signing_key_path(self) -> Path | None:
        key = self.roster.election.signing_key
        return self.resolve(key) if key else None

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.workdir / p

    def deadline(self) -> timedelta:
        seconds = self.roster.publish.deadline_seconds
        if seconds is None:
            return self.roster.election.corte_interval
        return timedelta(seconds=seconds)

    def secret(self, difusor: Difusor, env_name: str | None) -> str | None:
        if env_name is None:
            return None
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(
                f"[{difusor.name}] La variable de entorno {env_name} no está definida. "
                f"Expórtela antes de ejecutar prepush (el padrón sólo guarda su nombre)."
            )
        return value


@dataclass(frozen=True)
class CreatedRoster:
    roster: Path
    packages_dir: Path
    signing_key: Path
    signing_key_created: bool


def create_roster(target: Path) -> CreatedRoster:
    """Write the commented example roster, the signing key it names and ``paquetes/``.

    An existing roster is never overwritten, nor an existing key: ``init`` then ``build``
    works without another step.
    """
    if target.exists():
        raise ConfigError(f"{target} ya existe; prepush init no lo sobrescribe.")
    text = (resources.files("prepush") / "templates" / ROSTER_FILE).read_text(encoding="utf-8")
    template = yaml.safe_load(text)
    base = target.parent
    key = base / str(template["election"]["signing_key"])
    created = not key.exists()
    if created:
        generate_key_pair(key, comment="prepush-firma")
    target.write_text(text, encoding="utf-8")
    packages = base / str(template.get("paths", {}).get("packages", "paquetes"))
    packages.mkdir(parents=True, exist_ok=True)
    return CreatedRoster(target, packages, key, created)


# --- loading with locations -------------------------------------------------------------


def load_settings(
    workdir: Path, roster_path: Path | None = None, *, learn_host_keys: bool = False
) -> Settings:
    """Load and validate the roster; raises RosterError listing every problem of its
    structure. A difusor's credentials are checked apart (:meth:`Settings.credential_problems`)."""
    path = roster_path or workdir / ROSTER_FILE
    if not path.exists():
        raise ConfigError(
            f"No se encontró el padrón de difusores {path}. Créelo con 'prepush init' "
            "o indique el directorio de trabajo con -C DIR."
        )
    base = path.parent.resolve()
    roster, labels = _parse_located(_read_utf8(path), str(path), learn_host_keys)
    missing = [labels.problem(loc, what) for loc, what in institute_credential_problems(roster)]
    if missing:
        raise RosterError(str(path), missing)
    return Settings(roster=roster, workdir=base, roster_path=path.resolve(), labels=labels)


def _read_utf8(path: Path) -> str:
    return read_utf8(path, "el padrón", RosterError)


def parse_roster(text: str, filename: str, *, learn_host_keys: bool = False) -> Roster:
    return _parse_located(text, filename, learn_host_keys)[0]


def _parse_located(text: str, filename: str, learn_host_keys: bool) -> tuple[Roster, _Labels]:
    data, marks = load_located_yaml(text, filename, RosterError)
    if not isinstance(data, dict):
        raise RosterError(
            filename, [f"{filename}:1:1: se esperaba un mapa con election y difusores"]
        )
    return _validate(data, marks, filename, learn_host_keys)


Marks = dict[tuple[str | int, ...], yaml.Mark]


def load_located_yaml(
    text: str, filename: str, error: Callable[[str, list[str]], ConfigError]
) -> tuple[Any, Marks]:
    """A YAML document and where each of its values sits (for file:line:column errors).
    A syntax error, an empty file or a repeated key raises ``error(filename, problems)``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise error(filename, [f"{filename}:1:1: el archivo está vacío"])
        marks: Marks = {}
        duplicates: list[str] = []
        _collect_marks(node, (), marks, duplicates, filename)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise error(filename, [f"{where}: YAML inválido: {yaml_problem(exc.problem)}"]) from None
    finally:
        loader.dispose()
    if duplicates:
        raise error(filename, duplicates)
    return data, marks


# PyYAML's names for what it expected or found, as a person editing the file says them.
_YAML_TOKENS = {
    "<block end>": "el fin del bloque (una línea con menos sangría)",
    "<block mapping start>": "una clave con otra sangría",
    "<block sequence start>": "una lista con otra sangría",
    "<stream end>": "el fin del archivo",
    "<document start>": "'---'",
    "<scalar>": "otro valor",
    "?": "una clave",
    "-": "un elemento de lista ('-')",
}
_YAML_PROBLEMS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"mapping values are not allowed here"),
        lambda _: (
            "no se permite ':' aquí: un valor que lleva ':' va entre comillas, y cada"
            " 'clave: valor' en su propia línea"
        ),
    ),
    (
        re.compile(r"expected ',' or '([\]}])', but got"),
        lambda m: f"falta cerrar con '{m[1]}' (o separar con ',') la lista o el mapa abierto",
    ),
    (
        re.compile(r"expected (.+), but (?:found|got) (.+)"),
        lambda m: (
            f"se esperaba {_yaml_token(m[1])} y se encontró {_yaml_token(m[2])}: revise"
            " la sangría (con espacios) de esta línea y de la anterior"
        ),
    ),
    (
        re.compile(r"found character '\\t' that cannot start any token"),
        lambda _: "un tabulador no sirve de sangría en YAML: use espacios",
    ),
    (
        re.compile(r"found character '(.+)' that cannot start any token"),
        lambda m: f"un valor no puede empezar con '{m[1]}': póngalo entre comillas",
    ),
    (
        re.compile(r"found unexpected end of stream"),
        lambda _: "el archivo termina con unas comillas abiertas: ciérrelas",
    ),
    (
        re.compile(r"found undefined alias '(.+)'"),
        lambda m: f"el alias *{m[1]} no está definido (falta su ancla &{m[1]})",
    ),
    (
        re.compile(r"found unknown escape character '(.+)'"),
        lambda m: (
            f"'\\{m[1]}' no es una secuencia válida entre comillas dobles: use comillas"
            " simples o escriba '\\\\'"
        ),
    ),
    (
        re.compile(r"could not find expected ':'"),
        lambda _: "falta ':' entre la clave y su valor",
    ),
    (
        re.compile(r"found incompatible YAML document"),
        lambda _: "versión de YAML no admitida: quite la línea %YAML",
    ),
]


def yaml_problem(problem: str | None) -> str:
    """A PyYAML syntax problem in Spanish (its location is said apart)."""
    for pattern, say in _YAML_PROBLEMS:
        found = pattern.search(problem or "")
        if found is not None:
            return say(found)
    return (
        "el texto no es YAML válido en este punto: revise la sangría (con espacios), los ':' y"
        " las comillas"
    )


def _yaml_token(text: str) -> str:
    """``<block end>``, ``'?'``, ``',' or ']'`` as words."""
    parts = [p.strip() for p in text.split(" or ")]
    return " o ".join(_YAML_TOKENS.get(p.strip("'"), p) for p in parts)


def located_problems(
    exc: ValidationError,
    filename: str,
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    *,
    document: str,
    guide: str,
) -> list[str]:
    """Each problem of a pydantic validation as ``file:line:column: field: what``, in Spanish.
    ``document`` is how a message names the file (``pull.yaml``), ``guide`` the page that
    lists its fields."""
    labels = _Labels(filename, marks, {}, {}, document, guide)
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        problem = _describe(error, labels)
        if problem not in problems:
            problems.append(problem)
    return problems


def location(
    filename: str, marks: Mapping[tuple[str | int, ...], yaml.Mark], loc: tuple[str | int, ...]
) -> str:
    """``file:line:column`` of the value at ``loc`` (or of its nearest located parent)."""
    return _where(filename, _mark_for(loc, "", marks, {}))


def read_utf8(path: Path, what: str, error: Callable[[str, list[str]], ConfigError]) -> str:
    """A configuration file's text; one not in UTF-8 is refused with the line and column of
    its first invalid byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"No se pudo leer {what} {path}: {describe_os_error(exc)}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise error(
            str(path),
            [
                f"{path}:{line}:{column}: el archivo no está en UTF-8"
                f" (byte 0x{data[exc.start]:02x}); guárdelo como UTF-8 (p. ej. 'iconv -f"
                " latin1 -t utf-8')"
            ],
        ) from None


def _collect_marks(
    node: yaml.Node,
    path: tuple[str | int, ...],
    marks: dict[tuple[str | int, ...], yaml.Mark],
    duplicates: list[str],
    filename: str,
) -> None:
    marks[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(
                    f"{_where(filename, key_node.start_mark)}: clave repetida {key!r}"
                )
            seen.add(key)
            marks[(*path, key, "__key__")] = key_node.start_mark
            _collect_marks(value_node, (*path, key), marks, duplicates, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, (*path, index), marks, duplicates, filename)


def _validate(
    data: dict[str, Any],
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    filename: str,
    learn_host_keys: bool,
) -> tuple[Roster, _Labels]:
    merged, origin = _apply_defaults(data)
    labels = _Labels(filename, marks, origin, _names(merged))
    problems = _duplicate_names(merged, labels)
    try:
        roster = Roster.model_validate(merged, context={"learn_host_keys": learn_host_keys})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problem = _describe(error, labels)
            if problem not in problems:
                problems.append(problem)
    if problems:
        raise RosterError(filename, problems)
    return roster, labels


def _names(data: dict[str, Any]) -> dict[int, str]:
    difusores = data.get("difusores")
    entries = difusores if isinstance(difusores, list) else []
    return {
        index: entry["name"]
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]
    }


@dataclass(frozen=True)
class _Labels:
    """Where a value sits in the file, and how to name its field for a person."""

    filename: str
    marks: Mapping[tuple[str | int, ...], yaml.Mark]
    origin: Mapping[tuple[str | int, ...], tuple[str | int, ...]]
    names: Mapping[int, str]
    # How a message names the file (an operator edits the file it names) and the guide.
    document: str = "el padrón"
    guide: str = "docs/roster.md"

    def where(self, loc: tuple[str | int, ...], kind: str = "") -> str:
        return _where(self.filename, _mark_for(loc, kind, self.marks, self.origin))

    def field(self, loc: tuple[str | int, ...]) -> str:
        """``difusores[universidad02].port`` rather than ``difusores.1.port``."""
        source = self.origin.get(loc, loc)
        parts: list[str] = []
        for position, part in enumerate(source):
            if position == 1 and source[0] == "difusores" and isinstance(part, int):
                parts[-1] += f"[{self.names.get(part, f'#{part + 1}')}]"
            else:
                parts.append(str(part))
        return ".".join(parts) or "(raíz)"

    def problem(self, loc: tuple[str | int, ...], what: str, kind: str = "") -> str:
        return f"{self.where(loc, kind)}: {self.field(loc)}: {what}"


def _duplicate_names(data: dict[str, Any], labels: _Labels) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    difusores = data.get("difusores")
    for index, entry in enumerate(difusores if isinstance(difusores, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    labels.problem(
                        ("difusores", index, "name"),
                        f"el nombre {name!r} está repetido; cada difusor necesita un nombre único",
                    )
                )
            seen.add(name)
    return problems


def _apply_defaults(
    data: dict[str, Any],
) -> tuple[dict[str, Any], dict[tuple[str | int, ...], tuple[str | int, ...]]]:
    """Merge ``defaults:`` into every difusor, remembering where each value came from."""
    defaults = data.get("defaults") or {}
    difusores = data.get("difusores")
    origin: dict[tuple[str | int, ...], tuple[str | int, ...]] = {}
    if not isinstance(defaults, dict) or not isinstance(difusores, list):
        return data, origin
    merged_list: list[Any] = []
    for index, entry in enumerate(difusores):
        if not isinstance(entry, dict):
            merged_list.append(entry)
            continue
        merged = dict(entry)
        not_here = _SSH_ONLY if _rsync_daemon_entry(entry, defaults) else ()
        for key, value in defaults.items():
            if key not in merged and key not in not_here:
                merged[key] = value
                origin[("difusores", index, key)] = ("defaults", key)
        merged_list.append(merged)
    return {**data, "difusores": merged_list}, origin


# What an rsync daemon difusor does not take from defaults: it has no SSH (and its own port).
_SSH_ONLY = ("port", "key_file", "passphrase_env", "host_key", "known_hosts")


def _rsync_daemon_entry(entry: dict[str, Any], defaults: dict[str, Any]) -> bool:
    transport = entry.get("transport", defaults.get("transport"))
    rsync = entry.get("rsync", defaults.get("rsync"))
    return transport == "rsync" and isinstance(rsync, dict) and rsync.get("mode") == "daemon"


_MESSAGES = {
    "missing": "falta este campo obligatorio",
    "int_parsing": "debe ser un número entero",
    "int_type": "debe ser un número entero",
    "int_from_float": "debe ser un número entero",
    "float_parsing": "debe ser un número",
    "float_type": "debe ser un número",
    "bool_parsing": "debe ser true o false",
    "bool_type": "debe ser true o false",
    "string_type": "debe ser texto",
    "list_type": "debe ser una lista",
    "dict_type": "debe ser un mapa (clave: valor)",
    "model_type": "debe ser un mapa (clave: valor)",
    "datetime_parsing": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "datetime_from_date_parsing": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "datetime_type": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "string_pattern_mismatch": "debe ser un nombre corto en minúsculas, dígitos, '-' o '_'"
    " (p. ej. difusor01)",
    "string_too_short": "no puede estar vacío",
    "too_short": "no puede estar vacía",
}


def _describe(error: Mapping[str, Any], labels: _Labels) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = str(error["type"])
    if kind.startswith(("greater", "less")):
        ctx = error.get("ctx") or {}
        bound = next(iter(ctx.values()), "")
        what = ("debe ser al menos " if kind.startswith("greater") else "debe ser a lo más ") + str(
            bound
        )
    elif kind == "value_error":
        what = str(error["msg"]).removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        what = _unknown_field(loc, labels)
    else:
        what = _MESSAGES.get(kind, str(error["msg"]))
    if loc == ("difusores",) and kind in ("too_short", "missing"):
        what = "el padrón no tiene difusores: agregue al menos uno (ver docs/roster.md)"
    return labels.problem(loc, what, kind)


def _unknown_field(loc: tuple[str | int, ...], labels: _Labels) -> str:
    """An unknown field; a secret written where only its variable's name may go, as such."""
    if not loc or loc[-1] not in ("password", "passphrase"):
        return (
            f"campo desconocido (revise la ortografía; los campos válidos están en {labels.guide})"
        )
    if "s3" in loc:
        hint = "access_key_id_env y secret_access_key_env con los nombres de variables de entorno"
    else:
        hint = f"{loc[-1]}_env con el nombre de una variable de entorno"
    return f"no escriba secretos en {labels.document}: use {hint}"


def _mark_for(
    loc: tuple[str | int, ...],
    kind: str,
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    origin: Mapping[tuple[str | int, ...], tuple[str | int, ...]],
) -> yaml.Mark | None:
    source = origin.get(loc, loc)
    if kind == "extra_forbidden" and (*source, "__key__") in marks:
        return marks[(*source, "__key__")]
    for end in range(len(source), -1, -1):
        mark = marks.get(source[:end])
        if mark is not None:
            return mark
    return None


def _where(filename: str, mark: yaml.Mark | None) -> str:
    if mark is None:
        return filename
    return f"{filename}:{mark.line + 1}:{mark.column + 1}"

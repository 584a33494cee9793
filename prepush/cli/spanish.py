"""click's own messages in Spanish: usage errors, help headings, prompts.

click translates its messages with :mod:`gettext`, through names bound when each of its
modules is imported (``from gettext import gettext as _``). gettext would pick a catalogue
from the process locale, and cron and systemd run prepush with ``LANG=C``; so these names
are bound to this table instead, whatever the locale. A message not in the table stays as
click wrote it (a new click version may add some): the test of every command with bad
arguments would show it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

NumberType = TypeVar("NumberType", bound="click.ParamType[Any]")

SPANISH: dict[str, str] = {
    # Usage errors.
    "Error: {message}": "Error: {message}",
    "Try '{command} {option}' for help.": "Vea '{command} {option}' para la ayuda.",
    "Missing argument": "Falta el argumento",
    "Missing option": "Falta la opción",
    "Missing parameter": "Falta el parámetro",
    "Missing {param_type}": "Falta {param_type}",
    "Missing parameter: {param_name}": "Falta el parámetro: {param_name}",
    "Missing command.": "Falta la orden.",
    "No such command {name!r}.": "No existe la orden {name!r}.",
    "No such option {name!r}.": "No existe la opción {name!r}.",
    "Option {name!r} does not take a value.": "La opción {name!r} no lleva valor.",
    "Invalid value for {param_hint}: {message}": "Valor inválido para {param_hint}: {message}",
    "Invalid value: {message}": "Valor inválido: {message}",
    "Argument {name!r} takes {nargs} values.": "El argumento {name!r} lleva {nargs} valores.",
    "Choose from:\n\t{choices}": "Elija entre:\n\t{choices}",
    "{value!r} is not a valid {number_type}.": "{value!r} no es un {number_type} válido.",
    "{value} is not in the range {range}.": "{value} no está en el rango {range}.",
    "{value!r} is not a valid UUID.": "{value!r} no es un UUID válido.",
    "{value!r} is not a valid boolean. Recognized values: {states}": (
        "{value!r} no es un valor lógico. Se reconocen: {states}"
    ),
    "{name} {filename!r} does not exist.": "{name} {filename!r} no existe.",
    "{name} {filename!r} is a file.": "{name} {filename!r} es un archivo.",
    "{name} {filename!r} is a directory.": "{name} {filename!r} es un directorio.",
    "{name} {filename!r} is not readable.": "{name} {filename!r} no se puede leer.",
    "{name} {filename!r} is not writable.": "{name} {filename!r} no se puede escribir.",
    "{name} {filename!r} is not executable.": "{name} {filename!r} no es ejecutable.",
    "Could not open file {filename!r}: {message}": (
        "No se pudo abrir el archivo {filename!r}: {message}"
    ),
    "file": "archivo",
    "directory": "directorio",
    "path": "ruta",
    "Value must be an iterable.": "El valor debe ser una lista.",
    # Help.
    "Usage:": "Uso:",
    "Options": "Opciones",
    "Commands": "Órdenes",
    "Positional arguments": "Argumentos",
    "Show this message and exit.": "Muestra esta ayuda y termina.",
    "Show the version and exit.": "Muestra la versión y termina.",
    "%(prog)s, version %(version)s": "%(prog)s, versión %(version)s",
    "default: {default}": "por omisión: {default}",
    "env var: {var}": "variable de entorno: {var}",
    "(dynamic)": "(dinámico)",
    "deprecated": "obsoleta",
    "required": "obligatoria",
    # Prompts.
    "Aborted!": "Cancelado.",
    "Error: invalid input": "Error: respuesta inválida",
    "Do you want to continue?": "¿Desea continuar?",
    "Repeat for confirmation": "Repita para confirmar",
    "Error: The two entered values do not match.": "Error: los dos valores no coinciden.",
    "Press any key to continue...": "Pulse una tecla para continuar...",
}

SPANISH_PLURALS: dict[tuple[str, str], tuple[str, str]] = {
    ("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"): (
        "Sobra un argumento inesperado ({args})",
        "Sobran argumentos inesperados ({args})",
    ),
    ("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"): (
        "¿Quiso decir {possibility}?",
        "(¿Quiso decir una de: {possibilities}?)",
    ),
    ("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."): (
        "La opción {name!r} necesita un valor.",
        "La opción {name!r} necesita {nargs} valores.",
    ),
    ("{value!r} is not {choice}.", "{value!r} is not one of {choices}."): (
        "{value!r} no es {choice}.",
        "{value!r} no es una de: {choices}.",
    ),
    (
        "{value!r} does not match the format {format}.",
        "{value!r} does not match the formats {formats}.",
    ): (
        "{value!r} no tiene el formato {format}.",
        "{value!r} no tiene ninguno de los formatos {formats}.",
    ),
    ("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."): (
        "Lleva {nargs} valores pero se dio 1.",
        "Lleva {nargs} valores pero se dieron {len}.",
    ),
}

# The names of click's number types, as they appear in its messages ("no es un entero válido").
TYPE_NAMES = {
    "integer": "entero",
    "integer range": "entero",
    "float": "número",
    "float range": "número",
    "boolean": "valor lógico",
    "text": "texto",
}


def gettext(message: str) -> str:
    return SPANISH.get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    spanish = SPANISH_PLURALS.get((singular, plural))
    if spanish is None:
        return singular if n == 1 else plural
    return spanish[0] if n == 1 else spanish[1]


_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types", "utils")


def install() -> None:
    """Bind click's translation functions to the Spanish table (idempotent)."""
    for name in _MODULES:
        module = sys.modules.get(f"click.{name}")
        if module is None:
            continue
        if hasattr(module, "_"):
            module._ = gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    for param_type in (click.INT, click.FLOAT, click.BOOL, click.STRING):
        param_type.name = TYPE_NAMES.get(param_type.name, param_type.name)


def number(kind: Callable[..., NumberType], **bounds: float) -> NumberType:
    """A click number type (IntRange, FloatRange) named in Spanish in its messages."""
    param_type = kind(**bounds)
    param_type.name = TYPE_NAMES.get(param_type.name, param_type.name)
    return param_type


YES = ("s", "si", "sí", "y", "yes")
NO = ("n", "no")


def confirm(question: str, *, default: bool = False) -> bool:
    """A yes/no question answered s/n (click's confirm only knows y/n)."""
    suffix = " [S/n]" if default else " [s/N]"
    while True:
        # On stderr, like every other human line: stdout may carry a --json document.
        answer = click.prompt(
            question + suffix, default="", show_default=False, prompt_suffix=" ", err=True
        ).strip()
        if not answer:
            return default
        if answer.lower() in YES:
            return True
        if answer.lower() in NO:
            return False
        click.echo("Responda s (sí) o n (no).", err=True)

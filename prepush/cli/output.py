"""What every command shares on the way out: the human and JSON consoles, and the files the
operator asks for (checked before anything is read, written or refused in Spanish)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from prepush.exceptions import ConfigError, describe_os_error


def consoles(as_json: bool) -> tuple[Console, Console]:
    """(human output, JSON output). With --json, stdout carries only the JSON document."""
    stdout = Console(highlight=False, soft_wrap=True)
    human = Console(stderr=True, highlight=False, soft_wrap=True) if as_json else stdout
    return human, stdout


def emit_json(console: Console, document: Any) -> None:
    """One JSON document (a --watch loop prints one per corte or round, one after another)."""
    # Written as is: rich would lay out every line of a document nobody reads on a terminal
    # (30 ms for a 10-difusor publish report, on the path --watch is timed by).
    console.file.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    console.file.flush()


def say(console: Console, text: str, style: str = "") -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True, style=style or None)


def _no_directory(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"No se pudo escribir {what} en {path}: el directorio {path.parent} no existe."
        " Créelo o indique otra ruta."
    )


def refuse_unwritable(*outputs: tuple[Path | None, str]) -> None:
    """An output whose directory does not exist is refused before anything is read: the
    operator's typo is the answer, not what reading would have said first."""
    for path, what in outputs:
        if path is not None and not path.parent.is_dir():
            raise _no_directory(path, what)


def write_text(path: Path, text: str, what: str) -> None:
    """Write an output file the operator asked for, or say in Spanish why not."""
    try:
        path.write_text(text, encoding="utf-8")
    except FileNotFoundError:
        raise _no_directory(path, what) from None
    except OSError as exc:
        raise ConfigError(
            f"No se pudo escribir {what} en {path}: {describe_os_error(exc)}."
        ) from None


def refuse_ignored_report_options(
    fmt: str, csv_table: str | None, output: Path | None, as_json: bool
) -> None:
    """Options a report (publish's or pull's) could only ignore: refused, nothing read."""
    if as_json and fmt not in ("json", "table") and output is None:
        raise ConfigError(f"Con --json y --format {fmt}, indique -o ARCHIVO para el {fmt}.")
    if csv_table is not None and fmt != "csv":
        raise ConfigError("--tabla es para --format csv.")


def format_of_output(output: Path) -> str:
    """The report format -o's extension names; any other extension needs --format."""
    by_suffix = {".md": "md", ".csv": "csv", ".json": "json"}
    if output.suffix.lower() not in by_suffix:
        raise ConfigError(f"Indique --format (md, csv o json) para escribir {output}.")
    return by_suffix[output.suffix.lower()]

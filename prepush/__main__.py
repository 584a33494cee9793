"""Entry point: run the CLI and map every error to its exit code, in one place.

With ``--json`` an error is also one JSON document on stdout (``{"error": {...}}``), so a
script always parses exactly one document. No error prints a Python traceback unless ``-v``.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import traceback
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.text import Text

from prepush.exceptions import (
    DifusorError,
    ExitCode,
    PrepushError,
    PublishInterrupted,
    PullConfigError,
    PullRefusedError,
    RosterError,
    describe_os_error,
)

GLOBAL_OPTIONS_WITH_VALUE = ("-C", "--roster")


def run() -> NoReturn:
    """The ``prepush`` command."""
    # Tearing down the interpreter walks every object the imports made (asyncssh, pydantic,
    # botocore): 80 ms of every one-shot publish (docs/performance.md). Everything that
    # must outlive the process is closed explicitly before this runs, last of the exit
    # handlers; freezing the objects lets the final collection skip them.
    atexit.register(gc.freeze)
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    from prepush.cli import cli

    args = _json_after_command(sys.argv[1:] if argv is None else list(argv))
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    failure: tuple[str, str, ExitCode, dict[str, Any]]
    # -C DIR changes directory, as git -C does; the caller's is given back (tests, embedders).
    caller_dir = os.getcwd()
    try:
        result = cli.main(args=args, prog_name="prepush", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            failure = ("Interrupted", "Interrumpido por el operador.", ExitCode.INTERRUPTED, {})
        else:
            failure = ("Aborted", "Cancelado: no hubo respuesta.", ExitCode.USAGE, {})
    except click.ClickException as exc:
        if _wants_json(args):
            _emit_error(type(exc).__name__, exc.format_message(), ExitCode.USAGE, {})
        exc.show()
        return int(ExitCode.USAGE)
    except PrepushError as exc:
        failure = (type(exc).__name__, str(exc), exc.exit_code, _details(exc))
    except KeyboardInterrupt:
        failure = ("Interrupted", "Interrumpido por el operador.", ExitCode.INTERRUPTED, {})
    except OSError as exc:
        _traceback_if_verbose(args)
        where = f"{exc.filename}: " if exc.filename else ""
        failure = (
            type(exc).__name__,
            f"Error del sistema: {where}{describe_os_error(exc)}.",
            ExitCode.USAGE,
            {},
        )
    except Exception as exc:
        _traceback_if_verbose(args)
        failure = (
            type(exc).__name__,
            f"Error interno inesperado ({type(exc).__name__}: {exc}). Es un defecto de prepush:"
            " vuelva a ejecutar con -v para ver el detalle y repórtelo.",
            ExitCode.INTERNAL,
            {},
        )
    else:
        return int(result) if isinstance(result, int) else int(ExitCode.OK)
    finally:
        os.chdir(caller_dir)
    kind, message, code, details = failure
    if _wants_json(args):
        _emit_error(kind, message, code, details)
    style = "red" if code == ExitCode.INTERRUPTED else "bold red"
    prefix = "" if code == ExitCode.INTERRUPTED else "Error: "
    errors.print(Text.assemble((prefix, style), (message, "red" if not prefix else "")))
    return int(code)


def _details(exc: PrepushError) -> dict[str, Any]:
    if isinstance(exc, (RosterError, PullConfigError)):
        return {"file": exc.path, "problems": exc.problems}
    if isinstance(exc, PullRefusedError):
        return {"corte": exc.corte, "path": exc.path, "why": exc.why}
    if isinstance(exc, DifusorError):
        return {"difusor": exc.difusor}
    if isinstance(exc, PublishInterrupted):
        return {"corte": exc.corte, "serving": exc.serving}
    return {}


def _emit_error(kind: str, message: str, code: int, details: dict[str, Any]) -> None:
    document = {"error": {"type": kind, "message": message, "exit_code": int(code), **details}}
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _global_flags(args: list[str]) -> list[str]:
    """The options before the command name (where -v lives)."""
    flags, skip = [], False
    for token in args:
        if skip:
            skip = False
        elif token in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif token.startswith("-"):
            flags.append(token)
        else:
            break
    return flags


def _json_after_command(args: list[str]) -> list[str]:
    """``prepush --json check`` as ``prepush check --json``: every command takes --json, so
    before the command it means the same (rather than click suggesting --version)."""
    flags = _global_flags(args)
    if "--json" not in flags or len(flags) == len(args):
        return args
    position = args.index("--json")
    rest = args[:position] + args[position + 1 :]
    command = _command_index(rest)
    if command is None:
        return args
    return [*rest[: command + 1], "--json", *rest[command + 1 :]]


def _command_index(args: list[str]) -> int | None:
    """Where the command's name is: the first word not an option nor an option's value."""
    skip = False
    for index, token in enumerate(args):
        if skip:
            skip = False
        elif token in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not token.startswith("-"):
            return index
    return None


def _wants_json(args: list[str]) -> bool:
    before_separator = args[: args.index("--")] if "--" in args else args
    return "--json" in before_separator


def _traceback_if_verbose(args: list[str]) -> None:
    if {"-v", "--verbose"} & set(_global_flags(args)):
        traceback.print_exc()


if __name__ == "__main__":
    run()

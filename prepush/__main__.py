"""Entry point: run the CLI and map every error to its exit code, in one place."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.text import Text

from prepush.exceptions import ExitCode, PrepushError


def main(argv: list[str] | None = None) -> int:
    from prepush._main import cli

    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = cli.main(args=argv, prog_name="prepush", standalone_mode=False)
    except click.exceptions.Abort:
        errors.print("[red]Cancelado.[/]")
        return int(ExitCode.USAGE)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except PrepushError as exc:
        errors.print(Text.assemble(("Error: ", "bold red"), str(exc)))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("[red]Interrumpido por el operador.[/]")
        return 130
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())

"""What every command shares on the way in: the Context it runs on, its class (a usage line
in Spanish) and the options several commands take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from prepush.cli import spanish

if TYPE_CHECKING:
    from prepush.settings import Settings

# Before any option is declared: click names some types when they are created. Every module
# that declares options imports this one first.
spanish.install()


@dataclass
class Context:
    workdir: Path
    roster_path: Path | None

    def settings(self, *, learn_host_keys: bool = False) -> Settings:
        """The validated roster (its structure; each difusor's credentials are checked when a
        command is about to connect to it)."""
        from prepush.settings import load_settings

        return load_settings(self.workdir, self.roster_path, learn_host_keys=learn_host_keys)


pass_context = click.make_pass_decorator(Context)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Imprime un único documento JSON en la salida."
)
difusor_option = click.option(
    "--difusor", "names", multiple=True, help="Sólo este difusor (repetible)."
)


class Command(click.Command):
    """A command whose usage line speaks Spanish too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[OPCIONES]")
        super().__init__(*args, **kwargs)


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Command]:
    """A prepush command, added to the group by prepush.cli."""
    return click.command(name, cls=Command)


def corte_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A corte id names a real local date and time: AAAAMMDD_HHMM."""
    if value is None:
        return None
    try:
        if len(value) != len("AAAAMMDD_HHMM") or not value.replace("_", "").isdigit():
            raise ValueError(value)
        datetime.strptime(value, "%Y%m%d_%H%M")
    except ValueError:
        raise click.BadParameter(
            f"{value!r} no es un corte: use AAAAMMDD_HHMM con una fecha y hora que existan"
            " (hora local de la elección), p. ej. 20210607_2000.",
            ctx,
            param,
        ) from None
    return value

"""The man page of prepush (``docs/prepush.1``), generated from the command line itself.

Every command, its usage line, its help and each option's help come from click, in Spanish
(:mod:`prepush.cli.spanish`), so the page cannot drift from ``prepush --help``: a test
generates it again and compares it with the committed file. ``make man`` writes it;
``man -l docs/prepush.1`` reads it.

    python -m prepush.cli.man > docs/prepush.1
"""

from __future__ import annotations

import sys

import click

from prepush import __version__
from prepush.exceptions import ExitCode

EXIT_CODES = {
    ExitCode.OK: "éxito: todos los difusores entregados (o al día)",
    ExitCode.PARTIAL: "falla parcial: algún difusor falló; los demás recibieron el corte",
    ExitCode.USAGE: "error de uso o de configuración: no se hizo nada",
    ExitCode.TOTAL_FAILURE: "falla total: el corte no llegó a ningún difusor; la salida dice por"
    " qué",
    ExitCode.INTERNAL: "error interno inesperado (un defecto de prepush): repita con -v y"
    " repórtelo",
    ExitCode.INTERRUPTED: "interrumpido por el operador (Ctrl-C)",
}


def man_page(group: click.Group) -> str:
    """The whole page, in roff (man macros)."""
    # As the command line makes it: with the group's settings (-h beside --help).
    root = group.make_context("prepush", [], resilient_parsing=True)
    lines = [
        r".\" -*- coding: utf-8 -*-",
        r".\" Generado por prepush.cli.man desde la ayuda de cada orden: no lo edite a mano.",
        f'.TH PREPUSH 1 "" "prepush {__version__}" "Manual de prepush"',
        ".SH NOMBRE",
        r"prepush \- publica cada corte del PREP en los servidores de los difusores oficiales",
        ".SH SINOPSIS",
        r".B prepush",
        r"[\fIOPCIONES\fR] \fIORDEN\fR [\fIARGUMENTOS\fR]...",
        ".SH DESCRIPCIÓN",
        *_paragraphs(group.help or ""),
        ".SH OPCIONES GLOBALES",
        *_options(group, root),
        ".SH ÓRDENES",
    ]
    for name in sorted(group.commands):
        command = group.commands[name]
        context = click.Context(command, info_name=name, parent=root)
        usage = " ".join(command.collect_usage_pieces(context))
        lines += [f".SS {_escape(name)}", f".B prepush {_escape(name)}", _escape(usage)]
        lines += _paragraphs(command.help or "")
        lines += _options(command, context)
    lines.append(".SH CÓDIGOS DE SALIDA")
    for code, meaning in EXIT_CODES.items():
        lines += [".TP", f".B {int(code)}", _escape(meaning)]
    lines += [
        ".SH VÉASE TAMBIÉN",
        "README.md y docs/ del paquete de prepush: docs/operations.md (la noche de la"
        " elección), docs/roster.md (el padrón), docs/publishing.md (el protocolo),"
        " docs/difusores.md (la guía de cada difusor).",
    ]
    return "\n".join(lines) + "\n"


def _options(command: click.Command, context: click.Context) -> list[str]:
    lines: list[str] = []
    for param in command.get_params(context):
        record = param.get_help_record(context)
        if record is None:
            continue
        names, help_text = record
        if help_text:  # an argument says itself in the usage line
            lines += [".TP", rf"\fB{_escape(names)}\fR", _escape(help_text)]
    return lines


def _paragraphs(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in click.unstyle(text).strip().split("\n\n"):
        if paragraph.strip():
            lines += [".PP", _escape(" ".join(paragraph.split()))]
    return lines


def _escape(text: str) -> str:
    """Text as roff shows it: backslashes and option dashes escaped, and a line that would
    start with a control character kept as text."""
    text = text.replace("\\", r"\e").replace("-", r"\-")
    return rf"\&{text}" if text.startswith((".", "'")) else text


def main() -> None:
    from prepush.cli import cli

    sys.stdout.write(man_page(cli))


if __name__ == "__main__":
    main()

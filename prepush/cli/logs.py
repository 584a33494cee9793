"""The log of a command: in the operator's language, each line with this machine's time, and
the libraries' chatter only with -v."""

from __future__ import annotations

import logging
import sys
from datetime import datetime

from rich.console import Console

LEVELS = {
    logging.DEBUG: "DEPURACIÓN",
    logging.INFO: "INFO",
    logging.WARNING: "AVISO",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRÍTICO",
}


def log_stamp(moment: datetime) -> str:
    """This machine's time, labelled with its zone: a log line is read beside others."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


class _PlainFormatter(logging.Formatter):
    """One line per record, as the publish view prints its own: for cron mail and journald."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = log_stamp(datetime.fromtimestamp(record.created))
        message = record.getMessage().replace("\n", " ")
        return f"{stamp} {record.levelname} {message}"


# Libraries log every request or connection step at INFO: only with -v.
LIBRARY_LOGGERS = ("httpx", "httpcore", "asyncssh", "tenacity", "paramiko")


def setup_logging(verbose: bool) -> None:
    console = Console(stderr=True)
    for level, name in LEVELS.items():
        logging.addLevelName(level, name)  # the operator's language, on every handler
    handler: logging.Handler
    if console.is_terminal:
        from rich.highlighter import NullHighlighter
        from rich.logging import RichHandler
        from rich.text import Text

        handler = RichHandler(
            console=console,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            highlighter=NullHighlighter(),
            log_time_format=lambda moment: Text(log_stamp(moment)),
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[handler],
        format="%(message)s",
        force=True,
    )
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # asyncio logs every write to a socket the peer already closed; the retry says it better.
    logging.getLogger("asyncio").setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)
    # A library's warnings (a deprecation inside asyncssh, say) are for whoever maintains
    # prepush, not for the operator: they go to the log, shown only with -v.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)

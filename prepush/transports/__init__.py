"""How prepush reaches a difusor: one transport per kind of server, one interface for all.

:mod:`prepush.transports.base` is the interface the publish protocol knows. Each difusor
names its transport in the roster (``transport:``, SFTP by default); :func:`connect` opens
the right one. Transports are imported only when used, so the command line stays quick.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prepush.settings import Difusor, Settings
    from prepush.transports.base import Transport

Connector = Callable[["Difusor", "Settings"], Awaitable["Transport"]]

# transport name -> "module:function" that opens one connection to a difusor.
OPENERS = {
    "sftp": "prepush.transports.sftp.connect:open_sftp",
    "rsync": "prepush.transports.rsync.connect:open_rsync",
    "s3": "prepush.transports.s3.connect:open_s3",
}


async def connect(difusor: Difusor, settings: Settings) -> Transport:
    """Open the difusor's transport, as its roster entry says."""
    module, function = OPENERS[difusor.transport].split(":")
    opener: Connector = getattr(importlib.import_module(module), function)
    return await opener(difusor, settings)

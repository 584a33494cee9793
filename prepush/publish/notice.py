"""The notice on a suspended difusor: its site marked 'actualización interrumpida'.

When a difusor is suspended (:mod:`prepush.publish.share`, with
``election.notice_on_suspend``), its ``json/main.json`` keeps its corte and gains an
``aviso``, written under the difusor's lock (:class:`prepush.publish.protocol.RemoteLock`);
the state records the changed file, so the next publish puts the real one back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prepush.exceptions import RemoteError
from prepush.package import MAIN_JSON, canonical_json, sha256_bytes
from prepush.publish.protocol import RemoteLock
from prepush.publish.protocol_types import Hooks, LockOwner, ProtocolSettings
from prepush.publish.state import META_DIR, STATE_PATH, RemoteFile, RemoteState, Resolver
from prepush.transports.base import Transport


def notice_text() -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        "Actualización interrumpida: este sitio dejó de recibir los cortes del PREP"
        f" ({stamp}). Consulte el sitio oficial del instituto para los resultados más recientes."
    )


async def write_notice(
    transport: Transport,
    name: str,
    owner: LockOwner,
    hooks: Hooks,
    settings: ProtocolSettings,
    manifests: Resolver,
) -> bool:
    """Mark a suspended difusor's site 'actualización interrumpida', under its lock: its
    main.json gains ``aviso`` (atomically), and the state records the changed file so the
    next publish, even of the same corte, puts the real one back. False if nothing is there."""
    lock = RemoteLock(transport, name, owner, hooks, settings)
    hooks.fence(name)
    await transport.prepare_dirs([META_DIR])
    await lock.take()
    try:
        data = await transport.read_file(MAIN_JSON)
        if data is None:
            return False
        main = _corte_main_json(name, data)
        main["aviso"] = notice_text()
        notice = canonical_json(main)
        hooks.fence(name)
        lock.ensure_held()
        await transport.write_file(MAIN_JSON, notice)
        state_bytes = await transport.read_file(STATE_PATH)
        if state_bytes is not None:
            state = RemoteState.from_bytes(state_bytes, manifests)
            held = state.files.get(MAIN_JSON)
            if held is not None:
                state.files[MAIN_JSON] = RemoteFile(sha256_bytes(notice), len(notice), held.cortes)
                await transport.write_file(STATE_PATH, state.to_bytes(manifests))
        return True
    finally:
        await lock.release_quietly()


def _corte_main_json(name: str, data: bytes) -> dict[str, object]:
    try:
        main = json.loads(data)
    except ValueError:
        main = None
    if not isinstance(main, dict):
        raise RemoteError(
            name,
            f"El {MAIN_JSON} del difusor no es el de un corte de prepush (no es un objeto"
            " JSON); no se le puso el aviso de actualización interrumpida. Revise qué hay en"
            " su sitio; el siguiente corte entregado lo reemplaza.",
        )
    return main

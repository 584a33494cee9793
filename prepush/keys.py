"""Key pairs the institute creates: SFTP access to the difusores and package signing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from prepush.exceptions import KeyFileError

KeyType = Literal["ed25519", "rsa"]
_ALGORITHMS: dict[KeyType, str] = {"ed25519": "ssh-ed25519", "rsa": "ssh-rsa"}


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    public_line: str
    fingerprint: str


def generate_key_pair(
    private_path: Path,
    key_type: KeyType = "ed25519",
    comment: str = "prepush",
    passphrase: str | None = None,
) -> KeyPair:
    """Write a new OpenSSH private key (mode 0600) and its ``.pub`` line; never overwrite."""
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(
                f"{path} ya existe; prepush no sobrescribe llaves. Elija otro nombre con --out"
                " o mueva la llave anterior si de verdad quiere reemplazarla."
            )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key(
        _ALGORITHMS[key_type], comment=comment, **({"key_size": 4096} if key_type == "rsa" else {})
    )
    private_bytes = key.export_private_key("openssh", passphrase)
    _write_exclusive(private_path, private_bytes, 0o600)
    public_line = key.export_public_key("openssh").decode().strip()
    _write_exclusive(public_path, (public_line + "\n").encode(), 0o644)
    return KeyPair(private_path, public_path, public_line, key.get_fingerprint())


def _write_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} ya existe; prepush no sobrescribe llaves.") from None
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(path, mode)

"""The cost of one SSH packet's encryption in asyncssh, per cipher, on this CPU.

    .venv/bin/python bench/ciphers.py

Encrypts and signs 3,000 packets of 32 KB (OpenSSH's largest channel packet) with each cipher
asyncssh and OpenSSH share, and prints microseconds per packet and MB/s. prepush offers
AES-GCM first (docs/performance.md, issue 18).
"""

from __future__ import annotations

import os
import time

from asyncssh.encryption import get_encryption, get_encryption_params

CIPHERS = (
    b"aes128-gcm@openssh.com",
    b"aes256-gcm@openssh.com",
    b"chacha20-poly1305@openssh.com",
    b"aes128-ctr",
)
MAC = b"hmac-sha2-256-etm@openssh.com"  # used only by the ciphers without their own
PACKETS = 3000


def main() -> None:
    payload = os.urandom(32768 + 100)
    for name in CIPHERS:
        key_size, iv_size, _block, mac_key_size, _hash, etm = get_encryption_params(name, MAC)
        encryption = get_encryption(
            name, os.urandom(key_size), os.urandom(iv_size), MAC, os.urandom(mac_key_size), etm
        )
        started = time.perf_counter()
        for seq in range(PACKETS):
            encryption.encrypt_packet(seq, b"\0\0\0\0", payload)
        elapsed = time.perf_counter() - started
        print(
            f"{name.decode():32s} {elapsed / PACKETS * 1e6:6.1f} µs por paquete de 32 KB,"
            f" {PACKETS * len(payload) / elapsed / 1e6:6.0f} MB/s"
        )


if __name__ == "__main__":
    main()

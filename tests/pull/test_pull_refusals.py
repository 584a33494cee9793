"""``prepush pull`` refuses what the institute did not sign, and never shows it.

The institute publishes two Campeche cortes to its SFTP origin (``origin: true``), whose web
root nginx serves over HTTPS (a throwaway certificate, basic auth); the fault proxy sits
between the difusor and nginx. The difusor pulls the first corte into its directory. Then,
one at a time: the origin refuses another password, the second corte's download is cut by
the proxy every time, its
ZIP is altered, its signature is made with another key, its signature is removed, and its
signed manifest names a path outside the site (signed with the institute's own key). Each
time the pull fails or refuses with a Spanish message naming the file and why, and the
destination is byte for byte what it was (the first corte whole, nothing of the second, no
file outside it). With the origin as the institute published it, the next pull delivers.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from pathlib import Path

import asyncssh
import httpx
import pytest

from prepush.__main__ import main
from prepush.package import (
    MAIN_JSON,
    MANIFEST,
    SIGNATURE,
    Package,
    canonical_json,
    load_signing_key,
    published_manifest,
    published_signature,
    sign,
)
from prepush.pull import origins
from tests.conftest import FaultProxyFactory, Workdir
from tests.support.prepdata import CORTES
from tests.support.pull import (
    ORIGIN_PASSWORD,
    ORIGIN_PASSWORD_ENV,
    AsOrigin,
    HttpsOrigin,
    PullDifusor,
    https_origin,
    https_origin_config,
    public_key_of,
)
from tests.support.servers import Endpoint, read_tree

__all__ = ["https_origin"]  # the fixture, used by name

RETENTION = 3


class OriginFiles:
    """The origin's web root, changed behind nginx's back: every write a new file (never in
    place: the origin hard-links files across cortes) with its own mtime (nginx's ETag is the
    mtime and the size, to the second)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.saved: dict[str, bytes] = {}
        self.clock = time.time() + 10

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        self.saved.setdefault(path, target.read_bytes())
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_bytes(data)
        self.clock += 2
        os.utime(temporary, (self.clock, self.clock))
        os.replace(temporary, target)

    def remove(self, path: str) -> None:
        target = self.root / path
        self.saved.setdefault(path, target.read_bytes())
        target.unlink()

    def restore(self) -> None:
        for path, data in self.saved.items():
            target = self.root / path
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_bytes(data)
            self.clock += 2
            os.utime(temporary, (self.clock, self.clock))
            os.replace(temporary, target)
        self.saved.clear()


def test_what_does_not_verify_is_never_published_and_the_previous_corte_stays_whole(
    https_origin: tuple[Endpoint, HttpsOrigin],
    fault_proxies: FaultProxyFactory,
    workdir: Workdir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sftp_origin, web = https_origin
    proxy = fault_proxies("127.0.0.1", web.port)
    workdir.write_roster([AsOrigin(sftp_origin)], deadline=60, retention=RETENTION)
    public = public_key_of(workdir.signing_key, tmp_path / "entregado")
    site = tmp_path / "publico" / "sitio"
    site.mkdir(parents=True)
    difusor = PullDifusor(
        "medio01",
        tmp_path / "difusor",
        https_origin_config(f"https://127.0.0.1:{proxy.port}/", web.cert),
        {"directory": str(site)},
        public,
    )
    # A short deadline: a cut that keeps happening ends the pass in a few seconds.
    difusor.write_config(deadline_seconds=3, files_in_flight=2)
    first, second = CORTES[0], CORTES[1]
    workdir.build(first)
    assert main(["-C", str(workdir.path), "publish"]) == 0
    code, result = difusor.run_json(capsys)
    assert (code, result["outcome"], result["corte"]) == (0, "delivered", first), result
    before = read_tree(site, skip_meta=False)
    outside = sorted(p.name for p in site.parent.iterdir())
    assert json.loads(before[MAIN_JSON])["corte"] == first

    workdir.build(second)
    assert main(["-C", str(workdir.path), "publish"]) == 0
    package = Package.open(workdir.path / "paquetes" / second)
    zip_entry = next(f for f in package.manifest.files if f.path.endswith(".zip"))
    # The cut falls inside the ZIP, never in what a pass reads before it on a connection:
    # main.json, the signed manifest and its signature, with their TLS and HTTP framing
    # (8 KB of slack was not always enough: half the ZIP is, and stays inside it).
    first_reads = (MAIN_JSON, MANIFEST, SIGNATURE)
    read_first = sum((package.path / p).stat().st_size for p in first_reads)
    slack = zip_entry.size // 2
    assert slack > 8_000
    cut_after = read_first + slack
    origin = OriginFiles(sftp_origin.local_root)

    def refused(expected_code: int, *words: str) -> str:
        code, result = difusor.run_json(capsys)
        message = str(result["message"])
        assert (code, result["outcome"]) == (
            expected_code,
            "refused" if expected_code == 2 else "failed",
        ), result
        for word in words:
            assert word in message, (word, message)
        # Nothing written where the public reads; the first corte whole; nothing beside.
        assert read_tree(site, skip_meta=False) == before
        assert sorted(p.name for p in site.parent.iterdir()) == outside
        return message

    # 0. The origin asks for the password: without it, or with another, nothing.
    trusted = ssl.create_default_context(cafile=str(web.cert))
    anonymous = httpx.get(web.url + MAIN_JSON, verify=trusted, timeout=10)
    assert anonymous.status_code == 401
    monkeypatch.setenv(ORIGIN_PASSWORD_ENV, "otra-clave")
    refused(3, "negó el acceso", "HTTP 401", "password_env")
    monkeypatch.setenv(ORIGIN_PASSWORD_ENV, ORIGIN_PASSWORD)

    # A file read whole (main.json, the manifest, its signature) has a ceiling.
    ceiling = origins.MAX_WHOLE
    monkeypatch.setattr(origins, "MAX_WHOLE", 1000)
    refused(3, MAIN_JSON, "más de 1000 bytes", "lee entero")
    monkeypatch.setattr(origins, "MAX_WHOLE", ceiling)

    # 1. A download the proxy cuts (every connection past ``cut_after``): the ZIP never
    # arrives.
    proxy.faults.reset_down_after_bytes = cut_after
    message = refused(3, zip_entry.path, "se cortó")
    assert proxy.resets > 0
    proxy.faults.clear()

    # 2. A file altered on the origin: one byte changed (the same size), then one added.
    tampered = bytearray(package.file(zip_entry.path).read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    origin.write(zip_entry.path, bytes(tampered))
    refused(2, zip_entry.path, "sha256", "alterado")
    origin.write(zip_entry.path, package.file(zip_entry.path).read_bytes() + b"\n")
    refused(2, zip_entry.path, "más bytes", "no es el archivo del instituto")
    origin.restore()

    # 3. The manifest signed by another key (its signature file well-formed).
    manifest_path, signature_path = published_manifest(second), published_signature(second)
    manifest_bytes = (sftp_origin.local_root / manifest_path).read_bytes()
    other = asyncssh.generate_private_key("ssh-ed25519")
    origin.write(signature_path, sign(manifest_bytes, other))
    refused(2, manifest_path, "otra llave")
    origin.restore()

    # 4. The signature missing.
    origin.remove(signature_path)
    refused(2, signature_path, "falta la firma")
    origin.restore()

    # 5. A path escaping the destination, in a manifest the institute's key signed.
    raw = json.loads(manifest_bytes)
    raw["files"].append(
        {"path": "../fuera.txt", "size": 5, "sha256": "0" * 64},
    )
    escaping = canonical_json(raw)
    origin.write(manifest_path, escaping)
    origin.write(signature_path, sign(escaping, load_signing_key(workdir.signing_key)))
    refused(2, "../fuera.txt", "saldría del destino")
    assert not (site.parent / "fuera.txt").exists()
    origin.restore()

    # The origin as the institute published it: delivered, exact.
    code, result = difusor.run_json(capsys)
    assert (code, result["outcome"], result["corte"]) == (0, "delivered", second), result
    expected = workdir.package_tree(first) | workdir.package_tree(second)
    assert read_tree(site) == expected

    # The ledger tells the night: one incident from the cut to the recovery, every refusal.
    code = difusor.run("--report", "--format", "json")
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    lines = {c["corte"]: c for c in report["cortes"]}
    assert lines[first]["result"] == lines[second]["result"] == "verificado"
    (incident,) = report["incidents"]
    assert incident["end"] is not None
    assert incident["duration_s"] > 0
    assert second in incident["cortes"]
    assert "se cortó" in message

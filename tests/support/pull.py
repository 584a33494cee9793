"""Pull difusores for the tests: the institute's origins and the difusores that pull from them.

- An HTTPS origin: Debian's nginx with a throwaway certificate (made here with openssl) and
  basic auth (an apr1 password file), serving the web root of an origin difusor that
  ``prepush publish`` fills (an in-process SFTP server, or a directory).
- An S3 origin: a bucket on the local endpoint (moto's server mode over real HTTP).
- A pull difusor: its own working directory with ``pull.yaml``, the institute's public key,
  and its destination (a directory, or a bucket of its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from prepush.sim.sshd import BASE as SERVER_BASE
from prepush.sim.sshd import free_port, read_pid, wait_for_port
from tests.support.s3 import KEY_ENV, SECRET_ENV, S3Endpoint
from tests.support.servers import Endpoint, nginx_available, read_tree

if TYPE_CHECKING:
    from tests.conftest import BucketFactory, Workdir

ORIGIN_USER_ENV = "PREP_ORIGEN_USUARIO"
ORIGIN_PASSWORD_ENV = "PREP_ORIGEN_CLAVE"
ORIGIN_USER = "medio01"
ORIGIN_PASSWORD = "clave-de-descarga"


@dataclasses.dataclass
class AsOrigin:
    """A difusor of the institute's roster marked ``origin: true``."""

    endpoint: Any

    def roster_entry(self) -> dict[str, object]:
        return {**self.endpoint.roster_entry(), "origin": True}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1: (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "origen.crt", directory / "origen.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class HttpsOrigin:
    """nginx over HTTPS with basic auth, serving ``root`` (the origin difusor's web root)."""

    def __init__(self, root: Path, cert: Path, key: Path) -> None:
        self.root = root
        self.cert = cert
        self.key = key
        self.home = SERVER_BASE / f"nginx-origen-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def start(self) -> HttpsOrigin:
        self.home.mkdir(parents=True)
        hashed = subprocess.run(
            ["openssl", "passwd", "-apr1", ORIGIN_PASSWORD],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (self.home / "htpasswd").write_text(f"{ORIGIN_USER}:{hashed}\n")
        temp = "\n".join(
            f"    {kind}_temp_path {self.home / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.home / "nginx.conf").write_text(
            f"""
user root;
worker_processes 1;
pid {self.home / "nginx.pid"};
error_log {self.home / "error.log"};
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        root {self.root};
        auth_basic "PREP";
        auth_basic_user_file {self.home / "htpasswd"};
        location ~ /(index\\.html|json/main\\.json)$ {{
            add_header Cache-Control "no-cache, no-store, must-revalidate" always;
        }}
        location ~ /\\.prepush(/|$) {{
            deny all;
        }}
    }}
}}
"""
        )
        subprocess.run(["/usr/sbin/nginx", "-c", str(self.home / "nginx.conf")], check=True)
        wait_for_port(self.port)
        self.pid = read_pid(self.home / "nginx.pid")
        return self

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGQUIT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            self.pid = None
        shutil.rmtree(self.home, ignore_errors=True)


def https_origin_config(url: str, ca_file: Path) -> dict[str, Any]:
    return {
        "url": url,
        "user_env": ORIGIN_USER_ENV,
        "password_env": ORIGIN_PASSWORD_ENV,
        "ca_file": str(ca_file),
    }


def s3_fields(bucket: S3Endpoint, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "bucket": bucket.bucket,
        "region": "us-east-1",
        "endpoint_url": bucket.endpoint_url,
        "access_key_id_env": KEY_ENV,
        "secret_access_key_env": SECRET_ENV,
        **extra,
    }
    if bucket.prefix:
        fields["prefix"] = bucket.prefix
    return fields


@dataclasses.dataclass
class PullDifusor:
    """A difusor that pulls: its working directory, pull.yaml, and its destination."""

    name: str
    path: Path
    origin: dict[str, Any]
    destination: dict[str, Any]
    public_key: Path

    @property
    def config(self) -> Path:
        return self.path / "pull.yaml"

    def write_config(self, **extra: Any) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        document = {
            "difusor": self.name,
            "public_key": str(self.public_key),
            "origin": self.origin,
            "destination": self.destination,
            "timezone": "America/Merida",
            "retention": 3,
            "connect_timeout_seconds": 5,
            "request_timeout_seconds": 10,
            **extra,
        }
        self.config.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
        return self.config

    def run(self, *args: str) -> int:
        from prepush.__main__ import main

        return main(["pull", "--config", str(self.config), *args])

    def run_json(self, capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        code = self.run("--json", *args)
        return code, json.loads(capsys.readouterr().out)

    def site(self, destination: S3Endpoint | None = None) -> dict[str, bytes]:
        """What the public reads at the destination (prepush's own files left out)."""
        if destination is not None:
            return destination.tree()
        return read_tree(Path(self.destination["directory"]))


def write_pull_config(home: Path, signing_key: Path) -> Path:
    """A pull difusor's valid configuration (its origin is never contacted)."""
    (home / "sitio").mkdir(parents=True)
    (home / "instituto.pub").write_bytes(Path(f"{signing_key}.pub").read_bytes())
    path = home / "pull.yaml"
    path.write_text(
        "difusor: medio01\npublic_key: instituto.pub\n"
        "origin:\n  url: https://127.0.0.1:9/\ndestination:\n  directory: sitio\n"
    )
    return path


def s3_to_directory(origin: S3Endpoint, signing_key: Path, tmp_path: Path) -> PullDifusor:
    """The usual pull difusor: ``medio01``, from the bucket ``origin`` into ``tmp_path/sitio``
    (made here), with the institute's key."""
    site = tmp_path / "sitio"
    site.mkdir()
    return PullDifusor(
        "medio01",
        tmp_path / "difusor",
        {"s3": s3_fields(origin)},
        {"directory": str(site)},
        public_key_of(signing_key, tmp_path / "entregado"),
    )


def institute_and_difusor(
    s3_bucket: BucketFactory, workdir: Workdir, tmp_path: Path, **roster: Any
) -> PullDifusor:
    """The institute's roster publishing to the bucket ``origen`` (``roster``: the roster's
    settings), and the usual pull difusor of that bucket (:func:`s3_to_directory`)."""
    origin = s3_bucket("origen")
    workdir.write_roster([AsOrigin(origin)], **roster)
    return s3_to_directory(origin, workdir.signing_key, tmp_path)


def public_key_of(signing_key: Path, directory: Path) -> Path:
    """The institute's public key, as it hands it to a difusor (a .pub file)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "instituto.pub"
    shutil.copyfile(Path(f"{signing_key}.pub"), target)
    return target


@pytest.fixture
def https_origin(
    asyncssh_difusor: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Endpoint, HttpsOrigin]]:
    if not nginx_available():
        pytest.skip("requiere nginx (Debian) y ser root; 'make test' lo instala")
    cert, key = make_certificate(tmp_path / "tls")
    web = HttpsOrigin(asyncssh_difusor.local_root, cert, key).start()
    monkeypatch.setenv(ORIGIN_USER_ENV, ORIGIN_USER)
    monkeypatch.setenv(ORIGIN_PASSWORD_ENV, ORIGIN_PASSWORD)
    try:
        yield dataclasses.replace(asyncssh_difusor, name="origen-https"), web
    finally:
        web.stop()

"""A local S3 and CloudFront endpoint for simulacros and tests: moto's server mode.

    python -m prepush.sim.s3local --port PORT [--log FILE]

moto (``pip install 'prepush[sim]'``) answers the S3 and CloudFront APIs over real HTTP on
127.0.0.1, in a process of its own, as a remote store would. With ``--log`` every request is
recorded, one JSON line each (when it arrived and when it was answered, method, path, query,
status), so a test can assert the order of what prepush asked: the CloudFront invalidation
after the PUT of json/main.json, never before. Buckets are made with the public-read policy
of docs/difusores.md (``.prepush/`` denied), so the bucket itself is the difusor's website:
``http://127.0.0.1:PORT/BUCKET/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prepush.exceptions import ConfigError

KEY_ID = "prepush-local"
SECRET = "prepush-local-secret"
REGION = "us-east-1"

# The bucket policy of docs/difusores.md: the site public, prepush's state not (denied to
# every principal but the institute's).
SITE_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "SitioPublico",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::BUCKET/*",
        },
        {
            "Sid": "EstadoPrivado",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::BUCKET/.prepush/*",
            "Condition": {
                "StringNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/prepush"}
            },
        },
    ],
}
PRIVATE_PREFIX = "/.prepush/"


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


def require_moto() -> None:
    if not moto_available():
        raise ConfigError(
            "Los difusores S3 locales necesitan moto en modo servidor: instálelo con"
            " \"pip install 'prepush[sim]'\" (o 'make test')."
        )


@dataclass(frozen=True)
class Recorded:
    started: float
    finished: float
    method: str
    path: str
    query: str
    status: int


class LocalS3:
    """moto_server in a child process on 127.0.0.1, with helpers to make difusor buckets."""

    def __init__(self, base: Path, *, log: bool = True) -> None:
        self.base = base
        self.port = _free_port()
        self.log_path = base / f"s3-{self.port}.log" if log else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def site_url(self, bucket: str, prefix: str = "") -> str:
        return f"{self.endpoint}/{bucket}/" + (f"{prefix}/" if prefix else "")

    def start(self) -> LocalS3:
        require_moto()
        self.base.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "prepush.sim.s3local", "--port", str(self.port)]
        if self.log_path is not None:
            command += ["--log", str(self.log_path)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def client(self, service: str = "s3") -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )

    def make_bucket(self, bucket: str, *, policy: dict[str, Any] | None = None) -> None:
        s3 = self.client()
        s3.create_bucket(Bucket=bucket)
        chosen = SITE_POLICY if policy is None else policy
        text = json.dumps(moto_policy(chosen)).replace("BUCKET", bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=text)

    def make_distribution(self, bucket: str, *, main_json_min_ttl: int = 0) -> str:
        """A CloudFront distribution in front of ``bucket``, its json/main.json behaviour
        with the given minimum TTL (0: honours the bucket's no-cache). Returns its id."""
        behaviour = {
            "TargetOriginId": "sitio",
            "ViewerProtocolPolicy": "redirect-to-https",
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
        }
        answer = self.client("cloudfront").create_distribution(
            DistributionConfig={
                "CallerReference": f"prepush-{bucket}-{time.time_ns()}",
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "sitio",
                            "DomainName": f"{bucket}.s3.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {**behaviour, "MinTTL": 0},
                "CacheBehaviors": {
                    "Quantity": 1,
                    "Items": [
                        {
                            **behaviour,
                            "PathPattern": "json/main.json",
                            "MinTTL": main_json_min_ttl,
                            "DefaultTTL": max(main_json_min_ttl, 0),
                            "MaxTTL": max(main_json_min_ttl, 0),
                        }
                    ],
                },
                "Comment": "prepush",
                "Enabled": True,
            }
        )
        return str(answer["Distribution"]["Id"])

    def objects(self, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every object under ``prefix``: its bytes and headers, read back with boto3 (not
        the client that wrote them)."""
        s3 = self.client()
        found: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket, Key=item["Key"])
                found[str(item["Key"])[len(prefix) :]] = {
                    "body": got["Body"].read(),
                    "cache_control": got.get("CacheControl"),
                    "content_type": got.get("ContentType"),
                }
        return found

    def records(self) -> list[Recorded]:
        if self.log_path is None or not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [Recorded(**json.loads(line)) for line in lines if line.strip()]

    def clear_records(self) -> None:
        if self.log_path is not None and self.log_path.exists():
            self.log_path.write_text("", encoding="utf-8")


def moto_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto can apply it. moto applies a Deny to every request, signed or not,
    without evaluating its Condition, so a Deny with a Condition would lock prepush out of
    its own state: it is left out here, and this endpoint's front (:func:`_recording`) denies
    unsigned reads under ``.prepush/`` itself, as AWS does with the guide's policy."""
    statements = [
        s for s in policy["Statement"] if not (s["Effect"] == "Deny" and "Condition" in s)
    ]
    return {**policy, "Statement": statements}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(
                f"El servidor S3 local terminó al arrancar (código {process.returncode})."
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ConfigError(f"El servidor S3 local no abrió el puerto {port} en {timeout:g} s.")


# --- the child process ------------------------------------------------------------------


def _recording(
    app: Callable[..., Iterable[bytes]], log: Path | None
) -> Callable[..., Iterable[bytes]]:
    """WSGI front: unsigned reads of ``.prepush/`` denied, and (with ``log``) one JSON line
    per request, written when it is answered."""
    lock = threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.time()
        status: list[int] = [0]
        if _anonymous_private_read(environ):
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"]

        def start(code: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            status[0] = int(code.split(maxsplit=1)[0])
            return start_response(code, headers, *rest)

        body = list(app(environ, start))
        if log is None:
            return body
        line = json.dumps(
            {
                "started": started,
                "finished": time.time(),
                "method": environ.get("REQUEST_METHOD", ""),
                "path": environ.get("PATH_INFO", ""),
                "query": environ.get("QUERY_STRING", ""),
                "status": status[0],
            }
        )
        with lock, log.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        return body

    return wrapped


def _anonymous_private_read(environ: dict[str, Any]) -> bool:
    """An unsigned read of a key under ``.prepush/``: what the guide's Deny refuses."""
    signed = "HTTP_AUTHORIZATION" in environ or "X-Amz-Signature" in environ.get("QUERY_STRING", "")
    path = str(environ.get("PATH_INFO", ""))
    method = environ.get("REQUEST_METHOD", "")
    return not signed and method in ("GET", "HEAD") and PRIVATE_PREFIX in path


def serve(port: int, log: Path | None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app: Callable[..., Iterable[bytes]] = DomainDispatcherApplication(create_backend_app)
    app = _recording(app, log)
    server = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Punto de acceso S3/CloudFront local (moto).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args(argv)
    serve(args.port, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

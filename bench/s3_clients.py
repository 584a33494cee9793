"""Which S3 client library prepush uses: aiobotocore or obstore, measured on the same work.

    .venv/bin/python bench/s3_clients.py [--files 300] [--repeat 3]

A moto S3 server runs in a process of its own (so the client's CPU is the client's alone);
each client PUTs the same files (many small JSON files and a few large ones, as a corte is)
with 32 requests in flight, then HEADs and deletes them. Wall time and the client process's
CPU seconds are printed per client, median of ``--repeat`` runs, alternating the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

WIDTH = 32
SMALL = 40_000
LARGE = 4_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _payloads(files: int) -> dict[str, bytes]:
    payloads = {f"json/casilla-{i:05d}.json": os.urandom(SMALL) for i in range(files)}
    payloads.update({f"datos/grande-{i}.zip": os.urandom(LARGE) for i in range(4)})
    return payloads


async def _gated(calls: list[Callable[[], Awaitable[object]]]) -> None:
    gate = asyncio.Semaphore(WIDTH)

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def with_aiobotocore(endpoint: str, bucket: str, payloads: dict[str, bytes]) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(
        max_pool_connections=WIDTH,
        retries={"max_attempts": 1},
        # What prepush sets: no CRC of every body (TLS and Content-MD5-free PUTs), no
        # client-side validation of parameters it builds itself.
        request_checksum_calculation="when_required",
        parameter_validation=False,
    )
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    ) as client:
        await _gated(
            [
                (lambda k=k, v=v: client.put_object(Bucket=bucket, Key=k, Body=v))
                for k, v in payloads.items()
            ]
        )
        await _gated([(lambda k=k: client.head_object(Bucket=bucket, Key=k)) for k in payloads])
        keys = [{"Key": k} for k in payloads]
        for start in range(0, len(keys), 1000):
            await client.delete_objects(
                Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )


async def with_obstore(endpoint: str, bucket: str, payloads: dict[str, bytes]) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="bench",
        secret_access_key="bench",
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    await _gated([(lambda k=k, v=v: obstore.put_async(store, k, v)) for k, v in payloads.items()])
    await _gated([(lambda k=k: obstore.head_async(store, k)) for k in payloads])
    await obstore.delete_async(store, list(payloads))


CLIENTS = {"aiobotocore": with_aiobotocore, "obstore": with_obstore}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait(port)
        import boto3

        admin = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        admin.create_bucket(Bucket="banco")
        payloads = _payloads(args.files)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
        for _ in range(args.repeat):
            for name, run in CLIENTS.items():
                wall, cpu = time.perf_counter(), _cpu()
                asyncio.run(run(endpoint, "banco", payloads))
                samples[name].append((time.perf_counter() - wall, _cpu() - cpu))
        total_mb = sum(len(v) for v in payloads.values()) / 1e6
        print(f"{len(payloads)} objetos, {total_mb:.1f} MB, {WIDTH} en vuelo, moto_server aparte")
        for name, runs in samples.items():
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"{name:12s} pared {wall:6.2f} s   CPU del cliente {cpu:6.2f} s")
    finally:
        server.terminate()
        server.wait(10)
    return 0


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("moto_server no arrancó")


if __name__ == "__main__":
    sys.exit(main())

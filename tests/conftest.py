"""Fixtures: real difusores (sshd, asyncssh, paramiko), a fault proxy, and a work dir.

prepush runs its own event loop (``asyncio.run``) in the test's thread, so in-process
servers and the fault proxy live on a background loop in another thread, as a remote server
would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncssh
import pytest
import yaml

from prepush.ledger import LedgerLocation, PostgresLocation
from prepush.sim.faultproxy import FaultProxy
from prepush.sim.fleet import LocalDifusor, ServerThread
from prepush.sim.postgres import LocalPostgres, postgres_available
from prepush.sim.s3local import LocalS3, moto_available
from tests.support.prepdata import cortes_dir
from tests.support.rsync_servers import (
    RsyncEndpoint,
    daemon_endpoint,
    guide_daemon,
    guide_rrsync_sshd,
    rsync_servers_available,
    ssh_endpoint,
)
from tests.support.s3 import CREDENTIALS, S3Endpoint, guide_bucket_policy
from tests.support.servers import (
    Endpoint,
    Nginx,
    ParamikoSftpServer,
    SshdServer,
    nginx_available,
    sshd_available,
)

pytest_plugins = ["tests.support.strict_skips"]


@pytest.fixture(scope="session")
def servers_loop() -> Iterator[ServerThread]:
    loop = ServerThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway ed25519 key pair in OpenSSH format; the private file is 0600."""
    path = tmp_path_factory.mktemp("keys") / "cliente.pem"
    key = asyncssh.generate_private_key("ssh-ed25519", comment="prepush-tests")
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    Path(f"{path}.pub").write_bytes(key.export_public_key("openssh"))
    return path


def _sshd(client_key: Path, chroot: bool) -> Iterator[tuple[SshdServer, Endpoint]]:
    if not sshd_available():
        pytest.skip("requiere /usr/sbin/sshd (openssh-server) y ser root; 'make test' los instala")
    server = SshdServer(client_key, chroot=chroot)
    try:
        endpoint = server.start()
        yield server, endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _sshd_plain_server(client_key: Path) -> Iterator[tuple[SshdServer, Endpoint]]:
    yield from _sshd(client_key, chroot=False)


@pytest.fixture(scope="session")
def _sshd_chroot_server(client_key: Path) -> Iterator[tuple[SshdServer, Endpoint]]:
    yield from _sshd(client_key, chroot=True)


@pytest.fixture
def sshd_plain(_sshd_plain_server: tuple[SshdServer, Endpoint]) -> Endpoint:
    endpoint = _sshd_plain_server[1]
    endpoint.empty()
    return endpoint


@pytest.fixture
def sshd_chroot(_sshd_chroot_server: tuple[SshdServer, Endpoint]) -> Endpoint:
    endpoint = _sshd_chroot_server[1]
    endpoint.empty()
    return endpoint


@pytest.fixture
def asyncssh_server(
    servers_loop: ServerThread, client_key: Path, tmp_path: Path
) -> Iterator[LocalDifusor]:
    difusor = LocalDifusor(
        "asyncssh", tmp_path / "asyncssh-root", client_key=asyncssh.read_private_key(client_key)
    )
    servers_loop.run(difusor.start())
    yield difusor
    servers_loop.run(difusor.stop())


@pytest.fixture
def asyncssh_difusor(asyncssh_server: LocalDifusor, client_key: Path) -> Endpoint:
    d = asyncssh_server
    return Endpoint(
        name="asyncssh",
        host=d.host,
        port=d.port,
        user=d.username,
        key_file=client_key,
        host_key_line=d.host_key_line,
        remote_dir="/",
        local_root=d.root,
    )


@pytest.fixture
def paramiko_difusor(client_key: Path, tmp_path: Path) -> Iterator[Endpoint]:
    server = ParamikoSftpServer(tmp_path / "paramiko-root", client_key)
    endpoint = server.start(client_key)
    yield endpoint
    server.stop()


ProxyFactory = Callable[[Endpoint], tuple[FaultProxy, Endpoint]]
FaultProxyFactory = Callable[..., FaultProxy]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium(profile: Path) -> Any:
    """Debian's headless Chromium, driven by chromedriver (nothing downloaded); skips the
    test without them."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("requiere chromium y chromium-driver de Debian; 'make test' los instala")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    driver = chromium(tmp_path / "perfil")
    yield driver
    driver.quit()


@pytest.fixture
def fault_proxies(servers_loop: ServerThread) -> Iterator[FaultProxyFactory]:
    """A fault proxy in front of ``host:port`` per call (``seed`` for its random cuts),
    started on the servers' loop and stopped after the test."""
    proxies: list[FaultProxy] = []

    def make(host: str, port: int, *, seed: int = 0) -> FaultProxy:
        proxy = FaultProxy(host, port, seed=seed)
        servers_loop.run(proxy.start())
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        servers_loop.run(proxy.stop())


@pytest.fixture
def fault_proxy(fault_proxies: FaultProxyFactory) -> ProxyFactory:
    """A fault proxy in front of an endpoint, and the endpoint as reached through it."""

    def make(endpoint: Endpoint) -> tuple[FaultProxy, Endpoint]:
        proxy = fault_proxies(endpoint.host, endpoint.port)
        return proxy, dataclasses.replace(endpoint, port=proxy.port)

    return make


# --- a work directory with a roster and Campeche packages ----------------------------------

CAMPECHE_ROWLESS_ACTAS = {"DIP_LOC": 10}


# A roster has at least one difusor; tests that only build get this one, never contacted.
UNREACHED = {
    "name": "sin-contacto",
    "host": "127.0.0.1",
    "port": 9,
    "user": "prep",
    "key_file": "claves/sin-contacto.pem",
    "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOKbsJ9IkKY3a0yWxP4PzqzM2a0o2C8b6bC3sD9b0aBc",
}


class RosterEntry(Protocol):
    def roster_entry(self) -> dict[str, object]: ...


@dataclasses.dataclass
class Workdir:
    path: Path
    signing_key: Path

    def write_roster(
        self,
        endpoints: Sequence[RosterEntry],
        deadline: float = 10,
        requirements: dict[str, float] | None = None,
        publish: dict[str, Any] | None = None,
        paths: dict[str, Any] | None = None,
        **election: Any,
    ) -> Path:
        settings: dict[str, Any] = {
            "process": "Proceso Electoral Local 2020-2021 Campeche",
            "timezone": "America/Merida",
            # Open until far ahead: these tests publish 2021 cortes today.
            "publication": {"start": "2021-06-06T19:00:00", "end": "2099-12-31T23:59:00"},
            "corte_interval_minutes": 1,
            "signing_key": str(self.signing_key),
            # Campeche's DIP_LOC counts 10 actas of representación proporcional of special
            # casillas that have no row (ESPERADAS 1200, 1190 rows, 10 special casillas).
            "rowless_actas": CAMPECHE_ROWLESS_ACTAS,
            **election,
        }
        roster: dict[str, Any] = {
            "election": settings,
            "publish": {
                "connect_timeout_seconds": 5,
                "run_lock_wait_seconds": 2,
                "deadline_seconds": deadline,
                **(publish or {}),
            },
            "difusores": [e.roster_entry() for e in endpoints] or [UNREACHED],
        }
        if requirements:
            roster["requirements"] = requirements
        if paths:
            roster["paths"] = paths
        path = self.path / "difusores.yaml"
        path.write_text(yaml.safe_dump(roster, allow_unicode=True, sort_keys=False))
        return path

    def build(self, corte: str, *extra: str) -> Path:
        from prepush.__main__ import main

        inputs = [str(p) for p in sorted(cortes_dir().glob(f"{corte}_PREP_*"))]
        assert main(["-C", str(self.path), "build", *extra, *inputs]) == 0
        return self.path / "paquetes" / corte

    def package_tree(self, corte: str) -> dict[str, bytes]:
        from tests.support.servers import read_tree

        return read_tree(self.path / "paquetes" / corte)

    def watch(self, interval: str = "0.2") -> subprocess.Popen[str]:
        """``prepush publish --watch`` of this directory in its own process; stderr kept."""
        return subprocess.Popen(
            [sys.executable, "-m", "prepush", "-C", str(self.path), "publish", "--watch", interval],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )


def interrupt(child: subprocess.Popen[str]) -> str:
    """Ctrl-C to a prepush started in its own process; what it said on stderr."""
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    return err


@pytest.fixture
def workdir(tmp_path: Path, client_key: Path) -> Workdir:
    path = tmp_path / "trabajo"
    path.mkdir()
    return Workdir(path, client_key)


@pytest.fixture
def nginx_factory() -> Iterator[Callable[..., Nginx]]:
    if not nginx_available():
        pytest.skip("requiere nginx (Debian) y ser root; 'make test' lo instala")
    started: list[Nginx] = []

    def make(root: Path, *, cache_rule: bool = True, deny_prepush: bool = True) -> Nginx:
        server = Nginx(root, cache_rule=cache_rule, deny_prepush=deny_prepush).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# --- a real PostgreSQL server (Debian's), for the shared ledger -----------------------------

# The variable the tests' rosters name for the ledger's password (paths.ledger_password_env).
LEDGER_PASSWORD_ENV = "PREPUSH_PRUEBAS_BITACORA"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """One PostgreSQL cluster for the session: initdb into a temporary directory as the
    postgres user, on 127.0.0.1 and a free port, stopped by its PID at the end."""
    if not postgres_available():
        pytest.skip("requiere PostgreSQL de Debian (paquete postgresql); 'make test' lo instala")
    server = LocalPostgres().start()
    saved = os.environ.get(LEDGER_PASSWORD_ENV)
    os.environ[LEDGER_PASSWORD_ENV] = server.password
    try:
        yield server
    finally:
        server.stop()
        if saved is None:
            os.environ.pop(LEDGER_PASSWORD_ENV, None)
        else:
            os.environ[LEDGER_PASSWORD_ENV] = saved


@pytest.fixture
def postgres_ledger(postgres_server: LocalPostgres) -> Iterator[PostgresLocation]:
    """A fresh database for this test, as a roster names it (the password in a variable)."""
    name = f"prepush_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield PostgresLocation(url, LEDGER_PASSWORD_ENV)
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerLocation:
    """The ledger on each engine: an SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "bitacora" / "prepush.db"
    location: PostgresLocation = request.getfixturevalue("postgres_ledger")
    return location


def ledger_paths(location: LedgerLocation) -> dict[str, str]:
    """The roster's ``paths:`` for ``location``."""
    if isinstance(location, PostgresLocation):
        return {"ledger": location.url, "ledger_password_env": LEDGER_PASSWORD_ENV}
    return {"ledger": str(location)}


# --- S3 difusores: buckets on a local endpoint (moto's server mode, real HTTP) -------------


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    if not moto_available():
        pytest.skip("requiere moto[server] (extras de prueba); 'make test' lo instala")
    server = LocalS3(tmp_path_factory.mktemp("s3")).start()
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    yield server
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


BucketFactory = Callable[..., S3Endpoint]


@pytest.fixture
def s3_bucket(local_s3: LocalS3, request: pytest.FixtureRequest) -> BucketFactory:
    """A fresh bucket with the guide's policy, per call: ``s3_bucket("nombre")``."""
    made: list[str] = []
    test = request.node.name.lower().replace("_", "-")[:30].strip("-")

    def make(
        name: str = "s3", *, cloudfront: bool = False, main_json_min_ttl: int = 0, prefix: str = ""
    ) -> S3Endpoint:
        bucket = f"{test}-{len(made)}-{os.getpid() % 1000}".strip("-")[:63]
        local_s3.make_bucket(bucket, policy=guide_bucket_policy())
        made.append(bucket)
        distribution = (
            local_s3.make_distribution(bucket, main_json_min_ttl=main_json_min_ttl)
            if cloudfront
            else None
        )
        return S3Endpoint(
            name=name,
            bucket=bucket,
            endpoint_url=local_s3.endpoint,
            url=local_s3.site_url(bucket, prefix),
            local=local_s3,
            prefix=prefix,
            distribution_id=distribution,
        )

    return make


# --- rsync difusores (tests/support/rsync_servers.py): the daemon and sshd with rrsync -----


def _rsync_server(start: Callable[[], RsyncEndpoint]) -> RsyncEndpoint:
    if not rsync_servers_available():
        pytest.skip("requiere rsync (con rrsync), sshd y ser root; 'make test' los instala")
    return start()


@pytest.fixture(scope="session")
def _rsyncd_server() -> Iterator[RsyncEndpoint]:
    daemon = guide_daemon()
    try:
        yield _rsync_server(lambda: daemon_endpoint(daemon))
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def _rrsync_server(client_key: Path) -> Iterator[RsyncEndpoint]:
    daemon = guide_rrsync_sshd(client_key)
    try:
        yield _rsync_server(lambda: ssh_endpoint(daemon, client_key))
    finally:
        daemon.stop()


@pytest.fixture
def rsyncd(_rsyncd_server: RsyncEndpoint) -> RsyncEndpoint:
    """The guide's rsync daemon, its web root empty."""
    _rsyncd_server.empty()
    return _rsyncd_server


@pytest.fixture
def rrsync(_rrsync_server: RsyncEndpoint) -> RsyncEndpoint:
    """sshd with the guide's rrsync line, its web root empty."""
    _rrsync_server.empty()
    return _rrsync_server

"""The benchmark's difusores: real OpenSSH sshd, each with its web root on a tmpfs of its own;
and, for the rsync transport, real rsync daemons (the guide's rsyncd.conf), likewise.

On loopback by default. With ``rate_mbit`` each difusor gets its own network namespace and a
veth link shaped with tc tbf in both directions, as a difusor behind a 50 Mbit/s link.

The web roots are tmpfs so the benchmark measures the publishers, not this machine's disk:
its ext4 has no journal, and there creating files right after deleting many costs a scan per
file (ext4's recently_deleted), which slowed every tool alike.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prepush.sim.rsyncd import RsyncDaemon
from prepush.sim.sshd import SFTP_USER, SshdDifusor
from tests.support.rsync_servers import PASSWORD_ENV, RsyncEndpoint
from tests.support.servers import Endpoint

NETNS_PREFIX = "ppbench"
TMPFS_SIZE = "4g"


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@dataclass
class Link:
    """A network namespace joined to the host by a shaped veth pair."""

    index: int
    rate_mbit: float

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.index}"

    @property
    def host_side(self) -> str:
        return f"ppbh{self.index}"

    @property
    def difusor_side(self) -> str:
        return f"ppbd{self.index}"

    @property
    def difusor_address(self) -> str:
        return f"10.231.{self.index}.2"

    def create(self) -> None:
        rate = f"{self.rate_mbit:g}mbit"
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", self.host_side, "type", "veth", "peer", "name", self.difusor_side)
        sh("ip", "link", "set", self.difusor_side, "netns", self.netns)
        sh("ip", "addr", "add", f"10.231.{self.index}.1/30", "dev", self.host_side)
        sh("ip", "link", "set", self.host_side, "up")
        inside = ("ip", "netns", "exec", self.netns)
        sh(*inside, "ip", "addr", "add", f"{self.difusor_address}/30", "dev", self.difusor_side)
        sh(*inside, "ip", "link", "set", self.difusor_side, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        shape = ("root", "tbf", "rate", rate, "burst", "64kb", "latency", "100ms")
        sh("tc", "qdisc", "add", "dev", self.host_side, *shape)
        sh(*inside, "tc", "qdisc", "add", "dev", self.difusor_side, *shape)

    def delete(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            sh("ip", "netns", "del", self.netns)


def remove_leftover_links() -> None:
    """Namespaces of an earlier benchmark run that was killed (only ours, by name)."""
    listing = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NETNS_PREFIX):
            with contextlib.suppress(subprocess.CalledProcessError):
                sh("ip", "netns", "del", name)


class Fleet:
    """``count`` sshd difusores; stop() stops only what start() started."""

    def __init__(self, count: int, client_key: Path, *, rate_mbit: float | None = None) -> None:
        self.count = count
        self.client_key = client_key
        self.rate_mbit = rate_mbit
        self.daemons: list[SshdDifusor] = []
        self.links: list[Link] = []
        self.endpoints: list[Endpoint] = []

    def start(self) -> list[Endpoint]:
        if self.rate_mbit:
            remove_leftover_links()
        try:
            for i in range(1, self.count + 1):
                self.endpoints.append(self._start_one(i))
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _start_one(self, index: int) -> Endpoint:
        if self.rate_mbit:
            link = Link(index, self.rate_mbit)
            self.links.append(link)
            link.create()
            daemon = SshdDifusor(
                self.client_key,
                host=link.difusor_address,
                port=22,
                netns=link.netns,
                tmpfs_size=TMPFS_SIZE,
            )
        else:
            daemon = SshdDifusor(self.client_key, tmpfs_size=TMPFS_SIZE)
        self.daemons.append(daemon)
        info = daemon.start()
        return Endpoint(
            name=f"difusor{index:03d}",
            host=info.host,
            port=info.port,
            user=SFTP_USER,
            key_file=self.client_key,
            host_key_line=info.host_key_line,
            remote_dir=info.remote_dir,
            local_root=info.local_root,
        )

    def reset(self) -> None:
        """Empty every web root: the next push starts from nothing."""
        for endpoint in self.endpoints:
            endpoint.empty()

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        self.daemons.clear()
        for link in self.links:
            link.delete()
        self.links.clear()


class RsyncFleet:
    """``count`` rsync daemons with the guide's rsyncd.conf, each web root on a tmpfs of its
    own; stop() stops only what start() started."""

    def __init__(self, count: int, password: str = "bench-rsync") -> None:
        self.count = count
        self.password = password
        self.daemons: list[RsyncDaemon] = []
        self.endpoints: list[Endpoint] = []

    def start(self) -> list[Endpoint]:
        os.environ[PASSWORD_ENV] = self.password
        try:
            for i in range(1, self.count + 1):
                daemon = RsyncDaemon(password=self.password, tmpfs_size=TMPFS_SIZE)
                self.daemons.append(daemon)
                info = daemon.start()
                self.endpoints.append(
                    RsyncEndpoint(
                        name=f"rsync{i:03d}",
                        host=info.host,
                        port=info.port,
                        user=info.user,
                        key_file=Path("/nonexistent"),
                        host_key_line="",
                        remote_dir=".",
                        local_root=info.local_root,
                        module=info.module,
                        password_env=PASSWORD_ENV,
                    )
                )
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def url(self, endpoint: Endpoint) -> str:
        assert isinstance(endpoint, RsyncEndpoint)
        return f"rsync://{endpoint.user}@{endpoint.host}:{endpoint.port}/{endpoint.module}/"

    def reset(self) -> None:
        for endpoint in self.endpoints:
            endpoint.empty()

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        self.daemons.clear()

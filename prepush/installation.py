"""What is installed, against the lock prepush ships (``prepush/lock/runtime.txt``).

The lock's sha256 names the tested set: an auditor matches it to the commit whose
``prepush/lock/runtime.txt`` has that hash, and ``prepush -v --version`` says whether every
locked package is installed at its locked version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import metadata, resources

from packaging.markers import Marker
from packaging.utils import canonicalize_name

RUNTIME_LOCK = "runtime.txt"
# "name==version ; marker \" opens each entry; its --hash lines follow.
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]*))?"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None

    def applies(self) -> bool:
        return self.marker is None or Marker(self.marker).evaluate()


@dataclass(frozen=True)
class Difference:
    name: str
    locked: str
    installed: str | None


@dataclass(frozen=True)
class InstallationReport:
    lock_sha256: str
    checked: int
    differences: tuple[Difference, ...]

    @property
    def matches(self) -> bool:
        return not self.differences


def lock_text(name: str = RUNTIME_LOCK) -> bytes:
    return resources.files("prepush").joinpath("lock", name).read_bytes()


def parse_pins(text: str) -> list[Pin]:
    pins = []
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            marker = (match["marker"] or "").strip() or None
            pins.append(Pin(canonicalize_name(match["name"]), match["version"], marker))
    return pins


def installed_versions() -> dict[str, str]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }


def check_installation(name: str = RUNTIME_LOCK) -> InstallationReport:
    data = lock_text(name)
    installed = installed_versions()
    pins = [pin for pin in parse_pins(data.decode("utf-8")) if pin.applies()]
    differences = tuple(
        Difference(pin.name, pin.version, installed.get(pin.name))
        for pin in pins
        if installed.get(pin.name) != pin.version
    )
    return InstallationReport(hashlib.sha256(data).hexdigest(), len(pins), differences)

"""Fault scenarios for simulacros: which difusor fails how, in which cortes.

A fault is written as a short spec, on the command line (``--fault``) or in a YAML scenario
file. Cortes are numbered from 1 in the order of the night::

    DIFUSOR:KIND@CORTES[=VALUE]

    difusor03:reset@5=30%        the connection is reset after 30% of corte 5's bytes
    difusor07:down@8-11          refused connections in cortes 8 to 11 (suspension expected)
    difusor02:latency@*=150ms    150 ms added each way, every corte
    difusor04:bandwidth@3-6=2MB  capped at 2 MB/s in cortes 3 to 6
    difusor05:stall@4            the connection hangs in corte 4 (deadline)
    difusor06:auth@2,4           wrong credentials in cortes 2 and 4
    difusor08:full@6             disk full in corte 6
    difusor09:readonly@5         permission denied in corte 5
    difusor10:noposixrename@*    a server without posix-rename (non-atomic fallback)
    difusor01:random@*=0.05      random resets, 5% chance per chunk

The same in a YAML file (``--scenario FILE``)::

    faults:
      - "difusor03:reset@5=30%"
      - {difusor: difusor07, kind: down, cortes: "8-11"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

import yaml

from prepush.exceptions import ConfigError, describe_os_error

FaultKind = Literal[
    "reset",
    "random",
    "down",
    "latency",
    "bandwidth",
    "stall",
    "auth",
    "full",
    "readonly",
    "noposixrename",
]
KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
NETWORK_KINDS = ("reset", "random", "down", "latency", "bandwidth", "stall")
NEEDS_VALUE = ("reset", "random", "latency", "bandwidth")
SPEC = re.compile(
    r"^(?P<difusor>[a-z0-9][a-z0-9_-]*):(?P<kind>[a-z]+)@(?P<cortes>[^=]+)(=(?P<value>.+))?$"
)
UNITS = {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Fault:
    difusor: str
    kind: FaultKind
    cortes: frozenset[int] | None
    value: float | None = None

    def applies(self, corte_number: int) -> bool:
        return self.cortes is None or corte_number in self.cortes

    @property
    def fails_delivery(self) -> bool:
        """Whether the corte cannot reach the difusor at all while the fault lasts."""
        return self.kind in ("down", "stall", "auth", "full", "readonly") or (
            self.kind == "reset" and self.value is not None and self.value < 1
        )

    def describe(self) -> str:
        cortes = "todos los cortes" if self.cortes is None else "cortes " + _ranges(self.cortes)
        what = {
            "reset": "conexión cortada a mitad del envío",
            "random": "cortes de conexión al azar",
            "down": "conexiones rechazadas",
            "latency": "latencia añadida",
            "bandwidth": "ancho de banda limitado",
            "stall": "conexión colgada",
            "auth": "credenciales rechazadas",
            "full": "disco lleno",
            "readonly": "permiso denegado",
            "noposixrename": "servidor sin posix-rename",
        }[self.kind]
        return f"{self.difusor}: {what} ({cortes})"


def parse_fault(spec: str) -> Fault:
    match = SPEC.match(spec.strip())
    if not match:
        raise ConfigError(
            f"Falla mal escrita: {spec!r}. Use DIFUSOR:TIPO@CORTES[=VALOR], p. ej."
            " 'difusor03:reset@5=30%' o 'difusor07:down@8-11'."
        )
    kind = match["kind"]
    if kind not in KINDS:
        raise ConfigError(
            f"Tipo de falla desconocido {kind!r} en {spec!r}; tipos: {', '.join(KINDS)}."
        )
    value = _value(match["value"], spec) if match["value"] else None
    if kind in NEEDS_VALUE and value is None:
        raise ConfigError(f"La falla {spec!r} necesita un valor (=30%, =150ms, =2MB, =0.05).")
    return Fault(match["difusor"], cast(FaultKind, kind), _cortes(match["cortes"], spec), value)


def _cortes(text: str, spec: str) -> frozenset[int] | None:
    if text.strip() == "*":
        return None
    numbers: set[int] = set()
    for part in text.split(","):
        bounds = part.strip().split("-")
        try:
            low, high = int(bounds[0]), int(bounds[-1])
        except ValueError:
            raise ConfigError(f"Cortes mal escritos en {spec!r}: use 5, 8-11, 2,4 o *.") from None
        if low < 1 or high < low or len(bounds) > 2:
            raise ConfigError(f"Cortes mal escritos en {spec!r}: se numeran desde 1.")
        numbers.update(range(low, high + 1))
    return frozenset(numbers)


def _value(text: str, spec: str) -> float:
    text = text.strip().lower().removesuffix("/s")
    if text.endswith("%"):
        number, scale = text[:-1], 0.01
    else:
        unit = re.sub(r"^[0-9.]+", "", text)
        number, scale = text[: len(text) - len(unit)], UNITS.get(unit, -1.0)
        if scale < 0:
            raise ConfigError(f"Unidad desconocida en {spec!r}: use %, ms, s, KB, MB.")
    try:
        return float(number) * scale
    except ValueError:
        raise ConfigError(f"Valor mal escrito en {spec!r}.") from None


def load_scenario(path: Path) -> list[Fault]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(
            f"No se pudo leer el escenario {path}: {describe_os_error(exc)}."
        ) from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"El escenario {path} no es YAML en UTF-8 válido: {exc}") from None
    items = raw.get("faults", []) if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"El escenario {path} debe tener una lista 'faults:'.")
    faults = []
    for item in items:
        if isinstance(item, str):
            faults.append(parse_fault(item))
        elif isinstance(item, dict):
            spec = f"{item.get('difusor')}:{item.get('kind')}@{item.get('cortes', '*')}"
            if item.get("value") is not None:
                spec += f"={item['value']}"
            faults.append(parse_fault(spec))
        else:
            raise ConfigError(f"Entrada de falla no válida en {path}: {item!r}")
    return faults


def _ranges(numbers: frozenset[int]) -> str:
    ordered = sorted(numbers)
    parts: list[str] = []
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)

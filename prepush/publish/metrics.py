"""``publish --watch --metrics PUERTO``: what the night's publisher is doing, for Prometheus.

An HTTP endpoint (prometheus_client, on 127.0.0.1 unless an address is given) that both
machines of a pair expose: whether this one is on duty or waiting, the lease's epoch, and per
difusor what it serves (the corte and its time), the lag and latency of that corte, how many
cortes behind it is, its consecutive failures and suspension, all from the ledger (the
shared one, on a pair: the standby reports the night as well as the machine on duty); and
the deliveries this process made, by outcome.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from prepush.exceptions import ConfigError, LedgerUnavailableError, describe_os_error
from prepush.ops.status import current_status
from prepush.settings import Settings

if TYPE_CHECKING:
    from prepush.publish.lease import LeaseKeeper
    from prepush.publish.request import PublishReport

log = logging.getLogger("prepush")

DEFAULT_ADDRESS = "127.0.0.1"
# The ledger is read at most this often for the difusores' figures.
REFRESH_S = 2.0
ROLES = ("holder", "standby")


def parse_endpoint(text: str) -> tuple[str, int]:
    """``9464`` or ``ADDRESS:9464``; a ConfigError in Spanish otherwise."""
    address, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ConfigError(
            f"--metrics {text!r}: indique un puerto (p. ej. 9464) o DIRECCIÓN:PUERTO (p. ej."
            " 127.0.0.1:9464)."
        )
    return address.strip("[]") or DEFAULT_ADDRESS, number


class Monitor:
    """The metrics of one ``publish --watch``, served over HTTP while it runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None
        self._refreshed = 0.0
        per_difusor = ["difusor"]
        registry = self.registry
        self.role = Gauge(
            "prepush_publisher_role",
            "1 en el papel de esta máquina: holder (publica) o standby (en espera).",
            ["role"],
            registry=registry,
        )
        self.epoch = Gauge(
            "prepush_lease_epoch",
            "Época de la concesión con que publica (0 sin bitácora compartida).",
            registry=registry,
        )
        self.newest = Gauge(
            "prepush_newest_corte_timestamp_seconds",
            "Hora del corte más reciente construido en esta máquina (Unix).",
            registry=registry,
        )
        self.corte = Gauge(
            "prepush_difusor_corte",
            "Corte que sirve cada difusor, como número AAAAMMDDHHMM (0: ninguno).",
            per_difusor,
            registry=registry,
        )
        self.corte_time = Gauge(
            "prepush_difusor_corte_timestamp_seconds",
            "Hora del corte que sirve cada difusor (Unix).",
            per_difusor,
            registry=registry,
        )
        self.lag = Gauge(
            "prepush_difusor_lag_seconds",
            "Desfase del corte que sirve: su cambio de json/main.json menos la hora del corte.",
            per_difusor,
            registry=registry,
        )
        self.latency = Gauge(
            "prepush_difusor_latency_seconds",
            "Latencia del corte que sirve: su cambio menos el paquete listo.",
            per_difusor,
            registry=registry,
        )
        self.behind = Gauge(
            "prepush_difusor_cortes_behind",
            "Cortes construidos más recientes que el que sirve.",
            per_difusor,
            registry=registry,
        )
        self.failures = Gauge(
            "prepush_difusor_consecutive_failures",
            "Cortes fallidos seguidos.",
            per_difusor,
            registry=registry,
        )
        self.suspended = Gauge(
            "prepush_difusor_suspended",
            "1 si el difusor está suspendido.",
            per_difusor,
            registry=registry,
        )
        self.deliveries = Counter(
            "prepush_deliveries",
            "Entregas de este proceso, por difusor y resultado.",
            ["difusor", "outcome"],
            registry=registry,
        )

    @classmethod
    def serve(cls, settings: Settings, endpoint: str) -> Monitor:
        monitor = cls(settings)
        address, port = parse_endpoint(endpoint)
        try:
            monitor._server, _ = start_http_server(port, addr=address, registry=monitor.registry)
        except OSError as exc:
            raise ConfigError(
                f"No se pudieron publicar las métricas en {address}:{port}:"
                f" {describe_os_error(exc)}. Elija otro puerto con --metrics."
            ) from None
        log.info("Métricas de Prometheus en http://%s:%d/metrics", address, port)
        return monitor

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def observe_role(self, keeper: LeaseKeeper | None) -> None:
        """On duty (with the lease, or alone with an SQLite ledger) or waiting."""
        holding = keeper is None or keeper.holds
        for role in ROLES:
            self.role.labels(role=role).set(1 if (role == "holder") == holding else 0)
        self.epoch.set(0 if keeper is None or keeper.epoch is None else keeper.epoch)

    def observe(self, report: PublishReport) -> None:
        """The deliveries of one run of this process."""
        for delivery in report.deliveries:
            self.deliveries.labels(difusor=delivery.difusor, outcome=delivery.outcome).inc()
        self._refreshed = 0.0

    def refresh(self, keeper: LeaseKeeper | None) -> None:
        """The role now; the difusores' figures from the ledger, at most every REFRESH_S."""
        self.observe_role(keeper)
        if time.monotonic() - self._refreshed < REFRESH_S:
            return
        self._refreshed = time.monotonic()
        try:
            status = current_status(self.settings)
        except LedgerUnavailableError:
            return  # the keeper already says so; the last figures stay
        zone = self.settings.roster.election.zone
        if status.newest_corte is not None:
            self.newest.set(_corte_time(status.newest_corte, zone))
        for row in status.difusores:
            name = row.difusor
            served = row.serving_corte
            self.corte.labels(difusor=name).set(int(served.replace("_", "")) if served else 0)
            self.corte_time.labels(difusor=name).set(_corte_time(served, zone) if served else 0)
            if row.lag_s is not None:
                self.lag.labels(difusor=name).set(row.lag_s)
            if row.latency_s is not None:
                self.latency.labels(difusor=name).set(row.latency_s)
            self.behind.labels(difusor=name).set(row.behind)
            self.failures.labels(difusor=name).set(row.consecutive_failures)
            self.suspended.labels(difusor=name).set(1 if row.suspended else 0)


def _corte_time(corte: str, zone: ZoneInfo) -> float:
    return datetime.strptime(corte, "%Y%m%d_%H%M").replace(tzinfo=zone).timestamp()

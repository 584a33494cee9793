"""The delivery ledger (:mod:`prepush.ledger.core`): one interface, two engines.

SQLite for one machine (the default, a file in the working directory); PostgreSQL for a
publisher and its standby on two machines (``paths.ledger: postgresql://...``).
"""

from prepush.ledger.core import INTERRUPTED, Claim, DeliveryKind, Ledger
from prepush.ledger.location import LedgerLocation, PostgresLocation
from prepush.ledger.rows import (
    BUILD_EXPLAINED,
    BUILD_FORCED,
    BUILD_REFUSED,
    BUILD_WARNING,
    LEASE_LOST,
    LEASE_TAKEN,
    OK_OUTCOMES,
    PACKAGE_REFUSED,
    WORKER_LOST,
    AttemptRow,
    CheckRow,
    DeliveryResult,
    DeliveryRow,
    EventRow,
    HoldRow,
    LeaseRow,
    ObservationRow,
    PublisherRow,
    RunEventRow,
    RunRow,
    Serving,
    SuspensionRow,
)

__all__ = [
    "BUILD_EXPLAINED",
    "BUILD_FORCED",
    "BUILD_REFUSED",
    "BUILD_WARNING",
    "INTERRUPTED",
    "LEASE_LOST",
    "LEASE_TAKEN",
    "OK_OUTCOMES",
    "PACKAGE_REFUSED",
    "WORKER_LOST",
    "AttemptRow",
    "CheckRow",
    "Claim",
    "DeliveryKind",
    "DeliveryResult",
    "DeliveryRow",
    "EventRow",
    "HoldRow",
    "LeaseRow",
    "Ledger",
    "LedgerLocation",
    "ObservationRow",
    "PostgresLocation",
    "PublisherRow",
    "RunEventRow",
    "RunRow",
    "Serving",
    "SuspensionRow",
]

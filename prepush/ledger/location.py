"""Where the ledger lives: an SQLite file (one machine) or a PostgreSQL database (a pair).

``paths.ledger`` in the roster is a file path (SQLite, the default) or a ``postgresql://``
URL. The URL never carries the password: ``paths.ledger_password_env`` names the environment
variable that holds it, read when the ledger is opened. What prepush prints of a PostgreSQL
ledger is its URL without any secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from prepush.exceptions import ConfigError

POSTGRES_SCHEMES = ("postgresql", "postgres")
# Query parameters that would put a secret in the roster.
SECRET_PARAMETERS = ("password", "passfile", "sslpassword")


@dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL ledger: its URL (without password) and the variable with the password."""

    url: str
    password_env: str | None = None

    def __str__(self) -> str:
        return self.url

    def password(self) -> str | None:
        """The password from its variable; a ConfigError naming the variable if unset."""
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"La variable de entorno {self.password_env} (paths.ledger_password_env del"
                f" padrón) no está definida: es la contraseña de la bitácora {self.url}."
                " Expórtela antes de ejecutar prepush (con systemd, en el EnvironmentFile de la"
                " unidad)."
            )
        return value


LedgerLocation = Path | PostgresLocation


def is_postgres_url(text: str) -> bool:
    return "://" in text and text.split("://", 1)[0].lower() in POSTGRES_SCHEMES


def postgres_url_problem(text: str) -> str | None:
    """What is wrong with a ``postgresql://`` URL for the ledger, in Spanish; None if fine."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"el URL de PostgreSQL no se entiende ({exc}); p. ej. {EXAMPLE}"
    query = dict(parse_qsl(parts.query))
    secrets = [name for name in SECRET_PARAMETERS if name in query]
    problems = [
        (
            parts.password is not None,
            "no escriba la contraseña en el padrón: quítela del URL y ponga en"
            " paths.ledger_password_env el NOMBRE de la variable de entorno que la guarda",
        ),
        (
            bool(secrets),
            f"no escriba {', '.join(secrets)} en el URL del padrón: use"
            " paths.ledger_password_env con el nombre de una variable de entorno",
        ),
        (
            not parts.hostname and "host" not in query,
            f"falta el servidor en el URL de PostgreSQL; p. ej. {EXAMPLE}",
        ),
        (
            not parts.path.strip("/"),
            f"falta el nombre de la base de datos al final del URL; p. ej. {EXAMPLE}",
        ),
        (
            port is not None and not 1 <= port <= 65535,
            "el puerto del URL de PostgreSQL está fuera de rango (1 a 65535)",
        ),
    ]
    return next((what for wrong, what in problems if wrong), None)


EXAMPLE = "postgresql://prepush@bitacora.instituto.mx:5432/prep"


def other_scheme(text: str) -> str | None:
    """The scheme of a URL that is neither a file path nor PostgreSQL (``mysql://``)."""
    if "://" not in text or is_postgres_url(text):
        return None
    return text.split("://", 1)[0]

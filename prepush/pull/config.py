"""The pull configuration (``pull.yaml``): the difusor's own, small file.

Where the institute's origin is (an HTTPS URL with basic auth, or a bucket read with S3
credentials), the institute's public signing key (pinned here, never fetched), where the site
goes (a directory of this machine, or a bucket with an optional CloudFront distribution), and
how often to look. Validated like the roster (:mod:`prepush.settings`): every problem at once,
each as ``file:line:column: field: what``, in Spanish, and the secrets' variables, the key
file, the CA file and the destination directory checked before anything is fetched. Secrets
never live in the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncssh
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from prepush.exceptions import ConfigError, PackageError, PullConfigError, describe_os_error
from prepush.package import SIGNATURE_ALGORITHM, load_public_key, safe_relative_path
from prepush.settings import (
    ENV_NAME,
    S3Fields,
    known_zone,
    load_located_yaml,
    located_problems,
    location,
    read_utf8,
)

PULL_FILE = "pull.yaml"
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,199}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME.match(value):
        raise ValueError(
            "debe ser el NOMBRE de una variable de entorno (p. ej. PREP_ORIGEN_CLAVE), nunca"
            " el secreto mismo"
        )
    return value


class Origin(_Model):
    """The institute's origin: ``url`` (HTTPS, basic auth) or ``s3`` (a bucket)."""

    url: str | None = None
    user_env: str | None = None
    password_env: str | None = None
    # A CA certificate (PEM) to trust for the origin's TLS, besides the system's.
    ca_file: str | None = None
    s3: S3Fields | None = None

    @field_validator("user_env", "password_env")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return _env_name(value)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError(
                "el origen se lee por https:// (las credenciales y los datos no viajan en"
                " claro); para un bucket use el mapa s3:"
            )
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _one_kind(self) -> Origin:
        if (self.url is None) == (self.s3 is None):
            raise ValueError("indique url (HTTPS) o s3 (un bucket), uno de los dos")
        if self.s3 is not None:
            http_only = [f for f in ("user_env", "password_env", "ca_file") if getattr(self, f)]
            if http_only:
                raise ValueError(f"{', '.join(http_only)} sólo van con url (HTTPS)")
            if self.s3.cloudfront_distribution_id:
                raise ValueError(
                    "cloudfront_distribution_id no va en el origen: se lee del bucket mismo"
                )
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("indique user_env y password_env juntos (o ninguno)")
        return self


class Destination(_Model):
    """Where the site goes: ``directory`` (of this machine) or ``s3`` (a bucket)."""

    directory: str | None = None
    s3: S3Fields | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Destination:
        if (self.directory is None) == (self.s3 is None):
            raise ValueError("indique directory (un directorio) o s3 (un bucket), uno de los dos")
        return self


class Paths(_Model):
    packages: str = "paquetes"
    ledger: str = "prepush-pull.db"


class PullConfig(_Model):
    # The difusor's name (the same the institute gives it): in the ledger and the report.
    difusor: Slug
    # The institute's public signing key (Ed25519, OpenSSH): pinned, never fetched.
    public_key: str
    origin: Origin
    destination: Destination
    timezone: str = "America/Mexico_City"
    interval_seconds: float = Field(default=60, ge=0.05, le=3600)
    deadline_seconds: float | None = Field(default=None, gt=0)
    retention: int = Field(default=3, ge=2, le=100)
    extract: bool = False
    extract_dir: str = "datos/csv"
    files_in_flight: int = Field(default=16, ge=1, le=256)
    connect_timeout_seconds: float = Field(default=15, gt=0)
    request_timeout_seconds: float = Field(default=30, gt=0)
    lock_stale_seconds: float = Field(default=900, gt=0)
    paths: Paths = Paths()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("extract_dir")
    @classmethod
    def _relative(cls, value: str) -> str:
        value = value.strip("/") if not value.startswith("/") else value
        try:
            safe_relative_path(value)
        except PackageError:
            raise ValueError(
                "debe ser una ruta relativa dentro del sitio, sin '..' (p. ej. datos/csv)"
            ) from None
        if value.split("/")[0] == ".prepush":
            raise ValueError(".prepush/ es de prepush y no es público; elija otra ruta")
        return value


@dataclass(frozen=True)
class PullSettings:
    """A validated pull configuration and the directory its relative paths refer to."""

    config: PullConfig
    workdir: Path
    config_path: Path

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.workdir / p

    @property
    def name(self) -> str:
        return self.config.difusor

    @property
    def packages_dir(self) -> Path:
        return self.resolve(self.config.paths.packages)

    @property
    def ledger_path(self) -> Path:
        return self.resolve(self.config.paths.ledger)

    @property
    def public_key_path(self) -> Path:
        return self.resolve(self.config.public_key)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    @property
    def interval(self) -> float:
        return self.config.interval_seconds

    def deadline(self) -> timedelta:
        seconds = self.config.deadline_seconds or self.config.interval_seconds
        # A pass gets at least the time to connect and ask once.
        return timedelta(seconds=max(seconds, self.config.connect_timeout_seconds))

    def secret(self, env_name: str | None) -> str | None:
        if env_name is None:
            return None
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(
                f"La variable de entorno {env_name} no está definida. Expórtela antes de"
                " ejecutar prepush pull (la configuración sólo guarda su nombre)."
            )
        return value

    def s3_credentials(self, fields: S3Fields) -> dict[str, str]:
        if fields.access_key_id_env is None:
            return {}
        found = {
            "aws_access_key_id": self.secret(fields.access_key_id_env),
            "aws_secret_access_key": self.secret(fields.secret_access_key_env),
            "aws_session_token": self.secret(fields.session_token_env),
        }
        return {k: v for k, v in found.items() if v is not None}

    def trusted_key(self) -> asyncssh.SSHKey:
        return load_public_key(self.public_key_path)

    def origin_description(self) -> str:
        origin = self.config.origin
        if origin.url is not None:
            return origin.url
        assert origin.s3 is not None
        return f"s3://{origin.s3.bucket}/{origin.s3.prefix}".rstrip("/")

    def destination_description(self) -> str:
        destination = self.config.destination
        if destination.directory is not None:
            return str(self.resolve(destination.directory))
        assert destination.s3 is not None
        return f"s3://{destination.s3.bucket}/{destination.s3.prefix}".rstrip("/")


def load_pull_settings(path: Path, *, fetching: bool = True) -> PullSettings:
    """Load and validate the pull configuration; raises PullConfigError listing every
    problem. ``fetching``: the command reaches the origin and the destination, so the
    variables, files and directory the file names are checked too (``--report`` only reads
    the ledger, and needs none of them)."""
    if not path.exists():
        raise ConfigError(
            f"No se encontró la configuración de pull {path}. Escríbala como dice"
            " docs/difusores.md (Difusores que descargan) o indíquela con --config."
        )
    filename = str(path)
    text = read_utf8(path, "la configuración de pull", PullConfigError)
    data, marks = load_located_yaml(text, filename, PullConfigError)
    if not isinstance(data, dict):
        raise PullConfigError(
            filename, [f"{filename}:1:1: se esperaba un mapa con difusor, origin y destination"]
        )
    try:
        config = PullConfig.model_validate(data)
    except ValidationError as exc:
        problems = located_problems(
            exc, filename, marks, document=path.name, guide="docs/difusores.md"
        )
        raise PullConfigError(filename, problems) from None
    base = path.parent.resolve()
    settings = PullSettings(config, base, path.resolve())
    problems = [
        f"{location(filename, marks, loc)}: {'.'.join(str(p) for p in loc)}: {what}"
        for loc, what in (_external_problems(settings) if fetching else [])
    ]
    if problems:
        raise PullConfigError(filename, problems)
    return settings


def _external_problems(settings: PullSettings) -> list[tuple[tuple[str | int, ...], str]]:
    """What the file names outside itself: checked now, not at the first retry."""
    config = settings.config
    found: list[tuple[tuple[str | int, ...], str]] = []
    found += _key_problems(settings.public_key_path)
    origin = config.origin
    for field, name in (("user_env", origin.user_env), ("password_env", origin.password_env)):
        found += _env_problem(("origin", field), name)
    if origin.ca_file is not None:
        found += _ca_problems(settings.resolve(origin.ca_file))
    for where, fields in (("origin", origin.s3), ("destination", config.destination.s3)):
        if fields is None:
            continue
        for field in ("access_key_id_env", "secret_access_key_env", "session_token_env"):
            found += _env_problem((where, "s3", field), getattr(fields, field))
    if config.destination.directory is not None:
        directory = settings.resolve(config.destination.directory)
        if not directory.is_dir():
            found.append(
                (
                    ("destination", "directory"),
                    f"el directorio {directory} no existe (o no es un directorio). Créelo con"
                    " los permisos que su servidor web necesita para leerlo",
                )
            )
    return found


def _env_problem(
    loc: tuple[str | int, ...], name: str | None
) -> list[tuple[tuple[str | int, ...], str]]:
    if name is None or name in os.environ:
        return []
    return [
        (
            loc,
            f"la variable de entorno {name} no está definida. Expórtela antes de ejecutar"
            " prepush pull (con systemd, en el EnvironmentFile de la unidad)",
        )
    ]


def _key_problems(path: Path) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        key = load_public_key(path)
    except PackageError:
        why = (
            "no existe"
            if not path.exists()
            else "no es una llave pública OpenSSH legible (una línea 'ssh-ed25519 AAAA...')"
        )
        return [
            (
                ("public_key",),
                f"la llave pública del instituto {path} {why}. Pídala al instituto por un"
                " canal seguro y compare su huella",
            )
        ]
    if key.algorithm != SIGNATURE_ALGORITHM.encode():
        return [
            (
                ("public_key",),
                f"{path} es una llave {key.algorithm.decode()}; los paquetes del instituto se"
                " firman con Ed25519",
            )
        ]
    return []


def _ca_problems(path: Path) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        return [(("origin", "ca_file"), f"el certificado {path} no existe")]
    except ssl.SSLError as exc:
        return [(("origin", "ca_file"), f"{path} no es un certificado PEM legible ({exc})")]
    except OSError as exc:
        detail = describe_os_error(exc)
        return [(("origin", "ca_file"), f"{path} no es un certificado PEM legible ({detail})")]
    return []


def describe(settings: PullSettings) -> dict[str, Any]:
    """What the configuration says, for --json and the logs."""
    return {
        "difusor": settings.name,
        "origin": settings.origin_description(),
        "destination": settings.destination_description(),
        "interval_seconds": settings.interval,
        "retention": settings.config.retention,
        "extract": settings.config.extract,
    }

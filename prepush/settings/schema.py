"""The roster's model (``difusores.yaml``): the election, the paths, the publication's knobs,
the requirements and each difusor, as pydantic models.

The roster is validated once, on load (:mod:`prepush.settings.load`); each field's rule and its
Spanish message live beside the field. The structure of the roster is the institute's
configuration: any problem here stops every command at load (exit 2). Secrets never live in
the YAML: only the names of the variables that hold them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncssh
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from prepush.exceptions import ConfigError
from prepush.ledger.location import is_postgres_url, other_scheme, postgres_url_problem

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,199}$")]
Port = Annotated[int, Field(ge=1, le=65535)]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ELECTION_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
MAX_ROWLESS = 100_000
# What the site fills in an acta image URL pattern, from the acta's row (docs/roster.md).
ACTA_IMAGE_FIELDS = ("clave_acta", "clave_casilla", "sha256", "seccion", "eleccion")
ACTA_IMAGE_KEYS = ("clave_acta", "clave_casilla", "sha256")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
URL_FORBIDDEN = re.compile(r"[\s\"'<>\\`^|]")


def known_zone(value: str) -> str:
    """``value`` if it names an IANA time zone; a Spanish ValueError otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"zona horaria IANA desconocida: {value!r} (ejemplos: America/Mexico_City,"
            " America/Mazatlan)"
        ) from None
    return value


def check_acta_image_url(value: str) -> str:
    """``value`` if it is an https URL pattern the site can fill in for an acta; a Spanish
    ValueError otherwise."""
    fields = ", ".join("{" + f + "}" for f in ACTA_IMAGE_FIELDS)
    if not value.startswith("https://"):
        raise ValueError(
            "debe ser una dirección https:// del instituto (p. ej."
            " https://prep.ieec.org.mx/actas/{clave_acta}.jpg)"
        )
    if URL_FORBIDDEN.search(value):
        raise ValueError("lleva espacios o caracteres que no van en una dirección")
    host, _, rest = value[len("https://") :].partition("/")
    if not host or PLACEHOLDER.search(host) or "{" in host or "}" in host:
        raise ValueError("el servidor de la dirección debe ser fijo (sin {campos})")
    used = PLACEHOLDER.findall(rest)
    unknown = [name for name in used if name not in ACTA_IMAGE_FIELDS]
    if unknown:
        raise ValueError(f"campo desconocido {{{unknown[0]}}}; los campos son {fields}")
    if "{" in PLACEHOLDER.sub("", rest) or "}" in PLACEHOLDER.sub("", rest):
        raise ValueError("una llave { o } sin cerrar")
    if not any(name in ACTA_IMAGE_KEYS for name in used):
        raise ValueError(
            "debe nombrar el acta con {clave_acta}, {clave_casilla} o {sha256}: sin eso todas"
            " las actas apuntarían a la misma imagen"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Publication(_Model):
    """The official publication window, in the election's local time."""

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Publication:
        if self.end <= self.start:
            raise ValueError("el fin de la publicación debe ser posterior al inicio")
        return self


class Election(_Model):
    process: str = Field(min_length=1)
    timezone: str = "America/Mexico_City"
    publication: Publication
    corte_interval_minutes: int = Field(default=15, ge=1, le=240)
    retention: int = Field(default=3, ge=2, le=100)
    max_failed_cortes: int = Field(default=3, ge=1, le=100)
    signing_key: str | None = None
    notice_on_suspend: bool = False
    # Actas that ACTAS_ESPERADAS counts without a row in the CSV, per election code.
    rowless_actas: dict[str, int] = Field(default_factory=dict)
    # Where the institute hosts each acta's image, as a pattern the site fills in.
    acta_image_url: str | None = None

    @field_validator("acta_image_url")
    @classmethod
    def _acta_image_pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_acta_image_url(value)

    @field_validator("rowless_actas")
    @classmethod
    def _rowless_per_election(cls, value: dict[str, int]) -> dict[str, int]:
        for code, count in value.items():
            if not ELECTION_CODE.match(code):
                raise ValueError(
                    f"{code!r} no es un código de elección como los de los CSV del PREP (GOB,"
                    " DIP_LOC, AYUN, JUNTAS...): mayúsculas, dígitos y '_'"
                )
            if not 0 <= count <= MAX_ROWLESS:
                raise ValueError(
                    f"{code}: {count} actas sin fila está fuera de rango (0 a {MAX_ROWLESS})"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def corte_interval(self) -> timedelta:
        return timedelta(minutes=self.corte_interval_minutes)

    def window(self) -> tuple[datetime, datetime]:
        """The publication window as aware datetimes (naive values are local time)."""
        return (
            _localize(self.publication.start, self.zone),
            _localize(self.publication.end, self.zone),
        )


class Paths(_Model):
    packages: str = "paquetes"
    # An SQLite file (one machine), or a postgresql:// URL (a publisher and its standby).
    ledger: str = "prepush.db"
    # With a PostgreSQL ledger: the variable that holds its password (never the password).
    ledger_password_env: str | None = None

    @field_validator("ledger")
    @classmethod
    def _ledger_location(cls, value: str) -> str:
        scheme = other_scheme(value)
        if scheme is not None:
            raise ValueError(
                f"la bitácora es un archivo SQLite (p. ej. prepush.db) o un URL postgresql://;"
                f" {scheme}:// no se admite"
            )
        if is_postgres_url(value):
            problem = postgres_url_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("ledger_password_env")
    @classmethod
    def _password_env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(
                "debe ser el NOMBRE de una variable de entorno (p. ej. PREP_BITACORA_CLAVE),"
                " nunca la contraseña misma"
            )
        return value

    @model_validator(mode="after")
    def _password_env_with_postgres(self) -> Paths:
        if self.ledger_password_env is not None and not is_postgres_url(self.ledger):
            raise ValueError(
                "ledger_password_env sólo aplica a una bitácora PostgreSQL (ledger:"
                " postgresql://...); una bitácora SQLite es un archivo y no lleva contraseña"
            )
        return self


class PublishSettings(_Model):
    files_in_flight: int = Field(default=32, ge=1, le=512)
    # Processes that share the difusores of a run; one per core when not given.
    workers: int | None = Field(default=None, ge=1, le=64)
    deadline_seconds: float | None = Field(default=None, gt=0)
    connect_timeout_seconds: float = Field(default=15, gt=0)
    request_timeout_seconds: float = Field(default=30, gt=0)
    lock_stale_seconds: float = Field(default=900, gt=0)
    # With a shared (PostgreSQL) ledger: how long the standby waits on a silent publisher
    # before it takes over (the publisher's lease).
    failover_seconds: float = Field(default=30, ge=1, le=3600)
    run_lock_wait_seconds: float = Field(default=60, ge=0)
    entry_files: tuple[str, ...] = ("index.html", "json/main.json")
    compression: bool = False


class Requirements(_Model):
    min_free_gb: float = Field(default=20, ge=0)
    min_throughput_mb_s: float = Field(default=40, ge=0)
    probe_size_mb: float = Field(default=32, gt=0, le=1024)
    max_clock_offset_seconds: float = Field(default=5, gt=0)


TransportName = Literal["sftp", "rsync", "s3"]
# The transports that reach a host (host and user); all but the rsync daemon go over SSH.
HOST_TRANSPORTS = ("sftp", "rsync")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DISTRIBUTION_ID = re.compile(r"^[A-Z0-9]{6,32}$")


class S3Fields(_Model):
    """An S3 difusor (``transport: s3``): the bucket, where in it the site lives, how to
    reach it, and the names of the variables that hold its credentials (never the secrets)."""

    bucket: str
    # Key prefix of the site inside the bucket ('' = the bucket's root), without leading '/'.
    prefix: str = ""
    region: str = "us-east-1"
    # For S3-compatible stores (MinIO, a local endpoint): https://host:port
    endpoint_url: str | None = None
    # Both or neither: with neither, the standard AWS chain (AWS_* variables, ~/.aws, role).
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None
    # A profile of ~/.aws/config (the standard chain with that profile).
    profile: str | None = None
    # The CloudFront distribution in front of the bucket: invalidated after each flip.
    cloudfront_distribution_id: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not BUCKET_NAME.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} no es un nombre de bucket de S3 (3 a 63 caracteres: minúsculas,"
                " dígitos, '.' y '-')"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        parts = [p for p in value.split("/") if p]
        if value.startswith("/") or any(p in (".", "..") for p in parts):
            raise ValueError(
                "el prefijo va sin '/' inicial y sin '.' ni '..' (p. ej. 'prep2027' o '')"
            )
        return "/".join(parts)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("endpoint_url debe empezar con https:// (o http://)")
        return value

    @field_validator("access_key_id_env", "secret_access_key_env", "session_token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(
                "debe ser el NOMBRE de una variable de entorno (p. ej. PREP_S3_CLAVE), nunca"
                " la credencial misma"
            )
        return value

    @field_validator("cloudfront_distribution_id")
    @classmethod
    def _distribution(cls, value: str | None) -> str | None:
        if value is not None and not DISTRIBUTION_ID.match(value):
            raise ValueError(
                f"{value!r} no parece el id de una distribución de CloudFront (p. ej."
                " E2QWRUHAPOMQZL)"
            )
        return value

    @model_validator(mode="after")
    def _credentials_named_once(self) -> S3Fields:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError(
                "indique access_key_id_env y secret_access_key_env juntos (o ninguno, para la"
                " cadena estándar de AWS)"
            )
        if self.profile and self.access_key_id_env:
            raise ValueError("indique profile o las variables de las llaves, no ambos")
        if self.session_token_env and not self.access_key_id_env:
            raise ValueError("session_token_env va junto con access_key_id_env")
        return self

    @property
    def env_names(self) -> tuple[str, ...]:
        names = (self.access_key_id_env, self.secret_access_key_env, self.session_token_env)
        return tuple(n for n in names if n)


RSYNC_DAEMON_PORT = 873
MODULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RsyncFields(_Model):
    """How an rsync difusor is reached (``transport: rsync``): over SSH (the default), or
    its rsync daemon's ``module`` (``rsync://user@host:873/module/``)."""

    mode: Literal["ssh", "daemon"] = "ssh"
    module: str | None = None

    @field_validator("module")
    @classmethod
    def _module_name(cls, value: str | None) -> str | None:
        if value is not None and not MODULE_NAME.match(value):
            raise ValueError("debe ser el nombre del módulo de rsyncd.conf, sin '/' (p. ej. prep)")
        return value

    @model_validator(mode="after")
    def _module_for_daemon(self) -> RsyncFields:
        if self.mode == "daemon" and self.module is None:
            raise ValueError("con mode: daemon falta module, el módulo del rsyncd.conf del difusor")
        if self.mode == "ssh" and self.module is not None:
            raise ValueError("module sólo aplica a mode: daemon; por SSH el sitio es remote_dir")
        return self


class DifusorFields(_Model):
    """Every field a difusor can have; ``defaults:`` holds any subset of them."""

    # How prepush reaches the difusor (prepush/transports/): SFTP by default.
    transport: TransportName = "sftp"
    port: Port = 22
    user: str | None = None
    remote_dir: str = "."
    url: str | None = None
    key_file: str | None = None
    passphrase_env: str | None = None
    password_env: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    # Where an S3 difusor's site lives (transport: s3 only).
    s3: S3Fields | None = None
    # With transport: rsync, how (prepush/transports/rsync/).
    rsync: RsyncFields | None = None
    # An origin for difusores that pull (prepush pull): each corte's signed manifest is
    # published too, under firmas/ (docs/roster.md). Off by default: it costs bytes per corte.
    origin: bool = False

    @field_validator("passphrase_env", "password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(
                "debe ser el NOMBRE de una variable de entorno (p. ej. PREP_PASS_DIFUSOR01), "
                "nunca el secreto mismo"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("la url pública debe empezar con https:// (o http://)")
        return value

    @field_validator("host_key")
    @classmethod
    def _parse_host_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            asyncssh.import_public_key(value.strip())
        except (asyncssh.KeyImportError, ValueError):
            raise ValueError(
                "no es una línea de llave pública OpenSSH válida (p. ej. 'ssh-ed25519 AAAA...')"
            ) from None
        return value.strip()


class Difusor(DifusorFields):
    name: Slug
    # Required for the SSH transports; an S3 difusor has its s3: map instead.
    host: str | None = Field(default=None, min_length=1)
    user: str | None = Field(default=None, min_length=1)

    @property
    def login(self) -> tuple[str, str]:
        """Host and user of a difusor reached at a host (both checked on load for those)."""
        if self.host is None or self.user is None:
            raise ValueError(f"{self.name}: un difusor por {self.transport} sin host o user")
        return self.host, self.user

    @property
    def over_ssh(self) -> bool:
        """Reached over SSH: needs auth and a pinned host key."""
        return self.transport in HOST_TRANSPORTS and not self.rsync_daemon

    @model_validator(mode="after")
    def _has_address(self) -> Difusor:
        if self.transport in HOST_TRANSPORTS:
            missing = [f for f in ("host", "user") if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    f"falta {' y '.join(missing)}: un difusor por {self.transport} necesita"
                    " host y user"
                )
            if self.s3 is not None:
                raise ValueError("s3: sólo va en un difusor con transport: s3")
        elif self.s3 is None:
            raise ValueError(
                "un difusor con transport: s3 necesita el mapa s3: con al menos bucket (ver"
                " docs/roster.md)"
            )
        return self

    @property
    def rsync_daemon(self) -> bool:
        """Reached through an rsync daemon (no SSH: no host key, a password)."""
        return self.transport == "rsync" and self.rsync is not None and self.rsync.mode == "daemon"

    @model_validator(mode="before")
    @classmethod
    def _daemon_port(cls, data: Any) -> Any:
        """An rsync daemon listens on 873 unless the roster says otherwise."""
        if isinstance(data, dict) and "port" not in data and data.get("transport") == "rsync":
            rsync = data.get("rsync")
            if isinstance(rsync, dict) and rsync.get("mode") == "daemon":
                return {**data, "port": RSYNC_DAEMON_PORT}
        return data

    @model_validator(mode="after")
    def _rsync_only_with_rsync(self) -> Difusor:
        if self.rsync is not None and self.transport != "rsync":
            raise ValueError(
                f"rsync: sólo aplica con transport: rsync (este difusor usa {self.transport})"
            )
        return self

    @model_validator(mode="after")
    def _daemon_credentials(self) -> Difusor:
        if not self.rsync_daemon:
            return self
        if not self.password_env:
            raise ValueError(
                "el demonio rsync autentica con contraseña: indique password_env (la variable"
                " con el secreto de 'auth users' del módulo)"
            )
        ssh_only = [
            f for f in ("key_file", "passphrase_env", "host_key", "known_hosts") if getattr(self, f)
        ]
        if ssh_only:
            raise ValueError(
                f"{', '.join(ssh_only)} no aplica al demonio rsync (no hay SSH); quítelo o use"
                " rsync por SSH (mode: ssh)"
            )
        return self

    @model_validator(mode="after")
    def _has_auth(self) -> Difusor:
        if self.over_ssh and not self.key_file and not self.password_env:
            raise ValueError(
                "falta la autenticación: indique key_file (llave privada) o password_env"
            )
        return self

    @model_validator(mode="after")
    def _has_pinned_host_key(self, info: ValidationInfo) -> Difusor:
        learning = bool(info.context and info.context.get("learn_host_keys"))
        if not self.over_ssh:
            return self  # an S3 bucket or an rsync daemon: no SSH, no host key (docs/roster.md)
        if not learning and not self.host_key and not self.known_hosts:
            raise ValueError(
                "falta la llave de host fijada (host_key o known_hosts): prepush nunca confía"
                " en la primera conexión. Pídala al difusor o use"
                " 'prepush check --learn-host-keys'"
            )
        return self


class Roster(_Model):
    election: Election
    paths: Paths = Paths()
    publish: PublishSettings = PublishSettings()
    requirements: Requirements = Requirements()
    defaults: DifusorFields = DifusorFields()
    difusores: list[Difusor] = Field(min_length=1)

    def difusor(self, name: str) -> Difusor:
        for difusor in self.difusores:
            if difusor.name == name:
                return difusor
        known = ", ".join(d.name for d in self.difusores)
        raise ConfigError(f"No hay un difusor llamado {name!r} en el padrón (hay: {known}).")

    def select(self, names: tuple[str, ...] | list[str]) -> list[Difusor]:
        """The difusores named, in roster order; all of them when no name is given."""
        if not self.difusores:
            raise ConfigError(
                "El padrón no tiene difusores. Agréguelos en la lista difusores: (ver"
                " docs/roster.md)."
            )
        if not names:
            return list(self.difusores)
        wanted = {self.difusor(n).name for n in names}
        return [d for d in self.difusores if d.name in wanted]


def _localize(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment

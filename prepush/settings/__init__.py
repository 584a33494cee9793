"""The roster of difusores (``difusores.yaml``): election settings and the difusores.

The roster is validated once, on load, with pydantic. Every problem is reported at once, each
as ``file:line:column``, the field path and what is wrong, in Spanish. Secrets never live in
the YAML: passwords and key passphrases are read from environment variables named there.

The structure of the roster is the institute's configuration: any problem stops every
command at load (exit 2). What one difusor needs from this machine (its ``key_file`` and
``known_hosts`` files, each ``*_env`` variable) is that difusor's: checked, with the same
locations, only when a command is about to connect to it (:meth:`Settings.credential_problems`),
so a secret missing for one difusor fails that difusor and never the others, and one not
selected or suspended is not looked at. Commands that only read the ledger or build packages
never look at them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncssh
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from prepush.exceptions import ConfigError, RosterError, describe_os_error
from prepush.keys import generate_key_pair
from prepush.ledger.location import (
    LedgerLocation,
    PostgresLocation,
    is_postgres_url,
    other_scheme,
    postgres_url_problem,
)

ROSTER_FILE = "difusores.yaml"

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
    # With transport: rsync, how (prepush/transports/rsync.py).
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


@dataclass(frozen=True)
class Settings:
    """A validated roster and the working directory its relative paths refer to."""

    roster: Roster
    workdir: Path
    roster_path: Path
    # Where each value sits in the roster file, to locate a difusor's credential problems.
    labels: _Labels | None = field(default=None, compare=False, repr=False)

    def credential_problems(self, difusor: Difusor) -> list[str]:
        """What this machine lacks to connect to ``difusor`` (an unset ``*_env`` variable, a
        key or known_hosts file missing or unreadable), each as ``file:line:column: field:
        what``; empty when nothing is missing. Looked at only for a difusor about to be
        contacted."""
        index = self.roster.difusores.index(difusor)
        labels = self.labels or _Labels(str(self.roster_path), {}, {}, {})
        return _difusor_credential_problems(difusor, index, labels, self.roster_path.parent)

    @property
    def packages_dir(self) -> Path:
        return self.resolve(self.roster.paths.packages)

    @property
    def ledger_location(self) -> LedgerLocation:
        """The SQLite file, or the PostgreSQL database the pair of publishers shares."""
        paths = self.roster.paths
        if is_postgres_url(paths.ledger):
            return PostgresLocation(paths.ledger, paths.ledger_password_env)
        return self.resolve(paths.ledger)

    @property
    def signing_key_path(self) -> Path | None:
        key = self.roster.election.signing_key
        return self.resolve(key) if key else None

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.workdir / p

    def deadline(self) -> timedelta:
        seconds = self.roster.publish.deadline_seconds
        if seconds is None:
            return self.roster.election.corte_interval
        return timedelta(seconds=seconds)

    def secret(self, difusor: Difusor, env_name: str | None) -> str | None:
        if env_name is None:
            return None
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(
                f"[{difusor.name}] La variable de entorno {env_name} no está definida. "
                f"Expórtela antes de ejecutar prepush (el padrón sólo guarda su nombre)."
            )
        return value


@dataclass(frozen=True)
class CreatedRoster:
    roster: Path
    packages_dir: Path
    signing_key: Path
    signing_key_created: bool


def create_roster(target: Path) -> CreatedRoster:
    """Write the commented example roster, the signing key it names and ``paquetes/``.

    An existing roster is never overwritten, nor an existing key: ``init`` then ``build``
    works without another step.
    """
    if target.exists():
        raise ConfigError(f"{target} ya existe; prepush init no lo sobrescribe.")
    text = (resources.files("prepush") / "templates" / ROSTER_FILE).read_text(encoding="utf-8")
    template = yaml.safe_load(text)
    base = target.parent
    key = base / str(template["election"]["signing_key"])
    created = not key.exists()
    if created:
        generate_key_pair(key, comment="prepush-firma")
    target.write_text(text, encoding="utf-8")
    packages = base / str(template.get("paths", {}).get("packages", "paquetes"))
    packages.mkdir(parents=True, exist_ok=True)
    return CreatedRoster(target, packages, key, created)


def _localize(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


# --- loading with locations -------------------------------------------------------------


def load_settings(
    workdir: Path, roster_path: Path | None = None, *, learn_host_keys: bool = False
) -> Settings:
    """Load and validate the roster; raises RosterError listing every problem of its
    structure. A difusor's credentials are checked apart (:meth:`Settings.credential_problems`)."""
    path = roster_path or workdir / ROSTER_FILE
    if not path.exists():
        raise ConfigError(
            f"No se encontró el padrón de difusores {path}. Créelo con 'prepush init' "
            "o indique el directorio de trabajo con -C DIR."
        )
    base = path.parent.resolve()
    roster, labels = _parse_located(_read_utf8(path), str(path), learn_host_keys)
    missing = _institute_credential_problems(roster, labels)
    if missing:
        raise RosterError(str(path), missing)
    return Settings(roster=roster, workdir=base, roster_path=path.resolve(), labels=labels)


def _institute_credential_problems(roster: Roster, labels: _Labels) -> list[str]:
    """What every command needs of this machine's environment, the institute's own: the
    password of a shared ledger. A difusor's secrets are that difusor's
    (:meth:`Settings.credential_problems`)."""
    name = roster.paths.ledger_password_env
    if name is None or name in os.environ:
        return []
    return [
        labels.problem(
            ("paths", "ledger_password_env"),
            f"la variable de entorno {name} (la contraseña de la bitácora) no está definida."
            " Expórtela antes de ejecutar prepush (con systemd, en el EnvironmentFile de la"
            " unidad); no se intentó ninguna conexión",
        )
    ]


def _read_utf8(path: Path) -> str:
    return read_utf8(path, "el padrón", RosterError)


def parse_roster(text: str, filename: str, *, learn_host_keys: bool = False) -> Roster:
    return _parse_located(text, filename, learn_host_keys)[0]


def _parse_located(text: str, filename: str, learn_host_keys: bool) -> tuple[Roster, _Labels]:
    data, marks = load_located_yaml(text, filename, RosterError)
    if not isinstance(data, dict):
        raise RosterError(
            filename, [f"{filename}:1:1: se esperaba un mapa con election y difusores"]
        )
    return _validate(data, marks, filename, learn_host_keys)


Marks = dict[tuple[str | int, ...], yaml.Mark]


def load_located_yaml(
    text: str, filename: str, error: Callable[[str, list[str]], ConfigError]
) -> tuple[Any, Marks]:
    """A YAML document and where each of its values sits (for file:line:column errors).
    A syntax error, an empty file or a repeated key raises ``error(filename, problems)``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise error(filename, [f"{filename}:1:1: el archivo está vacío"])
        marks: Marks = {}
        duplicates: list[str] = []
        _collect_marks(node, (), marks, duplicates, filename)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise error(filename, [f"{where}: YAML inválido: {yaml_problem(exc.problem)}"]) from None
    finally:
        loader.dispose()
    if duplicates:
        raise error(filename, duplicates)
    return data, marks


# PyYAML's names for what it expected or found, as a person editing the file says them.
_YAML_TOKENS = {
    "<block end>": "el fin del bloque (una línea con menos sangría)",
    "<block mapping start>": "una clave con otra sangría",
    "<block sequence start>": "una lista con otra sangría",
    "<stream end>": "el fin del archivo",
    "<document start>": "'---'",
    "<scalar>": "otro valor",
    "?": "una clave",
    "-": "un elemento de lista ('-')",
}
_YAML_PROBLEMS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"mapping values are not allowed here"),
        lambda _: (
            "no se permite ':' aquí: un valor que lleva ':' va entre comillas, y cada"
            " 'clave: valor' en su propia línea"
        ),
    ),
    (
        re.compile(r"expected ',' or '([\]}])', but got"),
        lambda m: f"falta cerrar con '{m[1]}' (o separar con ',') la lista o el mapa abierto",
    ),
    (
        re.compile(r"expected (.+), but (?:found|got) (.+)"),
        lambda m: (
            f"se esperaba {_yaml_token(m[1])} y se encontró {_yaml_token(m[2])}: revise"
            " la sangría (con espacios) de esta línea y de la anterior"
        ),
    ),
    (
        re.compile(r"found character '\\t' that cannot start any token"),
        lambda _: "un tabulador no sirve de sangría en YAML: use espacios",
    ),
    (
        re.compile(r"found character '(.+)' that cannot start any token"),
        lambda m: f"un valor no puede empezar con '{m[1]}': póngalo entre comillas",
    ),
    (
        re.compile(r"found unexpected end of stream"),
        lambda _: "el archivo termina con unas comillas abiertas: ciérrelas",
    ),
    (
        re.compile(r"found undefined alias '(.+)'"),
        lambda m: f"el alias *{m[1]} no está definido (falta su ancla &{m[1]})",
    ),
    (
        re.compile(r"found unknown escape character '(.+)'"),
        lambda m: (
            f"'\\{m[1]}' no es una secuencia válida entre comillas dobles: use comillas"
            " simples o escriba '\\\\'"
        ),
    ),
    (
        re.compile(r"could not find expected ':'"),
        lambda _: "falta ':' entre la clave y su valor",
    ),
    (
        re.compile(r"found incompatible YAML document"),
        lambda _: "versión de YAML no admitida: quite la línea %YAML",
    ),
]


def yaml_problem(problem: str | None) -> str:
    """A PyYAML syntax problem in Spanish (its location is said apart)."""
    for pattern, say in _YAML_PROBLEMS:
        found = pattern.search(problem or "")
        if found is not None:
            return say(found)
    return (
        "el texto no es YAML válido en este punto: revise la sangría (con espacios), los ':' y"
        " las comillas"
    )


def _yaml_token(text: str) -> str:
    """``<block end>``, ``'?'``, ``',' or ']'`` as words."""
    parts = [p.strip() for p in text.split(" or ")]
    return " o ".join(_YAML_TOKENS.get(p.strip("'"), p) for p in parts)


def located_problems(
    exc: ValidationError,
    filename: str,
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    *,
    document: str,
    guide: str,
) -> list[str]:
    """Each problem of a pydantic validation as ``file:line:column: field: what``, in Spanish.
    ``document`` is how a message names the file (``pull.yaml``), ``guide`` the page that
    lists its fields."""
    labels = _Labels(filename, marks, {}, {}, document, guide)
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        problem = _describe(error, labels)
        if problem not in problems:
            problems.append(problem)
    return problems


def location(
    filename: str, marks: Mapping[tuple[str | int, ...], yaml.Mark], loc: tuple[str | int, ...]
) -> str:
    """``file:line:column`` of the value at ``loc`` (or of its nearest located parent)."""
    return _where(filename, _mark_for(loc, "", marks, {}))


def read_utf8(path: Path, what: str, error: Callable[[str, list[str]], ConfigError]) -> str:
    """A configuration file's text; one not in UTF-8 is refused with the line and column of
    its first invalid byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"No se pudo leer {what} {path}: {describe_os_error(exc)}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise error(
            str(path),
            [
                f"{path}:{line}:{column}: el archivo no está en UTF-8"
                f" (byte 0x{data[exc.start]:02x}); guárdelo como UTF-8 (p. ej. 'iconv -f"
                " latin1 -t utf-8')"
            ],
        ) from None


def _collect_marks(
    node: yaml.Node,
    path: tuple[str | int, ...],
    marks: dict[tuple[str | int, ...], yaml.Mark],
    duplicates: list[str],
    filename: str,
) -> None:
    marks[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append(
                    f"{_where(filename, key_node.start_mark)}: clave repetida {key!r}"
                )
            seen.add(key)
            marks[(*path, key, "__key__")] = key_node.start_mark
            _collect_marks(value_node, (*path, key), marks, duplicates, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, (*path, index), marks, duplicates, filename)


def _validate(
    data: dict[str, Any],
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    filename: str,
    learn_host_keys: bool,
) -> tuple[Roster, _Labels]:
    merged, origin = _apply_defaults(data)
    labels = _Labels(filename, marks, origin, _names(merged))
    problems = _duplicate_names(merged, labels)
    try:
        roster = Roster.model_validate(merged, context={"learn_host_keys": learn_host_keys})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problem = _describe(error, labels)
            if problem not in problems:
                problems.append(problem)
    if problems:
        raise RosterError(filename, problems)
    return roster, labels


def _names(data: dict[str, Any]) -> dict[int, str]:
    difusores = data.get("difusores")
    entries = difusores if isinstance(difusores, list) else []
    return {
        index: entry["name"]
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]
    }


@dataclass(frozen=True)
class _Labels:
    """Where a value sits in the file, and how to name its field for a person."""

    filename: str
    marks: Mapping[tuple[str | int, ...], yaml.Mark]
    origin: Mapping[tuple[str | int, ...], tuple[str | int, ...]]
    names: Mapping[int, str]
    # How a message names the file (an operator edits the file it names) and the guide.
    document: str = "el padrón"
    guide: str = "docs/roster.md"

    def where(self, loc: tuple[str | int, ...], kind: str = "") -> str:
        return _where(self.filename, _mark_for(loc, kind, self.marks, self.origin))

    def field(self, loc: tuple[str | int, ...]) -> str:
        """``difusores[universidad02].port`` rather than ``difusores.1.port``."""
        source = self.origin.get(loc, loc)
        parts: list[str] = []
        for position, part in enumerate(source):
            if position == 1 and source[0] == "difusores" and isinstance(part, int):
                parts[-1] += f"[{self.names.get(part, f'#{part + 1}')}]"
            else:
                parts.append(str(part))
        return ".".join(parts) or "(raíz)"

    def problem(self, loc: tuple[str | int, ...], what: str, kind: str = "") -> str:
        return f"{self.where(loc, kind)}: {self.field(loc)}: {what}"


def _duplicate_names(data: dict[str, Any], labels: _Labels) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    difusores = data.get("difusores")
    for index, entry in enumerate(difusores if isinstance(difusores, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    labels.problem(
                        ("difusores", index, "name"),
                        f"el nombre {name!r} está repetido; cada difusor necesita un nombre único",
                    )
                )
            seen.add(name)
    return problems


def _difusor_credential_problems(
    difusor: Difusor, index: int, labels: _Labels, base: Path
) -> list[str]:
    """What this machine lacks to connect to one difusor, each located in the roster."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    # SSH's fields may reach an S3 difusor through defaults: only its own are checked.
    env_fields: list[tuple[str | int, ...]] = (
        [("password_env",), ("passphrase_env",)] if difusor.transport in HOST_TRANSPORTS else []
    )
    if difusor.s3 is not None:
        env_fields += [
            ("s3", f) for f in ("access_key_id_env", "secret_access_key_env", "session_token_env")
        ]
    for env_field in env_fields:
        name = _field_value(difusor, env_field)
        if name is not None and name not in os.environ:
            found.append(
                (
                    env_field,
                    f"la variable de entorno {name} no está definida en esta máquina. Expórtela"
                    " antes de ejecutar prepush (con systemd, en el EnvironmentFile de la"
                    " unidad); no se intentó la conexión con este difusor",
                )
            )
    if difusor.key_file and difusor.over_ssh:
        problem = _key_problem(_resolve(base, difusor.key_file), difusor.passphrase_env)
        if problem is not None:
            found.append((("key_file",), problem))
    if difusor.known_hosts and difusor.over_ssh:
        problem = _known_hosts_problem(_resolve(base, difusor.known_hosts))
        if problem is not None:
            found.append((("known_hosts",), problem))
    problems: list[str] = []
    for field_path, what in found:
        line = labels.problem(("difusores", index, *field_path), what)
        if line not in problems:
            problems.append(line)
    return problems


def _field_value(difusor: Difusor, path: tuple[str | int, ...]) -> str | None:
    """The value at ``path`` (``("s3", "access_key_id_env")``), or None where it is absent."""
    value: object = difusor
    for part in path:
        value = getattr(value, str(part), None)
    return value if isinstance(value, str) else None


def _resolve(base: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def _key_problem(path: Path, passphrase_env: str | None) -> str | None:
    if not path.is_file():
        return (
            f"la llave privada {path} no existe. Créela con 'prepush keygen --out {path}' o"
            " corrija la ruta; no se intentó la conexión con este difusor"
        )
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    try:
        asyncssh.read_private_key(path, passphrase)
    except OSError as exc:
        return f"no se pudo leer la llave privada {path}: {describe_os_error(exc)}"
    except (asyncssh.KeyImportError, ValueError) as exc:
        text = str(exc).lower()
        if "passphrase" in text and passphrase is None:
            return (
                f"la llave privada {path} está cifrada: indique passphrase_env con la variable"
                " que guarda su frase de paso"
            )
        if "passphrase" in text:
            return f"la frase de paso de {passphrase_env} no abre la llave privada {path}"
        return f"{path} no es una llave privada OpenSSH legible ({exc})"
    return None


def _known_hosts_problem(path: Path) -> str | None:
    if not path.is_file():
        return (
            f"el archivo known_hosts {path} no existe. Créelo con la llave de host que le"
            " entregó el difusor (o use host_key); no se intentó la conexión con este difusor"
        )
    try:
        asyncssh.read_known_hosts(str(path))
    except OSError as exc:
        return f"no se pudo leer {path}: {describe_os_error(exc)}"
    except (asyncssh.KeyImportError, ValueError) as exc:
        return f"{path} no es un archivo known_hosts válido ({exc})"
    return None


def _apply_defaults(
    data: dict[str, Any],
) -> tuple[dict[str, Any], dict[tuple[str | int, ...], tuple[str | int, ...]]]:
    """Merge ``defaults:`` into every difusor, remembering where each value came from."""
    defaults = data.get("defaults") or {}
    difusores = data.get("difusores")
    origin: dict[tuple[str | int, ...], tuple[str | int, ...]] = {}
    if not isinstance(defaults, dict) or not isinstance(difusores, list):
        return data, origin
    merged_list: list[Any] = []
    for index, entry in enumerate(difusores):
        if not isinstance(entry, dict):
            merged_list.append(entry)
            continue
        merged = dict(entry)
        not_here = _SSH_ONLY if _rsync_daemon_entry(entry, defaults) else ()
        for key, value in defaults.items():
            if key not in merged and key not in not_here:
                merged[key] = value
                origin[("difusores", index, key)] = ("defaults", key)
        merged_list.append(merged)
    return {**data, "difusores": merged_list}, origin


# What an rsync daemon difusor does not take from defaults: it has no SSH (and its own port).
_SSH_ONLY = ("port", "key_file", "passphrase_env", "host_key", "known_hosts")


def _rsync_daemon_entry(entry: dict[str, Any], defaults: dict[str, Any]) -> bool:
    transport = entry.get("transport", defaults.get("transport"))
    rsync = entry.get("rsync", defaults.get("rsync"))
    return transport == "rsync" and isinstance(rsync, dict) and rsync.get("mode") == "daemon"


_MESSAGES = {
    "missing": "falta este campo obligatorio",
    "int_parsing": "debe ser un número entero",
    "int_type": "debe ser un número entero",
    "int_from_float": "debe ser un número entero",
    "float_parsing": "debe ser un número",
    "float_type": "debe ser un número",
    "bool_parsing": "debe ser true o false",
    "bool_type": "debe ser true o false",
    "string_type": "debe ser texto",
    "list_type": "debe ser una lista",
    "dict_type": "debe ser un mapa (clave: valor)",
    "model_type": "debe ser un mapa (clave: valor)",
    "datetime_parsing": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "datetime_from_date_parsing": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "datetime_type": "debe ser una fecha y hora como 2024-06-02T20:00:00",
    "string_pattern_mismatch": "debe ser un nombre corto en minúsculas, dígitos, '-' o '_'"
    " (p. ej. difusor01)",
    "string_too_short": "no puede estar vacío",
    "too_short": "no puede estar vacía",
}


def _describe(error: Mapping[str, Any], labels: _Labels) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = str(error["type"])
    if kind.startswith(("greater", "less")):
        ctx = error.get("ctx") or {}
        bound = next(iter(ctx.values()), "")
        what = ("debe ser al menos " if kind.startswith("greater") else "debe ser a lo más ") + str(
            bound
        )
    elif kind == "value_error":
        what = str(error["msg"]).removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        what = _unknown_field(loc, labels)
    else:
        what = _MESSAGES.get(kind, str(error["msg"]))
    if loc == ("difusores",) and kind in ("too_short", "missing"):
        what = "el padrón no tiene difusores: agregue al menos uno (ver docs/roster.md)"
    return labels.problem(loc, what, kind)


def _unknown_field(loc: tuple[str | int, ...], labels: _Labels) -> str:
    """An unknown field; a secret written where only its variable's name may go, as such."""
    if not loc or loc[-1] not in ("password", "passphrase"):
        return (
            f"campo desconocido (revise la ortografía; los campos válidos están en {labels.guide})"
        )
    if "s3" in loc:
        hint = "access_key_id_env y secret_access_key_env con los nombres de variables de entorno"
    else:
        hint = f"{loc[-1]}_env con el nombre de una variable de entorno"
    return f"no escriba secretos en {labels.document}: use {hint}"


def _mark_for(
    loc: tuple[str | int, ...],
    kind: str,
    marks: Mapping[tuple[str | int, ...], yaml.Mark],
    origin: Mapping[tuple[str | int, ...], tuple[str | int, ...]],
) -> yaml.Mark | None:
    source = origin.get(loc, loc)
    if kind == "extra_forbidden" and (*source, "__key__") in marks:
        return marks[(*source, "__key__")]
    for end in range(len(source), -1, -1):
        mark = marks.get(source[:end])
        if mark is not None:
            return mark
    return None


def _where(filename: str, mark: yaml.Mark | None) -> str:
    if mark is None:
        return filename
    return f"{filename}:{mark.line + 1}:{mark.column + 1}"


def pin_host_key(path: Path, name: str, key_line: str) -> None:
    """Write ``host_key`` for difusor ``name`` into the roster, keeping its comments."""
    text = path.read_text(encoding="utf-8")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    entry = _difusor_node(root, name)
    if entry is None:
        raise ConfigError(f"No hay un difusor llamado {name!r} en {path}.")
    lines = text.splitlines(keepends=True)
    quoted = '"' + key_line.strip().replace('"', "") + '"'
    for key_node, value_node in entry.value:
        if key_node.value == "host_key":
            line = lines[value_node.start_mark.line]
            start, end = value_node.start_mark.column, value_node.end_mark.column
            lines[value_node.start_mark.line] = line[:start] + quoted + line[end:]
            break
    else:
        first_key = entry.value[0][0].start_mark
        indent = " " * first_key.column
        after = max(k.start_mark.line for k, _ in entry.value if k.value in ("name", "host"))
        lines.insert(after + 1, f"{indent}host_key: {quoted}\n")
    path.write_text("".join(lines), encoding="utf-8")


def _difusor_node(root: yaml.Node | None, name: str) -> yaml.MappingNode | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, value_node in root.value:
        if key_node.value == "difusores" and isinstance(value_node, yaml.SequenceNode):
            for item in value_node.value:
                if isinstance(item, yaml.MappingNode) and any(
                    k.value == "name" and v.value == name for k, v in item.value
                ):
                    return item
    return None

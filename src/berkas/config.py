"""Settings from ``BERKAS_*`` environment variables (and an optional .env file), checked at start.

Defaults give the embedded mode: SQLite, blobs and keys under ``BERKAS_DATA_DIR``. A
``BERKAS_*`` name that no setting answers to stops start-up, naming the closest one
(config_names.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from berkas.config_names import (
    CONFIG_FILE_VARIABLE,
    PREFIX,
    explain_invalid,
    known_categories,
    unknown_names,
)
from berkas.core.egress import IPNetwork, check_ports, parse_networks
from berkas.storage_url import Storage, parse_storage, s3_bucket_and_prefix

# Kept beyond twice the timestamp window: the clocks of the node that wrote a Request-Id
# record and the node that purges it may disagree by this much.
REPLAY_MARGIN_SECONDS = 60


class Settings(BaseSettings):
    """Every knob an operator can turn; see the configuration table in README.md.

    Build it with ``load_settings``, which also refuses names that match no field.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_file=None,
        # Nothing is silently ignored: a misspelt secret on a fleet is an outage, not a
        # warning. load_settings refuses unknown names with a suggestion first; "forbid"
        # also catches an unknown keyword passed by code.
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(default=Path("berkas-data"))
    database_url: str | None = None
    storage_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # /metrics on a listener of its own, for the monitoring network only: the port
    # (default: BERKAS_PORT + 1000), or "main" to serve it on the partner port as well.
    metrics_host: str = "127.0.0.1"
    metrics_port: str = Field(default="", pattern=r"^(|main|[0-9]{1,5})$")
    public_url: str | None = None
    env: str = Field(default="sandbox", pattern=r"^[a-z0-9-]{1,32}$")
    key_prefix: str = Field(default="berkas", pattern=r"^[a-z0-9-]{1,64}$")
    # A number 0-9999 (part of every file id), or "auto": the lowest one no live node
    # leases (docs/design.md 5.6).
    node_id: Annotated[int, Field(ge=0, le=9999)] | Literal["auto"] = 1
    # Processes serving one node's socket (docs/design.md 5.6): each a worker with a node
    # number of its own (BERKAS_NODE_ID + k, or auto) and its metrics on
    # BERKAS_METRICS_PORT + k. 1: one process, no supervisor.
    workers: int = Field(default=1, ge=1, le=64)
    catalogue_file: Path | None = None

    # Object storage, for BERKAS_STORAGE_URL=s3://bucket/prefix; credentials come from the
    # standard AWS chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles, roles).
    s3_endpoint_url: str | None = None
    s3_region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    s3_addressing_style: Literal["path", "virtual", "auto"] = "auto"
    # Where partners reach the store when it differs from where nodes do (presigned links
    # are signed for this host, so they work from outside).
    s3_public_endpoint_url: str | None = None

    # Signed requests (docs/design.md 2.1).
    timestamp_window_seconds: int = Field(default=300, ge=1, le=86_400)
    # How long a secret replaced by `berkas clients rotate-secret` still verifies (0: not
    # at all); at most 30 days (services.clients.MAX_GRACE says why).
    secret_grace_hours: int = Field(default=24, ge=0, le=720)
    # How long a signed Request-Id and its (sealed) answer are kept: unset, twice the
    # timestamp window plus REPLAY_MARGIN_SECONDS, the longest a replay can still be
    # accepted; a shorter value is refused. Upload Idempotency-Keys (only a file id each)
    # are kept for BERKAS_IDEMPOTENCY_RETENTION_HOURS.
    replay_retention_seconds: int | None = Field(default=None, ge=1)
    idempotency_retention_hours: int = Field(default=48, ge=1)
    housekeeping_interval_seconds: int = Field(default=3600, ge=1)
    # How long a document is kept (docs/design.md 6.4): days, fractions allowed; 0 keeps it until
    # deleted. Per category: "DOCUMENT=30,LOGO=0" overrides the default for those.
    retention_days: float = Field(default=365, ge=0, allow_inf_nan=False)
    retention_days_by_category: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    # Tokens (docs/design.md 2.2).
    token_default_minutes: int = Field(default=5, ge=1)
    token_max_minutes: int = Field(default=1440, ge=1)
    rsa_key_bits: int = Field(default=2048, ge=2048)

    # The master key sealing every secret the database holds (adapters/sealing.py): 32
    # random bytes in base64, given directly or as a file (first line current, later lines
    # older keys still opened). Neither: <data dir>/master-key, created on first start.
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    # Older master keys, comma-separated, still opened (not used to seal) until
    # `berkas secrets rekey` has resealed everything under the current one.
    master_key_previous: SecretStr | None = None
    # How often the master key is to be replaced (`berkas secrets status --check` fails
    # past it). NIST SP 800-57 Part 1 rev. 5, section 5.3.6, suggests an originator-usage
    # period of up to 2 years for a symmetric key-wrapping key; a year leaves a margin.
    master_key_rotation_days: int = Field(default=365, ge=1)

    # Links.
    link_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)
    link_secret: str | None = Field(default=None, min_length=32)
    # proxy: berkas-signed links any node serves; presigned: the store's own SigV4 URL.
    link_mode: Literal["proxy", "presigned"] = "proxy"
    # Documents encrypted at rest, each under its own data key (core/envelope.py). Unset:
    # on in proxy mode; presigned links hand out the store's bytes, so it cannot apply.
    encrypt_at_rest: bool | None = None

    # Content.
    # Categories whose images keep their EXIF/GPS/XMP/IPTC/comments; every other image is
    # stored without them (core/metadata.py). Empty: strip everywhere.
    keep_metadata_categories: Annotated[frozenset[str], NoDecode] = frozenset()
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_image_side: int = Field(default=12_000, ge=1)

    # Fetching by URL (docs/design.md 4).
    fetch_enabled: bool = True
    fetch_allow_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    fetch_allow_ports: Annotated[tuple[int, ...], NoDecode] = (80, 443)
    # Reverse proxies whose X-Forwarded-For names the client (the audit trail's ``ip``).
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    fetch_connect_timeout: float = Field(default=5.0, gt=0)
    fetch_read_timeout: float = Field(default=10.0, gt=0)
    fetch_total_timeout: float = Field(default=30.0, gt=0)

    # Limits (README "Limits"), per node and in its memory; 0 turns a limit off. Generous
    # by default: a partner never meets them, `make bench` (one client, up to 128
    # connections) neither.
    rate_limit_per_second: float = Field(default=1000, ge=0, allow_inf_nan=False)
    rate_limit_burst: int = Field(default=2000, ge=0)
    upload_rate_per_second: float = Field(default=500, ge=0, allow_inf_nan=False)
    upload_rate_burst: int = Field(default=1000, ge=0)
    max_concurrent_uploads: int = Field(default=256, ge=0)
    fetch_refusals_per_hour: float = Field(default=60, ge=0, allow_inf_nan=False)
    fetch_refusal_burst: int = Field(default=50, ge=0)
    # Connections (api/connections.py): slow clients are cut (CWE-400, slowloris).
    # A complete request head within this of connecting (or of a later request's start).
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    # The longest gap between two chunks of a request body while the app reads it.
    body_idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # An idle keep-alive connection is closed after this.
    keepalive_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Open connections per node; more are answered 503 server_busy at once.
    max_connections: int = Field(default=512, ge=1)

    # None: create the demo client only when serving on loopback (a laptop), never on a
    # node reachable from elsewhere, whose logs would then hold a working secret.
    demo_client: bool | None = None
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
    # text: one human line per record; json: one JSON object per line (log shippers).
    log_format: str = Field(default="text", pattern=r"^(text|json)$")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("fetch_allow_networks", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object, info: ValidationInfo) -> object:
        # core.egress owns what an allowed network may be; this only splits the text.
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return parse_networks(
                (str(item) for item in value), field=f"BERKAS_{(info.field_name or '').upper()}"
            )
        return value

    @field_validator("retention_days_by_category", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parsed: dict[str, float] = {}
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            name, sep, days = item.partition("=")
            try:
                number = float(days) if sep else -1.0
            except ValueError:
                number = -1.0
            if not name.strip() or not number >= 0 or number == float("inf"):
                raise ValueError(
                    f"BERKAS_RETENTION_DAYS_BY_CATEGORY: {item!r} must be CATEGORY=DAYS "
                    "(DAYS a number >= 0; 0 keeps until deleted), e.g. DOCUMENT=30,LOGO=0"
                )
            parsed[name.strip().upper()] = number
        known_categories(parsed, "BERKAS_RETENTION_DAYS_BY_CATEGORY")
        return parsed

    @field_validator("keep_metadata_categories", mode="before")
    @classmethod
    def _parse_categories(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().upper() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            known_categories([str(name) for name in value], "BERKAS_KEEP_METADATA_CATEGORIES")
            return frozenset(str(name) for name in value)
        return value

    @field_validator("fetch_allow_ports", mode="before")
    @classmethod
    def _split_ports(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(p) for p in value.split(",") if p.strip())
            except ValueError as exc:
                raise ValueError(
                    "BERKAS_FETCH_ALLOW_PORTS: expected comma-separated port numbers"
                ) from exc
        return value

    @field_validator("fetch_allow_ports", mode="after")
    @classmethod
    def _tcp_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        check_ports(value, field="BERKAS_FETCH_ALLOW_PORTS")
        return value

    @field_validator("data_dir", "master_key_file", mode="after")
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        # Resolved once at start so a later chdir cannot move the data.
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.master_key is not None and self.master_key_file is not None:
            raise ValueError(
                "set BERKAS_MASTER_KEY or BERKAS_MASTER_KEY_FILE, not both: which key seals "
                "would be ambiguous"
            )
        if self.token_default_minutes > self.token_max_minutes:
            raise ValueError("BERKAS_TOKEN_DEFAULT_MINUTES exceeds BERKAS_TOKEN_MAX_MINUTES")
        self._check_metrics_port()
        if self.public_url is not None:
            parsed = urlparse(self.public_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(
                    "BERKAS_PUBLIC_URL must be an http:// or https:// URL with a host, "
                    "e.g. https://berkas.example.com"
                )
        if self.storage_url is not None:
            if self.storage_url.startswith("s3://"):
                s3_bucket_and_prefix(self.storage_url)
            elif not self.storage_url.startswith(("file://", "memory://")):
                raise ValueError(
                    "BERKAS_STORAGE_URL must be file:///abs/path or s3://bucket/prefix"
                )
        for name, value in (
            ("BERKAS_S3_ENDPOINT_URL", self.s3_endpoint_url),
            ("BERKAS_S3_PUBLIC_ENDPOINT_URL", self.s3_public_endpoint_url),
        ):
            if value is None:
                continue
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(
                    f"{name} must be an http:// or https:// URL with a host, "
                    "e.g. https://rgw.example.com:7480"
                )
            if parsed.username or parsed.password:
                # Credentials in a URL end up in logs and error messages.
                raise ValueError(
                    f"{name} must not carry credentials; set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
        if self.link_mode == "presigned" and not self.resolved_storage_url.startswith("s3://"):
            raise ValueError(
                "BERKAS_LINK_MODE=presigned needs an S3 store (BERKAS_STORAGE_URL=s3://…): "
                "the links are the store's own signed URLs"
            )
        return self

    @model_validator(mode="after")
    def _replays_outlive_the_window(self) -> Settings:
        shortest = 2 * self.timestamp_window_seconds
        if self.replay_retention_seconds is not None and self.replay_retention_seconds < shortest:
            # A request stamped T is accepted from T - window to T + window; the first one
            # can arrive at the start of that span and its replay at the end, so a record
            # kept less than twice the window lets the same Request-Id run twice (DOKU's
            # replay rule, docs/design.md 2.1).
            raise ValueError(
                f"BERKAS_REPLAY_RETENTION_SECONDS={self.replay_retention_seconds} is shorter "
                f"than twice BERKAS_TIMESTAMP_WINDOW_SECONDS ({shortest} s): a replayed "
                "request could be accepted again after its record is gone; leave it unset "
                f"or set at least {shortest}"
            )
        return self

    @property
    def replay_retention(self) -> int:
        """Seconds a signed Request-Id record is kept (see replay_retention_seconds)."""
        if self.replay_retention_seconds is not None:
            return self.replay_retention_seconds
        return 2 * self.timestamp_window_seconds + REPLAY_MARGIN_SECONDS

    @model_validator(mode="after")
    def _encryption_coherent(self) -> Settings:
        if self.link_mode == "presigned" and self.encrypt_at_rest:
            raise ValueError(
                "BERKAS_ENCRYPT_AT_REST=true needs BERKAS_LINK_MODE=proxy: a presigned link "
                "is the store's own URL and would hand out the encrypted bytes; in presigned "
                'mode use the store\'s server-side encryption (README "Encryption at rest")'
            )
        return self

    def retention(self, category: str) -> timedelta | None:
        """How long ``category``'s documents are kept; None: until deleted (README)."""
        days = self.retention_days_by_category.get(category, self.retention_days)
        return timedelta(days=days) if days > 0 else None

    @property
    def encrypts_at_rest(self) -> bool:
        """Whether new documents are stored encrypted (default: in proxy mode)."""
        if self.encrypt_at_rest is None:
            return self.link_mode == "proxy"
        return self.encrypt_at_rest

    # Derived locations of the embedded default.
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'berkas.db'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{self.data_dir / 'blobs'}"

    @cached_property
    def storage(self) -> Storage:
        """Where the documents' bytes live, parsed once (``ValueError`` when malformed)."""
        return parse_storage(self.resolved_storage_url)

    @property
    def keys_dir(self) -> Path:
        # Where berkas kept signing keys before they moved into the database; imported
        # and removed at start.
        return self.data_dir / "keys"

    @property
    def default_master_key_file(self) -> Path:
        return self.data_dir / "master-key"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def link_secret_file(self) -> Path:
        # Where berkas kept the link secret before it moved into the database; imported
        # and removed at start.
        return self.data_dir / "link-secret"

    @property
    def serves_loopback_only(self) -> bool:
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def _check_metrics_port(self) -> None:
        if self.metrics_port not in ("", "main") and not 1 <= int(self.metrics_port) <= 65535:
            raise ValueError("BERKAS_METRICS_PORT must be a port (1-65535) or main")
        if self.metrics_port == "" and self.port + 1000 > 65535:
            raise ValueError(
                f"BERKAS_METRICS_PORT defaults to BERKAS_PORT + 1000, past 65535 for port "
                f"{self.port}: set it (or main)"
            )
        if self.metrics_listener is not None and self.metrics_listener[1] == self.port:
            raise ValueError("BERKAS_METRICS_PORT is BERKAS_PORT; use main for one port")
        if self.workers == 1:
            return
        if self.metrics_listener is None:
            # On the shared partner port a scrape would reach one worker at random.
            raise ValueError(
                "BERKAS_METRICS_PORT=main cannot be used with BERKAS_WORKERS > 1: each "
                "worker serves its own metrics on BERKAS_METRICS_PORT + its number; give "
                "the metrics listener a port"
            )
        first = self.metrics_listener[1]
        last = first + self.workers - 1
        if last > 65535 or first <= self.port <= last:
            raise ValueError(
                f"BERKAS_WORKERS={self.workers} puts the workers' metrics on ports "
                f"{first}-{last}, which must be ports and must not include BERKAS_PORT "
                f"({self.port}); set BERKAS_METRICS_PORT"
            )
        if isinstance(self.node_id, int) and self.node_id + self.workers - 1 > 9999:
            raise ValueError(
                f"BERKAS_WORKERS={self.workers} gives the workers node numbers "
                f"{self.node_id}-{self.node_id + self.workers - 1}, past 9999; lower "
                "BERKAS_NODE_ID or use auto"
            )

    @property
    def metrics_listener(self) -> tuple[str, int] | None:
        """Where the metrics listener binds; None when /metrics is on the partner port."""
        return self.worker_metrics_listener(0)

    def worker_metrics_listener(self, worker: int) -> tuple[str, int] | None:
        """Where worker ``worker`` (0 for a single process) serves its metrics."""
        if self.metrics_port == "main":
            return None
        port = int(self.metrics_port) if self.metrics_port else self.port + 1000
        return self.metrics_host, port + worker

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Read the settings; errors name the variable.

    Precedence: ``overrides`` (CLI flags), then ``BERKAS_*`` environment variables, then
    the optional dotenv-style file named by ``BERKAS_CONFIG_FILE``, then defaults. A name
    no setting answers to, in either place, raises ``ValueError`` (one line per name).
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    config_file = os.environ.get(CONFIG_FILE_VARIABLE)
    if config_file and not Path(config_file).is_file():
        raise ValueError(f"{CONFIG_FILE_VARIABLE}: {config_file} is not a readable file")
    problems = unknown_names(os.environ, Settings.model_fields)
    if config_file:
        try:
            # The parser and encoding pydantic-settings reads the file with: the same keys.
            keys = dotenv_values(config_file, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{CONFIG_FILE_VARIABLE}: {config_file} is not a readable file ({exc})"
            ) from None
        problems += unknown_names(keys, Settings.model_fields, config_file=config_file)
    if problems:
        raise ValueError("\n".join(problems))
    return Settings(_env_file=config_file or None, **clean)  # type: ignore[arg-type,call-arg]


def explain(error: ValidationError, overrides: Mapping[str, object]) -> list[str]:
    """``error`` from ``load_settings(**overrides)`` as one line per refused setting,
    naming where its value came from: a command-line flag, the environment, or the
    ``BERKAS_CONFIG_FILE`` file (config_names.explain_invalid)."""
    config_file = os.environ.get(CONFIG_FILE_VARIABLE)
    in_file: set[str] = set()
    if config_file and Path(config_file).is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            in_file = {key.upper() for key in dotenv_values(config_file, encoding="utf-8")}
    in_environment = {name.upper() for name in os.environ}

    def origin(field: str) -> str:
        name = PREFIX + field.upper()
        if overrides.get(field) is not None:
            return f"from --{field.replace('_', '-')}"
        if name in in_environment:
            return "in the environment"
        if name in in_file or field.upper() in in_file:
            return f"in {config_file}"
        return "its default"

    return explain_invalid(error.errors(), origin)

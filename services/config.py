"""Settings shared by the services: NATS, Consul, sites and logging, read from the environment.

Every field carries its environment variable (its alias; the first of several wins) and a
docstring: ``nodeview <role> --help`` and ``nodeview config check`` are generated from them.
"""

import re
import ssl
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.consul_tls import ConsulTlsError, consul_tls

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
"""Values of LOG_LEVEL (any case)."""

CONSUL_DEFAULT_ADDR = "127.0.0.1:8500"
"""Consul's own default HTTP address; its scheme follows CONSUL_HTTP_SSL like any bare address."""

TENANCY_NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$"
"""A Consul Enterprise namespace or admin partition name (a DNS label)."""


class SettingsError(ValueError):
    """A setting is missing or invalid."""


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr | None:
    """Return a secret given directly or in a file (whitespace stripped); never both."""
    if value is not None and file is not None:
        raise SettingsError(f"set either {name} or {name}_FILE, not both")
    if file is None:
        return value
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE {file} cannot be read: {exc.strerror}") from exc
    if not text:
        raise SettingsError(f"{name}_FILE {file} is empty")
    return SecretStr(text)


def _bare_to_url(address: str, https: bool) -> str:
    """Give a ``host:port`` without a scheme the one CONSUL_HTTP_SSL asks for; as in Consul's
    clients, an explicit ``http://`` never reverts to http once CONSUL_HTTP_SSL asks for TLS."""
    if "://" not in address:
        return ("https://" if https else "http://") + address
    if https and address.startswith("http://"):
        return "https://" + address.removeprefix("http://")
    return address


class BaseServiceSettings(BaseSettings):
    """Settings every service reads: logging, tracing and shutdown."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    """Least severity logged: CRITICAL, ERROR, WARNING, INFO or DEBUG."""
    log_format: str = Field(
        default="auto", validation_alias="LOG_FORMAT", pattern="^(auto|json|console)$"
    )
    """Log lines as json, console, or auto (JSON unless stderr is a terminal)."""
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    """Service name in traces (default nodeview-<role>)."""
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    """OTLP/HTTP endpoint that receives traces; tracing is off without an exporter."""
    otel_traces_exporter: str | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    """Trace exporter (otlp, console, none), as the OpenTelemetry SDK reads it."""
    nodeview_traces_file: Path | None = Field(default=None, validation_alias="NODEVIEW_TRACES_FILE")
    """Also write finished spans as JSON lines to this file."""
    shutdown_drain_seconds: float = Field(
        default=5.0, gt=0, le=120, validation_alias="SHUTDOWN_DRAIN_SECONDS"
    )
    """After SIGTERM/SIGINT: how long in-flight work may take before the process exits."""

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise SettingsError(f"{value!r} is not a log level (one of {', '.join(LOG_LEVELS)})")
        return level

    def check_files(self) -> None:
        """Read every file a setting names (secrets, TLS material) so that a bad one stops the
        start with a SettingsError instead of failing later; subclasses add their own."""


class NatsSettings(BaseServiceSettings):
    """How to reach NATS and how the JetStream objects are created."""

    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    """NATS servers, comma-separated."""
    nats_user: str | None = Field(default=None, validation_alias="NATS_USER")
    """NATS user (with NATS_PASSWORD or NATS_PASSWORD_FILE)."""
    nats_password: SecretStr | None = Field(default=None, validation_alias="NATS_PASSWORD")
    """Password of NATS_USER."""
    nats_password_file: Path | None = Field(default=None, validation_alias="NATS_PASSWORD_FILE")
    """File holding the password of NATS_USER."""
    nats_token: SecretStr | None = Field(default=None, validation_alias="NATS_TOKEN")
    """NATS token authentication."""
    nats_token_file: Path | None = Field(default=None, validation_alias="NATS_TOKEN_FILE")
    """File holding the NATS token."""
    nats_creds_file: Path | None = Field(default=None, validation_alias="NATS_CREDS_FILE")
    """NATS .creds file (JWT and nkey)."""
    nats_nkey_seed_file: Path | None = Field(default=None, validation_alias="NATS_NKEY_SEED_FILE")
    """NATS nkey seed file."""
    nats_tls_ca_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CA_FILE")
    """CA that signed the NATS servers' certificates."""
    nats_tls_cert_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CERT_FILE")
    """Client certificate for NATS (with NATS_TLS_KEY_FILE)."""
    nats_tls_key_file: Path | None = Field(default=None, validation_alias="NATS_TLS_KEY_FILE")
    """Key of the NATS client certificate."""
    nats_stream_replicas: int = Field(
        default=1, ge=1, le=5, validation_alias="NATS_STREAM_REPLICAS"
    )
    """Replicas of streams and buckets (3 on Kubernetes)."""
    nats_stream_max_age_seconds: float = Field(
        default=24 * 3600, gt=0, validation_alias="NATS_STREAM_MAX_AGE_SECONDS"
    )
    """How long events stay in the stream."""
    nats_stream_max_bytes: int = Field(
        default=1024**3, ge=1024**2, validation_alias="NATS_STREAM_MAX_BYTES"
    )
    """Size bound of the event stream; the oldest events go first (a gap makes a resync)."""
    nats_connect_timeout: float = Field(default=5.0, gt=0, validation_alias="NATS_CONNECT_TIMEOUT")
    """Seconds to wait for a NATS connection."""

    @model_validator(mode="after")
    def _check_tls_pair(self) -> "NatsSettings":
        if (self.nats_tls_cert_file is None) != (self.nats_tls_key_file is None):
            raise SettingsError("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together")
        return self

    def check_files(self) -> None:
        """Read the NATS password and token files."""
        super().check_files()
        read_secret(self.nats_password, self.nats_password_file, "NATS_PASSWORD")
        read_secret(self.nats_token, self.nats_token_file, "NATS_TOKEN")


class ConsulSettings(BaseServiceSettings):
    """How to reach Consul: ordered servers, retries, timeouts, concurrency, ACL token, TLS.

    Consul's own variables (``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_TOKEN`` …) are read too; where
    nodeview has its own name for the same thing, nodeview's name wins when both are set.
    """

    consul_http_ssl: bool = Field(default=False, validation_alias="CONSUL_HTTP_SSL")
    """Use https for addresses given without a scheme (Consul's CONSUL_HTTP_SSL)."""
    consul_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [CONSUL_DEFAULT_ADDR],
        validate_default=True,
        validation_alias=AliasChoices("CONSUL_SERVERS", "CONSUL_HTTP_ADDR"),
    )
    """Consul servers in fallback order, comma-separated URLs or host:port; the first is
    main_server."""
    consul_token: SecretStr | None = Field(default=None, validation_alias="CONSUL_TOKEN")
    """ACL token, sent as X-Consul-Token (wins over CONSUL_HTTP_TOKEN)."""
    consul_token_file: Path | None = Field(default=None, validation_alias="CONSUL_TOKEN_FILE")
    """File holding the ACL token (wins over CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE)."""
    consul_http_token: SecretStr | None = Field(default=None, validation_alias="CONSUL_HTTP_TOKEN")
    """Consul's own ACL token variable, used when neither CONSUL_TOKEN nor its file is set."""
    consul_http_token_file: Path | None = Field(
        default=None, validation_alias="CONSUL_HTTP_TOKEN_FILE"
    )
    """Consul's own token file variable (wins over CONSUL_HTTP_TOKEN, as in Consul)."""
    consul_max_retries: int = Field(default=1, ge=0, le=10, validation_alias="CONSUL_MAX_RETRIES")
    """Extra passes over the server list after every server failed."""
    consul_retry_delay: float = Field(
        default=0.5, ge=0, le=60, validation_alias="CONSUL_RETRY_DELAY"
    )
    """Base back-off in seconds between passes (doubles, jittered)."""
    consul_catalog_timeout: float = Field(
        default=2.0, gt=0, le=300, validation_alias="CONSUL_CATALOG_TIMEOUT"
    )
    """Seconds per read (blocking queries add their wait)."""
    consul_semaphore_limit: int = Field(
        default=5, ge=1, le=1000, validation_alias="CONSUL_SEMAPHORE_LIMIT"
    )
    """Concurrent Consul reads at most."""
    consul_ca_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("CONSUL_CA_FILE", "CONSUL_CACERT")
    )
    """CA that signed the Consul servers' certificates (default: the system's)."""
    consul_tls_verify: bool = Field(
        default=True, validation_alias=AliasChoices("CONSUL_TLS_VERIFY", "CONSUL_HTTP_SSL_VERIFY")
    )
    """Verify the Consul servers' certificates (false only for tests)."""
    consul_client_cert: Path | None = Field(default=None, validation_alias="CONSUL_CLIENT_CERT")
    """Client certificate for Consuls with verify_incoming (with CONSUL_CLIENT_KEY)."""
    consul_client_key: Path | None = Field(default=None, validation_alias="CONSUL_CLIENT_KEY")
    """Key of the Consul client certificate."""
    consul_tls_server_name: str | None = Field(
        default=None, min_length=1, max_length=253, validation_alias="CONSUL_TLS_SERVER_NAME"
    )
    """Name the servers' certificates must hold (sent as SNI), e.g. server.dc1.consul."""
    consul_namespace: str | None = Field(default=None, validation_alias="CONSUL_NAMESPACE")
    """Consul Enterprise namespace, sent as ?ns= on every request (* reads every namespace)."""
    consul_partition: str | None = Field(default=None, validation_alias="CONSUL_PARTITION")
    """Consul Enterprise admin partition, sent as ?partition= on every request."""
    consul_stale: bool = Field(default=False, validation_alias="CONSUL_STALE")
    """Allow ?stale reads (any server answers, not only the leader)."""
    consul_datacenter: str | None = Field(default=None, validation_alias="CONSUL_DATACENTER")
    """Datacenter asked with ?dc= on every read (default: the agent's)."""
    sites_kv_key: str = Field(
        default="skills/eye/metadata/sites", min_length=1, validation_alias="SITES_KV_KEY"
    )
    """Consul KV key of the sites document."""
    site_unmapped_label: str = Field(default="Nao mapeado", validation_alias="SITE_UNMAPPED_LABEL")
    """Site name of nodes the sites document does not map."""
    resync_event_name: str = Field(
        default="nodeview-resync", min_length=1, validation_alias="RESYNC_EVENT_NAME"
    )
    """Consul user event that asks for a full resync."""

    @field_validator("consul_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            https = bool(info.data.get("consul_http_ssl"))
            return [_bare_to_url(v, https) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("consul_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise SettingsError("needs at least one server URL")
        checked = []
        for url in value:
            scheme = url.split("://", 1)[0]
            if scheme not in ("http", "https"):
                raise SettingsError(f"entry {url!r}: scheme {scheme!r} is not http or https")
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - parsing the port is the check
            except ValueError as exc:
                raise SettingsError(f"entry {url!r} is not a valid URL ({exc})") from None
            if not parts.hostname:
                raise SettingsError(f"entry {url!r} names no host")
            checked.append(url.rstrip("/"))
        return checked

    @field_validator("consul_namespace", "consul_partition", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("consul_namespace")
    @classmethod
    def _check_namespace(cls, value: str | None) -> str | None:
        return value if value in (None, "*") else _tenancy_name(value)

    @field_validator("consul_partition")
    @classmethod
    def _check_partition(cls, value: str | None) -> str | None:
        return value if value is None else _tenancy_name(value)

    @model_validator(mode="after")
    def _check_client_pair(self) -> "ConsulSettings":
        if (self.consul_client_cert is None) != (self.consul_client_key is None):
            raise SettingsError("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together")
        return self

    def consul_token_value(self) -> SecretStr | None:
        """Return the ACL token: CONSUL_TOKEN or its file, else CONSUL_HTTP_TOKEN or its file."""
        own = read_secret(self.consul_token, self.consul_token_file, "CONSUL_TOKEN")
        if own is not None:
            return own
        file = self.consul_http_token_file
        if file is not None:
            # As Consul's own clients: the token file wins over the token, unless it is empty.
            try:
                empty = not file.read_text(encoding="utf-8").strip()
            except OSError:
                empty = False  # read_secret says why it cannot be read
            if not empty or self.consul_http_token is None:
                return read_secret(None, file, "CONSUL_HTTP_TOKEN")
        return self.consul_http_token

    def tls_verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for Consul: a context once a CA, client cert or name is set."""
        try:
            return consul_tls(
                verify=self.consul_tls_verify,
                ca_file=self.consul_ca_file,
                client_cert=self.consul_client_cert,
                client_key=self.consul_client_key,
                server_name=self.consul_tls_server_name,
            )
        except ConsulTlsError as exc:
            raise SettingsError(str(exc)) from exc

    def consul_query_params(self) -> dict[str, str]:
        """Return the query parameters every Consul request carries: ``ns`` and ``partition``."""
        params = {}
        if self.consul_namespace:
            params["ns"] = self.consul_namespace
        if self.consul_partition:
            params["partition"] = self.consul_partition
        return params

    def check_files(self) -> None:
        """Read the Consul token file and load the Consul TLS files."""
        super().check_files()
        self.consul_token_value()
        self.tls_verify()


def _tenancy_name(value: str) -> str:
    """Check a namespace or partition name."""
    if not re.fullmatch(TENANCY_NAME, value):
        raise SettingsError(f"{value!r} is not a valid name (letters, digits and -, at most 63)")
    return value

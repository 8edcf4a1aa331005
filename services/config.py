"""Settings shared by the services: NATS, Consul, sites and logging, read from the environment."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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


class BaseServiceSettings(BaseSettings):
    """Settings every service reads: logging."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(
        default="auto", validation_alias="LOG_FORMAT", pattern="^(auto|json|console)$"
    )
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_traces_exporter: str | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    nodeview_traces_file: Path | None = Field(default=None, validation_alias="NODEVIEW_TRACES_FILE")
    """Also write finished spans as JSON lines to this file."""
    shutdown_drain_seconds: float = Field(
        default=5.0, gt=0, le=120, validation_alias="SHUTDOWN_DRAIN_SECONDS"
    )
    """After SIGTERM/SIGINT: how long in-flight work may take before the process exits."""


class NatsSettings(BaseServiceSettings):
    """How to reach NATS and how the JetStream objects are created."""

    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    nats_user: str | None = Field(default=None, validation_alias="NATS_USER")
    nats_password: SecretStr | None = Field(default=None, validation_alias="NATS_PASSWORD")
    nats_password_file: Path | None = Field(default=None, validation_alias="NATS_PASSWORD_FILE")
    nats_token: SecretStr | None = Field(default=None, validation_alias="NATS_TOKEN")
    nats_token_file: Path | None = Field(default=None, validation_alias="NATS_TOKEN_FILE")
    nats_creds_file: Path | None = Field(default=None, validation_alias="NATS_CREDS_FILE")
    nats_nkey_seed_file: Path | None = Field(default=None, validation_alias="NATS_NKEY_SEED_FILE")
    nats_tls_ca_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CA_FILE")
    nats_tls_cert_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CERT_FILE")
    nats_tls_key_file: Path | None = Field(default=None, validation_alias="NATS_TLS_KEY_FILE")
    nats_stream_replicas: int = Field(
        default=1, ge=1, le=5, validation_alias="NATS_STREAM_REPLICAS"
    )
    nats_stream_max_age_seconds: float = Field(
        default=24 * 3600, gt=0, validation_alias="NATS_STREAM_MAX_AGE_SECONDS"
    )
    nats_stream_max_bytes: int = Field(
        default=1024**3, ge=1024**2, validation_alias="NATS_STREAM_MAX_BYTES"
    )
    """Size bound of the event stream; the oldest events go first (a gap makes a resync)."""
    nats_connect_timeout: float = Field(default=5.0, gt=0, validation_alias="NATS_CONNECT_TIMEOUT")

    @model_validator(mode="after")
    def _check_tls_pair(self) -> "NatsSettings":
        if (self.nats_tls_cert_file is None) != (self.nats_tls_key_file is None):
            raise SettingsError("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together")
        return self


class ConsulSettings(BaseServiceSettings):
    """How to reach Consul: ordered servers, retries, timeouts, concurrency, ACL token, TLS."""

    consul_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8500"], validation_alias="CONSUL_SERVERS"
    )
    consul_token: SecretStr | None = Field(default=None, validation_alias="CONSUL_TOKEN")
    consul_token_file: Path | None = Field(default=None, validation_alias="CONSUL_TOKEN_FILE")
    consul_max_retries: int = Field(default=1, ge=0, le=10, validation_alias="CONSUL_MAX_RETRIES")
    consul_retry_delay: float = Field(
        default=0.5, ge=0, le=60, validation_alias="CONSUL_RETRY_DELAY"
    )
    consul_catalog_timeout: float = Field(
        default=2.0, gt=0, le=300, validation_alias="CONSUL_CATALOG_TIMEOUT"
    )
    consul_semaphore_limit: int = Field(
        default=5, ge=1, le=1000, validation_alias="CONSUL_SEMAPHORE_LIMIT"
    )
    consul_ca_file: Path | None = Field(default=None, validation_alias="CONSUL_CA_FILE")
    consul_tls_verify: bool = Field(default=True, validation_alias="CONSUL_TLS_VERIFY")
    consul_stale: bool = Field(default=False, validation_alias="CONSUL_STALE")
    consul_datacenter: str | None = Field(default=None, validation_alias="CONSUL_DATACENTER")
    sites_kv_key: str = Field(
        default="skills/eye/metadata/sites", min_length=1, validation_alias="SITES_KV_KEY"
    )
    site_unmapped_label: str = Field(default="Nao mapeado", validation_alias="SITE_UNMAPPED_LABEL")
    resync_event_name: str = Field(
        default="nodeview-resync", min_length=1, validation_alias="RESYNC_EVENT_NAME"
    )

    @field_validator("consul_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("consul_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        if not value:
            raise SettingsError("CONSUL_SERVERS needs at least one server URL")
        checked = []
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(
                    f"CONSUL_SERVERS entry {url!r} must start with http:// or https://"
                )
            checked.append(url.rstrip("/"))
        return checked

    def consul_token_value(self) -> SecretStr | None:
        """Return the Consul ACL token from CONSUL_TOKEN or CONSUL_TOKEN_FILE."""
        return read_secret(self.consul_token, self.consul_token_file, "CONSUL_TOKEN")

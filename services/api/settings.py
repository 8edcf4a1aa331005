"""Settings of the API, read once from the environment."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from services.api.clients import Network, parse_networks
from services.config import NatsSettings, read_secret


class ApiSettings(NatsSettings):
    """Everything the API process reads from its environment."""

    api_host: str = Field(default="127.0.0.1", validation_alias="API_HOST")
    """Address the API listens on."""
    api_port: int = Field(default=8080, ge=0, le=65535, validation_alias="API_PORT")
    """Port the API listens on."""
    api_admin_token: SecretStr | None = Field(default=None, validation_alias="API_ADMIN_TOKEN")
    """Bearer token of the flush endpoint (without one it answers 503)."""
    api_admin_token_file: Path | None = Field(default=None, validation_alias="API_ADMIN_TOKEN_FILE")
    """File holding the bearer token of the flush endpoint."""
    api_stale_after_seconds: float = Field(
        default=30.0, gt=0, validation_alias="API_STALE_AFTER_SECONDS"
    )
    """The view is marked stale when the enricher's heartbeat is older than this."""
    api_flush_wait_timeout: float = Field(
        default=30.0, gt=0, le=600, validation_alias="API_FLUSH_WAIT_TIMEOUT"
    )
    """Longest wait of a flush with ?wait=true, in seconds."""
    api_sse_max_clients: int = Field(default=1000, ge=1, validation_alias="API_SSE_MAX_CLIENTS")
    """Event-stream connections at most."""
    api_sse_max_per_client: int = Field(default=8, ge=1, validation_alias="API_SSE_MAX_PER_CLIENT")
    """Event-stream connections at most per client address."""
    api_sse_keepalive_seconds: float = Field(
        default=15.0, gt=0, validation_alias="API_SSE_KEEPALIVE_SECONDS"
    )
    """Seconds between keepalive comments on event streams."""
    api_max_body_bytes: int = Field(default=64 * 1024, ge=0, validation_alias="API_MAX_BODY_BYTES")
    """Request body limit, in bytes."""
    api_access_log: bool = Field(default=True, validation_alias="API_ACCESS_LOG")
    """One JSON line per request (``event: api.access``); probes and scrapes only at DEBUG."""
    api_trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = Field(
        default=(), validation_alias="API_TRUSTED_PROXIES"
    )
    """Proxies (addresses or CIDRs) whose ``X-Forwarded-For`` names the client; none by default."""

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    def check_files(self) -> None:
        """Read the admin token file too."""
        super().check_files()
        self.admin_token_value()

    def admin_token_value(self) -> SecretStr | None:
        """Return the admin bearer token from API_ADMIN_TOKEN or API_ADMIN_TOKEN_FILE."""
        return read_secret(self.api_admin_token, self.api_admin_token_file, "API_ADMIN_TOKEN")

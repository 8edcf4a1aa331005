"""Settings of the relay, read once from the environment."""

import os
import socket
from pathlib import Path

from pydantic import Field, SecretStr

from services.config import ConsulSettings, NatsSettings, read_secret


class RelaySettings(NatsSettings, ConsulSettings):
    """Everything the relay process reads from its environment."""

    relay_token: SecretStr | None = Field(default=None, validation_alias="RELAY_TOKEN")
    """Bearer token of POST /v1/watch/* (without one the handler answers 503)."""
    relay_token_file: Path | None = Field(default=None, validation_alias="RELAY_TOKEN_FILE")
    """File holding the bearer token of the HTTP handler."""
    relay_host: str = Field(default="127.0.0.1", validation_alias="RELAY_HOST")
    """Address of the HTTP handler and health port."""
    relay_port: int = Field(default=8081, ge=0, le=65535, validation_alias="RELAY_PORT")
    """Port of the HTTP handler and health port."""
    relay_max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, validation_alias="RELAY_MAX_BODY_BYTES"
    )
    """Body limit of the watch handlers, in bytes."""
    relay_max_concurrent_requests: int = Field(
        default=4, ge=1, le=256, validation_alias="RELAY_MAX_CONCURRENT_REQUESTS"
    )
    """Watch requests handled at once; bounds memory to this many bodies of the largest size."""
    relay_watcher_enabled: bool = Field(default=True, validation_alias="RELAY_WATCHER_ENABLED")
    """Run the built-in watcher in relay serve too."""
    relay_watch_wait: float = Field(
        default=300.0, gt=0, le=600, validation_alias="RELAY_WATCH_WAIT"
    )
    """wait of the blocking queries, in seconds (at most 600)."""
    relay_watch_min_interval: float = Field(
        default=0.05, ge=0, le=60, validation_alias="RELAY_WATCH_MIN_INTERVAL"
    )
    """Least time between two blocking queries of one watch (rate limit)."""
    relay_error_backoff_max: float = Field(
        default=30.0, gt=0, le=600, validation_alias="RELAY_ERROR_BACKOFF_MAX"
    )
    """Longest back-off of a watch after errors, in seconds."""

    relay_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        max_length=128,
        validation_alias="RELAY_ID",
        json_schema_extra={"help_default": "<hostname>-<pid>"},
    )
    """Names this relay process in its events (two relays' indexes are ordered apart)."""

    consul_index: str | None = Field(default=None, validation_alias="CONSUL_INDEX")
    """Set by Consul for a script handler: the index of the watch answer on stdin."""

    def check_files(self) -> None:
        """Read the relay's token file too."""
        super().check_files()
        self.relay_token_value()

    def relay_token_value(self) -> SecretStr | None:
        """Return the bearer token of the HTTP handler from RELAY_TOKEN or RELAY_TOKEN_FILE."""
        return read_secret(self.relay_token, self.relay_token_file, "RELAY_TOKEN")

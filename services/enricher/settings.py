"""Settings of the enricher, read once from the environment."""

import os
import socket

from pydantic import Field

from services.config import ConsulSettings, NatsSettings


def _default_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class EnricherSettings(NatsSettings, ConsulSettings):
    """Everything the enricher process reads from its environment."""

    enricher_id: str = Field(
        default_factory=_default_id,
        validation_alias="ENRICHER_ID",
        json_schema_extra={"help_default": "<hostname>-<pid>"},
    )
    """Name of this enricher in the lock and its heartbeat."""
    enricher_host: str = Field(default="127.0.0.1", validation_alias="ENRICHER_HOST")
    """Address of the health and metrics port."""
    enricher_port: int = Field(default=8082, ge=0, le=65535, validation_alias="ENRICHER_PORT")
    """Port of the health and metrics endpoints."""
    enricher_batch_size: int = Field(
        default=256, ge=1, le=10_000, validation_alias="ENRICHER_BATCH_SIZE"
    )
    """Messages fetched (and coalesced) at once."""
    enricher_batch_wait: float = Field(
        default=0.02, ge=0.001, le=5, validation_alias="ENRICHER_BATCH_WAIT"
    )
    """Seconds to wait for more messages once a batch has its first one."""
    enricher_max_deliver: int = Field(
        default=5, ge=1, le=100, validation_alias="ENRICHER_MAX_DELIVER"
    )
    """Deliveries of a message before it goes to the dead letters."""
    enricher_ack_wait: float = Field(
        default=30.0, gt=1, le=3600, validation_alias="ENRICHER_ACK_WAIT"
    )
    """Seconds before an unacknowledged message is delivered again."""
    enricher_nak_delay: float = Field(
        default=2.0, ge=0, le=600, validation_alias="ENRICHER_NAK_DELAY"
    )
    """Seconds before a batch that failed is delivered again."""
    enricher_heartbeat_interval: float = Field(
        default=5.0, gt=0, le=300, validation_alias="ENRICHER_HEARTBEAT_INTERVAL"
    )
    """Seconds between heartbeats and lock refreshes."""
    enricher_lock_ttl: float = Field(
        default=10.0, ge=3, le=600, validation_alias="ENRICHER_LOCK_TTL"
    )
    """Seconds after the active enricher stops before a standby takes over."""
    enricher_retry_interval: float = Field(
        default=5.0, gt=0, le=600, validation_alias="ENRICHER_RETRY_INTERVAL"
    )
    """First pause before failed reads are tried again (doubling to 30 s)."""
    enricher_resync_interval: float = Field(
        default=0.0, ge=0, validation_alias="ENRICHER_RESYNC_INTERVAL"
    )
    """Seconds between safety resyncs; 0 turns them off (changes arrive as events)."""
    enricher_members_interval: float = Field(
        default=60.0, ge=0, le=3600, validation_alias="ENRICHER_MEMBERS_INTERVAL"
    )
    """Seconds between reads of the Serf members list, which has no index to watch: a node that
    joined and left between two answers of Consul's lists, or a left member Consul reaped, shows
    within this. 0: members are read only on leaves and resyncs."""

"""Events on the NODEVIEW_EVENTS stream: Consul changes (with their state) and commands."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WatchType = Literal["nodes", "services", "service", "checks", "key", "event", "members"]
ChangeSource = Literal["script", "http", "watcher"]

MAX_NAME_LENGTH = 512
"""Longest service name, KV key or event name accepted in a change."""


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class ConsulChange(BaseModel):
    """One answer of a Consul watch: what changed, at which index, and the full new state."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    watch_type: WatchType
    key: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    """KV key (``key`` watches) or event name (``event`` watches)."""
    service: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    """Service name (``service`` watches)."""
    consul_index: int = Field(ge=0)
    datacenter: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    source: ChangeSource
    observed_at: datetime = Field(default_factory=utc_now)
    payload: Any
    """The JSON exactly as Consul returned it (or handed it to a watch handler)."""

    @property
    def dedup_key(self) -> str | None:
        """Return the key that, with the watch type, names the watched thing."""
        return self.service if self.watch_type == "service" else self.key

    def payload_digest(self) -> str:
        """Digest of the payload, the same from every source of one change.

        A ``key`` watch handler gets the entry itself while the KV endpoint answers a
        one-entry list; both digest as the entry. Keys are sorted, so JSON formatting and key
        order of the sender do not matter.
        """
        payload = self.payload
        if self.watch_type == "key" and isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ResyncRequested(BaseModel):
    """A request for a full resync of the view from Consul."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str = Field(min_length=1, max_length=128)
    requested_by: str = Field(max_length=256)
    reason: str = Field(max_length=1024)
    requested_at: datetime = Field(default_factory=utc_now)

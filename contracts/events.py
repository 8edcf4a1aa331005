"""Events on the NODEVIEW_EVENTS stream: Consul changes (with their state) and commands."""

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field

DeltaType = Literal["nodes", "checks", "services"]
"""Watches whose every answer is a whole list (catalog nodes, Serf health checks, service
names), which the relay diffs into deltas."""

LIST_TYPES: frozenset[str] = frozenset(get_args(DeltaType))

WatchType = Literal["nodes", "services", "service", "checks", "key", "event", "members"]
ChangeSource = Literal["script", "http", "watcher"]

SERF_CHECK = "serfHealth"
"""The check Consul keeps per node for its gossip (Serf) health."""

MAX_NAME_LENGTH = 512
"""Longest key, service or event name of a change, and node/service/check name from a handler."""


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


_ESSENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "nodes": ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta"),
    "checks": ("Node", "CheckID", "Status", "ServiceID", "ServiceName"),
    "members": ("Name", "Addr", "Status", "Tags"),
    "event": ("ID", "Name", "Payload", "LTime"),
    "key": ("Key", "Value", "Flags"),
    "Node": ("Node", "Address", "Datacenter"),
    "Service": ("ID", "Service", "Tags", "Port", "Address"),
}
"""Per watch type, the fields nodeview reads; a ``service`` entry holds ``Node`` and ``Service``.

A watch handler gets Consul's API structs re-encoded (empty fields dropped, extra fields added), the
built-in watcher the raw HTTP answer: only these fields, empty ones left out, are compared. A node
item's ``TaggedAddresses`` and ``Meta`` are optional: items of relays that did not carry them still
decode (as a node without tagged addresses or meta)."""


def essentials(watch_type: str, payload: Any) -> Any:
    """The part of a watch payload nodeview reads, the same whichever way Consul delivered it.

    For the watches that are not whole lists: those (``LIST_TYPES``) are read item by item,
    by ``list_items``.
    """
    if watch_type == "services" or payload is None:
        return payload
    if watch_type == "key":
        return _pick(payload, _ESSENTIAL_FIELDS["key"])
    if not isinstance(payload, list):
        return payload
    if watch_type == "service":
        return [
            {part: _pick(item.get(part), _ESSENTIAL_FIELDS[part]) for part in ("Node", "Service")}
            for item in payload
        ]
    fields = _ESSENTIAL_FIELDS.get(watch_type)
    return [_pick(item, fields) for item in payload] if fields else payload


def list_item(watch_type: str, raw: Any) -> tuple[str, Any] | None:
    """One entry of a nodes or checks answer as nodeview reads it, keyed by its node; ``None``
    for an entry nodeview does not read (a check other than ``serfHealth``, a malformed one)."""
    if not isinstance(raw, dict):
        return None
    if watch_type == "checks" and raw.get("CheckID") != SERF_CHECK:
        return None
    item = _pick(raw, _ESSENTIAL_FIELDS[watch_type])
    node = item.get("Node")
    return (node, item) if isinstance(node, str) else None


def list_items(watch_type: str, payload: Any) -> dict[str, Any]:
    """The items of a whole-list answer by node or service name, as far as nodeview reads them."""
    if watch_type == "services":
        if not isinstance(payload, dict):
            return {}
        return {str(name): sorted(str(t) for t in tags or ()) for name, tags in payload.items()}
    if not isinstance(payload, list):
        return {}
    return dict(pair for raw in payload if (pair := list_item(watch_type, raw)) is not None)


def digest_of(value: Any) -> str:
    """A short digest of a JSON value, independent of key order."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def item_digest(item: Any) -> str:
    """A short digest of one list item, independent of key order."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def list_digest(digests: Mapping[str, str]) -> str:
    """The digest of a whole list from its items' digests (``item_digest`` by key).

    A relay that kept the digests of unchanged items and a script handler that computed them all
    get the same digest for the same answer."""
    hasher = hashlib.sha256()
    for key in sorted(digests):
        hasher.update(f"{key}\0{digests[key]}\n".encode())
    return hasher.hexdigest()[:16]


def origin_of(source: str, relay_id: str | None) -> str:
    """Name one observer of Consul: a relay's source and id, or the source alone (scripts)."""
    return f"{source}:{relay_id}" if relay_id else source


def _pick(item: Any, fields: tuple[str, ...]) -> Any:
    """The named fields of an object, leaving out empty ones (``omitempty`` in Consul's API)."""
    if not isinstance(item, dict):
        return item
    return {name: item[name] for name in fields if item.get(name) not in (None, "", [], {}, 0)}


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
    filtered_by_acls: bool = False
    """Consul said its ACLs left items out of ``payload``: missing items are not gone."""
    relay_id: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    """Which relay process observed it (its watcher or HTTP handler); ``None`` for scripts."""

    @property
    def origin(self) -> str:
        """One observer of Consul: its index order is Consul's order (a relay, or scripts)."""
        return origin_of(self.source, self.relay_id)

    @property
    def dedup_key(self) -> str | None:
        """Return the key that, with the watch type, names the watched thing."""
        return self.service if self.watch_type == "service" else self.key

    def payload_digest(self) -> str:
        """Digest of what nodeview reads from the payload, equal for every source of a change."""
        if self.watch_type in LIST_TYPES:
            items = list_items(self.watch_type, self.payload)
            return list_digest({key: item_digest(item) for key, item in items.items()})
        return digest_of(essentials(self.watch_type, self.payload))


MAX_REASON_LENGTH = 1024
"""Longest reason of a resync request."""


class ResyncRequested(BaseModel):
    """A request for a full resync of the view from Consul."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str = Field(min_length=1, max_length=128)
    requested_by: str = Field(max_length=256)
    reason: str = Field(max_length=MAX_REASON_LENGTH)
    requested_at: datetime = Field(default_factory=utc_now)


SCHEMA_DELTA: Literal[2] = 2
"""Version of the ``ConsulDelta`` contract (``ConsulChange`` is version 1)."""


class ConsulDelta(BaseModel):
    """What one whole-list answer changed against the relay's previous one, item by item.

    Each item carries its full new state (or is listed as removed), so a delta applied twice,
    or by two relays diffing against different answers, gives the same result.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[2] = SCHEMA_DELTA
    watch_type: DeltaType
    consul_index: int = Field(ge=0)
    base_index: int = Field(default=0, ge=0)
    """Index of the relay's earlier answer this one was diffed against: items left out are as
    they were at that index."""
    datacenter: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    source: ChangeSource
    observed_at: datetime = Field(default_factory=utc_now)
    relay_id: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    changed: dict[str, Any] = Field(default_factory=dict)
    """Item → its new state in Consul's shape: the node's catalog entry (``nodes``), its
    ``serfHealth`` check (``checks``), or the name's tag list (``services``)."""
    removed: tuple[str, ...] = ()
    """Items the answer no longer lists (node names, or service names)."""

    @property
    def origin(self) -> str:
        """One observer of Consul, as for ``ConsulChange``."""
        return origin_of(self.source, self.relay_id)

    @property
    def moved_only(self) -> bool:
        """The index moved without a visible change in the list (an instance changed)."""
        return not self.changed and not self.removed

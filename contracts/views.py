"""Per-node views published by the enricher and the response models of the HTTP API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NodeStatus = Literal["alive", "dead", "unknown"]
"""The old endpoint's statuses: ``dead`` covers a node that failed and one that left (Consul
deregisters a node that leaves, so only the agent's member list, not always readable, could
tell the two apart)."""
NodeType = Literal["server", "client"]
ServicesStatus = Literal["ok", "error"]

MAX_NODE_META_PAIRS = 72
"""Node meta pairs kept per node: Consul's limit of 64 on an agent's own meta, plus room for the
``consul-*`` pairs Consul adds itself (``consul-network-segment``, ``consul-version``, …)."""
MAX_NODE_META_KEY_LENGTH = 128
"""Longest node meta key (Consul's own limit)."""
MAX_NODE_META_VALUE_LENGTH = 512
"""Longest node meta value (Consul's own limit)."""
MAX_TAGGED_ADDRESSES = 16
"""Tagged addresses kept per node (Consul's agents set six: ``lan``/``wan`` with their
``_ipv4``/``_ipv6`` forms)."""
MAX_TAGGED_ADDRESS_KEY_LENGTH = 128
"""Longest tagged address name."""
MAX_ADDRESS_LENGTH = 512
"""Longest node address or tagged address."""
MAX_NODE_ID_LENGTH = 64
"""Longest node ID (Consul's are UUIDs: 36 characters)."""

MetaKey = Annotated[str, StringConstraints(max_length=MAX_NODE_META_KEY_LENGTH)]
MetaValue = Annotated[str, StringConstraints(max_length=MAX_NODE_META_VALUE_LENGTH)]
AddressKey = Annotated[str, StringConstraints(max_length=MAX_TAGGED_ADDRESS_KEY_LENGTH)]
Address = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_LENGTH)]
NodeMeta = Annotated[dict[MetaKey, MetaValue], Field(max_length=MAX_NODE_META_PAIRS)]
"""A node's meta as Consul's catalog lists it, within Consul's limits."""
TaggedAddresses = Annotated[dict[AddressKey, Address], Field(max_length=MAX_TAGGED_ADDRESSES)]
"""A node's tagged addresses (``lan``, ``wan``, ``lan_ipv4``, …) as the catalog lists them."""


class ServiceInstance(BaseModel):
    """One service instance registered on a node (unknown fields ignored, as in ``NodeView``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    tags: tuple[str, ...] = ()
    port: int = 0
    address: str = ""


class NodeView(BaseModel):
    """Everything nodeview knows about one node, as served by the API.

    Unknown fields are ignored: a replica one release behind still reads a newer enricher's
    views (without what it does not know). Fields are only ever added, with defaults.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    node: str
    addr: str
    id: str = Field(default="", max_length=MAX_NODE_ID_LENGTH)
    """Consul's node ID (from the catalog; empty for a node the catalog does not list)."""
    datacenter: str = ""
    status: NodeStatus = "unknown"
    type: NodeType = "client"
    site_name: str
    site_code: str | None = None
    services_count: int = Field(default=0, ge=0)
    """Services on the node, the ``consul`` service excluded."""
    service_names: tuple[str, ...] = ()
    services: dict[str, ServiceInstance] = Field(default_factory=dict)
    """Service ID → instance."""
    services_status: ServicesStatus = "ok"
    error: str | None = None
    """Why the services could not be read, when ``services_status`` is ``error``."""
    meta: NodeMeta = Field(default_factory=dict)
    """Node meta from the catalog (empty for a node the catalog does not list)."""
    tagged_addresses: TaggedAddresses = Field(default_factory=dict)
    """Tagged addresses from the catalog (empty for a node the catalog does not list)."""
    consul_index: int = 0
    updated_at: datetime


class ViewMeta(BaseModel):
    """State of the whole view, written by the enricher after each change it commits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generation: int = Field(ge=0)
    consul_index: int = 0
    main_server: str = ""
    active_server: str = ""
    synced_at: datetime
    """When the enricher last committed a change or finished a resync."""
    last_resync_id: str | None = None
    """``request_id`` of the last ``ResyncRequested`` the enricher completed."""
    recent_resync_ids: tuple[str, ...] = ()
    """``request_id`` of the latest completed requests (several may share one resync)."""
    last_resync_at: datetime | None = None
    last_resync_changed: int = 0
    last_event_ltime: int = 0
    """Highest Lamport time of a ``nodeview-resync`` user event already acted on."""


class DegradedItem(BaseModel):
    """Something the view cannot vouch for right now, with why and since when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item: str
    """What is affected: ``resync``, ``members``, ``nodes list``, ``services list``, …"""
    reason: str
    since: datetime


class Heartbeat(BaseModel):
    """Liveness and progress of the active enricher, written every few seconds.

    Unknown fields are ignored: an older API replica reads a newer enricher's heartbeat.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    enricher_id: str
    at: datetime
    interval_seconds: float
    behind_since: datetime | None = None
    """Since when the enricher has work it cannot finish (a resync pending or failing);
    ``None`` while it keeps up. The view is stale once this is older than the threshold."""
    degraded: tuple[DegradedItem, ...] = ()
    """The oldest open items (at most 50)."""
    degraded_total: int = Field(default=0, ge=0)
    """How many items are open in all."""


class NodeEntry(BaseModel):
    """One node in ``GET /api/v1/nodes``: the legacy fields plus nodeview's own."""

    model_config = ConfigDict(frozen=True)

    node: str
    addr: str
    status: NodeStatus
    type: NodeType
    datacenter: str
    site_name: str
    site_code: str | None
    services_count: int
    services_status: ServicesStatus
    error: str | None
    service_names: tuple[str, ...]
    updated_at: datetime
    id: str = ""
    """Consul's node ID (empty from a replica older than these three fields)."""
    meta: dict[str, str] = Field(default_factory=dict)
    tagged_addresses: dict[str, str] = Field(default_factory=dict)


class NodesResponse(BaseModel):
    """Body of ``GET /api/v1/nodes``."""

    success: bool = True
    data: list[NodeEntry]
    total: int
    main_server: str
    active_server: str
    generation: int
    synced_at: datetime | None
    stale: bool
    degraded: list[DegradedItem] = Field(default_factory=list)
    """What the view cannot vouch for right now; empty while every read succeeds."""


class ServiceDetail(BaseModel):
    """One service in ``GET /api/v1/nodes/{node_addr}/services``."""

    ID: str
    Service: str
    Tags: list[str]
    Port: int
    Address: str


class NodeServicesResponse(BaseModel):
    """Body of ``GET /api/v1/nodes/{node_addr}/services``."""

    success: bool = True
    node: str
    node_name: str
    services: dict[str, ServiceDetail]
    total: int
    services_status: ServicesStatus
    error: str | None
    active_server: str


class ServiceNamesResponse(BaseModel):
    """Body of ``GET /api/v1/nodes/{node_addr}/service-names``."""

    success: bool = True
    node: str
    node_name: str
    data: list[str]
    total: int
    active_server: str


class FlushResponse(BaseModel):
    """Body of ``POST /api/v1/admin/cache/nodes/flush``."""

    success: bool
    message: str
    keys_flushed: int
    flushed_at: datetime
    warning: str | None
    request_id: str
    generation: int | None = None


class TargetGroup(BaseModel):
    """One group of ``GET /api/v1/sd/prometheus`` (Prometheus' ``http_sd_configs`` format)."""

    targets: list[str]
    """One ``host:port``: the service instance's address (else its node's) and port."""
    labels: dict[str, str]
    """``__meta_nodeview_*`` labels of the instance and its node."""


class ErrorResponse(BaseModel):
    """Body of every error answer of the API."""

    success: bool = False
    error: str
    detail: str | None = None


class NodeDeletedEvent(BaseModel):
    """Data of the ``node_deleted`` event of ``GET /api/v1/nodes/events``."""

    node: str
    addr: str


class MetaEvent(BaseModel):
    """Data of the ``meta`` event of ``GET /api/v1/nodes/events``: the view's new generation."""

    generation: int


class ShutdownEvent(BaseModel):
    """Data of the ``shutdown`` event: the replica is stopping; reconnect (to another one)."""

    reason: str

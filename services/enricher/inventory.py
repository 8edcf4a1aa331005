"""What the enricher knows of the cluster, parsed from Consul payloads, and the views from it."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.events import SERF_CHECK
from contracts.views import (
    MAX_ADDRESS_LENGTH,
    MAX_NODE_ID_LENGTH,
    MAX_NODE_META_KEY_LENGTH,
    MAX_NODE_META_PAIRS,
    MAX_NODE_META_VALUE_LENGTH,
    MAX_TAGGED_ADDRESS_KEY_LENGTH,
    MAX_TAGGED_ADDRESSES,
    NodeStatus,
    NodeType,
    NodeView,
    ServiceInstance,
)
from services.enricher.sites import SitesMap

CONSUL_SERVICE = "consul"
"""The service every Consul server runs; not counted in ``services_count``."""

SERF_ALIVE = 1
SERF_LEFT = 3
SERF_FAILED = 4
SERF_HEALTH_CHECK = SERF_CHECK

NodeServices = dict[str, ServiceInstance]


class BadConsulPayload(ValueError):
    """A Consul payload does not have the documented shape."""


@dataclass(frozen=True)
class Member:
    """One agent of the LAN gossip pool, from ``/v1/agent/members``."""

    name: str
    addr: str
    status: NodeStatus
    type: NodeType
    datacenter: str


@dataclass(frozen=True)
class CatalogNode:
    """One node of the catalog, from ``/v1/catalog/nodes``."""

    name: str
    addr: str
    datacenter: str
    id: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    tagged_addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Inventory:
    """Mutable knowledge of the enricher; views are derived from it, never stored apart."""

    members: dict[str, Member] | None = None
    """``None`` while the members endpoint was never read (or is not available)."""
    catalog: dict[str, CatalogNode] = field(default_factory=dict)
    serf_health: dict[str, str] = field(default_factory=dict)
    services: dict[str, NodeServices] = field(default_factory=dict)
    """Node → service ID → instance."""
    service_tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Last ``/v1/catalog/services`` answer."""
    failures: dict[str, str] = field(default_factory=dict)
    """Node → why its services could not be read."""
    service_failures: dict[str, str] = field(default_factory=dict)
    """Service name → why its instances could not be read (every node running it is affected)."""
    node_index: dict[str, int] = field(default_factory=dict)
    """Node → Consul index of the change that last touched it."""

    def knows(self, node: str) -> bool:
        """Tell whether ``node`` is known from the members or the catalog."""
        return node in self.catalog or (self.members is not None and node in self.members)

    def node_names(self) -> set[str]:
        """Return every node known from the members or the catalog."""
        names = set(self.catalog)
        if self.members is not None:
            names.update(self.members)
        return names


def member_status(serf_status: object) -> NodeStatus:
    """Map a Serf member status to the legacy status (alive / dead / unknown).

    ``left`` (3) is ``dead`` as in the old endpoint: Consul deregisters a node that leaves, so
    only the member list, which nodeview cannot always read, could keep it apart from failed.
    """
    if serf_status == SERF_ALIVE:
        return "alive"
    if serf_status in (SERF_LEFT, SERF_FAILED):
        return "dead"
    return "unknown"


def health_status(check_status: str | None) -> NodeStatus:
    """Map a ``serfHealth`` check status to a node status, for nodes that are not members."""
    if check_status in ("passing", "warning"):
        return "alive"
    if check_status == "critical":
        return "dead"
    return "unknown"


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadConsulPayload(f"{key} is not a string")
    return value


def _objects(payload: Any, what: str) -> list[Mapping[str, Any]]:
    if payload is None:
        return []
    if not isinstance(payload, list) or not all(isinstance(i, dict) for i in payload):
        raise BadConsulPayload(f"{what} payload is not a list of objects")
    return payload


def parse_members(payload: Any) -> dict[str, Member]:
    """Parse ``/v1/agent/members``."""
    members: dict[str, Member] = {}
    for item in _objects(payload, "members"):
        tags = item.get("Tags") or {}
        if not isinstance(tags, dict):
            raise BadConsulPayload("member Tags is not an object")
        name = _text(item, "Name")
        if not name:
            raise BadConsulPayload("member without Name")
        members[name] = Member(
            name=name,
            addr=_text(item, "Addr"),
            status=member_status(item.get("Status")),
            type="server" if tags.get("role") == "consul" else "client",
            datacenter=str(tags.get("dc") or ""),
        )
    return members


def bounded_pairs(
    value: Any, what: str, *, pairs: int, key_length: int, value_length: int
) -> dict[str, str]:
    """A string map from Consul, within bounds: pairs over a length limit are left out, then
    the first ``pairs`` by key are kept (Consul enforces the same limits on node meta)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadConsulPayload(f"{what} is not an object of strings")
    fitting = sorted(
        (k, v) for k, v in value.items() if len(k) <= key_length and len(v) <= value_length
    )
    return dict(fitting[:pairs])


def parse_catalog_nodes(payload: Any) -> dict[str, CatalogNode]:
    """Parse ``/v1/catalog/nodes`` (also the ``nodes`` watch payload)."""
    nodes: dict[str, CatalogNode] = {}
    for item in _objects(payload, "nodes"):
        name = _text(item, "Node")
        if not name:
            raise BadConsulPayload("catalog node without Node")
        node_id = _text(item, "ID")
        nodes[name] = CatalogNode(
            name=name,
            addr=_text(item, "Address"),
            datacenter=_text(item, "Datacenter"),
            id=node_id if len(node_id) <= MAX_NODE_ID_LENGTH else "",
            meta=bounded_pairs(
                item.get("Meta"),
                "node Meta",
                pairs=MAX_NODE_META_PAIRS,
                key_length=MAX_NODE_META_KEY_LENGTH,
                value_length=MAX_NODE_META_VALUE_LENGTH,
            ),
            tagged_addresses=bounded_pairs(
                item.get("TaggedAddresses"),
                "node TaggedAddresses",
                pairs=MAX_TAGGED_ADDRESSES,
                key_length=MAX_TAGGED_ADDRESS_KEY_LENGTH,
                value_length=MAX_ADDRESS_LENGTH,
            ),
        )
    return nodes


def parse_serf_health(payload: Any) -> dict[str, str]:
    """Extract node → ``serfHealth`` status from a health checks list (the ``checks`` watch)."""
    health: dict[str, str] = {}
    for item in _objects(payload, "checks"):
        if item.get("CheckID") == SERF_HEALTH_CHECK:
            health[_text(item, "Node")] = _text(item, "Status")
    return health


def parse_service_tags(payload: Any) -> dict[str, tuple[str, ...]]:
    """Parse ``/v1/catalog/services`` (also the ``services`` watch payload)."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise BadConsulPayload("services payload is not an object")
    result: dict[str, tuple[str, ...]] = {}
    for name, tags in payload.items():
        if tags is not None and not isinstance(tags, list):
            raise BadConsulPayload("service tags are not a list")
        result[str(name)] = tuple(sorted(str(t) for t in tags or ()))
    return result


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadConsulPayload("Tags is not a list")
    return tuple(str(t) for t in value)


def _port(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadConsulPayload("Port is not an integer")
    return value


def parse_node_services(payload: Any) -> NodeServices:
    """Parse ``/v1/catalog/node-services/<node>`` or ``/v1/catalog/node/<node>``."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise BadConsulPayload("node services payload is not an object")
    raw = payload.get("Services") or []
    items = list(raw.values()) if isinstance(raw, dict) else raw
    result: NodeServices = {}
    for item in _objects(items, "node services"):
        service_id = _text(item, "ID") or _text(item, "Service")
        result[service_id] = ServiceInstance(
            name=_text(item, "Service"),
            tags=_tags(item.get("Tags")),
            port=_port(item.get("Port")),
            address=_text(item, "Address"),
        )
    return result


def parse_catalog_service(payload: Any) -> dict[str, NodeServices]:
    """Parse ``/v1/catalog/service/<name>`` into node → that service's instances."""
    result: dict[str, NodeServices] = {}
    for item in _objects(payload, "catalog service"):
        node = _text(item, "Node")
        service_id = _text(item, "ServiceID") or _text(item, "ServiceName")
        result.setdefault(node, {})[service_id] = ServiceInstance(
            name=_text(item, "ServiceName"),
            tags=_tags(item.get("ServiceTags")),
            port=_port(item.get("ServicePort")),
            address=_text(item, "ServiceAddress"),
        )
    return result


def parse_health_service(payload: Any) -> dict[str, NodeServices]:
    """Parse ``/v1/health/service/<name>`` (the ``service`` watch) into node → instances."""
    result: dict[str, NodeServices] = {}
    for item in _objects(payload, "health service"):
        node = item.get("Node")
        service = item.get("Service")
        if not isinstance(node, dict) or not isinstance(service, dict):
            raise BadConsulPayload("health service entry needs Node and Service objects")
        service_id = _text(service, "ID") or _text(service, "Service")
        result.setdefault(_text(node, "Node"), {})[service_id] = ServiceInstance(
            name=_text(service, "Service"),
            tags=_tags(service.get("Tags")),
            port=_port(service.get("Port")),
            address=_text(service, "Address"),
        )
    return result


@dataclass(frozen=True)
class ServiceSummary:
    """One service name as Consul's UI summary lists it: where it runs, how often, its tags."""

    nodes: frozenset[str]
    instances: int
    tags: frozenset[str] = frozenset()


def parse_ui_services(payload: Any) -> dict[str, ServiceSummary]:
    """Parse ``/v1/internal/ui/services`` into name → summary (peers' imported names left out)."""
    summaries: dict[str, ServiceSummary] = {}
    for item in _objects(payload, "ui services"):
        if item.get("PeerName"):
            continue
        nodes = item.get("Nodes") or []
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise BadConsulPayload("service summary Nodes is not a list of names")
        count = item.get("InstanceCount")
        if not isinstance(count, int) or isinstance(count, bool):
            raise BadConsulPayload("service summary InstanceCount is not an integer")
        tags = frozenset(_tags(item.get("Tags")))
        summaries[_text(item, "Name")] = ServiceSummary(frozenset(nodes), count, tags)
    return summaries


@dataclass
class Held:
    """One service name in the inventory: instances per node and the union of their tags."""

    nodes: dict[str, int] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)


def held_instances(services: Mapping[str, NodeServices]) -> dict[str, Held]:
    """Service name → where the inventory holds it, how often, with which tags."""
    held: dict[str, Held] = {}
    for node, node_services in services.items():
        for instance in node_services.values():
            entry = held.setdefault(instance.name, Held())
            entry.nodes[node] = entry.nodes.get(node, 0) + 1
            entry.tags.update(instance.tags)
    return held


def held_after(
    held: Mapping[str, Held], services: Mapping[str, NodeServices], touched: Iterable[str]
) -> dict[str, Held]:
    """``held`` once only the ``touched`` nodes' instances changed.

    Only the names those nodes hold, or held, are counted again, over their holders: the cost
    follows the change, not the inventory (``held_instances`` walks every instance).
    """
    nodes = set(touched)
    names = {name for name, entry in held.items() if nodes & entry.nodes.keys()}
    names |= {inst.name for node in nodes for inst in services.get(node, {}).values()}
    result = dict(held)
    for name in names:
        entry = Held()
        before = held.get(name)
        for node in (before.nodes.keys() if before else set()) | nodes:
            for instance in services.get(node, {}).values():
                if instance.name == name:
                    entry.nodes[node] = entry.nodes.get(node, 0) + 1
                    entry.tags.update(instance.tags)
        if entry.nodes:
            result[name] = entry
        else:
            result.pop(name, None)
    return result


@dataclass
class Moves:
    """Where instances moved according to Consul's summary."""

    gained: set[str] = field(default_factory=set)
    """Nodes now holding a name they did not: read them."""
    lost: dict[str, set[str]] = field(default_factory=dict)
    """Node → names it no longer holds at all: dropped without a read."""


def instance_moves(held: Mapping[str, Held], summaries: Mapping[str, ServiceSummary]) -> Moves:
    """Compare the inventory with the summary, name by name."""
    moves = Moves()
    for name in summaries.keys() | held.keys():
        summary = summaries.get(name)
        theirs = summary.nodes if summary is not None else frozenset()
        ours = held[name].nodes.keys() if name in held else set()
        moves.gained |= theirs - ours
        for node in ours - theirs:
            moves.lost.setdefault(node, set()).add(name)
    return moves


def names_to_read(held: Mapping[str, Held], summaries: Mapping[str, ServiceSummary]) -> set[str]:
    """Names on the right nodes whose count or tags still differ from Consul's: read them."""
    unexplained = set()
    for name, summary in summaries.items():
        entry = held.get(name, Held())
        if summary.nodes != entry.nodes.keys():
            continue
        if summary.instances != sum(entry.nodes.values()) or summary.tags != entry.tags:
            unexplained.add(name)
    return unexplained


@dataclass(frozen=True)
class Fresh:
    """Nodes and names a batch read (successfully) beside the summary, which may be older."""

    nodes: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MovePlan:
    """What a summary says of the inventory: names to drop, nodes to read, names left unsure."""

    drop: dict[str, set[str]]
    """Node → names it no longer holds at all: dropped without a read."""
    read: list[str]
    """Nodes now holding a name they did not: read them."""
    summaries: dict[str, ServiceSummary]
    held: dict[str, Held]

    def unexplained(self, services: dict[str, NodeServices], touched: set[str]) -> set[str]:
        """Names whose count or tags still differ once ``touched`` nodes changed: read them."""
        return names_to_read(held_after(self.held, services, touched), self.summaries)


def plan_moves(
    services: dict[str, NodeServices], summaries: dict[str, ServiceSummary], fresh: Fresh
) -> MovePlan:
    """Compare the inventory with Consul's summary, leaving ``fresh`` nodes and names alone.

    The summary is read beside a batch's reads by node and by name, so either may be the newer:
    where they disagree, a write came after the batch's events, and its own event has the
    summary read again. Those nodes and names are left to their own reads.
    """
    summaries = {k: v for k, v in summaries.items() if k not in fresh.names}
    held = held_instances(services)
    moves = instance_moves({k: v for k, v in held.items() if k not in fresh.names}, summaries)
    drop = {
        node: names
        for node, names in moves.lost.items()
        if node not in moves.gained and node not in fresh.nodes and node in services
    }
    return MovePlan(drop, sorted(moves.gained - fresh.nodes), summaries, held)


def drop_names(services: NodeServices, names: set[str]) -> None:
    """Remove a node's instances of ``names``."""
    for service_id in [sid for sid, inst in services.items() if inst.name in names]:
        del services[service_id]


def replace_service(
    services: dict[str, NodeServices], name: str, instances: Mapping[str, NodeServices]
) -> set[str]:
    """Replace every instance of service ``name`` by ``instances``; return the nodes touched."""
    touched: set[str] = set()
    for node, node_services in services.items():
        stale = [sid for sid, inst in node_services.items() if inst.name == name]
        for sid in stale:
            del node_services[sid]
        if stale:
            touched.add(node)
    for node, new in instances.items():
        services.setdefault(node, {}).update(new)
        touched.add(node)
    return touched


def services_count(services: Iterable[ServiceInstance]) -> int:
    """Count services the way the old backend did: the ``consul`` service excluded."""
    return sum(1 for inst in services if inst.name != CONSUL_SERVICE)


def build_view(
    inventory: Inventory,
    node: str,
    sites: SitesMap,
    unmapped_label: str,
    now: datetime,
) -> NodeView | None:
    """Build one node's view from the inventory; ``None`` when the node is not known."""
    member = inventory.members.get(node) if inventory.members is not None else None
    catalog = inventory.catalog.get(node)
    if member is None and catalog is None:
        return None
    addr = member.addr if member and member.addr else (catalog.addr if catalog else "")
    services = inventory.services.get(node, {})
    # The node's serfHealth check is Consul's indexed word on its gossip status, ordered with
    # every other change; the members list (read live, without an index) only says what no
    # check can: a node that left the catalog.
    from_check = health_status(inventory.serf_health.get(node))
    status = member.status if from_check == "unknown" and member is not None else from_check
    names = {inst.name for inst in services.values()}
    is_server = (member is not None and member.type == "server") or (
        member is None and CONSUL_SERVICE in names
    )
    site = sites.lookup(addr)
    failure = inventory.failures.get(node) or next(
        (
            f"service {name}: {inventory.service_failures[name]}"
            for name in sorted(names)
            if name in inventory.service_failures
        ),
        None,
    )
    return NodeView(
        node=node,
        addr=addr,
        id=catalog.id if catalog else "",
        datacenter=(member.datacenter if member else "") or (catalog.datacenter if catalog else ""),
        status=status,
        type="server" if is_server else "client",
        site_name=site.name if site else unmapped_label,
        site_code=site.code if site else None,
        services_count=services_count(services.values()),
        service_names=tuple(sorted(names)),
        services=dict(sorted(services.items())),
        services_status="error" if failure else "ok",
        error=failure,
        meta=dict(catalog.meta) if catalog else {},
        tagged_addresses=dict(catalog.tagged_addresses) if catalog else {},
        consul_index=inventory.node_index.get(node, 0),
        updated_at=now,
    )


_BOOKKEEPING = frozenset({"updated_at", "consul_index"})
_COMPARED = tuple(name for name in NodeView.model_fields if name not in _BOOKKEEPING)


def same_view(a: NodeView, b: NodeView) -> bool:
    """Tell whether two views differ only in bookkeeping (``updated_at``, ``consul_index``)."""
    # Field by field (models compare by value): a resync compares every node, so no dumps.
    return all(getattr(a, name) == getattr(b, name) for name in _COMPARED)

"""Deterministic cluster inventories: servers, nodes per site, services, the sites document."""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.consul_double.state import ConsulState

SITE_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("palmas", "Palmas (TO)", "blue"),
    ("rio", "Rio de Janeiro (RJ)", "green"),
    ("recife", "Recife (PE)", "orange"),
    ("saopaulo", "Sao Paulo (SP)", "red"),
    ("brasilia", "Brasilia (DF)", "purple"),
    ("salvador", "Salvador (BA)", "yellow"),
    ("manaus", "Manaus (AM)", "teal"),
    ("curitiba", "Curitiba (PR)", "pink"),
)
"""Named sites (code, display name, color); more sites get generated codes."""

SERVICE_CATALOG: tuple[tuple[str, int], ...] = (
    ("node_exporter", 9100),
    ("prometheus", 9090),
    ("alertmanager", 9093),
    ("snmp_exporter", 9116),
    ("blackbox_exporter", 9115),
    ("grafana", 3000),
    ("loki", 3100),
    ("pushgateway", 9091),
)
"""Named services and their ports; more services get generated names."""

MAX_SITES = 200
"""Each site owns the second octet ``10 + site`` of its nodes' 127.x.y.z addresses."""

MAX_SERVICES_PER_NODE = 3
"""Upper bound of service instances a generated node runs."""


@dataclass(frozen=True)
class InventoryService:
    """A service instance a node runs."""

    id: str
    name: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InventoryNode:
    """A node of the inventory (a Consul server or a client agent)."""

    name: str
    addr: str
    meta: Mapping[str, str] = field(default_factory=dict)
    services: tuple[InventoryService, ...] = ()
    server: bool = False
    site: str | None = None


@dataclass(frozen=True)
class Inventory:
    """What a fresh cluster holds: nodes with their services and the sites document."""

    nodes: tuple[InventoryNode, ...] = ()
    sites_document: Mapping[str, Any] | None = None

    @property
    def servers(self) -> list[InventoryNode]:
        """The server nodes, in order."""
        return [node for node in self.nodes if node.server]

    def apply(self, state: "ConsulState") -> None:
        """Join every node not yet a member, register its services, then store the sites."""
        for node in self.nodes:
            if node.name not in state.members:
                state.join_node(node.name, node.addr, server=node.server, meta=node.meta)
        for node in self.nodes:
            for service in node.services:
                state.register_service(
                    node.name,
                    service.id,
                    service.name,
                    tags=service.tags,
                    port=service.port,
                    meta=service.meta,
                )
        if self.sites_document is not None:
            state.set_sites(self.sites_document)


def server_node(position: int) -> InventoryNode:
    """The ``position``-th (0-based) default server: ``consul-server-N`` at ``127.0.1.N``."""
    return InventoryNode(f"consul-server-{position + 1}", f"127.0.1.{position + 1}", server=True)


def _site(index: int) -> tuple[str, str, str]:
    """Code, name and color of the ``index``-th site."""
    if index < len(SITE_CATALOG):
        return SITE_CATALOG[index]
    code = f"site{index + 1:02d}"
    return code, f"Site {index + 1:02d}", "gray"


def _service(index: int) -> tuple[str, int]:
    """Name and port of the ``index``-th service."""
    if index < len(SERVICE_CATALOG):
        return SERVICE_CATALOG[index]
    return f"exporter_{index + 1:02d}", 9200 + index


def generate_inventory(
    nodes: int = 50, services: int = 8, sites: int = 3, seed: int = 1, *, servers: int = 1
) -> Inventory:
    """A deterministic inventory: ``servers`` servers plus ``nodes`` nodes spread over sites."""
    if nodes and (sites < 1 or services < 1):
        raise ValueError("nodes need at least one site and one service")
    if sites > MAX_SITES:
        raise ValueError(f"at most {MAX_SITES} sites are supported")
    rng = random.Random(seed)
    names = [_service(i) for i in range(services)]
    members = [server_node(i) for i in range(servers)]
    per_site = [0] * sites
    first_address: dict[int, str] = {}
    for position in range(nodes):
        site_index = position % sites
        ordinal = per_site[site_index]
        per_site[site_index] += 1
        code = _site(site_index)[0]
        addr = f"127.{10 + site_index}.{ordinal // 200}.{10 + ordinal % 200}"
        first_address.setdefault(site_index, addr)
        count = rng.randint(1, min(MAX_SERVICES_PER_NODE, services))
        chosen = {position % services} | set(rng.sample(range(services), count - 1))
        instances = tuple(
            InventoryService(
                names[i][0],
                names[i][0],
                names[i][1],
                ("exporter", code, "linux"),
                {"metrics_path": "/metrics", "site": code},
            )
            for i in sorted(chosen)
        )
        members.append(
            InventoryNode(
                f"prom-{code}-{ordinal + 1:02d}",
                addr,
                {"os": "linux", "role": "prom", "site": code},
                instances,
                site=code,
            )
        )
    document = _sites_document(sites, first_address) if sites else None
    return Inventory(tuple(members), document)


def _sites_document(sites: int, first_address: Mapping[int, str]) -> dict[str, Any]:
    """The sites document, mapping each site to the address of its first node."""
    entries = []
    for index in range(sites):
        code, name, color = _site(index)
        address = first_address.get(index, "")
        entries.append(
            {
                "code": code,
                "name": name,
                "is_default": index == 0,
                "color": color,
                "prometheus_instance": address,
                "prometheus_host": address,
            }
        )
    return {"data": {"sites": entries}}

"""In-memory fakes of the enricher's seams: Consul reads and the view store."""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.views import Heartbeat, NodeView, ViewMeta
from services.consul import (
    ConsulHTTPError,
    ConsulNotFound,
    ConsulResponse,
    ConsulTimeout,
    ConsulUnavailable,
)

SERVER = "consul-1:8500"


@dataclass
class Instance:
    """One registered service instance."""

    name: str
    tags: tuple[str, ...] = ()
    port: int = 0


@dataclass
class FakeConsul:
    """A catalog in memory answering the enricher's reads in Consul's JSON shapes.

    ``refuse`` makes an endpoint answer a 4xx status, ``failing`` makes it unavailable,
    ``filtered`` marks its answers ACL-filtered; ``calls`` counts the reads by endpoint.
    """

    nodes: dict[str, str] = field(default_factory=dict)
    """Node → address."""
    services: dict[str, dict[str, Instance]] = field(default_factory=dict)
    """Node → service id → instance."""
    serf: dict[str, str] = field(default_factory=dict)
    members_list: dict[str, int] | None = None
    """Serf member → status (1 alive, 3 left, 4 failed); ``None``: no agent API (403)."""
    refuse: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    """Endpoints that time out."""
    filtered: set[str] = field(default_factory=set)
    """Endpoints whose answers say Consul's ACLs left items out."""
    calls: Counter[str] = field(default_factory=Counter)
    index: int = 100
    summarised: dict[str, dict[str, Instance]] | None = None
    """What the summary answers from when set: the services as a read a moment older saw them."""

    @property
    def main_server(self) -> str:
        """The one server."""
        return SERVER

    @property
    def active_server(self) -> str:
        """The one server."""
        return SERVER

    def _answer(self, endpoint: str, data: Any) -> ConsulResponse:
        self.calls[endpoint] += 1
        if endpoint in self.failing:
            raise ConsulUnavailable("every server failed", endpoint=endpoint)
        if endpoint in self.slow:
            raise ConsulTimeout("every server timed out", endpoint=endpoint)
        status = self.refuse.get(endpoint)
        if status == 404:
            raise ConsulNotFound("404", endpoint=endpoint, server=SERVER, status=404)
        if status is not None:
            raise ConsulHTTPError(str(status), endpoint=endpoint, server=SERVER, status=status)
        return ConsulResponse(
            data=data,
            index=self.index,
            known_leader=True,
            last_contact_ms=0,
            server=SERVER,
            filtered_by_acls=endpoint in self.filtered,
        )

    async def members(self) -> ConsulResponse:
        """The Serf members; without ``members_list`` no agent API (statuses from serfHealth)."""
        if self.members_list is None:
            self.calls["members"] += 1
            raise ConsulHTTPError("403", endpoint="members", server=SERVER, status=403)
        data = [
            {
                "Name": name,
                "Addr": self.nodes.get(name, "10.9.9.9"),
                "Port": 8301,
                "Status": status,
                "Tags": {"role": "node", "dc": "dc1"},
            }
            for name, status in sorted(self.members_list.items())
        ]
        return self._answer("members", data)

    async def catalog_nodes(self) -> ConsulResponse:
        """Every node."""
        data = [
            {"ID": f"id-{n}", "Node": n, "Address": a, "Datacenter": "dc1"}
            for n, a in sorted(self.nodes.items())
        ]
        return self._answer("catalog_nodes", data)

    async def catalog_services(self) -> ConsulResponse:
        """Every name with the union of its tags."""
        tags: dict[str, set[str]] = {}
        for instances in self.services.values():
            for instance in instances.values():
                tags.setdefault(instance.name, set()).update(instance.tags)
        return self._answer("catalog_services", {n: sorted(t) for n, t in sorted(tags.items())})

    async def serf_health(self) -> ConsulResponse:
        """Every node's serfHealth check."""
        data = [
            {"Node": n, "CheckID": "serfHealth", "Status": s} for n, s in sorted(self.serf.items())
        ]
        return self._answer("serf_health", data)

    async def kv_get(self, key: str) -> ConsulResponse:
        """No sites document."""
        return self._answer("kv", None)

    async def ui_services(self) -> ConsulResponse:
        """Consul's UI summary: per name its nodes, instance count and tags."""
        summary: dict[str, dict[str, Any]] = {}
        services = self.services if self.summarised is None else self.summarised
        for node, instances in sorted(services.items()):
            for instance in instances.values():
                entry = summary.setdefault(
                    instance.name,
                    {"Name": instance.name, "Nodes": [], "InstanceCount": 0, "Tags": []},
                )
                if node not in entry["Nodes"]:
                    entry["Nodes"].append(node)
                entry["InstanceCount"] += 1
                entry["Tags"] = sorted(set(entry["Tags"]) | set(instance.tags))
        return self._answer("ui_services", [summary[n] for n in sorted(summary)])

    async def ui_nodes(self) -> ConsulResponse:
        """Consul's UI dump: every node with its services (checks left out here)."""
        data = [
            {
                "ID": f"id-{node}",
                "Node": node,
                "Address": addr,
                "Services": [
                    {"ID": sid, "Service": i.name, "Tags": list(i.tags), "Port": i.port}
                    for sid, i in sorted(self.services.get(node, {}).items())
                ],
                "Checks": [],
            }
            for node, addr in sorted(self.nodes.items())
        ]
        return self._answer("ui_nodes", data)

    async def node_services(self, node: str) -> ConsulResponse:
        """One node's services."""
        services = [
            {"ID": sid, "Service": i.name, "Tags": list(i.tags), "Port": i.port}
            for sid, i in sorted(self.services.get(node, {}).items())
        ]
        return self._answer("node_services", {"Node": {"Node": node}, "Services": services})

    async def catalog_service(self, name: str) -> ConsulResponse:
        """Every instance of one name."""
        data = [
            {
                "Node": node,
                "ServiceID": sid,
                "ServiceName": i.name,
                "ServiceTags": list(i.tags),
                "ServicePort": i.port,
            }
            for node, instances in sorted(self.services.items())
            for sid, i in sorted(instances.items())
            if i.name == name
        ]
        return self._answer("catalog_service", data)


@dataclass
class MemoryStore:
    """A ``ViewStore`` in memory."""

    views: dict[str, NodeView] = field(default_factory=dict)
    meta: ViewMeta | None = None

    async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
        """Keep the view."""
        self.views[view.node] = view

    async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
        """Forget the view."""
        self.views.pop(node, None)

    async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
        """Keep the meta entry."""
        self.meta = meta

    async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Heartbeats are not looked at here."""

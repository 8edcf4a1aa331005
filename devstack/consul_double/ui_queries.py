"""Consul's internal UI reads: the service listing (``UIServices``) and the node dump (``UINodes``).

Both come from server RPCs (``Internal.ServiceDump``, ``Internal.NodeDump``) whose index is the
largest of the nodes, services and checks tables, and whose ``?filter=`` applies to the dumped
items (``CheckServiceNode`` and ``NodeInfo``) before the HTTP handler shapes the answer.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack.consul_double.filtering import Item, Predicate
from devstack.consul_double.queries import (
    Answer,
    catalog_max,
    check_service_node,
    checks_of,
    everything,
    node_checks,
)
from devstack.consul_double.records import CheckStatus

if TYPE_CHECKING:
    from devstack.consul_double.state import ConsulState

EXTERNAL_SOURCE_META = "external-source"
"""Service meta key Consul collects into a summary's ``ExternalSources``."""


def dump_index(state: "ConsulState") -> int:
    """Index of both dumps: the largest of the nodes, services and checks tables (at least 1)."""
    return max(1, catalog_max(state, checks=True))


@dataclass
class _Summary:
    """One service name's ``ServiceSummary`` as ``summarizeServices`` accumulates it."""

    name: str
    kind: str = ""
    datacenter: str = ""
    tags: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    external_sources: list[str] = field(default_factory=list)
    instances: int = 0
    connect_native: bool = False
    checks: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, entry: Item) -> None:
        """Fold one instance (a ``CheckServiceNode``) into the summary."""
        node, service = entry["Node"], entry["Service"]
        self.fold(
            node["Node"],
            node["Datacenter"],
            service,
            [(check["CheckID"], check["Status"]) for check in entry["Checks"]],
        )

    def fold(
        self, node: str, datacenter: str, service: Item, checks: Sequence[tuple[str, str]]
    ) -> None:
        """Fold one instance: its node, the service's fields, its checks' IDs and statuses."""
        self.nodes.add(node)
        self.kind = service.get("Kind", "")
        self.datacenter = datacenter
        self.instances += 1
        self.connect_native = self.connect_native or bool(service["Connect"].get("Native"))
        self.tags.update(service["Tags"] or ())
        source = (service["Meta"] or {}).get(EXTERNAL_SOURCE_META)
        if source and source not in self.external_sources:
            self.external_sources.append(source)
        for check_id, status in checks:
            self.checks[(node, check_id)] = status

    def to_json(self) -> dict[str, Any]:
        """The ``ServiceListingSummary`` JSON (``Kind`` omitted when empty; no peering)."""
        statuses = list(self.checks.values())
        body: dict[str, Any] = {"Kind": self.kind} if self.kind else {}
        body.update(
            {
                "Name": self.name,
                "Datacenter": self.datacenter,
                "Tags": sorted(self.tags) or None,
                "Nodes": sorted(self.nodes),
                "ExternalSources": self.external_sources or None,
                "InstanceCount": self.instances,
                "ChecksPassing": statuses.count(CheckStatus.PASSING),
                "ChecksWarning": statuses.count(CheckStatus.WARNING),
                "ChecksCritical": statuses.count(CheckStatus.CRITICAL),
                "GatewayConfig": {},
                "TransparentProxy": False,
                "ConnectNative": self.connect_native,
                "ConnectedWithProxy": False,
                "ConnectedWithGateway": False,
            }
        )
        return body


def summarize(dump: Sequence[Item]) -> list[dict[str, Any]]:
    """One summary per service name, sorted by name, from a service dump."""
    summaries: dict[str, _Summary] = {}
    for entry in dump:
        name = entry["Service"]["Service"]
        summaries.setdefault(name, _Summary(name)).add(entry)
    return [summaries[name].to_json() for name in sorted(summaries)]


def summarize_state(state: "ConsulState") -> list[dict[str, Any]]:
    """``summarize`` of the whole unfiltered dump, folded from the records themselves.

    No ``CheckServiceNode`` is built and each node's checks are sorted once: the double's own
    time for this answer stays near what Consul takes.
    """
    summaries: dict[str, _Summary] = {}
    for node_name in sorted(state.services):
        node = state.nodes[node_name]
        checks_here = node_checks(state, node_name)
        for _, svc in sorted(state.services[node_name].items()):
            service = {"Service": svc.name, "Tags": svc.tags, "Meta": svc.meta, "Connect": {}}
            checks = [(c.check_id, c.status) for c in checks_of(checks_here, svc)]
            summary = summaries.setdefault(svc.name, _Summary(svc.name))
            summary.fold(node.name, node.datacenter, service, checks)
    return [summaries[name].to_json() for name in sorted(summaries)]


def ui_services(state: "ConsulState", keep: Predicate = everything) -> Answer:
    """``GET /v1/internal/ui/services``: the filtered service dump, summarized per name."""
    if keep is everything:
        return Answer(dump_index(state), lambda: summarize_state(state))

    def render() -> list[dict[str, Any]]:
        dump = [
            entry
            for node in sorted(state.services)
            for _, svc in sorted(state.services[node].items())
            if keep(entry := check_service_node(state, svc))
        ]
        return summarize(dump)

    return Answer(dump_index(state), render)


def node_info(state: "ConsulState", name: str) -> dict[str, Any]:
    """One node as ``NodeInfo`` (no ``Datacenter``; empty lists rather than ``null``)."""
    node = state.nodes[name]
    return {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "TaggedAddresses": node.tagged(),
        "Meta": dict(sorted(node.meta.items())),
        "Services": [
            svc.to_node_service_json() for _, svc in sorted(state.services.get(name, {}).items())
        ],
        "Checks": [check.to_json() for _, check in sorted(state.checks.get(name, {}).items())],
    }


def ui_nodes(state: "ConsulState", keep: Predicate = everything) -> Answer:
    """``GET /v1/internal/ui/nodes``: every node with its services and checks."""
    return Answer(
        dump_index(state),
        lambda: [body for name in sorted(state.nodes) if keep(body := node_info(state, name))],
    )

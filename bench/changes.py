"""Consul changes the benchmark makes, each with the API node event that shows it landed."""

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.double import DoubleControl, build_inventory
from bench.sse import NODE_EVENTS
from bench.stack import ClusterShape

KINDS = ("node_join", "service_register", "node_fail", "sites_change")
"""The change kinds freshness is measured for."""

COST_KINDS = (
    "node_join",
    "node_leave",
    "node_fail",
    "service_register",
    "instance_add",
    "service_deregister",
    "sites_change",
)
"""The change kinds the per-change cost is measured for, in the order they are made.

``service_deregister`` removes the instance ``instance_add`` made with the same number, so it
must come after it: the name stays in the catalog, only one node loses an instance of it.
"""

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Change:
    """One change: how to make it and how to recognise it in the API's node events."""

    kind: str
    apply: Callable[[], Awaitable[None]]
    seen: Predicate
    undo: Callable[[], Awaitable[None]] | None = None
    events: tuple[str, ...] = NODE_EVENTS
    """SSE events that can show the change (a departed node may be deleted from the view)."""
    undone: Predicate | None = None
    """Recognises the node event that shows ``undo`` landed."""
    node: str = ""
    """The node whose events show the change."""

    def reverted(self) -> "Change":
        """The change that undoes this one, as a change of its own (it must have an undo)."""
        assert self.undo is not None
        assert self.undone is not None
        return replace(
            self,
            kind=f"{self.kind}_undone",
            apply=self.undo,
            seen=self.undone,
            undo=None,
            undone=None,
        )


class ChangeMaker:
    """Makes numbered changes of each kind against one double, never repeating a target."""

    def __init__(self, control: DoubleControl, shape: ClusterShape, tag: str) -> None:
        """Learn the double's inventory (it is generated deterministically from ``shape``)."""
        inventory = build_inventory(shape.nodes, shape.services, shape.per_node, shape.seed)
        self.control = control
        self.tag = tag
        self.clients = [node.name for node in inventory.nodes if not node.server]
        self.sites = copy.deepcopy(dict(inventory.sites_document or {"data": {"sites": []}}))
        first = self.sites["data"]["sites"][0]
        self.site_node = next(n.name for n in inventory.nodes if n.addr == first["prometheus_host"])
        self.names_of = {
            node.name: frozenset(s.name for s in node.services) for node in inventory.nodes
        }
        self.service_names = sorted({name for names in self.names_of.values() for name in names})
        self._fail_cursor = 0

    def join(self, i: int) -> Change:
        """A new node joins."""
        name = f"bench-{self.tag}-join-{i}"
        addr = f"127.{200 + len(self.tag) % 50}.{i // 250}.{i % 250 + 1}"

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == name)

        return Change("node_join", lambda: self.control.join(name, addr), seen, node=name)

    def register(self, i: int) -> Change:
        """A new service instance is registered on an existing node."""
        node = self.clients[i % len(self.clients)]
        service = f"bench_{self.tag}_{i}"

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and service in entry["service_names"])

        return Change(
            "service_register",
            lambda: self.control.register(node, service, service, 9999),
            seen,
            node=node,
        )

    def unregister(self, i: int) -> Change:
        """The instance ``register(i)`` made is deregistered: its name leaves the catalog."""
        node = self.clients[i % len(self.clients)]
        service = f"bench_{self.tag}_{i}"

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and service not in entry["service_names"])

        return Change(
            "service_unregister", lambda: self.control.deregister(node, service), seen, node=node
        )

    def leave_joined(self, i: int) -> Change:
        """The node ``join(i)`` added leaves (Consul deregisters it)."""
        name = f"bench-{self.tag}-join-{i}"

        def seen(entry: dict[str, Any]) -> bool:
            # Not "not alive": a joined node shows "unknown" until its serfHealth check lands.
            return bool(
                entry["node"] == name and (entry.get("deleted") or entry["status"] == "dead")
            )

        return Change(
            "node_leave",
            lambda: self.control.node_action(name, "leave"),
            seen,
            events=("node", "node_deleted"),
            node=name,
        )

    def fail(self, i: int) -> Change:
        """An alive node fails (undo: it recovers)."""
        node = self.clients[self._fail_cursor % len(self.clients)]
        self._fail_cursor += 1

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["status"] == "dead")

        def recovered(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["status"] == "alive")

        return Change(
            "node_fail",
            lambda: self.control.node_action(node, "fail"),
            seen,
            lambda: self.control.node_action(node, "recover"),
            undone=recovered,
            node=node,
        )

    def leave(self, i: int) -> Change:
        """An existing node leaves gracefully (Consul deregisters it); undo: it joins again.

        Nodes are taken from the end of the client list, away from those other kinds use.
        """
        node = self.clients[-1 - i % len(self.clients)]

        def seen(entry: dict[str, Any]) -> bool:
            return bool(
                entry["node"] == node and (entry.get("deleted") or entry["status"] != "alive")
            )

        def back(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["status"] == "alive")

        return Change(
            "node_leave",
            lambda: self.control.node_action(node, "leave"),
            seen,
            lambda: self.control.node_action(node, "recover"),
            events=("node", "node_deleted"),
            undone=back,
            node=node,
        )

    def _instance_target(self, i: int) -> tuple[str, str, str]:
        """Node, existing service name it does not run, and instance id of ``instance_add(i)``."""
        count = len(self.clients)
        for step in range(count):
            node = self.clients[(i * 7 + 3 + step) % count]
            held = self.names_of.get(node, frozenset())
            for offset in range(len(self.service_names)):
                name = self.service_names[(i + offset) % len(self.service_names)]
                if name not in held and name != "consul":
                    return node, name, f"bench-{self.tag}-inst-{i}"
        raise LookupError("every node already runs every service name")

    def instance_add(self, i: int) -> Change:
        """A new instance of an existing service name on a node that did not run that name."""
        node, name, service_id = self._instance_target(i)

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and name in entry["service_names"])

        return Change(
            "instance_add",
            lambda: self.control.register(node, service_id, name, 9998),
            seen,
            node=node,
        )

    def deregister(self, i: int) -> Change:
        """The instance ``instance_add(i)`` made is deregistered (the name stays elsewhere)."""
        node, name, service_id = self._instance_target(i)

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and name not in entry["service_names"])

        return Change(
            "service_deregister",
            lambda: self.control.deregister(node, service_id),
            seen,
            node=node,
        )

    def sites_change(self, i: int) -> Change:
        """The sites document renames the site of one node."""
        document = copy.deepcopy(self.sites)
        name = f"Bench {self.tag} {i}"
        document["data"]["sites"][0]["name"] = name
        node = self.site_node

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["site_name"] == name)

        return Change("sites_change", lambda: self.control.set_sites(document), seen, node=node)

    def make(self, kind: str, i: int) -> Change:
        """The ``i``-th change of ``kind``."""
        makers = {
            "node_join": self.join,
            "service_register": self.register,
            "node_fail": self.fail,
            "sites_change": self.sites_change,
            "node_leave": self.leave,
            "instance_add": self.instance_add,
            "service_deregister": self.deregister,
        }
        return makers[kind](i)

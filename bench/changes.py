"""Consul changes the benchmark makes, each with the API node event that shows it landed."""

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.double import DoubleControl, build_inventory
from bench.stack import ClusterShape

KINDS = ("node_join", "service_register", "node_fail", "sites_change")
"""The change kinds freshness is measured for."""

Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Change:
    """One change: how to make it and how to recognise it in the API's node events."""

    kind: str
    apply: Callable[[], Awaitable[None]]
    seen: Predicate
    undo: Callable[[], Awaitable[None]] | None = None


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
        self._fail_cursor = 0

    def join(self, i: int) -> Change:
        """A new node joins."""
        name = f"bench-{self.tag}-join-{i}"
        addr = f"127.{200 + len(self.tag) % 50}.{i // 250}.{i % 250 + 1}"

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == name)

        return Change("node_join", lambda: self.control.join(name, addr), seen)

    def register(self, i: int) -> Change:
        """A new service instance is registered on an existing node."""
        node = self.clients[i % len(self.clients)]
        service = f"bench_{self.tag}_{i}"

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and service in entry["service_names"])

        return Change(
            "service_register", lambda: self.control.register(node, service, service, 9999), seen
        )

    def fail(self, i: int) -> Change:
        """An alive node fails (undo: it recovers)."""
        node = self.clients[self._fail_cursor % len(self.clients)]
        self._fail_cursor += 1

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["status"] == "dead")

        return Change(
            "node_fail",
            lambda: self.control.node_action(node, "fail"),
            seen,
            lambda: self.control.node_action(node, "recover"),
        )

    def sites_change(self, i: int) -> Change:
        """The sites document renames the site of one node."""
        document = copy.deepcopy(self.sites)
        name = f"Bench {self.tag} {i}"
        document["data"]["sites"][0]["name"] = name
        node = self.site_node

        def seen(entry: dict[str, Any]) -> bool:
            return bool(entry["node"] == node and entry["site_name"] == name)

        return Change("sites_change", lambda: self.control.set_sites(document), seen)

    def make(self, kind: str, i: int) -> Change:
        """The ``i``-th change of ``kind``."""
        makers = {
            "node_join": self.join,
            "service_register": self.register,
            "node_fail": self.fail,
            "sites_change": self.sites_change,
        }
        return makers[kind](i)

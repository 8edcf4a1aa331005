"""Raft-like indexes and the event-driven wake-up of blocking queries."""

import asyncio
from dataclasses import dataclass, field

TABLES = ("nodes", "services", "checks", "kvs", "node_extinction", "service_extinction")
"""Index table names, as Consul's state store keeps them."""


@dataclass
class Indexes:
    """The raft index plus Consul's per-table, per-service and per-node indexes."""

    raft: int = 0
    tables: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    services: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)

    def next(self) -> int:
        """Allocate the index of a new write."""
        self.raft += 1
        return self.raft

    def table(self, name: str) -> int:
        """Index of one table (0 when never written)."""
        return self.tables[name]

    def bump_table(self, name: str, index: int) -> None:
        """Record that a table changed at ``index``."""
        self.tables[name] = index

    def bump_service(self, name: str, index: int) -> None:
        """Record that instances or checks of a service name changed at ``index``."""
        self.services[name] = index

    def bump_node(self, name: str, index: int) -> None:
        """Record that a node or its services changed at ``index``."""
        self.nodes[name] = index

    def lower_to(self, to: int) -> None:
        """Lower every index above ``to`` down to it, as a snapshot restore would."""
        self.raft = to
        for mapping in (self.tables, self.services, self.nodes):
            for key, value in mapping.items():
                mapping[key] = min(value, to)

    def as_json(self) -> dict[str, object]:
        """All indexes as plain JSON."""
        return {
            "raft": self.raft,
            "tables": dict(self.tables),
            "services": dict(sorted(self.services.items())),
            "nodes": dict(sorted(self.nodes.items())),
        }


@dataclass(eq=False)
class Waiter:
    """One blocking query waiting for a change; ``event`` is set whenever it must re-check."""

    server: int | None
    event: asyncio.Event = field(default_factory=asyncio.Event)
    cut: bool = False
    restored: bool = False


class BlockingHub:
    """Registry of waiting blocking queries; writes, restores and cuts wake them."""

    def __init__(self) -> None:
        """Start with no waiters."""
        self._waiters: set[Waiter] = set()
        self._registered: list[asyncio.Event] = []

    async def wait_for_waiters(self, count: int = 1) -> None:
        """Return once at least ``count`` blocking queries are parked (for tests and tools)."""
        while len(self._waiters) < count:
            registered = asyncio.Event()
            self._registered.append(registered)
            await registered.wait()

    @property
    def waiting(self) -> int:
        """Number of blocking queries currently waiting."""
        return len(self._waiters)

    def register(self, server: int | None) -> Waiter:
        """Register a blocking query answered by ``server``."""
        waiter = Waiter(server)
        self._waiters.add(waiter)
        for registered in self._registered:
            registered.set()
        self._registered.clear()
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        """Forget a blocking query that has answered."""
        self._waiters.discard(waiter)

    def notify(self) -> None:
        """Wake every waiter after a write so it re-runs its query."""
        for waiter in self._waiters:
            waiter.event.set()

    def restore(self) -> None:
        """Wake every waiter after a snapshot restore; they answer at once, as Consul does."""
        for waiter in self._waiters:
            waiter.restored = True
            waiter.event.set()

    def cut(self, server: int | None = None) -> int:
        """Close the blocking queries of one server (or all); returns how many were cut."""
        cut = 0
        for waiter in self._waiters:
            if server is None or waiter.server == server:
                waiter.cut = True
                waiter.event.set()
                cut += 1
        return cut

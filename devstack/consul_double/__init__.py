"""A Consul HTTP API double: several servers over one in-memory state, with fault injection."""

from devstack.consul_double.errors import (
    BadDuration,
    BadFilter,
    BadWatchDefinition,
    ConsulDoubleError,
    DoubleNotStarted,
    UnknownNode,
    UnknownServer,
    UnknownService,
)
from devstack.consul_double.faults import Counters, Faults
from devstack.consul_double.inventory import (
    Inventory,
    InventoryNode,
    InventoryService,
    generate_inventory,
)
from devstack.consul_double.server import ConsulDouble
from devstack.consul_double.state import DEFAULT_SITES_KEY, ChangeRecord, ConsulState
from devstack.consul_double.watches import WatchRunner

__all__ = [
    "DEFAULT_SITES_KEY",
    "BadDuration",
    "BadFilter",
    "BadWatchDefinition",
    "ChangeRecord",
    "ConsulDouble",
    "ConsulDoubleError",
    "ConsulState",
    "Counters",
    "DoubleNotStarted",
    "Faults",
    "Inventory",
    "InventoryNode",
    "InventoryService",
    "UnknownNode",
    "UnknownServer",
    "UnknownService",
    "WatchRunner",
    "generate_inventory",
]

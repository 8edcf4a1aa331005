"""Rows of the double's state (members, nodes, services, checks, KV, events) as Consul JSON."""

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

CONSUL_VERSION = "1.19.2"
"""Consul version the double reports in member tags and node meta."""

CONSUL_BUILD = "1.19.2:2ea8b1f3"
"""Build string of the reported Consul version (member tag ``build``)."""

SERF_LAN_PORT = 8301
"""Serf LAN port every member reports."""

SERVER_RPC_PORT = 8300
"""Server RPC port, used in ``/v1/status/leader`` and ``/v1/status/peers``."""

SERF_HEALTH_CHECK_ID = "serfHealth"
"""Check ID of the node-level health check Consul keeps for every Serf member."""

_NODE_ID_NAMESPACE = uuid.UUID("6f3a2c55-0b1e-4c1a-9c53-3f1f0c7a9e10")


class MemberStatus:
    """Serf member status codes as reported by ``/v1/agent/members``."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4


class CheckStatus:
    """Health check states."""

    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"
    ALL = ("passing", "warning", "critical")


def node_id_for(name: str) -> str:
    """Deterministic node ID (a UUID string) for a node name."""
    return str(uuid.uuid5(_NODE_ID_NAMESPACE, name))


def b64_or_none(value: bytes | None) -> str | None:
    """Base64 text as Go encodes a ``[]byte`` (``null`` for an empty or missing value)."""
    if not value:
        return None
    return base64.b64encode(value).decode("ascii")


def event_index(event_id: str) -> int:
    """Consul's event index: the two 64-bit halves of the UUID XOR-ed together."""
    hex_digits = event_id.replace("-", "")
    return int(hex_digits[:16], 16) ^ int(hex_digits[16:], 16)


@dataclass
class Member:
    """A Serf LAN member."""

    name: str
    addr: str
    tags: dict[str, str]
    status: int = MemberStatus.ALIVE
    port: int = SERF_LAN_PORT

    @property
    def is_server(self) -> bool:
        """Whether the member is a Consul server."""
        return self.tags.get("role") == "consul"

    def to_json(self) -> dict[str, Any]:
        """The member as ``/v1/agent/members`` returns it."""
        return {
            "Name": self.name,
            "Addr": self.addr,
            "Port": self.port,
            "Tags": dict(sorted(self.tags.items())),
            "Status": self.status,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        }


@dataclass
class CatalogNode:
    """A node registered in the catalog."""

    id: str
    name: str
    address: str
    datacenter: str
    meta: dict[str, str]
    create_index: int
    modify_index: int
    tagged_addresses: dict[str, str] = field(default_factory=dict)

    def tagged(self) -> dict[str, str]:
        """Tagged addresses, defaulting to the node address like a Consul agent does."""
        if self.tagged_addresses:
            return dict(self.tagged_addresses)
        return {key: self.address for key in ("lan", "lan_ipv4", "wan", "wan_ipv4")}

    def to_json(self) -> dict[str, Any]:
        """The node as ``/v1/catalog/nodes`` returns it."""
        return {
            "ID": self.id,
            "Node": self.name,
            "Address": self.address,
            "Datacenter": self.datacenter,
            "TaggedAddresses": self.tagged(),
            "Meta": dict(sorted(self.meta.items())),
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class CatalogService:
    """A service instance registered on a node."""

    node: str
    id: str
    name: str
    tags: list[str]
    address: str
    meta: dict[str, str]
    port: int
    create_index: int
    modify_index: int

    def to_node_service_json(self) -> dict[str, Any]:
        """The instance as ``/v1/catalog/node-services`` and ``/v1/health/service`` return it."""
        return {
            "ID": self.id,
            "Service": self.name,
            "Tags": list(self.tags),
            "Address": self.address,
            "Meta": dict(self.meta),
            "Port": self.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "PeerName": "",
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }

    def to_service_node_json(self, node: CatalogNode) -> dict[str, Any]:
        """The instance joined with its node, as ``/v1/catalog/service/<name>`` returns it."""
        return {
            "ID": node.id,
            "Node": node.name,
            "Address": node.address,
            "Datacenter": node.datacenter,
            "TaggedAddresses": node.tagged(),
            "NodeMeta": dict(sorted(node.meta.items())),
            "ServiceKind": "",
            "ServiceID": self.id,
            "ServiceName": self.name,
            "ServiceTags": list(self.tags),
            "ServiceAddress": self.address,
            "ServiceWeights": {"Passing": 1, "Warning": 1},
            "ServiceMeta": dict(self.meta),
            "ServicePort": self.port,
            "ServiceSocketPath": "",
            "ServiceEnableTagOverride": False,
            "ServiceProxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "ServiceConnect": {},
            "ServiceLocality": None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class HealthCheck:
    """A health check, node-level (``ServiceID`` empty) or bound to a service instance."""

    node: str
    check_id: str
    name: str
    status: str
    output: str
    create_index: int
    modify_index: int
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = field(default_factory=list)
    type: str = ""
    interval: str = ""
    timeout: str = ""
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        """The check as ``/v1/health/*`` endpoints return it."""
        return {
            "Node": self.node,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": self.notes,
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": list(self.service_tags),
            "Type": self.type,
            "Interval": self.interval,
            "Timeout": self.timeout,
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class KVEntry:
    """One key/value entry."""

    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0

    def to_json(self) -> dict[str, Any]:
        """The entry as ``/v1/kv/<key>`` returns it (inside a list)."""
        return {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": b64_or_none(self.value),
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class UserEvent:
    """A user event fired through ``/v1/event/fire``."""

    id: str
    name: str
    payload: bytes | None
    node_filter: str = ""
    service_filter: str = ""
    tag_filter: str = ""
    ltime: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as ``/v1/event/list`` returns it."""
        return {
            "ID": self.id,
            "Name": self.name,
            "Payload": b64_or_none(self.payload),
            "NodeFilter": self.node_filter,
            "ServiceFilter": self.service_filter,
            "TagFilter": self.tag_filter,
            "Version": 1,
            "LTime": self.ltime,
        }

"""In-memory Consul state shared by every server: members, catalog, health, KV, events."""

import json
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devstack.consul_double import catalog
from devstack.consul_double.blocking import BlockingHub, Indexes
from devstack.consul_double.errors import UnknownNode, UnknownService
from devstack.consul_double.records import (
    CONSUL_BUILD,
    CONSUL_VERSION,
    SERF_HEALTH_CHECK_ID,
    SERVER_RPC_PORT,
    CatalogNode,
    CatalogService,
    CheckStatus,
    KVEntry,
    Member,
    MemberStatus,
    UserEvent,
    node_id_for,
)

DEFAULT_SITES_KEY = "skills/eye/metadata/sites"
"""KV key of the sites document."""

EVENT_BUFFER_SIZE = 256
"""How many recent user events an agent keeps (Consul's ring buffer size)."""

ALIVE_OUTPUT = "Agent alive and reachable"
FAILED_OUTPUT = "Agent not live or unreachable"


@dataclass(frozen=True)
class ChangeRecord:
    """One write applied to the state: its raft index, kind and a short description."""

    index: int
    kind: str
    description: str
    at: float

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON."""
        return {
            "index": self.index,
            "kind": self.kind,
            "description": self.description,
            "at": self.at,
        }


@dataclass
class _Profile:
    """What a member registers in the catalog when it joins (or rejoins)."""

    addr: str
    meta: dict[str, str]
    server: bool
    datacenter: str


class ConsulState(catalog.CatalogTables):
    """The cluster state; each write takes a raft index, is logged and wakes blocking queries."""

    def __init__(self, *, datacenter: str = "dc1", sites_key: str = DEFAULT_SITES_KEY) -> None:
        """Create an empty cluster state for ``datacenter``."""
        super().__init__(Indexes())
        self.datacenter = datacenter
        self.sites_key = sites_key
        self.members: dict[str, Member] = {}
        self.kv: dict[str, KVEntry] = {}
        self.kv_tombstones: dict[str, int] = {}
        self.events: deque[UserEvent] = deque(maxlen=EVENT_BUFFER_SIZE)
        self.hub = BlockingHub()
        self.change_log: list[ChangeRecord] = []
        self._profiles: dict[str, _Profile] = {}
        self._ltime = 0

    def node_names(self) -> list[str]:
        """Names of the nodes in the catalog, sorted."""
        return sorted(self.nodes)

    @property
    def index(self) -> int:
        """The current raft index."""
        return self.indexes.raft

    @contextmanager
    def write(self, kind: str, description: str) -> Iterator[int]:
        """Apply one raft write: yields its index, then logs it and wakes blocking queries."""
        index = self.indexes.next()
        try:
            yield index
        finally:
            self.change_log.append(ChangeRecord(index, kind, description, time.time()))
            self.hub.notify()

    def _log(self, kind: str, description: str) -> None:
        """Log a change that is not a raft write (Serf membership, events)."""
        self.change_log.append(ChangeRecord(self.index, kind, description, time.time()))

    # --- membership -------------------------------------------------------------------------

    def join_node(
        self,
        name: str,
        addr: str,
        *,
        server: bool = False,
        meta: Mapping[str, str] | None = None,
        datacenter: str | None = None,
    ) -> None:
        """A node joins: alive member, catalog node, passing serfHealth (servers: ``consul``)."""
        dc = datacenter or self.datacenter
        self._profiles[name] = _Profile(addr, dict(meta or {}), server, dc)
        self.members[name] = Member(name, addr, _member_tags(name, dc, server))
        self._register_member(name, "join")

    def leave_node(self, name: str) -> None:
        """Graceful leave: member status 3 (left) and the node is deregistered from the catalog."""
        member = self._member(name)
        member.status = MemberStatus.LEFT
        if name in self.nodes:
            with self.write("leave", f"node {name} left") as index:
                self.delete_node(index, name)
        else:
            self._log("leave", f"node {name} left")

    def fail_node(self, name: str) -> None:
        """The node stops answering: status 4 (failed), serfHealth critical, kept in catalog."""
        member = self._member(name)
        member.status = MemberStatus.FAILED
        self._set_serf_health(name, CheckStatus.CRITICAL, FAILED_OUTPUT, "fail")

    def recover_node(self, name: str) -> None:
        """A failed or departed node is back: alive member and passing serfHealth."""
        member = self._member(name)
        member.status = MemberStatus.ALIVE
        if name in self.nodes:
            self._set_serf_health(name, CheckStatus.PASSING, ALIVE_OUTPUT, "recover")
        else:
            self._register_member(name, "recover")

    def _member(self, name: str) -> Member:
        """The member called ``name`` or :class:`UnknownNode`."""
        try:
            return self.members[name]
        except KeyError:
            raise UnknownNode(f"no member named {name!r}") from None

    def _register_member(self, name: str, kind: str) -> None:
        """Register a live member in the catalog in one write, as the leader's reconcile does."""
        profile = self._profiles[name]
        meta = {"consul-network-segment": "", "consul-version": CONSUL_VERSION, **profile.meta}
        with self.write(kind, f"node {name} ({profile.addr}) registered") as index:
            self.ensure_node(index, name, profile.addr, profile.datacenter, meta, node_id_for(name))
            if profile.server:
                self.ensure_service(
                    index, name, "consul", "consul", [], "", _server_service_meta(), SERVER_RPC_PORT
                )
            self.ensure_check(
                index,
                name,
                SERF_HEALTH_CHECK_ID,
                "Serf Health Status",
                CheckStatus.PASSING,
                ALIVE_OUTPUT,
            )

    def _set_serf_health(self, name: str, status: str, output: str, kind: str) -> None:
        """Change a node's serfHealth check (one write) when the node is in the catalog."""
        if name not in self.nodes:
            self._log(kind, f"member {name} status changed")
            return
        with self.write(kind, f"node {name} serfHealth {status}") as index:
            self.ensure_check(
                index, name, SERF_HEALTH_CHECK_ID, "Serf Health Status", status, output
            )

    # --- catalog ----------------------------------------------------------------------------

    def register_service(
        self,
        node: str,
        service_id: str,
        name: str,
        *,
        tags: Sequence[str] = (),
        port: int = 0,
        address: str = "",
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Register (or update) a service instance on a catalog node."""
        if node not in self.nodes:
            raise UnknownNode(f"no catalog node named {node!r}")
        with self.write("register", f"service {service_id} ({name}) on {node}") as index:
            self.ensure_service(
                index, node, service_id, name, list(tags), address, dict(meta or {}), port
            )

    def deregister_service(self, node: str, service_id: str) -> None:
        """Remove a service instance (and its checks); a missing one is a no-op, as in Consul."""
        if service_id not in self.services.get(node, {}):
            return
        with self.write("deregister", f"service {service_id} removed from {node}") as index:
            self.delete_service(index, node, service_id)

    def register_check(
        self,
        node: str,
        check_id: str,
        name: str,
        status: str,
        *,
        service_id: str = "",
        output: str = "",
        check_type: str = "",
    ) -> None:
        """Register or update a health check on a node or one of its service instances."""
        if node not in self.nodes:
            raise UnknownNode(f"no catalog node named {node!r}")
        if service_id and service_id not in self.services.get(node, {}):
            raise UnknownService(f"no service {service_id!r} on node {node!r}")
        with self.write("check", f"check {check_id} on {node} is {status}") as index:
            self.ensure_check(index, node, check_id, name, status, output, service_id, check_type)

    def catalog_register(self, payload: Mapping[str, Any]) -> None:
        """Apply a ``PUT /v1/catalog/register`` body (already validated) in one write."""
        node = str(payload["Node"])
        with self.write("register", f"catalog register {node}") as index:
            catalog.apply_registration(self, index, payload, self.datacenter)

    def catalog_deregister(self, node: str, *, service_id: str = "", check_id: str = "") -> None:
        """Apply a ``PUT /v1/catalog/deregister`` body: a check, a service or the whole node."""
        what = (
            f"check {check_id}" if check_id else f"service {service_id}" if service_id else "node"
        )
        with self.write("deregister", f"catalog deregister {what} of {node}") as index:
            if check_id:
                self.delete_check(index, node, check_id)
            elif service_id:
                self.delete_service(index, node, service_id)
            else:
                self.delete_node(index, node)

    # --- KV ---------------------------------------------------------------------------------

    def kv_put(self, key: str, value: bytes, *, flags: int = 0, cas: int | None = None) -> bool:
        """Set a key; with ``cas`` only when its ModifyIndex matches (0: only when absent)."""
        existing = self.kv.get(key)
        if cas is not None:
            current = existing.modify_index if existing else 0
            if cas != current:
                return False
        with self.write("kv", f"kv put {key} ({len(value)} bytes)") as index:
            created = existing.create_index if existing else index
            self.kv[key] = KVEntry(key, bytes(value), flags, created, index)
            self.indexes.bump_table("kvs", index)
        return True

    def kv_delete(self, key: str, *, recurse: bool = False) -> None:
        """Delete a key (or every key under a prefix with ``recurse``)."""
        doomed = [k for k in self.kv if k.startswith(key)] if recurse else [key]
        with self.write("kv", f"kv delete {key}{' (recurse)' if recurse else ''}") as index:
            for name in doomed:
                if self.kv.pop(name, None) is not None:
                    self.kv_tombstones[name] = index
                    self.indexes.bump_table("kvs", index)

    def set_sites(self, document: object) -> None:
        """Store the sites document as pretty JSON at the configured sites key."""
        self.kv_put(self.sites_key, json.dumps(document, indent=2, ensure_ascii=False).encode())

    # --- events -----------------------------------------------------------------------------

    def fire_event(
        self,
        name: str,
        payload: bytes | None = None,
        *,
        node_filter: str = "",
        service_filter: str = "",
        tag_filter: str = "",
    ) -> dict[str, Any]:
        """Fire a user event; returns it as ``/v1/event/list`` shows it."""
        self._ltime += 1
        event = UserEvent(
            str(uuid.uuid4()),
            name,
            payload or None,
            node_filter,
            service_filter,
            tag_filter,
            self._ltime,
        )
        self.events.append(event)
        self._log("event", f"event {name} fired ({event.id})")
        self.hub.notify()
        return event.to_json()

    # --- faults and inspection --------------------------------------------------------------

    def reset_index(self, to: int | None = None) -> int:
        """Lower every index (snapshot restore); blocking queries answer at once with it."""
        target = max(1, self.index // 2 if to is None else to)
        self.indexes.lower_to(target)
        self.lower_rows_to(target)
        for entry in self.kv.values():
            entry.create_index = min(entry.create_index, target)
            entry.modify_index = min(entry.modify_index, target)
        for key, value in self.kv_tombstones.items():
            self.kv_tombstones[key] = min(value, target)
        self._log("restore", f"indexes reset to {target}")
        self.hub.restore()
        return target

    def snapshot(self) -> dict[str, Any]:
        """Members, catalog nodes with their services, KV keys and indexes as plain JSON."""
        return {
            "datacenter": self.datacenter,
            "index": self.index,
            "indexes": self.indexes.as_json(),
            "members": [member.to_json() for member in self.members.values()],
            "nodes": [
                {
                    **node.to_json(),
                    "Services": {
                        sid: svc.name for sid, svc in sorted(self.services.get(name, {}).items())
                    },
                }
                for name, node in sorted(self.nodes.items())
            ],
            "kv_keys": sorted(self.kv),
            "events": len(self.events),
            "blocking_queries": self.hub.waiting,
        }


def _member_tags(name: str, datacenter: str, server: bool) -> dict[str, str]:
    """Serf tags of a member, as a Consul 1.19 agent sets them."""
    tags = {
        "build": CONSUL_BUILD,
        "dc": datacenter,
        "id": node_id_for(name),
        "role": "consul" if server else "node",
        "segment": "",
        "vsn": "2",
        "vsn_max": "3",
        "vsn_min": "2",
    }
    if server:
        tags.update(
            {
                "acls": "0",
                "expect": "1",
                "ft_fs": "1",
                "ft_si": "1",
                "grpc_port": "8502",
                "port": str(SERVER_RPC_PORT),
                "raft_vsn": "3",
                "wan_join_port": "8302",
            }
        )
    return tags


def _server_service_meta() -> dict[str, str]:
    """Meta of the ``consul`` service every server registers."""
    return {
        "non_voter": "false",
        "raft_version": "3",
        "read_replica": "false",
        "serf_protocol_current": "2",
        "serf_protocol_max": "5",
        "serf_protocol_min": "1",
        "version": CONSUL_VERSION,
    }


__all__ = [
    "DEFAULT_SITES_KEY",
    "CatalogNode",
    "CatalogService",
    "ChangeRecord",
    "ConsulState",
]

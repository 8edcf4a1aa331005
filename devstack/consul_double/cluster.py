"""Server topology of the double: identities, which servers are up, and who leads."""

import time
from dataclasses import dataclass

from devstack.consul_double.errors import UnknownServer
from devstack.consul_double.records import SERVER_RPC_PORT

FOLLOWER_LAST_CONTACT_MS = 12
"""X-Consul-LastContact a follower reports for stale reads while the leader is healthy."""


@dataclass(frozen=True)
class ServerIdentity:
    """Name and (data-only) address a server has as a cluster member."""

    name: str
    addr: str


class Cluster:
    """Which servers are listening and which one leads; read by every HTTP server."""

    def __init__(self, identities: list[ServerIdentity]) -> None:
        """All servers start down; server 0 is the leader."""
        self.identities = identities
        self.up = [False] * len(identities)
        self.leader: int | None = 0 if identities else None
        self._leaderless_since: float | None = None

    def check(self, server: int) -> int:
        """Return ``server`` when it exists, else :class:`UnknownServer`."""
        if not 0 <= server < len(self.identities):
            raise UnknownServer(f"no server {server}; the double has {len(self.identities)}")
        return server

    def has_leader(self) -> bool:
        """Whether a leader is elected and reachable."""
        return self.leader is not None and self.up[self.leader]

    def _track(self, had_leader: bool) -> None:
        """Remember when the cluster lost its leader (for X-Consul-LastContact)."""
        if had_leader and not self.has_leader():
            self._leaderless_since = time.monotonic()
        elif self.has_leader():
            self._leaderless_since = None

    def set_up(self, server: int, up: bool) -> None:
        """Mark a server as listening or down."""
        had_leader = self.has_leader()
        self.up[self.check(server)] = up
        self._track(had_leader)

    def set_leader(self, server: int | None) -> None:
        """Move leadership to ``server`` (``None``: no leader)."""
        had_leader = self.has_leader()
        self.leader = None if server is None else self.check(server)
        self._track(had_leader)

    def leader_address(self) -> str:
        """``addr:8300`` of the leader, or ``""`` when there is none (as ``/v1/status/leader``)."""
        if not self.has_leader() or self.leader is None:
            return ""
        return f"{self.identities[self.leader].addr}:{SERVER_RPC_PORT}"

    def peers(self) -> list[str]:
        """Raft peers as ``/v1/status/peers`` lists them."""
        return [f"{identity.addr}:{SERVER_RPC_PORT}" for identity in self.identities]

    def last_contact_ms(self, server: int) -> int:
        """Milliseconds since ``server`` last heard from a leader (0 on the leader)."""
        if self.has_leader():
            return 0 if server == self.leader else FOLLOWER_LAST_CONTACT_MS
        if self._leaderless_since is None:
            return 0
        return int((time.monotonic() - self._leaderless_since) * 1000)

"""The double itself: N uvicorn servers on 127.0.0.1 sharing one state, with fault controls."""

import asyncio
import logging
import socket
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn

from devstack.consul_double.cluster import Cluster, ServerIdentity
from devstack.consul_double.control import ControlApi
from devstack.consul_double.errors import DoubleNotStarted
from devstack.consul_double.faults import Counters, Faults
from devstack.consul_double.http_app import ServerApp
from devstack.consul_double.inventory import Inventory, server_node
from devstack.consul_double.state import DEFAULT_SITES_KEY, ConsulState
from devstack.consul_double.watches import WatchRunner

HOST = "127.0.0.1"
"""The only interface the double listens on."""

LISTEN_BACKLOG = 2048
"""Pending-connection backlog of each server socket (benchmarks open many at once)."""

SHUTDOWN_GRACE_SECONDS = 2.0
"""How long a stopping server waits for its request handlers before cancelling them."""

CLOSE_POLLS = 100
CLOSE_POLL_SECONDS = 0.01
"""A stopping server waits up to CLOSE_POLLS * CLOSE_POLL_SECONDS for its sockets to close."""

_DROPPED_RESPONSE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Hide uvicorn's error line for connections the double drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the deliberate-drop message."""
        return record.getMessage() != _DROPPED_RESPONSE


_QUIET_DROPS = _QuietDrops()


@dataclass
class _Listener:
    """A running uvicorn server and the socket it accepts on."""

    server: uvicorn.Server
    sock: socket.socket


class ConsulDouble:
    """A Consul cluster stand-in (servers, shared state, faults); drive it from its own loop."""

    def __init__(
        self,
        servers: int = 1,
        acl_token: str | None = None,
        control_token: str | None = None,
        inventory: Inventory | None = None,
        datacenter: str = "dc1",
        *,
        ports: Sequence[int] | None = None,
        watches: Sequence[dict[str, Any]] = (),
        sites_key: str = DEFAULT_SITES_KEY,
    ) -> None:
        """Build the state (servers joined, inventory applied); call :meth:`start` to listen."""
        if servers < 1:
            raise ValueError("a cluster needs at least one server")
        inventory = inventory or Inventory()
        known = inventory.servers
        identities = [
            ServerIdentity(node.name, node.addr)
            for node in (known[i] if i < len(known) else server_node(i) for i in range(servers))
        ]
        self.acl_token = acl_token
        self.control_token = control_token
        self.state = ConsulState(datacenter=datacenter, sites_key=sites_key)
        self.cluster = Cluster(identities)
        self.faults = Faults()
        self.counters = Counters()
        self.control = ControlApi(self)
        for identity in identities:
            self.state.join_node(identity.name, identity.addr, server=True)
        inventory.apply(self.state)
        self._ports: list[int] = list(ports or [0] * servers)
        if len(self._ports) != servers:
            raise ValueError(f"{servers} servers need {servers} ports, got {len(self._ports)}")
        self._listeners: dict[int, _Listener] = {}
        self._watch_definitions = list(watches)
        self._watch_runner: WatchRunner | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def urls(self) -> list[str]:
        """Base URL of every server (index 0 first), once started."""
        if not any(self._ports):
            raise DoubleNotStarted("the double has not been started")
        return [f"http://{HOST}:{port}" for port in self._ports]

    @property
    def leader(self) -> int | None:
        """Index of the leader server (``None`` when there is none)."""
        return self.cluster.leader

    @property
    def watch_runner(self) -> WatchRunner | None:
        """The runner of the watches given to the double, while it runs."""
        return self._watch_runner

    async def start(self, ports: Sequence[int] | None = None) -> None:
        """Listen on every server port (0: a free one) and start configured watches."""
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
        if ports is not None:
            if len(ports) != len(self._ports):
                raise ValueError(f"expected {len(self._ports)} ports, got {len(ports)}")
            self._ports = list(ports)
        try:
            for server in range(len(self._ports)):
                await self.server_up(server)
        except BaseException:
            await self.stop()
            raise
        if self._watch_definitions:
            await self.start_watches(self._watch_definitions)

    async def start_watches(self, definitions: Sequence[dict[str, Any]]) -> None:
        """Start agent watches, as an agent whose configuration gains them (once their handlers
        listen: a handler that cannot be reached is logged and not called again until the next
        change, as in Consul)."""
        if self._watch_runner is not None:
            raise RuntimeError("the double's watches already run")
        self._watch_runner = WatchRunner(list(definitions), self.urls[0], token=self.acl_token)
        await self._watch_runner.start()

    async def stop(self) -> None:
        """Stop watches, then every server (dropping blocking queries)."""
        if self._watch_runner is not None:
            await self._watch_runner.stop()
            self._watch_runner = None
        await asyncio.gather(*(self.server_down(server) for server in list(self._listeners)))
        await self.wait_background()

    async def __aenter__(self) -> "ConsulDouble":
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        await self.stop()

    async def server_up(self, server: int) -> None:
        """Start listening for server ``server`` on its port (the same one after a restart)."""
        self.cluster.check(server)
        if server in self._listeners:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Consul (Go) sends each answer at once. Without TCP_NODELAY an answer's last segment
        # waits for the client's delayed ACK on a kept-alive connection (about 40 ms on Linux);
        # accepted connections inherit it, and asyncio sets it too now that the protocol is TCP.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((HOST, self._ports[server]))
        sock.listen(LISTEN_BACKLOG)
        self._ports[server] = sock.getsockname()[1]
        config = uvicorn.Config(
            ServerApp(self, server),
            lifespan="off",
            http="h11",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=False,
            backlog=LISTEN_BACKLOG,
        )
        config.load()
        uv = uvicorn.Server(config)
        uv.lifespan = config.lifespan_class(config)
        await uv.startup(sockets=[sock])
        self._listeners[server] = _Listener(uv, sock)
        self.cluster.set_up(server, True)
        self.state.hub.notify()

    async def server_down(self, server: int) -> None:
        """Stop server ``server``: new connections are refused, open ones are dropped."""
        self.cluster.check(server)
        listener = self._listeners.pop(server, None)
        if listener is None:
            return
        self.cluster.set_up(server, False)
        uv = listener.server
        for server_socket in uv.servers:
            server_socket.close()
        listener.sock.close()
        for connection in list(uv.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        self.state.hub.cut(server)
        self.state.hub.notify()
        for _ in range(CLOSE_POLLS):
            if not uv.server_state.connections:
                break
            await asyncio.sleep(CLOSE_POLL_SECONDS)
        handlers = list(uv.server_state.tasks)
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in late:
                task.cancel()
        for server_socket in uv.servers:
            await server_socket.wait_closed()

    def set_leader(self, server: int | None) -> None:
        """Move leadership to ``server`` (``None``: the cluster has no leader)."""
        self.cluster.set_leader(server)
        self.state.hub.notify()

    def set_latency(
        self, seconds: float, *, server: int | None = None, path_prefix: str | None = None
    ) -> None:
        """Delay requests (of one server, or under a path prefix) by ``seconds``."""
        if server is not None:
            self.cluster.check(server)
        self.faults.set_latency(seconds, server=server, path_prefix=path_prefix)

    def fail_requests(
        self, status: int = 500, count: int | None = None, server: int | None = None
    ) -> None:
        """Answer ``status`` to the next ``count`` requests (``None``: until cleared)."""
        if server is not None:
            self.cluster.check(server)
        self.faults.fail_requests(status, count, server)

    def filter_by_acls(self, on: bool = True) -> None:
        """Act as if the token lost its read rights: list reads answer empty and filtered."""
        self.faults.acl_filtered = on

    def refuse_internal_endpoints(self, status: int | None) -> None:
        """Answer ``/v1/internal/`` 403 (no rights) or 404 (no such endpoint); ``None`` clears."""
        self.faults.refuse_internal_endpoints(status)

    def clear_faults(self) -> None:
        """Remove every fault rule (servers down and leadership are kept)."""
        self.faults.clear()

    def cut_blocking_queries(self, server: int | None = None) -> int:
        """Drop the connections of in-flight blocking queries; returns how many."""
        return self.state.hub.cut(server)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the current request has been answered."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_background(self) -> None:
        """Wait for control actions that run after their answer (a server taking itself down)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        """State snapshot plus topology and faults, as the control API shows it."""
        return {
            **self.state.snapshot(),
            "servers": [
                {
                    "index": i,
                    "name": identity.name,
                    "addr": identity.addr,
                    "port": self._ports[i],
                    "up": self.cluster.up[i],
                }
                for i, identity in enumerate(self.cluster.identities)
            ],
            "leader": self.cluster.leader,
            "faults": self.faults.to_json(),
        }

"""The whole stack for end-to-end tests: nats-server, the Consul double and real processes."""

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devstack.consul_double import ConsulDouble, generate_inventory
from devstack.nats import NatsServer, free_port
from devstack.nats_roles import RoleUser, authorization_config
from devstack.processes import ServiceProcess

T = TypeVar("T")
HOST = "127.0.0.1"
UNMAPPED = "Nao mapeado"

LOCK_TTL_SECONDS = 10
"""The enricher lock TTL of every test stack (the README's default): one policy for all suites.

Shorter TTLs expire under CPU starvation on a busy 2-core machine and turn into spurious takeovers.
"""


class NotYet(AssertionError):
    """The condition an ``eventually`` call waits for does not hold yet."""


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 30.0, interval: float = 0.05
) -> T:
    """Call ``check`` until it returns without raising; re-raise its last error at timeout."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except (AssertionError, httpx.HTTPError, KeyError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


@dataclass
class Stack:
    """Handles on every part of a running stack."""

    tmp: Path
    nodes: int = 20
    services: int = 4
    enrichers: int = 1
    apis: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    acl_token: str | None = None
    relay_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nats_users: dict[str, RoleUser] | None = None
    """Per-role NATS users (``devstack.nats_roles``); ``None``: an open nats-server."""
    nats: NatsServer | None = None
    double: ConsulDouble | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10.0))

    @property
    def consul(self) -> ConsulDouble:
        """The running Consul double."""
        assert self.double is not None
        return self.double

    def env(self) -> dict[str, str]:
        """Environment shared by every process."""
        assert self.nats is not None
        return {
            "NATS_URL": self.nats.url,
            "CONSUL_SERVERS": ",".join(self.consul.urls),
            "RELAY_TOKEN": self.relay_token,
            "API_ADMIN_TOKEN": self.admin_token,
            "CONSUL_RETRY_DELAY": "0.05",
            "ENRICHER_LOCK_TTL": str(LOCK_TTL_SECONDS),
            "ENRICHER_HEARTBEAT_INTERVAL": "1",
            "ENRICHER_RETRY_INTERVAL": "1",
            "ENRICHER_ACK_WAIT": "5",
            "ENRICHER_MEMBERS_INTERVAL": "2",
            "RELAY_WATCH_WAIT": "30",
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    def role_env(self, name: str) -> dict[str, str]:
        """NATS credentials of the role a process plays (from its name), when users are set."""
        if self.nats_users is None:
            return {}
        role = next(r for r in ("relay", "enricher", "api") if name.startswith(r))
        user = self.nats_users[role]
        return {"NATS_USER": user.user, "NATS_PASSWORD": user.password}

    def add(
        self, name: str, args: list[str], port_var: str, env: dict[str, str] | None = None
    ) -> ServiceProcess:
        """Start one more process on a free port and return it (not waited for)."""
        port = free_port()
        process = ServiceProcess(
            name,
            args,
            {**self.env(), **self.role_env(name), port_var: str(port), **(env or {})},
            health_url=f"http://{HOST}:{port}",
            log_dir=self.tmp / "logs",
        )
        self.processes[name] = process.start()
        return process

    async def start(self) -> "Stack":
        """Start NATS, the double, the relay (watcher), the enrichers and the API replicas."""
        await self.start_parts()
        return await self.start_processes()

    async def start_parts(self, nats: NatsServer | None = None) -> None:
        """Start NATS (``nats``: one the caller configured) and the Consul double only."""
        server = nats or NatsServer(
            self.tmp / "jetstream",
            log_file=self.tmp / "nats.log",
            extra_config=authorization_config(self.nats_users) if self.nats_users else "",
        )
        self.nats = server.start()
        self.double = ConsulDouble(
            servers=2,
            acl_token=self.acl_token,
            inventory=generate_inventory(nodes=self.nodes, services=self.services, sites=3, seed=3),
        )
        await self.double.start()

    async def start_processes(self) -> "Stack":
        """Start the relay (watcher), the enrichers and the API replicas, and wait until ready."""
        self.add("relay", ["relay", "watch"], "RELAY_PORT")
        for i in range(self.enrichers):
            self.add(
                f"enricher-{i + 1}", ["enricher"], "ENRICHER_PORT", {"ENRICHER_ID": f"e{i + 1}"}
            )
        for i in range(self.apis):
            self.add(f"api-{i + 1}", ["api"], "API_PORT")
        for process in self.processes.values():
            await asyncio.to_thread(process.wait_ready)
        return self

    async def stop(self) -> None:
        """Stop every process, the double and NATS."""
        for process in self.processes.values():
            await asyncio.to_thread(process.stop)
        if self.double is not None:
            await self.double.stop()
        if self.nats is not None:
            self.nats.stop()
        await self.http.aclose()

    def url(self, name: str) -> str:
        """Base URL of a process."""
        url = self.processes[name].health_url
        assert url is not None
        return url

    def api_names(self) -> list[str]:
        """Names of the running API replicas."""
        return [n for n, p in self.processes.items() if n.startswith("api-") and p.running]

    async def nodes_of(self, api: str) -> dict[str, dict[str, Any]]:
        """``/api/v1/nodes`` of one replica, by node name."""
        response = await self.http.get(self.url(api) + "/api/v1/nodes")
        assert response.status_code == 200, response.text
        return {entry["node"]: entry for entry in response.json()["data"]}

    async def metric(self, name: str, sample: str, labels: dict[str, str]) -> float:
        """Read one sample of a process's /metrics (0 when absent)."""
        text = (await self.http.get(self.url(name) + "/metrics")).text
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric != sample:
                continue
            found = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if "=" in pair)
            if {k: v.strip('"') for k, v in found.items()} == labels:
                return float(value)
        return 0.0

    def expected(self) -> dict[str, dict[str, Any]]:
        """What the view must converge to, computed from the double's own state."""
        state = self.consul.state
        snapshot = state.snapshot()
        sites: dict[str, str] = {}
        entry = state.kv.get(state.sites_key)
        if entry is not None:
            document = json.loads(entry.value)
            listed = document["data"]["sites"] if "data" in document else document["sites"]
            for site in listed:
                for field_name in ("prometheus_instance", "prometheus_host"):
                    if site.get(field_name):
                        sites.setdefault(site[field_name], site["name"])
        services = {node["Node"]: node["Services"] for node in snapshot["nodes"]}
        expected: dict[str, dict[str, Any]] = {}
        for member in snapshot["members"]:
            names = services.get(member["Name"], {})
            expected[member["Name"]] = {
                "addr": member["Addr"],
                "status": {1: "alive", 3: "dead", 4: "dead"}.get(member["Status"], "unknown"),
                "services_count": sum(1 for n in names.values() if n != "consul"),
                "site_name": sites.get(member["Addr"], UNMAPPED),
            }
        return expected

    async def assert_converged(self, api: str) -> None:
        """Assert one replica's view equals the double's state (status, count, site, addr)."""
        got = await self.nodes_of(api)
        want = self.expected()
        assert set(got) == set(want), sorted(set(got) ^ set(want))
        for node, fields in want.items():
            actual = {k: got[node][k] for k in fields}
            assert actual == fields, (node, actual, fields)


@contextlib.asynccontextmanager
async def converged(running: Stack, api: str = "api-1") -> AsyncIterator[Stack]:
    """Start ``running``, wait until ``api`` shows the double's state, and stop it afterwards."""
    try:
        await running.start()
        await eventually(lambda: running.assert_converged(api))
        yield running
    finally:
        await running.stop()

"""Starts and stops what one benchmark phase needs: doubles, the old backend, nodeview."""

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from bench.double import DoubleControl
from bench.procs import PythonProcess
from devstack.nats import NatsServer, free_port
from devstack.processes import ServiceProcess

HOST = "127.0.0.1"

READY_TIMEOUT_SECONDS = 600.0
"""Longest a service may take to be ready: the API replays the whole bucket first."""

SUPERVISE_INTERVAL_SECONDS = 0.5
"""How often exited nodeview services are noticed and restarted."""


@dataclass(frozen=True)
class ClusterShape:
    """The inventory a double serves."""

    nodes: int
    services: int
    per_node: int = 0
    seed: int = 1


class DoubleHandle:
    """A double process and its control client."""

    def __init__(self, name: str, shape: ClusterShape, logs: Path) -> None:
        """Describe the double; :meth:`start` launches it."""
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        args = ["--port", str(self.port), "--nodes", str(shape.nodes)]
        args += ["--services", str(shape.services), "--per-node", str(shape.per_node)]
        args += ["--seed", str(shape.seed)]
        self.process = PythonProcess(
            name, "bench.double", args, self.url + "/v1/status/leader", logs
        )
        self.control = DoubleControl(self.url)

    async def start(self) -> "DoubleHandle":
        """Launch and wait until it answers."""
        self.process.start()
        await asyncio.to_thread(self.process.wait_ready)
        return self

    async def stop(self) -> None:
        """Close the control client and stop the process."""
        await self.control.aclose()
        await asyncio.to_thread(self.process.stop)


class LegacyHandle:
    """The old backend as a process, bound to one double."""

    def __init__(self, double: DoubleHandle, logs: Path, name: str = "legacy") -> None:
        """Describe the process; :meth:`start` launches it."""
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        args = ["--port", str(self.port), "--consul", double.url]
        self.process = PythonProcess(name, "bench.legacy", args, self.url + "/healthz", logs)

    async def start(self) -> "LegacyHandle":
        """Launch and wait until it answers."""
        self.process.start()
        await asyncio.to_thread(self.process.wait_ready)
        return self

    async def stop(self) -> None:
        """Stop the process."""
        await asyncio.to_thread(self.process.stop)


@dataclass
class NodeviewHandle:
    """nats-server, relay (watcher), enricher and one API replica, bound to one double."""

    double: DoubleHandle
    tmp: Path
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nats: NatsServer | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    restarts: list[dict[str, str]] = field(default_factory=list)
    api_replicas: int = 1
    """API processes, each replaying the same bucket: ``api``, ``api-2``, …"""
    _supervisor: asyncio.Task[None] | None = None

    def env(self) -> dict[str, str]:
        """Environment shared by the three services."""
        assert self.nats is not None
        return {
            "NATS_URL": self.nats.url,
            "CONSUL_SERVERS": self.double.url,
            "RELAY_TOKEN": secrets.token_urlsafe(16),
            "API_ADMIN_TOKEN": self.admin_token,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "ENRICHER_ID": "bench",
            # Reads are counted per change: the background members read (one per interval,
            # whatever the size) is left out of the counts.
            "ENRICHER_MEMBERS_INTERVAL": "0",
            "API_FLUSH_WAIT_TIMEOUT": "120",
        }

    def _add(self, name: str, args: list[str], port_var: str) -> None:
        """Start one service on a free port."""
        port = free_port()
        process = ServiceProcess(
            name,
            args,
            {**self.env(), port_var: str(port)},
            health_url=f"http://{HOST}:{port}",
            log_dir=self.tmp / "logs",
        )
        self.processes[name] = process.start()

    async def start(self) -> "NodeviewHandle":
        """Start NATS, then relay, enricher and API, and wait until all are ready."""
        self.nats = NatsServer(self.tmp / "jetstream", log_file=self.tmp / "nats.log").start()
        self._add("relay", ["relay", "watch"], "RELAY_PORT")
        self._add("enricher", ["enricher"], "ENRICHER_PORT")
        for name in self.api_names:
            self._add(name, ["api"], "API_PORT")
        for process in self.processes.values():
            await asyncio.to_thread(process.wait_ready, "/readyz", READY_TIMEOUT_SECONDS)
        self._supervisor = asyncio.create_task(self._supervise())
        return self

    async def _supervise(self) -> None:
        """Restart a service that exits, as an orchestrator would, and record why it exited."""
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_SECONDS)
            for name, process in self.processes.items():
                if process.process is not None and not process.running:
                    lines = process.log_text().strip().splitlines()
                    self.restarts.append({"service": name, "last_log": lines[-1] if lines else ""})
                    process.process = None
                    process.start()

    async def stop(self) -> None:
        """Stop the supervisor, the services, then NATS."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for process in self.processes.values():
            await asyncio.to_thread(process.stop)
        if self.nats is not None:
            self.nats.stop()

    def url(self, name: str) -> str:
        """Base URL of a service."""
        url = self.processes[name].health_url
        assert url is not None
        return url

    @property
    def api_names(self) -> list[str]:
        """Names of the API replicas, the first one ``api``."""
        return ["api", *(f"api-{n}" for n in range(2, self.api_replicas + 1))]

    def pid(self, name: str) -> int:
        """Process id of a service."""
        process = self.processes[name].process
        assert process is not None
        return process.pid

    @property
    def nats_url(self) -> str:
        """Client URL of the NATS server."""
        assert self.nats is not None
        return self.nats.url

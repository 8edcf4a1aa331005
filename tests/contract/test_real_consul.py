"""The relay and enricher against a real Consul and a real NATS (testcontainers), given Docker.

The Consul double stands in for Consul everywhere else; this checks that what the pipeline reads
from the double it reads the same from Consul itself: blocking queries, the Serf health filter,
the catalog and the internal service summary. Without a Docker daemon it is skipped, with why.
"""

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from devstack.nats import free_port
from devstack.processes import ServiceProcess
from tests.e2e.stack import eventually

pytestmark = [
    pytest.mark.contract,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]

CONSUL_IMAGE = "hashicorp/consul:1.20"
NATS_IMAGE = "nats:2.11"
HOST = "127.0.0.1"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
WITHIN = 60.0
"""Longest wait for the view to follow one Consul change (containers on a busy machine)."""

NODE = "contract-node-1"
ADDR = "127.40.0.1"


def _docker_unavailable() -> str | None:
    """Why Docker cannot run containers here, or None when its daemon answers ``/_ping``."""
    docker_host = os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    scheme, _, where = docker_host.partition("://")
    try:
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5.0)
            with sock:
                sock.connect(where)
                reply = _ping(sock)
        elif scheme == "tcp":
            host, _, port = where.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=5.0) as sock:
                reply = _ping(sock)
        else:
            return f"DOCKER_HOST={docker_host} is neither unix:// nor tcp://"
    except (OSError, ValueError) as exc:
        return f"no Docker daemon answers at {docker_host} ({exc})"
    if not reply.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        return f"the Docker daemon at {docker_host} refused a ping: {reply[:60]!r}"
    return None


def _ping(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
    return sock.recv(64)


@contextlib.contextmanager
def _container(image: str, command: str, port: int, host_port: int) -> Iterator[Any]:
    """A started container whose ``port`` is published on 127.0.0.1 only."""
    from docker.errors import DockerException
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_command(command)
    # docker-py takes (address, port): publish on the loopback address, never on every interface.
    container.ports[f"{port}/tcp"] = cast(int, (HOST, host_port))
    try:
        container.start()
    except DockerException as exc:
        pytest.skip(f"{image} could not be started here: {str(exc).splitlines()[0][:200]}")
    try:
        yield container
    finally:
        container.stop()


async def _consul_ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http:

        async def leader() -> None:
            response = await http.get(url + "/v1/status/leader")
            assert response.status_code == 200
            assert response.json()

        await eventually(leader, within=WITHIN)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """Consul and NATS containers, then nodeview's relay, enricher and API processes on them."""
    reason = _docker_unavailable()
    if reason is not None:
        pytest.skip(f"contract test against a real Consul and NATS needs Docker: {reason}")
    tmp: Path = tmp_path_factory.mktemp("contract")
    consul_port, nats_port = free_port(), free_port()
    with (
        _container(CONSUL_IMAGE, "agent -dev -client 0.0.0.0", 8500, consul_port),
        _container(NATS_IMAGE, "-js", 4222, nats_port),
    ):
        consul_url = f"http://{HOST}:{consul_port}"
        await _consul_ready(consul_url)
        env = {
            "NATS_URL": f"nats://{HOST}:{nats_port}",
            "CONSUL_SERVERS": consul_url,
            "RELAY_TOKEN": secrets.token_urlsafe(16),
            "API_ADMIN_TOKEN": secrets.token_urlsafe(16),
            "ENRICHER_HEARTBEAT_INTERVAL": "1",
            "ENRICHER_RETRY_INTERVAL": "1",
        }
        processes: list[ServiceProcess] = []
        urls: dict[str, str] = {"consul": consul_url}
        try:
            for name, args, port_var in (
                ("relay", ["relay", "watch"], "RELAY_PORT"),
                ("enricher", ["enricher"], "ENRICHER_PORT"),
                ("api", ["api"], "API_PORT"),
            ):
                port = free_port()
                process = ServiceProcess(
                    name,
                    args,
                    {**env, port_var: str(port)},
                    health_url=f"http://{HOST}:{port}",
                    log_dir=tmp / "logs",
                )
                processes.append(process.start())
                urls[name] = f"http://{HOST}:{port}"
            for process in processes:
                await asyncio.to_thread(process.wait_ready)
            yield urls
        finally:
            for process in processes:
                await asyncio.to_thread(process.stop)


async def _entry(http: httpx.AsyncClient, api: str, node: str) -> dict[str, Any] | None:
    response = await http.get(api + "/api/v1/nodes")
    assert response.status_code == 200, response.text
    entries: dict[str, dict[str, Any]] = {e["node"]: e for e in response.json()["data"]}
    return entries.get(node)


def _registration(status: str) -> dict[str, Any]:
    return {
        "Node": NODE,
        "Address": ADDR,
        "Service": {"ID": "web-1", "Service": "web", "Port": 8080, "Tags": ["blue"]},
        "Check": {
            "Node": NODE,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": status,
        },
    }


async def test_a_node_registered_in_consul_is_served_changed_and_removed(
    pipeline: dict[str, str],
) -> None:
    """Register, fail and deregister a node in a real Consul: the API's view follows each step."""
    consul, api = pipeline["consul"], pipeline["api"]
    async with httpx.AsyncClient(timeout=10.0) as http:

        async def agent_is_a_server() -> None:
            entries = (await http.get(api + "/api/v1/nodes")).json()["data"]
            assert [e["type"] for e in entries] == ["server"]
            assert entries[0]["services_count"] == 0  # the consul service is not counted

        await eventually(agent_is_a_server, within=WITHIN)

        register = await http.put(consul + "/v1/catalog/register", json=_registration("passing"))
        assert register.status_code == 200, register.text

        async def served() -> None:
            entry = await _entry(http, api, NODE)
            assert entry is not None
            assert (entry["addr"], entry["status"], entry["services_count"]) == (ADDR, "alive", 1)
            services = (await http.get(f"{api}/api/v1/nodes/{ADDR}/services")).json()
            assert services["services"]["web-1"]["Port"] == 8080
            assert services["services"]["web-1"]["Tags"] == ["blue"]

        await eventually(served, within=WITHIN)

        fail = await http.put(consul + "/v1/catalog/register", json=_registration("critical"))
        assert fail.status_code == 200, fail.text

        async def dead() -> None:
            entry = await _entry(http, api, NODE)
            assert entry is not None
            assert entry["status"] == "dead"

        await eventually(dead, within=WITHIN)

        gone = await http.put(consul + "/v1/catalog/deregister", json={"Node": NODE})
        assert gone.status_code == 200, gone.text

        async def removed() -> None:
            assert await _entry(http, api, NODE) is None

        await eventually(removed, within=WITHIN)

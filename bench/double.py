"""The Consul double as a process of its own, and an async client of its control API."""

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from devstack.consul_double import ConsulDouble, Inventory, InventoryService, generate_inventory

CONTROL_ATTEMPTS = 3
"""Tries of one control request when its connection drops."""

CONTROL_TIMEOUT_SECONDS = 30.0
"""Longest a control request may take (a large sites write or counters read)."""


def build_inventory(nodes: int, services: int, per_node: int, seed: int) -> Inventory:
    """A generated inventory; with ``per_node`` > 0 every node runs that many services."""
    inventory = generate_inventory(nodes=nodes, services=services, sites=3, seed=seed)
    if per_node <= 0:
        return inventory
    rebuilt = []
    for position, node in enumerate(inventory.nodes):
        if node.server:
            rebuilt.append(node)
            continue
        template = node.services[0] if node.services else None
        instances = tuple(
            InventoryService(
                f"svc{(position + k) % services:02d}",
                f"svc{(position + k) % services:02d}",
                9100 + (position + k) % services,
                template.tags if template else (),
                dict(template.meta) if template else {},
            )
            for k in range(per_node)
        )
        rebuilt.append(replace(node, services=instances))
    return Inventory(tuple(rebuilt), inventory.sites_document)


async def serve(port: int, nodes: int, services: int, per_node: int, seed: int) -> None:
    """Serve one double server on ``port`` until SIGTERM or SIGINT."""
    double = ConsulDouble(
        servers=1, inventory=build_inventory(nodes, services, per_node, seed), ports=[port]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with double:
        print(f"consul double ready on {double.urls[0]}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve the double until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.double", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--per-node", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.nodes, args.services, args.per_node, args.seed))
    return 0


class DoubleControl:
    """Drives a double running in another process through ``/_double/``."""

    def __init__(self, url: str) -> None:
        """Bind to the double's base URL with one keep-alive client."""
        self.url = url
        self.http = httpx.AsyncClient(base_url=url + "/_double", timeout=CONTROL_TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one control request and return its JSON answer (retried on a dropped connection).

        Every control action is idempotent, and uvicorn closes idle keep-alive connections, so a
        request may meet a connection the server has just closed.
        """
        for attempt in range(CONTROL_ATTEMPTS):
            try:
                response = await self.http.request(method, path, json=body)
                break
            except httpx.TransportError:
                if attempt + 1 == CONTROL_ATTEMPTS:
                    raise
        response.raise_for_status()
        return response.json()

    async def join(self, name: str, addr: str) -> None:
        """Join a new client node."""
        await self._call("POST", "/nodes", {"name": name, "addr": addr})

    async def node_action(self, name: str, action: str) -> None:
        """``fail``, ``recover`` or ``leave`` a node."""
        await self._call("POST", f"/nodes/{name}/{action}")

    async def register(self, node: str, service_id: str, name: str, port: int) -> None:
        """Register a service instance on a node."""
        body = {"node": node, "id": service_id, "name": name, "port": port}
        await self._call("POST", "/services", body)

    async def deregister(self, node: str, service_id: str) -> None:
        """Deregister a service instance of a node."""
        await self._call("DELETE", f"/services/{node}/{service_id}")

    async def set_sites(self, document: Any) -> None:
        """Replace the sites document."""
        await self._call("PUT", "/sites", document)

    async def latency(self, seconds: float) -> None:
        """Delay every Consul request by ``seconds`` (0 removes the delay)."""
        await self._call("POST", "/faults/latency", {"seconds": seconds})

    async def counters(self) -> dict[str, Any]:
        """Request counters by endpoint."""
        result: dict[str, Any] = await self._call("GET", "/counters")
        return result

    async def reset_counters(self) -> dict[str, Any]:
        """Zero the request counters; the answer's high-water marks are the requests in flight."""
        result: dict[str, Any] = await self._call("POST", "/counters/reset")
        return result

    async def state(self) -> dict[str, Any]:
        """Snapshot of the double's state."""
        result: dict[str, Any] = await self._call("GET", "/state")
        return result


if __name__ == "__main__":
    raise SystemExit(main())

"""The old backend's ``GET /api/v1/nodes``, reproduced faithfully as the benchmark's baseline.

On a cache miss it reads ``/v1/agent/members`` and the sites KV document, then one catalog read
per member with an unbounded ``asyncio.gather``, a new ``httpx.AsyncClient`` per call, a hard-coded
2 s timeout and one Consul server; a failed read leaves ``services_count = 0``. The answer is kept
60 s in the process's own memory. Its flaws are the point: do not fix them here.
"""

import argparse
import asyncio
import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

LEGACY_TTL_SECONDS = 60.0
"""The old cache TTL of the nodes list."""

LEGACY_TIMEOUT_SECONDS = 2.0
"""The old hard-coded per-node timeout."""

SITES_KEY = "skills/eye/metadata/sites"
UNMAPPED = "Nao mapeado"
CACHE_KEY = "nodes:list"
STATUS = {1: "alive", 3: "dead", 4: "dead"}


class LocalCache:
    """The old in-process TTL cache."""

    def __init__(self) -> None:
        """Start empty."""
        self._items: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str) -> Any:
        """The cached value, or ``None`` once expired."""
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    async def set(self, key: str, value: Any, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds."""
        self._items[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        """Drop everything (used by the benchmark to force a miss)."""
        self._items.clear()


class ConsulManager:
    """The old Consul client: one server, a new ``httpx.AsyncClient`` for every request."""

    def __init__(self, server: str, shared: httpx.AsyncClient | None = None) -> None:
        """Bind to the single configured server (``shared`` only for the benchmark's priming)."""
        self.server = server
        self.shared = shared

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request on a fresh client (no connection reuse), as the old code did."""
        if self.shared is not None:
            return await self._send(self.shared, method, path, **kwargs)
        async with httpx.AsyncClient() as client:
            return await self._send(client, method, path, **kwargs)

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        response = await client.request(method, self.server + path, **kwargs)
        response.raise_for_status()
        return response

    async def get_members(self) -> list[dict[str, Any]]:
        """Members from ``/v1/agent/members``, in the old backend's shape."""
        members = (await self._request("GET", "/v1/agent/members")).json()
        return [
            {
                "node": m["Name"],
                "addr": m["Addr"],
                "status": STATUS.get(m["Status"], "unknown"),
                "type": "server" if m.get("Tags", {}).get("role") == "consul" else "client",
                "datacenter": m.get("Tags", {}).get("dc", ""),
                "services_count": 0,
                "site_name": UNMAPPED,
            }
            for m in members
        ]

    async def get_node_services(self, node: str) -> dict[str, Any]:
        """``/v1/catalog/node/<node>``."""
        result: dict[str, Any] = (await self._request("GET", f"/v1/catalog/node/{node}")).json()
        return result

    async def get_kv_json(self, key: str) -> Any:
        """A KV value decoded as JSON (``None`` when absent)."""
        try:
            entries = (await self._request("GET", f"/v1/kv/{key}")).json()
        except httpx.HTTPStatusError:
            return None
        return json.loads(base64.b64decode(entries[0]["Value"]))


def sites_map_of(document: Any) -> dict[str, str]:
    """Address → site name, from any of the old document shapes."""
    data = document
    while isinstance(data, dict) and "data" in data:
        data = data["data"]
    sites = data.get("sites", []) if isinstance(data, dict) else data or []
    mapping: dict[str, str] = {}
    for site in sites:
        for field in ("prometheus_instance", "prometheus_host"):
            if site.get(field):
                mapping.setdefault(site[field], site.get("name") or site.get("code", ""))
    return mapping


def create_app(server: str, ttl: float = LEGACY_TTL_SECONDS) -> FastAPI:
    """The old backend's nodes route (plus a health route and a cache drop for the benchmark)."""
    app = FastAPI()
    cache = LocalCache()

    async def compute(consul: ConsulManager) -> dict[str, Any]:
        """The old cache-miss work: a fan-out of one read per member."""
        members = await consul.get_members()
        sites_map = sites_map_of(await consul.get_kv_json(SITES_KEY))

        async def get_service_count(member: dict[str, Any]) -> dict[str, Any]:
            """One catalog read; any error silently leaves 0 services."""
            member["site_name"] = sites_map.get(member["addr"], UNMAPPED)
            try:
                node_data = await asyncio.wait_for(
                    consul.get_node_services(member["node"]), timeout=LEGACY_TIMEOUT_SECONDS
                )
                services = (node_data or {}).get("Services") or {}
                member["services_count"] = sum(
                    1 for s in services.values() if s.get("Service") != "consul"
                )
            except Exception:  # noqa: BLE001, S110 -- the old code swallowed every error
                pass
            return member

        enriched = await asyncio.gather(*[get_service_count(m) for m in members])
        result = {
            "success": True,
            "data": list(enriched),
            "total": len(enriched),
            "main_server": server,
        }
        await cache.set(CACHE_KEY, result, ttl=ttl)
        return result

    @app.get("/api/v1/nodes")
    async def get_nodes() -> dict[str, Any]:
        """The old request path: cached 60 s, else a fan-out of one read per member."""
        cached = await cache.get(CACHE_KEY)
        if cached is not None:
            return dict(cached)
        return await compute(ConsulManager(server))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.post("/_bench/cache/drop")
    async def drop_cache() -> dict[str, bool]:
        """Forget the cached list so the next request is a miss."""
        cache.clear()
        return {"dropped": True}

    @app.post("/_bench/cache/prime")
    async def prime_cache() -> dict[str, int]:
        """Fill the cache by the same fan-out on one pooled client (a real miss is too slow)."""
        limits = httpx.Limits(max_connections=64)
        timeout = httpx.Timeout(LEGACY_TIMEOUT_SECONDS, pool=None)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as shared:
            result = await compute(ConsulManager(server, shared))
        zeros = sum(1 for m in result["data"] if m["type"] == "client" and m["services_count"] == 0)
        return {"nodes": int(result["total"]), "zero_services": zeros}

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the old nodes route on 127.0.0.1."""
    parser = argparse.ArgumentParser(prog="python -m bench.legacy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--consul", required=True, help="the single Consul server URL")
    parser.add_argument("--ttl", type=float, default=LEGACY_TTL_SECONDS)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.consul, args.ttl),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

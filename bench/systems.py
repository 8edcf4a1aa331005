"""The systems under test in one phase, and the small reads every scenario shares."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import probes
from bench.stack import ClusterShape, DoubleHandle, LegacyHandle, NodeviewHandle

VIEW_TIMEOUT_SECONDS = 600.0
"""Longest the first full view may take to appear (10,000 nodes on a small machine)."""

MISS_TIMEOUT_SECONDS = 90.0
"""Longest one cache miss of the old backend may take before it is recorded as not finished."""


@dataclass
class Systems:
    """What runs in a phase: each system has a double of its own, so counts never mix."""

    shape: ClusterShape
    http: httpx.AsyncClient
    nv_double: DoubleHandle | None = None
    nodeview: NodeviewHandle | None = None
    lg_double: DoubleHandle | None = None
    legacy: LegacyHandle | None = None

    @property
    def api(self) -> str:
        """Base URL of the nodeview API replica."""
        assert self.nodeview is not None
        return self.nodeview.url("api")

    async def consul_reads(self, service: str) -> dict[str, float]:
        """``consul_requests_total`` of a nodeview service, by endpoint."""
        assert self.nodeview is not None
        samples = await probes.metrics(self.http, self.nodeview.url(service))
        return probes.by_label(samples, "consul_requests_total", "endpoint")

    async def legacy_miss(self) -> dict[str, Any]:
        """Force one cache miss of the old backend; its wall time and nodes left at 0 services."""
        assert self.legacy is not None
        await self.http.post(self.legacy.url + "/_bench/cache/drop")
        started = time.perf_counter()
        response = await self.http.get(
            self.legacy.url + "/api/v1/nodes", timeout=MISS_TIMEOUT_SECONDS
        )
        seconds = time.perf_counter() - started
        data = response.json()["data"]
        zeros = sum(1 for m in data if m["type"] == "client" and m["services_count"] == 0)
        return {"seconds": seconds, "nodes": len(data), "zero_services": zeros}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    """Per-key difference of two counter reads (keys that did not move are left out)."""
    moved = {k: int(v - before.get(k, 0.0)) for k, v in after.items()}
    return {k: v for k, v in sorted(moved.items()) if v}


@contextlib.asynccontextmanager
async def systems_for(
    shape: ClusterShape,
    mode: str,
    tmp: Path,
    http: httpx.AsyncClient,
    *,
    legacy: bool = True,
    api_replicas: int = 1,
) -> AsyncIterator[Systems]:
    """Start the doubles and the systems the mode needs; stop all of them on exit."""
    systems = Systems(shape, http)
    logs = tmp / "logs"
    try:
        doubles = []
        if mode in ("compare", "all"):
            systems.nv_double = DoubleHandle(f"double-nv-{shape.nodes}", shape, logs)
            doubles.append(systems.nv_double.start())
        if mode in ("baseline", "all") and legacy:
            systems.lg_double = DoubleHandle(f"double-lg-{shape.nodes}", shape, logs)
            doubles.append(systems.lg_double.start())
        await asyncio.gather(*doubles)
        services: list[Coroutine[Any, Any, object]] = []
        if systems.nv_double is not None:
            systems.nodeview = NodeviewHandle(
                systems.nv_double, tmp / f"nv-{shape.nodes}", api_replicas=api_replicas
            )
            services.append(systems.nodeview.start())
        if systems.lg_double is not None:
            systems.legacy = LegacyHandle(systems.lg_double, logs, f"legacy-{shape.nodes}")
            services.append(systems.legacy.start())
        await asyncio.gather(*services)
        yield systems
    finally:
        for part in (systems.nodeview, systems.legacy, systems.nv_double, systems.lg_double):
            if part is not None:
                await part.stop()


async def wait_full_view(systems: Systems, expected: int) -> float:
    """Seconds until every API replica serves ``expected`` nodes."""
    assert systems.nodeview is not None
    started = time.perf_counter()
    deadline = time.monotonic() + VIEW_TIMEOUT_SECONDS
    for name in systems.nodeview.api_names:
        url = systems.nodeview.url(name) + "/api/v1/nodes"
        while True:
            response = await systems.http.get(url, timeout=60.0)
            if response.status_code == 200 and response.json()["total"] >= expected:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the view of {name} did not reach {expected} nodes")
            await asyncio.sleep(0.25)
    return time.perf_counter() - started

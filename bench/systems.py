"""The systems under test in one phase, and the small reads every scenario shares."""

import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench import probes
from bench.stack import ClusterShape, DoubleHandle, LegacyHandle, NodeviewHandle

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

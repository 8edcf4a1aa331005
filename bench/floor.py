"""Freshness one change at a time, beside the floor: a bare client blocking on the same query."""

import asyncio
import time
from typing import Any

import httpx

from bench.changes import ChangeMaker
from bench.cost import VISIBLE_TIMEOUT_SECONDS, Probes
from bench.stats import summary_ms

SITES_KEY = "skills/eye/metadata/sites"
"""The KV key of the sites document (nodeview's and the double's default)."""

SERF_FILTER = 'CheckID == "serfHealth"'
"""The filter the relay's Serf health watch sends."""

FLOOR_QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "node_join": ("/v1/catalog/nodes", {}),
    "node_fail": ("/v1/health/state/any", {"filter": SERF_FILTER}),
    "service_register": ("/v1/catalog/services", {}),
    "instance_add": ("/v1/catalog/services", {}),
    "sites_change": ("/v1/kv/" + SITES_KEY, {}),
}
"""Per change kind, the Consul query whose answer first carries the change (path, parameters)."""

FLOOR_KINDS = tuple(FLOOR_QUERIES)

FLOOR_WAIT = "60s"
"""Blocking wait of the bare client; far longer than one change takes."""

PARK_SECONDS = 0.05
"""Pause after sending the bare client's query, so that it is parked before the write."""

PAUSE_SECONDS = 0.1
"""Pause between two changes, so that the relay's watches are parked again."""


async def _index(http: httpx.AsyncClient, url: str, params: dict[str, str]) -> int:
    """The current ``X-Consul-Index`` of a query."""
    response = await http.get(url, params=params)
    return int(response.headers["X-Consul-Index"])


async def one(
    p: Probes, http: httpx.AsyncClient, base: str, maker: ChangeMaker, kind: str, i: int
) -> dict[str, Any]:
    """Floor and visibility of the ``i``-th change of ``kind``, in seconds after the write."""
    path, params = FLOOR_QUERIES[kind]
    url = base + path
    index = await _index(http, url, params)
    query = {**params, "index": str(index), "wait": FLOOR_WAIT}

    async def blocked() -> tuple[httpx.Response, float]:
        response = await http.get(url, params=query)
        return response, time.time()

    bare = asyncio.create_task(blocked())
    await asyncio.sleep(PARK_SECONDS)
    change = maker.make(kind, i)
    futures = p.views.expect(change.seen, change.events)
    await change.apply()
    written = time.time()
    arrival = await p.views.visible(futures, VISIBLE_TIMEOUT_SECONDS)
    response, answered = await bare
    moved = int(response.headers.get("X-Consul-Index", 0)) > index
    if change.undo is not None and change.undone is not None:
        await p.show(change, undo=True)
    return {
        "kind": kind,
        "visible": None if arrival is None else arrival - written,
        "floor": answered - written if moved else None,
    }


async def freshness(p: Probes, maker: ChangeMaker, rounds: int) -> dict[str, Any]:
    """``rounds`` changes of each floor kind, one at a time, each visible on every replica first."""
    assert p.systems.nv_double is not None
    base = p.systems.nv_double.url
    samples: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=120.0) as http:
        for i in range(rounds):
            for kind in FLOOR_KINDS:
                samples.append(await one(p, http, base, maker, kind, i))
                await asyncio.sleep(PAUSE_SECONDS)
    return summarise(samples)


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of visibility, floor and their difference, per kind and over all kinds."""

    def block(rows: list[dict[str, Any]]) -> dict[str, Any]:
        both = [r for r in rows if r["visible"] is not None and r["floor"] is not None]
        return {
            "visible": summary_ms([r["visible"] for r in rows if r["visible"] is not None]),
            "floor": summary_ms([r["floor"] for r in rows if r["floor"] is not None]),
            "over_floor": summary_ms([r["visible"] - r["floor"] for r in both]),
            "not_seen": sum(1 for r in rows if r["visible"] is None),
            "floor_not_moved": sum(1 for r in rows if r["floor"] is None),
        }

    return {
        "all": block(samples),
        "by_kind": {k: block([r for r in samples if r["kind"] == k]) for k in FLOOR_KINDS},
        "samples_ms": [
            {
                "kind": r["kind"],
                "visible": None if r["visible"] is None else round(r["visible"] * 1000, 3),
                "floor": None if r["floor"] is None else round(r["floor"] * 1000, 3),
            }
            for r in samples
        ],
    }

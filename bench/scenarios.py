"""Latency, throughput, Consul load, resync and freshness scenarios for both systems."""

import asyncio
import time
from typing import Any

from bench import probes
from bench.changes import KINDS, ChangeMaker
from bench.config import Profile
from bench.load import RunResult, run_load
from bench.procs import cpu_seconds
from bench.sse import SseWatch
from bench.stats import summary_ms
from bench.systems import Systems, delta

NODES_PATH = "/api/v1/nodes"
EVENT_TIMEOUT_SECONDS = 15.0
"""Longest a change may take to show up before it is counted as not seen."""

ENRICHER_ENDPOINTS = frozenset(
    {
        "/v1/agent/members",
        "/v1/catalog/node-services/{node}",
        "/v1/catalog/node/{node}",
        "/v1/catalog/service/{name}",
    }
)
"""Endpoints only the enricher reads for a single change (the relay's watches use the others)."""

ROUND_PAUSE_SECONDS = 0.1
"""Pause between freshness rounds, so that a recovering node settles first."""

SETTLE_SECONDS = 1.0
"""Quiet time after a change so that every Consul read it causes is counted."""


def run_json(result: RunResult) -> dict[str, Any]:
    """Latency summary, status counts and client CPU of one load run."""
    return {
        **summary_ms(result.latencies),
        "errors": result.errors,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "rps": round(result.rps, 1),
        "client_cpu_percent": round(result.client_cpu_percent, 1),
        "body_bytes": result.bytes // max(1, result.requests),
    }


async def latency(systems: Systems, profile: Profile) -> dict[str, Any]:
    """Sequential ``GET /api/v1/nodes`` of nodeview: 200 and ``If-None-Match`` 304."""
    out: dict[str, Any] = {}
    seconds, count = profile.latency_seconds, profile.latency_requests
    if systems.nodeview is not None:
        url = systems.api + NODES_PATH
        out["nodeview"] = run_json(
            await run_load(url, concurrency=1, duration=seconds, max_requests=count)
        )
        etag = (await systems.http.get(url)).headers["etag"]
        run = await run_load(
            url,
            concurrency=1,
            headers={"If-None-Match": etag},
            duration=seconds,
            max_requests=count,
        )
        out["nodeview_304"] = run_json(run)
    return out


async def throughput(systems: Systems, profile: Profile) -> list[dict[str, Any]]:
    """nodeview requests/s with 1 and many keep-alive clients, with server and client CPU."""
    assert systems.nodeview is not None
    targets = [("nodeview", systems.api, systems.nodeview.pid("api"))]
    rows = []
    for system, base, pid in targets:
        for concurrency in profile.concurrencies:
            cpu0 = cpu_seconds(pid)
            result = await run_load(
                base + NODES_PATH,
                concurrency=concurrency,
                duration=profile.throughput_seconds,
                max_requests=10_000_000,
            )
            server_cpu = 100.0 * (cpu_seconds(pid) - cpu0) / result.wall_seconds
            rows.append(
                {
                    "system": system,
                    "concurrency": concurrency,
                    **run_json(result),
                    "server_cpu_percent": round(server_cpu, 1),
                }
            )
    return rows


async def steady_load(systems: Systems, seconds: float) -> dict[str, Any]:
    """Consul requests per minute of nodeview with no change."""
    out: dict[str, Any] = {"window_seconds": seconds}

    async def nodeview() -> None:
        assert systems.nv_double is not None
        await systems.nv_double.control.reset_counters()
        relay0, enr0 = await systems.consul_reads("relay"), await systems.consul_reads("enricher")
        await asyncio.sleep(seconds)
        counts = await systems.nv_double.control.counters()
        relay = delta(await systems.consul_reads("relay"), relay0)
        enricher = delta(await systems.consul_reads("enricher"), enr0)
        out["nodeview"] = {
            "per_minute_total": round(counts["total"] * 60 / seconds, 1),
            "per_minute_enricher_reads": round(sum(enricher.values()) * 60 / seconds, 1),
            "relay_watch_requests": relay,
            "enricher_reads": enricher,
            "by_endpoint": counts["by_endpoint"],
        }

    await nodeview()
    return out


async def per_change(systems: Systems, watch: SseWatch | None) -> dict[str, Any]:
    """Consul requests caused by one change of each kind (nodeview)."""
    out: dict[str, Any] = {}
    if systems.nodeview is not None and watch is not None and systems.nv_double is not None:
        control = systems.nv_double.control
        maker = ChangeMaker(control, systems.shape, "pc")
        for kind in KINDS:
            change = maker.make(kind, 0)
            await control.reset_counters()
            enr0 = await systems.consul_reads("enricher")
            expected = watch.expect(change.seen)
            await change.apply()
            seen = await watch.settle(expected, EVENT_TIMEOUT_SECONDS)
            await asyncio.sleep(SETTLE_SECONDS)
            counts = await control.counters()
            enricher = delta(await systems.consul_reads("enricher"), enr0)
            out[kind] = {
                "seen": seen is not None,
                "enricher_reads": sum(
                    v for k, v in counts["by_endpoint"].items() if k in ENRICHER_ENDPOINTS
                ),
                "enricher_by_endpoint": enricher,
                "consul_requests_total": counts["total"],
                "consul_by_endpoint": counts["by_endpoint"],
            }
            if change.undo is not None:
                await change.undo()
                await asyncio.sleep(SETTLE_SECONDS)
    return out


async def resync(systems: Systems, consul_latency: float, reset_to: float) -> dict[str, Any]:
    """Wall time and Consul requests of a full nodeview resync at a given Consul latency."""
    out: dict[str, Any] = {"consul_latency_ms": consul_latency * 1000}
    if systems.nodeview is not None and systems.nv_double is not None:
        control = systems.nv_double.control
        await control.latency(consul_latency)
        await control.reset_counters()
        before = await probes.metrics(systems.http, systems.nodeview.url("enricher"))
        started = time.perf_counter()
        response = await systems.http.post(
            systems.api + "/api/v1/admin/cache/nodes/flush?wait=true",
            headers={"Authorization": f"Bearer {systems.nodeview.admin_token}"},
            timeout=180.0,
        )
        wall = time.perf_counter() - started
        after = await probes.metrics(systems.http, systems.nodeview.url("enricher"))
        counts = await control.counters()
        hist = probes.histogram_delta(
            probes.histogram(after, "nodeview_resync_duration_seconds"),
            probes.histogram(before, "nodeview_resync_duration_seconds"),
        )
        reads = delta(
            probes.by_label(after, "consul_requests_total", "endpoint"),
            probes.by_label(before, "consul_requests_total", "endpoint"),
        )
        out["nodeview"] = {
            "status": response.status_code,
            "wall_seconds": round(wall, 3),
            "enricher_seconds": round(hist["sum"], 3) if hist["count"] else None,
            "enricher_reads": sum(reads.values()),
            "enricher_by_endpoint": reads,
            "consul_requests_total": counts["total"],
            "consul_by_endpoint": counts["by_endpoint"],
        }
        await control.latency(reset_to)
    return out


async def freshness(systems: Systems, watch: SseWatch, changes: int) -> dict[str, Any]:
    """Consul change → API node event: rounds of one change of each kind, ``changes`` rounds."""
    assert systems.nv_double is not None
    maker = ChangeMaker(systems.nv_double.control, systems.shape, "fr")
    before = await probes.metrics(systems.http, systems.api)
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    missed: dict[str, int] = dict.fromkeys(KINDS, 0)

    async def one(kind: str, i: int) -> None:
        change = maker.make(kind, i)
        expected = watch.expect(change.seen)
        started = time.time()
        await change.apply()
        arrival = await watch.settle(expected, EVENT_TIMEOUT_SECONDS)
        if arrival is None:
            missed[kind] += 1
        else:
            samples[kind].append(arrival - started)
        if change.undo is not None:
            await change.undo()

    for i in range(changes):
        await asyncio.gather(*(one(kind, i) for kind in KINDS))
        await asyncio.sleep(ROUND_PAUSE_SECONDS)
    after = await probes.metrics(systems.http, systems.api)
    metric = probes.histogram_delta(
        probes.histogram(after, "nodeview_event_to_view_seconds"),
        probes.histogram(before, "nodeview_event_to_view_seconds"),
    )
    everything = [s for values in samples.values() for s in values]
    return {
        "by_kind": {kind: {**summary_ms(samples[kind]), "missed": missed[kind]} for kind in KINDS},
        "all": summary_ms(everything),
        "samples_ms": {kind: [round(s * 1000, 3) for s in samples[kind]] for kind in KINDS},
        "api_metric_event_to_view": {
            "count": metric["count"],
            "p50_bucket_le_s": probes.bucket_quantile(metric, 0.5),
            "p99_bucket_le_s": probes.bucket_quantile(metric, 0.99),
        },
    }

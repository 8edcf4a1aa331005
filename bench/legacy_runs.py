"""The old backend's scenarios: cache misses (time, Consul requests, nodes left at 0), then hits."""

import time
from typing import Any

import httpx

from bench.config import Profile
from bench.legacy import LEGACY_TTL_SECONDS
from bench.load import run_load
from bench.procs import cpu_seconds
from bench.scenarios import NODES_PATH, run_json
from bench.stats import summary_ms
from bench.systems import MISS_TIMEOUT_SECONDS, Systems


async def _unfinished(systems: Systems, requests: int) -> dict[str, Any]:
    """A miss that did not finish in time; the process is restarted to stop its fan-out."""
    assert systems.legacy is not None
    await systems.legacy.stop()
    await systems.legacy.start()
    return {"count": 0, "unfinished_after_s": MISS_TIMEOUT_SECONDS, "consul_requests": requests}


async def legacy_block(systems: Systems, profile: Profile) -> dict[str, Any]:
    """Misses first; then, inside one TTL of the last miss, hit latency and hit throughput."""
    assert systems.legacy is not None
    assert systems.lg_double is not None
    control = systems.lg_double.control
    misses: list[dict[str, Any]] = []
    deadline = time.monotonic() + profile.miss_seconds
    unfinished: dict[str, Any] | None = None
    while len(misses) < profile.miss_samples and time.monotonic() < deadline:
        await control.reset_counters()
        try:
            miss = await systems.legacy_miss()
        except httpx.TimeoutException:
            unfinished = await _unfinished(systems, (await control.counters())["total"])
            break
        miss["consul_requests"] = (await control.counters())["total"]
        misses.append(miss)
    primed: dict[str, Any] | None = None
    if unfinished is not None or not misses:
        # No miss finished: fill the cache another way so the (unchanged) hit path is measured.
        response = await systems.http.post(
            systems.legacy.url + "/_bench/cache/prime", timeout=MISS_TIMEOUT_SECONDS
        )
        response.raise_for_status()
        primed = response.json()
    warmed = time.monotonic()
    url = systems.legacy.url + NODES_PATH
    hit = await run_load(
        url,
        concurrency=1,
        duration=profile.latency_seconds,
        max_requests=profile.latency_requests,
    )
    rows = []
    pid = systems.legacy.process.pid
    for concurrency in profile.concurrencies:
        cpu0 = cpu_seconds(pid)
        result = await run_load(
            url, concurrency=concurrency, duration=profile.throughput_seconds, max_requests=10**7
        )
        server_cpu = 100.0 * (cpu_seconds(pid) - cpu0) / result.wall_seconds
        rows.append(
            {
                "system": "legacy_hit",
                "concurrency": concurrency,
                **run_json(result),
                "server_cpu_percent": round(server_cpu, 1),
            }
        )
    if misses:
        last = misses[-1]
        miss_latency = {
            **summary_ms([m["seconds"] for m in misses]),
            "zero_services_max": max(m["zero_services"] for m in misses),
        }
        per_miss: dict[str, Any] = {
            "consul_requests": last["consul_requests"],
            "seconds": round(last["seconds"], 3),
            "nodes": last["nodes"],
            "zero_services": last["zero_services"],
            "per_minute_at_rest": round(last["consul_requests"] * 60 / LEGACY_TTL_SECONDS, 1),
        }
        if unfinished is not None:
            per_miss["later_miss_unfinished"] = unfinished
    else:
        miss_latency = {"count": 0, "unfinished_after_s": MISS_TIMEOUT_SECONDS}
        per_miss = {**(unfinished or {}), "seconds": None, "per_minute_at_rest": None}
    return {
        "latency": {
            "legacy_miss": miss_latency,
            "legacy_hit": {**run_json(hit), **({"primed": primed} if primed else {})},
        },
        "throughput": rows,
        "per_miss": per_miss,
        "hits_within_ttl": time.monotonic() - warmed < LEGACY_TTL_SECONDS,
    }

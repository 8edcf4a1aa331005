"""The cost run (``--mode cost``): every cluster shape in turn, each in a stack of its own."""

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench import churn, cost, floor, scenarios
from bench.changes import ChangeMaker
from bench.config import CostProfile
from bench.machine import describe, scheduler_stalls
from bench.probes import StreamProbe
from bench.procs import BenchProcessError
from bench.stack import ClusterShape
from bench.systems import Systems, systems_for, wait_full_view
from bench.views import Views
from devstack.processes import ProcessError

REST_SECONDS = 1.0
"""Pause after the full view, before the queries the relay holds at rest are counted."""

SHAPE_ERRORS = (
    OSError,
    TimeoutError,
    LookupError,
    httpx.HTTPError,
    BenchProcessError,
    ProcessError,
)
"""Failures that end one shape's measurement; the run records them and goes on."""

Checkpoint = Callable[[dict[str, Any]], None]
Log = Callable[[str], None]


def shapes(profile: CostProfile) -> list[tuple[int, int]]:
    """Every (nodes, names) a stack is started for, smallest first."""
    wanted = {*profile.shapes, *profile.freshness_shapes, *profile.resync_shapes}
    if profile.churn_shape is not None:
        wanted.add(profile.churn_shape)
    return sorted(wanted)


async def catalog_names(systems: Systems) -> int:
    """Service names the Consul double's catalog holds now."""
    assert systems.nv_double is not None
    answer = await systems.http.get(systems.nv_double.url + "/v1/catalog/services")
    return len(answer.json())


def cpu_shape(profile: CostProfile, nodes: int) -> tuple[int, int] | None:
    """The shape the CPU run uses at ``nodes`` nodes: the one with the fewest names."""
    candidates = [s for s in profile.shapes if s[0] == nodes]
    return min(candidates) if candidates else None


async def one_shape(
    profile: CostProfile, shape: tuple[int, int], work: Path, log: Log
) -> dict[str, Any]:
    """Every measurement the profile asks for at one shape, in one stack."""
    nodes, names = shape
    entry: dict[str, Any] = {"nodes": nodes, "names": names}
    cluster = ClusterShape(nodes, names)
    async with (
        httpx.AsyncClient(timeout=120.0) as http,
        systems_for(
            cluster, "compare", work / f"{nodes}x{names}", http, api_replicas=profile.api_replicas
        ) as systems,
    ):
        assert systems.nodeview is not None
        assert systems.nv_double is not None
        await systems.nv_double.control.latency(profile.consul_latency)
        entry["view_ready_seconds"] = round(await wait_full_view(systems, nodes + 1), 2)
        entry["catalog_names"] = await catalog_names(systems)
        urls = [systems.nodeview.url(name) for name in systems.nodeview.api_names]
        views = await Views(urls).start()
        stream = await StreamProbe(systems.nodeview.nats_url).connect()
        p = cost.Probes(systems, views, stream)
        try:
            await asyncio.sleep(REST_SECONDS)
            entry["held_at_rest"] = await p.held()
            await _measure(profile, shape, p, systems, entry, log)
            entry["service_restarts"] = systems.nodeview.restarts
        finally:
            await stream.close()
            await views.stop()
    return entry


async def _measure(
    profile: CostProfile,
    shape: tuple[int, int],
    p: cost.Probes,
    systems: Systems,
    entry: dict[str, Any],
    log: Log,
) -> None:
    """The measurements of one shape, in an order where none disturbs the next."""
    nodes, names = shape
    assert systems.nv_double is not None
    control = systems.nv_double.control
    if shape in profile.shapes:
        log(f"{nodes}x{names}: reads, held queries and stream bytes per change")
        maker = ChangeMaker(control, systems.shape, "pc")
        entry["changes"] = await cost.per_kind(p, maker, profile.changes_per_kind)
    if nodes in profile.cpu_nodes and cpu_shape(profile, nodes) == shape:
        log(f"{nodes}x{names}: CPU over {profile.cpu_pairs} node_fail/recover pairs")
        entry["cpu"] = await cost.cpu_per_change(
            p, ChangeMaker(control, systems.shape, "cpu"), profile.cpu_pairs
        )
    if shape in profile.freshness_shapes:
        log(f"{nodes}x{names}: freshness with floor, {profile.freshness_rounds} rounds")
        maker = ChangeMaker(control, systems.shape, "ff")
        entry["freshness"] = await floor.freshness(p, maker, profile.freshness_rounds)
    if shape == profile.churn_shape:
        log(f"{nodes}x{names}: churn {profile.churn_rate:.0f}/s for {profile.churn_seconds:.0f} s")
        for key, mix in churn.CHURN_KEYS.items():
            entry[key] = await churn.churn(
                systems, p.views.first, profile.churn_rate, profile.churn_seconds, mix
            )
    if shape in profile.resync_shapes:
        log(f"{nodes}x{names}: full resync at {profile.resync_latency * 1000:.0f} ms")
        entry["resync_names"] = await catalog_names(systems)
        entry["resync"] = await scenarios.resync(
            systems, profile.resync_latency, profile.consul_latency
        )


async def run(profile: CostProfile, work: Path, checkpoint: Checkpoint, log: Log) -> dict[str, Any]:
    """Every shape of the profile; ``checkpoint`` saves the results after each shape."""
    results: dict[str, Any] = {
        "machine": describe(),
        "mode": "cost",
        "profile": asdict(profile),
        "shapes": [],
        "load_average_start": list(os.getloadavg()),
        "scheduler_stalls": scheduler_stalls(),
        "complete": False,
    }
    started = time.perf_counter()

    def save() -> None:
        results["load_average_end"] = list(os.getloadavg())
        results["duration_seconds"] = round(time.perf_counter() - started, 1)
        checkpoint(results)

    for shape in shapes(profile):
        log(f"shape {shape[0]} nodes x {shape[1]} service names")
        try:
            results["shapes"].append(await one_shape(profile, shape, work, log))
        except SHAPE_ERRORS as exc:
            # One shape that cannot be measured is reported; the shapes after it still run.
            log(f"shape {shape[0]}x{shape[1]} failed: {exc!r}")
            results["shapes"].append({"nodes": shape[0], "names": shape[1], "error": repr(exc)})
        save()
    results["complete"] = True
    save()
    return results

"""What one Consul change costs nodeview: enricher reads, held queries, stream bytes and CPU."""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench import probes
from bench.changes import COST_KINDS, Change, ChangeMaker
from bench.double import DoubleControl
from bench.procs import cpu_seconds
from bench.systems import Systems, delta
from bench.views import Views

VISIBLE_TIMEOUT_SECONDS = 15.0
"""Longest a change may take to show on every API replica before it is counted as not seen."""

SETTLE_SECONDS = 1.0
"""Quiet time after a change is visible, so that every read and publish it causes is counted."""

IDLE_SECONDS = 5.0
"""Window over which the services' CPU use with no change is measured."""

FALLBACK_METRIC = "nodeview_consul_internal_fallback_total"
"""The enricher's count of reads done through public endpoints after a refused internal one."""

CPU_SERVICES = ("enricher", "relay", "api")
"""Processes whose CPU time is read around the CPU run."""


@dataclass
class Probes:
    """What a cost measurement reads: the systems, every replica's events, the stream size."""

    systems: Systems
    views: Views
    stream: probes.StreamProbe

    @property
    def control(self) -> DoubleControl:
        """The Consul double's control client."""
        assert self.systems.nv_double is not None
        return self.systems.nv_double.control

    async def enricher(self) -> tuple[dict[str, float], float]:
        """The enricher's Consul requests by endpoint and its internal-endpoint fallbacks."""
        assert self.systems.nodeview is not None
        samples = await probes.metrics(self.systems.http, self.systems.nodeview.url("enricher"))
        reads = probes.by_label(samples, "consul_requests_total", "endpoint")
        fallbacks = sum(probes.by_label(samples, FALLBACK_METRIC, "endpoint").values())
        return reads, fallbacks

    async def held(self) -> dict[str, int]:
        """Consul requests in flight now, by endpoint (at rest: the relay's blocking queries).

        Resetting the double's counters restarts each high-water mark from the requests in
        flight, so the reset's own answer names them.
        """
        counters = await self.control.reset_counters()
        return {k: int(v) for k, v in counters["max_in_flight_by_endpoint"].items() if v}

    async def show(self, change: Change, undo: bool = False) -> float | None:
        """Make ``change`` (or undo it) and return the seconds until every replica shows it."""
        predicate = change.undone if undo else change.seen
        assert predicate is not None
        futures = self.views.expect(predicate, change.events)
        action = change.undo if undo else change.apply
        assert action is not None
        await action()
        written = time.time()
        arrival = await self.views.visible(futures, VISIBLE_TIMEOUT_SECONDS)
        return None if arrival is None else arrival - written


async def one_change(p: Probes, change: Change) -> dict[str, Any]:
    """Enricher reads, Consul requests, held queries and stream bytes of one change."""
    reads0, fallbacks0 = await p.enricher()
    stream0 = await p.stream.read()
    held_before = await p.held()
    seconds = await p.show(change)
    await asyncio.sleep(SETTLE_SECONDS)
    counters = await p.control.counters()
    held_after = await p.held()
    reads1, fallbacks1 = await p.enricher()
    stream1 = await p.stream.read()
    reads = delta(reads1, reads0)
    out: dict[str, Any] = {
        "kind": change.kind,
        "seen": seconds is not None,
        "visible_ms": None if seconds is None else round(seconds * 1000, 2),
        "enricher_reads": sum(reads.values()),
        "enricher_by_endpoint": reads,
        "internal_fallbacks": int(fallbacks1 - fallbacks0),
        "consul_requests": counters["total"],
        "consul_by_endpoint": counters["by_endpoint"],
        "held_before": sum(held_before.values()),
        "held_after": sum(held_after.values()),
        "held_by_endpoint": held_after,
        "stream_bytes": stream1["bytes"] - stream0["bytes"],
        "stream_messages": stream1["messages"] - stream0["messages"],
    }
    if change.undo is not None and change.undone is not None:
        back = await p.show(change, undo=True)
        out["undo_seen"] = back is not None
        await asyncio.sleep(SETTLE_SECONDS)
    return out


async def per_kind(p: Probes, maker: ChangeMaker, count: int) -> list[dict[str, Any]]:
    """``count`` rounds of one change of each kind, one change at a time."""
    rows = []
    for i in range(count):
        for kind in COST_KINDS:
            rows.append(await one_change(p, maker.make(kind, i)))
    return rows


async def cpu_per_change(p: Probes, maker: ChangeMaker, pairs: int) -> dict[str, Any]:
    """CPU µs per change of each service over ``pairs`` node_fail/recover pairs."""
    assert p.systems.nodeview is not None
    pids = {name: p.systems.nodeview.pid(name) for name in CPU_SERVICES}
    idle0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(IDLE_SECONDS)
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle_rate = {name: (cpu0[name] - idle0[name]) / IDLE_SECONDS for name in pids}
    started = time.perf_counter()
    missed = 0
    for i in range(pairs):
        change = maker.fail(i)
        missed += await p.show(change) is None
        missed += await p.show(change, undo=True) is None
    wall = time.perf_counter() - started
    cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    changes = 2 * pairs
    return {
        "changes": changes,
        "not_seen": missed,
        "wall_seconds": round(wall, 2),
        "us_per_change": {name: round((cpu1[name] - cpu0[name]) / changes * 1e6) for name in pids},
        "idle_us_per_second": {name: round(rate * 1e6) for name, rate in idle_rate.items()},
        "net_us_per_change": {
            name: round((cpu1[name] - cpu0[name] - idle_rate[name] * wall) / changes * 1e6)
            for name in pids
        },
    }

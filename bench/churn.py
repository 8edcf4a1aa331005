"""Churn: a steady rate of changes for a while, freshness over time and consumer lag."""

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

import httpx

from bench.changes import Change, ChangeMaker
from bench.probes import LagProbe
from bench.sse import SseWatch
from bench.stats import summary_ms
from bench.systems import Systems

MAX_IN_FLIGHT = 64
"""Changes being sent to the double at once (the sender never waits for the pipeline)."""

DRAIN_SECONDS = 20.0
"""Longest the run waits after the last change for the pipeline to catch up."""

WINDOW_SECONDS = 5.0
"""Width of the time windows freshness percentiles are reported for."""

LAG_INTERVAL_SECONDS = 1.0


async def churn(systems: Systems, watch: SseWatch, rate: float, seconds: float) -> dict[str, Any]:
    """Send ``rate`` changes/s (node joins and service registrations) for ``seconds``."""
    assert systems.nv_double is not None
    assert systems.nodeview is not None
    maker = ChangeMaker(systems.nv_double.control, systems.shape, "ch")
    total = int(rate * seconds)
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    pending: dict[str, list[tuple[int, Change]]] = defaultdict(list)

    def on_event(arrival: float, entry: dict[str, Any]) -> None:
        waiting = pending.get(entry["node"])
        if not waiting:
            return
        for item in list(waiting):
            if item[1].seen(entry):
                seen[item[0]] = arrival
                waiting.remove(item)

    watch.listen(on_event)
    lag = LagProbe(systems.nodeview.nats_url)
    await lag.connect()
    lag_series: list[dict[str, float]] = []
    started = time.time()
    stop_lag = asyncio.Event()

    async def sample_lag() -> None:
        while not stop_lag.is_set():
            reading = await lag.read()
            lag_series.append({"t": round(time.time() - started, 2), **reading})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_lag.wait(), LAG_INTERVAL_SECONDS)

    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    errors = 0

    async def send(index: int, change: Change, node: str) -> None:
        nonlocal errors
        async with gate:
            if time.perf_counter() > t0 + seconds:
                return  # the double could not keep up: the change is dropped, not delayed
            pending[node].append((index, change))
            sent[index] = time.time()
            try:
                await change.apply()
            except httpx.HTTPError:
                errors += 1

    sampler = asyncio.create_task(sample_lag())
    tasks = []
    t0 = time.perf_counter()
    for i in range(total):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        if i % 2:
            change = maker.register(i)
            node = maker.clients[i % len(maker.clients)]
        else:
            change = maker.join(i)
            node = f"bench-ch-join-{i}"
        tasks.append(asyncio.create_task(send(i, change, node)))
    await asyncio.gather(*tasks)
    send_seconds = time.perf_counter() - t0
    total = len(sent)
    deadline = time.monotonic() + DRAIN_SECONDS
    while len(seen) < total and time.monotonic() < deadline:  # noqa: ASYNC110 -- bounded poll
        await asyncio.sleep(0.1)
    stop_lag.set()
    await sampler
    await lag.close()
    result = _summarise(sent, seen, started, total, send_seconds, lag_series, errors)
    return {**result, "target_rate": rate, "target_changes": int(rate * seconds)}


def _summarise(
    sent: dict[int, float],
    seen: dict[int, float],
    started: float,
    total: int,
    send_seconds: float,
    lag_series: list[dict[str, float]],
    errors: int,
) -> dict[str, Any]:
    """Freshness per window of send time, overall, and the lag series."""
    windows: dict[int, list[float]] = defaultdict(list)
    for index, arrival in seen.items():
        windows[int((sent[index] - started) // WINDOW_SECONDS)].append(arrival - sent[index])
    every = [seen[i] - sent[i] for i in seen]
    return {
        "changes": total,
        "achieved_rate": round(total / send_seconds, 1) if send_seconds else 0.0,
        "seen": len(seen),
        "not_seen": total - len(seen),
        "send_errors": errors,
        "freshness": summary_ms(every),
        "windows": [
            {"start_s": w * WINDOW_SECONDS, **summary_ms(values)}
            for w, values in sorted(windows.items())
        ],
        "lag": lag_series,
        "max_num_pending": max((s["num_pending"] for s in lag_series), default=0),
        "max_num_ack_pending": max((s["num_ack_pending"] for s in lag_series), default=0),
    }

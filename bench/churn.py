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

LAG_DRAIN_POLL_SECONDS = 0.1
"""How often the consumer is asked, after the last change was seen, whether it has drained."""


UNDO_BLOCK = 100
"""Changes made in one block of a steady mix, then undone in the next, in the same order."""

MIXES = {
    "steady": "node joins, node fails, new instances of known names and new names, each undone "
    f"(leave, recover, deregister) a block of {UNDO_BLOCK} changes later, so the cluster keeps "
    "its shape",
    "growing": "node joins and registrations of new names alternating, so the cluster grows "
    "all through the run",
}
"""The change mixes a churn can send, with the words the reports use for them."""

MIX_TAGS = {"steady": "cs", "growing": "cg"}
"""The tag in the names of the nodes and services each mix creates."""

CHURN_KEYS = {"churn": "steady", "churn_growing": "growing"}
"""Result keys of a shape's churn runs → their mix; the goal judges the steady one only."""


def growing(maker: ChangeMaker, total: int) -> list[tuple[Change, int | None]]:
    """Node joins and registrations of new service names, alternating: the cluster grows."""
    return [(maker.register(i) if i % 2 else maker.join(i), None) for i in range(total)]


def steady(maker: ChangeMaker, total: int) -> list[tuple[Change, int | None]]:
    """Joins, fails, new instances of known names and new names, each undone a block later.

    A block of up to ``UNDO_BLOCK`` changes is followed by a block undoing them in the same
    order (leave, recover, deregister), so node and name counts stay within a block's worth of
    the shape: the rate is measured at that size, not at a cluster that grows with the run. A
    short run has shorter blocks; each undo names the position of the change it undoes.
    """
    plan: list[tuple[Change, int | None]] = []
    while len(plan) < total:
        first = len(plan)
        for i in range(first, first + max(1, min(UNDO_BLOCK, (total - first) // 2))):
            match i % 4:
                case 0:
                    change = maker.join(i)
                case 1:
                    change = maker.fail(i)
                case 2:
                    change = maker.instance_add(i)
                case _:
                    change = maker.register(i)
            plan.append((change, None))
        for done in range(first, len(plan)):
            plan.append((_undo(maker, plan[done][0], done), done))
    return plan


def _undo(maker: ChangeMaker, change: Change, i: int) -> Change:
    """The change that undoes ``change``, the ``i``-th of the plan."""
    match change.kind:
        case "node_join":
            return maker.leave_joined(i)
        case "node_fail":
            return change.reverted()
        case "instance_add":
            return maker.deregister(i)
        case _:
            return maker.unregister(i)


async def churn(
    systems: Systems, watch: SseWatch, rate: float, seconds: float, mix: str = "steady"
) -> dict[str, Any]:
    """Send ``rate`` changes/s of ``mix`` (see ``MIXES``) for ``seconds``."""
    assert systems.nv_double is not None
    assert systems.nodeview is not None
    # A tag of its own per mix: two runs on one cluster never name the same node or service
    # (joined nodes' addresses may repeat; nothing here looks them up by address).
    maker = ChangeMaker(systems.nv_double.control, systems.shape, MIX_TAGS[mix])
    total = int(rate * seconds)
    plan = steady(maker, total) if mix == "steady" else growing(maker, total)
    undoes = {i: done for i, (_, done) in enumerate(plan) if done is not None}
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    pending: dict[str, list[tuple[int, Change]]] = defaultdict(list)

    def on_event(arrival: float, entry: dict[str, Any]) -> None:
        waiting = pending.get(entry["node"])
        if not waiting:
            return
        # An undo counts only once what it undoes was seen by an earlier event: an older
        # event of the node could otherwise pass for it, or one event for both.
        matched = []
        for item in waiting:
            undone = undoes.get(item[0])
            if entry.get("deleted") and "node_deleted" not in item[1].events:
                continue
            if (undone is None or undone in seen) and item[1].seen(entry):
                matched.append(item)
        for item in matched:
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
    # Set once a change some undo waits for was written, refused or dropped.
    applied = {i: asyncio.Event() for i in undoes.values()}

    async def send(index: int, change: Change) -> None:
        nonlocal errors
        done = undoes.get(index)
        try:
            if done is not None:
                # An undo goes only after what it undoes was written, and never without it; it
                # is not dropped for being late, or the cluster would not keep its shape.
                await applied[done].wait()
                if done not in sent:
                    return
            async with gate:
                if done is None and time.perf_counter() > t0 + seconds:
                    return  # the double could not keep up: dropped, not delayed
                pending[change.node].append((index, change))
                sent[index] = time.time()
                try:
                    await change.apply()
                except httpx.HTTPError:
                    # Refused by the double: a send error, not a change the pipeline missed.
                    errors += 1
                    sent.pop(index, None)
                    seen.pop(index, None)
                    with contextlib.suppress(ValueError):
                        pending[change.node].remove((index, change))
        finally:
            if index in applied:
                applied[index].set()

    sampler = asyncio.create_task(sample_lag())
    tasks: list[asyncio.Task[None]] = []
    try:
        t0 = time.perf_counter()
        for i, (change, _) in enumerate(plan):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(send(i, change)))
        await asyncio.gather(*tasks)
        send_seconds = time.perf_counter() - t0
        total = len(sent)
        deadline = time.monotonic() + DRAIN_SECONDS
        while len(seen) < total and time.monotonic() < deadline:  # noqa: ASYNC110 -- bounded poll
            await asyncio.sleep(0.1)
        stop_lag.set()
        await sampler
        # The last change seen is not the backlog drained: the other answers of the same writes
        # may still be in flight. The last reading is the consumer's once it has nothing
        # pending or unacknowledged, or at the drain deadline.
        while True:
            reading = await lag.read()
            drained = reading["num_pending"] == 0 and reading["num_ack_pending"] == 0
            if drained or time.monotonic() >= deadline:
                break
            await asyncio.sleep(LAG_DRAIN_POLL_SECONDS)
        lag_series.append({"t": round(time.time() - started, 2), **reading})
    finally:
        stop_lag.set()
        for task in (*tasks, sampler):
            task.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
        watch.unlisten(on_event)
        await lag.close()
    result = _summarise(sent, seen, started, total, send_seconds, lag_series, errors)
    missing: dict[str, int] = defaultdict(int)
    for i in sent.keys() - seen.keys():
        missing[plan[i][0].kind] += 1
    result["not_seen_by_kind"] = dict(sorted(missing.items()))
    return {**result, "mix": mix, "target_rate": rate, "target_changes": int(rate * seconds)}


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

"""Load: 32 clients polling the node list and SSE subscribers while ~100 changes/s flow."""

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack, eventually
from tests.reliability.support import converge, report, supervised

pytestmark = [pytest.mark.reliability]

LOAD_SECONDS = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "15"))
"""How long changes flow (60 in the full run; 15 keeps CI short)."""

CHANGES_PER_SECOND = 100.0
POLLING_CLIENTS = 32
SSE_PER_REPLICA = 4
APIS = ("api-1", "api-2")


@dataclass
class SseClient:
    """One event-stream subscriber: the load nodes it was told about, in arrival order."""

    api: str
    seen: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _load_node(step: int) -> str:
    return f"load-{step:05d}"


async def _subscribe(stack: Stack, client: SseClient, ready: asyncio.Event) -> None:
    url = stack.url(client.api) + "/api/v1/nodes/events"
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                client.errors.append(f"status {response.status_code}")
                return
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                    ready.set()
                elif line.startswith("data: ") and event == "node":
                    node = json.loads(line.removeprefix("data: "))["node"]
                    if node.startswith("load-"):
                        client.seen.append(node)
    except httpx.HTTPError as exc:
        client.errors.append(repr(exc))


async def _poll(
    stack: Stack, http: httpx.AsyncClient, api: str, stop: asyncio.Event
) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    etag: str | None = None
    while not stop.is_set():
        headers = {"If-None-Match": etag} if etag and outcomes.total() % 2 else {}
        try:
            response = await http.get(stack.url(api) + "/api/v1/nodes", headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            # A kept-alive connection closed by the server just as it was reused: retry once,
            # as any HTTP client does for an idempotent GET; only a second failure counts.
            outcomes["retried"] += 1
            try:
                response = await http.get(stack.url(api) + "/api/v1/nodes", headers=headers)
            except httpx.HTTPError as exc:
                outcomes[f"error {type(exc).__name__}"] += 1
                continue
        except httpx.HTTPError as exc:
            outcomes[f"error {type(exc).__name__}"] += 1
            continue
        outcomes[str(response.status_code)] += 1
        if response.status_code == 200:
            etag = response.headers["etag"]
            assert response.json()["success"] is True
    return outcomes


@pytest.mark.timeout(300 + 2 * LOAD_SECONDS)
async def test_clients_and_event_streams_under_a_steady_flow_of_changes(tmp_path: Path) -> None:
    """Zero errors for 32 pollers, and every SSE client gets every new node, in join order."""
    stack = Stack(tmp_path, nodes=50, services=4, apis=2)
    await stack.start()
    try:
        async with supervised(stack):
            await converge(stack, APIS)
        subscribers = [SseClient(api) for api in APIS for _ in range(SSE_PER_REPLICA)]
        ready = [asyncio.Event() for _ in subscribers]
        streams = [
            asyncio.create_task(_subscribe(stack, client, event))
            for client, event in zip(subscribers, ready, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 30)
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=POLLING_CLIENTS + 8)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
            pollers = [
                asyncio.create_task(_poll(stack, http, APIS[i % 2], stop))
                for i in range(POLLING_CLIENTS)
            ]
            started = time.monotonic()
            steps = 0
            while time.monotonic() - started < LOAD_SECONDS:
                stack.consul.state.join_node(
                    _load_node(steps), f"127.130.{steps // 250}.{steps % 250 + 1}"
                )
                steps += 1
                delay = started + steps / CHANGES_PER_SECOND - time.monotonic()
                await asyncio.sleep(max(delay, 0))
            elapsed = time.monotonic() - started
            stop.set()
            results = await asyncio.gather(*pollers)
        expected = [_load_node(i) for i in range(steps)]

        async def every_change_arrived() -> None:
            for client in subscribers:
                assert not client.errors, client.errors
                assert set(expected) <= set(client.seen), (client.api, len(client.seen))

        drain_started = time.monotonic()
        await eventually(every_change_arrived, within=120)
        seconds = round(time.monotonic() - drain_started, 2)
        for client in subscribers:
            first = list(dict.fromkeys(client.seen))
            assert first == expected, (client.api, "out of order")
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        totals: Counter[str] = Counter()
        for outcome in results:
            totals.update(outcome)
        assert set(totals) <= {"200", "304", "retried"}, totals
        assert totals["200"] > 0
        await converge(stack, APIS, within=120)
        report(
            "load",
            seconds=round(elapsed, 1),
            changes=steps,
            changes_per_second=round(steps / elapsed, 1),
            requests=totals.total(),
            answers=dict(totals),
            sse_clients=len(subscribers),
            sse_events_received=sum(len(c.seen) for c in subscribers),
            drain_seconds=seconds,
        )
    finally:
        await stack.stop()

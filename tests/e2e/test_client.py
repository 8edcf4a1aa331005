"""The Python client against a real stack: ETag polling with 304s, an event stream that heals."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from nodeview_client import NodeChanged, NodeEvent, NodeviewClient, Snapshot
from tests.e2e.stack import Stack, converged, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

API = "api-1"
EVENT_TIMEOUT = 60.0
"""Longest wait for one expected event (a replica restart on a busy machine included)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack (8 nodes, one API replica), converged."""
    running = Stack(tmp_path_factory.mktemp("client"), nodes=8, services=2, apis=1)
    async with converged(running, API):
        yield running


async def _not_modified_count(stack: Stack) -> float:
    labels = {"method": "GET", "route": "/api/v1/nodes", "status": "304"}
    return await stack.metric(API, "http_requests_total", labels)


async def test_polling_reuses_the_last_body_on_304_and_sees_changes(stack: Stack) -> None:
    """A second poll of an unchanged view is a 304 reusing the body; a change is a new body."""
    async with NodeviewClient(stack.url(API)) as client:
        first = await client.poll_nodes()
        assert first.changed
        assert first.nodes.total == len(stack.expected())
        before = await _not_modified_count(stack)
        again = await client.poll_nodes()
        assert not again.changed
        assert again.nodes is first.nodes
        assert await _not_modified_count(stack) == before + 1

        victim = sorted(stack.expected())[0]
        stack.consul.state.fail_node(victim)

        async def shows_dead() -> None:
            poll = await client.poll_nodes()
            entry = {n.node: n for n in poll.nodes.data}[victim]
            assert poll.changed
            assert entry.status == "dead"

        await eventually(shows_dead, within=EVENT_TIMEOUT)
        alive = await client.nodes(status="alive")
        assert victim not in {n.node for n in alive.data}


async def _next(events: "asyncio.Queue[NodeEvent]") -> NodeEvent:
    return await asyncio.wait_for(events.get(), EVENT_TIMEOUT)


async def test_the_event_stream_reconnects_to_a_fresh_snapshot_after_the_api_restarts(
    stack: Stack,
) -> None:
    """Events follow changes; after the replica stops and comes back, a new snapshot has all."""
    received: asyncio.Queue[NodeEvent] = asyncio.Queue()
    async with NodeviewClient(stack.url(API)) as client:

        async def follow() -> None:
            async for event in client.events(reconnect_min=0.2, reconnect_max=1.0):
                received.put_nowait(event)

        task = asyncio.create_task(follow())
        try:
            first = await _next(received)
            assert isinstance(first, Snapshot)
            assert {n.node for n in first.nodes.data} == set(stack.expected())

            victim = sorted(stack.expected())[-1]
            stack.consul.state.fail_node(victim)
            while True:
                event = await _next(received)
                if isinstance(event, NodeChanged) and event.node.node == victim:
                    assert event.node.status == "dead"
                    break

            replica = stack.processes[API]
            await asyncio.to_thread(replica.stop)
            stack.consul.state.join_node("joined-while-down", "127.30.0.1")
            replica.start()
            await asyncio.to_thread(replica.wait_ready)
            while True:
                event = await _next(received)
                if isinstance(event, Snapshot):
                    break
            nodes = {n.node: n for n in event.nodes.data}
            assert nodes[victim].status == "dead"
            if "joined-while-down" not in nodes:
                # The replica may have replayed before the enricher wrote the new node:
                # then it arrives as a change on the new connection.
                while True:
                    change = await _next(received)
                    if isinstance(change, NodeChanged) and change.node.node == "joined-while-down":
                        break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Two relays watching one Consul, as the production overlay runs them."""

from datetime import timedelta
from pathlib import Path

import pytest

from contracts.events import ConsulChange, utc_now
from services import bus
from tests.e2e.stack import Stack, eventually
from tests.reliability.churn import burst
from tests.reliability.support import (
    add_process,
    assert_nothing_lost,
    converge,
    nats_client,
    report,
)

pytestmark = [pytest.mark.reliability]


async def _resyncs(stack: Stack) -> float:
    """Every full resync the enricher ran, whatever its reason or outcome."""
    text = (await stack.http.get(stack.url("enricher-1") + "/metrics")).text
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("nodeview_resyncs_total{")
    )


@pytest.mark.timeout(180)
async def test_two_relays_under_churn_cause_no_resync(tmp_path: Path) -> None:
    """Two relays' answers interleave (one's 99 after the other's 100): no index-reset resync."""
    stack = Stack(tmp_path, nodes=20, services=3, apis=1)
    try:
        await stack.start()
        add_process(stack, "relay-2", ["relay", "watch"], "RELAY_PORT")
        stack.processes["relay-2"].wait_ready()
        await converge(stack, ("api-1",))
        before = await _resyncs(stack)
        offset = len(stack.consul.state.change_log)
        await burst(stack, 60, prefix="two", octet=99, pause=0.005)
        await converge(stack, ("api-1",), within=90)
        await assert_nothing_lost(stack, "api-1", offset)
        resyncs = await _resyncs(stack) - before
        stored = [
            await stack.metric(
                relay,
                "nodeview_relay_published_total",
                {"type": "nodes", "source": "watcher", "outcome": "stored"},
            )
            for relay in ("relay", "relay-2")
        ]
        assert all(count > 0 for count in stored), stored
        assert resyncs == 0, resyncs
        await _interleaved_answers_are_late_not_a_reset(stack)
        assert await _resyncs(stack) - before == 0
        report("two_relays", changes=60, resyncs=resyncs, stored_by_relay=stored)
    finally:
        await stack.stop()


async def _interleaved_answers_are_late_not_a_reset(stack: Stack) -> None:
    """Relay A's answer at N+2, then relay B's at N+1 read just before it: B's is late."""
    reply = await stack.http.get(stack.consul.urls[0] + "/v1/catalog/nodes")
    index = int(reply.headers["X-Consul-Index"])
    now = utc_now()
    applied = {"type": "nodes", "outcome": "applied"}
    superseded = {"type": "nodes", "outcome": "superseded"}
    applied_before = await stack.metric("enricher-1", "nodeview_events_total", applied)
    superseded_before = await stack.metric("enricher-1", "nodeview_events_total", superseded)
    nc = await nats_client(stack)
    try:
        js = nc.jetstream()
        first = ConsulChange(
            watch_type="nodes",
            consul_index=index + 2,
            source="watcher",
            relay_id="relay-a",
            observed_at=now,
            payload=reply.json(),
        )
        await bus.publish_change(nc, js, first)

        async def first_applied() -> None:
            got = await stack.metric("enricher-1", "nodeview_events_total", applied)
            assert got > applied_before

        await eventually(first_applied, within=30)
        late = first.model_copy(
            update={
                "consul_index": index + 1,
                "relay_id": "relay-b",
                "observed_at": now - timedelta(milliseconds=10),
            }
        )
        await bus.publish_change(nc, js, late)
    finally:
        await nc.close()

    async def late_superseded() -> None:
        got = await stack.metric("enricher-1", "nodeview_events_total", superseded)
        assert got > superseded_before

    await eventually(late_superseded, within=30)
    # The injected answers claimed Consul's next two indexes: Consul reaches them first, as it
    # would have before a relay could read them, so the join after lands above them.
    for step in range(2):
        stack.consul.state.kv_put("two-relays/filler", str(step).encode())
    stack.consul.state.join_node("after-two-relays", "127.99.9.1")
    await converge(stack, ("api-1",))

"""Consul faults, blocking-query quirks and an API replica restart, on one shared stack."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError

from contracts import subjects
from tests.e2e.stack import Stack, eventually
from tests.reliability.churn import burst
from tests.reliability.support import (
    assert_nothing_lost,
    converge,
    measure_requests,
    nats_client,
    report,
    restart,
    supervised,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

APIS = ("api-1", "api-2")
OUTAGE_SECONDS = float(os.environ.get("RELIABILITY_CONSUL_OUTAGE_SECONDS", "10"))
"""How long every Consul server answers 500 (30 in the full run; 10 keeps CI short)."""

QUIET_SECONDS = 3.0
"""Window over which the request rate to Consul is measured after a fault."""

MAX_QUIET_RATE = 10.0
"""Requests per second to Consul allowed while nothing changes (a hot loop sends hundreds)."""

MAX_OUTAGE_RATE = 20.0
"""Requests per second to Consul allowed while every server fails (back-off must hold)."""

STALE_AFTER_SECONDS = 8.0
"""The API replicas' staleness threshold here (short, so that a stuck enricher shows soon)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack (60 nodes, two API replicas, 3 s read timeout, 5 s longest back-off)."""
    running = Stack(
        tmp_path_factory.mktemp("consul-faults"),
        nodes=60,
        services=5,
        extra_env={
            "CONSUL_CATALOG_TIMEOUT": "3",
            "RELAY_ERROR_BACKOFF_MAX": "5",
            "API_STALE_AFTER_SECONDS": str(STALE_AFTER_SECONDS),
        },
    )
    await running.start()
    try:
        async with supervised(running):
            await converge(running, APIS)
        yield running
    finally:
        running.consul.clear_faults()
        await running.stop()


def _label(stack: Stack, server: int) -> str:
    return stack.consul.urls[server].removeprefix("http://")


async def _body(stack: Stack, api: str) -> dict[str, Any]:
    response = await stack.http.get(stack.url(api) + "/api/v1/nodes")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _all_ok(stack: Stack, api: str) -> None:
    errors = [e["node"] for e in (await _body(stack, api))["data"] if e["services_status"] != "ok"]
    assert not errors, errors


@pytest.mark.timeout(180)
async def test_leader_down_falls_back_to_the_next_server(stack: Stack) -> None:
    """Server 0 (the leader) goes down and server 1 leads: reads fall back, changes still land."""
    offset = len(stack.consul.state.change_log)
    await stack.consul.server_down(0)
    stack.consul.set_leader(1)
    try:
        started = time.monotonic()
        await burst(stack, 25, prefix="ld", octet=91)
        seconds = await converge(stack, APIS, within=90)
        await assert_nothing_lost(stack, "api-1", offset)
        relay_fallbacks = await stack.metric(
            "relay",
            "consul_server_fallback_total",
            {"server": _label(stack, 0), "status": "connect_error"},
        )
        enricher_fallbacks = await stack.metric(
            "enricher-1",
            "consul_server_fallback_total",
            {"server": _label(stack, 0), "status": "connect_error"},
        )
        assert relay_fallbacks + enricher_fallbacks >= 1
        body = await _body(stack, "api-1")
        assert body["active_server"] == _label(stack, 1)
        assert body["main_server"] == _label(stack, 0)
    finally:
        await stack.consul.server_up(0)
        stack.consul.set_leader(0)
    report(
        "consul_leader_down",
        changes=len(stack.consul.state.change_log) - offset,
        seconds_to_converge=round(time.monotonic() - started, 2),
        converge_wait=seconds,
        fallbacks=relay_fallbacks + enricher_fallbacks,
    )


@pytest.mark.timeout(240)
async def test_every_server_failing_keeps_the_view_and_recovers(stack: Stack) -> None:
    """All servers answer 500 for a while: the view is kept, Consul is not hammered, then heals."""
    offset = len(stack.consul.state.change_log)
    before = await stack.nodes_of("api-1")
    stack.consul.fail_requests(500)
    try:
        await burst(stack, 20, prefix="out", octet=92)
        rate = await measure_requests(stack, OUTAGE_SECONDS)
        during = await stack.nodes_of("api-2")
        assert set(before) <= set(during), sorted(set(before) - set(during))
        assert rate.per_second < MAX_OUTAGE_RATE, rate
    finally:
        stack.consul.clear_faults()
    started = time.monotonic()
    await converge(stack, APIS, within=90)
    await assert_nothing_lost(stack, "api-2", offset)
    await eventually(lambda: _all_ok(stack, "api-1"), within=60)
    report(
        "consul_all_500",
        outage_seconds=OUTAGE_SECONDS,
        requests_during_outage=rate.requests,
        requests_per_second=round(rate.per_second, 2),
        changes_during_outage=len(stack.consul.state.change_log) - offset,
        seconds_to_converge_after_outage=round(time.monotonic() - started, 2),
    )


@pytest.mark.timeout(240)
async def test_two_seconds_latency_on_every_read_still_converges(stack: Stack) -> None:
    """Every Consul read takes 2 s: the API keeps answering and changes still reach the view."""
    offset = len(stack.consul.state.change_log)
    stack.consul.set_latency(2.0)
    try:
        started = time.monotonic()
        await burst(stack, 15, prefix="lat", octet=93, pause=0.2)
        await _body(stack, "api-1")
        await converge(stack, APIS, within=120)
        await assert_nothing_lost(stack, "api-1", offset)
        seconds = round(time.monotonic() - started, 2)
    finally:
        stack.consul.clear_faults()
    await eventually(lambda: _all_ok(stack, "api-2"), within=60)
    report("consul_latency_2s", changes=15, seconds_to_converge=seconds)


@pytest.mark.timeout(180)
async def test_service_read_timing_out_keeps_counts_marks_errors_and_recovers(stack: Stack) -> None:
    """A service read times out: its nodes keep their count, say error, and heal by themselves."""
    view = await stack.nodes_of("api-1")
    node = sorted(n for n, e in view.items() if n.startswith("prom-") and e["services_count"])[0]
    services = (await stack.http.get(stack.url("api-1") + f"/api/v1/nodes/{node}/services")).json()
    sid, service = next(iter(services["services"].items()))
    stack.consul.set_latency(6.0, path_prefix="/v1/catalog/service/")
    # A resync still under way from an earlier fault would take the instances from Consul's
    # node dump, which needs no service read: it is slow too, so every way goes by a read.
    stack.consul.set_latency(6.0, path_prefix="/v1/internal/ui/nodes")
    try:
        stack.consul.state.register_service(
            node, sid, service["Service"], tags=(*service["Tags"], "slow"), port=service["Port"]
        )

        async def errored() -> dict[str, Any]:
            entry = (await stack.nodes_of("api-2"))[node]
            assert entry["services_status"] == "error", entry
            return entry

        entry = await eventually(errored, within=60)
        assert entry["services_count"] == view[node]["services_count"]
        assert "timeout" in (entry["error"] or "")
    finally:
        stack.consul.clear_faults()
    started = time.monotonic()
    await eventually(lambda: _all_ok(stack, "api-1"), within=60)
    await converge(stack, APIS)
    report("consul_node_read_timeout", seconds_to_recover=round(time.monotonic() - started, 2))


@pytest.mark.timeout(120)
async def test_blocking_queries_cut_mid_wait_miss_no_change_and_do_not_spin(stack: Stack) -> None:
    """Blocking queries dropped mid-wait: the relay asks again, calmly, and sees the next change."""
    offset = len(stack.consul.state.change_log)
    await asyncio.wait_for(stack.consul.state.hub.wait_for_waiters(5), 30)
    cut = stack.consul.cut_blocking_queries()
    assert cut >= 5
    stack.consul.state.join_node("cut-after-1", "127.94.0.1")
    seconds = await converge(stack, APIS, within=60)
    await assert_nothing_lost(stack, "api-1", offset)
    rate = await measure_requests(stack, QUIET_SECONDS)
    assert rate.per_second < MAX_QUIET_RATE, rate
    report(
        "relay_blocking_cut",
        queries_cut=cut,
        seconds_to_converge=seconds,
        requests_per_second_after=round(rate.per_second, 2),
    )


async def _watch_resets(stack: Stack) -> int:
    status = (await stack.http.get(stack.url("relay") + "/healthz")).json()
    return sum(int(w["resets"]) for w in status["watches"].values())


@pytest.mark.timeout(120)
async def test_index_going_backwards_resets_without_a_hot_loop(stack: Stack) -> None:
    """A snapshot restore halves every index: the relay resets, stays calm and misses nothing."""
    offset = len(stack.consul.state.change_log)
    resets_before = await _watch_resets(stack)
    stack.consul.state.reset_index()
    rate = await measure_requests(stack, QUIET_SECONDS)
    assert rate.per_second < MAX_QUIET_RATE, rate
    assert await _watch_resets(stack) > resets_before
    await burst(stack, 20, prefix="bk", octet=95)
    seconds = await converge(stack, APIS, within=60)
    await assert_nothing_lost(stack, "api-2", offset)
    report(
        "consul_index_backwards",
        requests_per_second_after_reset=round(rate.per_second, 2),
        seconds_to_converge=seconds,
    )


async def _last_published_index(stack: Stack, watch_type: str) -> int:
    """The Consul index of the last answer of ``watch_type`` stored, whole or as a delta."""
    nc = await nats_client(stack)
    found = []
    try:
        for subject in (subjects.consul_subject(watch_type), subjects.delta_subject(watch_type)):
            with contextlib.suppress(NotFoundError):
                found.append(await nc.jetstream().get_last_msg(subjects.STREAM_EVENTS, subject))
    finally:
        await nc.close()
    msg = max(found, key=lambda m: m.seq or 0)
    assert msg.headers is not None
    return int(msg.headers[subjects.HEADER_MSG_ID].rsplit(":", 1)[1])


@pytest.mark.timeout(120)
async def test_change_reusing_an_index_after_reset_is_not_lost(stack: Stack) -> None:
    """After an index reset, a change landing on an index seen before still reaches the view."""
    state = stack.consul.state
    state.join_node("reuse-before", "127.96.0.1")
    await converge(stack, ("api-1",), within=60)
    published = await _last_published_index(stack, "nodes")
    assert published == state.indexes.table("nodes")
    state.reset_index(published - 1)
    await asyncio.sleep(QUIET_SECONDS)
    state.join_node("reuse-after", "127.96.0.2")
    assert state.indexes.table("nodes") == published
    await converge(stack, APIS, within=30)


@pytest.mark.timeout(180)
async def test_api_replica_restarted_during_churn_comes_back_with_the_same_etag(
    stack: Stack,
) -> None:
    """An API replica restarted mid-churn replays the bucket and serves its peer's exact body."""
    offset = len(stack.consul.state.change_log)

    async def bounce() -> None:
        await asyncio.sleep(1.0)
        await restart(stack.processes["api-2"])

    churn = asyncio.create_task(burst(stack, 200, prefix="ar", octet=97, pause=0.02))
    await bounce()
    await churn
    started = time.monotonic()

    async def same_etag() -> str:
        one = await stack.http.get(stack.url("api-1") + "/api/v1/nodes")
        two = await stack.http.get(stack.url("api-2") + "/api/v1/nodes")
        assert one.headers["etag"] == two.headers["etag"]
        assert one.content == two.content
        return str(one.headers["etag"])

    await eventually(same_etag, within=60)
    await converge(stack, APIS)
    await assert_nothing_lost(stack, "api-2", offset)

    async def not_modified() -> None:
        etag = await same_etag()
        cached = await stack.http.get(
            stack.url("api-2") + "/api/v1/nodes", headers={"If-None-Match": etag}
        )
        assert cached.status_code == 304

    await eventually(not_modified, within=30)
    report(
        "api_restart_during_churn",
        changes=len(stack.consul.state.change_log) - offset,
        seconds_to_same_etag=round(time.monotonic() - started, 2),
    )


@pytest.mark.timeout(180)
async def test_acl_filtered_answers_never_delete_or_zero_and_show_degraded(stack: Stack) -> None:
    """A token that lost its rights (empty, ACL-filtered answers): nothing deleted or zeroed."""
    before = await stack.nodes_of("api-1")
    counted = {n: e["services_count"] for n, e in before.items()}
    stack.consul.filter_by_acls(True)
    try:
        # A write wakes every blocking query: each now answers an empty, filtered list.
        stack.consul.state.join_node("hidden-by-acl", "127.98.0.1")

        async def shows_degraded() -> list[str]:
            body = await _body(stack, "api-1")
            items = [d["item"] for d in body["degraded"]]
            assert "nodes list" in items, items
            return items

        await eventually(shows_degraded, within=60)
        refused = {"type": "nodes", "outcome": "refused"}

        async def nodes_answer_refused() -> None:
            assert await stack.metric("enricher-1", "nodeview_events_total", refused) >= 1

        await eventually(nodes_answer_refused, within=30)
        during = await stack.nodes_of("api-1")
        assert set(before) <= set(during), sorted(set(before) - set(during))
        for node, count in counted.items():
            assert during[node]["services_count"] == count, (node, during[node])
    finally:
        stack.consul.clear_faults()
    await converge(stack, APIS, within=90)

    async def healed() -> None:
        body = await _body(stack, "api-1")
        assert body["degraded"] == [], body["degraded"]

    await eventually(healed, within=60)


@pytest.mark.timeout(180)
async def test_a_failing_resync_makes_the_view_degraded_then_stale_then_heals(
    stack: Stack,
) -> None:
    """A resync Consul refuses shows as degraded, turns stale past the threshold, then heals."""
    stack.consul.fail_requests(500)
    try:
        flush = await stack.http.post(
            stack.url("api-1") + "/api/v1/admin/cache/nodes/flush",
            headers={"Authorization": f"Bearer {stack.admin_token}"},
        )
        assert flush.status_code == 202, flush.text

        async def degraded_resync() -> dict[str, Any]:
            body = await _body(stack, "api-2")
            assert "resync" in [d["item"] for d in body["degraded"]], body["degraded"]
            return body

        body = await eventually(degraded_resync, within=30)
        assert len(body["data"]) >= 60

        async def stale() -> None:
            assert (await _body(stack, "api-2"))["stale"] is True

        await eventually(stale, within=STALE_AFTER_SECONDS + 30)
    finally:
        stack.consul.clear_faults()

    async def fresh_again() -> None:
        body = await _body(stack, "api-2")
        assert body["stale"] is False
        assert body["degraded"] == [], body["degraded"]

    await eventually(fresh_again, within=60)
    await converge(stack, APIS)


@pytest.mark.timeout(120)
async def test_a_blackholed_server_does_not_hold_changes_back(stack: Stack) -> None:
    """The server in use accepts connections but never answers: changes still come through.

    Its blocking queries would otherwise hang for the whole wait (30 s here, 5 min by default).
    """
    active = (await _body(stack, "api-1"))["active_server"]
    server = [_label(stack, i) for i in range(len(stack.consul.urls))].index(active)
    stack.consul.set_latency(600.0, server=server)
    try:
        started = time.monotonic()
        stack.consul.state.join_node("past-blackhole", "127.98.1.1")
        seconds = await converge(stack, APIS, within=20)
        visible = round(time.monotonic() - started, 2)
    finally:
        stack.consul.clear_faults()
    report("consul_blackholed_server", seconds_to_visible=visible, converge_wait=seconds)

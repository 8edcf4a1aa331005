"""Per-change cost on a cluster with hundreds of service names, and failed reads made visible."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.stack import Stack, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAMES = 220
"""Distinct service names of the cluster (every node holds at least one)."""

ENRICHER_READS = (
    "/v1/agent/members",
    "/v1/catalog/node-services/{node}",
    "/v1/catalog/node/{node}",
    "/v1/catalog/service/{name}",
    "/v1/internal/ui/services",
)
"""Endpoints only the enricher reads (the relay's watches block on the others)."""

SUMMARY_FALLBACK = "nodeview_consul_internal_fallback_total"
REFUSED = {"endpoint": "/v1/internal/ui/services", "status": "403"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack of 220 nodes and 220 service names, with a 1 s Consul read timeout."""
    running = Stack(
        tmp_path_factory.mktemp("change-cost"),
        nodes=NAMES,
        services=NAMES,
        extra_env={
            "CONSUL_CATALOG_TIMEOUT": "1",
            "CONSUL_MAX_RETRIES": "0",
            # Reads caused by one change only: no background members reads in the counts.
            "ENRICHER_MEMBERS_INTERVAL": "0",
        },
    )
    await running.start()
    try:
        await eventually(lambda: running.assert_converged("api-1"), within=60)
        yield running
    finally:
        running.consul.clear_faults()
        await running.stop()


def _enricher_reads(stack: Stack) -> dict[str, int]:
    counts = stack.consul.counters.by_endpoint()
    return {endpoint: counts[endpoint] for endpoint in ENRICHER_READS if counts.get(endpoint)}


async def _node(stack: Stack, api: str, node: str) -> dict[str, Any]:
    return dict((await stack.nodes_of(api))[node])


def _unheld_name(stack: Stack) -> tuple[str, str]:
    """A node and a service name it does not hold yet, taken from the double's catalog."""
    snapshot = stack.consul.state.snapshot()
    held = {node["Node"]: set(node["Services"].values()) for node in snapshot["nodes"]}
    names = sorted({name for names in held.values() for name in names} - {"consul"})
    node = sorted(n for n in held if n.startswith("prom-"))[0]
    return node, next(name for name in names if name not in held[node])


async def _shows(stack: Stack, node: str, name: str) -> None:
    for api in ("api-1", "api-2"):
        entry = await _node(stack, api, node)
        assert name in entry["service_names"], entry
        assert entry["services_status"] == "ok", entry


async def test_a_new_instance_of_an_existing_name_costs_at_most_two_reads(stack: Stack) -> None:
    """With 220 names, an instance of an existing name on another node costs ≤ 2 Consul reads."""
    node, name = _unheld_name(stack)
    stack.consul.counters.reset()
    stack.consul.state.register_service(node, f"{name}-extra", name, port=9999)
    await eventually(lambda: _shows(stack, node, name), within=30)
    reads = _enricher_reads(stack)
    assert sum(reads.values()) <= 2, reads
    assert "/v1/catalog/service/{name}" not in reads, reads


async def _degraded_items(stack: Stack, api: str) -> dict[str, str]:
    body = (await stack.http.get(stack.url(api) + "/api/v1/nodes")).json()
    return {item["item"]: item["reason"] for item in body["degraded"]}


async def test_a_failed_read_of_a_new_name_shows_degraded_then_heals(stack: Stack) -> None:
    """A new name whose read times out is listed as degraded within 10 s, then heals alone."""
    node, _ = _unheld_name(stack)
    name = "brand_new_name"
    stack.consul.set_latency(3.0, path_prefix="/v1/catalog/service/")
    stack.consul.set_latency(3.0, path_prefix="/v1/catalog/node-services/")
    try:
        stack.consul.state.register_service(node, name, name, port=7000)

        async def degraded() -> None:
            for api in ("api-1", "api-2"):
                items = await _degraded_items(stack, api)
                assert f"service {name}" in items, items
                assert "timeout" in items[f"service {name}"]

        await eventually(degraded, within=10)
    finally:
        stack.consul.clear_faults()

    async def healed() -> None:
        await _shows(stack, node, name)
        assert not await _degraded_items(stack, "api-1")

    await eventually(healed, within=30)


async def test_a_failed_read_of_a_moved_instance_marks_its_node_then_heals(stack: Stack) -> None:
    """An instance added where its node's read times out: the node says error, then heals."""
    node, name = _unheld_name(stack)
    before = (await _node(stack, "api-1", node))["services_count"]
    stack.consul.set_latency(3.0, path_prefix="/v1/catalog/node-services/")
    try:
        stack.consul.state.register_service(node, f"{name}-slow", name, port=9997)

        async def errored() -> None:
            for api in ("api-1", "api-2"):
                entry = await _node(stack, api, node)
                assert entry["services_status"] == "error", entry
                assert "timeout" in (entry["error"] or ""), entry
                assert entry["services_count"] == before, entry

        await eventually(errored, within=10)
    finally:
        stack.consul.clear_faults()
    await eventually(lambda: _shows(stack, node, name), within=30)
    await eventually(lambda: stack.assert_converged("api-1"), within=30)


async def test_a_consul_refusing_the_summary_still_gives_the_right_view(stack: Stack) -> None:
    """With the internal summary refused, every name is read instead and the view is right.

    Last in the module: the enricher then leaves the summary alone for a while.
    """
    before = await stack.metric("enricher-1", SUMMARY_FALLBACK, REFUSED)
    stack.consul.refuse_internal_endpoints(403)
    try:
        node, name = _unheld_name(stack)
        stack.consul.state.register_service(node, f"{name}-refused", name, port=9998)
        await eventually(lambda: _shows(stack, node, name), within=30)
        await eventually(lambda: stack.assert_converged("api-2"), within=30)
        after = await stack.metric("enricher-1", SUMMARY_FALLBACK, REFUSED)
        assert after > before
    finally:
        stack.consul.clear_faults()

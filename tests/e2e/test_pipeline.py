"""End to end: Consul changes reach every API replica through relay, JetStream and enricher."""

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devstack.processes import nodeview_command
from tests.e2e.stack import Stack, converged, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One running stack (200 nodes; relay, one enricher, two API replicas) for this module."""
    running = Stack(tmp_path_factory.mktemp("stack"), nodes=200, services=6)
    async with converged(running):
        yield running


async def _both_converged(stack: Stack) -> None:
    for api in ("api-1", "api-2"):
        await stack.assert_converged(api)


async def _node(stack: Stack, api: str, name: str) -> dict[str, Any]:
    return (await stack.nodes_of(api))[name]


async def test_initial_view_matches_consul_in_both_replicas(stack: Stack) -> None:
    """Right after start, both replicas serve exactly the double's nodes, statuses and sites."""
    await eventually(lambda: _both_converged(stack))
    body = (await stack.http.get(stack.url("api-1") + "/api/v1/nodes")).json()
    assert body["success"] is True
    assert body["total"] == len(body["data"]) == len(stack.expected())
    assert body["main_server"] == stack.consul.urls[0].removeprefix("http://")
    assert body["stale"] is False


async def test_join_fail_leave_show_up_in_both_replicas(stack: Stack) -> None:
    """A node joining, failing and leaving is visible in both replicas, with no flush."""
    state = stack.consul.state
    state.join_node("e2e-join-1", "127.50.0.1")
    state.register_service("e2e-join-1", "web-1", "web", tags=("e2e",), port=80)
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-2", "e2e-join-1"))["services_count"] == 1
    state.fail_node("e2e-join-1")
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-1", "e2e-join-1"))["status"] == "dead"
    state.leave_node("e2e-join-1")
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-2", "e2e-join-1"))["services_count"] == 0


async def test_a_node_that_joined_and_left_between_two_answers_shows_as_dead(
    stack: Stack,
) -> None:
    """A join and a leave no watch answer saw apart still reach the view, from the members list."""
    state = stack.consul.state
    # One step of the event loop: every blocking query wakes after both writes, so no answer of
    # the nodes, checks or services list ever names the node; only the members list keeps it.
    state.join_node("e2e-blip-1", "127.50.0.9")
    state.leave_node("e2e-blip-1")
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-1", "e2e-blip-1"))["status"] == "dead"


async def test_service_register_and_deregister_show_up(stack: Stack) -> None:
    """Registering and deregistering a service changes the node's count in both replicas."""
    state = stack.consul.state
    node = sorted(n for n in stack.expected() if n.startswith("prom-"))[0]
    before = (await _node(stack, "api-1", node))["services_count"]
    state.register_service(node, "e2e-extra", "e2e-extra", tags=("x",), port=1234)
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-2", node))["services_count"] == before + 1
    services = (await stack.http.get(stack.url("api-1") + f"/api/v1/nodes/{node}/services")).json()
    assert services["services"]["e2e-extra"]["Port"] == 1234
    state.deregister_service(node, "e2e-extra")
    await eventually(lambda: _both_converged(stack))
    assert (await _node(stack, "api-1", node))["services_count"] == before


async def test_an_instance_leaving_in_the_same_answer_as_a_new_name_leaves_the_view(
    stack: Stack,
) -> None:
    """One services answer that adds a name and hides an instance's departure shows both."""
    state = stack.consul.state
    nodes = sorted(n for n in stack.expected() if n.startswith("prom-"))
    first, second = nodes[1], nodes[2]
    state.register_service(first, "e2e-pair-1", "e2e-pair", port=9001)
    state.register_service(second, "e2e-pair-2", "e2e-pair", port=9002)
    await eventually(lambda: _both_converged(stack))
    # One step of the event loop: the names list's next answer shows only the new name; the
    # instance that left the first node changes nothing in it (its name stays, on the second).
    state.deregister_service(first, "e2e-pair-1")
    state.register_service(second, "e2e-pair-new", "e2e-pair-new", port=9003)
    await eventually(lambda: _both_converged(stack))
    assert "e2e-pair" not in (await _node(stack, "api-1", first))["service_names"]
    assert "e2e-pair-new" in (await _node(stack, "api-2", second))["service_names"]
    state.deregister_service(second, "e2e-pair-2")
    state.deregister_service(second, "e2e-pair-new")
    await eventually(lambda: _both_converged(stack))


async def test_sites_document_change_relabels_nodes(stack: Stack) -> None:
    """Changing the sites document relabels nodes without any Consul catalog read."""
    node = sorted(n for n in stack.expected() if n.startswith("prom-"))[-1]
    addr = stack.expected()[node]["addr"]
    stack.consul.counters.reset()
    stack.consul.state.set_sites(
        {"sites": [{"code": "e2e", "name": "E2E Site", "prometheus_instance": addr}]}
    )
    await eventually(lambda: _both_converged(stack))
    entry = await _node(stack, "api-1", node)
    assert entry["site_name"] == "E2E Site"
    by_endpoint = stack.consul.counters.by_endpoint()
    assert by_endpoint.get("/v1/catalog/node-services/{node}", 0) == 0
    assert by_endpoint.get("/v1/catalog/service/{name}", 0) == 0


async def test_same_change_from_three_sources_is_applied_once(stack: Stack, tmp_path: Path) -> None:
    """One change sent by the watcher, the HTTP handler and the script handler is stored once."""
    state = stack.consul.state
    state.join_node("e2e-dedup-1", "127.50.0.2")
    await eventually(lambda: _both_converged(stack))
    catalog = await stack.http.get(stack.consul.urls[0] + "/v1/catalog/nodes")
    index = catalog.headers["X-Consul-Index"]
    stored_before = await stack.metric(
        "relay",
        "nodeview_relay_published_total",
        {"type": "nodes", "source": "watcher", "outcome": "stored"},
    )
    http = await stack.http.post(
        stack.url("relay") + "/v1/watch/nodes",
        content=catalog.content,
        headers={"Authorization": f"Bearer {stack.relay_token}", "X-Consul-Index": index},
    )
    assert http.status_code == 202, http.text
    assert http.json()["duplicate"] is True
    script = await asyncio.to_thread(
        subprocess.run,
        nodeview_command("relay", "handle", "--type", "nodes"),
        input=catalog.content,
        env={**os.environ, **stack.env(), "CONSUL_INDEX": index},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert script.returncode == 0, script.stderr.decode()
    assert b"duplicate" in script.stderr
    stored_after = await stack.metric(
        "relay",
        "nodeview_relay_published_total",
        {"type": "nodes", "source": "watcher", "outcome": "stored"},
    )
    assert stored_after == stored_before
    assert (
        await stack.metric(
            "relay",
            "nodeview_relay_published_total",
            {"type": "nodes", "source": "http", "outcome": "stored"},
        )
        == 0
    )


async def test_watch_handler_rejects_bad_requests(stack: Stack) -> None:
    """The HTTP handler refuses missing/wrong tokens, bad JSON, bad index and unknown types."""
    url = stack.url("relay") + "/v1/watch/nodes"
    auth = {"Authorization": f"Bearer {stack.relay_token}", "X-Consul-Index": "5"}
    cases = [
        ({"X-Consul-Index": "5"}, b"[]", 401),
        ({"Authorization": "Bearer wrong", "X-Consul-Index": "5"}, b"[]", 403),
        (auth, b"{not json", 400),
        (auth, b'{"a": 1}', 400),
        ({**auth, "X-Consul-Index": "-1"}, b"[]", 400),
        (auth, b"\xff\xfe", 400),
    ]
    for headers, body, status in cases:
        response = await stack.http.post(url, content=body, headers=headers)
        assert response.status_code == status, (headers, body, response.text)
        assert response.json()["success"] is False
    unknown = await stack.http.post(
        stack.url("relay") + "/v1/watch/bogus", content=b"[]", headers=auth
    )
    assert unknown.status_code == 400
    big = await stack.http.post(
        url, content=b"[" + b"{}," * (12 * 1024 * 1024) + b"{}]", headers=auth
    )
    assert big.status_code == 413


async def test_new_replica_serves_the_same_body_and_etag(stack: Stack) -> None:
    """An API replica started after the changes serves the identical body (same ETag) once ready."""
    stack.add("api-late", ["api"], "API_PORT")
    await asyncio.to_thread(stack.processes["api-late"].wait_ready)

    async def same() -> None:
        old = await stack.http.get(stack.url("api-1") + "/api/v1/nodes")
        new = await stack.http.get(stack.url("api-late") + "/api/v1/nodes")
        assert old.headers["etag"] == new.headers["etag"]
        assert old.content == new.content

    await eventually(same)
    etag = (await stack.http.get(stack.url("api-late") + "/api/v1/nodes")).headers["etag"]
    cached = await stack.http.get(
        stack.url("api-late") + "/api/v1/nodes", headers={"If-None-Match": etag}
    )
    assert cached.status_code == 304
    plain = await stack.http.get(
        stack.url("api-late") + "/api/v1/nodes", headers={"Accept-Encoding": "identity"}
    )
    packed = await stack.http.get(
        stack.url("api-late") + "/api/v1/nodes", headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content
    assert packed.headers["etag"] == "W/" + plain.headers["etag"]
    assert int(packed.headers["content-length"]) < len(plain.content) / 3
    await asyncio.to_thread(stack.processes["api-late"].stop)


async def test_flush_needs_the_token_and_resyncs_with_one_node_dump(stack: Stack) -> None:
    """Flush without a token is refused; with it, the resync reads Consul's node dump once."""
    url = stack.url("api-1") + "/api/v1/admin/cache/nodes/flush?wait=true"
    assert (await stack.http.post(url)).status_code == 401
    assert (await stack.http.post(url, headers={"Authorization": "Bearer nope"})).status_code == 403
    stack.consul.counters.reset()
    response = await stack.http.post(url, headers={"Authorization": f"Bearer {stack.admin_token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    by_endpoint = stack.consul.counters.by_endpoint()
    assert by_endpoint.get("/v1/internal/ui/nodes") == 1
    assert by_endpoint.get("/v1/catalog/service/{name}", 0) == 0
    assert by_endpoint.get("/v1/catalog/node-services/{node}", 0) == 0


async def test_unknown_node_is_a_json_404(stack: Stack) -> None:
    """Asking for the services of an unknown node answers 404 with a JSON error."""
    for path in ("services", "service-names"):
        response = await stack.http.get(stack.url("api-1") + f"/api/v1/nodes/10.255.255.1/{path}")
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": "node_not_found",
            "detail": "no node with address or name '10.255.255.1'",
        }


async def test_sse_sends_a_snapshot_then_changes(stack: Stack) -> None:
    """The event stream starts with a snapshot and then carries a joining node."""
    async with stack.http.stream("GET", stack.url("api-2") + "/api/v1/nodes/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        event = await anext(lines)
        while not event.startswith("event:"):
            event = await anext(lines)
        assert event == "event: snapshot"
        snapshot = json.loads((await anext(lines)).removeprefix("data: "))
        assert snapshot["total"] >= 1
        stack.consul.state.join_node("e2e-sse-1", "127.50.0.3")

        async def node_event() -> dict[str, Any]:
            while True:
                line = await anext(lines)
                if line.startswith("data: ") and "e2e-sse-1" in line:
                    return dict(json.loads(line.removeprefix("data: ")))

        entry = await asyncio.wait_for(node_event(), 20)
        assert entry["node"] == "e2e-sse-1"


async def test_node_read_timeout_keeps_last_known_count_and_marks_error(stack: Stack) -> None:
    """When a service read times out, nodes keep their last count and say services_status=error."""
    expected = stack.expected()
    node = sorted(
        n for n in expected if n.startswith("prom-") and expected[n]["services_count"] > 0
    )[0]
    before = await _node(stack, "api-1", node)
    services = (await stack.http.get(stack.url("api-1") + f"/api/v1/nodes/{node}/services")).json()[
        "services"
    ]
    sid, service = next(iter(services.items()))
    stack.consul.set_latency(5.0, path_prefix="/v1/catalog/service/")
    try:
        stack.consul.state.register_service(
            node, sid, service["Service"], tags=(*service["Tags"], "changed"), port=service["Port"]
        )

        async def errored() -> dict[str, Any]:
            entry = await _node(stack, "api-1", node)
            assert entry["services_status"] == "error"
            return entry

        entry = await eventually(errored, within=40)
        assert entry["services_count"] == before["services_count"]
        assert "timeout" in entry["error"]
    finally:
        stack.consul.clear_faults()

    async def recovered() -> None:
        entry = await _node(stack, "api-1", node)
        assert entry["services_status"] == "ok"

    await eventually(recovered, within=40)
    await eventually(lambda: _both_converged(stack))

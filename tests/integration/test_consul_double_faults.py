"""Fault injection, counters and the control API of the double, exercised over HTTP."""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble, UnknownServer, generate_inventory
from tests.integration.double_support import CONTROL_TOKEN

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A three-server double with a control token and a small inventory."""
    inventory = generate_inventory(nodes=4, services=3, sites=2, seed=2)
    async with ConsulDouble(3, control_token=CONTROL_TOKEN, inventory=inventory) as running:
        yield running


async def test_latency_applies_to_matching_paths(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Latency on a path prefix delays matching requests by at least that long."""
    double.set_latency(0.3, path_prefix="/v1/kv/")
    started = time.monotonic()
    response = await client.get(f"{double.urls[0]}/v1/kv/missing")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 404
    assert double.faults.latency_for(0, "/v1/catalog/nodes") == 0
    double.clear_faults()
    assert double.faults.latency_for(0, "/v1/kv/missing") == 0


async def test_latency_per_server(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Latency bound to one server does not apply to the others."""
    double.set_latency(0.3, server=1)
    started = time.monotonic()
    await client.get(f"{double.urls[1]}/v1/catalog/nodes")
    assert time.monotonic() - started >= 0.3
    assert double.faults.latency_for(0, "/v1/catalog/nodes") == 0


async def test_error_count_then_recovery(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """fail_requests answers the chosen 5xx for exactly ``count`` requests."""
    double.fail_requests(503, count=2)
    url = f"{double.urls[0]}/v1/catalog/nodes"
    statuses = [(await client.get(url)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_errors_until_cleared_on_one_server(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """An open-ended error rule on one server lasts until cleared; other servers are fine."""
    double.fail_requests(server=2)
    for _ in range(3):
        assert (await client.get(f"{double.urls[2]}/v1/catalog/nodes")).status_code == 500
    assert (await client.get(f"{double.urls[0]}/v1/catalog/nodes")).status_code == 200
    double.clear_faults()
    assert (await client.get(f"{double.urls[2]}/v1/catalog/nodes")).status_code == 200


async def test_server_down_refuses_connections_and_comes_back(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A downed server refuses connections; brought up, it answers on the same URL."""
    url = f"{double.urls[2]}/v1/catalog/nodes"
    assert (await client.get(url)).status_code == 200
    await double.server_down(2)
    with pytest.raises(httpx.ConnectError):
        await client.get(url)
    await double.server_up(2)
    assert (await client.get(url)).status_code == 200
    assert double.urls[2] in url


async def test_server_down_drops_in_flight_blocking_query(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Taking a server down drops its in-flight blocking queries."""
    url = f"{double.urls[1]}/v1/catalog/nodes"
    index = (await client.get(url)).headers["X-Consul-Index"]
    pending = asyncio.create_task(client.get(url, params={"index": index, "wait": "60s"}))
    await double.state.hub.wait_for_waiters(1)
    await double.server_down(1)
    with pytest.raises(httpx.TransportError):
        await pending


async def test_cut_blocking_queries_closes_connections(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Cutting blocking queries makes the client see a dropped connection, not an answer."""
    url = f"{double.urls[0]}/v1/catalog/services"
    index = (await client.get(url)).headers["X-Consul-Index"]
    pending = asyncio.create_task(client.get(url, params={"index": index, "wait": "60s"}))
    await double.state.hub.wait_for_waiters(1)
    assert double.cut_blocking_queries() == 1
    with pytest.raises(httpx.TransportError):
        await pending
    assert (await client.get(url)).status_code == 200


async def test_unknown_server_is_a_named_error(double: ConsulDouble) -> None:
    """Fault controls reject server indexes the double does not have."""
    with pytest.raises(UnknownServer):
        double.set_latency(1, server=7)
    with pytest.raises(UnknownServer):
        await double.server_down(3)


async def test_counters_per_endpoint_server_and_method(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Requests are counted per endpoint template, server and method; reset zeroes them."""
    double.counters.reset()
    await client.get(f"{double.urls[0]}/v1/catalog/service/consul")
    await client.get(f"{double.urls[1]}/v1/catalog/service/prometheus")
    await client.put(f"{double.urls[0]}/v1/kv/a/b", content=b"1")
    await client.get(f"{double.urls[0]}/_double/state")
    assert double.counters.total() == 3
    assert double.counters.total(endpoint="/v1/catalog/service/{name}") == 2
    assert double.counters.total(endpoint="/v1/catalog/service/{name}", server=1) == 1
    assert double.counters.total(endpoint="/v1/kv/{key}", method="PUT") == 1
    assert double.counters.by_endpoint() == {"/v1/catalog/service/{name}": 2, "/v1/kv/{key}": 1}
    double.counters.reset()
    assert double.counters.total() == 0


async def test_max_in_flight_tracks_concurrency(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """The in-flight high-water mark equals the concurrency a client actually used."""
    double.set_latency(0.2)
    url = f"{double.urls[0]}/v1/catalog/nodes"
    double.counters.reset()
    await asyncio.gather(*(client.get(url) for _ in range(5)))
    assert double.counters.max_in_flight == 5
    double.counters.reset()
    limit = asyncio.Semaphore(2)

    async def limited() -> None:
        async with limit:
            await client.get(url)

    await asyncio.gather(*(limited() for _ in range(6)))
    assert double.counters.max_in_flight == 2
    assert double.counters.max_in_flight_by_endpoint() == {"/v1/catalog/nodes": 2}
    assert double.counters.in_flight == 0


async def test_control_requires_token(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """The control API rejects missing or wrong bearer tokens and is never counted."""
    double.counters.reset()
    url = f"{double.urls[0]}/_double/state"
    assert (await client.get(url)).status_code == 401
    wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = await client.get(url, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"})
    assert ok.status_code == 200
    assert double.counters.total() == 0


async def test_control_membership_and_catalog(
    double: ConsulDouble, control: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """Join, fail, recover, leave and service registration through the control API."""
    joined = await control.post(
        "/nodes", json={"name": "prom-new-01", "addr": "127.99.0.1", "meta": {"site": "new"}}
    )
    assert joined.status_code == 200
    assert (await control.post("/nodes/prom-new-01/fail")).status_code == 200
    assert double.state.members["prom-new-01"].status == 4
    assert (await control.post("/nodes/prom-new-01/recover")).status_code == 200
    service = {"node": "prom-new-01", "id": "web", "name": "web", "tags": ["a"], "port": 80}
    assert (await control.post("/services", json=service)).status_code == 200
    listed = (await client.get(f"{double.urls[0]}/v1/catalog/service/web")).json()
    assert [(s["Node"], s["ServicePort"]) for s in listed] == [("prom-new-01", 80)]
    assert (await control.delete("/services/prom-new-01/web")).status_code == 200
    assert (await control.post("/nodes/prom-new-01/leave")).status_code == 200
    assert "prom-new-01" not in double.state.nodes
    missing = await control.post("/nodes/ghost/fail")
    assert missing.status_code == 404
    bad = await control.post("/nodes", json={"name": "x"})
    assert bad.status_code == 400


async def test_control_kv_sites_and_events(
    double: ConsulDouble, control: httpx.AsyncClient
) -> None:
    """KV, the sites document and events can be written through the control API."""
    assert (await control.put("/kv/some/key", content=b"v")).status_code == 200
    assert double.state.kv["some/key"].value == b"v"
    assert (await control.delete("/kv/some/key")).status_code == 200
    assert "some/key" not in double.state.kv
    sites = {"data": {"sites": [{"code": "x"}]}}
    assert (await control.put("/sites", json=sites)).status_code == 200
    assert b'"code": "x"' in double.state.kv["skills/eye/metadata/sites"].value
    event = (await control.post("/events", json={"name": "go", "payload": "now"})).json()
    assert event["Name"] == "go"
    assert event["Payload"] == "bm93"


async def test_control_faults_leader_index_and_counters(
    double: ConsulDouble, control: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """Faults, leadership, index reset, cut and counters are reachable over HTTP."""
    await control.post("/faults/errors", json={"status": 502, "count": 1})
    assert (await client.get(f"{double.urls[0]}/v1/catalog/nodes")).status_code == 502
    await control.post("/faults/latency", json={"seconds": 0.05, "server": 1})
    assert double.faults.latency_for(1, "/v1/x") == 0.05
    assert (await control.post("/faults/acl-filter", json={"on": True})).json()["acl_filtered"]
    filtered = await client.get(f"{double.urls[0]}/v1/catalog/nodes")
    assert filtered.json() == []
    assert filtered.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    assert (await control.post("/faults/clear")).json() == {
        "latency": [],
        "errors": [],
        "acl_filtered": False,
        "internal_endpoints": None,
    }
    assert (await control.post("/leader", json={"server": 2})).json() == {"leader": 2}
    leader = await client.get(f"{double.urls[0]}/v1/status/leader")
    assert leader.json() == "127.0.1.3:8300"
    reset = (await control.post("/index/reset", json={"to": 5})).json()
    assert reset == {"index": 5}
    assert (await control.post("/blocking/cut", json={})).json() == {"cut": 0}
    counters = (await control.get("/counters")).json()
    assert counters["total"] >= 2
    assert (await control.post("/counters/reset")).json()["total"] == 0


async def test_control_server_down_and_up(
    double: ConsulDouble, control: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """A server can be taken down and up through another server's control API."""
    assert (await control.post("/servers/1/down")).status_code == 200
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{double.urls[1]}/v1/status/leader")
    assert (await control.post("/servers/1/up")).status_code == 200
    assert (await client.get(f"{double.urls[1]}/v1/status/leader")).status_code == 200


async def test_control_can_take_its_own_server_down(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Asking server 0 to go down answers first, then stops listening."""
    response = await client.post(
        f"{double.urls[0]}/_double/servers/0/down",
        headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
    )
    assert response.status_code == 200
    await double.wait_background()
    assert not double.cluster.up[0]
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{double.urls[0]}/v1/status/leader")


async def test_control_state_and_change_log(
    double: ConsulDouble, control: httpx.AsyncClient
) -> None:
    """The snapshot lists servers, members and keys; the change log pages by offset."""
    state = (await control.get("/state")).json()
    assert [s["up"] for s in state["servers"]] == [True, True, True]
    assert state["leader"] == 0
    assert "skills/eye/metadata/sites" in state["kv_keys"]
    assert len(state["members"]) == 7
    first = (await control.get("/changes")).json()
    assert first["next"] == len(double.state.change_log)
    double.state.kv_put("x", b"1")
    more = (await control.get("/changes", params={"offset": first["next"]})).json()
    assert [c["kind"] for c in more["changes"]] == ["kv"]
    assert more["changes"][0]["index"] == double.state.index


async def test_client_giving_up_leaves_no_request_in_flight(double: ConsulDouble) -> None:
    """A client that times out on a blocking query is no longer counted as in flight."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    async with httpx.AsyncClient(timeout=10) as client:
        index = (await client.get(url)).headers["X-Consul-Index"]
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3, connect=10)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.get(url, params={"index": index, "wait": "60s"})
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        if double.counters.in_flight == 0 and double.state.hub.waiting == 0:
            break
        await asyncio.sleep(0.01)
    assert double.counters.in_flight == 0
    assert double.state.hub.waiting == 0

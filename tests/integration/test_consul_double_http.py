"""The double's Consul endpoints over HTTP: JSON shapes, headers, indexes, blocking, ACL, leader."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble, generate_inventory
from tests.integration.double_support import index_of

pytestmark = pytest.mark.timeout(30)

NODE_KEYS = [
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "Meta",
    "CreateIndex",
    "ModifyIndex",
]
NODE_SERVICE_KEYS = [
    "ID",
    "Service",
    "Tags",
    "Address",
    "Meta",
    "Port",
    "Weights",
    "EnableTagOverride",
    "Proxy",
    "Connect",
    "PeerName",
    "CreateIndex",
    "ModifyIndex",
]
SERVICE_NODE_KEYS = [
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "ServiceKind",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "ServiceAddress",
    "ServiceWeights",
    "ServiceMeta",
    "ServicePort",
    "ServiceSocketPath",
    "ServiceEnableTagOverride",
    "ServiceProxy",
    "ServiceConnect",
    "ServiceLocality",
    "CreateIndex",
    "ModifyIndex",
]
CHECK_KEYS = [
    "Node",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Interval",
    "Timeout",
    "ExposedPort",
    "Definition",
    "CreateIndex",
    "ModifyIndex",
]
MEMBER_KEYS = [
    "Name",
    "Addr",
    "Port",
    "Tags",
    "Status",
    "ProtocolMin",
    "ProtocolMax",
    "ProtocolCur",
    "DelegateMin",
    "DelegateMax",
    "DelegateCur",
]
EVENT_KEYS = [
    "ID",
    "Name",
    "Payload",
    "NodeFilter",
    "ServiceFilter",
    "TagFilter",
    "Version",
    "LTime",
]
QUERY_META = {
    "x-consul-index",
    "x-consul-knownleader",
    "x-consul-lastcontact",
    "x-consul-effective-consistency",
}


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A three-server double with six nodes over three sites."""
    inventory = generate_inventory(nodes=6, services=4, sites=3, seed=1)
    async with ConsulDouble(3, inventory=inventory) as running:
        yield running


async def test_members_shape_and_no_index(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Members list servers (role consul) and nodes (role node) without query meta headers."""
    response = await client.get(f"{double.urls[0]}/v1/agent/members")
    members = response.json()
    assert all(list(m) == MEMBER_KEYS for m in members)
    roles = {m["Name"]: m["Tags"]["role"] for m in members}
    assert roles["consul-server-1"] == roles["consul-server-3"] == "consul"
    assert roles["prom-palmas-01"] == "node"
    assert {m["Status"] for m in members} == {1}
    assert {m["Port"] for m in members} == {8301}
    assert not QUERY_META & set(response.headers)


async def test_catalog_nodes_shape_and_headers(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Catalog nodes have the sample's keys and full query meta headers."""
    response = await client.get(f"{double.urls[0]}/v1/catalog/nodes")
    nodes = response.json()
    assert len(nodes) == 9
    assert all(list(n) == NODE_KEYS for n in nodes)
    assert set(response.headers) >= QUERY_META
    assert response.headers["X-Consul-KnownLeader"] == "true"
    assert response.headers["X-Consul-LastContact"] == "0"
    assert response.headers["X-Consul-Effective-Consistency"] == "leader"
    assert response.headers["Content-Type"] == "application/json"
    assert index_of(response) == double.state.indexes.table("nodes")


async def test_catalog_services_maps_names_to_sorted_unique_tags(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Catalog services maps each name to a deduplicated tag list; consul has no tags."""
    body = (await client.get(f"{double.urls[0]}/v1/catalog/services")).json()
    assert body["consul"] == []
    for tags in body.values():
        assert tags == sorted(set(tags))
    assert "exporter" in body["node_exporter"]


async def test_catalog_service_shape_and_index(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Service nodes carry Service* fields and report the service's own index."""
    response = await client.get(f"{double.urls[0]}/v1/catalog/service/consul")
    entries = response.json()
    assert len(entries) == 3
    assert all(list(e) == SERVICE_NODE_KEYS for e in entries)
    assert index_of(response) == double.state.indexes.services["consul"]
    missing = await client.get(f"{double.urls[0]}/v1/catalog/service/none")
    assert missing.json() == []


async def test_node_services_and_node_shapes(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """node-services lists services, node maps them by ID; unknown nodes answer like Consul."""
    url = double.urls[0]
    listed = (await client.get(f"{url}/v1/catalog/node-services/prom-palmas-01")).json()
    assert list(listed) == ["Node", "Services"]
    assert list(listed["Node"]) == NODE_KEYS
    assert all(list(s) == NODE_SERVICE_KEYS for s in listed["Services"])
    mapped = (await client.get(f"{url}/v1/catalog/node/prom-palmas-01")).json()
    assert set(mapped["Services"]) == {s["ID"] for s in listed["Services"]}
    unknown_list = await client.get(f"{url}/v1/catalog/node-services/ghost")
    assert (unknown_list.status_code, unknown_list.json()) == (
        200,
        {"Node": None, "Services": None},
    )
    unknown_node = await client.get(f"{url}/v1/catalog/node/ghost")
    assert (unknown_node.status_code, unknown_node.text) == (200, "null")


async def test_health_endpoints_shapes(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Health node/state/service return checks with the sample's keys."""
    url = double.urls[0]
    checks = (await client.get(f"{url}/v1/health/node/prom-palmas-01")).json()
    assert [list(c) for c in checks] == [CHECK_KEYS]
    assert checks[0]["CheckID"] == "serfHealth"
    any_state = (await client.get(f"{url}/v1/health/state/any")).json()
    assert len(any_state) == 9
    assert (await client.get(f"{url}/v1/health/state/critical")).json() == []
    entries = (await client.get(f"{url}/v1/health/service/consul")).json()
    assert [list(e) for e in entries] == [["Node", "Service", "Checks"]] * 3
    assert list(entries[0]["Service"]) == NODE_SERVICE_KEYS
    bad = await client.get(f"{url}/v1/health/state/bogus")
    assert bad.status_code == 400


async def test_failed_node_shows_critical_and_is_filtered_by_passing(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A failed node's serfHealth is critical and ?passing drops its instances."""
    double.state.fail_node("consul-server-3")
    url = double.urls[0]
    critical = (await client.get(f"{url}/v1/health/state/critical")).json()
    assert [(c["Node"], c["Output"]) for c in critical] == [
        ("consul-server-3", "Agent not live or unreachable")
    ]
    passing = (await client.get(f"{url}/v1/health/service/consul?passing")).json()
    assert {e["Node"]["Node"] for e in passing} == {"consul-server-1", "consul-server-2"}
    members = (await client.get(f"{url}/v1/agent/members")).json()
    assert {m["Name"]: m["Status"] for m in members}["consul-server-3"] == 4


async def test_kv_roundtrip(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """PUT returns true; GET returns one entry, ?raw the bytes; DELETE then 404."""
    url = f"{double.urls[0]}/v1/kv/app/config"
    put = await client.put(url, content=b"hello")
    assert put.json() is True
    entries = (await client.get(url)).json()
    assert len(entries) == 1
    assert base64.b64decode(entries[0]["Value"]) == b"hello"
    raw = await client.get(url, params={"raw": ""})
    assert raw.content == b"hello"
    listing = (await client.get(f"{double.urls[0]}/v1/kv/app/", params={"recurse": ""})).json()
    assert [e["Key"] for e in listing] == ["app/config"]
    keys = (await client.get(f"{double.urls[0]}/v1/kv/app/", params={"keys": ""})).json()
    assert keys == ["app/config"]
    assert (await client.delete(url)).json() is True
    missing = await client.get(url)
    assert missing.status_code == 404
    assert index_of(missing) == double.state.indexes.table("kvs")


async def test_sites_document_is_in_kv(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """The generated sites document is readable at the sites key."""
    response = await client.get(f"{double.urls[0]}/v1/kv/skills/eye/metadata/sites")
    document = json.loads(base64.b64decode(response.json()[0]["Value"]))
    assert [s["code"] for s in document["data"]["sites"]] == ["palmas", "rio", "recife"]


async def test_events_fire_and_list(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Fire answers the event (LTime 0); list filters by name with the ID-derived index."""
    url = double.urls[0]
    fired = (await client.put(f"{url}/v1/event/fire/nodeview-resync", content=b"manual")).json()
    assert list(fired) == EVENT_KEYS
    assert (fired["Payload"], fired["Version"], fired["LTime"]) == ("bWFudWFs", 1, 0)
    await client.put(f"{url}/v1/event/fire/other")
    listed = await client.get(f"{url}/v1/event/list", params={"name": "nodeview-resync"})
    events = listed.json()
    assert [e["ID"] for e in events] == [fired["ID"]]
    assert events[0]["LTime"] == 1
    high, low = (
        int(fired["ID"].replace("-", "")[:16], 16),
        int(fired["ID"].replace("-", "")[16:], 16),
    )
    assert index_of(listed) == high ^ low
    assert set(listed.headers) & QUERY_META == {"x-consul-index"}


async def test_catalog_register_and_deregister(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Consul's register body creates node and service; deregister removes them."""
    url = double.urls[0]
    body = {
        "Node": "ext-1",
        "Address": "127.50.0.1",
        "NodeMeta": {"site": "x"},
        "Service": {"ID": "web-1", "Service": "web", "Tags": ["a"], "Port": 80},
        "Check": {"CheckID": "web-check", "Name": "web", "Status": "passing", "ServiceID": "web-1"},
    }
    assert (await client.put(f"{url}/v1/catalog/register", json=body)).json() is True
    service = (await client.get(f"{url}/v1/catalog/service/web")).json()
    assert [(s["Node"], s["ServicePort"], s["NodeMeta"]) for s in service] == [
        ("ext-1", 80, {"site": "x"})
    ]
    health = (await client.get(f"{url}/v1/health/service/web")).json()
    assert [c["CheckID"] for c in health[0]["Checks"]] == ["web-check"]
    deregister = {"Node": "ext-1", "ServiceID": "web-1"}
    assert (await client.put(f"{url}/v1/catalog/deregister", json=deregister)).json() is True
    assert (await client.get(f"{url}/v1/catalog/service/web")).json() == []
    await client.put(f"{url}/v1/catalog/deregister", json={"Node": "ext-1"})
    assert "ext-1" not in double.state.nodes
    bad = await client.put(f"{url}/v1/catalog/register", json={"Address": "x"})
    assert bad.status_code == 400


async def test_status_and_unknown_routes(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Status leader and peers name servers; unknown routes 404 with a text body."""
    url = double.urls[2]
    assert (await client.get(f"{url}/v1/status/leader")).json() == "127.0.1.1:8300"
    assert len((await client.get(f"{url}/v1/status/peers")).json()) == 3
    unknown = await client.get(f"{url}/v1/nothing/here")
    assert unknown.status_code == 404
    assert unknown.text.startswith("404 page not found")
    wrong_method = await client.post(f"{url}/v1/catalog/nodes")
    assert wrong_method.status_code == 405


async def test_unknown_datacenter(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """An unknown dc answers 500 No path to datacenter; the own dc works."""
    url = double.urls[0]
    other = await client.get(f"{url}/v1/catalog/nodes", params={"dc": "dc9"})
    assert (other.status_code, other.text) == (500, "No path to datacenter")
    own = await client.get(f"{url}/v1/catalog/nodes", params={"dc": "dc1"})
    assert own.status_code == 200


async def test_blocking_query_returns_early_on_change(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A blocking query on a key returns as soon as the key is written."""
    double.state.kv_put("watched", b"1")
    url = f"{double.urls[1]}/v1/kv/watched"
    before = index_of(await client.get(url))
    pending = asyncio.create_task(client.get(url, params={"index": before, "wait": "60s"}))
    await double.state.hub.wait_for_waiters(1)
    double.state.kv_put("watched", b"2")
    response = await pending
    assert index_of(response) > before
    assert base64.b64decode(response.json()[0]["Value"]) == b"2"


async def test_blocking_query_times_out_with_same_index(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Without a change, a blocking query answers at ``wait`` with the same index and data."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    first = await client.get(url)
    second = await client.get(url, params={"index": index_of(first), "wait": "200ms"})
    assert index_of(second) == index_of(first)
    assert second.json() == first.json()


async def test_unrelated_write_does_not_release_service_query(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A KV write wakes the query internally but it keeps blocking: its index did not move."""
    url = f"{double.urls[0]}/v1/catalog/service/consul"
    first = await client.get(url)
    pending = asyncio.create_task(client.get(url, params={"index": index_of(first), "wait": "1s"}))
    await double.state.hub.wait_for_waiters(1)
    double.state.kv_put("unrelated", b"x")
    await asyncio.sleep(0.05)
    assert not pending.done()
    response = await pending
    assert index_of(response) == index_of(first)


async def test_index_zero_never_blocks(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """index=0 answers at once even with a long wait."""
    response = await client.get(
        f"{double.urls[0]}/v1/catalog/nodes", params={"index": 0, "wait": "10m"}
    )
    assert response.status_code == 200
    assert double.state.hub.waiting == 0


async def test_index_reset_releases_blocking_queries_with_lower_index(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A snapshot restore answers in-flight blocking queries at once with the lower index."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    current = index_of(await client.get(url))
    pending = asyncio.create_task(client.get(url, params={"index": current, "wait": "60s"}))
    await double.state.hub.wait_for_waiters(1)
    double.state.reset_index(to=3)
    response = await pending
    assert index_of(response) <= 3 < current


async def test_event_list_blocks_until_a_new_event(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Event list blocking waits for an index different from the one given."""
    url = f"{double.urls[0]}/v1/event/list"
    first = await client.get(url, params={"name": "e"})
    pending = asyncio.create_task(
        client.get(url, params={"name": "e", "index": index_of(first), "wait": "60s"})
    )
    await double.state.hub.wait_for_waiters(1)
    fired = double.state.fire_event("e", b"x")
    response = await pending
    assert [e["ID"] for e in response.json()] == [fired["ID"]]
    assert index_of(response) != index_of(first)


async def test_leader_down_without_stale_fails_and_with_stale_answers(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """With the leader down, default reads fail; stale reads answer with KnownLeader false."""
    follower = double.urls[1]
    forwarded = await client.get(f"{follower}/v1/catalog/nodes")
    assert forwarded.headers["X-Consul-KnownLeader"] == "true"
    assert forwarded.headers["X-Consul-LastContact"] == "0"
    await double.server_down(0)
    failed = await client.get(f"{follower}/v1/catalog/nodes")
    assert (failed.status_code, failed.text) == (500, "No cluster leader")
    stale = await client.get(f"{follower}/v1/catalog/nodes", params={"stale": ""})
    assert stale.status_code == 200
    assert stale.headers["X-Consul-KnownLeader"] == "false"
    assert stale.headers["X-Consul-Effective-Consistency"] == "stale"
    assert (await client.get(f"{follower}/v1/agent/members")).status_code == 200
    assert (await client.get(f"{follower}/v1/status/leader")).json() == ""
    write = await client.put(f"{follower}/v1/kv/x", content=b"1")
    assert write.status_code == 500
    double.set_leader(1)
    healed = await client.get(f"{follower}/v1/catalog/nodes")
    assert healed.headers["X-Consul-KnownLeader"] == "true"


async def test_stale_read_on_follower_reports_last_contact(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A stale read answered by a follower reports a non-zero X-Consul-LastContact."""
    stale = await client.get(f"{double.urls[2]}/v1/catalog/nodes", params={"stale": ""})
    assert int(stale.headers["X-Consul-LastContact"]) > 0
    assert stale.headers["X-Consul-KnownLeader"] == "true"


async def test_blocking_query_on_follower_fails_when_leader_goes_down(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A forwarded blocking query fails with No cluster leader once the leader is gone."""
    url = f"{double.urls[1]}/v1/catalog/nodes"
    current = index_of(await client.get(url))
    pending = asyncio.create_task(client.get(url, params={"index": current, "wait": "60s"}))
    await double.state.hub.wait_for_waiters(1)
    await double.server_down(0)
    response = await pending
    assert (response.status_code, response.text) == (500, "No cluster leader")


async def test_bad_query_parameters(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """Malformed index or wait, or stale with consistent, answer 400."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    for params in ({"index": "x"}, {"index": "1", "wait": "soon"}, {"stale": "", "consistent": ""}):
        assert (await client.get(url, params=params)).status_code == 400


async def test_acl_token_required() -> None:
    """With ACLs on, no token gets 403 Permission denied and a wrong one ACL not found."""
    async with (
        ConsulDouble(1, acl_token="secret") as double,
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"{double.urls[0]}/v1/catalog/nodes"
        none = await client.get(url)
        assert (none.status_code, none.text) == (403, "Permission denied")
        wrong = await client.get(url, headers={"X-Consul-Token": "nope"})
        assert (wrong.status_code, wrong.text) == (403, "ACL not found")
        for kwargs in (
            {"headers": {"X-Consul-Token": "secret"}},
            {"headers": {"Authorization": "Bearer secret"}},
            {"params": {"token": "secret"}},
        ):
            assert (await client.get(url, **kwargs)).status_code == 200  # type: ignore[arg-type]
        members = await client.get(f"{double.urls[0]}/v1/agent/members")
        assert members.status_code == 403

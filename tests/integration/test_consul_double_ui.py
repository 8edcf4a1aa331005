"""The double's internal UI endpoints over HTTP: shapes, blocking, ACLs, faults and counters."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble, generate_inventory
from tests.integration.double_support import CONTROL_TOKEN, index_of

pytestmark = pytest.mark.timeout(30)


SUMMARY_KEYS = [
    "Name",
    "Datacenter",
    "Tags",
    "Nodes",
    "ExternalSources",
    "InstanceCount",
    "ChecksPassing",
    "ChecksWarning",
    "ChecksCritical",
    "GatewayConfig",
    "TransparentProxy",
    "ConnectNative",
    "ConnectedWithProxy",
    "ConnectedWithGateway",
]
NODE_INFO_KEYS = ["ID", "Node", "Address", "TaggedAddresses", "Meta", "Services", "Checks"]
SERVICES = "/v1/internal/ui/services"
NODES = "/v1/internal/ui/nodes"


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A three-server double with a control token and six nodes over three sites."""
    inventory = generate_inventory(nodes=6, services=4, sites=3, seed=1)
    async with ConsulDouble(3, control_token=CONTROL_TOKEN, inventory=inventory) as running:
        yield running


def by_name(summaries: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    """Service summaries keyed by service name."""
    return {summary["Name"]: summary for summary in summaries}


async def test_ui_services_shape_and_index(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """One summary per name, sorted, with Consul's keys and the catalog's largest table index."""
    response = await client.get(f"{double.urls[0]}{SERVICES}")
    summaries = response.json()
    assert [s["Name"] for s in summaries] == sorted({s["Name"] for s in summaries})
    assert all(list(s) == SUMMARY_KEYS for s in summaries)
    consul = by_name(summaries)["consul"]
    assert consul["Nodes"] == ["consul-server-1", "consul-server-2", "consul-server-3"]
    assert (consul["InstanceCount"], consul["ChecksPassing"], consul["Tags"]) == (3, 3, None)
    assert consul["GatewayConfig"] == {}
    assert by_name(summaries)["node_exporter"]["Tags"] == ["exporter", "linux", "palmas", "rio"]
    tables = double.state.indexes
    assert index_of(response) == max(tables.table(t) for t in ("nodes", "services", "checks"))
    assert response.headers["X-Consul-KnownLeader"] == "true"
    assert "X-Consul-Effective-Consistency" not in response.headers


async def test_ui_services_counts_instances_and_nodes_once(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Two instances of one name on one node: InstanceCount 2, the node listed once."""
    double.state.register_service("prom-rio-01", "web-1", "web", tags=("b", "a"), port=80)
    double.state.register_service("prom-rio-01", "web-2", "web", tags=("a",), port=81)
    double.state.register_check("prom-rio-01", "web-1-http", "HTTP", "critical", service_id="web-1")
    web = by_name((await client.get(f"{double.urls[0]}{SERVICES}")).json())["web"]
    assert (web["InstanceCount"], web["Nodes"], web["Tags"]) == (2, ["prom-rio-01"], ["a", "b"])
    assert (web["ChecksPassing"], web["ChecksWarning"], web["ChecksCritical"]) == (1, 0, 1)
    double.state.register_service("prom-recife-02", "web-3", "web", port=80)
    again = by_name((await client.get(f"{double.urls[0]}{SERVICES}")).json())["web"]
    assert (again["InstanceCount"], again["Nodes"]) == (3, ["prom-recife-02", "prom-rio-01"])


async def test_ui_services_filter_applies_before_summarizing(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """The filter selects dumped instances; summaries count only what passed."""
    response = await client.get(
        f"{double.urls[0]}{SERVICES}", params={"filter": 'Node.Meta.site == "rio"'}
    )
    summaries = by_name(response.json())
    assert set(summaries) == {"node_exporter", "prometheus", "snmp_exporter"}
    assert summaries["node_exporter"]["Nodes"] == ["prom-rio-01", "prom-rio-02"]
    assert summaries["prometheus"]["InstanceCount"] == 1


async def test_blocking_ui_services_wakes_on_a_registration(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A blocking read of the service listing answers once a service is registered."""
    url = f"{double.urls[1]}{SERVICES}"
    first = await client.get(url)
    pending = asyncio.create_task(
        client.get(url, params={"index": str(index_of(first)), "wait": "60s"})
    )
    await double.state.hub.wait_for_waiters(1)
    double.state.register_service("prom-palmas-02", "grafana", "grafana", port=3000)
    response = await pending
    assert index_of(response) > index_of(first)
    assert by_name(response.json())["grafana"]["Nodes"] == ["prom-palmas-02"]


async def test_ui_nodes_shape_filter_and_blocking(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Every node as NodeInfo with lists, filterable, blocking on the catalog tables."""
    url = f"{double.urls[0]}{NODES}"
    double.state.join_node("bare-01", "127.40.0.1")
    response = await client.get(url)
    nodes = response.json()
    assert [n["Node"] for n in nodes] == sorted(double.state.nodes)
    assert all(list(n) == NODE_INFO_KEYS for n in nodes)
    server = next(n for n in nodes if n["Node"] == "consul-server-1")
    assert [s["Service"] for s in server["Services"]] == ["consul"]
    assert [c["CheckID"] for c in server["Checks"]] == ["serfHealth"]
    pending = asyncio.create_task(
        client.get(url, params={"index": str(index_of(response)), "wait": "60s"})
    )
    await double.state.hub.wait_for_waiters(1)
    double.state.register_service("prom-rio-01", "web", "web", port=80)
    woken = await pending
    assert index_of(woken) > index_of(response)
    bare = next(n for n in woken.json() if n["Node"] == "bare-01")
    assert bare["Services"] == []
    only = await client.get(url, params={"filter": 'Services.Service == "web"'})
    assert [n["Node"] for n in only.json()] == ["prom-rio-01"]
    no_datacenter = await client.get(url, params={"filter": 'Datacenter == "dc1"'})
    assert no_datacenter.status_code == 500
    assert no_datacenter.text.endswith('Selector "Datacenter" is not valid')


async def test_internal_endpoints_answer_stale_without_a_leader(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Without a leader the UI handlers retry as stale reads instead of failing."""
    await double.server_down(0)
    catalog = await client.get(f"{double.urls[1]}/v1/catalog/nodes")
    assert catalog.status_code == 500
    for path in (SERVICES, NODES):
        response = await client.get(f"{double.urls[1]}{path}")
        assert response.status_code == 200
        assert response.headers["X-Consul-KnownLeader"] == "false"


async def test_acl_filtering_empties_the_listing(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A token without read rights gets empty lists marked as filtered by ACLs."""
    double.filter_by_acls(True)
    for path in (SERVICES, NODES):
        response = await client.get(f"{double.urls[0]}{path}")
        assert response.json() == []
        assert response.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"


async def test_fault_switch_refuses_and_clear_restores(
    double: ConsulDouble, client: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    """The control API makes both endpoints 403 or 404; null and /faults/clear restore them."""
    urls = [f"{double.urls[2]}{path}" for path in (SERVICES, NODES)]
    denied = await control.post("/faults/internal-endpoints", json={"status": 403})
    assert denied.json()["internal_endpoints"] == 403
    for url in urls:
        response = await client.get(url)
        assert (response.status_code, response.text) == (403, "Permission denied")
    await control.post("/faults/internal-endpoints", json={"status": 404})
    for url in urls:
        response = await client.get(url)
        assert (response.status_code, response.text) == (404, "404 page not found\n")
    assert (await client.get(f"{double.urls[2]}/v1/catalog/nodes")).status_code == 200
    await control.post("/faults/internal-endpoints", json={"status": None})
    assert [(await client.get(url)).status_code for url in urls] == [200, 200]
    double.refuse_internal_endpoints(403)
    cleared = (await control.post("/faults/clear")).json()
    assert cleared["internal_endpoints"] is None
    assert [(await client.get(url)).status_code for url in urls] == [200, 200]
    bad = await control.post("/faults/internal-endpoints", json={"status": 500})
    assert bad.status_code == 400


async def test_internal_requests_are_counted_per_endpoint(
    double: ConsulDouble, client: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    """Requests to the UI endpoints, refused or not, count under their own templates."""
    await control.post("/counters/reset")
    await client.get(f"{double.urls[0]}{SERVICES}")
    double.refuse_internal_endpoints(404)
    await client.get(f"{double.urls[1]}{NODES}")
    await client.get(f"{double.urls[1]}{NODES}")
    counts = (await control.get("/counters")).json()["by_endpoint"]
    assert (counts[SERVICES], counts[NODES]) == (1, 2)
    assert double.counters.total(endpoint=NODES, server=1) == 2

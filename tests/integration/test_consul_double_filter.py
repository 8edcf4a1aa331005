"""The double's ``?filter=`` over HTTP: go-bexpr semantics, Consul's errors, unchanged indexes."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble, generate_inventory
from tests.integration.double_support import index_of

pytestmark = pytest.mark.timeout(30)

EVALUATOR_ERROR = "Failed to create boolean expression evaluator: "
FORWARDED = "rpc error making call: "


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A three-server double with six nodes over three sites."""
    inventory = generate_inventory(nodes=6, services=4, sites=3, seed=1)
    async with ConsulDouble(3, inventory=inventory) as running:
        yield running


async def filtered(
    client: httpx.AsyncClient, url: str, expression: str, **params: str
) -> httpx.Response:
    """GET ``url`` with ``?filter=expression`` (and other parameters)."""
    return await client.get(url, params={"filter": expression, **params})


async def test_health_state_any_filtered_to_serf_health_keeps_the_index(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """``CheckID == "serfHealth"`` answers only serfHealth checks with the unfiltered index."""
    double.state.register_check(
        "prom-palmas-01", "disk", "Disk", "warning", service_id="node_exporter"
    )
    url = f"{double.urls[0]}/v1/health/state/any"
    unfiltered = await client.get(url)
    only_serf = await filtered(client, url, 'CheckID == "serfHealth"')
    checks = only_serf.json()
    assert only_serf.status_code == 200
    assert {c["CheckID"] for c in checks} == {"serfHealth"}
    assert len(checks) == len(double.state.nodes) == 9
    assert "disk" in {c["CheckID"] for c in unfiltered.json()}
    assert index_of(only_serf) == index_of(unfiltered)


async def test_malformed_filter_is_refused_with_the_parser_error(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A malformed expression answers 500 with go-bexpr's parse error, as Consul does."""
    leader = f"{double.urls[0]}/v1/health/state/any"
    response = await filtered(client, leader, "CheckID ==")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith(EVALUATOR_ERROR + "1:11 (10): no match found, expected:")
    unquoted = await filtered(client, leader, "Address == 10.10.10.10 ")
    assert unquoted.text == EVALUATOR_ERROR + '1:17 (16): rule "number": Invalid number literal'
    unbalanced = await filtered(client, leader, '(CheckID == "a"')
    assert unbalanced.text.endswith('rule "grouping": Unmatched parentheses')


async def test_unknown_selector_is_refused_and_forwarded_errors_are_prefixed(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A selector naming no field is refused; a follower forwarding the read prefixes the error."""
    message = EVALUATOR_ERROR + 'Selector "Nope" is not valid'
    on_leader = await filtered(client, f"{double.urls[0]}/v1/catalog/nodes", 'Nope == "x"')
    assert (on_leader.status_code, on_leader.text) == (500, message)
    on_follower = await filtered(client, f"{double.urls[1]}/v1/catalog/nodes", 'Nope == "x"')
    assert (on_follower.status_code, on_follower.text) == (500, FORWARDED + message)
    stale = await filtered(client, f"{double.urls[1]}/v1/catalog/nodes", 'Nope == "x"', stale="")
    assert (stale.status_code, stale.text) == (500, message)
    nested = await filtered(client, f"{double.urls[0]}/v1/catalog/nodes", "Meta.site.x == a")
    assert nested.text == EVALUATOR_ERROR + 'Selector "Meta.site.x" is not valid'
    operator = await filtered(client, f"{double.urls[0]}/v1/health/node/x", "Status is empty")
    assert operator.text == (
        EVALUATOR_ERROR + 'Invalid match operator "Is Empty" for selector "Status"'
    )


async def test_operators_and_boolean_logic(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """``in``, ``contains``, ``matches``, ``and``, ``or``, ``not`` and parentheses select nodes."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    cases = {
        '"palmas" in Meta.site': {"prom-palmas-01", "prom-palmas-02"},
        'Meta.site contains "ec"': {"prom-recife-01", "prom-recife-02"},
        "Node matches `^prom-(rio|recife)-01$`": {"prom-rio-01", "prom-recife-01"},
        'Meta.site == rio and Node != "prom-rio-01"': {"prom-rio-02"},
        'Meta.site == rio or Meta.site == "recife"': {
            "prom-rio-01",
            "prom-rio-02",
            "prom-recife-01",
            "prom-recife-02",
        },
        'not (Meta.role == prom or Node contains "server-1")': {
            "consul-server-2",
            "consul-server-3",
        },
        '"site" not in Meta and Node not matches "-1$"': {"consul-server-2", "consul-server-3"},
        "Meta is empty": set(),
    }
    for expression, nodes in cases.items():
        response = await filtered(client, url, expression)
        assert response.status_code == 200, response.text
        assert {n["Node"] for n in response.json()} == nodes, expression


async def test_filters_on_service_and_node_lists(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """Catalog service, node-services, health service and health checks filter their items."""
    url = double.urls[0]
    catalog = await filtered(
        client, f"{url}/v1/catalog/service/consul", 'Node == "consul-server-2"'
    )
    assert [s["Node"] for s in catalog.json()] == ["consul-server-2"]
    services = await filtered(client, f"{url}/v1/catalog/node-services/prom-rio-01", "Port == 9090")
    assert [s["Service"] for s in services.json()["Services"]] == ["prometheus"]
    healthy = await filtered(
        client,
        f"{url}/v1/health/service/consul",
        'Checks.Status == critical or Node.Node == "consul-server-1"',
    )
    assert [e["Node"]["Node"] for e in healthy.json()] == ["consul-server-1"]
    names = await filtered(client, f"{url}/v1/catalog/services", "ServicePort == 8300")
    assert list(names.json()) == ["consul"]
    checks = await filtered(client, f"{url}/v1/health/checks/consul", "ServiceTags is empty")
    assert checks.json() == []


async def test_filtered_blocking_query_wakes_on_any_change_of_its_table(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """A filtered blocking query answers when the checks table moves, even if its items do not."""
    url = f"{double.urls[0]}/v1/health/state/any"
    expression = 'CheckID == "serfHealth"'
    first = await filtered(client, url, expression)
    pending = asyncio.create_task(
        filtered(client, url, expression, index=str(index_of(first)), wait="60s")
    )
    await double.state.hub.wait_for_waiters(1)
    double.state.register_check("prom-rio-01", "disk", "Disk", "passing")
    woken = await pending
    assert index_of(woken) > index_of(first)
    assert woken.json() == first.json()


async def test_empty_filter_is_no_filter(double: ConsulDouble, client: httpx.AsyncClient) -> None:
    """``?filter=`` with nothing in it answers the whole list, as Consul ignores it."""
    url = f"{double.urls[0]}/v1/catalog/nodes"
    whole = await client.get(url)
    assert (await filtered(client, url, "")).json() == whole.json()

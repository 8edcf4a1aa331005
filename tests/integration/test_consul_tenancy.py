"""Namespace and partition through the shared client to the Consul double (as Consul CE answers)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble, generate_inventory
from services.config import ConsulSettings
from services.consul import ConsulClient, ConsulHTTPError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A one-server double with a few nodes."""
    async with ConsulDouble(servers=1, inventory=generate_inventory(nodes=4, seed=3)) as running:
        yield running


def _client(double: ConsulDouble, **env: str) -> ConsulClient:
    settings = ConsulSettings.model_validate(
        {"CONSUL_HTTP_ADDR": double.urls[0].removeprefix("http://"), **env}
    )
    return ConsulClient(settings)


async def test_without_namespace_or_partition_every_read_answers(double: ConsulDouble) -> None:
    """With neither set, no ns or partition is sent and the reads answer."""
    async with _client(double) as consul:
        assert len((await consul.members()).data) >= 4
        assert "consul" in (await consul.catalog_services()).data


async def test_namespace_reaches_consul_which_refuses_it_without_enterprise(
    double: ConsulDouble,
) -> None:
    """CONSUL_NAMESPACE arrives as ns=: CE refuses it where it reads it, ignores it elsewhere."""
    async with _client(double, CONSUL_NAMESPACE="team-a") as consul:
        assert len((await consul.members()).data) >= 4  # node-level: reads only the partition
        await consul.event_list("nodeview-resync")
        with pytest.raises(ConsulHTTPError) as refused:
            await consul.catalog_services()
    assert refused.value.status == 400
    assert 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise' in str(
        refused.value
    )


async def test_partition_reaches_consul_which_refuses_it_without_enterprise(
    double: ConsulDouble,
) -> None:
    """CONSUL_PARTITION arrives as partition= on node-level reads too; user events ignore it."""
    async with _client(double, CONSUL_PARTITION="eu") as consul:
        await consul.event_list("nodeview-resync")
        with pytest.raises(ConsulHTTPError) as refused:
            await consul.members()
    assert refused.value.status == 400
    assert "Partitions are a Consul Enterprise feature" in str(refused.value)


async def test_double_refuses_tenancy_headers_and_allows_empty_values(
    double: ConsulDouble, client: httpx.AsyncClient
) -> None:
    """X-Consul-Namespace is refused like ns=; an empty ns= is no namespace, as in Consul."""
    base = double.urls[0]
    header = await client.get(f"{base}/v1/kv/a", headers={"X-Consul-Namespace": "x"})
    assert (header.status_code, header.text) == (
        400,
        'Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature',
    )
    empty = await client.get(f"{base}/v1/catalog/services", params={"ns": "", "partition": ""})
    assert empty.status_code == 200
    status = await client.get(f"{base}/v1/status/leader", params={"ns": "x", "partition": "y"})
    assert status.status_code == 200

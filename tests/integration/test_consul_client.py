"""The shared Consul client against the Consul double: fallback, retry, timeout, bounds, token."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from devstack.consul_double import ConsulDouble, generate_inventory
from services.config import ConsulSettings
from services.consul import (
    OUTAGE_BACKOFF_MIN_SECONDS,
    ConsulACLDenied,
    ConsulClient,
    ConsulTimeout,
    ConsulUnavailable,
)

pytestmark = pytest.mark.timeout(60)
TOKEN = "client-test-token"


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A two-server double with 30 nodes and an ACL token."""
    async with ConsulDouble(
        servers=2, acl_token=TOKEN, inventory=generate_inventory(nodes=30, services=6, seed=2)
    ) as running:
        yield running


def _settings(double: ConsulDouble, **env: str) -> ConsulSettings:
    return ConsulSettings.model_validate(
        {
            "CONSUL_SERVERS": ",".join(double.urls),
            "CONSUL_TOKEN": TOKEN,
            "CONSUL_RETRY_DELAY": "0.01",
            **env,
        }
    )


async def test_falls_back_to_the_second_server_when_the_first_is_down(double: ConsulDouble) -> None:
    """With server 0 down, reads succeed on server 1 and the client says which one answered."""
    await double.server_down(0)
    async with ConsulClient(_settings(double, CONSUL_STALE="true")) as client:
        response = await client.catalog_nodes()
    assert len(response.data) >= 30
    assert response.server == double.urls[1].removeprefix("http://")
    assert client.active_server == response.server
    assert double.counters.total(server=1) >= 1


async def test_retries_once_after_a_transient_5xx(double: ConsulDouble) -> None:
    """A single 500 from every server is retried once (CONSUL_MAX_RETRIES=1) and succeeds."""
    double.fail_requests(500, count=2)
    async with ConsulClient(_settings(double, CONSUL_MAX_RETRIES="1")) as client:
        response = await client.catalog_services()
    assert "consul" in response.data
    assert double.counters.total(endpoint="/v1/catalog/services") == 3


async def test_gives_up_after_the_retries_with_a_named_error(double: ConsulDouble) -> None:
    """Every server failing on every try raises ConsulUnavailable, never a silent empty answer."""
    double.fail_requests(503)
    async with ConsulClient(_settings(double, CONSUL_MAX_RETRIES="1")) as client:
        with pytest.raises(ConsulUnavailable):
            await client.catalog_services()
    assert double.counters.total(endpoint="/v1/catalog/services") == 4


async def test_timeout_comes_from_the_environment(double: ConsulDouble) -> None:
    """CONSUL_CATALOG_TIMEOUT bounds each read: a slow Consul raises ConsulTimeout in time."""
    double.set_latency(3.0)
    settings = _settings(double, CONSUL_CATALOG_TIMEOUT="0.2", CONSUL_MAX_RETRIES="0")
    assert settings.consul_catalog_timeout == 0.2
    async with ConsulClient(settings) as client:
        # Consul answers after 3 s: only a 0.2 s timeout turns that into ConsulTimeout.
        with pytest.raises(ConsulTimeout):
            await client.members()


async def test_concurrency_never_exceeds_the_semaphore_limit(double: ConsulDouble) -> None:
    """Sixty parallel reads with CONSUL_SEMAPHORE_LIMIT=3 never have more than 3 in flight."""
    double.set_latency(0.05)
    double.counters.reset()
    nodes = double.state.node_names()
    async with ConsulClient(_settings(double, CONSUL_SEMAPHORE_LIMIT="3")) as client:
        await asyncio.gather(*(client.node_services(n) for n in nodes[:60]))
    assert double.counters.max_in_flight == 3


async def test_the_acl_token_is_sent_and_required(double: ConsulDouble) -> None:
    """With the token reads work; without it Consul's 403 becomes ConsulACLDenied (no fallback)."""
    async with ConsulClient(_settings(double)) as client:
        assert (await client.kv_get("skills/eye/metadata/sites")).data is not None
    settings = ConsulSettings.model_validate({"CONSUL_SERVERS": ",".join(double.urls)})
    double.counters.reset()
    async with ConsulClient(settings) as client:
        with pytest.raises(ConsulACLDenied):
            await client.catalog_nodes()
    assert double.counters.total() == 1


async def test_blocking_query_returns_when_the_catalog_changes(double: ConsulDouble) -> None:
    """A blocking read on the node list returns early, with a higher index, when a node joins."""
    async with ConsulClient(_settings(double)) as client:
        first = await client.catalog_nodes()
        assert first.index is not None
        waiting = asyncio.create_task(client.catalog_nodes(index=first.index, wait=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        double.state.join_node("blocking-joiner", "127.80.0.1")
        answer = await asyncio.wait_for(waiting, 5)
    assert answer.index is not None
    assert answer.index > first.index
    assert answer.known_leader is True
    assert "blocking-joiner" in {n["Node"] for n in answer.data}


async def test_reads_pause_while_every_server_fails_and_resume_after(double: ConsulDouble) -> None:
    """After all servers failed, reads fail fast without requests, then probe and recover."""
    double.fail_requests(500)
    async with ConsulClient(_settings(double, CONSUL_MAX_RETRIES="0")) as client:
        with pytest.raises(ConsulUnavailable):
            await client.catalog_services()
        sent = double.counters.total(endpoint="/v1/catalog/services")
        assert sent == 2
        for _ in range(5):
            with pytest.raises(ConsulUnavailable, match="recently"):
                await client.catalog_services()
        assert double.counters.total(endpoint="/v1/catalog/services") == sent
        double.clear_faults()
        await asyncio.sleep(OUTAGE_BACKOFF_MIN_SECONDS + 0.1)
        assert (await client.catalog_services()).data
        double.fail_requests(500)
        with pytest.raises(ConsulUnavailable):
            await client.catalog_services()
        double.clear_faults()
        await asyncio.sleep(OUTAGE_BACKOFF_MIN_SECONDS + 0.1)
        assert (await client.catalog_services()).data


async def test_a_timed_out_read_does_not_pause_the_others(double: ConsulDouble) -> None:
    """One endpoint timing out (a slow node) leaves every other read going."""
    double.set_latency(2.0, path_prefix="/v1/catalog/node-services/")
    async with ConsulClient(
        _settings(double, CONSUL_MAX_RETRIES="0", CONSUL_CATALOG_TIMEOUT="0.2")
    ) as client:
        node = next(iter(double.state.nodes))
        with pytest.raises(ConsulTimeout):
            await client.node_services(node)
        assert (await client.catalog_services()).data


async def test_reads_queued_during_an_outage_are_not_sent(double: ConsulDouble) -> None:
    """A fan-out of reads against a failing Consul sends only what was in flight when it opened."""
    double.fail_requests(500)
    settings = _settings(double, CONSUL_MAX_RETRIES="0", CONSUL_SEMAPHORE_LIMIT="2")
    async with ConsulClient(settings) as client:
        results = await asyncio.gather(
            *(client.catalog_services() for _ in range(30)), return_exceptions=True
        )
    assert all(isinstance(r, ConsulUnavailable) for r in results)
    # Two reads in flight per slot, plus the read that paused the rest finishing its own list.
    assert double.counters.total(endpoint="/v1/catalog/services") <= 6


async def test_a_blocking_query_on_a_blackholed_server_moves_to_the_next(
    double: ConsulDouble,
) -> None:
    """Server 0 accepts but never answers: its blocking query is given up, server 1 answers."""
    async with ConsulClient(_settings(double)) as client:
        first = await client.catalog_nodes()
        assert first.index is not None
        double.set_latency(600.0, server=0)
        waiting = asyncio.create_task(client.catalog_nodes(index=first.index, wait=300))
        double.state.join_node("after-blackhole", "127.81.0.1")
        answer = await asyncio.wait_for(waiting, 30)
        assert "after-blackhole" in {n["Node"] for n in answer.data}
        assert answer.server == double.urls[1].removeprefix("http://")
        double.clear_faults()

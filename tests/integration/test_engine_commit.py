"""The enricher engine against the Consul double and a view store that fails on demand."""

import asyncio
from collections.abc import AsyncIterator, Mapping

import nats.errors
import pytest

from contracts.events import ConsulChange
from contracts.views import Heartbeat, NodeView, ViewMeta
from devstack.consul_double import ConsulDouble, generate_inventory
from services.config import ConsulSettings
from services.consul import ConsulClient, ConsulError
from services.enricher import degraded
from services.enricher.engine import Engine, EngineSettings
from services.enricher.planner import ResyncReason

pytestmark = pytest.mark.timeout(60)
NODES = 40


class FlakyStore:
    """A ``ViewStore`` in memory that refuses every view write after ``allowed`` of them."""

    def __init__(self) -> None:
        self.views: dict[str, NodeView] = {}
        self.meta: ViewMeta | None = None
        self.allowed: int | None = None
        self.attempts = 0

    async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
        """Keep the view, or fail like a lost NATS acknowledgement."""
        self.attempts += 1
        if self.allowed is not None:
            if self.allowed <= 0:
                raise nats.errors.TimeoutError
            self.allowed -= 1
        self.views[view.node] = view

    async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
        """Forget the view."""
        self.views.pop(node, None)

    async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
        """Keep the meta entry."""
        self.meta = meta

    async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Heartbeats are not looked at here."""


@pytest.fixture
async def consul() -> AsyncIterator[tuple[ConsulDouble, ConsulClient]]:
    """A one-server double with ``NODES`` nodes and a client on it."""
    inventory = generate_inventory(nodes=NODES, services=4, seed=5)
    async with ConsulDouble(1, inventory=inventory) as double:
        settings = ConsulSettings.model_validate({"CONSUL_SERVERS": double.urls[0]})
        async with ConsulClient(settings) as client:
            yield double, client


def _engine(client: ConsulClient, store: FlakyStore) -> Engine:
    settings = EngineSettings(
        sites_key="skills/eye/metadata/sites",
        resync_event="nodeview-resync",
        unmapped_label="Nao mapeado",
    )
    return Engine(client, store, settings)


async def test_failed_writes_stay_unwritten_and_go_out_with_the_next_commit(
    consul: tuple[ConsulDouble, ConsulClient],
) -> None:
    """A commit failing part-way keeps the rest unwritten, stops early, and the next one heals."""
    double, client = consul
    store = FlakyStore()
    store.allowed = 5
    engine = _engine(client, store)
    with pytest.raises(nats.errors.TimeoutError):
        await engine.resync(ResyncReason.START)
    assert len(store.views) == 5
    assert len(engine.unwritten) == len(double.state.nodes) - 5
    assert set(engine.published) == set(store.views)
    assert store.attempts < len(double.state.nodes)
    assert store.meta is None
    store.allowed = None
    result = await engine.retry_pending() or await engine.resync(ResyncReason.PERIODIC)
    assert result.written == len(double.state.nodes) - 5
    assert set(store.views) == set(double.state.nodes)
    assert not engine.unwritten
    assert store.meta is not None


async def test_a_failed_members_read_is_retried_until_statuses_are_known(
    consul: tuple[ConsulDouble, ConsulClient],
) -> None:
    """A leave whose members read failed gets its "left" from the retry, not a later change."""
    double, client = consul
    store = FlakyStore()
    engine = _engine(client, store)
    await engine.resync(ResyncReason.START)
    leaving, other = sorted(n for n, v in store.views.items() if v.type == "client")[:2]
    double.state.leave_node(leaving)
    nodes, health = await client.catalog_nodes(), await client.serf_health()
    double.fail_requests(500)
    changes = [
        ConsulChange(
            watch_type=kind, consul_index=answer.index or 0, source="watcher", payload=answer.data
        )
        for kind, answer in (("nodes", nodes), ("checks", health))
    ]
    await engine.handle(changes)
    assert engine.pending_members
    assert degraded.MEMBERS in {item.item for item in engine.degradation.items()}
    assert store.views[leaving].status == "alive", "the last members read still says alive"
    double.clear_faults()
    await client_recovered(client)
    await engine.retry_pending()
    assert not engine.pending_members
    assert store.views[leaving].status == "dead"
    double.state.fail_node(other)
    await engine.retry_pending()
    assert store.views[other].status == "alive", "no read is retried once one succeeded"


async def client_recovered(client: ConsulClient) -> None:
    """Wait until the client's pause after an outage is over (a read succeeds)."""
    for _ in range(200):
        try:
            await client.members()
        except ConsulError:
            await asyncio.sleep(0.05)
        else:
            return
    raise AssertionError("Consul client never recovered")

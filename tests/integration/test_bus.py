"""The NATS adapter against a real nats-server: streams, dedup, KV writes and the bucket watch."""

import asyncio
from collections.abc import AsyncIterator, Mapping

import nats
import pytest
from nats.aio.client import Client

from contracts import subjects
from contracts.events import ConsulChange, utc_now
from contracts.views import Heartbeat, NodeView, ViewMeta
from services import bus
from services.config import NatsSettings
from services.enricher.leader import LEASE_SAFETY, Leadership, LeadershipLost
from services.enricher.store import FencedStore, KvViewStore


def _settings(url: str) -> NatsSettings:
    return NatsSettings.model_validate({"NATS_URL": url})


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A connection to a clean JetStream server with nodeview's streams and bucket created."""
    connection = await bus.connect(_settings(nats_url), "test")
    await bus.ensure_streams(connection.jetstream(), _settings(nats_url))
    try:
        yield connection
    finally:
        await connection.close()


def _change(index: int, payload: object = None) -> ConsulChange:
    return ConsulChange(
        watch_type="nodes", consul_index=index, source="watcher", payload=payload or []
    )


@pytest.mark.timeout(30)
async def test_publish_change_dedups_by_type_key_and_index(nc: Client, nats_url: str) -> None:
    """The same change published twice is stored once; another index is stored again."""
    js = nc.jetstream()
    await bus.ensure_streams(js, _settings(nats_url))  # idempotent
    first = await bus.publish_change(nc, js, _change(7))
    again = await bus.publish_change(nc, js, _change(7))
    other = await bus.publish_change(nc, js, _change(8))
    assert not first.duplicate
    assert again.duplicate
    assert not other.duplicate
    info = await js.stream_info(subjects.STREAM_EVENTS)
    assert info.state.messages == 2
    assert info.config.max_bytes == _settings(nats_url).nats_stream_max_bytes
    dead = await js.stream_info(subjects.STREAM_DEAD_LETTER)
    assert dead.config.max_bytes == bus.DEAD_LETTER_MAX_BYTES


@pytest.mark.timeout(30)
async def test_a_new_change_reusing_an_index_is_stored_and_repeats_still_collapse(
    nc: Client,
) -> None:
    """After an index reset a different payload at a used index is kept; repeats of each are not."""
    js = nc.jetstream()
    before = [{"Node": "a", "Address": "127.0.0.1"}]
    after = [*before, {"Node": "b", "Address": "127.0.0.2"}]
    first = await bus.publish_change(nc, js, _change(9, before))
    reused = await bus.publish_change(nc, js, _change(9, after))
    again_first = await bus.publish_change(nc, js, _change(9, before))
    again_reused = await bus.publish_change(nc, js, _change(9, after))
    assert not first.duplicate
    assert not reused.duplicate
    assert reused.stream_seq != first.stream_seq
    assert again_first.duplicate
    assert again_reused.duplicate
    assert again_reused.stream_seq == reused.stream_seq
    stored = await js.get_msg(subjects.STREAM_EVENTS, reused.stream_seq)
    assert stored.headers is not None
    digest = _change(9, after).payload_digest()
    assert stored.headers[subjects.HEADER_MSG_ID] == f"nodes:-:9:{digest}"
    info = await js.stream_info(subjects.STREAM_EVENTS)
    assert info.state.messages == 2


@pytest.mark.timeout(30)
async def test_large_change_is_compressed_and_decodes_back(nc: Client) -> None:
    """A payload above the compression threshold travels gzip-compressed and decodes intact."""
    js = nc.jetstream()
    nodes = [
        {"Node": f"node-{i:05d}", "Address": f"10.0.{i // 250}.{i % 250}"} for i in range(5000)
    ]
    change = _change(9, nodes)
    await bus.publish_change(nc, js, change)
    sub = await js.pull_subscribe("nodeview.consul.>", durable="t", stream=subjects.STREAM_EVENTS)
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.headers
    assert msg.headers[subjects.HEADER_CONTENT_ENCODING] == "gzip"
    assert len(msg.data) < len(change.model_dump_json())
    decoded = ConsulChange.model_validate_json(bus.decode_body(msg.data, msg.headers))
    assert decoded.payload == nodes


@pytest.mark.timeout(30)
async def test_bucket_watch_replays_latest_then_marks_caught_up_then_follows(nc: Client) -> None:
    """The watcher yields each key's latest value, then None, then live puts and deletes."""
    js = nc.jetstream()
    await bus.kv_put(js, "node.a", b"1")
    await bus.kv_put(js, "node.a", b"2")
    await bus.kv_put(js, "node.b", b"3", {"traceparent": "00-abc-def-01"})
    watch = bus.watch_nodes_bucket(js)
    replayed = {}
    async for update in watch:
        if update is None:
            break
        replayed[update.key] = (update.value, dict(update.headers))
    assert replayed["node.a"][0] == b"2"
    assert replayed["node.b"] == (b"3", {"traceparent": "00-abc-def-01"})
    await bus.kv_delete(js, "node.a")
    live = await asyncio.wait_for(anext(watch), 5)
    assert live is not None
    assert live.key == "node.a"
    assert live.deleted
    await watch.aclose()


@pytest.mark.timeout(30)
async def test_bucket_watch_on_empty_bucket_is_caught_up_at_once(nc: Client) -> None:
    """An empty bucket yields None first, so a new API replica becomes ready."""
    js = nc.jetstream()
    watch = bus.watch_nodes_bucket(js)
    assert await asyncio.wait_for(anext(watch), 5) is None
    await watch.aclose()


@pytest.mark.timeout(30)
async def test_only_one_enricher_holds_the_lock_and_release_hands_it_over(nc: Client) -> None:
    """A second contender waits while the first holds the lock, and gets it once released."""
    js = nc.jetstream()
    await bus.ensure_bucket(js, subjects.BUCKET_ENRICHER_LOCK, replicas=1, ttl=3)
    first = Leadership(js, "first", ttl=3)
    second = Leadership(js, "second", ttl=3)
    await first.acquire()
    contender = asyncio.create_task(second.acquire())
    await asyncio.sleep(1.0)
    assert not contender.done()
    await first.refresh()
    await first.release()
    await asyncio.wait_for(contender, 5)
    assert second.held
    first._revision = 1
    with pytest.raises(LeadershipLost):
        await first.refresh()


@pytest.mark.timeout(30)
async def test_a_lost_lock_bucket_ends_leadership_and_is_recreated_by_the_next_acquire(
    nats_url: str,
) -> None:
    """NATS losing its store drops the lock bucket: refresh says lost, acquire recreates it."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await bus.ensure_bucket(js, subjects.BUCKET_ENRICHER_LOCK, replicas=1, ttl=3)
    holder = Leadership(js, "holder", ttl=3)
    await holder.acquire()
    await js.delete_key_value(subjects.BUCKET_ENRICHER_LOCK)
    with pytest.raises(LeadershipLost):
        await holder.refresh()
    assert not holder.held
    await asyncio.wait_for(holder.acquire(), 10)
    assert holder.held
    kv = await js.key_value(subjects.BUCKET_ENRICHER_LOCK)
    assert (await kv.get(subjects.KEY_ENRICHER_LOCK)).value == b"holder"
    await nc.close()


@pytest.mark.timeout(30)
async def test_a_lease_that_may_have_expired_fences_every_write(nc: Client) -> None:
    """Past its lease (no refresh within the TTL), an enricher writes nothing until it refreshes."""
    js = nc.jetstream()
    await bus.ensure_bucket(js, subjects.BUCKET_ENRICHER_LOCK, replicas=1, ttl=10)
    now = [1000.0]
    leadership = Leadership(js, "fenced", ttl=10, clock=lambda: now[0])
    await leadership.acquire()
    writes: list[str] = []

    class Recording:
        """A view store that records what reached it."""

        async def put_view(self, view: NodeView, headers: Mapping[str, str]) -> None:
            writes.append(view.node)

        async def delete_view(self, node: str, headers: Mapping[str, str]) -> None:
            writes.append(node)

        async def put_meta(self, meta: ViewMeta, headers: Mapping[str, str]) -> None:
            writes.append("meta")

        async def put_heartbeat(self, heartbeat: Heartbeat) -> None:
            writes.append("heartbeat")

    store = FencedStore(Recording(), leadership.check)
    view = NodeView(node="n1", addr="127.0.0.1", site_name="x", updated_at=utc_now())
    await store.put_view(view, {})
    now[0] += 10 * LEASE_SAFETY
    with pytest.raises(LeadershipLost):
        await store.put_view(view, {})
    with pytest.raises(LeadershipLost):
        await store.put_meta(ViewMeta(generation=1, synced_at=utc_now()), {})
    assert writes == ["n1"]
    await leadership.refresh()
    await store.delete_view("n1", {})
    assert writes == ["n1", "n1"]


@pytest.mark.timeout(30)
async def test_a_write_over_another_enrichers_newer_entry_is_refused(nc: Client) -> None:
    """Expected-sequence writes: once another enricher wrote a key, a stale writer steps down."""
    js = nc.jetstream()
    old, new = KvViewStore(js), KvViewStore(js)
    view = NodeView(node="n1", addr="127.0.0.1", site_name="x", updated_at=utc_now())
    await old.load()
    await old.put_view(view, {})
    await old.put_view(view.model_copy(update={"addr": "127.0.0.2"}), {})
    views, _ = await new.load()
    assert views["n1"].addr == "127.0.0.2"
    await new.put_view(view.model_copy(update={"addr": "127.0.0.3"}), {})
    with pytest.raises(LeadershipLost):
        await old.put_view(view.model_copy(update={"addr": "127.0.0.9"}), {})
    with pytest.raises(LeadershipLost):
        await old.delete_view("n1", {})
    views, _ = await new.load()
    assert views["n1"].addr == "127.0.0.3"
    await new.delete_view("n1", {})

"""The relay's watch loop over a scripted fetch: index rules per watch type, what is published."""

import asyncio
from collections.abc import Awaitable, Callable

from contracts.events import ConsulChange
from services.consul import ConsulResponse
from services.relay.watcher import Watch, WatchStats, run_watch


def _answers(
    indexes: list[int], payload: object
) -> tuple[list[int], Callable[[int, float], Awaitable[ConsulResponse]], asyncio.Event]:
    """A fetch answering ``indexes`` in turn (the last one sets the stop), and what it was sent."""
    sent: list[int] = []
    stop = asyncio.Event()
    pending = list(indexes)

    last = [0]

    async def fetch(index: int, wait: float) -> ConsulResponse:
        sent.append(index)
        if pending:
            last[0] = pending.pop(0)
        if not pending:
            stop.set()
        await asyncio.sleep(0)
        return ConsulResponse(payload, last[0], True, 0, "127.0.0.1:8500")

    return sent, fetch, stop


async def _run(watch: Watch, stop: asyncio.Event) -> tuple[list[ConsulChange], WatchStats]:
    published: list[ConsulChange] = []

    async def publish(change: ConsulChange) -> None:
        published.append(change)

    stats = WatchStats()
    await run_watch(
        watch, publish, wait=1.0, min_interval=0.0, backoff_max=0.01, stats=stats, stop=stop
    )
    return published, stats


async def test_user_event_index_is_opaque_never_a_reset() -> None:
    """A lower event-list index is a new event (IDs hash to indexes), not a Consul reset."""
    sent, fetch, stop = _answers([900, 40, 40, 7], [])
    watch = Watch("event", fetch, key="nodeview-resync", opaque_index=True)
    published, stats = await _run(watch, stop)
    assert sent == [0, 900, 40, 40]
    assert [c.consul_index for c in published] == [900, 40, 7]
    assert stats.resets == 0


async def test_a_catalog_index_going_backwards_resets_to_zero() -> None:
    """A lower catalog index is a reset: the next query starts from 0 and it is counted."""
    sent, fetch, stop = _answers([900, 40, 40], [])
    published, stats = await _run(Watch("nodes", fetch), stop)
    assert sent == [0, 900, 0]
    assert [c.consul_index for c in published] == [900, 40]
    assert stats.resets == 1


async def test_a_rejected_answer_asks_for_a_resync_instead_of_moving_on_silently() -> None:
    """An answer the relay cannot pass on is a gap: it asks the enricher for a resync."""
    _sent, fetch, stop = _answers([50, 51], {"not": "a list of nodes"})
    asked: list[str] = []

    async def request_resync(reason: str) -> None:
        asked.append(reason)

    published: list[ConsulChange] = []

    async def publish(change: ConsulChange) -> None:
        published.append(change)

    await run_watch(
        Watch("nodes", fetch),
        publish,
        request_resync=request_resync,
        wait=1.0,
        min_interval=0.0,
        backoff_max=0.01,
        stats=WatchStats(),
        stop=stop,
    )
    assert published == []
    assert asked == ["relay: nodes answer rejected"] * 2

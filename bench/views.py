"""Every API replica's event stream at once: a change is visible when all of them showed it."""

import asyncio
from typing import Any

from bench.sse import NODE_EVENTS, Predicate, SseWatch


class Views:
    """One :class:`SseWatch` per API replica."""

    def __init__(self, urls: list[str]) -> None:
        """Bind to the replicas' base URLs; :meth:`start` connects to each."""
        self.watches = [SseWatch(url) for url in urls]

    async def start(self) -> "Views":
        """Connect to every replica and wait for each first snapshot."""
        await asyncio.gather(*(watch.start() for watch in self.watches))
        return self

    async def stop(self) -> None:
        """Disconnect from every replica."""
        await asyncio.gather(*(watch.stop() for watch in self.watches))

    @property
    def first(self) -> SseWatch:
        """The first replica's watch (scenarios that follow one replica)."""
        return self.watches[0]

    def expect(
        self, predicate: Predicate, events: tuple[str, ...] = NODE_EVENTS
    ) -> "list[asyncio.Future[float]]":
        """Register a wait on every replica (before making the change)."""
        return [watch.expect(predicate, events) for watch in self.watches]

    async def visible(self, futures: "list[asyncio.Future[float]]", seconds: float) -> float | None:
        """Time (``time.time``) the last replica showed the change; None if one did not in time."""
        arrivals: list[Any] = await asyncio.gather(
            *(
                watch.settle(future, seconds)
                for watch, future in zip(self.watches, futures, strict=True)
            )
        )
        if any(arrival is None for arrival in arrivals):
            return None
        return float(max(arrivals))

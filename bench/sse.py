"""Follows the API's Server-Sent Events and timestamps each node change as it arrives."""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

Predicate = Callable[[dict[str, Any]], bool]

CONNECT_TIMEOUT_SECONDS = 30.0


NODE_EVENTS = ("node",)
"""Events a wait matches by default: a node added or changed."""


@dataclass
class _Waiter:
    """A pending wait for a node event (of one of ``events``) matching ``predicate``."""

    predicate: Predicate
    future: "asyncio.Future[float]"
    events: tuple[str, ...] = NODE_EVENTS


class SseWatch:
    """One SSE connection; every ``node`` event is kept with its arrival time (``time.time``).

    A ``node_deleted`` event reaches only the waits that ask for it, as an entry with
    ``deleted: True`` beside the node's name and address.
    """

    def __init__(self, url: str) -> None:
        """Bind to the API base URL; :meth:`start` connects."""
        self.url = url + "/api/v1/nodes/events"
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.snapshots = 0
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._listeners: list[Callable[[float, dict[str, Any]], None]] = []

    async def start(self) -> "SseWatch":
        """Connect and wait for the first snapshot."""
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT_SECONDS)
        return self

    async def stop(self) -> None:
        """Disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def unlisten(self, callback: Callable[[float, dict[str, Any]], None]) -> None:
        """Stop calling a callback given to :meth:`listen`."""
        self._listeners.remove(callback)

    def listen(self, callback: Callable[[float, dict[str, Any]], None]) -> None:
        """Call ``callback(arrival, entry)`` for every node event from now on.

        A ``node_deleted`` event comes as an entry with ``deleted: True``.
        """
        self._listeners.append(callback)

    async def _run(self) -> None:
        """Read the stream: ``event:`` and ``data:`` lines, a blank line ends an event."""
        timeout = httpx.Timeout(CONNECT_TIMEOUT_SECONDS, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout) as http,
            http.stream("GET", self.url) as response,
        ):
            event, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and event:
                    self._dispatch(event, data)
                    event, data = "", ""

    def _dispatch(self, event: str, data: str) -> None:
        """Record one event and wake the waits it satisfies."""
        arrival = time.time()
        if event == "snapshot":
            self.snapshots += 1
            self._connected.set()
            return
        if event == "node_deleted":
            entry = {**json.loads(data), "deleted": True}
        elif event == "node":
            entry = json.loads(data)
            self.events.append((arrival, entry))
        else:
            return
        for callback in self._listeners:
            callback(arrival, entry)
        self._wake(event, arrival, entry)

    def _wake(self, event: str, arrival: float, entry: dict[str, Any]) -> None:
        """Resolve the waits for ``event`` that ``entry`` satisfies."""
        for waiter in list(self._waiters):
            if event not in waiter.events:
                continue
            if not waiter.future.done() and waiter.predicate(entry):
                waiter.future.set_result(arrival)
                self._waiters.remove(waiter)

    def expect(
        self, predicate: Predicate, events: tuple[str, ...] = NODE_EVENTS
    ) -> "asyncio.Future[float]":
        """Register a wait (before making the change) for the next matching node event."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(predicate, future, events))
        return future

    async def settle(self, future: "asyncio.Future[float]", seconds: float) -> float | None:
        """Arrival time of an expected event; None (and the wait dropped) on timeout."""
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            self._waiters = [w for w in self._waiters if w.future is not future]
            return None

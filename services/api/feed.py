"""Keeps a replica's view current: replays the KV bucket, then applies and fans out updates."""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from contracts import subjects
from services import bus, metrics
from services.api.view import Delta, ViewState
from services.telemetry import extract_context, tracer

log = logging.getLogger("nodeview.api")

SHUTDOWN_EVENT = "shutdown"
"""Last event of a stream when the replica stops: clients reconnect to another replica."""

SUBSCRIBER_QUEUE_SIZE = 10_000
"""Deltas queued for one SSE client before it is dropped (it reconnects to a fresh snapshot)."""


class Subscriber:
    """One SSE client: a bounded queue of ``(event, data)`` pairs."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self.dropped = False

    def close(self) -> None:
        """End the stream with a final ``shutdown`` event (the replica is stopping)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((SHUTDOWN_EVENT, '{"reason":"the replica is stopping"}'))

    def send(self, event: str, data: str) -> bool:
        """Queue an event; return False when the client is too slow and must be dropped."""
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:
            return False
        return True


class Feed:
    """Owns the replica's ``ViewState`` and the task that keeps it current."""

    def __init__(self, js: JetStreamContext, stale_after: float) -> None:
        self._js = js
        self._stale_after = stale_after
        self.state = ViewState(stale_after)
        self.ready = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        self.changed = asyncio.Condition()
        self._restart = asyncio.Event()
        self.replays = 0

    def request_replay(self) -> None:
        """Replay the bucket again (after a reconnect): the current view is kept until done."""
        self._restart.set()

    async def run(self) -> None:
        """Replay and follow the bucket forever, starting over when asked or on errors."""
        while True:
            self._restart.clear()
            follow = asyncio.create_task(self._follow())
            restart = asyncio.create_task(self._restart.wait())
            done, _ = await asyncio.wait({follow, restart}, return_when=asyncio.FIRST_COMPLETED)
            for task in (follow, restart):
                task.cancel()
            await asyncio.gather(follow, restart, return_exceptions=True)
            failure = None if follow.cancelled() else follow.exception()
            if follow in done and failure is not None:
                log.warning(
                    "kv watch failed; replaying again",
                    extra={"event": "api.watch_failed", "reason": str(failure)},
                )
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        fresh = ViewState(self._stale_after)
        started = time.perf_counter()
        try:
            updates = bus.watch_nodes_bucket(self._js)
            async for update in updates:
                if update is None:
                    break
                fresh.apply(update.key, update.value, update.deleted)
            else:
                return
        except (NotFoundError, nats.errors.Error) as exc:
            raise ConnectionError(f"nodes bucket unavailable: {exc}") from exc
        if fresh.meta is None and self.state.meta is not None:
            # The bucket came back empty (NATS lost it): keep serving the last view until
            # the enricher has written a new one, instead of an empty inventory.
            log.warning(
                "bucket replayed empty; keeping the last view",
                extra={"event": "api.empty_replay", "nodes": len(self.state.nodes)},
            )
            async for update in updates:
                if update is not None:
                    fresh.apply(update.key, update.value, update.deleted)
                if fresh.meta is not None:
                    break
        self.state = fresh
        self.replays += 1
        self.ready.set()
        self._update_gauges()
        self._broadcast_snapshot()
        async with self.changed:
            self.changed.notify_all()
        log.info(
            "view replayed",
            extra={
                "event": "api.replayed",
                "nodes": len(fresh.nodes),
                "generation": fresh.meta.generation if fresh.meta else 0,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        async for update in updates:
            if update is None:
                continue
            if update.key == subjects.KEY_HEARTBEAT:
                self.state.apply(update.key, update.value, update.deleted)
                continue
            with tracer().start_as_current_span(
                "view.apply",
                context=extract_context(update.headers),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": f"$KV.{subjects.BUCKET_NODES}.{update.key}",
                    "messaging.operation.type": "process",
                    "nodeview.kv.key": update.key,
                },
            ):
                delta = self.state.apply(update.key, update.value, update.deleted)
            self._observe_freshness(update.headers, delta)
            self._publish(delta)
            if delta.kind in ("node", "node_deleted", "meta"):
                self._update_gauges()
                async with self.changed:
                    self.changed.notify_all()

    def _observe_freshness(self, headers: Any, delta: Delta) -> None:
        if delta.kind not in ("node", "node_deleted"):
            return
        observed = headers.get(subjects.HEADER_OBSERVED_AT) if headers else None
        if observed is None:
            return
        try:
            seconds = time.time() - float(observed)
        except ValueError:
            return
        metrics.EVENT_TO_VIEW.observe(max(seconds, 0.0))

    def _update_gauges(self) -> None:
        self.state.gauges.export()

    def _publish(self, delta: Delta) -> None:
        if delta.kind in ("none", "heartbeat"):
            return
        data = json.dumps(delta.data, separators=(",", ":"))
        self._fan_out(delta.kind, data)

    def _broadcast_snapshot(self) -> None:
        body = self.state.nodes_body(datetime.now(UTC))
        self._fan_out("snapshot", body.content.decode())

    def _fan_out(self, event: str, data: str) -> None:
        for subscriber in list(self.subscribers):
            if not subscriber.send(event, data):
                self.subscribers.discard(subscriber)
                subscriber.dropped = True
                log.warning(
                    "slow SSE client dropped",
                    extra={"event": "api.sse_dropped", "client": subscriber.client},
                )

    async def wait_for(self, predicate: Callable[[ViewState], bool], seconds: float) -> bool:
        """Wait until ``predicate`` holds for the view; False on timeout."""
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: predicate(self.state)), seconds
                )
            except TimeoutError:
                return False
        return True

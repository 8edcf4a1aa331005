"""Publishing of changes to JetStream, with dedup ids, metrics and one log line each."""

import asyncio
import logging
import uuid

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind

from contracts.events import (
    LIST_TYPES,
    MAX_REASON_LENGTH,
    ConsulChange,
    ConsulDelta,
    ResyncRequested,
)
from contracts.subjects import answer_subject
from services import bus, metrics
from services.relay.deltas import Baseline, Differ, items_digest
from services.telemetry import inject_headers, tracer

log = logging.getLogger("nodeview.relay")


class Publisher:
    """Publishes ``ConsulChange`` events; the stream collapses duplicates by message id."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        relay_id: str | None = None,
        differ: Differ | None = None,
    ) -> None:
        self._nc = nc
        self._js = js
        self._relay_id = relay_id
        self._differ = differ
        """Without one (a script handler lives for one answer), every list goes out whole."""
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    async def publish(self, change: ConsulChange) -> bus.PublishResult:
        """Publish one change, or what it changed, and record what the stream did with it."""
        if self._relay_id is not None and change.relay_id is None:
            # Which relay saw it: two relays' answers are then ordered apart, not as one.
            change = change.model_copy(update={"relay_id": self._relay_id})
        if self._differ is None or change.watch_type not in LIST_TYPES:
            return await self._publish(change, change, change.payload_digest())
        lock = self._locks.setdefault((change.watch_type, change.datacenter), asyncio.Lock())
        async with lock:
            # One answer of a list at a time, so each is diffed against the one before it (and
            # reuses its unchanged items).
            items = self._differ.items(change)
            planned = self._differ.plan(change, items)
            if isinstance(planned, Baseline):
                metrics.RELAY_PUBLISHED.labels(change.watch_type, change.source, "unchanged").inc()
                return bus.PublishResult(stream_seq=planned.stream_seq, duplicate=True)
            try:
                result = await self._publish(change, planned, items_digest(items))
            except BaseException:
                self._differ.failed(change)
                raise
            self._differ.published(change, items, result.stream_seq)
        return result

    async def _publish(
        self, change: ConsulChange, item: ConsulChange | ConsulDelta, digest: str
    ) -> bus.PublishResult:
        delta = isinstance(item, ConsulDelta)
        subject = answer_subject(item.watch_type, delta=delta)
        with tracer().start_as_current_span(
            f"consul.watch {change.watch_type}",
            kind=SpanKind.PRODUCER,
            attributes={
                "nodeview.consul.index": change.consul_index,
                "nodeview.source": change.source,
                "nodeview.watch.key": change.dedup_key or "",
                "nodeview.delta": delta,
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "messaging.operation.type": "publish",
            },
        ) as span:
            try:
                result = await bus.publish_change(
                    self._nc,
                    self._js,
                    change,
                    delta=item if isinstance(item, ConsulDelta) else None,
                    digest=digest,
                    headers=inject_headers(),
                )
            except bus.MessageTooLarge:
                metrics.RELAY_PUBLISHED.labels(change.watch_type, change.source, "too_large").inc()
                raise
            except (bus.BusError, nats.errors.Error, OSError, TimeoutError):
                metrics.RELAY_PUBLISHED.labels(change.watch_type, change.source, "failed").inc()
                raise
            span.set_attribute("nodeview.duplicate", result.duplicate)
            span.set_attribute("messaging.message.id", str(result.stream_seq))
        outcome = "duplicate" if result.duplicate else "stored"
        metrics.RELAY_PUBLISHED.labels(change.watch_type, change.source, outcome).inc()
        log.info(
            "change published",
            extra={
                "event": "relay.published",
                "type": change.watch_type,
                "key": change.dedup_key,
                "consul_index": change.consul_index,
                "source": change.source,
                "outcome": outcome,
                "stream_seq": result.stream_seq,
                "changed": len(item.changed) if isinstance(item, ConsulDelta) else None,
            },
        )
        return result

    async def request_resync(self, reason: str) -> None:
        """Ask the enricher to read Consul whole: a change could not be passed on as it was."""
        request = ResyncRequested(
            request_id=uuid.uuid4().hex, requested_by="relay", reason=reason[:MAX_REASON_LENGTH]
        )
        await bus.publish_resync(self._js, request)
        log.warning(
            "resync requested",
            extra={"event": "relay.resync_requested", "reason": reason[:200]},
        )

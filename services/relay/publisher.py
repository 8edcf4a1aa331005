"""Publishing of changes to JetStream, with dedup ids, metrics and one log line each."""

import logging

from nats.aio.client import Client
from nats.js import JetStreamContext

from contracts.events import ConsulChange
from services import bus, metrics

log = logging.getLogger("nodeview.relay")


class Publisher:
    """Publishes ``ConsulChange`` events; the stream collapses duplicates by message id."""

    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js

    async def publish(self, change: ConsulChange) -> bus.PublishResult:
        """Publish one change and record whether the stream stored it or saw a duplicate."""
        try:
            result = await bus.publish_change(self._nc, self._js, change)
        except bus.MessageTooLarge:
            metrics.RELAY_PUBLISHED.labels(change.watch_type, change.source, "too_large").inc()
            raise
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
            },
        )
        return result

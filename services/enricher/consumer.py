"""The enricher's side of the event stream: a durable pull consumer, batches and dead letters."""

import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from contracts import subjects
from services import bus, metrics

log = logging.getLogger("nodeview.enricher")

FETCH_IDLE_SECONDS = 1.0
"""Longest wait for a first message before the loop checks its stop flags again."""

NATS_ERRORS = (nats.errors.Error, bus.BusError, OSError, TimeoutError)
"""Failures of NATS after which the enricher tries again instead of exiting."""


class EventConsumer(Protocol):
    """Where the enricher's batches come from and where poison goes."""

    async def fetch(self) -> list[Msg]:
        """The next batch (raises ``nats.errors.TimeoutError`` when idle)."""

    async def dead_letter(self, msg: Msg, reason: str, detail: str) -> bool:
        """Move a message to the dead letters; ``False`` when that failed (it is nacked)."""

    async def record_lag(self) -> None:
        """Export the consumer's lag."""


@dataclass
class JetStreamConsumer:
    """``EventConsumer`` on the durable ``enricher`` consumer of ``NODEVIEW_EVENTS``.

    Explicit acks; ``max_ack_pending`` four batches; a message delivered more than
    ``ENRICHER_MAX_DELIVER`` times, or undecodable, goes to ``nodeview.dlq.events``.
    """

    js: JetStreamContext
    batch_size: int
    batch_wait: float
    ack_wait: float
    nak_delay: float
    sub: JetStreamContext.PullSubscription | None = None

    async def open(self) -> None:
        """Bind (or create) the durable pull consumer."""
        config = js_api.ConsumerConfig(
            durable_name=subjects.CONSUMER_ENRICHER,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.batch_size * 4,
            deliver_policy=js_api.DeliverPolicy.ALL,
        )
        self.sub = await self.js.pull_subscribe(
            subjects.SUBJECT_EVENTS_ALL,
            durable=subjects.CONSUMER_ENRICHER,
            stream=subjects.STREAM_EVENTS,
            config=config,
        )

    async def close(self) -> None:
        """Stop pulling (the durable consumer stays for the next holder)."""
        if self.sub is not None:
            with contextlib.suppress(*NATS_ERRORS, ValueError):
                await self.sub.unsubscribe()
            self.sub = None

    async def fetch(self) -> list[Msg]:
        """Wait for a first message, then add those ready within ``ENRICHER_BATCH_WAIT``.

        A lone change is handled at once: when the stream held nothing behind the first
        message (its ``num_pending``), no window is waited for.
        """
        assert self.sub is not None, "open() first"
        msgs: list[Msg] = await self.sub.fetch(1, timeout=FETCH_IDLE_SECONDS)
        rest = min(self.batch_size - 1, msgs[0].metadata.num_pending)
        if rest <= 0:
            return msgs
        try:
            msgs += await self.sub.fetch(rest, timeout=self.batch_wait)
        except (nats.errors.TimeoutError, TimeoutError):
            pass  # nothing more was ready
        except nats.errors.Error as exc:
            # Handle what was fetched; a lasting failure shows again on the next first fetch.
            log.warning(
                "fetching the rest of a batch failed",
                extra={"event": "enrich.fetch_failed", "reason": str(exc)},
            )
        return msgs

    async def dead_letter(self, msg: Msg, reason: str, detail: str) -> bool:
        """Publish the message to the dead letters with why, then terminate it."""
        metrics.DEAD_LETTERS.labels(reason).inc()
        log.error(
            "message dead-lettered",
            extra={
                "event": "enrich.dead_letter",
                "reason": reason,
                "detail": detail[:500],
                "subject": msg.subject,
                "stream_seq": msg.metadata.sequence.stream,
            },
        )
        headers = {
            "Nodeview-Dead-Letter-Reason": reason,
            "Nodeview-Original-Subject": msg.subject,
            "Nodeview-Original-Sequence": str(msg.metadata.sequence.stream),
            **{k: v for k, v in (msg.headers or {}).items() if k != subjects.HEADER_MSG_ID},
        }
        try:
            await self.js.publish(subjects.SUBJECT_DEAD_LETTER, msg.data, headers=headers)
            await msg.term()
        except NATS_ERRORS:
            with contextlib.suppress(*NATS_ERRORS):
                await msg.nak(delay=self.nak_delay)
            return False
        return True

    async def record_lag(self) -> None:
        """Export the consumer's lag (undelivered and unacknowledged messages)."""
        try:
            info = await self.js.consumer_info(subjects.STREAM_EVENTS, subjects.CONSUMER_ENRICHER)
        except NotFoundError:
            return
        metrics.CONSUMER_PENDING.labels("pending").set(info.num_pending or 0)
        metrics.CONSUMER_PENDING.labels("ack_pending").set(info.num_ack_pending or 0)

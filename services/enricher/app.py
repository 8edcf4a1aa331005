"""Composition root of the enricher: NATS, Consul client, lock, consumer loop and health port."""

import asyncio
import contextlib
import logging
import signal
import time
from datetime import datetime
from typing import Any

import nats.errors
from fastapi import FastAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError, ServiceUnavailableError
from opentelemetry.trace import SpanKind

from contracts import subjects
from contracts.events import ResyncRequested, utc_now
from contracts.views import Heartbeat
from services import bus, metrics
from services.consul import ConsulClient
from services.enricher import degraded
from services.enricher.consumer import NATS_ERRORS, JetStreamConsumer
from services.enricher.deltas import overtaken
from services.enricher.engine import Engine, EngineSettings, ResyncFailed
from services.enricher.leader import Leadership, LeadershipLost
from services.enricher.planner import ResyncReason
from services.enricher.schedule import RequestBatch, ResyncSchedule, RetryPacing
from services.enricher.settings import EnricherSettings
from services.enricher.store import FencedStore, KvViewStore, ViewStore
from services.enricher.triage import Triage, triage
from services.health import add_health_routes, make_server
from services.logs import setup_logging
from services.tasks import cancel_and_wait
from services.telemetry import (
    extract_context,
    links_from,
    setup_tracing,
    shutdown_tracing,
    tracer,
)

log = logging.getLogger("nodeview.enricher")


class Enricher:
    """The running enricher: owns the engine and the consumer of the event stream."""

    def __init__(self, settings: EnricherSettings) -> None:
        self.settings = settings
        self.consul = ConsulClient(settings)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.engine: Engine | None = None
        self.store: KvViewStore | None = None
        self.leadership: Leadership | None = None
        self.consumer: JetStreamConsumer | None = None
        self.stopping = asyncio.Event()
        self.lost = asyncio.Event()
        self.schedule = ResyncSchedule()
        self.last_stream_seq = 0
        self.requests: RequestBatch[tuple[Msg, ResyncRequested]] = RequestBatch()
        """Resync requests not yet covered by a resync (acknowledged once one did)."""

    def ready(self) -> bool:
        """Ready once connected; a standby is ready too (it is waiting for the lock)."""
        return self.nc is not None and self.nc.is_connected

    def status(self) -> dict[str, Any]:
        """Return a small status document for the health routes."""
        return {
            "reason": None if self.ready() else "connecting to NATS",
            "active": bool(self.leadership and self.leadership.held),
            "resynced": bool(self.engine and self.engine.resynced),
            "generation": self.engine.meta.generation if self.engine else None,
        }

    async def _on_reconnect(self) -> None:
        self.schedule.pending = ResyncReason.RECONNECT

    async def run(self) -> None:
        """Connect, wait for the lock, resync, then consume until stopped."""
        self.nc = await bus.connect(
            self.settings,
            f"nodeview-enricher-{self.settings.enricher_id}",
            on_reconnect=self._on_reconnect,
        )
        self.js = self.nc.jetstream()
        await bus.ensure_streams(self.js, self.settings)
        await bus.ensure_bucket(
            self.js,
            subjects.BUCKET_ENRICHER_LOCK,
            replicas=self.settings.nats_stream_replicas,
            ttl=self.settings.enricher_lock_ttl,
        )
        store = self.store = KvViewStore(self.js)
        self.leadership = Leadership(
            self.js,
            self.settings.enricher_id,
            self.settings.enricher_lock_ttl,
            replicas=self.settings.nats_stream_replicas,
        )
        self.engine = Engine(
            self.consul,
            FencedStore(store, self.leadership.check),
            EngineSettings(
                sites_key=self.settings.sites_kv_key,
                resync_event=self.settings.resync_event_name,
                unmapped_label=self.settings.site_unmapped_label,
                datacenter=self.settings.consul_datacenter,
            ),
        )
        while not self.stopping.is_set():
            try:
                await self._serve_term(store)
            except NATS_ERRORS as exc:
                log.warning(
                    "nats failed; starting the term again",
                    extra={"event": "enrich.term_failed", "reason": str(exc)},
                )
                self.schedule.need(ResyncReason.NATS_ERROR)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)

    async def _serve_term(self, store: KvViewStore) -> None:
        """Wait for the lock, then act until stopped or until the lock is lost (back to standby)."""
        assert self.leadership is not None
        assert self.engine is not None
        await self.leadership.acquire()
        self.lost.clear()
        metrics.ENRICHER_ACTIVE.set(1)
        # NATS may have come back without its store since the last term: recreate what is gone.
        assert self.js is not None
        await bus.ensure_streams(self.js, self.settings)
        views, meta = await store.load()
        self.engine.restore(views, meta)
        self.schedule.need(ResyncReason.TAKEOVER)
        tasks = [
            asyncio.create_task(
                self._heartbeat_loop(FencedStore(store, self.leadership.check)),
                name="heartbeat",
            ),
            asyncio.create_task(self._retry_loop(), name="retry"),
        ]
        try:
            await self._consume()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            metrics.ENRICHER_ACTIVE.set(0)
            metrics.set_node_gauges(())

    async def _resync_when_due(self) -> None:
        """Run the pending resync unless its retry time has not come; never wait for one.

        A failure schedules the next try (doubling up to ``RESYNC_RETRY_MAX_SECONDS``) and shows
        in the heartbeat; meanwhile the loop keeps applying what events carry.
        """
        assert self.engine is not None
        assert self.js is not None
        reason = self.schedule.take_due()
        if reason is None:
            return
        try:
            if reason not in (ResyncReason.START, ResyncReason.TAKEOVER):
                # The bucket may have lost entries (NATS restarted without its store):
                # compare against what it holds now, not against what was written.
                assert self.store is not None
                views, meta = await self.store.load()
                self.engine.restore(views, meta)
            await self.engine.resync(reason)
        except (ResyncFailed, *NATS_ERRORS) as exc:
            self._resync_failed(reason, exc)
            return
        self.schedule.succeeded()
        self.engine.degradation.clear(degraded.RESYNC)

    def _resync_failed(self, reason: ResyncReason, exc: BaseException) -> None:
        """Keep the resync pending, schedule its next try and show it as degraded."""
        assert self.engine is not None
        self.schedule.failed(reason)
        public = str(exc) if isinstance(exc, ResyncFailed) else "NATS failed"
        self.engine.degradation.mark(degraded.RESYNC, f"{reason.value}: {public}")

    def behind_since(self) -> datetime | None:
        """Since when a needed resync has kept failing (``None`` once one succeeded)."""
        if self.engine is None:
            return None
        return self.engine.degradation.since(degraded.RESYNC)

    def _consumer(self) -> JetStreamConsumer:
        assert self.js is not None
        return JetStreamConsumer(
            self.js,
            batch_size=self.settings.enricher_batch_size,
            batch_wait=self.settings.enricher_batch_wait,
            ack_wait=self.settings.enricher_ack_wait,
            nak_delay=self.settings.enricher_nak_delay,
        )

    async def _consume(self) -> None:
        consumer = self.consumer = self._consumer()
        await consumer.open()
        try:
            await self._consume_from(consumer)
        except LeadershipLost as exc:
            # Fenced: the lease may have expired mid-work. What was not acknowledged goes to
            # whoever holds the lock next.
            log.error(  # noqa: TRY400 - the message says all; no traceback needed
                "enricher lease lost while working; back to standby",
                extra={"event": "enrich.lock_lost", "reason": str(exc)},
            )
            self.lost.set()
        finally:
            await consumer.close()

    async def _consume_from(self, consumer: JetStreamConsumer) -> None:
        assert self.js is not None
        assert self.engine is not None
        while not (self.stopping.is_set() or self.lost.is_set()):
            await self._resync_when_due()
            if not self.engine.resynced:
                # Nothing can be applied before one whole read of Consul: events alone would
                # build views without services. Wait for the next try.
                delay = self.schedule.seconds_to_retry()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                continue
            try:
                await self._resync_requests_when_due()
            except ResyncFailed as exc:
                self._resync_failed(ResyncReason.REQUESTED, exc)
            try:
                msgs = await consumer.fetch()
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (NotFoundError, ServiceUnavailableError, nats.errors.Error) as exc:
                log.warning(
                    "event stream unavailable; recreating",
                    extra={"event": "enrich.stream_lost", "reason": str(exc)},
                )
                await asyncio.sleep(1.0)
                with contextlib.suppress(nats.errors.Error, OSError):
                    await bus.ensure_streams(self.js, self.settings)
                    await consumer.close()
                    await consumer.open()
                    self.schedule.pending = ResyncReason.STREAM_LOST
                continue
            await self._handle_batch(msgs)

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        assert self.engine is not None
        engine = self.engine
        started = time.perf_counter()
        decoded = triage(
            msgs,
            last_stream_seq=self.last_stream_seq,
            max_deliver=self.settings.enricher_max_deliver,
            overtaken=lambda event: overtaken(engine.state, event),
        )
        self.last_stream_seq = decoded.last_stream_seq
        metrics.REDELIVERIES.inc(decoded.redelivered)
        if decoded.gap:
            self.schedule.need(ResyncReason.STREAM_GAP)
        for msg, reason, detail in decoded.dead:
            await self._dead_letter(msg, reason, detail)
        for late in decoded.late:
            metrics.EVENTS.labels(late.watch_type, "superseded").inc()
        to_ack = decoded.to_ack
        try:
            await self._traced_apply(decoded, len(msgs))
        except ResyncFailed as exc:
            # Consul is unavailable: the events' state is applied; the resync is retried.
            self._resync_failed(exc.reason or ResyncReason.INDEX_RESET, exc)
        except NATS_ERRORS as exc:
            log.warning(
                "batch failed; messages will be redelivered",
                extra={"event": "enrich.batch_failed", "reason": str(exc), "messages": len(msgs)},
            )
            for msg in to_ack:
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak(delay=self.settings.enricher_nak_delay)
            return
        for msg in to_ack:
            with contextlib.suppress(*NATS_ERRORS):
                await msg.ack()
        log.info(
            "batch handled",
            extra={
                "event": "enrich.batch",
                "messages": len(msgs),
                "changes": len(decoded.changes),
                "superseded": decoded.superseded,
                "resyncs": len(decoded.resyncs),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _traced_apply(self, decoded: Triage, count: int) -> None:
        """Apply a batch inside one consumer span, child of its first traced message."""
        parent = extract_context(decoded.contexts[0]) if decoded.contexts else None
        with tracer().start_as_current_span(
            "nodeview.enrich",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links_from(decoded.contexts[1:]),
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subjects.STREAM_EVENTS,
                "messaging.consumer.group.name": subjects.CONSUMER_ENRICHER,
                "messaging.operation.type": "process",
                "messaging.batch.message_count": count,
            },
        ):
            await self._apply(decoded)

    async def _apply(self, decoded: Triage) -> None:
        assert self.engine is not None
        if decoded.superseded:
            metrics.EVENTS.labels("batch", "coalesced").inc(decoded.superseded)
        if decoded.changes:
            result = await self.engine.handle(decoded.changes, observed_floor=decoded.earliest)
            if result.resync:
                log.info(
                    "resync after change",
                    extra={"event": "enrich.resync_trigger", "reason": result.resync},
                )
        if decoded.resyncs:
            metrics.EVENTS.labels("resync", "applied").inc(len(decoded.resyncs))
            for msg, request in decoded.resyncs:
                self.requests.add(request.request_id, (msg, request))
            await self._resync_requests_when_due()

    async def _resync_requests_when_due(self) -> None:
        """Run one resync for every waiting request, at most once per minimum interval.

        Requests that arrive while one runs, or within the interval after it started, wait
        for the next: a burst of flushes costs two resyncs, not one each. Their messages are
        acknowledged only once a resync covered them (a crash hands them to the standby).
        """
        assert self.engine is not None
        taken = self.requests.take_due()
        if not taken:
            return
        waiting = list(taken.values())
        last = waiting[-1][1]
        for msg, _ in waiting:
            # A long resync must not outlast the acknowledgement deadline of what it serves.
            with contextlib.suppress(*NATS_ERRORS):
                await msg.in_progress()
        try:
            await self.engine.resync(
                ResyncReason.REQUESTED,
                detail=f"by {last.requested_by}: {last.reason}",
                request_ids=[request.request_id for _, request in waiting],
            )
        except ResyncFailed:
            # Still waiting for a resync that serves them; a lost lease leaves them unacked
            # for the next holder.
            self.requests.put_back(taken)
            raise
        for msg, _ in waiting:
            with contextlib.suppress(*NATS_ERRORS):
                await msg.ack()

    async def _dead_letter(self, msg: Msg, reason: str, detail: str) -> None:
        assert self.consumer is not None
        if await self.consumer.dead_letter(msg, reason, detail):
            # Whatever the message carried is read again from Consul.
            self.schedule.need(ResyncReason.DEAD_LETTERED)

    async def _heartbeat_loop(self, store: ViewStore) -> None:
        assert self.leadership is not None
        interval = min(
            self.settings.enricher_heartbeat_interval, self.settings.enricher_lock_ttl / 3
        )
        while True:
            try:
                await self.leadership.refresh()
                await store.put_heartbeat(
                    Heartbeat(
                        enricher_id=self.settings.enricher_id,
                        at=utc_now(),
                        interval_seconds=self.settings.enricher_heartbeat_interval,
                        behind_since=self.behind_since(),
                        degraded=self.engine.degradation.items() if self.engine else (),
                        degraded_total=len(self.engine.degradation) if self.engine else 0,
                    )
                )
                if self.consumer is not None:
                    await self.consumer.record_lag()
            except LeadershipLost:
                log.error(  # noqa: TRY400
                    "enricher lock lost; back to standby", extra={"event": "enrich.lock_lost"}
                )
                self.lost.set()
                return
            except (nats.errors.Error, OSError) as exc:
                log.warning(
                    "heartbeat failed",
                    extra={"event": "enrich.heartbeat_failed", "reason": str(exc)},
                )
            await asyncio.sleep(interval)

    async def _retry_loop(self) -> None:
        assert self.engine is not None
        last_full = time.monotonic()
        pacing = RetryPacing(first=self.settings.enricher_retry_interval)
        while True:
            await asyncio.sleep(self.settings.enricher_retry_interval)
            try:
                if not self.engine.has_pending():
                    pacing.tried(still_failing=False)
                elif pacing.due():
                    await self.engine.retry_pending()
                    pacing.tried(still_failing=self.engine.has_pending())
                if self.engine.members_due(
                    self.settings.enricher_members_interval, time.monotonic()
                ):
                    await self.engine.refresh_members()
            except LeadershipLost as exc:
                log.error(  # noqa: TRY400 - the message says all; no traceback needed
                    "enricher lease lost while retrying; back to standby",
                    extra={"event": "enrich.lock_lost", "reason": str(exc)},
                )
                self.lost.set()
                return
            except (bus.BusError, nats.errors.Error, OSError) as exc:
                log.warning(
                    "retry failed", extra={"event": "enrich.retry_failed", "reason": str(exc)}
                )
            every = self.settings.enricher_resync_interval
            if every and time.monotonic() - last_full >= every:
                last_full = time.monotonic()
                self.schedule.need(ResyncReason.PERIODIC)
            self.schedule.recheck(self.engine.degradation.any_of(degraded.LISTS))

    async def close(self) -> None:
        """Release the lock and close connections."""
        if self.leadership is not None and self.nc is not None and self.nc.is_connected:
            # Released, the lock goes to a standby at once instead of after its TTL.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(
                    self.leadership.release(), self.settings.shutdown_drain_seconds
                )
        if self.nc is not None:
            with contextlib.suppress(nats.errors.Error):
                await self.nc.close()
        await self.consul.aclose()


async def serve(settings: EnricherSettings) -> None:
    """Run the enricher and its health port until SIGINT/SIGTERM."""
    enricher = Enricher(settings)
    app = FastAPI(title="nodeview enricher", docs_url=None, redoc_url=None, openapi_url=None)
    add_health_routes(app, enricher.ready, enricher.status)
    server = make_server(app, settings.enricher_host, settings.enricher_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, enricher.stopping.set)
    server_task = asyncio.create_task(server.serve(), name="health")
    run_task = asyncio.create_task(enricher.run(), name="enricher")
    stop_task = asyncio.create_task(enricher.stopping.wait(), name="stop")
    try:
        done, _ = await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if run_task in done and run_task.exception() is not None:
            raise run_task.exception()  # type: ignore[misc]
    finally:
        enricher.stopping.set()
        # The loop ends its batch (acknowledging only what it committed) and stops; past the
        # drain time it is cancelled: what it did not acknowledge is delivered again.
        await asyncio.wait({run_task}, timeout=settings.shutdown_drain_seconds)
        await cancel_and_wait(run_task, settings.shutdown_drain_seconds)
        await enricher.close()
        server.should_exit = True
        await server_task
        stop_task.cancel()
    log.info("enricher stopped", extra={"event": "enrich.stopped"})


def main() -> None:
    """Entry point of ``nodeview enricher``."""
    settings = EnricherSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(settings, "nodeview-enricher")
    log.info(
        "enricher starting",
        extra={
            "event": "enrich.start",
            "id": settings.enricher_id,
            "consul_servers": [bus.redact_url(u) for u in settings.consul_servers],
        },
    )
    try:
        asyncio.run(serve(settings))
    finally:
        shutdown_tracing()

"""Composition root of the relay: NATS, Consul client, HTTP handler, watcher and script handler."""

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

import nats.errors
from fastapi import FastAPI
from nats.aio.client import Client

from services import bus
from services.bus import redact_url
from services.consul import ConsulClient
from services.health import add_health_routes, make_server
from services.logs import setup_logging
from services.relay.deltas import Differ
from services.relay.http import watch_router
from services.relay.payloads import BadWatchPayload, decode_json, make_change, parse_index
from services.relay.publisher import Publisher
from services.relay.settings import RelaySettings
from services.relay.watcher import WatchStats, standard_watches, supervise_watch
from services.tasks import cancel_and_wait
from services.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("nodeview.relay")

WATCH_STOP_SECONDS = 1.0
"""How long watch loops get to finish a publish under way once the relay stops."""


class Relay:
    """The running relay: one NATS connection, one Consul client, optional watcher loops."""

    def __init__(self, settings: RelaySettings, *, watcher: bool) -> None:
        self.settings = settings
        self.watcher = watcher
        self.consul = ConsulClient(settings)
        self.nc: Client | None = None
        self.publisher: Publisher | None = None
        self.stats: dict[str, WatchStats] = {}
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        """Ready once connected to NATS, and while Consul does not refuse a watch's token."""
        return self.nc is not None and self.nc.is_connected and not self._denied()

    def _denied(self) -> list[str]:
        return sorted(name for name, stats in self.stats.items() if stats.denied)

    def status(self) -> dict[str, Any]:
        """Return watcher counters for the health routes, and why the relay is not ready."""
        status: dict[str, Any] = {
            "watches": {name: vars(stats) for name, stats in self.stats.items()}
        }
        denied = self._denied()
        if denied:
            status["reason"] = f"Consul refused the ACL token for: {', '.join(denied)}"
        elif self.nc is None or not self.nc.is_connected:
            status["reason"] = "NATS is not connected"
        return status

    async def start(self) -> None:
        """Connect to NATS (retrying until it answers), check the streams, start the watches."""
        self.nc = await bus.connect_ready(self.settings, "nodeview-relay")
        js = self.nc.jetstream()
        self.publisher = Publisher(self.nc, js, relay_id=self.settings.relay_id, differ=Differ())
        if not self.watcher:
            return
        watches = standard_watches(
            self.consul,
            self.settings.sites_kv_key,
            self.settings.resync_event_name,
            self.settings.consul_datacenter,
        )
        for watch in watches:
            stats = self.stats.setdefault(watch.watch_type, WatchStats())
            self._tasks.append(
                asyncio.create_task(
                    supervise_watch(
                        watch,
                        self.publisher.publish,
                        request_resync=self.publisher.request_resync,
                        wait=self.settings.relay_watch_wait,
                        min_interval=self.settings.relay_watch_min_interval,
                        backoff_max=self.settings.relay_error_backoff_max,
                        stats=stats,
                        stop=self.stop,
                    ),
                    name=f"watch-{watch.watch_type}",
                )
            )

    async def close(self) -> None:
        """Stop the watch loops (a publish under way finishes), then drain NATS and close."""
        self.stop.set()
        if self._tasks:
            # A loop that is publishing ends at its next stop check; one holding a blocking
            # query would wait minutes, so what is still running after a moment is cancelled.
            await asyncio.wait(self._tasks, timeout=WATCH_STOP_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self.nc.drain(), self.settings.shutdown_drain_seconds)
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self.nc.close()
        await self.consul.aclose()


def build_app(relay: Relay) -> FastAPI:
    """Return the relay's HTTP app: the watch handler and the health routes."""
    app = FastAPI(title="nodeview relay", docs_url=None, redoc_url=None)
    app.include_router(
        watch_router(
            lambda: relay.publisher,
            relay.settings.relay_token_value(),
            relay.settings.relay_max_body_bytes,
            relay.settings.relay_max_concurrent_requests,
        )
    )
    add_health_routes(app, relay.ready, relay.status)
    return app


async def serve(settings: RelaySettings, *, watcher: bool) -> None:
    """Run the relay (HTTP handler, health port and, if asked, the watcher) until a signal."""
    relay = Relay(settings, watcher=watcher)
    if settings.relay_token_value() is None:
        log.warning(
            "RELAY_TOKEN is not set: POST /v1/watch/* answers 503",
            extra={"event": "relay.no_token"},
        )
    server = make_server(
        build_app(relay),
        settings.relay_host,
        settings.relay_port,
        drain_seconds=settings.shutdown_drain_seconds,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, relay.stop.set)
    # The health port answers at once; readiness waits for NATS.
    server_task = asyncio.create_task(server.serve(), name="http")
    start_task = asyncio.create_task(relay.start(), name="start")
    try:
        await relay.stop.wait()
    finally:
        await cancel_and_wait(start_task, settings.shutdown_drain_seconds)
        server.should_exit = True
        await server_task
        await relay.close()
    log.info("relay stopped", extra={"event": "relay.stopped"})


def main(*, watcher: bool) -> None:
    """Entry point of ``nodeview relay serve`` / ``nodeview relay watch``."""
    settings = RelaySettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(settings, "nodeview-relay")
    enabled = watcher or settings.relay_watcher_enabled
    log.info(
        "relay starting",
        extra={
            "event": "relay.start",
            "watcher": enabled,
            "consul_servers": [redact_url(u) for u in settings.consul_servers],
        },
    )
    try:
        asyncio.run(serve(settings, watcher=enabled))
    finally:
        shutdown_tracing()


async def handle_once(
    settings: RelaySettings,
    watch_type: str,
    raw: bytes,
    index_text: str | None,
    *,
    key: str | None,
    service: str | None,
) -> str:
    """Publish one script-handler invocation; return a one-line summary."""
    if len(raw) > settings.relay_max_body_bytes:
        raise BadWatchPayload(f"the payload is larger than {settings.relay_max_body_bytes} bytes")
    change = make_change(
        watch_type, decode_json(raw), parse_index(index_text), "script", key=key, service=service
    )
    nc = await bus.connect(settings, "nodeview-relay-handler", reconnect=False)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, settings)
        result = await Publisher(nc, js).publish(change)
    finally:
        await nc.drain()
    outcome = "duplicate" if result.duplicate else "stored"
    return f"{change.watch_type} index {change.consul_index}: {outcome} (seq {result.stream_seq})"


def handle_main(watch_type: str, key: str | None, service: str | None) -> int:
    """Entry point of ``nodeview relay handle``: stdin JSON + CONSUL_INDEX → one change."""
    settings = RelaySettings()
    setup_logging(settings.log_level, "json" if settings.log_format == "json" else "console")
    setup_tracing(settings, "nodeview-relay")
    raw = sys.stdin.buffer.read(settings.relay_max_body_bytes + 1)
    try:
        summary = asyncio.run(
            handle_once(settings, watch_type, raw, settings.consul_index, key=key, service=service)
        )
    except BadWatchPayload as exc:
        print(f"nodeview relay handle: bad payload: {exc}", file=sys.stderr)
        return 2
    except (bus.BusError, nats.errors.Error, OSError, TimeoutError) as exc:
        print(f"nodeview relay handle: cannot publish: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown_tracing()
    print(summary, file=sys.stderr)
    return 0

"""Composition root of the API: settings, NATS, the feed, routes and the uvicorn server."""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats.errors
import uvloop
from fastapi import FastAPI

from services import bus, metrics
from services.api.dashboard import dashboard_router
from services.api.docs import docs_router
from services.api.errors import add_error_handlers
from services.api.feed import Feed
from services.api.middleware import ApiMiddleware
from services.api.routes import ResyncPublisher, nodes_router
from services.api.settings import ApiSettings
from services.health import add_health_routes, make_server
from services.logs import setup_logging
from services.tasks import cancel_and_wait
from services.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("nodeview.api")


class Runtime:
    """What the lifespan opens: NATS connection, feed and its task; and the stop flag."""

    def __init__(self) -> None:
        self.feed: Feed | None = None
        self.publisher: ResyncPublisher | None = None
        self.nc: Any = None
        self.stopping = False

    def ready(self) -> bool:
        """Ready once the bucket was replayed to its end and holds a view (its meta entry)."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why the replica cannot serve the view yet (``None`` when it can)."""
        if self.stopping:
            return "stopping"
        if self.nc is None or not self.nc.is_connected:
            return "connecting to NATS"
        if self.feed is None or not self.feed.ready.is_set():
            return "replaying the view from NATS"
        if self.feed.state.meta is None:
            return "no view in NATS yet (waiting for the enricher)"
        return None

    def status(self) -> dict[str, Any]:
        """Return a small status document for the health routes."""
        reason = self.not_ready_reason()
        if self.feed is None:
            return {"nodes": 0, "reason": reason}
        state = self.feed.state
        now = datetime.now(UTC)
        age = state.view_age(now)
        metrics.VIEW_AGE.set(age if age is not None else -1)
        metrics.VIEW_STALE.set(1 if state.is_stale(now) else 0)
        metrics.VIEW_DEGRADED.set(state.degraded_total())
        return {
            "nodes": len(state.nodes),
            "generation": state.meta.generation if state.meta else 0,
            "stale": state.is_stale(now),
            "replays": self.feed.replays,
            "reason": reason,
        }

    async def run(self, settings: ApiSettings) -> None:
        """Connect to NATS (retrying until it answers), then replay and follow the view."""

        async def on_reconnect() -> None:
            if self.feed is not None:
                self.feed.request_replay()

        self.nc = await bus.connect_ready(settings, "nodeview-api", on_reconnect=on_reconnect)
        js = self.nc.jetstream()
        self.feed = Feed(js, settings.api_stale_after_seconds)
        self.publisher = ResyncPublisher(js)
        await self.feed.run()

    def begin_stop(self) -> None:
        """Refuse new work and end every event stream with a final ``shutdown`` event."""
        self.stopping = True
        if self.feed is not None:
            for subscriber in list(self.feed.subscribers):
                subscriber.close()

    async def close(self, drain_seconds: float) -> None:
        """Drain the NATS connection (bounded), then close it."""
        if self.nc is None:
            return
        if self.nc.is_connected:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await asyncio.wait_for(self.nc.drain(), drain_seconds)
        if not self.nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self.nc.close()


def create_app(settings: ApiSettings, runtime: Runtime | None = None) -> FastAPI:
    """Return the API app; NATS is connected in the background from its lifespan."""
    runtime = runtime or Runtime()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The port opens at once: /healthz answers while NATS is still being reached.
        task = asyncio.create_task(runtime.run(settings), name="nats")
        try:
            yield
        finally:
            await cancel_and_wait(task, settings.shutdown_drain_seconds)
            await runtime.close(settings.shutdown_drain_seconds)

    app = FastAPI(
        title="nodeview API",
        version="1",
        summary="Always-fresh inventory of the nodes of a Consul cluster, served from memory.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    add_error_handlers(app)
    app.include_router(nodes_router(runtime, settings))
    add_health_routes(app, runtime.ready, runtime.status)
    app.include_router(dashboard_router())
    app.include_router(docs_router(app.openapi_url or "/openapi.json"))
    app.add_middleware(
        ApiMiddleware,
        max_body_bytes=settings.api_max_body_bytes,
        access_log=settings.api_access_log,
        trusted_proxies=settings.api_trusted_proxies,
    )
    return app


async def serve(settings: ApiSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, end streams and drain in-flight work."""
    runtime = Runtime()
    server = make_server(
        create_app(settings, runtime),
        settings.api_host,
        settings.api_port,
        lifespan="on",
        drain_seconds=settings.shutdown_drain_seconds,
        http="httptools",
    )

    def stop() -> None:
        log.info("api stopping", extra={"event": "api.stopping"})
        runtime.begin_stop()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    await server.serve()
    log.info("api stopped", extra={"event": "api.stopped"})


def main() -> None:
    """Entry point of ``nodeview api``."""
    settings = ApiSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(settings, "nodeview-api")
    log.info("api starting", extra={"event": "api.start", "port": settings.api_port})
    try:
        if sys.platform != "win32":
            uvloop.run(serve(settings))
        else:
            asyncio.run(serve(settings))
    finally:
        shutdown_tracing()

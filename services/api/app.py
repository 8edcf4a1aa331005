"""Composition root of the API: settings, NATS, the feed, routes and the uvicorn server."""

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats.errors
import uvicorn
from fastapi import FastAPI

from services import bus, metrics
from services.api.dashboard import dashboard_router
from services.api.feed import Feed
from services.api.middleware import ApiMiddleware
from services.api.routes import ResyncPublisher, nodes_router
from services.api.settings import ApiSettings
from services.health import add_health_routes
from services.logs import setup_logging
from services.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("nodeview.api")


class Runtime:
    """What the lifespan opens: NATS connection, feed and its task."""

    def __init__(self) -> None:
        self.feed: Feed | None = None
        self.publisher: ResyncPublisher | None = None
        self.nc: Any = None

    def ready(self) -> bool:
        """Ready once the bucket was replayed to its end and holds a view (its meta entry)."""
        return (
            self.feed is not None and self.feed.ready.is_set() and self.feed.state.meta is not None
        )

    def status(self) -> dict[str, Any]:
        """Return a small status document for the health routes."""
        if self.feed is None:
            return {"nodes": 0}
        state = self.feed.state
        now = datetime.now(UTC)
        age = state.view_age(now)
        metrics.VIEW_AGE.set(age if age is not None else -1)
        metrics.VIEW_STALE.set(1 if state.is_stale(now) else 0)
        metrics.VIEW_DEGRADED.set(len(state.degraded()))
        return {
            "nodes": len(state.nodes),
            "generation": state.meta.generation if state.meta else 0,
            "stale": state.is_stale(now),
            "replays": self.feed.replays,
        }


def create_app(settings: ApiSettings) -> FastAPI:
    """Return the API app; NATS is connected in its lifespan."""
    runtime = Runtime()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def on_reconnect() -> None:
            if runtime.feed is not None:
                runtime.feed.request_replay()

        runtime.nc = await bus.connect(settings, "nodeview-api", on_reconnect=on_reconnect)
        js = runtime.nc.jetstream()
        await bus.ensure_streams(js, settings)
        feed = Feed(js, settings.api_stale_after_seconds)
        runtime.feed = feed
        runtime.publisher = ResyncPublisher(js)
        task = asyncio.create_task(feed.run(), name="feed")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(nats.errors.Error):
                await runtime.nc.drain()

    app = FastAPI(
        title="nodeview API",
        version="1",
        summary="Always-fresh inventory of the nodes of a Consul cluster, served from memory.",
        lifespan=lifespan,
    )
    app.include_router(nodes_router(runtime, settings))
    add_health_routes(app, runtime.ready, runtime.status)
    app.include_router(dashboard_router())
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.api_max_body_bytes)
    return app


def main() -> None:
    """Entry point of ``nodeview api``."""
    settings = ApiSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing(settings, "nodeview-api")
    log.info("api starting", extra={"event": "api.start", "port": settings.api_port})
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            http="httptools",
        )
    finally:
        shutdown_tracing()

"""A small HTTP app with /healthz, /readyz and /metrics for services that are not the API."""

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def add_health_routes(
    app: FastAPI, ready: Callable[[], bool], status: Callable[[], dict[str, Any]]
) -> None:
    """Add liveness, readiness and metrics routes to ``app``."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", **status()}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        is_ready = ready()
        # The pid lets whoever started the process tell its answer from another process's
        # on the same port (a start that lost its port to someone else).
        body = {"ready": is_ready, "pid": os.getpid(), **status()}
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        status()  # refreshes gauges computed on demand
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handler: the embedding process stops the server itself."""
        yield


def make_server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    drain_seconds: float | None = None,
    **options: Any,
) -> EmbeddedServer:
    """Return a uvicorn server for ``app`` that runs inside the caller's event loop.

    ``drain_seconds`` bounds how long in-flight requests may finish once it is told to exit.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=None if drain_seconds is None else math.ceil(drain_seconds),
        **options,
    )
    return EmbeddedServer(config)

"""Shared fixtures: a real nats-server with JetStream (or NATS_URL), and settings for it."""

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from devstack.nats import NatsServer

NODEVIEW_STREAMS = (
    "NODEVIEW_EVENTS",
    "NODEVIEW_DLQ",
    "KV_nodeview_nodes",
    "KV_nodeview_enricher_lock",
)


async def _delete_nodeview_streams(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for name in NODEVIEW_STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer | None]:
    """Start a nats-server on a free loopback port for one test; None when NATS_URL is set."""
    if os.environ.get("NATS_URL"):
        yield None
        return
    server = NatsServer(tmp_path / "jetstream", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_url(nats_server: NatsServer | None) -> AsyncIterator[str]:
    """Return the URL of a clean JetStream server (nodeview's streams removed first)."""
    if nats_server is None:
        url = os.environ["NATS_URL"]
        await _delete_nodeview_streams(url)
        yield url
        return
    yield nats_server.url

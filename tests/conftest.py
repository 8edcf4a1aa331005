"""Shared fixtures: a clean environment, a real nats-server with JetStream (or NATS_URL)."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from hypothesis import settings
from nats.js.errors import NotFoundError

from devstack.nats import NatsServer

# Timing is never what a property test proves here (speed is measured in bench/): no deadline,
# so a busy CI machine cannot fail an example for being slow.
settings.register_profile("nodeview", deadline=None)
settings.load_profile("nodeview")

NODEVIEW_STREAMS = (
    "NODEVIEW_EVENTS",
    "NODEVIEW_DLQ",
    "KV_nodeview_nodes",
    "KV_nodeview_enricher_lock",
)

SERVICE_ENV_PREFIXES = (
    "NATS_",
    "CONSUL_",
    "RELAY_",
    "API_",
    "ENRICHER_",
    "SITES_",
    "SITE_",
    "LOG_",
    "OTEL_",
    "NODEVIEW_",
    "SHUTDOWN_",
    "RESYNC_",
)
"""Variables the services read: the shell running the tests must not configure what they start."""

EXTERNAL_NATS_URL = os.environ.get("NATS_URL") or None
"""A nats-server the caller provides instead of one per test (read before the clean-up below)."""


@pytest.fixture(scope="session", autouse=True)
def clean_service_environment() -> Iterator[None]:
    """Remove the services' variables from the environment every test and child process sees."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(SERVICE_ENV_PREFIXES)]:
            patch.delenv(name)
        yield


async def _existing_nodeview_streams(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        found = []
        for name in NODEVIEW_STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.stream_info(name)
                found.append(name)
        return found
    finally:
        await nc.close()


async def _delete_nodeview_streams(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for name in NODEVIEW_STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def external_nats_url() -> str | None:
    """``NATS_URL`` when set, after proving it holds no nodeview stream the tests did not create.

    Tests delete nodeview's streams between runs to start clean: on a server that already holds
    them (someone's running nodeview) that would lose data, so the session refuses to start.
    """
    if EXTERNAL_NATS_URL is None:
        return None
    found = asyncio.run(_existing_nodeview_streams(EXTERNAL_NATS_URL))
    if found:
        pytest.fail(
            f"NATS_URL={EXTERNAL_NATS_URL} already holds {', '.join(found)}; the tests delete "
            "these between runs, so point NATS_URL at a nats-server of their own"
        )
    return EXTERNAL_NATS_URL


@pytest.fixture
def nats_server(tmp_path: Path, external_nats_url: str | None) -> Iterator[NatsServer | None]:
    """Start a nats-server on a free loopback port for one test; None when NATS_URL is set."""
    if external_nats_url is not None:
        yield None
        return
    server = NatsServer(tmp_path / "jetstream", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_url(
    nats_server: NatsServer | None, external_nats_url: str | None
) -> AsyncIterator[str]:
    """Return the URL of a clean JetStream server (the streams earlier tests created removed)."""
    if nats_server is None:
        assert external_nats_url is not None
        await _delete_nodeview_streams(external_nats_url)
        yield external_nats_url
        return
    yield nats_server.url

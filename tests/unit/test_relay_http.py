"""The relay's HTTP watch handler in process: bounded concurrency before any body is read."""

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from services.relay.http import watch_router

TOKEN = "relay-test-token"


def _app(max_concurrent: int) -> FastAPI:
    app = FastAPI()
    app.include_router(
        watch_router(lambda: None, SecretStr(TOKEN), 1024 * 1024, max_concurrent, busy_wait=0.2)
    )
    return app


async def test_requests_beyond_the_concurrency_bound_wait_then_get_503() -> None:
    """With every slot held by a slow body, another request is refused 503 busy, not buffered."""
    release = asyncio.Event()
    reading = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        # The handler reads the body only once it holds a slot.
        reading.set()
        yield b"["
        await release.wait()
        yield b"]"

    headers = {"Authorization": f"Bearer {TOKEN}", "X-Consul-Index": "5"}
    transport = httpx.ASGITransport(app=_app(1))
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        first = asyncio.create_task(
            client.post("/v1/watch/nodes", content=slow_body(), headers=headers)
        )
        await reading.wait()
        refused = await client.post("/v1/watch/nodes", content=b"[]", headers=headers)
        assert refused.status_code == 503
        assert refused.json()["error"] == "busy"
        release.set()
        done = await first
        assert done.status_code == 503
        assert done.json()["error"] == "nats_unavailable"
        again = await client.post("/v1/watch/nodes", content=b"[]", headers=headers)
        assert again.json()["error"] == "nats_unavailable"

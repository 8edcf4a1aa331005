"""The API middleware: body limits for declared and streamed bodies, security headers."""

from collections.abc import AsyncIterator, Iterator

import httpx
from starlette.types import Message, Receive, Scope, Send

from services.api.middleware import ApiMiddleware

LIMIT = 1024


async def _echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body and answers its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _client() -> httpx.AsyncClient:
    app = ApiMiddleware(_echo_size, max_body_bytes=LIMIT)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _chunks(size: int, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_a_declared_body_over_the_limit_is_refused() -> None:
    """Content-Length above the limit: 413 before the route runs."""
    async with _client() as client:
        response = await client.post("/x", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


async def test_a_streamed_body_over_the_limit_is_refused() -> None:
    """A chunked body without Content-Length is counted as it arrives: 413 past the limit."""
    async with _client() as client:
        response = await client.post("/x", content=_chunks(300, 4))
    assert response.status_code == 413
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_streamed_body_within_the_limit_reaches_the_route_whole() -> None:
    """A chunked body under the limit is buffered and handed over unchanged."""
    async with _client() as client:
        response = await client.post("/x", content=_chunks(256, 4))
    assert response.status_code == 200
    assert response.text == str(256 * 4)
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_client_leaving_mid_body_never_reaches_the_route() -> None:
    """A streamed body cut by a disconnect is dropped: the route is not called, nothing is sent."""
    called: list[Scope] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    messages: Iterator[Message] = iter(
        [
            {"type": "http.request", "body": b"x" * 10, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"transfer-encoding", b"chunked")],
    }
    await ApiMiddleware(route, max_body_bytes=LIMIT)(scope, receive, send)
    assert called == []
    assert sent == []

"""ASGI middleware of the API: security headers, request body limit, HTTP metrics, access log."""

import logging
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import metrics
from services.api.clients import Network, client_address
from services.telemetry import tracer

access_log = logging.getLogger("nodeview.api.access")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probe and scrape paths: their access lines are logged at DEBUG, the others at INFO."""
LOGGED_PATH_LIMIT = 512
"""Characters of the request path kept in an access line."""

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class ApiMiddleware:
    """Adds security headers, refuses oversized bodies, records metrics and logs each request."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        access_log: bool = True,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500, "bytes": 0}
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            sent = await _too_large(send)
            self._log(scope, self._record(scope, 413, started), 413, started, sent)
            return
        if declared is None and _has_header(scope, b"transfer-encoding"):
            # A streamed body announces no size: read it (bounded) before the route sees it.
            try:
                buffered = await _read_bounded(receive, self.max_body_bytes)
            except ClientDisconnected:
                return
            if buffered is None:
                sent = await _too_large(send)
                self._log(scope, self._record(scope, 413, started), 413, started, sent)
                return
            receive = _replay(buffered, receive)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                own = {name.lower() for name, _ in headers}
                # A page that sets its own policy (the API docs) keeps it; every other gets ours.
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in own)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                status_holder["bytes"] += len(message.get("body", b""))
            await send(message)

        method = scope.get("method", "")
        with tracer().start_as_current_span(
            f"{method} {scope.get('path', '')}",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                template = self._record(scope, status_holder["status"], started)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status_holder["status"])
                self._log(scope, template, status_holder["status"], started, status_holder["bytes"])

    def _log(self, scope: Scope, route: str, status: int, started: float, sent: int) -> None:
        """Write the access line of one request (inside its span, which gives the trace ids)."""
        path = str(scope.get("path", ""))
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not self.access_log or not access_log.isEnabledFor(level):
            return
        peer = scope.get("client")
        forwarded = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for"),
            None,
        )
        client = client_address(peer[0] if peer else None, forwarded, self.trusted_proxies)
        access_log.log(
            level,
            "request",
            extra={
                "event": "api.access",
                "method": scope.get("method", ""),
                "path": path[:LOGGED_PATH_LIMIT],
                "route": route,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "client": client,
                "bytes": sent,
            },
        )

    @staticmethod
    def _record(scope: Scope, status: int, started: float) -> str:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
        if template != "/api/v1/nodes/events":
            metrics.HTTP_REQUEST_DURATION.labels(method, template).observe(
                time.perf_counter() - started
            )
        return str(template)


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(key == name for key, _ in scope.get("headers", []))


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


async def _read_bounded(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body once, then waits as the server's does."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send) -> int:
    """Answer 413 and return the size of the body sent."""
    body = (
        b'{"success":false,"error":"body_too_large","detail":"the body is over API_MAX_BODY_BYTES"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return len(body)

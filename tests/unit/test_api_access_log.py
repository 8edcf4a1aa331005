"""The API's access log: one JSON line per request, with trace ids, and a setting to turn it off."""

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.api.app import create_app
from services.api.middleware import access_log
from services.api.settings import ApiSettings
from services.logs import JsonFormatter

PEER = ("10.1.2.3", 40000)
ACCESS_KEYS = {"event", "method", "path", "route", "status", "duration_ms", "client", "bytes"}


class Lines:
    """What the access logger wrote, as the JSON objects of its lines."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        """Every line written so far."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Format the access logger's records as production does (JSON) into a buffer, at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    level = access_log.level
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        access_log.removeHandler(handler)
        access_log.setLevel(level)


def _client(settings: ApiSettings) -> httpx.AsyncClient:
    """A client of the real API app, in process (no lifespan, so no NATS: /api/v1 answers 503)."""
    transport = httpx.ASGITransport(app=create_app(settings), client=PEER)
    return httpx.AsyncClient(transport=transport, base_url="http://api")


async def test_each_request_writes_one_access_line(lines: Lines) -> None:
    """A request gives one INFO line with method, path, route, status, duration, client, bytes."""
    async with _client(ApiSettings()) as client:
        started = time.perf_counter()
        response = await client.get("/api/v1/nodes", params={"site": "lab"})
        elapsed_ms = (time.perf_counter() - started) * 1000
    [line] = lines.all()
    assert set(line) >= ACCESS_KEYS
    assert line["level"] == "info"
    assert line["event"] == "api.access"
    assert (line["method"], line["path"], line["route"]) == (
        "GET",
        "/api/v1/nodes",
        "/api/v1/nodes",
    )
    assert line["status"] == response.status_code
    assert line["bytes"] == len(response.content) > 0
    assert line["client"] == PEER[0]
    assert 0 <= line["duration_ms"] <= elapsed_ms  # measured inside the request it times
    assert "trace_id" not in line


async def test_an_unknown_path_and_a_refused_body_are_logged_too(lines: Lines) -> None:
    """A 404 and a 413 (answered before any route) each get their access line."""
    settings = ApiSettings(API_MAX_BODY_BYTES=16)
    async with _client(settings) as client:
        missing = await client.get("/no/such/page")
        refused = await client.post("/api/v1/admin/cache/nodes/flush", content=b"x" * 17)
    first, second = lines.all()
    assert (first["status"], first["route"], first["bytes"]) == (
        404,
        "unmatched",
        len(missing.content),
    )
    assert (second["status"], second["method"]) == (413, "POST")
    assert second["bytes"] == len(refused.content)


async def test_the_line_carries_the_ids_of_the_active_span(lines: Lines) -> None:
    """Inside a span the line names its trace and span, so a log line leads to its trace."""
    tracer = TracerProvider().get_tracer("test")
    async with _client(ApiSettings()) as client:
        with tracer.start_as_current_span("caller") as span:
            await client.get("/api/v1/nodes")
    [line] = lines.all()
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert len(line["span_id"]) == 16
    assert int(line["span_id"], 16) != 0


async def test_probes_and_scrapes_are_logged_only_at_debug(lines: Lines) -> None:
    """/healthz, /readyz and /metrics stay out of an INFO log and appear at DEBUG."""
    async with _client(ApiSettings()) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            await client.get(path)
        assert lines.all() == []
        access_log.setLevel(logging.DEBUG)
        await client.get("/healthz")
    [line] = lines.all()
    assert (line["level"], line["path"], line["status"]) == ("debug", "/healthz", 200)


async def test_a_trusted_proxy_names_the_client(lines: Lines) -> None:
    """Behind a proxy listed in API_TRUSTED_PROXIES the line names the forwarded client."""
    settings = ApiSettings(API_TRUSTED_PROXIES="10.0.0.0/8")
    async with _client(settings) as client:
        await client.get("/api/v1/nodes", headers={"x-forwarded-for": "192.0.2.7"})
    [line] = lines.all()
    assert line["client"] == "192.0.2.7"


async def test_api_access_log_false_turns_it_off(
    lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With API_ACCESS_LOG=false requests are still served, and no access line is written."""
    monkeypatch.setenv("API_ACCESS_LOG", "false")
    settings = ApiSettings()
    assert settings.api_access_log is False
    access_log.setLevel(logging.DEBUG)
    async with _client(settings) as client:
        served = await client.get("/healthz")
        nodes = await client.get("/api/v1/nodes")
    assert served.status_code == 200
    assert nodes.status_code == 503
    assert lines.all() == []

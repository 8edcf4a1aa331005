"""The API's error shape on every 4xx/5xx, its OpenAPI document and its local docs pages."""

import re
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from nats.js import JetStreamContext

from services.api.app import Runtime, create_app
from services.api.docs import REDOC_CSP, SWAGGER_CSP
from services.api.feed import Feed
from services.api.routes import ResyncPublisher
from services.api.settings import ApiSettings

ADMIN_TOKEN = "unit-admin-token"
API_CSP = "default-src 'self'; frame-ancestors 'none'"


class BrokenJetStream:
    """A JetStream context whose publish fails in a way no route expects."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        """Fail as a bug would."""
        raise RuntimeError("unexpected failure inside the publisher")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The API app in memory (no lifespan, no NATS) with a feed and a publisher that breaks."""
    settings = ApiSettings.model_validate({"API_ADMIN_TOKEN": ADMIN_TOKEN})
    runtime = Runtime()
    js = cast(JetStreamContext, BrokenJetStream())
    runtime.feed = Feed(js, settings.api_stale_after_seconds)
    runtime.publisher = ResyncPublisher(js)
    app = create_app(settings, runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def _error(response: httpx.Response, status: int, error: str) -> str:
    """Assert nodeview's error body and return its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "error", "detail"}
    assert body["success"] is False
    assert body["error"] == error
    assert isinstance(body["detail"], str)
    return str(body["detail"])


async def test_an_unknown_path_answers_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    """Starlette's own 404 for a path no route knows comes as {success, error, detail}."""
    response = await client.get("/api/v1/nope")
    assert "/api/v1/nope" in _error(response, 404, "not_found")
    assert response.headers["content-security-policy"] == API_CSP


async def test_a_wrong_method_answers_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    """A method the route does not take: 405 in the error shape, with its Allow header."""
    response = await client.delete("/api/v1/nodes")
    assert "DELETE" in _error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_a_bad_query_answers_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    """A filter value outside its enum: 422 in the error shape, naming where the problem is."""
    response = await client.get("/api/v1/nodes", params={"status": "sleeping", "site": "x" * 300})
    detail = _error(response, 422, "invalid_request")
    assert "query.status" in detail
    assert "query.site" in detail


async def test_an_unhandled_failure_answers_500_without_internals(
    client: httpx.AsyncClient,
) -> None:
    """A failure no route handles: 500 in the error shape, no traceback, security headers on."""
    response = await client.post(
        "/api/v1/admin/cache/nodes/flush", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    detail = _error(response, 500, "internal_error")
    assert "unexpected failure" not in detail
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_route_errors_keep_their_own_codes(client: httpx.AsyncClient) -> None:
    """Errors a route names itself (no token, not ready) keep their codes in the same shape."""
    _error(await client.post("/api/v1/admin/cache/nodes/flush"), 401, "missing_token")
    _error(await client.get("/api/v1/nodes"), 503, "not_ready")


async def test_the_openapi_document_describes_every_route_and_error(
    client: httpx.AsyncClient,
) -> None:
    """Every operation has a response model for success and nodeview's body for each error."""
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operations = {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == {
        ("get", "/api/v1/nodes"),
        ("get", "/api/v1/nodes/events"),
        ("get", "/api/v1/nodes/{node_addr}/services"),
        ("get", "/api/v1/nodes/{node_addr}/service-names"),
        ("post", "/api/v1/admin/cache/nodes/flush"),
        ("get", "/api/v1/sd/prometheus"),
    }
    success_models = {
        ("get", "/api/v1/nodes"): "NodesResponse",
        ("get", "/api/v1/nodes/{node_addr}/services"): "NodeServicesResponse",
        ("get", "/api/v1/nodes/{node_addr}/service-names"): "ServiceNamesResponse",
        ("post", "/api/v1/admin/cache/nodes/flush"): "FlushResponse",
    }
    for key, operation in operations.items():
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            if status.startswith(("4", "5")):
                schema = content["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (key, status)
            elif status == "200" and key in success_models:
                schema = content["application/json"]["schema"]
                assert schema["$ref"].endswith("/" + success_models[key]), key
    events = operations[("get", "/api/v1/nodes/events")]["responses"]["200"]
    assert set(events["content"]) == {"text/event-stream"}


async def test_the_docs_pages_run_no_inline_script_and_load_local_files(
    client: httpx.AsyncClient,
) -> None:
    """/docs and /redoc name only local scripts, which are served, under their own policy."""
    for path, policy in (("/docs", SWAGGER_CSP), ("/redoc", REDOC_CSP)):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers.get_list("content-security-policy") == [policy]
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[-1].split(";")[0]
        scripts = re.findall(r"<script([^>]*)>", response.text)
        assert scripts
        for attributes in scripts:
            source = re.search(r'src="([^"]+)"', attributes)
            assert source is not None, f"inline script on {path}"
            assert source.group(1).startswith("/static/docs/")
            asset = await client.get(source.group(1))
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith("text/javascript")
        assert "http://" not in response.text
        assert "https://" not in response.text

"""The API's node and service discovery routes in process, over a view held in memory."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from nats.js import JetStreamContext

from contracts import subjects
from contracts.views import NodeView, ServiceInstance, ViewMeta
from services.api.feed import Feed
from services.api.routes import ResyncPublisher, nodes_router
from services.api.settings import ApiSettings

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Runtime:
    """What the routes read: a feed (its view filled by the test) and no resync publisher."""

    def __init__(self, feed: Feed | None) -> None:
        self.feed = feed
        self.publisher: ResyncPublisher | None = None


def _view(node: str, addr: str, meta: dict[str, str], site: str) -> NodeView:
    return NodeView(
        node=node,
        addr=addr,
        id=f"id-{node}",
        datacenter="dc1",
        status="alive",
        site_name=site.title(),
        site_code=site,
        meta=meta,
        tagged_addresses={"lan": addr},
        services={"node_exporter": ServiceInstance(name="node_exporter", tags=("a",), port=9100)},
        updated_at=NOW,
    )


def _feed(*views: NodeView) -> Feed:
    # The feed's JetStream context is used only by its run loop, which these tests never start.
    feed = Feed(cast(JetStreamContext, None), 30.0)
    meta = ViewMeta(generation=1, synced_at=NOW)
    feed.state.apply(subjects.KEY_META, meta.model_dump_json().encode(), False)
    for view in views:
        feed.state.apply(subjects.node_key(view.node), view.model_dump_json().encode(), False)
    feed.ready.set()
    return feed


def _client(runtime: Runtime) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(nodes_router(runtime, ApiSettings()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of routes over three nodes in two sites with node meta."""
    feed = _feed(
        _view("a", "10.0.0.1", {"os": "linux", "rack": "r1"}, "palmas"),
        _view("b", "10.0.0.2", {"os": "linux", "rack": "r2"}, "rio"),
        _view("c", "10.0.0.3", {"os": "bsd"}, "rio"),
    )
    async with _client(Runtime(feed)) as http:
        yield http


async def test_nodes_carry_id_meta_and_tagged_addresses(client: httpx.AsyncClient) -> None:
    """Each entry of /api/v1/nodes holds the node's ID, meta and tagged addresses."""
    response = await client.get("/api/v1/nodes")
    assert response.status_code == 200
    entry = response.json()["data"][0]
    assert entry["id"] == "id-a"
    assert entry["meta"] == {"os": "linux", "rack": "r1"}
    assert entry["tagged_addresses"] == {"lan": "10.0.0.1"}


async def test_repeated_meta_filters_must_all_match(client: httpx.AsyncClient) -> None:
    """``?meta=`` repeats; a node is listed when its meta holds every pair."""
    linux = await client.get("/api/v1/nodes", params={"meta": "os:linux"})
    assert [n["node"] for n in linux.json()["data"]] == ["a", "b"]
    both = await client.get("/api/v1/nodes", params=[("meta", "os:linux"), ("meta", "rack:r2")])
    assert [n["node"] for n in both.json()["data"]] == ["b"]
    none = await client.get("/api/v1/nodes", params=[("meta", "os:linux"), ("meta", "os:bsd")])
    assert none.json()["total"] == 0


@pytest.mark.parametrize("raw", ["os", ":linux", "o s:linux", "k" * 129 + ":v"])
async def test_a_malformed_meta_filter_is_a_400_in_the_error_shape(
    client: httpx.AsyncClient, raw: str
) -> None:
    """Malformed ``?meta=`` answers 400 ``bad_filter`` with the project's error body."""
    response = await client.get("/api/v1/nodes", params={"meta": raw})
    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["error"]) == (False, "bad_filter")
    assert body["detail"]


async def test_too_many_meta_filters_are_refused(client: httpx.AsyncClient) -> None:
    """More than 16 ``?meta=`` filters in one request answer 400."""
    params = {"meta": [f"k{i}:v" for i in range(17)]}
    response = await client.get("/api/v1/nodes", params=params)
    assert response.status_code == 400
    assert "at most 16" in response.json()["detail"]


async def test_sd_lists_targets_with_labels_and_filters(client: httpx.AsyncClient) -> None:
    """/api/v1/sd/prometheus answers JSON target groups; ``service`` and ``site`` filter them."""
    response = await client.get("/api/v1/sd/prometheus")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    groups = response.json()
    assert [g["targets"] for g in groups] == [
        ["10.0.0.1:9100"],
        ["10.0.0.2:9100"],
        ["10.0.0.3:9100"],
    ]
    labels = groups[0]["labels"]
    assert labels["__meta_nodeview_node"] == "a"
    assert labels["__meta_nodeview_site"] == "Palmas"
    assert labels["__meta_nodeview_node_meta_rack"] == "r1"
    assert labels["__meta_nodeview_tags"] == ",a,"
    rio = await client.get("/api/v1/sd/prometheus", params={"site": "rio"})
    assert [g["labels"]["__meta_nodeview_node"] for g in rio.json()] == ["b", "c"]
    other = await client.get("/api/v1/sd/prometheus", params={"service": "grafana"})
    assert (other.status_code, other.json()) == (200, [])


async def test_sd_answers_304_to_its_own_etag(client: httpx.AsyncClient) -> None:
    """The ETag of the discovery document turns a repeated request into a 304 without a body."""
    first = await client.get("/api/v1/sd/prometheus")
    etag = first.headers["etag"]
    again = await client.get("/api/v1/sd/prometheus", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await client.get(
        "/api/v1/sd/prometheus", params={"site": "rio"}, headers={"If-None-Match": etag}
    )
    assert other.status_code == 200


async def test_sd_is_503_until_the_view_is_replayed() -> None:
    """Before the replica holds a view, discovery answers 503: Prometheus keeps its targets."""
    async with _client(Runtime(None)) as http:
        response = await http.get("/api/v1/sd/prometheus")
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"


async def test_an_overlong_sd_filter_is_refused(client: httpx.AsyncClient) -> None:
    """``service`` and ``site`` are bounded like the other filters."""
    response = await client.get("/api/v1/sd/prometheus", params={"service": "s" * 300})
    # Refused by the query's declared bound (FastAPI's validation answer), never served.
    assert response.status_code in (400, 422)


async def test_left_is_not_offered_as_a_status_filter(client: httpx.AsyncClient) -> None:
    """``?status=left`` is refused: a node that left is ``dead``, as in the old endpoint."""
    refused = await client.get("/api/v1/nodes", params={"status": "left"})
    assert refused.status_code in (400, 422)
    alive = await client.get("/api/v1/nodes", params={"status": "alive"})
    assert alive.json()["total"] == 3

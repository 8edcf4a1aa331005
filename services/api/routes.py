"""HTTP routes of the API: thin handlers over the replica's in-memory view."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Protocol

import nats.errors
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from nats.js import JetStreamContext

from contracts.events import ResyncRequested
from contracts.views import (
    FlushResponse,
    NodeServicesResponse,
    NodesResponse,
    NodeStatus,
    NodeView,
    ServiceDetail,
    ServiceNamesResponse,
    TargetGroup,
)
from services import bus
from services.api.clients import client_address
from services.api.errors import error_responses
from services.api.feed import SHUTDOWN_EVENT, Feed, Subscriber
from services.api.filters import BadFilter, parse_meta_filters
from services.api.negotiation import GZIP_MIN_BYTES, accepts_gzip, etag_matches
from services.api.settings import ApiSettings
from services.api.view import Body
from services.auth import check_bearer, error_response

MAX_FILTER_LENGTH = 256

ETAG_DOC = "Validator of the body: send it back in ``If-None-Match`` to get 304 while unchanged"
SSE_DOC = (
    "Server-Sent Events. ``snapshot``: the ``/api/v1/nodes`` body (NodesResponse); ``node``: "
    "one changed entry (NodeEntry); ``node_deleted``: NodeDeletedEvent; ``meta``: MetaEvent; "
    "``shutdown``: ShutdownEvent, the last event when the replica stops; ``: keepalive`` "
    "comments in between. After a cut, reconnect: the new stream starts with a fresh snapshot."
)


def _not_ready() -> JSONResponse:
    return error_response(503, "not_ready", "the view is still being replayed from NATS")


def _conditional(body: Body, if_none_match: str | None, accept_encoding: str | None) -> Response:
    """A cached body as a JSON answer: its ETag, ``304`` when it matches, gzip when accepted."""
    gzipped = accepts_gzip(accept_encoding) and len(body.content) >= GZIP_MIN_BYTES
    # The gzip form has the same bytes once decoded: a weak validator (RFC 9110 8.8.1).
    etag = "W/" + body.etag if gzipped else body.etag
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if if_none_match is not None and etag_matches(body.etag, if_none_match):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(body.gzipped(), media_type="application/json", headers=headers)
    return Response(body.content, media_type="application/json", headers=headers)


def _lookup(feed: Feed | None, node_addr: str) -> tuple[Feed, NodeView] | JSONResponse:
    """The ready feed and the node with this address (or name), or the error answer."""
    if feed is None or not feed.ready.is_set():
        return _not_ready()
    view = feed.state.by_addr.get(node_addr) or feed.state.nodes.get(node_addr)
    if view is None:
        return error_response(
            404, "node_not_found", f"no node with address or name {node_addr[:200]!r}"
        )
    return feed, view


class SseLimiter:
    """Bounds SSE connections, in total and per client address."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open: Counter[str] = Counter()

    def acquire(self, client: str) -> bool:
        """Take a slot for ``client``; False when a limit is reached."""
        if sum(self.open.values()) >= self.total or self.open[client] >= self.per_client:
            return False
        self.open[client] += 1
        return True

    def release(self, client: str) -> None:
        """Give back a slot of ``client``."""
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class RuntimeView(Protocol):
    """What the routes need from the running API: the feed and the resync publisher."""

    feed: Feed | None
    publisher: "ResyncPublisher | None"


def nodes_router(runtime: RuntimeView, settings: ApiSettings) -> APIRouter:
    """Return the router of every ``/api/v1`` route; they answer 503 until the view is ready."""
    router = APIRouter(prefix="/api/v1")
    limiter = SseLimiter(settings.api_sse_max_clients, settings.api_sse_max_per_client)

    def _client(request: Request) -> str:
        """Who a request comes from (a trusted proxy's X-Forwarded-For, else the peer)."""
        return client_address(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            settings.api_trusted_proxies,
        )

    admin_token = settings.admin_token_value()

    @router.get(
        "/nodes",
        response_model=NodesResponse,
        responses={
            200: {"headers": {"ETag": {"description": ETAG_DOC, "schema": {"type": "string"}}}},
            304: {"description": "Not modified: ``If-None-Match`` holds the current ETag"},
            **error_responses(400, 422, 503),
        },
    )
    async def list_nodes(
        site: Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH)] = None,
        status: NodeStatus | None = None,
        meta: Annotated[
            list[str] | None, Query(description="key:value, repeatable; every pair must match")
        ] = None,
        if_none_match: Annotated[str | None, Header()] = None,
        accept_encoding: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Every node with its status, site, services count and node meta, from memory."""
        try:
            node_meta = parse_meta_filters(meta or ())
        except BadFilter as exc:
            return error_response(400, "bad_filter", str(exc))
        feed = runtime.feed
        if feed is None or not feed.ready.is_set():
            return _not_ready()
        body = feed.state.nodes_body(datetime.now(UTC), site, status, node_meta)
        return _conditional(body, if_none_match, accept_encoding)

    @router.get(
        "/sd/prometheus",
        response_model=list[TargetGroup],
        responses={
            200: {"headers": {"ETag": {"description": ETAG_DOC, "schema": {"type": "string"}}}},
            304: {"description": "Not modified: ``If-None-Match`` holds the current ETag"},
            **error_responses(422, 503),
        },
    )
    async def prometheus_sd(
        service: Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH)] = None,
        site: Annotated[str | None, Query(max_length=MAX_FILTER_LENGTH)] = None,
        if_none_match: Annotated[str | None, Header()] = None,
        accept_encoding: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Service instances as Prometheus ``http_sd_configs`` target groups, from memory."""
        feed = runtime.feed
        if feed is None or not feed.ready.is_set():
            return _not_ready()
        return _conditional(feed.state.sd_body(service, site), if_none_match, accept_encoding)

    @router.get(
        "/nodes/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": SSE_DOC,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **error_responses(429, 503),
        },
    )
    async def node_events(request: Request) -> Response:
        """Server-Sent Events: a snapshot, then one event per change, and keepalive comments."""
        feed = runtime.feed
        if feed is None or not feed.ready.is_set():
            return _not_ready()
        client = _client(request)
        if not limiter.acquire(client):
            return error_response(429, "too_many_streams", "close other event streams first")
        subscriber = Subscriber(client)
        snapshot = feed.state.nodes_body(datetime.now(UTC))
        feed.subscribers.add(subscriber)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\nevent: snapshot\ndata: " + snapshot.content + b"\n\n"
                while not subscriber.dropped:
                    try:
                        event, data = await asyncio.wait_for(
                            subscriber.queue.get(), settings.api_sse_keepalive_seconds
                        )
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    yield f"event: {event}\ndata: {data}\n\n".encode()
                    if event == SHUTDOWN_EVENT:
                        return
            finally:
                feed.subscribers.discard(subscriber)
                limiter.release(client)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/nodes/{node_addr}/services",
        response_model=NodeServicesResponse,
        responses=error_responses(404, 422, 503),
    )
    async def node_services(node_addr: str) -> Response:
        """The services of one node (by address, or by node name)."""
        found = _lookup(runtime.feed, node_addr)
        if isinstance(found, JSONResponse):
            return found
        feed, view = found
        meta = feed.state.meta
        services = {
            sid: ServiceDetail(
                ID=sid,
                Service=inst.name,
                Tags=list(inst.tags),
                Port=inst.port,
                Address=inst.address,
            )
            for sid, inst in view.services.items()
        }
        body = NodeServicesResponse(
            node=view.addr,
            node_name=view.node,
            services=services,
            total=len(services),
            services_status=view.services_status,
            error=view.error,
            active_server=meta.active_server if meta else "",
        )
        return Response(body.model_dump_json(), media_type="application/json")

    @router.get(
        "/nodes/{node_addr}/service-names",
        response_model=ServiceNamesResponse,
        responses=error_responses(404, 422, 503),
    )
    async def node_service_names(node_addr: str) -> Response:
        """The distinct service names of one node (by address, or by node name)."""
        found = _lookup(runtime.feed, node_addr)
        if isinstance(found, JSONResponse):
            return found
        feed, view = found
        meta = feed.state.meta
        body = ServiceNamesResponse(
            node=view.addr,
            node_name=view.node,
            data=list(view.service_names),
            total=len(view.service_names),
            active_server=meta.active_server if meta else "",
        )
        return Response(body.model_dump_json(), media_type="application/json")

    @router.post(
        "/admin/cache/nodes/flush",
        response_model=FlushResponse,
        responses={
            202: {"model": FlushResponse, "description": "Resync requested (without ``wait``)"},
            **error_responses(401, 403, 422, 503, 504),
        },
    )
    async def flush_nodes(
        request: Request,
        wait: bool = False,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Ask the enricher for a full resync; with ``wait=true``, wait for its new generation."""
        denied = check_bearer(authorization, admin_token)
        if denied is not None:
            return denied
        request_id = uuid.uuid4().hex
        client = _client(request)
        feed, publish_resync = runtime.feed, runtime.publisher
        if feed is None or publish_resync is None:
            return _not_ready()
        try:
            await publish_resync(
                ResyncRequested(
                    request_id=request_id,
                    requested_by=f"api flush from {client}",
                    reason="admin flush",
                )
            )
        except (nats.errors.Error, TimeoutError, OSError):
            return error_response(
                503, "nats_unavailable", "the resync could not be requested; retry later"
            )
        warning = "the view is never emptied: it is kept while Consul is read again"
        if not wait:
            body = FlushResponse(
                success=True,
                message="resync requested",
                keys_flushed=0,
                flushed_at=datetime.now(UTC),
                warning=warning,
                request_id=request_id,
            )
            return Response(body.model_dump_json(), media_type="application/json", status_code=202)
        done = await feed.wait_for(
            lambda state: state.meta is not None and request_id in state.meta.recent_resync_ids,
            settings.api_flush_wait_timeout,
        )
        meta = feed.state.meta
        body = FlushResponse(
            success=done,
            message="resync done" if done else "resync requested; not finished in time",
            keys_flushed=meta.last_resync_changed if done and meta else 0,
            flushed_at=datetime.now(UTC),
            warning=warning if done else "timed out waiting for the enricher",
            request_id=request_id,
            generation=meta.generation if meta else None,
        )
        return Response(
            body.model_dump_json(), media_type="application/json", status_code=200 if done else 504
        )

    return router


class ResyncPublisher:
    """Publishes ``ResyncRequested`` on the command subject of the event stream."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def __call__(self, request: ResyncRequested) -> None:
        """Publish one resync request."""
        await bus.publish_resync(self._js, request)

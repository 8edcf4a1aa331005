"""``NodeviewClient``: the HTTP API with ETag-aware polling and a self-healing event stream.

It needs only ``httpx`` and the models in ``contracts``; a test or a proxy can hand it its own
``httpx.AsyncClient`` (for instance one with a mock transport).
"""

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from contracts.views import (
    ErrorResponse,
    FlushResponse,
    NodeServicesResponse,
    NodesResponse,
    ServiceNamesResponse,
)
from nodeview_client.events import SHUTDOWN, NodeEvent, SseParser, decode, raw_events

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = 10.0
"""Seconds for connecting and for each read of an ordinary request."""

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
"""Pause before reconnecting the event stream: the server's ``retry`` hint (or the minimum),
doubling while connections keep failing, up to the maximum."""

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Answers of the event stream that mean "try again later" (not ready, too many streams, …)."""


class NodeviewError(Exception):
    """The API answered an error: its status and its ``{success, error, detail}`` body."""

    def __init__(self, status: int, error: str, detail: str | None) -> None:
        super().__init__(f"{status} {error}: {detail}" if detail else f"{status} {error}")
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True)
class NodesPoll:
    """One poll of ``/api/v1/nodes``: the body, its ETag, and whether it changed since the last."""

    nodes: NodesResponse
    etag: str
    changed: bool


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = ErrorResponse.model_validate_json(response.content)
    except ValueError:
        raise NodeviewError(response.status_code, "http_error", response.text[:200]) from None
    raise NodeviewError(response.status_code, body.error, body.detail)


class NodeviewClient:
    """A client of one nodeview API (a replica, or a load balancer in front of several)."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        admin_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._admin_token = admin_token
        self._polls: dict[tuple[str | None, str | None], NodesPoll] = {}

    async def __aenter__(self) -> Self:
        """Use the client in ``async with``; it is closed at the end."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, if this object made it."""
        if self._own_http:
            await self._http.aclose()

    async def _get(self, path: str, model: type[M], params: Mapping[str, Any] | None = None) -> M:
        response = await self._http.get(self.base_url + path, params=params)
        _raise_for_error(response)
        return model.model_validate_json(response.content)

    async def poll_nodes(self, *, site: str | None = None, status: str | None = None) -> NodesPoll:
        """``GET /api/v1/nodes`` with the last ETag of these filters: a 304 reuses the last body."""
        key = (site, status)
        last = self._polls.get(key)
        params = {name: value for name, value in (("site", site), ("status", status)) if value}
        headers = {"If-None-Match": last.etag} if last is not None else {}
        response = await self._http.get(
            self.base_url + "/api/v1/nodes", params=params, headers=headers
        )
        if response.status_code == 304 and last is not None:
            poll = NodesPoll(last.nodes, response.headers.get("ETag", last.etag), changed=False)
        else:
            _raise_for_error(response)
            body = NodesResponse.model_validate_json(response.content)
            poll = NodesPoll(body, response.headers.get("ETag", ""), changed=True)
        self._polls[key] = poll
        return poll

    async def nodes(self, *, site: str | None = None, status: str | None = None) -> NodesResponse:
        """Every node (with the filters), revalidated with its ETag: unchanged costs a 304."""
        return (await self.poll_nodes(site=site, status=status)).nodes

    async def node_services(self, node: str) -> NodeServicesResponse:
        """The services of one node, by address or name."""
        return await self._get(
            f"/api/v1/nodes/{quote(node, safe='')}/services", NodeServicesResponse
        )

    async def node_service_names(self, node: str) -> ServiceNamesResponse:
        """The distinct service names of one node, by address or name."""
        return await self._get(
            f"/api/v1/nodes/{quote(node, safe='')}/service-names", ServiceNamesResponse
        )

    async def flush(self, *, wait: bool = False) -> FlushResponse:
        """Ask for a full resync (needs ``admin_token``); with ``wait``, until it is visible."""
        headers = {"Authorization": f"Bearer {self._admin_token}"} if self._admin_token else {}
        response = await self._http.post(
            self.base_url + "/api/v1/admin/cache/nodes/flush",
            params={"wait": "true"} if wait else None,
            headers=headers,
        )
        _raise_for_error(response)
        return FlushResponse.model_validate_json(response.content)

    async def events(
        self,
        *,
        reconnect_min: float = RECONNECT_MIN_SECONDS,
        reconnect_max: float = RECONNECT_MAX_SECONDS,
    ) -> AsyncIterator[NodeEvent]:
        """Follow ``/api/v1/nodes/events`` for ever, reconnecting after any cut.

        Every connection starts with a ``Snapshot``: replace what you hold with it, then apply
        the changes that follow. A cut (network error, a replica stopping, a 503) is followed by a
        pause and a new connection — and so by a fresh snapshot, never by a gap.
        """
        delay = reconnect_min
        url = self.base_url + "/api/v1/nodes/events"
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        while True:
            parser = SseParser()
            try:
                async with self._http.stream("GET", url, timeout=timeout) as response:
                    if response.status_code in RETRYABLE_STATUSES:
                        await response.aread()
                    else:
                        if response.status_code >= 400:
                            await response.aread()
                            _raise_for_error(response)
                        async for raw in raw_events(response.aiter_lines(), parser):
                            if raw.event == SHUTDOWN:
                                break
                            event = decode(raw)
                            if event is not None:
                                delay = reconnect_min
                                yield event
            except httpx.TransportError:
                pass
            hint = parser.retry_ms / 1000 if parser.retry_ms is not None else reconnect_min
            await asyncio.sleep(min(max(delay, hint), reconnect_max))
            delay = min(delay * 2, reconnect_max)

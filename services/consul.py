"""Consul HTTP client shared by relay and enricher: pooled, ordered fallback, retries, bounded."""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from contracts.events import SERF_CHECK
from services import metrics
from services.backoff import next_backoff
from services.config import ConsulSettings
from services.consul_probe import ServerProbe, ServerUnresponsive
from services.telemetry import tracer

log = logging.getLogger("nodeview.consul")

SERVER_COOLDOWN_SECONDS = 10.0
"""How long a failed server is tried only after the healthy ones (doubling while it fails)."""

SERVER_COOLDOWN_MAX_SECONDS = 300.0
"""Longest such cooldown of a server that keeps failing."""

OUTAGE_BACKOFF_MIN_SECONDS = 0.5
"""First pause of reads after every server failed (refused, 5xx, 429); doubled while it lasts."""

OUTAGE_BACKOFF_MAX_SECONDS = 5.0
"""Longest pause of reads during an outage, so that recovery is noticed quickly."""

FILTERED_BY_ACLS_HEADER = "X-Consul-Results-Filtered-By-ACLs"
"""Set to ``true`` by Consul when the token's ACLs removed items from a list answer."""

OUTAGE_ENDPOINTS = 2
"""Endpoints every server refuses at once that make an outage of Consul (pause every read);
a single one is that endpoint's problem and pauses only its own path."""

ALL_PATHS = ""
"""Pause key of every read (no request path is empty)."""

SERF_FILTER = f'CheckID == "{SERF_CHECK}"'
"""go-bexpr filter keeping the Serf health check of each node (a Consul that predates filters
ignores it and answers every check: readers pick ``serfHealth`` either way)."""

UI_SERVICES = "/v1/internal/ui/services"
"""Consul's own UI summary of every service name (an internal endpoint: it may be refused)."""

UI_NODES = "/v1/internal/ui/nodes"
"""Consul's own UI dump of every node with its services and checks (internal, may be refused)."""

BLOCKING_WAIT_MAX_SECONDS = 600.0
"""Consul caps ``wait`` at 10 minutes."""


class ConsulError(Exception):
    """A Consul request did not produce a usable answer."""

    def __init__(self, message: str, *, endpoint: str, server: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.server = server


class ConsulUnavailable(ConsulError):
    """Every configured Consul server failed (connect error, timeout or 5xx), retries included."""


class ConsulTimeout(ConsulUnavailable):
    """The last attempt on every server timed out."""


class ConsulHTTPError(ConsulError):
    """Consul answered with a 4xx status; another server would answer the same."""

    def __init__(
        self, message: str, *, endpoint: str, server: str, status: int, index: int | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint, server=server)
        self.status = status
        self.index = index


class ConsulNotFound(ConsulHTTPError):
    """Consul answered 404."""


class ConsulACLDenied(ConsulHTTPError):
    """Consul answered 403: the ACL token is missing, unknown or lacks permission."""


class ConsulBadResponse(ConsulError):
    """Consul answered 2xx with a body that is not JSON."""


def error_type(exc: BaseException) -> str:
    """Return a short, bounded label for an error, for metrics and logs."""
    if isinstance(exc, ConsulTimeout):
        return "timeout"
    if isinstance(exc, ConsulUnavailable):
        return "unavailable"
    if isinstance(exc, ConsulACLDenied):
        return "acl_denied"
    if isinstance(exc, ConsulNotFound):
        return "not_found"
    if isinstance(exc, ConsulHTTPError):
        return "http_4xx"
    if isinstance(exc, ConsulBadResponse):
        return "bad_response"
    return "error"


@dataclass(frozen=True)
class ConsulResponse:
    """A decoded Consul answer with its consistency headers and the server that gave it."""

    data: Any
    index: int | None
    known_leader: bool | None
    last_contact_ms: int | None
    server: str
    filtered_by_acls: bool = False
    """Consul left out items the token may not read (``X-Consul-Results-Filtered-By-ACLs``)."""


class _ServerFailure(Exception):
    """One server failed in a way that allows falling back to the next one."""

    def __init__(self, status: str, *, timeout: bool) -> None:
        super().__init__(status)
        self.status = status
        self.timeout = timeout


def server_label(url: str) -> str:
    """Return ``host:port`` of a server URL (never its ``user:password@``), shown everywhere."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class ConsulClient:
    """One pooled client for every Consul read of a process."""

    def __init__(
        self,
        settings: ConsulSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        extra_connections: int = 8,
    ) -> None:
        self._settings = settings
        self._servers = list(settings.consul_servers)
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(settings.consul_semaphore_limit)
        self._failed_until: dict[str, float] = {}
        self._cooldown: dict[str, float] = {}
        self._refused_until: dict[tuple[str, str], float] = {}
        self._outage_until: dict[str, float] = {}
        self._outage_backoff: dict[str, float] = {}
        """Per path (and ``ALL_PATHS``): one that every server refuses pauses its own reads.

        Entries go once a read of the path succeeds, or once the path is no longer tried."""
        self._failing_endpoints: dict[str, float] = {}
        """Endpoint template → when every server last refused it (an outage spans several)."""
        headers = {"Accept": "application/json", "User-Agent": "nodeview"}
        token = settings.consul_token_value()
        if token is not None:
            headers["X-Consul-Token"] = token.get_secret_value()
        limit = settings.consul_semaphore_limit + extra_connections
        self._http = httpx.AsyncClient(
            headers=headers,
            transport=transport,
            verify=settings.tls_verify(),
            # Namespace and partition (Consul Enterprise) go with every request when set.
            params=settings.consul_query_params(),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=settings.consul_catalog_timeout,
        )
        self._probe = ServerProbe(self._http)
        self.active_server: str = server_label(self._servers[0])
        """``host:port`` of the server that gave the last successful answer."""

    @property
    def main_server(self) -> str:
        """Return ``host:port`` of the first configured server."""
        return server_label(self._servers[0])

    async def aclose(self) -> None:
        """Stop probing and close the connection pool."""
        await self._probe.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> "ConsulClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _ordered_servers(self) -> list[str]:
        now = time.monotonic()
        healthy = [s for s in self._servers if self._failed_until.get(s, 0.0) <= now]
        cooling = sorted(
            (s for s in self._servers if s not in healthy), key=lambda s: self._failed_until[s]
        )
        return healthy + cooling

    async def get(
        self,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        index: int | None = None,
        wait: float | None = None,
    ) -> ConsulResponse:
        """GET ``path`` with fallback and retries; a blocking query when ``index`` is given."""
        query: dict[str, str] = dict(params or {})
        if self._settings.consul_stale:
            query["stale"] = ""
        if self._settings.consul_datacenter and "dc" not in query:
            query["dc"] = self._settings.consul_datacenter
        blocking = index is not None and index > 0
        timeout = self._settings.consul_catalog_timeout
        if blocking:
            wait_s = min(wait if wait is not None else 300.0, BLOCKING_WAIT_MAX_SECONDS)
            query["index"] = str(index)
            query["wait"] = f"{int(wait_s * 1000)}ms"
            timeout = wait_s + wait_s / 16 + self._settings.consul_catalog_timeout
        self._check_outage(blocking, path, endpoint)
        attempts = self._settings.consul_max_retries + 1
        last: _ServerFailure | None = None
        paused_by_us = False  # the call that pauses reads still makes its own retries
        for attempt in range(attempts):
            if attempt:
                delay = self._settings.consul_retry_delay * (2 ** (attempt - 1))
                delay *= 0.5 + random.random()
                trace.get_current_span().add_event(
                    "consul.retry", {"attempt": attempt + 1, "delay_s": round(delay, 3)}
                )
                await self._sleep(delay)
            tried: set[str] = set()
            while len(tried) < len(self._servers):
                try:
                    if blocking:
                        server = self._next_server(tried)
                        response = await self._once(
                            server, path, endpoint, query, timeout, blocking
                        )
                    else:
                        async with self._semaphore:
                            # Chosen once the slot is ours: servers that failed meanwhile go
                            # last, and once every server failed, queued reads are not sent.
                            if not paused_by_us:
                                self._check_outage(blocking, path, endpoint)
                            server = self._next_server(tried)
                            response = await self._traced(server, path, endpoint, query, timeout)
                except _ServerFailure as failure:
                    last = failure
                    now = time.monotonic()
                    # A server that keeps failing is tried first again less and less often.
                    cooldown = next_backoff(
                        self._cooldown.get(server, 0.0),
                        SERVER_COOLDOWN_SECONDS,
                        SERVER_COOLDOWN_MAX_SECONDS,
                    )
                    self._cooldown[server] = cooldown
                    self._failed_until[server] = now + cooldown
                    if not failure.timeout:
                        self._refused_until[(server, path)] = now + SERVER_COOLDOWN_SECONDS
                        if not blocking and all(
                            self._refused_until.get((s, path), 0.0) > now for s in self._servers
                        ):
                            paused_by_us = self._open_outage(path, endpoint) or paused_by_us
                    label = server_label(server)
                    metrics.CONSUL_SERVER_FALLBACK.labels(label, failure.status).inc()
                    trace.get_current_span().add_event(
                        "consul.fallback", {"server": label, "status": failure.status}
                    )
                    log.warning(
                        "consul server failed",
                        extra={
                            "event": "consul.server_failed",
                            "server": label,
                            "endpoint": endpoint,
                            "reason": failure.status,
                            "attempt": attempt + 1,
                        },
                    )
                else:
                    self._refused_until.pop((server, path), None)
                    self._failing_endpoints.pop(endpoint, None)
                    for key in (path, ALL_PATHS):
                        self._outage_backoff.pop(key, None)
                        self._outage_until.pop(key, None)
                    return response
        assert last is not None
        if not blocking and not last.timeout:
            self._open_outage(path, endpoint)
        cls = ConsulTimeout if last.timeout else ConsulUnavailable
        raise cls(
            f"every Consul server failed for {endpoint} (last: {last.status})", endpoint=endpoint
        )

    def _next_server(self, tried: set[str]) -> str:
        """Take the first server not yet tried by this attempt, healthy ones before cooling ones."""
        server = next(s for s in self._ordered_servers() if s not in tried)
        tried.add(server)
        return server

    def _check_outage(self, blocking: bool, path: str, endpoint: str) -> None:
        """Fail fast while reads are paused after every server failed (blocking queries go)."""
        now = time.monotonic()
        paused = max(self._outage_until.get(path, 0.0), self._outage_until.get(ALL_PATHS, 0.0))
        if not blocking and now < paused:
            raise ConsulUnavailable(
                f"every Consul server failed recently; {endpoint} not sent", endpoint=endpoint
            )

    def _open_outage(self, path: str, endpoint: str) -> bool:
        """Pause reads of ``path`` after every server failed it (doubling while it lasts).

        When every server refuses several endpoints at once, Consul itself is down: every read
        pauses, so that an outage costs a few probes, not one read per node and service name.
        Returns True if this call paused reads.
        """
        now = time.monotonic()
        self._forget_old_failures(now)
        self._failing_endpoints[endpoint] = now
        failing = sum(
            1 for at in self._failing_endpoints.values() if now - at < SERVER_COOLDOWN_SECONDS
        )
        paused = self._pause(path, endpoint, now)
        if failing >= OUTAGE_ENDPOINTS:
            paused = self._pause(ALL_PATHS, "every endpoint", now) or paused
        return paused

    def _forget_old_failures(self, now: float) -> None:
        """Drop failures of paths not tried for a while (nodes that left, names gone)."""
        horizon = now - 2 * max(OUTAGE_BACKOFF_MAX_SECONDS, SERVER_COOLDOWN_SECONDS)
        for key in [k for k, until in self._outage_until.items() if until < horizon]:
            del self._outage_until[key]
            self._outage_backoff.pop(key, None)
        for pair in [p for p, until in self._refused_until.items() if until < horizon]:
            del self._refused_until[pair]

    def _pause(self, key: str, endpoint: str, now: float) -> bool:
        """Pause the reads of ``key`` (doubling its back-off); False if already paused."""
        if now < self._outage_until.get(key, 0.0):
            return False  # another read of the same moment already paused them
        backoff = next_backoff(
            self._outage_backoff.get(key, 0.0),
            OUTAGE_BACKOFF_MIN_SECONDS,
            OUTAGE_BACKOFF_MAX_SECONDS,
        )
        self._outage_backoff[key] = backoff
        self._outage_until[key] = now + backoff
        log.warning(
            "every consul server failed; pausing reads",
            extra={"event": "consul.outage", "endpoint": endpoint, "pause_s": round(backoff, 2)},
        )
        return True

    async def _traced(
        self, server: str, path: str, endpoint: str, query: dict[str, str], request_timeout: float
    ) -> ConsulResponse:
        """Run one non-blocking request inside a client span."""
        parts = urlsplit(server)
        with tracer().start_as_current_span(
            f"GET {endpoint}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.template": endpoint,
                "server.address": parts.hostname or "",
                "server.port": parts.port or 0,
                "nodeview.consul.server": server_label(server),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await self._once(server, path, endpoint, query, request_timeout, False)
            except ConsulHTTPError as exc:
                span.set_attribute("http.response.status_code", exc.status)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
            except (ConsulError, _ServerFailure) as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
            span.set_attribute("http.response.status_code", 200)
            if response.index is not None:
                span.set_attribute("nodeview.consul.index", response.index)
            return response

    async def _once(
        self,
        server: str,
        path: str,
        endpoint: str,
        query: dict[str, str],
        request_timeout: float,
        blocking: bool,
    ) -> ConsulResponse:
        label = server_label(server)
        started = time.perf_counter()
        try:
            request = self._http.get(server + path, params=query, timeout=request_timeout)
            response = await (self._probe.guard(server, request) if blocking else request)
        except ServerUnresponsive as exc:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "timeout").inc()
            raise _ServerFailure("unresponsive", timeout=True) from exc
        except httpx.TimeoutException as exc:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "timeout").inc()
            raise _ServerFailure("timeout", timeout=True) from exc
        except httpx.TransportError as exc:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "error").inc()
            raise _ServerFailure("connect_error", timeout=False) from exc
        if not blocking:
            metrics.CONSUL_REQUEST_DURATION.labels(endpoint, label).observe(
                time.perf_counter() - started
            )
        status = response.status_code
        if status >= 500 or status == 429:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "http_5xx").inc()
            raise _ServerFailure(str(status), timeout=False)
        if status >= 400:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "http_4xx").inc()
            message = f"Consul answered {status} for {endpoint}: {response.text[:200]}"
            error_cls: type[ConsulHTTPError] = ConsulHTTPError
            if status == 404:
                error_cls = ConsulNotFound
            elif status == 403:
                error_cls = ConsulACLDenied
            raise error_cls(
                message,
                endpoint=endpoint,
                server=label,
                status=status,
                index=_parse_int(response.headers.get("X-Consul-Index")),
            )
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            metrics.CONSUL_REQUESTS.labels(endpoint, label, "bad_response").inc()
            raise ConsulBadResponse(
                f"Consul answered non-JSON for {endpoint}", endpoint=endpoint, server=label
            ) from exc
        metrics.CONSUL_REQUESTS.labels(endpoint, label, "ok").inc()
        self._failed_until.pop(server, None)
        self._cooldown.pop(server, None)
        self.active_server = label
        leader = response.headers.get("X-Consul-KnownLeader")
        return ConsulResponse(
            data=data,
            index=_parse_int(response.headers.get("X-Consul-Index")),
            known_leader=None if leader is None else leader == "true",
            last_contact_ms=_parse_int(response.headers.get("X-Consul-LastContact")),
            server=label,
            filtered_by_acls=response.headers.get(FILTERED_BY_ACLS_HEADER, "").lower() == "true",
        )

    async def members(self) -> ConsulResponse:
        """Read the agent's LAN members (Serf status); never blocks."""
        return await self.get("/v1/agent/members", endpoint="/v1/agent/members")

    async def catalog_nodes(
        self, *, index: int | None = None, wait: float | None = None
    ) -> ConsulResponse:
        """Read every node of the catalog."""
        return await self.get(
            "/v1/catalog/nodes", endpoint="/v1/catalog/nodes", index=index, wait=wait
        )

    async def catalog_services(
        self, *, index: int | None = None, wait: float | None = None
    ) -> ConsulResponse:
        """Read every service name of the catalog with its tags."""
        return await self.get(
            "/v1/catalog/services", endpoint="/v1/catalog/services", index=index, wait=wait
        )

    async def catalog_service(self, name: str) -> ConsulResponse:
        """Read every instance of one service."""
        return await self.get(
            "/v1/catalog/service/" + quote(name, safe=""), endpoint="/v1/catalog/service/{name}"
        )

    async def node_services(self, node: str) -> ConsulResponse:
        """Read the services registered on one node."""
        return await self.get(
            "/v1/catalog/node-services/" + quote(node, safe=""),
            endpoint="/v1/catalog/node-services/{node}",
        )

    async def health_state(
        self,
        state: str = "any",
        *,
        index: int | None = None,
        wait: float | None = None,
        filter_expr: str | None = None,
    ) -> ConsulResponse:
        """Read the health checks in ``state``, those ``filter_expr`` (go-bexpr) keeps."""
        return await self.get(
            "/v1/health/state/" + quote(state, safe=""),
            endpoint="/v1/health/state/{state}",
            params={"filter": filter_expr} if filter_expr else None,
            index=index,
            wait=wait,
        )

    async def serf_health(
        self, *, index: int | None = None, wait: float | None = None
    ) -> ConsulResponse:
        """Read every node's ``serfHealth`` check, and only those."""
        return await self.health_state("any", index=index, wait=wait, filter_expr=SERF_FILTER)

    async def ui_services(self) -> ConsulResponse:
        """Read the summary of every service name: its nodes and instance count (internal)."""
        return await self.get(UI_SERVICES, endpoint=UI_SERVICES)

    async def ui_nodes(self) -> ConsulResponse:
        """Read every node with its services and checks in one answer (internal)."""
        return await self.get(UI_NODES, endpoint=UI_NODES)

    async def kv_get(
        self, key: str, *, index: int | None = None, wait: float | None = None
    ) -> ConsulResponse:
        """Read one KV entry; ``data`` is the entry object, or ``None`` when the key is missing."""
        try:
            response = await self.get(
                "/v1/kv/" + quote(key, safe="/"), endpoint="/v1/kv/{key}", index=index, wait=wait
            )
        except ConsulNotFound as exc:
            return ConsulResponse(
                data=None,
                index=exc.index,
                known_leader=None,
                last_contact_ms=None,
                server=exc.server or "",
            )
        data = response.data
        entry = data[0] if isinstance(data, list) and data else None
        return ConsulResponse(
            data=entry,
            index=response.index,
            known_leader=response.known_leader,
            last_contact_ms=response.last_contact_ms,
            server=response.server,
        )

    async def event_list(
        self, name: str, *, index: int | None = None, wait: float | None = None
    ) -> ConsulResponse:
        """Read the recent user events called ``name``."""
        return await self.get(
            "/v1/event/list",
            endpoint="/v1/event/list",
            params={"name": name},
            index=index,
            wait=wait,
        )

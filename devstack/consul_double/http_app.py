"""ASGI application of one server of the double: routing, faults, ACL, consistency and blocking."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from devstack.consul_double import consul_routes
from devstack.consul_double.consul_routes import Handler
from devstack.consul_double.errors import BadFilter, HttpError
from devstack.consul_double.filtering import Field, Predicate, compile_filter
from devstack.consul_double.protocol import (
    Pattern,
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    read_request,
    sleep_unless_gone,
    text_reply,
    wait_disconnect,
)
from devstack.consul_double.queries import Answer, everything
from devstack.consul_double.querying import (
    CUT,
    GONE,
    Call,
    Cut,
    Gone,
    Outcome,
    QueryOptions,
    blocking_timeout,
)
from devstack.consul_double.tenancy import check_tenancy

if TYPE_CHECKING:
    from devstack.consul_double.server import ConsulDouble

CONTROL_PREFIX = "/_double/"
"""Path prefix of the control API (never counted, never ACL-checked)."""

UNMATCHED_ENDPOINT = "unmatched"
"""Endpoint template under which requests to unknown routes are counted."""

INTERNAL_PREFIX = "/v1/internal/"
"""Path prefix of Consul's internal (UI) endpoints, which a fault can refuse."""

NO_LEADER = "No cluster leader"
"""Error text of a read or write that needs a leader when there is none."""

PERMISSION_DENIED = "Permission denied"
"""Error text of Consul's ACL denial (``acl.ErrPermissionDenied``)."""

RPC_ERROR_PREFIX = "rpc error making call: "
"""How an error raised by the leader reads after a follower forwarded the RPC to it."""

FILTER_ERROR_STATUS = 500
"""Status of a refused ``?filter=``: Consul returns the evaluator's error as a plain RPC error."""


@dataclass(frozen=True)
class Route:
    """A Consul endpoint: methods, path template and handler."""

    methods: tuple[str, ...]
    pattern: Pattern
    handler: Handler


class ServerApp:
    """The HTTP face of one server; all servers share the double's state, faults and counters."""

    def __init__(self, double: "ConsulDouble", server: int) -> None:
        """Bind the app to its double and server index."""
        self.double = double
        self.server = server
        self.state = double.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive, self.server)
        if request.path.startswith(CONTROL_PREFIX):
            await (await self.double.control.handle(request)).send(send)
            return
        route, params = _route(request)
        endpoint = route.pattern.template if route else UNMATCHED_ENDPOINT
        counters = self.double.counters
        counters.started(self.server, endpoint, request.method)
        disconnected = asyncio.ensure_future(wait_disconnect(receive))
        try:
            outcome = await self._serve(Call(request, params, disconnected), route)
            if isinstance(outcome, Reply):
                await outcome.send(send)
            elif isinstance(outcome, Cut):
                await _drop(send)
        finally:
            disconnected.cancel()
            counters.finished(endpoint)

    async def _serve(self, call: Call, route: Route | None) -> Outcome:
        """Apply latency, injected errors, routing and ACL, then run the handler."""
        request = call.request
        latency = self.double.faults.latency_for(self.server, request.path)
        if latency > 0 and not await sleep_unless_gone(latency, call.disconnected):
            return GONE
        status = self.double.faults.take_error(self.server)
        if status is not None:
            return text_reply(status, f"{RPC_ERROR_PREFIX}injected failure ({status})")
        refusal = self._internal_refusal(request)
        if route is None or refusal == 404:
            return text_reply(404, "404 page not found\n")
        if request.method not in route.methods:
            return text_reply(405, f"method {request.method} not allowed")
        try:
            check_tenancy(request, route.pattern.template)
            self._check_acl(request)
            self._check_rights(refusal)
            return await route.handler(self, call)
        except HttpError as error:
            return text_reply(error.status, error.text)

    def _check_rights(self, refusal: int | None) -> None:
        """A token refused the internal endpoints is denied as Consul's ACL check denies it."""
        if refusal == 403:
            raise HttpError(403, PERMISSION_DENIED)

    def _internal_refusal(self, request: Request) -> int | None:
        """The status an injected refusal of the internal endpoints gives this request, if any."""
        if not request.path.startswith(INTERNAL_PREFIX):
            return None
        return self.double.faults.internal_endpoints

    def _check_acl(self, request: Request) -> None:
        """Require the ACL token (header, bearer or ``?token``) on every ACL-protected endpoint."""
        expected = self.double.acl_token
        if expected is None or request.path.startswith("/v1/status/"):
            return
        token = request.headers.get("x-consul-token") or request.query.get("token")
        authorization = request.headers.get("authorization", "")
        if not token and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if not token:
            raise HttpError(403, PERMISSION_DENIED)
        if token != expected:
            raise HttpError(403, "ACL not found")

    def check_dc(self, dc: str | None) -> None:
        """Reject a datacenter the cluster cannot reach."""
        if dc is not None and dc != self.state.datacenter:
            raise HttpError(500, "No path to datacenter")

    def check_consistency(self, options: QueryOptions) -> bool:
        """Whether a leader is known; non-stale reads fail without one, as forwarding would."""
        known = self.double.cluster.has_leader()
        if not known and not options.stale:
            raise HttpError(500, NO_LEADER)
        return known

    def check_write(self, request: Request) -> None:
        """Writes go through raft: they need the datacenter and a leader."""
        self.check_dc(request.query.get("dc") or None)
        if not self.double.cluster.has_leader():
            raise HttpError(500, NO_LEADER)

    async def read(self, call: Call, query: Callable[[], Answer]) -> Outcome:
        """Answer a catalog/health/KV read with Consul's consistency and blocking semantics."""
        options = QueryOptions.parse(call.request)
        self.check_dc(options.dc)
        self.check_consistency(options)
        return await self._answer(call, options, query)

    async def read_filtered(
        self,
        call: Call,
        item: Field,
        query: Callable[[Predicate], Answer],
        *,
        internal: bool = False,
    ) -> Outcome:
        """A list read whose items pass ``?filter=``, checked where the server's RPC checks it.

        The filter is refused after forwarding (so a missing leader or datacenter is reported
        first) and before blocking. The index stays the table's: a filtered blocking query
        wakes on any change of what it reads, as in Consul. The internal UI handlers retry as
        stale reads when there is no leader, and do not report an effective consistency.
        """
        options = QueryOptions.parse(call.request)
        self.check_dc(options.dc)
        if internal and not self.double.cluster.has_leader():
            options = replace(options, stale=True)
        self.check_consistency(options)
        keep = self._item_filter(call.request, item, options)
        try:
            return await self._answer(call, options, lambda: query(keep), internal=internal)
        except HttpError as error:
            if not internal or options.stale or error.text != NO_LEADER:
                raise
        stale = replace(options, stale=True)
        return await self._answer(call, stale, lambda: query(keep), internal=True)

    def _item_filter(self, request: Request, item: Field, options: QueryOptions) -> Predicate:
        """The ``?filter=`` predicate (none when empty), or the error the RPC would return."""
        expression = request.query.get("filter") or ""
        if not expression:
            return everything
        try:
            return compile_filter(expression, item)
        except BadFilter as error:
            forwarded = not options.stale and self.server != self.double.cluster.leader
            prefix = RPC_ERROR_PREFIX if forwarded else ""
            raise HttpError(FILTER_ERROR_STATUS, f"{prefix}{error}") from None

    async def _answer(
        self,
        call: Call,
        options: QueryOptions,
        query: Callable[[], Answer],
        *,
        internal: bool = False,
    ) -> Outcome:
        """Run (and, with ``index``, block on) a checked read and reply with its query meta."""
        answer = query()
        if options.index > 0 and answer.index <= options.index:
            blocked = await self.block(call, options, query, events=False)
            if not isinstance(blocked, Answer):
                return blocked
            answer = blocked
        # A key the token may not read is a 403 (the ACL check), never a filtered answer.
        filterable = not call.request.path.startswith("/v1/kv/")
        known_leader = self.check_consistency(options)
        return self._reply(
            answer, options, known_leader, filterable=filterable, effective=not internal
        )

    async def block(
        self, call: Call, options: QueryOptions, query: Callable[[], Answer], *, events: bool
    ) -> Answer | Cut | Gone:
        """Hold the query until its index moves past ``options.index`` or the wait elapses."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + blocking_timeout(options.wait, jitter=not events)
        waiter = self.state.hub.register(self.server)
        try:
            while True:
                waiter.event.clear()
                if not events:
                    self.check_consistency(options)
                answer = query()
                unchanged = (
                    answer.index == options.index if events else answer.index <= options.index
                )
                remaining = deadline - loop.time()
                if not unchanged or waiter.restored or remaining <= 0:
                    return answer
                woken: asyncio.Future[Any] = asyncio.ensure_future(waiter.event.wait())
                try:
                    await asyncio.wait(
                        {woken, call.disconnected},
                        timeout=remaining,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
                if call.disconnected.done():
                    return GONE
                if waiter.cut:
                    return CUT
        finally:
            self.state.hub.unregister(waiter)

    def _reply(
        self,
        answer: Answer,
        options: QueryOptions,
        known_leader: bool,
        *,
        filterable: bool = True,
        effective: bool = True,
    ) -> Reply:
        """Build the reply of a read with Consul's query-meta headers."""
        filtered = (
            filterable and self.double.faults.acl_filtered and isinstance(answer.body, list | dict)
        )
        if filtered:
            # As Consul answers a token without read rights: 200, nothing readable, and says so.
            answer = Answer.of(answer.index, [] if isinstance(answer.body, list) else {})
        reply = consul_routes.body_reply(answer, options.pretty)
        if filtered:
            reply.headers.append((FILTERED_BY_ACLS_HEADER, "true"))
        if effective:
            reply.headers.append(("X-Consul-Effective-Consistency", options.level))
        reply.headers += [
            ("X-Consul-Index", str(answer.index)),
            ("X-Consul-KnownLeader", "true" if known_leader else "false"),
            ("X-Consul-LastContact", str(self._last_contact(options))),
            ("X-Consul-Query-Backend", "blocking-query"),
        ]
        return reply

    def _last_contact(self, options: QueryOptions) -> int:
        """Stale reads are answered locally (a follower lags); others by the leader (0)."""
        if options.stale:
            return self.double.cluster.last_contact_ms(self.server)
        return 0


FILTERED_BY_ACLS_HEADER = "X-Consul-Results-Filtered-By-ACLs"
"""Set by Consul when ACLs removed items from a list answer."""


def _route(request: Request) -> tuple[Route | None, dict[str, str]]:
    """Find the route of a path (first match wins); methods are checked later."""
    for route in ROUTES:
        params = route.pattern.match(request.path)
        if params is not None:
            return route, params
    return None, {}


async def _drop(send: Send) -> None:
    """Start an answer and abandon it, so the server closes the connection mid-response."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": True})


ROUTES: list[Route] = [
    Route(methods, Pattern.of(template), handler)
    for methods, template, handler in consul_routes.TABLE
]

"""Control API under ``/_double/``: the HTTP face of the double's state and fault methods."""

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from devstack.consul_double.errors import (
    ConsulDoubleError,
    HttpError,
    UnknownNode,
    UnknownServer,
    UnknownService,
)
from devstack.consul_double.protocol import Pattern, Reply, Request, json_reply

if TYPE_CHECKING:
    from devstack.consul_double.server import ConsulDouble

ControlHandler = Callable[["ControlApi", Request, dict[str, str]], Awaitable[Any]]


def _payload(request: Request) -> dict[str, Any]:
    """The JSON object body of a control request (``{}`` when empty)."""
    try:
        body = request.json()
    except ValueError as error:
        raise HttpError(400, f"invalid JSON body: {error}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


def _get(payload: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    """A typed field of a control payload; 400 when missing (without default) or mistyped."""
    if name not in payload or payload[name] is None:
        if default is ...:
            raise HttpError(400, f"missing field {name!r}")
        return default
    value = payload[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HttpError(400, f"field {name!r} must be {kind.__name__}")
    return value


def _server(raw: str) -> int:
    """A server index from a path segment."""
    try:
        return int(raw)
    except ValueError:
        raise HttpError(400, f"bad server index {raw!r}") from None


class ControlApi:
    """Routes ``/_double/...`` requests to the same methods the Python API exposes."""

    def __init__(self, double: "ConsulDouble") -> None:
        """Bind to the double it controls."""
        self.double = double

    async def handle(self, request: Request) -> Reply:
        """Authenticate, route and answer one control request (JSON in and out)."""
        token = self.double.control_token
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return json_reply({"error": "missing or invalid control token"}, status=401)
        path = request.path.removeprefix("/_double")
        for method, pattern, handler in _ROUTES:
            params = pattern.match(path)
            if params is None or method != request.method:
                continue
            try:
                result = await handler(self, request, params)
            except HttpError as error:
                return json_reply({"error": error.text}, status=error.status)
            except (UnknownNode, UnknownService, UnknownServer) as error:
                return json_reply({"error": str(error)}, status=404)
            except (ConsulDoubleError, ValueError) as error:
                return json_reply({"error": str(error)}, status=400)
            return json_reply(result)
        return json_reply(
            {"error": f"no control route {request.method} {request.path}"}, status=404
        )

    async def state(self, request: Request, params: dict[str, str]) -> Any:
        """Snapshot of state, topology and faults."""
        return self.double.describe()

    async def changes(self, request: Request, params: dict[str, str]) -> Any:
        """The change log from ``?offset=`` on, with the offset to ask for next."""
        log = self.double.state.change_log
        try:
            offset = int(request.query.get("offset") or 0)
        except ValueError:
            raise HttpError(400, "offset must be an integer") from None
        return {"changes": [record.to_json() for record in log[offset:]], "next": len(log)}

    async def join(self, request: Request, params: dict[str, str]) -> Any:
        """Join a node (``name``, ``addr``, optional ``dc``, ``meta``, ``server``)."""
        body = _payload(request)
        meta = _get(body, "meta", dict, {})
        self.double.state.join_node(
            _get(body, "name", str),
            _get(body, "addr", str),
            server=_get(body, "server", bool, False),
            meta={str(k): str(v) for k, v in meta.items()},
            datacenter=_get(body, "dc", str, None),
        )
        return {"index": self.double.state.index}

    async def node_action(self, request: Request, params: dict[str, str]) -> Any:
        """``leave``, ``fail`` or ``recover`` a node."""
        state = self.double.state
        actions = {
            "leave": state.leave_node,
            "fail": state.fail_node,
            "recover": state.recover_node,
        }
        if params["action"] not in actions:
            raise HttpError(404, f"unknown node action {params['action']!r}")
        actions[params["action"]](params["name"])
        return {"index": state.index}

    async def register(self, request: Request, params: dict[str, str]) -> Any:
        """Register a service instance (``node``, ``id``, ``name``, ``tags``, ``port``, …)."""
        body = _payload(request)
        self.double.state.register_service(
            _get(body, "node", str),
            _get(body, "id", str),
            _get(body, "name", str),
            tags=[str(t) for t in _get(body, "tags", list, [])],
            port=_get(body, "port", int, 0),
            address=_get(body, "address", str, ""),
            meta={str(k): str(v) for k, v in _get(body, "meta", dict, {}).items()},
        )
        return {"index": self.double.state.index}

    async def deregister(self, request: Request, params: dict[str, str]) -> Any:
        """Deregister a service instance of a node."""
        self.double.state.deregister_service(params["node"], params["id"])
        return {"index": self.double.state.index}

    async def kv_put(self, request: Request, params: dict[str, str]) -> Any:
        """Set a KV key to the raw request body."""
        self.double.state.kv_put(params["key"], request.body)
        return {"index": self.double.state.index}

    async def kv_delete(self, request: Request, params: dict[str, str]) -> Any:
        """Delete a KV key (``?recurse`` for a prefix)."""
        self.double.state.kv_delete(params["key"], recurse=request.has("recurse"))
        return {"index": self.double.state.index}

    async def sites(self, request: Request, params: dict[str, str]) -> Any:
        """Store the JSON body as the sites document."""
        try:
            document = request.json()
        except ValueError as error:
            raise HttpError(400, f"invalid JSON body: {error}") from None
        self.double.state.set_sites(document)
        return {"index": self.double.state.index}

    async def event(self, request: Request, params: dict[str, str]) -> Any:
        """Fire a user event (``name``, optional text ``payload``)."""
        body = _payload(request)
        payload = _get(body, "payload", str, None)
        return self.double.state.fire_event(
            _get(body, "name", str), payload.encode() if payload is not None else None
        )

    async def latency(self, request: Request, params: dict[str, str]) -> Any:
        """Set latency (``seconds``, optional ``server``, ``path_prefix``)."""
        body = _payload(request)
        self.double.set_latency(
            _get(body, "seconds", float),
            server=_get(body, "server", int, None),
            path_prefix=_get(body, "path_prefix", str, None),
        )
        return self.double.faults.to_json()

    async def errors(self, request: Request, params: dict[str, str]) -> Any:
        """Fail requests (``status``, ``count``, ``server``)."""
        body = _payload(request)
        self.double.fail_requests(
            _get(body, "status", int, 500),
            count=_get(body, "count", int, None),
            server=_get(body, "server", int, None),
        )
        return self.double.faults.to_json()

    async def acl_filter(self, request: Request, params: dict[str, str]) -> Any:
        """Act as a token without read rights (``on``, default true): lists answer empty."""
        self.double.filter_by_acls(_get(_payload(request), "on", bool, True))
        return self.double.faults.to_json()

    async def internal_endpoints(self, request: Request, params: dict[str, str]) -> Any:
        """Refuse ``/v1/internal/`` (``status``: 403 or 404; null or absent serves them again)."""
        self.double.refuse_internal_endpoints(_get(_payload(request), "status", int, None))
        return self.double.faults.to_json()

    async def clear(self, request: Request, params: dict[str, str]) -> Any:
        """Remove every fault rule."""
        self.double.clear_faults()
        return self.double.faults.to_json()

    async def server_power(self, request: Request, params: dict[str, str]) -> Any:
        """Take a server down or bring it up (taking down the answering server happens after)."""
        server = self.double.cluster.check(_server(params["server"]))
        if params["action"] not in ("up", "down"):
            raise HttpError(404, f"unknown server action {params['action']!r}")
        if params["action"] == "up":
            await self.double.server_up(server)
        elif server == request.server:
            self.double.in_background(self.double.server_down(server))
        else:
            await self.double.server_down(server)
        return {"server": server, "action": params["action"]}

    async def leader(self, request: Request, params: dict[str, str]) -> Any:
        """Move leadership (``server``: index or null)."""
        self.double.set_leader(_get(_payload(request), "server", int, None))
        return {"leader": self.double.cluster.leader}

    async def reset_index(self, request: Request, params: dict[str, str]) -> Any:
        """Lower the indexes (``to``, optional)."""
        return {"index": self.double.state.reset_index(_get(_payload(request), "to", int, None))}

    async def cut(self, request: Request, params: dict[str, str]) -> Any:
        """Drop in-flight blocking queries (``server`` optional)."""
        return {
            "cut": self.double.cut_blocking_queries(_get(_payload(request), "server", int, None))
        }

    async def counters(self, request: Request, params: dict[str, str]) -> Any:
        """Request counters and concurrency high-water marks."""
        return self.double.counters.to_json()

    async def counters_reset(self, request: Request, params: dict[str, str]) -> Any:
        """Reset the counters."""
        self.double.counters.reset()
        return self.double.counters.to_json()


_ROUTES: list[tuple[str, Pattern, ControlHandler]] = [
    (method, Pattern.of(template), handler)
    for method, template, handler in [
        ("GET", "/state", ControlApi.state),
        ("GET", "/changes", ControlApi.changes),
        ("POST", "/nodes", ControlApi.join),
        ("POST", "/nodes/{name}/{action}", ControlApi.node_action),
        ("POST", "/services", ControlApi.register),
        ("DELETE", "/services/{node}/{id}", ControlApi.deregister),
        ("PUT", "/kv/{key...}", ControlApi.kv_put),
        ("DELETE", "/kv/{key...}", ControlApi.kv_delete),
        ("PUT", "/sites", ControlApi.sites),
        ("POST", "/events", ControlApi.event),
        ("POST", "/faults/latency", ControlApi.latency),
        ("POST", "/faults/errors", ControlApi.errors),
        ("POST", "/faults/acl-filter", ControlApi.acl_filter),
        ("POST", "/faults/internal-endpoints", ControlApi.internal_endpoints),
        ("POST", "/faults/clear", ControlApi.clear),
        ("POST", "/servers/{server}/{action}", ControlApi.server_power),
        ("POST", "/leader", ControlApi.leader),
        ("POST", "/index/reset", ControlApi.reset_index),
        ("POST", "/blocking/cut", ControlApi.cut),
        ("GET", "/counters", ControlApi.counters),
        ("POST", "/counters/reset", ControlApi.counters_reset),
    ]
]
"""Method, path (after ``/_double``) and handler of every control route."""

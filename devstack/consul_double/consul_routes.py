"""Handlers of the Consul HTTP endpoints the double serves, and their route table."""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from devstack.consul_double import filter_fields, queries, ui_queries
from devstack.consul_double.catalog import validate_registration
from devstack.consul_double.errors import HttpError
from devstack.consul_double.protocol import Reply, json_reply
from devstack.consul_double.queries import Answer
from devstack.consul_double.querying import Call, Outcome, QueryOptions

if TYPE_CHECKING:
    from devstack.consul_double.http_app import ServerApp

Handler = Callable[["ServerApp", Call], Awaitable[Outcome]]

MAX_KV_VALUE_BYTES = 512 * 1024
"""Largest KV value Consul accepts (``kv_max_value_size`` default)."""

HEALTH_STATES = ("any", "passing", "warning", "critical")
"""States accepted by ``/v1/health/state/<state>``."""


def body_reply(answer: Answer, pretty: bool) -> Reply:
    """The body of a read: JSON, raw bytes, or empty for a 404."""
    if answer.status == 404:
        return Reply(404)
    if isinstance(answer.body, bytes):
        return Reply(200, answer.body, [("Content-Type", "text/plain; charset=utf-8")])
    return json_reply(answer.body, pretty=pretty)


def _required(call: Call, name: str, what: str) -> str:
    """A path parameter that must not be empty (Consul answers 400 ``Missing ...``)."""
    value = call.params[name]
    if not value:
        raise HttpError(400, f"Missing {what}")
    return value


def _json_body(call: Call) -> Any:
    """The request body as JSON, or 400 ``Request decode failed``."""
    try:
        return call.request.json()
    except ValueError as error:
        raise HttpError(400, f"Request decode failed: {error}") from None


def _int_param(call: Call, name: str) -> int | None:
    """An optional integer query parameter."""
    raw = call.request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise HttpError(400, f"Invalid {name}") from None


async def members(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/agent/members``: answered by the local agent, no index, never blocks.

    Members the token may not read are left out silently (no header), as the agent does.
    """
    members = [] if app.double.faults.acl_filtered else queries.agent_members(app.state)
    return json_reply(members, pretty=call.request.has("pretty"))


async def catalog_nodes(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/catalog/nodes`` (``?filter=`` over nodes)."""
    return await app.read_filtered(
        call, filter_fields.NODE, lambda keep: queries.catalog_nodes(app.state, keep)
    )


async def catalog_services(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/catalog/services`` (``?filter=`` over service instances, before grouping)."""
    return await app.read_filtered(
        call, filter_fields.SERVICE_NODE, lambda keep: queries.catalog_services(app.state, keep)
    )


async def catalog_service(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/catalog/service/<name>`` (``?tag``, ``?filter=``)."""
    name = _required(call, "name", "service name")
    tag = call.request.query.get("tag")
    return await app.read_filtered(
        call,
        filter_fields.SERVICE_NODE,
        lambda keep: queries.catalog_service(app.state, name, tag, keep),
    )


async def catalog_node(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/catalog/node/<node>`` (``?filter=`` over the node's services)."""
    node = _required(call, "node", "node name")
    return await app.read_filtered(
        call, filter_fields.NODE_SERVICE, lambda keep: queries.catalog_node(app.state, node, keep)
    )


async def catalog_node_services(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/catalog/node-services/<node>`` (``?filter=`` over the node's services)."""
    node = _required(call, "node", "node name")
    return await app.read_filtered(
        call,
        filter_fields.NODE_SERVICE,
        lambda keep: queries.catalog_node_services(app.state, node, keep),
    )


async def catalog_register(app: "ServerApp", call: Call) -> Outcome:
    """``PUT /v1/catalog/register``."""
    payload = validate_registration(_json_body(call))
    app.check_write(call.request)
    app.state.catalog_register(payload)
    return json_reply(True)


async def catalog_deregister(app: "ServerApp", call: Call) -> Outcome:
    """``PUT /v1/catalog/deregister``: a check, a service instance, or the whole node."""
    payload = _json_body(call)
    if not isinstance(payload, dict) or not payload.get("Node"):
        raise HttpError(400, "Must provide node")
    app.check_write(call.request)
    app.state.catalog_deregister(
        str(payload["Node"]),
        service_id=str(payload.get("ServiceID") or ""),
        check_id=str(payload.get("CheckID") or ""),
    )
    return json_reply(True)


async def health_state(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/health/state/<state>``."""
    wanted = _required(call, "state", "check state")
    if wanted not in HEALTH_STATES:
        raise HttpError(400, f"Invalid check state: {wanted!r}")
    return await app.read_filtered(
        call, filter_fields.HEALTH_CHECK, lambda keep: queries.health_state(app.state, wanted, keep)
    )


async def health_node(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/health/node/<node>``."""
    node = _required(call, "node", "node name")
    return await app.read_filtered(
        call, filter_fields.HEALTH_CHECK, lambda keep: queries.health_node(app.state, node, keep)
    )


async def health_checks(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/health/checks/<service>``."""
    service = _required(call, "name", "service name")
    return await app.read_filtered(
        call,
        filter_fields.HEALTH_CHECK,
        lambda keep: queries.health_checks(app.state, service, keep),
    )


async def health_service(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/health/service/<name>`` (``?passing``, ``?tag``)."""
    name = _required(call, "name", "service name")
    passing = call.request.has("passing") and call.request.query["passing"] != "false"
    tag = call.request.query.get("tag")
    return await app.read_filtered(
        call,
        filter_fields.CHECK_SERVICE_NODE,
        lambda keep: queries.health_service(app.state, name, passing=passing, tag=tag, keep=keep),
    )


async def ui_services(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/internal/ui/services``: one ``ServiceListingSummary`` per service name."""
    return await app.read_filtered(
        call,
        filter_fields.CHECK_SERVICE_NODE,
        lambda keep: ui_queries.ui_services(app.state, keep),
        internal=True,
    )


async def ui_nodes(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/internal/ui/nodes``: every node with its services and checks (``NodeInfo``)."""
    return await app.read_filtered(
        call,
        filter_fields.NODE_INFO,
        lambda keep: ui_queries.ui_nodes(app.state, keep),
        internal=True,
    )


async def kv(app: "ServerApp", call: Call) -> Outcome:
    """``GET``/``PUT``/``DELETE /v1/kv/<key>``."""
    request = call.request
    key = call.params["key"]
    if request.method == "GET":
        return await _kv_get(app, call, key)
    if not key and not (request.method == "DELETE" and request.has("recurse")):
        raise HttpError(400, "Missing key name")
    app.check_write(request)
    if request.method == "DELETE":
        app.state.kv_delete(key, recurse=request.has("recurse"))
        return json_reply(True)
    if len(request.body) > MAX_KV_VALUE_BYTES:
        raise HttpError(
            413,
            f"Request body({len(request.body)} bytes) too large, "
            f"max size: {MAX_KV_VALUE_BYTES} bytes.",
        )
    flags = _int_param(call, "flags") or 0
    stored = app.state.kv_put(key, request.body, flags=flags, cas=_int_param(call, "cas"))
    return json_reply(stored)


async def _kv_get(app: "ServerApp", call: Call, key: str) -> Outcome:
    """Reads of ``/v1/kv``: one key, ``?recurse``, ``?keys`` and ``?raw``."""
    request = call.request
    if request.has("keys"):
        separator = request.query.get("separator") or None
        return await app.read(call, lambda: queries.kv_keys(app.state, key, separator))
    if request.has("recurse"):
        return await app.read(call, lambda: queries.kv_recurse(app.state, key))
    if not key:
        raise HttpError(400, "Missing key name")
    if not request.has("raw"):
        return await app.read(call, lambda: queries.kv_get(app.state, key))

    def raw() -> Answer:
        """The key's bytes instead of the entry list."""
        answer = queries.kv_get(app.state, key)
        if answer.status != 200:
            return answer
        return Answer.of(answer.index, app.state.kv[key].value)

    return await app.read(call, raw)


async def event_fire(app: "ServerApp", call: Call) -> Outcome:
    """``PUT /v1/event/fire/<name>``: the answer has LTime 0, as the event is not yet gossiped."""
    name = _required(call, "name", "name")
    query = call.request.query
    app.check_dc(query.get("dc") or None)
    event = app.state.fire_event(
        name,
        call.request.body or None,
        node_filter=query.get("node", ""),
        service_filter=query.get("service", ""),
        tag_filter=query.get("tag", ""),
    )
    return json_reply({**event, "LTime": 0})


async def event_list(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/event/list``: agent-local; blocks until the ID-derived index differs."""
    options = QueryOptions.parse(call.request)
    name = call.request.query.get("name") or None

    def query() -> Answer:
        """The event list as it is now."""
        return queries.event_list(app.state, name)

    answer = query()
    if options.index > 0 and answer.index == options.index:
        blocked = await app.block(call, options, query, events=True)
        if not isinstance(blocked, Answer):
            return blocked
        answer = blocked
    reply = json_reply(answer.body, pretty=options.pretty)
    reply.headers.append(("X-Consul-Index", str(answer.index)))
    return reply


async def status_leader(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/status/leader``: ``"addr:8300"``, or ``""`` without a leader."""
    return json_reply(app.double.cluster.leader_address())


async def status_peers(app: "ServerApp", call: Call) -> Outcome:
    """``GET /v1/status/peers``."""
    return json_reply(app.double.cluster.peers())


TABLE: list[tuple[tuple[str, ...], str, Handler]] = [
    (("GET",), "/v1/agent/members", members),
    (("GET",), "/v1/catalog/nodes", catalog_nodes),
    (("GET",), "/v1/catalog/services", catalog_services),
    (("GET",), "/v1/catalog/service/{name...}", catalog_service),
    (("GET",), "/v1/catalog/node/{node...}", catalog_node),
    (("GET",), "/v1/catalog/node-services/{node...}", catalog_node_services),
    (("PUT",), "/v1/catalog/register", catalog_register),
    (("PUT",), "/v1/catalog/deregister", catalog_deregister),
    (("GET",), "/v1/health/state/{state...}", health_state),
    (("GET",), "/v1/health/node/{node...}", health_node),
    (("GET",), "/v1/health/checks/{name...}", health_checks),
    (("GET",), "/v1/health/service/{name...}", health_service),
    (("GET",), "/v1/internal/ui/services", ui_services),
    (("GET",), "/v1/internal/ui/nodes", ui_nodes),
    (("GET", "PUT", "DELETE"), "/v1/kv/{key...}", kv),
    (("PUT",), "/v1/event/fire/{name...}", event_fire),
    (("GET",), "/v1/event/list", event_list),
    (("GET",), "/v1/status/leader", status_leader),
    (("GET",), "/v1/status/peers", status_peers),
]
"""Methods, path template and handler of every Consul endpoint served."""

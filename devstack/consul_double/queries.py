"""Read queries over the state, each with the body and the X-Consul-Index Consul would report."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from devstack.consul_double.filtering import Item, Predicate
from devstack.consul_double.records import (
    CatalogNode,
    CatalogService,
    CheckStatus,
    HealthCheck,
    event_index,
)

if TYPE_CHECKING:
    from devstack.consul_double.state import ConsulState


@dataclass
class Answer:
    """A query result: its index, HTTP status and a body rendered only when answered."""

    index: int
    render: Callable[[], Any] = field(repr=False)
    status: int = 200

    @classmethod
    def of(cls, index: int, body: Any, status: int = 200) -> "Answer":
        """An answer whose body is already known."""
        return cls(index, lambda: body, status)

    @cached_property
    def body(self) -> Any:
        """The JSON body (or raw bytes); blocking queries that keep waiting never build it."""
        return self.render()


def everything(item: Item) -> bool:
    """The predicate of a read without ``?filter=``."""
    return True


def _at_least_one(index: int) -> int:
    """Consul never reports index 0 from a blocking endpoint (it would make clients spin)."""
    return max(1, index)


def catalog_max(state: "ConsulState", *, checks: bool) -> int:
    """Largest index over the catalog tables (Consul's fallback for unknown services)."""
    tables = ["nodes", "services"] + (["checks"] if checks else [])
    return max(state.indexes.table(t) for t in tables)


def service_index(state: "ConsulState", name: str, *, checks: bool) -> int:
    """Index of one service name: its own index, else the extinction index, else the catalog's."""
    if name in state.indexes.services:
        return _at_least_one(state.indexes.services[name])
    extinction = state.indexes.table("service_extinction")
    return _at_least_one(extinction or catalog_max(state, checks=checks))


def _instances(state: "ConsulState", name: str) -> list[CatalogService]:
    """Instances of a service name ordered like Consul (by node, then ID)."""
    found = [
        svc
        for node in sorted(state.services)
        for _, svc in sorted(state.services[node].items())
        if svc.name == name
    ]
    return found


def catalog_nodes(state: "ConsulState", keep: Predicate = everything) -> Answer:
    """``GET /v1/catalog/nodes``."""
    return Answer(
        _at_least_one(state.indexes.table("nodes")),
        lambda: [body for _, node in sorted(state.nodes.items()) if keep(body := node.to_json())],
    )


def _stored_service_node(svc: CatalogService, node: CatalogNode) -> dict[str, Any]:
    """A service row as the state store holds it: the node fields are not yet filled in."""
    row = svc.to_service_node_json(node)
    row.update({"ID": "", "Address": "", "Datacenter": "", "TaggedAddresses": {}, "NodeMeta": {}})
    return row


def catalog_services(state: "ConsulState", keep: Predicate = everything) -> Answer:
    """``GET /v1/catalog/services``: service name to its deduplicated, sorted tags."""

    def render() -> dict[str, list[str]]:
        tags: dict[str, set[str]] = {}
        for node, instances in state.services.items():
            for svc in instances.values():
                # Unfiltered, no row is built: the double's own time stays near Consul's.
                if keep is everything or keep(_stored_service_node(svc, state.nodes[node])):
                    tags.setdefault(svc.name, set()).update(svc.tags)
        return {name: sorted(values) for name, values in sorted(tags.items())}

    return Answer(_at_least_one(state.indexes.table("services")), render)


def catalog_service(
    state: "ConsulState", name: str, tag: str | None = None, keep: Predicate = everything
) -> Answer:
    """``GET /v1/catalog/service/<name>`` (optionally filtered by ``tag``)."""
    return Answer(
        service_index(state, name, checks=False),
        lambda: [
            body
            for svc in _instances(state, name)
            if tag is None or tag.lower() in (t.lower() for t in svc.tags)
            if keep(body := svc.to_service_node_json(state.nodes[svc.node]))
        ],
    )


def _node_index(state: "ConsulState", node: str) -> int:
    """Index of one node, or the node extinction index when it is unknown."""
    if node in state.nodes:
        return _at_least_one(state.indexes.nodes.get(node, 0))
    return _at_least_one(state.indexes.table("node_extinction"))


def catalog_node(state: "ConsulState", node: str, keep: Predicate = everything) -> Answer:
    """``GET /v1/catalog/node/<node>``: ``null`` with 200 for an unknown node, as Consul does."""
    if node not in state.nodes:
        return Answer.of(_node_index(state, node), None)
    services = state.services.get(node, {})
    return Answer(
        _node_index(state, node),
        lambda: {
            "Node": state.nodes[node].to_json(),
            "Services": {
                sid: body
                for sid, svc in sorted(services.items())
                if keep(body := svc.to_node_service_json())
            },
        },
    )


def catalog_node_services(state: "ConsulState", node: str, keep: Predicate = everything) -> Answer:
    """``GET /v1/catalog/node-services/<node>``: Node and Services ``null`` when unknown."""
    if node not in state.nodes:
        return Answer.of(_node_index(state, node), {"Node": None, "Services": None})
    services = state.services.get(node, {})
    return Answer(
        _node_index(state, node),
        lambda: {
            "Node": state.nodes[node].to_json(),
            "Services": [
                body
                for _, svc in sorted(services.items())
                if keep(body := svc.to_node_service_json())
            ],
        },
    )


def _all_checks(state: "ConsulState") -> list[HealthCheck]:
    """Every check ordered by node then check ID."""
    return [
        check for node in sorted(state.checks) for _, check in sorted(state.checks[node].items())
    ]


def _checks_json(checks: list[HealthCheck], keep: Predicate) -> list[dict[str, Any]]:
    """The checks that pass ``keep``, as JSON."""
    return [body for check in checks if keep(body := check.to_json())]


def health_state(state: "ConsulState", wanted: str, keep: Predicate = everything) -> Answer:
    """``GET /v1/health/state/<state>`` (``any`` or one check status)."""
    return Answer(
        _at_least_one(state.indexes.table("checks")),
        lambda: _checks_json([c for c in _all_checks(state) if wanted in ("any", c.status)], keep),
    )


def health_node(state: "ConsulState", node: str, keep: Predicate = everything) -> Answer:
    """``GET /v1/health/node/<node>``."""
    checks = state.checks.get(node, {})
    return Answer(
        _at_least_one(state.indexes.table("checks")),
        lambda: _checks_json([check for _, check in sorted(checks.items())], keep),
    )


def health_checks(state: "ConsulState", service: str, keep: Predicate = everything) -> Answer:
    """``GET /v1/health/checks/<service>``: the checks bound to instances of a service."""
    return Answer(
        service_index(state, service, checks=True),
        lambda: _checks_json([c for c in _all_checks(state) if c.service_name == service], keep),
    )


def node_checks(state: "ConsulState", node: str) -> list[HealthCheck]:
    """Every check of a node, its own and its instances', ordered by check ID."""
    return [check for _, check in sorted(state.checks.get(node, {}).items())]


def checks_of(checks: Sequence[HealthCheck], svc: CatalogService) -> list[HealthCheck]:
    """Of a node's ``checks``, those of one instance: the node's own and the instance's."""
    return [check for check in checks if check.service_id in ("", svc.id)]


def instance_checks(state: "ConsulState", svc: CatalogService) -> list[HealthCheck]:
    """The checks of one instance: its node's checks and its own, ordered by check ID."""
    return checks_of(node_checks(state, svc.node), svc)


def check_service_node(state: "ConsulState", svc: CatalogService) -> dict[str, Any]:
    """One instance as ``{Node, Service, Checks}`` (Consul's ``CheckServiceNode``)."""
    return {
        "Node": state.nodes[svc.node].to_json(),
        "Service": svc.to_node_service_json(),
        "Checks": [check.to_json() for check in instance_checks(state, svc)],
    }


def health_service(
    state: "ConsulState",
    name: str,
    *,
    passing: bool = False,
    tag: str | None = None,
    keep: Predicate = everything,
) -> Answer:
    """``GET /v1/health/service/<name>``: ``{Node, Service, Checks}`` per instance."""

    def render() -> list[dict[str, Any]]:
        body = []
        for svc in _instances(state, name):
            if tag is not None and tag.lower() not in (t.lower() for t in svc.tags):
                continue
            checks = instance_checks(state, svc)
            if passing and any(check.status != CheckStatus.PASSING for check in checks):
                continue
            if keep(entry := check_service_node(state, svc)):
                body.append(entry)
        return body

    return Answer(service_index(state, name, checks=True), render)


def kv_get(state: "ConsulState", key: str) -> Answer:
    """``GET /v1/kv/<key>``: a one-entry list, or 404 with the KV table index."""
    entry = state.kv.get(key)
    if entry is None:
        return Answer.of(_at_least_one(state.indexes.table("kvs")), None, 404)
    return Answer.of(_at_least_one(entry.modify_index), [entry.to_json()])


def _prefix_index(state: "ConsulState", prefix: str) -> int:
    """Index of a key prefix: newest entry or deletion under it, else the KV table index."""
    newest = max(
        [e.modify_index for k, e in state.kv.items() if k.startswith(prefix)]
        + [i for k, i in state.kv_tombstones.items() if k.startswith(prefix)],
        default=0,
    )
    return _at_least_one(newest or state.indexes.table("kvs"))


def kv_recurse(state: "ConsulState", prefix: str) -> Answer:
    """``GET /v1/kv/<prefix>?recurse``: every entry under the prefix, 404 when none."""
    entries = [e.to_json() for k, e in sorted(state.kv.items()) if k.startswith(prefix)]
    return Answer.of(_prefix_index(state, prefix), entries or None, 200 if entries else 404)


def kv_keys(state: "ConsulState", prefix: str, separator: str | None) -> Answer:
    """``GET /v1/kv/<prefix>?keys``: key names under the prefix (``[]`` when none)."""
    keys: list[str] = []
    for key in sorted(state.kv):
        if not key.startswith(prefix):
            continue
        if separator:
            cut = key.find(separator, len(prefix))
            if cut >= 0:
                key = key[: cut + len(separator)]
        if not keys or keys[-1] != key:
            keys.append(key)
    return Answer.of(_prefix_index(state, prefix), keys)


def event_list(state: "ConsulState", name: str | None) -> Answer:
    """``GET /v1/event/list``: index derived from the last event's ID (1 when there are none)."""
    events = [e for e in state.events if not name or e.name == name]
    index = event_index(events[-1].id) if events else 1
    return Answer.of(index, [e.to_json() for e in events])


def agent_members(state: "ConsulState") -> list[dict[str, Any]]:
    """``GET /v1/agent/members``: every LAN member (no index; never blocks)."""
    return [member.to_json() for member in state.members.values()]

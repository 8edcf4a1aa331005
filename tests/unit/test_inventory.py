"""Inventory: parsing Consul payloads, legacy status/type/count rules and building node views."""

import contextlib
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.views import (
    MAX_NODE_META_KEY_LENGTH,
    MAX_NODE_META_PAIRS,
    MAX_NODE_META_VALUE_LENGTH,
    MAX_TAGGED_ADDRESSES,
    NodeView,
    ServiceInstance,
)
from services.enricher.inventory import (
    BadConsulPayload,
    CatalogNode,
    Fresh,
    Inventory,
    Member,
    NodeServices,
    ServiceSummary,
    bounded_pairs,
    build_view,
    health_status,
    held_after,
    held_instances,
    member_status,
    parse_catalog_nodes,
    parse_catalog_service,
    parse_health_service,
    parse_members,
    parse_node_services,
    parse_serf_health,
    parse_service_tags,
    plan_moves,
    replace_service,
    same_view,
    services_count,
)
from services.enricher.sites import Site, SitesMap

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
UNMAPPED = "Nao mapeado"


def _member(name: str, addr: str, role: str, status: int = 1) -> dict[str, Any]:
    return {
        "Name": name,
        "Addr": addr,
        "Port": 8301,
        "Tags": {"build": "1.19.2:2ea8b1f3", "dc": "dc1", "role": role, "segment": "", "vsn": "2"},
        "Status": status,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }


MEMBERS: list[dict[str, Any]] = [
    _member("consul-server-1", "127.0.1.1", "consul"),
    _member("prom-palmas-01", "127.10.0.10", "node"),
    _member("prom-rio-01", "127.11.0.10", "node"),
    _member("prom-recife-01", "127.12.0.10", "node"),
]
"""``GET /v1/agent/members``."""


def _catalog_node(node: str, addr: str, create: int) -> dict[str, Any]:
    return {
        "ID": "892f902b-d23f-0824-128b-2f330c5c7fd0",
        "Node": node,
        "Address": addr,
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
        "Meta": {"consul-network-segment": "", "consul-version": "1.19.2"},
        "CreateIndex": create,
        "ModifyIndex": create,
    }


CATALOG_NODES: list[dict[str, Any]] = [
    _catalog_node("consul-server-1", "127.0.1.1", 11),
    _catalog_node("prom-palmas-01", "127.10.0.10", 13),
    _catalog_node("prom-recife-01", "127.12.0.10", 19),
    _catalog_node("prom-rio-01", "127.11.0.10", 16),
]
"""``GET /v1/catalog/nodes``."""

CATALOG_SERVICES: dict[str, list[str]] = {
    "alertmanager": ["exporter", "linux", "palmas"],
    "consul": [],
    "node_exporter": ["exporter", "linux", "rio"],
    "prometheus": ["exporter", "linux", "palmas", "recife", "rio"],
    "snmp_exporter": ["exporter", "linux", "recife"],
}
"""``GET /v1/catalog/services``."""


def _agent_service(service: str, port: int, index: int) -> dict[str, Any]:
    return {
        "ID": service,
        "Service": service,
        "Tags": ["exporter", "palmas", "linux"],
        "Address": "",
        "Meta": {"metrics_path": "/metrics", "site": "palmas"},
        "Port": port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
        "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
        "Connect": {},
        "PeerName": "",
        "CreateIndex": index,
        "ModifyIndex": index,
    }


PALMAS_NODE = _catalog_node("prom-palmas-01", "127.10.0.10", 13)

NODE_SERVICES_PALMAS: dict[str, Any] = {
    "Node": PALMAS_NODE,
    "Services": [_agent_service("alertmanager", 9093, 15), _agent_service("prometheus", 9090, 14)],
}
"""``GET /v1/catalog/node-services/prom-palmas-01`` (Services is a list)."""

CATALOG_NODE_PALMAS: dict[str, Any] = {
    "Node": PALMAS_NODE,
    "Services": {
        "alertmanager": _agent_service("alertmanager", 9093, 15),
        "prometheus": _agent_service("prometheus", 9090, 14),
    },
}
"""``GET /v1/catalog/node/prom-palmas-01`` (Services is an object)."""


def _check(node: str, check_id: str, status: str, service: str = "") -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": check_id,
        "Name": "Serf Health Status" if check_id == "serfHealth" else f"Service '{service}' check",
        "Status": status,
        "Notes": "",
        "Output": "",
        "ServiceID": service,
        "ServiceName": service,
        "ServiceTags": [],
        "Type": "" if check_id == "serfHealth" else "http",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": 13,
        "ModifyIndex": 13,
    }


HEALTH_CHECKS: list[dict[str, Any]] = [
    _check("prom-palmas-01", "serfHealth", "passing"),
    _check("prom-palmas-01", "service:alertmanager", "passing", "alertmanager"),
    _check("prom-palmas-01", "service:prometheus", "warning", "prometheus"),
    _check("prom-rio-01", "serfHealth", "critical"),
]
"""``GET /v1/health/state/any`` (the ``checks`` watch)."""

CATALOG_SERVICE_ALERTMANAGER: list[dict[str, Any]] = [
    {
        "ID": "892f902b-d23f-0824-128b-2f330c5c7fd0",
        "Node": "prom-palmas-01",
        "Address": "127.10.0.10",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "127.10.0.10", "wan": "127.10.0.10"},
        "NodeMeta": {"os": "linux", "site": "palmas"},
        "ServiceKind": "",
        "ServiceID": "alertmanager",
        "ServiceName": "alertmanager",
        "ServiceTags": ["exporter", "palmas", "linux"],
        "ServiceAddress": "",
        "ServiceWeights": {"Passing": 1, "Warning": 1},
        "ServiceMeta": {"metrics_path": "/metrics", "site": "palmas"},
        "ServicePort": 9093,
        "ServiceSocketPath": "",
        "ServiceEnableTagOverride": False,
        "ServiceProxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
        "ServiceConnect": {},
        "ServiceLocality": None,
        "CreateIndex": 15,
        "ModifyIndex": 15,
    }
]
"""``GET /v1/catalog/service/alertmanager``."""

HEALTH_SERVICE_PROMETHEUS: list[dict[str, Any]] = [
    {
        "Node": PALMAS_NODE,
        "Service": _agent_service("prometheus", 9090, 14),
        "Checks": [_check("prom-palmas-01", "service:prometheus", "warning", "prometheus")],
    },
    {
        "Node": _catalog_node("prom-rio-01", "127.11.0.10", 16),
        "Service": _agent_service("prometheus", 9091, 17) | {"ID": "prometheus-2"},
        "Checks": [],
    },
]
"""``GET /v1/health/service/prometheus`` (the ``service`` watch)."""

PALMAS_SERVICES: NodeServices = {
    "alertmanager": ServiceInstance(
        name="alertmanager", tags=("exporter", "palmas", "linux"), port=9093
    ),
    "prometheus": ServiceInstance(
        name="prometheus", tags=("exporter", "palmas", "linux"), port=9090
    ),
}

SITES = SitesMap(
    by_addr={
        "127.10.0.10": Site(name="Palmas (TO)", code="palmas"),
        "127.11.0.10": Site(name="Rio de Janeiro (RJ)", code="rio"),
    }
)


def _inventory() -> Inventory:
    return Inventory(
        members=parse_members(MEMBERS),
        catalog=parse_catalog_nodes(CATALOG_NODES),
        serf_health=parse_serf_health(HEALTH_CHECKS),
        services={
            "prom-palmas-01": dict(PALMAS_SERVICES),
            "consul-server-1": {"consul": ServiceInstance(name="consul", port=8300)},
        },
    )


@pytest.mark.parametrize(
    ("serf", "status"),
    [(1, "alive"), (3, "dead"), (4, "dead"), (0, "unknown"), (2, "unknown"), (5, "unknown")],
)
def test_member_status_follows_the_legacy_mapping(serf: int, status: str) -> None:
    """Serf 1 is alive, left (3) and failed (4) are dead, anything else unknown."""
    assert member_status(serf) == status


@pytest.mark.parametrize("serf", [None, "1", "alive", -1, 99, [1]])
def test_member_status_of_odd_values_is_unknown(serf: object) -> None:
    """A missing or non-numeric Serf status never counts as alive."""
    assert member_status(serf) == "unknown"


@pytest.mark.parametrize(
    ("check", "status"),
    [
        ("passing", "alive"),
        ("warning", "alive"),
        ("critical", "dead"),
        ("maintenance", "unknown"),
        (None, "unknown"),
    ],
)
def test_health_status_maps_serf_health_checks(check: str | None, status: str) -> None:
    """A serfHealth check status gives a node status for nodes that are not members."""
    assert health_status(check) == status


def test_parse_members_of_the_sample_cluster() -> None:
    """The four members are read with address, datacenter, alive status and type."""
    members = parse_members(MEMBERS)
    assert set(members) == {"consul-server-1", "prom-palmas-01", "prom-rio-01", "prom-recife-01"}
    assert members["consul-server-1"] == Member(
        name="consul-server-1", addr="127.0.1.1", status="alive", type="server", datacenter="dc1"
    )
    assert members["prom-rio-01"].type == "client"
    assert members["prom-rio-01"].addr == "127.11.0.10"


@pytest.mark.parametrize(("status", "expected"), [(3, "dead"), (4, "dead"), (2, "unknown")])
def test_parse_members_maps_each_serf_status(status: int, expected: str) -> None:
    """Left, failed and leaving members get the legacy statuses."""
    members = parse_members([_member("n1", "10.0.0.1", "node", status=status)])
    assert members["n1"].status == expected


def test_only_role_consul_is_a_server() -> None:
    """type is server exactly for members tagged role=consul."""
    payload = [
        _member("s", "10.0.0.1", "consul"),
        _member("c", "10.0.0.2", "node"),
        {"Name": "bare", "Addr": "10.0.0.3", "Status": 1},
    ]
    members = parse_members(payload)
    assert [members[n].type for n in ("s", "c", "bare")] == ["server", "client", "client"]
    assert members["bare"].datacenter == ""


def test_parse_catalog_nodes_of_the_sample() -> None:
    """Each catalog node is read with its address, datacenter, ID, meta and tagged addresses."""
    nodes = parse_catalog_nodes(CATALOG_NODES)
    addr = "127.12.0.10"
    assert nodes["prom-recife-01"] == CatalogNode(
        name="prom-recife-01",
        addr=addr,
        datacenter="dc1",
        id="892f902b-d23f-0824-128b-2f330c5c7fd0",
        meta={"consul-network-segment": "", "consul-version": "1.19.2"},
        tagged_addresses={"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
    )
    assert len(nodes) == 4


def test_a_catalog_node_without_meta_or_tagged_addresses_has_empty_ones() -> None:
    """An item of a relay that did not carry them (or a bare node) parses with empty maps."""
    nodes = parse_catalog_nodes([{"Node": "n", "Address": "10.0.0.1"}])
    assert nodes["n"] == CatalogNode(name="n", addr="10.0.0.1", datacenter="")


def test_node_meta_is_bounded_as_consul_bounds_it() -> None:
    """Pairs over a length limit are left out, then the first MAX_NODE_META_PAIRS by key kept."""
    meta = {f"k{i:03d}": "v" for i in range(MAX_NODE_META_PAIRS + 10)}
    meta["long-key-" + "k" * MAX_NODE_META_KEY_LENGTH] = "v"
    meta["a-long-value"] = "v" * (MAX_NODE_META_VALUE_LENGTH + 1)
    meta["a-fitting-value"] = "v" * MAX_NODE_META_VALUE_LENGTH
    many = {f"t{i:02d}": "127.0.0.1" for i in range(MAX_TAGGED_ADDRESSES + 1)}
    node = parse_catalog_nodes(
        [{"Node": "n", "ID": "x" * 65, "Meta": meta, "TaggedAddresses": many}]
    )["n"]
    assert len(node.meta) == MAX_NODE_META_PAIRS
    assert "a-long-value" not in node.meta
    assert not any(key.startswith("long-key-") for key in node.meta)
    assert list(node.meta)[:2] == ["a-fitting-value", "k000"]
    assert list(node.tagged_addresses) == [f"t{i:02d}" for i in range(MAX_TAGGED_ADDRESSES)]
    assert node.id == ""


@given(
    pairs=st.dictionaries(
        st.text(max_size=MAX_NODE_META_KEY_LENGTH + 5),
        st.text(max_size=MAX_NODE_META_VALUE_LENGTH + 5),
        max_size=MAX_NODE_META_PAIRS + 5,
    )
)
@settings(max_examples=60, deadline=None)
def test_bounded_meta_always_fits_a_node_view(pairs: dict[str, str]) -> None:
    """Whatever meta Consul sends, what the enricher keeps is a valid view's meta."""
    meta = bounded_pairs(
        pairs,
        "Meta",
        pairs=MAX_NODE_META_PAIRS,
        key_length=MAX_NODE_META_KEY_LENGTH,
        value_length=MAX_NODE_META_VALUE_LENGTH,
    )
    assert set(meta.items()) <= set(pairs.items())
    view = NodeView(node="n", addr="", site_name=UNMAPPED, updated_at=NOW, meta=meta)
    assert view.meta == meta


def test_parse_serf_health_keeps_only_serf_checks() -> None:
    """Service checks are ignored; each node's serfHealth status is kept."""
    assert parse_serf_health(HEALTH_CHECKS) == {
        "prom-palmas-01": "passing",
        "prom-rio-01": "critical",
    }


def test_parse_service_tags_sorts_tags_and_keeps_empty_services() -> None:
    """Every service name is kept with its sorted tags, the tagless consul service included."""
    tags = parse_service_tags(CATALOG_SERVICES)
    assert tags["consul"] == ()
    assert tags["prometheus"] == ("exporter", "linux", "palmas", "recife", "rio")
    assert set(tags) == set(CATALOG_SERVICES)
    assert parse_service_tags({"web": None}) == {"web": ()}


def test_node_services_list_and_object_shapes_agree() -> None:
    """/catalog/node-services (list) and /catalog/node (object) give the same services."""
    assert parse_node_services(NODE_SERVICES_PALMAS) == PALMAS_SERVICES
    assert parse_node_services(CATALOG_NODE_PALMAS) == PALMAS_SERVICES


def test_node_services_of_an_unknown_node() -> None:
    """A null answer (unknown node) or a node with no services gives no services."""
    assert parse_node_services(None) == {}
    assert parse_node_services({"Node": PALMAS_NODE, "Services": None}) == {}
    assert parse_node_services({"Node": PALMAS_NODE, "Services": []}) == {}


def test_a_service_without_id_is_keyed_by_its_name() -> None:
    """When ID is empty, the service name is its key."""
    service = _agent_service("web", 80, 1) | {"ID": ""}
    assert set(parse_node_services({"Services": [service]})) == {"web"}


def test_parse_catalog_service_groups_instances_by_node() -> None:
    """/catalog/service/<name> gives node → service id → instance."""
    assert parse_catalog_service(CATALOG_SERVICE_ALERTMANAGER) == {
        "prom-palmas-01": {"alertmanager": PALMAS_SERVICES["alertmanager"]}
    }


def test_parse_health_service_groups_instances_by_node() -> None:
    """/health/service/<name> gives node → service id → instance."""
    parsed = parse_health_service(HEALTH_SERVICE_PROMETHEUS)
    assert parsed["prom-palmas-01"] == {"prometheus": PALMAS_SERVICES["prometheus"]}
    assert parsed["prom-rio-01"]["prometheus-2"].port == 9091


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (parse_members, {"Name": "n"}),
        (parse_members, ["n"]),
        (parse_members, [{"Name": ""}]),
        (parse_members, [{"Name": 5}]),
        (parse_members, [{"Name": "n", "Tags": ["role"]}]),
        (parse_catalog_nodes, {"Node": "n"}),
        (parse_catalog_nodes, [{"Address": "10.0.0.1"}]),
        (parse_catalog_nodes, [{"Node": "n", "Address": 10}]),
        (parse_catalog_nodes, [{"Node": "n", "Meta": ["os"]}]),
        (parse_catalog_nodes, [{"Node": "n", "Meta": {"os": 1}}]),
        (parse_catalog_nodes, [{"Node": "n", "TaggedAddresses": {"lan": None}}]),
        (parse_serf_health, "checks"),
        (parse_service_tags, ["web"]),
        (parse_service_tags, {"web": "tag"}),
        (parse_node_services, ["web"]),
        (parse_node_services, {"Services": "web"}),
        (parse_node_services, {"Services": [_agent_service("web", 80, 1) | {"Port": "80"}]}),
        (parse_node_services, {"Services": [_agent_service("web", 80, 1) | {"Port": True}]}),
        (parse_node_services, {"Services": [_agent_service("web", 80, 1) | {"Tags": "a"}]}),
        (parse_catalog_service, {"Node": "n"}),
        (parse_health_service, [{"Node": "n", "Service": {}}]),
        (parse_health_service, [{"Node": {}, "Service": None}]),
    ],
)
def test_wrong_shapes_raise_bad_consul_payload(
    parse: Callable[[Any], object], payload: Any
) -> None:
    """A payload that is not the documented shape raises BadConsulPayload."""
    with pytest.raises(BadConsulPayload):
        parse(payload)


@pytest.mark.parametrize(
    "parse",
    [
        parse_members,
        parse_catalog_nodes,
        parse_serf_health,
        parse_service_tags,
        parse_node_services,
        parse_catalog_service,
        parse_health_service,
    ],
)
def test_null_payloads_parse_to_nothing(parse: Callable[[Any], Any]) -> None:
    """Consul answers null for empty results; every parser reads that as empty."""
    assert len(parse(None)) == 0


def test_services_count_excludes_consul() -> None:
    """services_count does not count the consul service, as the old backend did."""
    services = [
        ServiceInstance(name="consul"),
        ServiceInstance(name="web"),
        ServiceInstance(name="web"),
    ]
    assert services_count(services) == 2
    assert services_count([]) == 0


@given(names=st.lists(st.sampled_from(["consul", "web", "db", "Consul", "consul-esm"])))
@settings(deadline=None)
def test_services_count_is_instances_minus_consul(names: list[str]) -> None:
    """For any mix of services, the count is the number of non-consul instances."""
    services = [ServiceInstance(name=n) for n in names]
    assert services_count(services) == len(names) - names.count("consul")


def test_member_view_uses_member_status_type_and_site() -> None:
    """A member's view takes status and type from Serf and its site from its address."""
    view = build_view(_inventory(), "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.status == "alive"
    assert view.type == "client"
    assert view.addr == "127.10.0.10"
    assert view.datacenter == "dc1"
    assert (view.site_name, view.site_code) == ("Palmas (TO)", "palmas")
    assert view.services_count == 2
    assert view.service_names == ("alertmanager", "prometheus")
    assert view.services == PALMAS_SERVICES
    assert view.services_status == "ok"
    assert view.error is None
    assert view.updated_at == NOW
    assert view.id == "892f902b-d23f-0824-128b-2f330c5c7fd0"
    assert view.meta == {"consul-network-segment": "", "consul-version": "1.19.2"}
    assert view.tagged_addresses["wan_ipv4"] == "127.10.0.10"


def test_a_member_the_catalog_no_longer_lists_has_no_meta() -> None:
    """Meta, tagged addresses and ID come from the catalog: a member alone has none."""
    inventory = _inventory()
    inventory.catalog.pop("prom-rio-01")
    view = build_view(inventory, "prom-rio-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert (view.id, view.meta, view.tagged_addresses) == ("", {}, {})


def test_consul_server_view_is_a_server_with_zero_counted_services() -> None:
    """The Consul server is type server and its consul service is not counted."""
    view = build_view(_inventory(), "consul-server-1", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.type == "server"
    assert view.services_count == 0
    assert view.service_names == ("consul",)


def test_unmapped_address_gets_the_unmapped_label() -> None:
    """A node whose address no site maps gets the unmapped label and no code."""
    view = build_view(_inventory(), "prom-recife-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.site_name == "Nao mapeado"
    assert view.site_code is None


def test_serf_health_wins_over_the_member_status_which_covers_nodes_without_one() -> None:
    """The indexed serfHealth check decides; a member (read live) speaks only without a check."""
    inventory = _inventory()
    inventory.members = parse_members(
        [
            _member("prom-rio-01", "127.11.0.10", "node", status=4),
            _member("prom-palmas-01", "127.10.0.10", "node", status=3),
        ]
    )
    inventory.serf_health["prom-rio-01"] = "passing"
    inventory.serf_health.pop("prom-palmas-01", None)
    rio = build_view(inventory, "prom-rio-01", SITES, UNMAPPED, NOW)
    palmas = build_view(inventory, "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert rio is not None
    assert rio.status == "alive"
    assert palmas is not None
    assert palmas.status == "dead"


@pytest.mark.parametrize(
    ("serf", "status"),
    [("passing", "alive"), ("warning", "alive"), ("critical", "dead"), (None, "unknown")],
)
def test_catalog_only_node_falls_back_to_serf_health(serf: str | None, status: str) -> None:
    """Without members, a catalog node's status comes from its serfHealth check."""
    inventory = Inventory(members=None, catalog=parse_catalog_nodes(CATALOG_NODES))
    if serf is not None:
        inventory.serf_health["prom-rio-01"] = serf
    view = build_view(inventory, "prom-rio-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.status == status
    assert view.addr == "127.11.0.10"
    assert view.datacenter == "dc1"
    assert view.site_code == "rio"


def test_catalog_only_node_running_consul_is_a_server() -> None:
    """Without members, a node registering the consul service is taken for a server."""
    inventory = _inventory()
    inventory.members = None
    server = build_view(inventory, "consul-server-1", SITES, UNMAPPED, NOW)
    client = build_view(inventory, "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert server is not None
    assert client is not None
    assert (server.type, client.type) == ("server", "client")


def test_member_without_catalog_entry_has_a_view() -> None:
    """A gossip member not (yet) in the catalog still gets a view with its member address."""
    inventory = Inventory(members=parse_members(MEMBERS))
    view = build_view(inventory, "prom-rio-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.addr == "127.11.0.10"
    assert view.services_count == 0


def test_member_with_empty_addr_uses_the_catalog_address() -> None:
    """An empty member address falls back to the catalog address."""
    inventory = _inventory()
    assert inventory.members is not None
    inventory.members["prom-palmas-01"] = Member(
        name="prom-palmas-01", addr="", status="alive", type="client", datacenter=""
    )
    view = build_view(inventory, "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.addr == "127.10.0.10"
    assert view.datacenter == "dc1"


def test_unknown_node_has_no_view() -> None:
    """A node neither a member nor in the catalog gives None."""
    assert build_view(_inventory(), "ghost", SITES, UNMAPPED, NOW) is None


def test_failed_read_keeps_last_known_services_and_reports_the_error() -> None:
    """A node whose read failed keeps its last services and count, with status error and reason."""
    inventory = _inventory()
    inventory.failures["prom-palmas-01"] = "timeout: every Consul server failed"
    view = build_view(inventory, "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert view is not None
    assert view.services_status == "error"
    assert view.error == "timeout: every Consul server failed"
    assert view.services_count == 2
    assert view.services == PALMAS_SERVICES


def test_view_carries_the_node_index() -> None:
    """The view's consul_index is the index that last touched the node (0 if none)."""
    inventory = _inventory()
    inventory.node_index["prom-palmas-01"] = 42
    palmas = build_view(inventory, "prom-palmas-01", SITES, UNMAPPED, NOW)
    rio = build_view(inventory, "prom-rio-01", SITES, UNMAPPED, NOW)
    assert palmas is not None
    assert rio is not None
    assert (palmas.consul_index, rio.consul_index) == (42, 0)


def test_replace_service_swaps_instances_and_reports_touched_nodes() -> None:
    """Old instances of the name go, new ones arrive; nodes losing or gaining one are touched."""
    services = {
        "a": {"web": ServiceInstance(name="web", port=80), "db": ServiceInstance(name="db")},
        "b": {"web-2": ServiceInstance(name="web", port=81)},
        "c": {"db": ServiceInstance(name="db")},
    }
    touched = replace_service(
        services, "web", {"b": {"web-2": ServiceInstance(name="web", port=82)}, "d": {}}
    )
    assert touched == {"a", "b", "d"}
    assert services["a"] == {"db": ServiceInstance(name="db")}
    assert services["b"] == {"web-2": ServiceInstance(name="web", port=82)}
    assert services["c"] == {"db": ServiceInstance(name="db")}


def test_replace_service_with_nothing_removes_the_name_everywhere() -> None:
    """Replacing a service by no instances removes it from every node."""
    services = {"a": {"web": ServiceInstance(name="web")}, "b": {"db": ServiceInstance(name="db")}}
    assert replace_service(services, "web", {}) == {"a"}
    assert services == {"a": {}, "b": {"db": ServiceInstance(name="db")}}


@given(
    before=st.dictionaries(
        st.sampled_from(["n1", "n2", "n3"]),
        st.dictionaries(st.sampled_from(["i1", "i2"]), st.sampled_from(["web", "db"])),
    ),
    new=st.dictionaries(
        st.sampled_from(["n1", "n2", "n4"]),
        st.dictionaries(st.sampled_from(["i1", "i3"]), st.just("web")),
    ),
)
@settings(deadline=None)
def test_replace_service_leaves_only_the_new_instances_of_the_name(
    before: dict[str, dict[str, str]], new: dict[str, dict[str, str]]
) -> None:
    """After a replace, the name's instances are exactly the new ones; other names are untouched."""
    services = {
        node: {sid: ServiceInstance(name=name) for sid, name in items.items()}
        for node, items in before.items()
    }
    instances = {
        node: {sid: ServiceInstance(name=name) for sid, name in items.items()}
        for node, items in new.items()
    }
    replace_service(services, "web", copy.deepcopy(instances))
    web = {
        (node, sid)
        for node, items in services.items()
        for sid, inst in items.items()
        if inst.name == "web"
    }
    assert web == {(node, sid) for node, items in instances.items() for sid in items}
    for node, items in before.items():
        for sid, name in items.items():
            if name == "db" and sid not in instances.get(node, {}):
                assert services[node][sid].name == "db"


def test_same_view_ignores_bookkeeping_only() -> None:
    """Views differing only in updated_at and consul_index are the same; any other field is not."""
    view = build_view(_inventory(), "prom-palmas-01", SITES, UNMAPPED, NOW)
    assert view is not None
    later = view.model_copy(update={"updated_at": NOW + timedelta(minutes=5), "consul_index": 99})
    moved = view.model_copy(update={"site_name": UNMAPPED, "site_code": None})
    failed = view.model_copy(update={"services_status": "error", "error": "timeout"})
    retagged = view.model_copy(update={"meta": {**view.meta, "rack": "r1"}})
    readdressed = view.model_copy(update={"tagged_addresses": {"lan": "10.0.0.1"}})
    assert same_view(view, later)
    assert not same_view(view, moved)
    assert not same_view(view, failed)
    assert not same_view(view, retagged)
    assert not same_view(view, readdressed)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=10)
    | st.sampled_from(["consul", "serfHealth", "passing"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Name",
                    "Addr",
                    "Tags",
                    "Status",
                    "Node",
                    "Address",
                    "Datacenter",
                    "CheckID",
                    "Services",
                    "Service",
                    "ID",
                    "Port",
                    "ServiceID",
                    "ServiceName",
                    "ServiceTags",
                    "ServicePort",
                    "role",
                    "dc",
                    "Meta",
                    "TaggedAddresses",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@pytest.mark.parametrize(
    "parse",
    [
        parse_members,
        parse_catalog_nodes,
        parse_serf_health,
        parse_service_tags,
        parse_node_services,
        parse_catalog_service,
        parse_health_service,
    ],
)
@given(payload=json_values)
@settings(max_examples=80, deadline=None)
def test_parsers_only_ever_raise_bad_consul_payload(
    parse: Callable[[Any], object], payload: Any
) -> None:
    """On arbitrary JSON every parser returns a result or raises BadConsulPayload, nothing else."""
    with contextlib.suppress(BadConsulPayload):
        parse(payload)


_INSTANCES = st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(6)]),
    st.dictionaries(
        st.sampled_from([f"sid{i}" for i in range(4)]),
        st.builds(
            ServiceInstance,
            name=st.sampled_from(["web", "db", "cache"]),
            tags=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2).map(tuple),
        ),
        max_size=3,
    ),
    max_size=6,
)


@given(before=_INSTANCES, changes=_INSTANCES)
def test_held_after_a_change_of_some_nodes_equals_counting_everything_again(
    before: dict[str, dict[str, ServiceInstance]], changes: dict[str, dict[str, ServiceInstance]]
) -> None:
    """Recounting only the names of the changed nodes gives what a whole recount gives."""
    after = {**before, **changes}
    assert held_after(held_instances(before), after, changes) == held_instances(after)


def _summary(*nodes: str) -> ServiceSummary:
    """A name's summary: one instance on each of ``nodes``."""
    return ServiceSummary(frozenset(nodes), len(nodes))


def test_a_summary_drops_names_gone_and_reads_nodes_that_gained_one() -> None:
    """A name a node no longer holds is dropped; a node now holding one is read."""
    services = {
        "a": {"web": ServiceInstance(name="web"), "db": ServiceInstance(name="db")},
        "b": {"web": ServiceInstance(name="web")},
    }
    moves = plan_moves(services, {"web": _summary("a", "b", "c"), "db": _summary()}, Fresh())
    assert moves.drop == {"a": {"db"}}
    assert moves.read == ["c"]


def test_a_summary_takes_nothing_from_nodes_and_names_read_beside_it() -> None:
    """Fresh nodes are neither dropped nor read again; fresh names are left to their read."""
    services = {
        "a": {"web": ServiceInstance(name="web"), "db": ServiceInstance(name="db")},
        "b": {"cache": ServiceInstance(name="cache")},
    }
    summaries = {"web": _summary("a", "c"), "db": _summary(), "cache": _summary()}
    moves = plan_moves(services, summaries, Fresh(frozenset({"a", "c"}), frozenset({"cache"})))
    assert moves.drop == {}
    assert moves.read == []
    assert moves.unexplained(services, set()) == set()

"""Prometheus HTTP service discovery: target groups from node views, labels, filters."""

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.views import NodeView, ServiceInstance, TargetGroup
from services.api.prometheus_sd import host_port, sanitize_label_name, target_groups

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""What Prometheus accepts as a label name."""


def _view(node: str, addr: str, site: tuple[str, str | None], **extra: object) -> NodeView:
    return NodeView.model_validate(
        {
            "node": node,
            "addr": addr,
            "id": f"id-{node}",
            "datacenter": "dc1",
            "status": "alive",
            "site_name": site[0],
            "site_code": site[1],
            "updated_at": NOW,
            **extra,
        }
    )


PALMAS = _view(
    "prom-palmas-01",
    "127.10.0.10",
    ("Palmas (TO)", "palmas"),
    meta={"consul-version": "1.19.2", "os": "linux"},
    tagged_addresses={"lan": "127.10.0.10", "wan": "203.0.113.10"},
    services={
        "node_exporter": ServiceInstance(
            name="node_exporter", tags=("exporter", "linux"), port=9100
        ),
        "web-1": ServiceInstance(name="web", port=8080, address="127.10.0.99"),
        "web-2": ServiceInstance(name="web", tags=("canary",), port=8081),
        "no-port": ServiceInstance(name="batch"),
    },
)
RIO = _view(
    "prom-rio-01",
    "127.11.0.10",
    ("Rio de Janeiro (RJ)", "rio"),
    status="dead",
    services={"node_exporter": ServiceInstance(name="node_exporter", port=9100)},
)
V6 = _view(
    "v6",
    "2001:db8::1",
    ("Nao mapeado", None),
    services={"node_exporter": ServiceInstance(name="node_exporter", port=9100)},
)


def _by_target(groups: list[dict[str, object]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for group in groups:
        parsed = TargetGroup.model_validate(group)
        assert len(parsed.targets) == 1
        found[parsed.targets[0]] = parsed.labels
    return found


def test_one_group_per_instance_with_the_node_and_instance_labels() -> None:
    """Each instance is its own target with node, site, datacenter, service, tags and status."""
    groups = _by_target(target_groups([RIO, PALMAS]))
    assert list(groups) == [
        "127.10.0.10:9100",
        "127.10.0.99:8080",
        "127.10.0.10:8081",
        "127.11.0.10:9100",
    ]
    exporter = groups["127.10.0.10:9100"]
    assert exporter == {
        "__meta_nodeview_node": "prom-palmas-01",
        "__meta_nodeview_node_id": "id-prom-palmas-01",
        "__meta_nodeview_address": "127.10.0.10",
        "__meta_nodeview_datacenter": "dc1",
        "__meta_nodeview_site": "Palmas (TO)",
        "__meta_nodeview_site_code": "palmas",
        "__meta_nodeview_status": "alive",
        "__meta_nodeview_node_meta_consul_version": "1.19.2",
        "__meta_nodeview_node_meta_os": "linux",
        "__meta_nodeview_tagged_address_lan": "127.10.0.10",
        "__meta_nodeview_tagged_address_wan": "203.0.113.10",
        "__meta_nodeview_service": "node_exporter",
        "__meta_nodeview_service_id": "node_exporter",
        "__meta_nodeview_service_address": "",
        "__meta_nodeview_service_port": "9100",
        "__meta_nodeview_tags": ",exporter,linux,",
    }
    assert groups["127.11.0.10:9100"]["__meta_nodeview_status"] == "dead"
    unmapped = _by_target(target_groups([V6]))["[2001:db8::1]:9100"]
    assert (unmapped["__meta_nodeview_site"], unmapped["__meta_nodeview_site_code"]) == (
        "Nao mapeado",
        "",
    )


def test_the_service_address_wins_over_the_node_address() -> None:
    """An instance registered with its own address is scraped there."""
    web = _by_target(target_groups([PALMAS], service="web"))
    assert web["127.10.0.99:8080"]["__meta_nodeview_service_address"] == "127.10.0.99"
    assert web["127.10.0.99:8080"]["__meta_nodeview_address"] == "127.10.0.10"
    assert web["127.10.0.10:8081"]["__meta_nodeview_service_id"] == "web-2"


def test_tags_are_surrounded_by_the_separator_even_when_there_are_none() -> None:
    """Tags read ``,a,b,`` as consul_sd writes them, and ``,,`` without tags."""
    groups = _by_target(target_groups([PALMAS, RIO]))
    assert groups["127.10.0.10:8081"]["__meta_nodeview_tags"] == ",canary,"
    assert groups["127.11.0.10:9100"]["__meta_nodeview_tags"] == ",,"


def test_an_instance_without_a_port_or_any_address_is_left_out() -> None:
    """Port 0 or no address at all cannot be scraped: no target."""
    instance = ServiceInstance(name="s", port=1)
    nowhere = _view("n", "", ("Nao mapeado", None), services={"s": instance})
    assert not target_groups([nowhere])
    assert not target_groups([PALMAS], service="batch")


def test_filters_keep_one_service_and_one_site_by_name_or_code() -> None:
    """``service`` keeps one name; ``site`` one site, by its name or its code."""
    views = [PALMAS, RIO, V6]
    assert set(_by_target(target_groups(views, service="node_exporter"))) == {
        "127.10.0.10:9100",
        "127.11.0.10:9100",
        "[2001:db8::1]:9100",
    }
    assert set(_by_target(target_groups(views, site="rio"))) == {"127.11.0.10:9100"}
    assert set(_by_target(target_groups(views, site="Rio de Janeiro (RJ)"))) == {"127.11.0.10:9100"}
    assert target_groups(views, site="palmas", service="grafana") == []
    assert target_groups([]) == []


def test_ipv6_hosts_are_bracketed() -> None:
    """``host:port`` brackets an IPv6 address, as Go's JoinHostPort does."""
    assert host_port("2001:db8::1", 9100) == "[2001:db8::1]:9100"
    assert host_port("[::1]", 80) == "[::1]:80"
    assert host_port("node.example", 80) == "node.example:80"


@pytest.mark.parametrize(
    ("name", "label"),
    [("consul-version", "consul_version"), ("a.b/c d", "a_b_c_d"), ("ok_1", "ok_1"), ("é", "_")],
)
def test_label_names_are_sanitized_as_prometheus_does(name: str, label: str) -> None:
    """Every character outside ``[a-zA-Z0-9_]`` becomes ``_``."""
    assert sanitize_label_name(name) == label


def test_meta_keys_that_sanitize_alike_keep_the_first_in_order() -> None:
    """``a-b`` and ``a_b`` give one label: the first key in sorted order wins, every time."""
    view = _view(
        "n",
        "10.0.0.1",
        ("Nao mapeado", None),
        meta={"a_b": "underscore", "a-b": "dash"},
        services={"s": ServiceInstance(name="s", port=1)},
    )
    labels = _by_target(target_groups([view]))["10.0.0.1:1"]
    assert labels["__meta_nodeview_node_meta_a_b"] == "dash"


@given(keys=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=5), max_size=8))
@settings(max_examples=100, deadline=None)
def test_every_label_name_is_one_prometheus_accepts(keys: dict[str, str]) -> None:
    """Whatever the meta keys, each label name is valid for Prometheus."""
    view = _view(
        "n",
        "10.0.0.1",
        ("Nao mapeado", None),
        meta=keys,
        tagged_addresses=keys,
        services={"s": ServiceInstance(name="s", port=1)},
    )
    for group in target_groups([view]):
        assert all(LABEL_NAME.fullmatch(name) for name in group["labels"])

"""Unit tests of the double's inventory generator and duration parsing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.consul_double import generate_inventory
from devstack.consul_double.durations import parse_duration
from devstack.consul_double.errors import BadDuration
from devstack.consul_double.querying import (
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    blocking_timeout,
    cap_wait,
)


def test_inventory_is_deterministic() -> None:
    """The same arguments always produce the same inventory."""
    assert generate_inventory(20, 5, 3, 7) == generate_inventory(20, 5, 3, 7)


def test_inventory_depends_on_seed() -> None:
    """A different seed spreads services differently."""
    assert generate_inventory(20, 5, 3, 7) != generate_inventory(20, 5, 3, 8)


def test_inventory_shape() -> None:
    """Node names, addresses, meta, services and the sites document follow the agreed shape."""
    inventory = generate_inventory(nodes=6, services=8, sites=3, seed=1, servers=2)
    names = [node.name for node in inventory.nodes]
    assert names[:2] == ["consul-server-1", "consul-server-2"]
    assert names[2:] == [
        "prom-palmas-01",
        "prom-rio-01",
        "prom-recife-01",
        "prom-palmas-02",
        "prom-rio-02",
        "prom-recife-02",
    ]
    palmas = inventory.nodes[2]
    assert palmas.addr == "127.10.0.10"
    assert palmas.meta["site"] == "palmas"
    assert 1 <= len(palmas.services) <= 3
    assert all(s.tags == ("exporter", "palmas", "linux") for s in palmas.services)
    assert inventory.sites_document is not None
    sites = inventory.sites_document["data"]["sites"]
    assert [s["code"] for s in sites] == ["palmas", "rio", "recife"]
    assert set(sites[0]) == {
        "code",
        "name",
        "is_default",
        "color",
        "prometheus_instance",
        "prometheus_host",
    }
    assert [s["is_default"] for s in sites] == [True, False, False]
    assert sites[0]["prometheus_instance"] == "127.10.0.10"


def test_every_service_name_is_used() -> None:
    """Each generated service name runs on at least one node."""
    inventory = generate_inventory(nodes=12, services=8, sites=2, seed=5)
    used = {s.name for node in inventory.nodes for s in node.services}
    assert len(used) == 8


@settings(deadline=None, max_examples=60)
@given(
    nodes=st.integers(0, 300),
    services=st.integers(1, 12),
    sites=st.integers(1, 12),
    seed=st.integers(),
)
def test_inventory_addresses_and_names_are_unique(
    nodes: int, services: int, sites: int, seed: int
) -> None:
    """Generated node names and addresses never collide, and stay inside 127.0.0.0/8."""
    inventory = generate_inventory(nodes, services, sites, seed)
    names = [n.name for n in inventory.nodes]
    addrs = [n.addr for n in inventory.nodes]
    assert len(set(names)) == len(names)
    assert len(set(addrs)) == len(addrs)
    assert all(
        a.startswith("127.") and all(0 <= int(p) <= 255 for p in a.split(".")) for a in addrs
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("100ms", 0.1), ("1m", 60.0), ("1m30s", 90.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Go duration strings parse to seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "abc", "5x", "s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    """Malformed durations raise BadDuration."""
    with pytest.raises(BadDuration):
        parse_duration(text)


def test_wait_defaults_and_cap() -> None:
    """A missing wait means 5 minutes; more than 10 minutes is capped."""
    assert cap_wait(None) == DEFAULT_WAIT_SECONDS == 300.0
    assert cap_wait(20 * 60) == MAX_WAIT_SECONDS == 600.0
    assert cap_wait(10) == 10


def test_blocking_timeout_adds_at_most_a_sixteenth() -> None:
    """Jitter adds between 0 and wait/16."""
    for _ in range(200):
        assert 16.0 <= blocking_timeout(16.0) <= 17.0
    assert blocking_timeout(16.0, jitter=False) == 16.0

"""Planner: coalescing bursts, skipping old changes, applying state and listing the reads left."""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import ConsulChange, WatchType
from contracts.views import ServiceInstance
from services.enricher.inventory import Member, parse_catalog_nodes
from services.enricher.planner import (
    EnricherState,
    Outcome,
    ReadPlan,
    ResyncReason,
    Settings,
    apply_change,
    classify,
    coalesce,
)
from services.enricher.sites import Site

SITES_KEY = "skills/eye/metadata/sites"
RESYNC_EVENT = "nodeview-resync"
SETTINGS = Settings(sites_key=SITES_KEY, resync_event=RESYNC_EVENT)


def _change(
    watch_type: WatchType,
    index: int,
    payload: Any = None,
    *,
    key: str | None = None,
    service: str | None = None,
) -> ConsulChange:
    return ConsulChange(
        watch_type=watch_type,
        key=key,
        service=service,
        consul_index=index,
        source="watcher",
        payload=payload,
    )


def _node(name: str, addr: str) -> dict[str, Any]:
    return {
        "ID": "1600a35a-0999-50d8-36f6-75cc81e74ef5",
        "Node": name,
        "Address": addr,
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": addr, "wan": addr},
        "Meta": {"consul-version": "1.19.2"},
        "CreateIndex": 13,
        "ModifyIndex": 13,
    }


NODES = [
    _node("consul-server-1", "127.0.1.1"),
    _node("prom-palmas-01", "127.10.0.10"),
    _node("prom-rio-01", "127.11.0.10"),
]


def _serf(node: str, status: str) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": status,
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "CreateIndex": 13,
        "ModifyIndex": 13,
    }


def _service_check(node: str, service: str, status: str) -> dict[str, Any]:
    return _serf(node, status) | {
        "CheckID": f"service:{service}",
        "Name": f"Service '{service}' check",
        "ServiceID": service,
        "ServiceName": service,
    }


def _health_entry(node: str, addr: str, service: str, port: int) -> dict[str, Any]:
    return {
        "Node": _node(node, addr),
        "Service": {
            "ID": service,
            "Service": service,
            "Tags": ["exporter", "linux"],
            "Address": "",
            "Meta": {"metrics_path": "/metrics"},
            "Port": port,
        },
        "Checks": [_service_check(node, service, "passing")],
    }


SERVICES = {
    "alertmanager": ["exporter", "linux", "palmas"],
    "consul": [],
    "prometheus": ["exporter", "linux", "palmas", "rio"],
}

SITES_DOCUMENT = {
    "data": {
        "sites": [
            {
                "code": "palmas",
                "name": "Palmas (TO)",
                "prometheus_instance": "127.10.0.10",
                "prometheus_host": "127.10.0.10",
            }
        ]
    }
}


def _kv_entry(raw: bytes, key: str = SITES_KEY) -> dict[str, Any]:
    return {
        "LockIndex": 0,
        "Key": key,
        "Flags": 0,
        "Value": base64.b64encode(raw).decode(),
        "CreateIndex": 22,
        "ModifyIndex": 22,
    }


def _event(ltime: int, name: str = RESYNC_EVENT) -> dict[str, Any]:
    return {
        "ID": "dde75058-d1d2-a1e8-bfd3-761d1e726b03",
        "Name": name,
        "Payload": "bWFudWFs",
        "NodeFilter": "",
        "ServiceFilter": "",
        "TagFilter": "",
        "Version": 1,
        "LTime": ltime,
    }


def _apply(state: EnricherState, change: ConsulChange) -> tuple[Outcome, ReadPlan]:
    plan = ReadPlan()
    return apply_change(state, change, SETTINGS, plan), plan


def _state_with_nodes() -> EnricherState:
    state = EnricherState()
    state.inventory.members = {}
    state.inventory.catalog = parse_catalog_nodes(NODES)
    state.inventory.services = {
        "prom-palmas-01": {"alertmanager": ServiceInstance(name="alertmanager", port=9093)},
        "prom-rio-01": {"prometheus": ServiceInstance(name="prometheus", port=9090)},
    }
    return state


def test_coalesce_keeps_the_newest_change_of_each_watched_thing() -> None:
    """Of several changes of one (type, key) only the highest index survives."""
    changes = [
        _change("nodes", 5, []),
        _change("nodes", 9, NODES),
        _change("nodes", 7, []),
        _change("service", 3, [], service="web"),
        _change("service", 4, [], service="db"),
        _change("service", 2, [], service="web"),
    ]
    kept = coalesce(changes)
    assert {(c.watch_type, c.dedup_key, c.consul_index) for c in kept} == {
        ("nodes", None, 9),
        ("service", "web", 3),
        ("service", "db", 4),
    }


def test_coalesce_prefers_the_later_of_two_changes_at_one_index() -> None:
    """At equal indexes the change that arrived last wins."""
    first = _change("nodes", 5, [])
    second = _change("nodes", 5, NODES)
    assert coalesce([first, second]) == [second]


def test_coalesce_keeps_the_last_event_in_arrival_order() -> None:
    """Event indexes are not ordered, so the last event list received wins."""
    newer = _change("event", 9_000_000_000, [_event(1)], key=RESYNC_EVENT)
    latest = _change("event", 12, [_event(2)], key=RESYNC_EVENT)
    assert coalesce([newer, latest]) == [latest]


def test_coalesce_orders_changes_by_type() -> None:
    """Members come before nodes, nodes before checks, services, service, key, then events."""
    changes = [
        _change("event", 1, [], key=RESYNC_EVENT),
        _change("key", 1, None, key=SITES_KEY),
        _change("service", 1, [], service="web"),
        _change("services", 1, {}),
        _change("checks", 1, []),
        _change("nodes", 1, []),
        _change("members", 1, []),
    ]
    assert [c.watch_type for c in coalesce(changes)] == [
        "members",
        "nodes",
        "checks",
        "services",
        "service",
        "key",
        "event",
    ]


@given(
    indexes=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=50)),
        min_size=1,
        max_size=30,
    )
)
@settings(deadline=None)
def test_coalesce_keeps_one_maximal_change_per_key(indexes: list[tuple[str, int]]) -> None:
    """For any burst, one change per key remains and it carries that key's highest index."""
    changes = [_change("service", i, [], service=s) for s, i in indexes]
    kept = coalesce(changes)
    assert sorted(c.service or "" for c in kept) == sorted({s for s, _ in indexes})
    for change in kept:
        assert change.consul_index == max(i for s, i in indexes if s == change.service)


def test_classify_new_change_is_none() -> None:
    """A change of a thing never seen is new."""
    assert classify(EnricherState(), _change("nodes", 5, [])) is None


def test_classify_same_index_twice_is_duplicate() -> None:
    """A change at the index already applied is a duplicate (a redelivery)."""
    state = EnricherState()
    _apply(state, _change("nodes", 5, NODES))
    assert classify(state, _change("nodes", 5, NODES)) == "duplicate"


def test_classify_older_than_a_read_is_superseded() -> None:
    """A change at or below an index already read from Consul is superseded."""
    state = EnricherState()
    state.seen_index[("nodes", None)] = 10
    assert classify(state, _change("nodes", 8, [])) == "superseded"
    assert classify(state, _change("nodes", 10, [])) == "superseded"
    assert classify(state, _change("nodes", 11, [])) is None


def test_classify_lower_than_the_last_event_is_backwards() -> None:
    """A change below the last applied change's index means Consul's index went backwards."""
    state = EnricherState()
    _apply(state, _change("nodes", 50, NODES))
    assert classify(state, _change("nodes", 49, NODES)) == "backwards"


def test_classify_events_only_skip_the_same_index() -> None:
    """For user events only the exact same index is a duplicate; lower indexes are new."""
    state = EnricherState()
    _apply(state, _change("event", 100, [_event(1)], key=RESYNC_EVENT))
    assert classify(state, _change("event", 100, [], key=RESYNC_EVENT)) == "duplicate"
    assert classify(state, _change("event", 3, [], key=RESYNC_EVENT)) is None


def test_backwards_change_plans_a_full_resync() -> None:
    """An index going backwards is not applied and asks for a full resync."""
    state = _state_with_nodes()
    _apply(state, _change("nodes", 50, NODES))
    outcome, plan = _apply(state, _change("nodes", 3, []))
    assert outcome == "backwards"
    assert plan.full_resync is not None
    assert set(state.inventory.catalog) == {"consul-server-1", "prom-palmas-01", "prom-rio-01"}


def test_after_a_resync_other_watched_things_are_not_taken_for_resets() -> None:
    """After an index reset's resync, each other thing's next (lower) change is applied once."""
    state = _state_with_nodes()
    _apply(state, _change("nodes", 500, NODES))
    _apply(state, _change("checks", 480, []))
    _apply(state, _change("event", 90, [_event(1)], key=RESYNC_EVENT))
    outcome, plan = _apply(state, _change("nodes", 40, NODES))
    assert outcome == "backwards"
    assert plan.full_resync is not None
    assert plan.index_reset
    state.rebase({("nodes", None): 42, ("services", None): 41})
    assert classify(state, _change("nodes", 40, NODES)) == "superseded"
    assert classify(state, _change("nodes", 43, NODES)) is None
    assert classify(state, _change("checks", 45, [])) is None
    outcome, plan = _apply(state, _change("checks", 45, []))
    assert outcome != "backwards"
    assert plan.full_resync is None
    assert classify(state, _change("checks", 46, [])) is None
    assert classify(state, _change("event", 90, [], key=RESYNC_EVENT)) == "duplicate"


def test_a_redelivered_change_is_a_duplicate_and_plans_nothing() -> None:
    """Applying the same change twice reads nothing the second time."""
    state = _state_with_nodes()
    change = _change("nodes", 30, [*NODES, _node("prom-recife-01", "127.12.0.10")])
    _apply(state, change)
    outcome, plan = _apply(state, change)
    assert outcome == "duplicate"
    assert not plan.needs_reads()
    assert not plan.dirty


def test_node_join_reads_only_that_nodes_services() -> None:
    """A new node in the catalog asks for that node's services, not the whole member list."""
    state = _state_with_nodes()
    outcome, plan = _apply(
        state, _change("nodes", 30, [*NODES, _node("prom-recife-01", "1.2.3.4")])
    )
    assert outcome == "applied"
    assert not plan.members
    assert plan.node_services == {"prom-recife-01"}
    assert plan.dirty == {"prom-recife-01"}
    assert not plan.service_names
    assert plan.full_resync is None
    assert state.inventory.catalog["prom-recife-01"].addr == "1.2.3.4"
    assert state.inventory.node_index["prom-recife-01"] == 30


def test_node_join_without_a_members_endpoint_reads_only_services() -> None:
    """When members were never read, a join does not ask for them."""
    state = _state_with_nodes()
    state.inventory.members = None
    _, plan = _apply(state, _change("nodes", 30, [*NODES, _node("prom-recife-01", "1.2.3.4")]))
    assert not plan.members
    assert plan.node_services == {"prom-recife-01"}


def test_node_removed_drops_its_services_and_failure() -> None:
    """A node gone from the catalog loses its services and failure, and its view is dirty."""
    state = _state_with_nodes()
    state.inventory.failures["prom-rio-01"] = "timeout"
    outcome, plan = _apply(state, _change("nodes", 31, NODES[:2]))
    assert outcome == "applied"
    assert "prom-rio-01" not in state.inventory.services
    assert "prom-rio-01" not in state.inventory.failures
    assert "prom-rio-01" not in state.inventory.catalog
    assert plan.dirty == {"prom-rio-01"}
    assert plan.members
    assert not plan.node_services


def test_node_address_change_is_dirty_without_a_services_read() -> None:
    """A node whose address moved is re-rendered; its services are not read again."""
    state = _state_with_nodes()
    moved = [NODES[0], NODES[1], _node("prom-rio-01", "10.0.0.99")]
    _, plan = _apply(state, _change("nodes", 32, moved))
    assert plan.dirty == {"prom-rio-01"}
    assert not plan.node_services


def test_unchanged_node_list_plans_nothing() -> None:
    """The same node list at a new index reads nothing and dirties nothing."""
    state = _state_with_nodes()
    _, plan = _apply(state, _change("nodes", 33, NODES))
    assert not plan.needs_reads()
    assert not plan.dirty


def test_serf_health_change_reads_members() -> None:
    """A node's serfHealth status change asks for the member list and dirties the node."""
    state = _state_with_nodes()
    _apply(state, _change("checks", 10, [_serf("prom-rio-01", "passing")]))
    outcome, plan = _apply(
        state,
        _change(
            "checks",
            11,
            [_serf("prom-rio-01", "critical"), _service_check("prom-rio-01", "x", "passing")],
        ),
    )
    assert outcome == "applied"
    assert plan.members
    assert plan.dirty == {"prom-rio-01"}
    assert state.inventory.serf_health == {"prom-rio-01": "critical"}


def test_checks_disagreeing_with_a_newer_members_read_read_members_again() -> None:
    """Failed and recovered between two answers: same serfHealth, but members said failed."""
    state = _state_with_nodes()
    _apply(state, _change("checks", 10, [_serf("prom-rio-01", "passing")]))
    # The members read that followed saw the node already failed (a change not yet answered).
    state.inventory.members = {
        "prom-rio-01": Member("prom-rio-01", "127.11.0.10", "dead", "client", "dc1")
    }
    _, plan = _apply(state, _change("checks", 12, [_serf("prom-rio-01", "passing")]))
    assert plan.members
    assert plan.dirty == {"prom-rio-01"}


def test_service_check_changes_alone_read_nothing() -> None:
    """Checks payloads whose serfHealth did not change plan no read."""
    state = _state_with_nodes()
    _apply(state, _change("checks", 10, [_serf("prom-rio-01", "passing")]))
    _, plan = _apply(
        state,
        _change(
            "checks",
            11,
            [_serf("prom-rio-01", "passing"), _service_check("prom-rio-01", "x", "critical")],
        ),
    )
    assert not plan.needs_reads()
    assert not plan.dirty


def test_members_change_dirties_only_changed_members() -> None:
    """A members payload marks dirty exactly the members that appeared, left or changed."""
    state = _state_with_nodes()
    state.inventory.members = {
        "prom-rio-01": Member("prom-rio-01", "127.11.0.10", "alive", "client", "dc1"),
        "prom-palmas-01": Member("prom-palmas-01", "127.10.0.10", "alive", "client", "dc1"),
    }
    payload = [
        {"Name": "prom-rio-01", "Addr": "127.11.0.10", "Status": 4, "Tags": {"dc": "dc1"}},
        {"Name": "prom-palmas-01", "Addr": "127.10.0.10", "Status": 1, "Tags": {"dc": "dc1"}},
    ]
    _, plan = _apply(state, _change("members", 5, payload))
    assert plan.dirty == {"prom-rio-01"}
    assert state.inventory.members is not None
    assert state.inventory.members["prom-rio-01"].status == "dead"


def test_new_service_name_reads_that_service_only() -> None:
    """A service name that appeared is the only service read."""
    state = _state_with_nodes()
    _apply(state, _change("services", 20, SERVICES))
    _, plan = _apply(state, _change("services", 21, SERVICES | {"snmp_exporter": ["recife"]}))
    assert plan.service_names == {"snmp_exporter"}
    assert not plan.node_services
    assert not plan.members


def test_identical_services_at_a_new_index_ask_where_instances_moved() -> None:
    """Same names and tags at a higher index read Consul's summary, not every name."""
    state = _state_with_nodes()
    _apply(state, _change("services", 20, SERVICES))
    _, plan = _apply(state, _change("services", 21, dict(SERVICES)))
    assert plan.services_moved
    assert not plan.service_names


def test_removed_service_name_drops_its_instances() -> None:
    """A service name gone from the catalog is removed from every node, which become dirty."""
    state = _state_with_nodes()
    _apply(state, _change("services", 20, SERVICES))
    without = {k: v for k, v in SERVICES.items() if k != "prometheus"}
    _, plan = _apply(state, _change("services", 21, without))
    assert "prom-rio-01" in plan.dirty
    assert state.inventory.services["prom-rio-01"] == {}
    assert "prometheus" not in plan.service_names


def test_service_watch_applies_instances_without_reads() -> None:
    """A service watch carries its instances, so nothing is read and touched nodes are dirty."""
    state = _state_with_nodes()
    payload = [_health_entry("prom-palmas-01", "127.10.0.10", "prometheus", 9090)]
    outcome, plan = _apply(state, _change("service", 40, payload, service="prometheus"))
    assert outcome == "applied"
    assert not plan.needs_reads()
    assert plan.dirty == {"prom-palmas-01", "prom-rio-01"}
    assert state.inventory.services["prom-palmas-01"]["prometheus"].port == 9090
    assert "prometheus" not in state.inventory.services["prom-rio-01"]


def test_service_watch_without_a_name_is_a_bad_payload() -> None:
    """A service change with no service name is rejected, not applied to every service."""
    state = _state_with_nodes()
    outcome, _ = _apply(state, _change("service", 40, []))
    assert outcome == "bad_payload"
    assert state.inventory.services["prom-rio-01"]


def test_sites_key_change_dirties_every_view_without_reads() -> None:
    """The sites document arrives with its event: no Consul read, every view re-rendered."""
    state = _state_with_nodes()
    change = _change("key", 22, _kv_entry(json.dumps(SITES_DOCUMENT).encode()), key=SITES_KEY)
    outcome, plan = _apply(state, change)
    assert outcome == "applied"
    assert plan.all_dirty
    assert not plan.needs_reads()
    assert state.sites.lookup("127.10.0.10") == Site(name="Palmas (TO)", code="palmas")


@pytest.mark.parametrize(
    "payload",
    [
        _kv_entry(b"{not json"),
        _kv_entry(json.dumps({"no": "sites"}).encode()),
        {"Key": SITES_KEY, "Value": "%%%"},
    ],
    ids=["not-json", "wrong-shape", "not-base64"],
)
def test_bad_sites_document_keeps_the_last_good_one(payload: dict[str, Any]) -> None:
    """A malformed sites document is a bad payload and the previous sites stay in use."""
    state = _state_with_nodes()
    good = _change("key", 22, _kv_entry(json.dumps(SITES_DOCUMENT).encode()), key=SITES_KEY)
    _apply(state, good)
    before = state.sites
    outcome, plan = _apply(state, _change("key", 23, payload, key=SITES_KEY))
    assert outcome == "bad_payload"
    assert state.sites is before
    assert not plan.all_dirty


def test_deleted_sites_key_unmaps_every_node() -> None:
    """When the sites key is deleted, every node becomes unmapped."""
    state = _state_with_nodes()
    _apply(state, _change("key", 22, _kv_entry(json.dumps(SITES_DOCUMENT).encode()), key=SITES_KEY))
    _, plan = _apply(state, _change("key", 23, None, key=SITES_KEY))
    assert state.sites.lookup("127.10.0.10") is None
    assert plan.all_dirty


def test_other_keys_are_ignored() -> None:
    """A key watch on another key changes nothing."""
    state = _state_with_nodes()
    before = state.sites
    outcome, plan = _apply(state, _change("key", 5, _kv_entry(b"{}", "other/key"), key="other/key"))
    assert outcome == "ignored"
    assert state.sites is before
    assert not plan.all_dirty
    assert not plan.needs_reads()


def test_resync_event_with_a_new_ltime_asks_for_a_full_resync() -> None:
    """A nodeview-resync user event newer than the last acted on plans a full resync."""
    state = _state_with_nodes()
    state.last_event_ltime = 1
    change = _change("event", 7076322995783912171, [_event(1), _event(2)], key=RESYNC_EVENT)
    outcome, plan = _apply(state, change)
    assert outcome == "applied"
    assert plan.full_resync is not None
    assert state.last_event_ltime == 2


def test_resync_event_with_an_old_ltime_does_nothing() -> None:
    """Replayed events at or below the last Lamport time plan nothing."""
    state = _state_with_nodes()
    state.last_event_ltime = 5
    change = _change("event", 1234, [_event(4), _event(5)], key=RESYNC_EVENT)
    outcome, plan = _apply(state, change)
    assert outcome == "applied"
    assert plan.full_resync is None
    assert state.last_event_ltime == 5


def test_other_user_events_do_not_resync() -> None:
    """Only events named like the resync event count."""
    state = _state_with_nodes()
    change = _change("event", 99, [_event(9, name="deploy")], key=RESYNC_EVENT)
    _, plan = _apply(state, change)
    assert plan.full_resync is None
    assert state.last_event_ltime == 0


def test_event_payload_that_is_not_a_list_is_a_bad_payload() -> None:
    """An event payload that is an object is rejected."""
    outcome, _ = _apply(EnricherState(), _change("event", 5, {"LTime": 9}, key=RESYNC_EVENT))
    assert outcome == "bad_payload"


def test_bad_payload_leaves_no_index_so_the_good_copy_still_applies() -> None:
    """A bad copy of a change is kept out without marking its index: the good copy applies."""
    state = _state_with_nodes()
    bad = _change("nodes", 40, [{"Node": 5}])
    assert _apply(state, bad)[0] == "bad_payload"
    assert _apply(state, bad)[0] == "bad_payload"
    good = ConsulChange(
        watch_type="nodes",
        consul_index=40,
        source="http",
        payload=[_node("consul-server-1", "127.0.0.1"), _node("prom-new-01", "127.10.0.40")],
    )
    assert _apply(state, good)[0] == "applied"
    assert set(state.inventory.catalog) == {"consul-server-1", "prom-new-01"}


def test_empty_list_answers_are_refused_and_never_delete_or_zero() -> None:
    """An empty node, service, check or member list where nodeview holds items is refused."""
    state = _state_with_nodes()
    state.inventory.service_tags = {"web": ()}
    state.inventory.serf_health = {"prom-rio-01": "passing"}
    state.inventory.members = {
        "prom-rio-01": Member("prom-rio-01", "127.11.0.1", "alive", "client", "dc1")
    }
    before = (
        dict(state.inventory.catalog),
        dict(state.inventory.service_tags),
        dict(state.inventory.serf_health),
        dict(state.inventory.members),
    )
    empties: tuple[tuple[WatchType, Any], ...] = (
        ("nodes", []),
        ("services", {}),
        ("checks", []),
        ("members", []),
    )
    for watch_type, empty in empties:
        plan = ReadPlan()
        change = _change(watch_type, 50, empty)
        assert apply_change(state, change, SETTINGS, plan) == "refused", watch_type
        assert plan.degraded, watch_type
        assert not plan.dirty, watch_type
    after = (
        state.inventory.catalog,
        state.inventory.service_tags,
        state.inventory.serf_health,
        state.inventory.members,
    )
    assert after == before


def test_an_acl_filtered_node_list_adds_but_never_deletes() -> None:
    """Nodes an ACL-filtered answer leaves out are kept; new ones are added; it shows degraded."""
    state = _state_with_nodes()
    filtered = ConsulChange(
        watch_type="nodes",
        consul_index=60,
        source="watcher",
        payload=[_node("prom-new-02", "127.10.0.41")],
        filtered_by_acls=True,
    )
    plan = ReadPlan()
    assert apply_change(state, filtered, SETTINGS, plan) == "applied"
    assert set(state.inventory.catalog) == {
        "consul-server-1",
        "prom-palmas-01",
        "prom-rio-01",
        "prom-new-02",
    }
    assert "nodes list" in plan.degraded
    whole = _change("nodes", 61, [_node("consul-server-1", "127.0.0.1")])
    plan = ReadPlan()
    assert apply_change(state, whole, SETTINGS, plan) == "applied"
    assert set(state.inventory.catalog) == {"consul-server-1"}
    assert "nodes list" in plan.sound


def test_a_resync_forgets_indexes_beyond_what_consul_answered() -> None:
    """A bogus huge index no longer supersedes real changes once a resync has read Consul."""
    state = _state_with_nodes()
    bogus = ConsulChange(
        watch_type="nodes",
        consul_index=2**62,
        source="http",
        payload=[_node("consul-server-1", "127.0.0.1")],
    )
    assert _apply(state, bogus)[0] == "applied"
    real = _change("nodes", 70, [_node("consul-server-1", "127.0.0.1"), _node("x-1", "127.9.0.1")])
    assert _apply(state, real)[0] == "superseded"
    state.settle({("nodes", None): 69, ("services", None): 69})
    assert _apply(state, real)[0] == "applied"
    assert "x-1" in state.inventory.catalog


def test_ignored_keys_leave_no_index_behind() -> None:
    """A key nodeview does not watch is ignored and leaves nothing in the planner's state."""
    state = _state_with_nodes()
    for n in range(50):
        change = _change("key", 80 + n, None, key=f"other/key/{n}")
        assert _apply(state, change)[0] == "ignored"
    assert not [k for k in state.seen_index if k[0] == "key"]
    assert not [k for k in state.event_index if k[0] == "key"]


def test_read_plan_merge_unions_reads_and_keeps_the_first_resync_reason() -> None:
    """Merging plans unions every read and dirty set and keeps the first resync reason."""
    plan = ReadPlan(node_services={"a"}, dirty={"a"}, full_resync=ResyncReason.USER_EVENT)
    plan.merge(
        ReadPlan(
            members=True,
            node_services={"b"},
            service_names={"web"},
            full_resync=ResyncReason.INDEX_RESET,
            dirty={"b"},
            all_dirty=True,
        )
    )
    assert plan == ReadPlan(
        members=True,
        node_services={"a", "b"},
        service_names={"web"},
        full_resync=ResyncReason.USER_EVENT,
        dirty={"a", "b"},
        all_dirty=True,
    )
    empty = ReadPlan()
    empty.merge(ReadPlan(full_resync=ResyncReason.PERIODIC))
    assert empty.full_resync == ResyncReason.PERIODIC


@pytest.mark.parametrize(
    ("plan", "needs"),
    [
        (ReadPlan(), False),
        (ReadPlan(dirty={"a"}, all_dirty=True), False),
        (ReadPlan(members=True), True),
        (ReadPlan(node_services={"a"}), True),
        (ReadPlan(service_names={"web"}), True),
        (ReadPlan(full_resync=ResyncReason.START), True),
        (ReadPlan(services_moved=True), True),
    ],
)
def test_needs_reads_is_true_only_with_a_consul_read(plan: ReadPlan, needs: bool) -> None:
    """Dirty views alone need no Consul read; any planned read does."""
    assert plan.needs_reads() is needs


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["Node", "Name", "Status", "CheckID", "Service", "Value", "LTime"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(
    watch_type=st.sampled_from(get_args(WatchType)),
    payload=json_values,
    index=st.integers(min_value=0, max_value=2**64 - 1),
)
@settings(max_examples=300, deadline=None)
def test_apply_change_never_raises_on_arbitrary_payloads(
    watch_type: WatchType, payload: Any, index: int
) -> None:
    """Whatever a change carries, apply_change returns an outcome instead of raising."""
    state = _state_with_nodes()
    key = SITES_KEY if watch_type == "key" else RESYNC_EVENT if watch_type == "event" else None
    change = _change(watch_type, index, payload, key=key, service="web")
    outcome = apply_change(state, change, SETTINGS, ReadPlan())
    assert outcome in ("applied", "bad_payload", "ignored", "refused")


def test_a_sites_value_with_a_huge_integer_is_a_bad_payload() -> None:
    """A sites document holding a 5000-digit number is a bad payload, not an escaping error."""
    state = _state_with_nodes()
    raw = b'{"sites": [], "version": ' + b"7" * 5000 + b"}"
    outcome, _ = _apply(state, _change("key", 30, _kv_entry(raw), key=SITES_KEY))
    assert outcome == "bad_payload"


def _from_relay(index: int, relay: str, observed: datetime) -> ConsulChange:
    return ConsulChange(
        watch_type="nodes",
        consul_index=index,
        source="watcher",
        relay_id=relay,
        observed_at=observed,
        payload=NODES,
    )


def test_a_lower_index_from_another_relay_is_late_not_a_reset() -> None:
    """Relay B's 99 read before relay A's 100 is a late answer; read well after, a reset."""
    state = _state_with_nodes()
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert _apply(state, _from_relay(100, "a", now))[0] == "applied"
    assert _apply(state, _from_relay(99, "b", now - timedelta(milliseconds=5)))[0] == "superseded"
    assert _apply(state, _from_relay(99, "b", now + timedelta(milliseconds=300)))[0] == (
        "superseded"
    )
    outcome, plan = _apply(state, _from_relay(98, "b", now + timedelta(seconds=30)))
    assert outcome == "backwards"
    assert plan.index_reset
    assert _apply(state, _from_relay(97, "b", now + timedelta(seconds=31)))[0] == "backwards"


def test_another_datacenters_change_is_ignored() -> None:
    """A change named for another datacenter never mixes into this datacenter's view."""
    state = _state_with_nodes()
    state.datacenter = "dc1"
    remote = ConsulChange(
        watch_type="nodes",
        consul_index=90,
        source="http",
        datacenter="dc2",
        payload=[_node("remote-1", "10.2.0.1")],
    )
    assert _apply(state, remote)[0] == "ignored"
    assert "remote-1" not in state.inventory.catalog
    local = remote.model_copy(update={"datacenter": "dc1"})
    assert _apply(state, local)[0] == "applied"
    assert "remote-1" in state.inventory.catalog


def test_an_alive_member_missing_from_the_catalog_reads_members_again() -> None:
    """A member read saw a node alive that no catalog answer holds (joined and left between)."""
    state = _state_with_nodes()
    state.inventory.members = {
        "ghost-1": Member("ghost-1", "127.9.9.9", "alive", "client", "dc1"),
    }
    _, plan = _apply(state, _change("nodes", 95, NODES))
    assert plan.members
    assert "ghost-1" in plan.dirty

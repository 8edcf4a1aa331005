"""Unit tests of the double's state: indexes, membership, catalog, KV, events and restore."""

import base64
import json

import pytest

from devstack.consul_double import ConsulState, UnknownNode, generate_inventory, queries
from devstack.consul_double.records import MemberStatus, event_index


def cluster() -> ConsulState:
    """A state with one server and two client nodes, each client running one service."""
    state = ConsulState()
    state.join_node("consul-server-1", "127.0.1.1", server=True)
    state.join_node("prom-a-01", "127.10.0.10", meta={"site": "a"})
    state.join_node("prom-b-01", "127.11.0.10", meta={"site": "b"})
    state.register_service("prom-a-01", "prometheus", "prometheus", tags=("x",), port=9090)
    state.register_service("prom-b-01", "node_exporter", "node_exporter", port=9100)
    return state


def test_every_write_raises_the_raft_index() -> None:
    """Each join, registration and KV write takes a new, larger raft index."""
    state = ConsulState()
    seen = [state.index]
    state.join_node("n1", "127.0.0.2")
    seen.append(state.index)
    state.register_service("n1", "s1", "svc")
    seen.append(state.index)
    state.kv_put("k", b"v")
    seen.append(state.index)
    assert seen == sorted(set(seen))


def test_join_registers_node_check_and_server_service_in_one_write() -> None:
    """A server join creates node, serfHealth and the consul service at the same index."""
    state = ConsulState()
    state.join_node("consul-server-1", "127.0.1.1", server=True)
    node = state.nodes["consul-server-1"]
    check = state.checks["consul-server-1"]["serfHealth"]
    service = state.services["consul-server-1"]["consul"]
    assert node.create_index == check.create_index == service.create_index == state.index
    assert state.members["consul-server-1"].tags["role"] == "consul"
    assert node.meta["consul-version"] == "1.19.2"


def test_unrelated_writes_do_not_raise_a_service_index() -> None:
    """KV writes and other services' registrations leave a service's index alone."""
    state = cluster()
    before = queries.catalog_service(state, "prometheus").index
    state.kv_put("some/key", b"1")
    state.register_service("prom-b-01", "other", "other")
    assert queries.catalog_service(state, "prometheus").index == before


def test_service_registration_raises_its_indexes() -> None:
    """Registering an instance raises the service, services-table, nodes-table and node indexes."""
    state = cluster()
    state.register_service("prom-b-01", "prometheus", "prometheus", port=9090)
    index = state.index
    assert queries.catalog_service(state, "prometheus").index == index
    assert queries.catalog_services(state).index == index
    assert queries.catalog_nodes(state).index == index
    assert queries.catalog_node_services(state, "prom-b-01").index == index
    assert queries.catalog_node_services(state, "prom-a-01").index < index


def test_fail_node_marks_member_and_serf_check_but_keeps_catalog() -> None:
    """A failed node is Status 4 with a critical serfHealth and stays in the catalog."""
    state = cluster()
    nodes_index = queries.catalog_nodes(state).index
    state.fail_node("prom-a-01")
    assert state.members["prom-a-01"].status == MemberStatus.FAILED
    check = state.checks["prom-a-01"]["serfHealth"]
    assert (check.status, check.output) == ("critical", "Agent not live or unreachable")
    assert "prom-a-01" in state.nodes
    assert queries.catalog_nodes(state).index == nodes_index
    assert queries.health_service(state, "prometheus").index == state.index


def test_recover_node_restores_passing_check() -> None:
    """Recovering a failed node makes it alive with a passing serfHealth."""
    state = cluster()
    state.fail_node("prom-a-01")
    state.recover_node("prom-a-01")
    assert state.members["prom-a-01"].status == MemberStatus.ALIVE
    assert state.checks["prom-a-01"]["serfHealth"].status == "passing"


def test_leave_node_deregisters_it() -> None:
    """A graceful leave sets Status 3 and removes the node, its services and checks."""
    state = cluster()
    state.leave_node("prom-a-01")
    assert state.members["prom-a-01"].status == MemberStatus.LEFT
    assert "prom-a-01" not in state.nodes
    assert queries.catalog_service(state, "prometheus").body == []
    assert "prometheus" not in queries.catalog_services(state).body
    assert queries.catalog_service(state, "prometheus").index == state.index


def test_recover_after_leave_registers_again() -> None:
    """A member that left and comes back is registered in the catalog again."""
    state = cluster()
    state.leave_node("prom-a-01")
    state.recover_node("prom-a-01")
    assert state.nodes["prom-a-01"].meta["site"] == "a"


def test_unknown_node_is_a_named_error() -> None:
    """State operations on unknown nodes raise UnknownNode."""
    state = ConsulState()
    with pytest.raises(UnknownNode):
        state.fail_node("ghost")
    with pytest.raises(UnknownNode):
        state.register_service("ghost", "s", "s")


def test_deregistering_a_missing_service_is_a_no_op() -> None:
    """Like Consul, removing a service that is not there changes nothing."""
    state = cluster()
    before = state.index
    state.deregister_service("prom-a-01", "nothing")
    assert state.index == before


def test_kv_get_index_is_modify_index_and_missing_key_reports_table_index() -> None:
    """A key reports its ModifyIndex; a missing key 404s with the KV table index."""
    state = ConsulState()
    state.kv_put("a", b"1")
    first = state.index
    state.kv_put("b", b"2")
    assert queries.kv_get(state, "a").index == first
    missing = queries.kv_get(state, "zzz")
    assert (missing.status, missing.index) == (404, state.index)


def test_kv_entry_shape_and_empty_value_is_null() -> None:
    """KV entries carry base64 values, null for an empty value."""
    state = ConsulState()
    state.kv_put("k", b"hello", flags=7)
    state.kv_put("empty", b"")
    entry = queries.kv_get(state, "k").body[0]
    assert list(entry) == ["LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"]
    assert base64.b64decode(entry["Value"]) == b"hello"
    assert entry["Flags"] == 7
    assert queries.kv_get(state, "empty").body[0]["Value"] is None


def test_kv_cas() -> None:
    """A check-and-set write succeeds only with the current ModifyIndex (0: when absent)."""
    state = ConsulState()
    assert state.kv_put("k", b"1", cas=0)
    assert not state.kv_put("k", b"2", cas=0)
    assert state.kv_put("k", b"3", cas=state.kv["k"].modify_index)
    assert state.kv["k"].value == b"3"


def test_kv_delete_raises_prefix_index() -> None:
    """Deleting a key under a prefix raises the prefix index for recurse queries."""
    state = ConsulState()
    state.kv_put("p/a", b"1")
    state.kv_put("p/b", b"1")
    state.kv_delete("p/b")
    assert queries.kv_recurse(state, "p/").index == state.index
    assert [e["Key"] for e in queries.kv_recurse(state, "p/").body] == ["p/a"]


def test_set_sites_stores_json_document() -> None:
    """set_sites writes the JSON document to the configured key."""
    state = ConsulState(sites_key="custom/sites")
    state.set_sites({"data": {"sites": []}})
    assert json.loads(state.kv["custom/sites"].value) == {"data": {"sites": []}}


def test_events_use_uuid_derived_index_and_increasing_ltime() -> None:
    """Event list index comes from the last event ID; LTime increases; payload is base64."""
    state = ConsulState()
    first = state.fire_event("deploy", b"manual")
    second = state.fire_event("deploy", None)
    answer = queries.event_list(state, "deploy")
    assert answer.index == event_index(second["ID"])
    assert [e["LTime"] for e in answer.body] == [1, 2]
    assert first["Payload"] == base64.b64encode(b"manual").decode()
    assert second["Payload"] is None
    assert queries.event_list(state, "other").index == 1


def test_event_index_matches_consul_sample() -> None:
    """The UUID to index conversion reproduces the value Consul reports for a known ID."""
    assert event_index("dde75058-d1d2-a1e8-bfd3-761d1e726b03") == 7076322995783912171


def test_reset_index_lowers_every_index() -> None:
    """A restore lowers the raft, table and row indexes; the next write continues from there."""
    state = cluster()
    state.kv_put("k", b"v")
    target = state.reset_index(to=2)
    assert state.index == 2
    assert queries.catalog_nodes(state).index <= 2
    assert all(n.modify_index <= 2 for n in state.nodes.values())
    assert queries.kv_get(state, "k").index <= 2
    state.kv_put("k", b"w")
    assert state.index == target + 1


def test_change_log_records_every_write() -> None:
    """Each write appears in the change log with its index."""
    state = ConsulState()
    state.join_node("n1", "127.0.0.2")
    state.kv_put("k", b"v")
    kinds = [(r.kind, r.index) for r in state.change_log]
    assert kinds == [("join", 1), ("kv", 2)]


def test_snapshot_lists_members_nodes_services_and_keys() -> None:
    """The snapshot holds members, nodes with services, KV keys and indexes."""
    state = cluster()
    state.kv_put("k", b"v")
    snapshot = state.snapshot()
    assert {m["Name"] for m in snapshot["members"]} == {"consul-server-1", "prom-a-01", "prom-b-01"}
    node = next(n for n in snapshot["nodes"] if n["Node"] == "prom-a-01")
    assert node["Services"] == {"prometheus": "prometheus"}
    assert snapshot["kv_keys"] == ["k"]
    assert snapshot["index"] == state.index


def test_inventory_applies_to_state() -> None:
    """Applying a generated inventory yields its nodes, services and sites document."""
    inventory = generate_inventory(nodes=9, services=4, sites=3, seed=3)
    state = ConsulState()
    inventory.apply(state)
    assert len(state.nodes) == 10
    assert set(queries.catalog_services(state).body) <= {
        "consul",
        "node_exporter",
        "prometheus",
        "alertmanager",
        "snmp_exporter",
    }
    assert "skills/eye/metadata/sites" in state.kv

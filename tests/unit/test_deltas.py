"""Deltas: the relay diffs whole lists item by item; the enricher applies them in any order."""

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contracts.events import ConsulChange, ConsulDelta, list_items
from contracts.views import ServiceInstance
from services.enricher.deltas import apply_delta, overtaken
from services.enricher.inventory import (
    Member,
    ServiceSummary,
    build_view,
    held_instances,
    instance_moves,
    names_to_read,
    parse_catalog_nodes,
    parse_ui_services,
)
from services.enricher.planner import (
    EnricherState,
    Outcome,
    ReadPlan,
    Settings,
    apply_change,
)
from services.enricher.sites import SitesMap
from services.relay.deltas import Baseline, Differ, items_digest

SETTINGS = Settings(sites_key="sites", resync_event="nodeview-resync")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _modified(*content: str) -> int:
    """A ``ModifyIndex`` that moves with the content, as Consul bumps it with every change."""
    return 10 + zlib.crc32("/".join(content).encode()) % 100_000


def _node(name: str, addr: str) -> dict[str, Any]:
    return {
        "ID": f"id-{name}",
        "Node": name,
        "Address": addr,
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": addr},
        "CreateIndex": 5,
        "ModifyIndex": _modified(name, addr),
    }


def _serf(node: str, status: str) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": "serfHealth",
        "Status": status,
        "CreateIndex": 7,
        "ModifyIndex": _modified(node, status),
    }


def _answer(watch_type: str, index: int, payload: Any, **extra: Any) -> ConsulChange:
    return ConsulChange(
        watch_type=watch_type,
        consul_index=index,
        source="watcher",
        relay_id="r1",
        payload=payload,
        **extra,
    )


def _plan(differ: Differ, change: ConsulChange) -> ConsulChange | ConsulDelta | Baseline:
    return differ.plan(change, differ.items(change))


def _published(differ: Differ, change: ConsulChange) -> ConsulChange | ConsulDelta | Baseline:
    items = differ.items(change)
    planned = differ.plan(change, items)
    differ.published(change, items, change.consul_index)
    return planned


def test_the_first_answer_goes_out_whole_then_only_what_changed() -> None:
    """After a whole first answer, a one-node change is a delta naming only that node."""
    differ = Differ()
    nodes = [_node(f"n{i}", f"10.0.0.{i}") for i in range(50)]
    first = _answer("nodes", 10, nodes)
    assert _published(differ, first) is first
    moved = [
        *nodes[:3],
        _node("n3", "10.9.9.9"),
        *nodes[4:47],
        *nodes[48:],
        _node("n99", "10.0.1.99"),
    ]
    planned = _published(differ, _answer("nodes", 11, moved))
    assert isinstance(planned, ConsulDelta)
    assert set(planned.changed) == {"n3", "n99"}
    assert planned.changed["n3"]["Address"] == "10.9.9.9"
    assert planned.removed == ("n47",)


def test_the_same_answer_from_the_handler_and_the_watcher_is_published_once() -> None:
    """A second source delivering the answer already published gets the baseline back."""
    differ = Differ()
    _published(differ, _answer("nodes", 10, [_node("a", "10.0.0.1")]))
    _published(differ, _answer("nodes", 12, [_node("a", "10.0.0.1"), _node("b", "10.0.0.2")]))
    again = _plan(differ, _answer("nodes", 12, [_node("a", "10.0.0.1"), _node("b", "10.0.0.2")]))
    assert isinstance(again, Baseline)
    assert again.stream_seq == 12


def test_answers_the_enricher_must_judge_whole_are_not_diffed() -> None:
    """A reset index, an ACL-filtered answer and an empty list go out whole."""
    differ = Differ()
    _published(differ, _answer("nodes", 10, [_node("a", "10.0.0.1")]))
    backwards = _answer("nodes", 3, [_node("a", "10.0.0.1")])
    filtered = _answer("nodes", 11, [_node("a", "10.0.0.1")], filtered_by_acls=True)
    empty = _answer("nodes", 12, [])
    reused = _answer("nodes", 10, [_node("b", "10.0.0.2")])
    for change in (backwards, filtered, empty, reused):
        assert _plan(differ, change) is change


def test_after_a_failed_publish_the_next_answer_goes_out_whole() -> None:
    """A failed publish may still have been stored: no baseline can be trusted after it."""
    differ = Differ()
    _published(differ, _answer("checks", 10, [_serf("a", "passing")]))
    failed = _answer("checks", 11, [_serf("a", "critical")])
    _plan(differ, failed)
    differ.failed(failed)
    reverted = _answer("checks", 12, [_serf("a", "passing")])
    assert _plan(differ, reverted) is reverted


def test_after_an_acl_filtered_answer_the_next_one_goes_out_whole() -> None:
    """The enricher merged the filtered answer: a later revert must reach it whole."""
    differ = Differ()
    _published(differ, _answer("checks", 10, [_serf("a", "passing"), _serf("b", "passing")]))
    _published(differ, _answer("checks", 11, [_serf("a", "critical")], filtered_by_acls=True))
    reverted = _answer("checks", 12, [_serf("a", "passing"), _serf("b", "passing")])
    assert _plan(differ, reverted) is reverted


def test_a_late_answer_from_the_other_source_is_not_a_reset() -> None:
    """The HTTP handler delivering an index the watcher already passed publishes nothing."""
    differ = Differ()
    _published(differ, _answer("checks", 43, [_serf("a", "critical")]))
    late = _answer("checks", 42, [_serf("a", "passing")]).model_copy(update={"source": "http"})
    assert isinstance(_plan(differ, late), Baseline)
    planned = _published(differ, _answer("checks", 44, [_serf("a", "passing")]))
    assert isinstance(planned, ConsulDelta)
    assert planned.changed["a"]["Status"] == "passing"
    assert planned.base_index == 43


def test_checks_keep_only_serf_health_and_unchanged_fields_publish_nothing() -> None:
    """Other checks and fields nodeview does not read never make a delta."""
    differ = Differ()
    service_check = {"Node": "a", "CheckID": "service:web", "Status": "passing"}
    _published(differ, _answer("checks", 10, [_serf("a", "passing"), service_check]))
    later = [_serf("a", "passing") | {"ModifyIndex": 99}, service_check | {"Status": "critical"}]
    assert isinstance(_plan(differ, _answer("checks", 11, later)), Baseline)
    assert list_items("checks", later) == {
        "a": {"Node": "a", "CheckID": "serfHealth", "Status": "passing"}
    }


def test_a_services_index_move_without_a_visible_change_is_an_empty_delta() -> None:
    """An instance added under an existing name moves only the index: the delta says so."""
    differ = Differ()
    _published(differ, _answer("services", 10, {"web": ["a"], "consul": []}))
    planned = _plan(differ, _answer("services", 11, {"consul": [], "web": ["a"]}))
    assert isinstance(planned, ConsulDelta)
    assert planned.moved_only


def _delta(
    watch_type: str,
    index: int,
    changed: dict[str, Any] | None = None,
    removed: tuple[str, ...] = (),
    relay: str = "r1",
    base: int = 10,
) -> ConsulDelta:
    return ConsulDelta(
        watch_type=watch_type,
        consul_index=index,
        base_index=base,
        source="watcher",
        relay_id=relay,
        observed_at=T0,
        changed=changed or {},
        removed=removed,
    )


def _state() -> EnricherState:
    state = EnricherState()
    state.inventory.catalog = parse_catalog_nodes([_node("a", "10.0.0.1"), _node("b", "10.0.0.2")])
    state.inventory.members = {
        name: Member(name, addr, "alive", "client", "dc1")
        for name, addr in (("a", "10.0.0.1"), ("b", "10.0.0.2"))
    }
    state.inventory.services = {"a": {"web": ServiceInstance(name="web")}}
    state.inventory.service_tags = {"web": (), "consul": ()}
    state.seen_index[("nodes", None)] = 10
    state.seen_index[("checks", None)] = 10
    state.seen_index[("services", None)] = 10
    return state


def _apply(state: EnricherState, delta: ConsulDelta) -> tuple[Outcome, ReadPlan]:
    plan = ReadPlan()
    return apply_delta(state, delta, SETTINGS, plan), plan


def test_a_joined_node_reads_its_services_only() -> None:
    """A node delta adds the node and plans one read of its own size: its services.

    Not the members list, which grows with the cluster: the node's serfHealth check gives its
    status and its services whether it is a server.
    """
    state = _state()
    outcome, plan = _apply(state, _delta("nodes", 11, {"c": _node("c", "10.0.0.3")}))
    assert outcome == "applied"
    assert plan.node_services == {"c"}
    assert not plan.members
    assert plan.dirty == {"c"}
    assert state.inventory.catalog["c"].addr == "10.0.0.3"


def test_a_node_gone_from_the_catalog_reads_the_members_once() -> None:
    """A node that left may still be a member ("left"): one members read, nothing else."""
    state = _state()
    _, plan = _apply(state, _delta("nodes", 11, removed=("a",)))
    assert plan.members
    assert not plan.node_services
    assert "a" not in state.inventory.services
    assert plan.dirty == {"a"}


def test_a_failed_node_changes_its_status_with_no_read() -> None:
    """A serfHealth delta gives the node its new status: nothing is read."""
    state = _state()
    outcome, plan = _apply(state, _delta("checks", 11, {"b": _serf("b", "critical")}))
    assert outcome == "applied"
    assert not plan.needs_reads()
    assert plan.dirty == {"b"}
    view = build_view(state.inventory, "b", SitesMap(), "unmapped", T0)
    assert view is not None
    assert view.status == "dead"


def test_a_node_meta_change_is_a_delta_of_that_node_with_its_meta() -> None:
    """The relay diffs node meta and tagged addresses: a change on one node names only it."""
    differ = Differ()
    nodes = [_node(f"n{i}", f"10.0.0.{i}") | {"Meta": {"rack": "r1"}} for i in range(5)]
    _published(differ, _answer("nodes", 10, nodes))
    relabelled = [
        *nodes[:2],
        nodes[2] | {"Meta": {"rack": "r2"}, "ModifyIndex": 11},
        *nodes[3:],
    ]
    planned = _published(differ, _answer("nodes", 11, relabelled))
    assert isinstance(planned, ConsulDelta)
    assert planned.changed == {
        "n2": {
            "ID": "id-n2",
            "Node": "n2",
            "Address": "10.0.0.2",
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.2"},
            "Meta": {"rack": "r2"},
        }
    }
    readdressed = [
        *relabelled[:4],
        relabelled[4] | {"TaggedAddresses": {"lan": "10.1.0.4"}, "ModifyIndex": 12},
    ]
    planned = _published(differ, _answer("nodes", 12, readdressed))
    assert isinstance(planned, ConsulDelta)
    assert set(planned.changed) == {"n4"}


def test_a_node_meta_delta_changes_the_view_with_no_read() -> None:
    """New meta of a known node reaches its view from the delta alone: nothing is read."""
    state = _state()
    changed = _node("b", "10.0.0.2") | {"Meta": {"rack": "r9"}, "TaggedAddresses": {"wan": "x"}}
    outcome, plan = _apply(state, _delta("nodes", 11, {"b": changed}))
    assert outcome == "applied"
    assert not plan.needs_reads()
    assert plan.dirty == {"b"}
    view = build_view(state.inventory, "b", SitesMap(), "unmapped", T0)
    assert view is not None
    assert (view.id, view.meta, view.tagged_addresses) == ("id-b", {"rack": "r9"}, {"wan": "x"})


def test_a_delta_from_a_relay_without_node_meta_still_applies() -> None:
    """A node item carrying only ID, Node, Address and Datacenter decodes and applies."""
    state = _state()
    old_item = {"ID": "id-c", "Node": "c", "Address": "10.0.0.3", "Datacenter": "dc1"}
    body = _delta("nodes", 11, {"c": old_item}).model_dump_json()
    outcome, _ = _apply(state, ConsulDelta.model_validate_json(body))
    assert outcome == "applied"
    view = build_view(state.inventory, "c", SitesMap(), "unmapped", T0)
    assert view is not None
    assert (view.id, view.meta, view.tagged_addresses) == ("id-c", {}, {})


def test_a_removed_service_name_drops_its_instances_and_a_new_one_is_read() -> None:
    """Names removed lose their instances, new names are read by name, and the summary is read.

    The same answer may also carry an instance of a known name added or removed elsewhere,
    which the names list cannot show: only the summary can say.
    """
    state = _state()
    _, plan = _apply(state, _delta("services", 11, {"db": ["primary"]}, ("web",)))
    assert plan.service_names == {"db"}
    assert plan.services_moved
    assert state.inventory.services["a"] == {}
    assert plan.dirty == {"a"}
    assert state.inventory.service_tags["db"] == ("primary",)


def test_other_tags_on_a_known_name_ask_the_summary_not_the_name() -> None:
    """A known name's tags changing is an instance added, removed or re-tagged somewhere."""
    _, plan = _apply(_state(), _delta("services", 11, {"web": ["canary"]}))
    assert plan.services_moved
    assert not plan.service_names


def test_an_empty_services_delta_plans_the_summary_read() -> None:
    """An index move with no visible name change asks where instances moved."""
    _, plan = _apply(_state(), _delta("services", 11))
    assert plan.services_moved
    assert plan.needs_reads()


def test_deltas_older_than_the_last_whole_list_are_superseded() -> None:
    """A delta at or below the last whole list's index changes nothing."""
    state = _state()
    outcome, plan = _apply(state, _delta("nodes", 10, {"c": _node("c", "10.0.0.3")}))
    assert outcome == "superseded"
    assert "c" not in state.inventory.catalog
    assert not plan.dirty


@given(st.permutations([11, 12, 13]))
def test_deltas_of_one_item_apply_in_any_order_to_the_newest(order: list[int]) -> None:
    """Whatever order deltas arrive in (two relays, redelivery), the newest state wins."""
    state = _state()
    addresses = {11: "10.1.0.1", 12: "10.1.0.2", 13: "10.1.0.3"}
    for index in order:
        _apply(
            state, _delta("nodes", index, {"a": _node("a", addresses[index])}, relay=f"r{index}")
        )
    assert state.inventory.catalog["a"].addr == "10.1.0.3"


def test_a_late_whole_list_keeps_items_a_newer_delta_set() -> None:
    """A whole list read before a delta does not undo that delta's items."""
    state = _state()
    _apply(state, _delta("nodes", 15, {"c": _node("c", "10.0.0.3")}, ("b",), relay="r2"))
    late = ConsulChange(
        watch_type="nodes",
        consul_index=14,
        source="watcher",
        relay_id="r1",
        observed_at=T0 + timedelta(milliseconds=1),
        payload=[_node("a", "10.0.0.9"), _node("b", "10.0.0.2")],
    )
    apply_change(state, late, SETTINGS, ReadPlan())
    assert set(state.inventory.catalog) == {"a", "c"}


def test_a_lower_delta_from_the_same_relay_is_an_index_reset() -> None:
    """One relay's deltas only go up: a lower one means Consul's index went backwards."""
    state = _state()
    _apply(state, _delta("checks", 30, {"a": _serf("a", "passing")}))
    outcome, plan = _apply(state, _delta("checks", 20, {"a": _serf("a", "critical")}))
    assert outcome == "backwards"
    assert plan.full_resync
    assert plan.index_reset


def test_a_whole_resync_forgets_the_item_indexes_it_covers() -> None:
    """After a resync the whole lists are the baseline again: no item index is left."""
    state = _state()
    _apply(state, _delta("nodes", 15, {"c": _node("c", "10.0.0.3")}))
    state.settle({("nodes", None): 20, ("services", None): 20})
    assert not state.newer_items("nodes", 0)


def test_summaries_say_which_nodes_to_read_what_to_drop_and_which_names_to_read() -> None:
    """Gained nodes are read, lost names dropped, same nodes with another count or tags read."""
    services = {
        "a": {
            "web-1": ServiceInstance(name="web", tags=("v1",)),
            "db": ServiceInstance(name="db"),
            "cache": ServiceInstance(name="cache"),
        },
        "b": {"web-1": ServiceInstance(name="web", tags=("v1",))},
    }
    summaries = parse_ui_services(
        [
            {"Name": "web", "Nodes": ["a", "b", "c"], "InstanceCount": 3, "Tags": ["v1"]},
            {"Name": "db", "Nodes": ["a"], "InstanceCount": 2, "Tags": None},
            {"Name": "api", "Nodes": ["b"], "InstanceCount": 1, "Tags": ["x"]},
            {"Name": "remote", "Nodes": ["x"], "InstanceCount": 1, "PeerName": "other"},
        ]
    )
    assert summaries["web"] == ServiceSummary(frozenset({"a", "b", "c"}), 3, frozenset({"v1"}))
    assert "remote" not in summaries
    held = held_instances(services)
    moves = instance_moves(held, summaries)
    assert moves.gained == {"b", "c"}
    assert moves.lost == {"a": {"cache"}}
    assert names_to_read(held, summaries) == {"db"}


def test_a_retagged_instance_on_the_same_nodes_is_read_by_name() -> None:
    """Same nodes, same count, other tag union: the name is read again."""
    held = held_instances({"a": {"web": ServiceInstance(name="web", tags=("v1",))}})
    summaries = {"web": ServiceSummary(frozenset({"a"}), 1, frozenset({"v2"}))}
    assert not instance_moves(held, summaries).gained
    assert names_to_read(held, summaries) == {"web"}


def test_a_relay_that_skipped_an_answer_cannot_vouch_for_what_it_left_out() -> None:
    """Relay B diffs 10 → 13 while relay A's 12 set a node B leaves out: read the list whole."""
    state = _state()
    _, first = _apply(state, _delta("checks", 12, {"a": _serf("a", "critical")}, relay="A"))
    assert not first.reread
    _, second = _apply(
        state, _delta("checks", 13, {"b": _serf("b", "critical")}, relay="B", base=10)
    )
    assert second.reread == {"checks"}


def test_one_relays_chain_of_deltas_needs_no_list_read() -> None:
    """Each delta's base is the previous one's index: what they leave out is known."""
    state = _state()
    for index, node in ((11, "a"), (12, "b"), (13, "a")):
        _, plan = _apply(
            state, _delta("checks", index, {node: _serf(node, "warning")}, base=index - 1)
        )
        assert not plan.reread


def test_a_bad_delta_leaves_no_item_index_so_a_good_copy_applies() -> None:
    """A delta that does not parse records nothing; the same items from a sound copy apply."""
    state = _state()
    bad = _delta("nodes", 11, {"c": {"Node": "c", "Address": 7}})
    assert _apply(state, bad)[0] == "bad_payload"
    good = _delta("nodes", 11, {"c": _node("c", "10.0.0.3")}, relay="r2")
    assert _apply(state, good)[0] == "applied"
    assert state.inventory.catalog["c"].addr == "10.0.0.3"


def test_a_redelivered_delta_below_the_last_applied_is_overtaken_not_a_reset() -> None:
    """After a nacked batch comes back, its older deltas are late copies, not an index reset."""
    state = _state()
    _apply(state, _delta("nodes", 50, {"c": _node("c", "10.0.0.3")}))
    assert overtaken(state, _delta("nodes", 49, {"c": _node("c", "10.0.0.3")}))
    assert not overtaken(state, _delta("nodes", 51, {"c": _node("c", "10.0.0.4")}))


def test_unchanged_entries_are_reused_by_their_raft_indexes() -> None:
    """An entry whose Create/ModifyIndex did not move is taken from the baseline, not re-read."""
    differ = Differ()
    nodes = [_node(f"n{i}", f"10.0.0.{i}") for i in range(20)]
    _published(differ, _answer("nodes", 10, nodes))
    before = differ.baselines[("nodes", None)].items
    moved = [*nodes[:7], _node("n7", "10.7.7.7"), *nodes[8:]]
    items = differ.items(_answer("nodes", 11, moved))
    assert all(items[f"n{i}"] is before[f"n{i}"] for i in range(20) if i != 7)
    assert items["n7"] is not before["n7"]
    assert items["n7"].item["Address"] == "10.7.7.7"


def test_after_an_index_reset_no_entry_is_reused() -> None:
    """Behind a restored snapshot the same indexes may name other content: every entry is read."""
    differ = Differ()
    nodes = [_node("a", "10.0.0.1"), _node("b", "10.0.0.2")]
    _published(differ, _answer("nodes", 50, nodes))
    restored = [nodes[0] | {"Address": "10.1.1.1"}, nodes[1]]  # same ModifyIndex, other content
    change = _answer("nodes", 20, restored)
    items = differ.items(change)
    assert items["a"].item["Address"] == "10.1.1.1"
    assert differ.plan(change, items) is change


def test_the_digest_of_a_delta_is_the_digest_of_its_whole_answer() -> None:
    """The relay's digest from kept entries equals the digest a script handler computes whole."""
    differ = Differ()
    nodes = [_node(f"n{i}", f"10.0.0.{i}") for i in range(10)]
    _published(differ, _answer("nodes", 10, nodes))
    later = _answer("nodes", 11, [*nodes[:4], _node("n4", "10.4.4.4"), *nodes[5:]])
    assert items_digest(differ.items(later)) == later.payload_digest()

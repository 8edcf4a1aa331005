"""The engine against in-memory Consul reads: what one change costs, and failed reads shown."""

import copy

import pytest

from contracts.events import ConsulDelta
from services.enricher import degraded
from services.enricher.engine import Engine, EngineSettings
from services.enricher.planner import ResyncReason
from tests.unit.fakes import FakeConsul, Instance, MemoryStore

SETTINGS = EngineSettings(sites_key="sites", resync_event="nodeview-resync", unmapped_label="-")


def _cluster(nodes: int = 6) -> FakeConsul:
    consul = FakeConsul()
    for i in range(nodes):
        name = f"n{i}"
        consul.nodes[name] = f"10.0.0.{i}"
        consul.serf[name] = "passing"
        consul.services[name] = {"web": Instance("web", ("v1",), 80)}
    consul.services["n0"]["db"] = Instance("db", (), 5432)
    return consul


async def _resynced(consul: FakeConsul) -> tuple[Engine, MemoryStore]:
    """An engine after its start resync, with the reads it made still counted."""
    store = MemoryStore()
    engine = Engine(consul, store, SETTINGS)
    await engine.resync(ResyncReason.START)
    return engine, store


async def _started(consul: FakeConsul) -> tuple[Engine, MemoryStore]:
    engine, store = await _resynced(consul)
    consul.calls.clear()
    return engine, store


def _moved(index: int) -> ConsulDelta:
    """The services list's index moved without a visible change: an instance moved."""
    return ConsulDelta(
        watch_type="services", consul_index=index, base_index=index - 1, source="watcher"
    )


def _names(
    changed: dict[str, list[str]] | None = None, removed: tuple[str, ...] = ()
) -> ConsulDelta:
    """A services delta: names with their new tags, names gone."""
    return ConsulDelta(
        watch_type="services",
        consul_index=200,
        base_index=199,
        source="watcher",
        changed=changed or {},
        removed=removed,
    )


def _joined(node: str) -> ConsulDelta:
    """A nodes delta naming one node that joined."""
    item = {"ID": f"id-{node}", "Node": node, "Address": "10.0.0.9", "Datacenter": "dc1"}
    return ConsulDelta(
        watch_type="nodes",
        consul_index=200,
        base_index=199,
        source="watcher",
        changed={node: item},
    )


async def test_a_new_instance_of_a_known_name_reads_the_summary_and_that_node() -> None:
    """Two reads: where instances moved, then the one node that gained one."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.services["n3"]["db-2"] = Instance("db", (), 5433)
    await engine.handle([_moved(200)])
    assert consul.calls == {"ui_services": 1, "node_services": 1}
    assert store.views["n3"].services_count == 2


async def test_a_removed_instance_is_dropped_with_the_summary_read_only() -> None:
    """A node that no longer holds a name loses it without a read of its own."""
    consul = _cluster()
    consul.services["n4"]["db"] = Instance("db", (), 5432)
    engine, store = await _started(consul)
    del consul.services["n4"]["db"]
    await engine.handle([_moved(200)])
    assert consul.calls == {"ui_services": 1}
    assert store.views["n4"].service_names == ("web",)


@pytest.mark.parametrize("name_change", ["added", "removed"])
async def test_an_instance_moved_in_the_same_answer_as_a_name_change_is_not_missed(
    name_change: str,
) -> None:
    """A names list that gained or lost a name may also hide an instance moved elsewhere.

    Under churn one answer spans several writes: here a name comes or goes while an instance
    of a known name leaves another node. The summary is read, so the node loses it.
    """
    consul = _cluster()
    consul.services["n4"]["db"] = Instance("db", (), 5432)
    if name_change == "removed":
        consul.services["n5"]["cache"] = Instance("cache", (), 6379)
    engine, store = await _started(consul)
    del consul.services["n4"]["db"]
    changed: dict[str, list[str]] = {}
    removed: tuple[str, ...] = ()
    if name_change == "added":
        consul.services["n5"]["cache"] = Instance("cache", (), 6379)
        changed = {"cache": []}
    else:
        del consul.services["n5"]["cache"]
        removed = ("cache",)
    await engine.handle([_names(changed, removed)])
    assert store.views["n4"].service_names == ("web",)
    expected = ("cache", "web") if name_change == "added" else ("web",)
    assert store.views["n5"].service_names == expected
    assert sum(consul.calls.values()) <= 2


async def test_a_summary_older_than_a_read_beside_it_takes_nothing_from_that_read() -> None:
    """The summary is read beside the reads by name and node, so it may be the older one.

    Here it misses a new name's instance and a joined node's: they stay, left to their own
    reads, and no node is read twice.
    """
    consul = _cluster()
    engine, store = await _started(consul)
    consul.summarised = copy.deepcopy(consul.services)
    consul.services["n5"]["cache"] = Instance("cache", (), 6379)
    consul.nodes["n9"] = "10.0.0.9"
    consul.serf["n9"] = "passing"
    consul.services["n9"] = {"web": Instance("web", ("v1",), 80)}
    await engine.handle([_names(changed={"cache": []}), _joined("n9")])
    assert consul.calls["ui_services"] == 1
    assert store.views["n5"].service_names == ("cache", "web")
    assert store.views["n9"].service_names == ("web",)
    assert consul.calls["node_services"] == 1


async def test_a_node_whose_read_failed_beside_the_summary_is_left_to_the_summary() -> None:
    """A failed read says nothing newer than the summary: the node it names is read again."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.nodes["n9"] = "10.0.0.9"
    consul.services["n9"] = {"web": Instance("web", ("v1",), 80)}
    consul.failing.add("node_services")
    await engine.handle([_joined("n9"), _moved(200)])
    assert consul.calls["node_services"] == 2
    assert store.views["n9"].services_status == "error"


async def test_a_refused_summary_reads_every_name_but_those_just_read() -> None:
    """With the summary refused, a new name read by name is not read a second time."""
    consul = _cluster()
    consul.refuse["ui_services"] = 404
    engine, store = await _started(consul)
    consul.services["n5"]["cache"] = Instance("cache", (), 6379)
    await engine.handle([_names(changed={"cache": []})])
    assert consul.calls == {"ui_services": 1, "catalog_service": 3}
    assert store.views["n5"].service_names == ("cache", "web")


async def test_a_retagged_instance_is_read_by_name() -> None:
    """Same nodes and count but other tags: the summary, then that one name."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.services["n2"]["web"] = Instance("web", ("v2",), 80)
    await engine.handle(
        [
            ConsulDelta(
                watch_type="services",
                consul_index=200,
                base_index=100,
                source="watcher",
                changed={"web": ["v1", "v2"]},
            )
        ]
    )
    assert consul.calls == {"ui_services": 1, "catalog_service": 1}
    assert store.views["n2"].services["web"].tags == ("v2",)


@pytest.mark.parametrize("status", [403, 404])
async def test_a_refused_summary_reads_every_name_and_is_left_alone_a_while(status: int) -> None:
    """Refused, the summary gives way to one read per name; the next change skips it."""
    consul = _cluster()
    consul.refuse["ui_services"] = status
    engine, store = await _started(consul)
    consul.services["n5"]["db-2"] = Instance("db", (), 5433)
    await engine.handle([_moved(200)])
    assert consul.calls == {"ui_services": 1, "catalog_service": 2}
    assert store.views["n5"].services_count == 2
    consul.calls.clear()
    await engine.handle([_moved(201)])
    assert consul.calls == {"catalog_service": 2}


@pytest.mark.parametrize("then_refused", [False, True])
async def test_a_failed_summary_read_is_degraded_then_retried_until_it_heals(
    then_refused: bool,
) -> None:
    """The view cannot vouch for instance counts until a retry reads them (or every name)."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.failing.add("ui_services")
    consul.services["n1"]["db-2"] = Instance("db", (), 5433)
    await engine.handle([_moved(200)])
    assert engine.has_pending()
    assert degraded.SERVICE_INSTANCES in {item.item for item in engine.degradation.items()}
    assert store.views["n1"].services_count == 1
    consul.failing.clear()
    if then_refused:
        consul.refuse["ui_services"] = 403
    await engine.retry_pending()
    assert not engine.has_pending()
    assert not engine.degradation.items()
    assert store.views["n1"].services_count == 2


async def test_a_failed_read_of_the_node_that_gained_an_instance_marks_that_node() -> None:
    """The node named by the summary says error (count kept), then heals on retry."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.failing.add("node_services")
    consul.services["n2"]["db-2"] = Instance("db", (), 5433)
    await engine.handle([_moved(200)])
    assert store.views["n2"].services_status == "error"
    assert store.views["n2"].services_count == 1
    consul.failing.clear()
    await engine.retry_pending()
    healed = store.views["n2"]
    assert healed.services_status == "ok"
    assert healed.services_count == 2


async def test_a_failed_node_costs_no_read() -> None:
    """A serfHealth delta is applied from what it carries."""
    consul = _cluster()
    engine, store = await _started(consul)
    await engine.handle(
        [
            ConsulDelta(
                watch_type="checks",
                consul_index=200,
                base_index=100,
                source="watcher",
                changed={"n3": {"Node": "n3", "CheckID": "serfHealth", "Status": "critical"}},
            )
        ]
    )
    assert not consul.calls
    assert store.views["n3"].status == "dead"


async def test_a_delta_diffed_before_a_newer_read_reads_its_list_whole() -> None:
    """A read changed n4 between a delta's base and index; the delta leaves n4 out: re-read."""
    consul = _cluster()
    engine, store = await _started(consul)
    consul.serf["n4"] = "critical"
    consul.index = 150
    await engine.resync(ResyncReason.PERIODIC)
    assert store.views["n4"].status == "dead"
    consul.serf["n4"] = "passing"
    consul.index = 250
    consul.calls.clear()
    await engine.handle(
        [
            ConsulDelta(
                watch_type="checks",
                consul_index=200,
                base_index=120,
                source="watcher",
                changed={"n1": {"Node": "n1", "CheckID": "serfHealth", "Status": "passing"}},
            )
        ]
    )
    assert consul.calls == {"serf_health": 1}
    reverted = store.views["n4"]
    assert reverted.status == "alive"


async def test_an_acl_filtered_summary_gives_way_to_reading_every_name() -> None:
    """A summary the token only partly reads cannot say where instances moved."""
    consul = _cluster()
    consul.filtered.add("ui_services")
    engine, store = await _started(consul)
    consul.services["n5"]["db-2"] = Instance("db", (), 5433)
    await engine.handle([_moved(200)])
    assert consul.calls == {"ui_services": 1, "catalog_service": 2}
    assert store.views["n5"].services_count == 2
    assert not engine.has_pending()


async def test_a_member_no_list_answer_showed_appears_at_the_next_members_read() -> None:
    """A node that joined and left between two answers is in the members list only."""
    consul = _cluster(3)
    consul.members_list = dict.fromkeys(consul.nodes, 1)
    engine, store = await _started(consul)
    consul.members_list["blip"] = 3
    await engine.refresh_members()
    assert store.views["blip"].status == "dead"
    assert consul.calls["members"] == 1


async def test_a_node_leaving_while_the_members_read_fails_is_kept_until_the_retry() -> None:
    """Gone from the catalog with the members read failing, a node is not deleted but kept.

    A join reads no members, so only that read can say the node left: until it succeeds the
    node keeps its last view, then shows dead.
    """
    consul = _cluster(3)
    consul.members_list = dict.fromkeys(consul.nodes, 1)
    engine, store = await _started(consul)
    consul.nodes["n9"] = "10.0.0.9"
    consul.serf["n9"] = "passing"
    consul.services["n9"] = {}
    passing = {"Node": "n9", "CheckID": "serfHealth", "Status": "passing"}
    health = ConsulDelta(
        watch_type="checks",
        consul_index=200,
        base_index=199,
        source="watcher",
        changed={"n9": passing},
    )
    await engine.handle([_joined("n9"), health])
    assert store.views["n9"].status == "alive"
    del consul.nodes["n9"], consul.serf["n9"], consul.services["n9"]
    consul.members_list["n9"] = 3
    consul.failing.add("members")
    await engine.handle(
        [
            ConsulDelta(
                watch_type=kind, consul_index=201, base_index=200, source="watcher", removed=("n9",)
            )
            for kind in ("nodes", "checks")
        ]
    )
    assert engine.pending_members
    assert store.views["n9"].status == "alive"
    consul.failing.clear()
    await engine.retry_pending()
    assert not engine.pending_members
    assert store.views["n9"].status == "dead"


async def test_a_members_refresh_that_finds_nothing_new_writes_nothing() -> None:
    """Nothing changed in the members list: no view and no meta is written."""
    consul = _cluster(3)
    consul.members_list = dict.fromkeys(consul.nodes, 1)
    engine, store = await _started(consul)
    generation = engine.meta.generation
    result = await engine.refresh_members()
    assert result is not None
    assert result.written == result.deleted == 0
    assert engine.meta.generation == generation
    assert set(store.views) == set(consul.nodes)


async def test_without_a_members_api_the_refresh_reads_nothing() -> None:
    """A Consul that refuses the agent API is not asked again by the refresh."""
    consul = _cluster(3)
    engine, _ = await _started(consul)
    assert await engine.refresh_members() is None
    assert consul.calls == {}


async def test_a_resync_reads_every_nodes_instances_in_one_answer() -> None:
    """Consul's node dump gives every node's instances: no read per service name or node."""
    consul = _cluster()
    _engine, store = await _resynced(consul)
    assert consul.calls["ui_nodes"] == 1
    assert "catalog_service" not in consul.calls
    assert "node_services" not in consul.calls
    assert store.views["n0"].services_count == 2
    assert store.views["n3"].service_names == ("web",)


@pytest.mark.parametrize("status", [403, 404, 405])
async def test_a_refused_node_dump_gives_way_to_one_read_per_name_for_a_while(
    status: int,
) -> None:
    """Refused, the dump is replaced by a read per name, and not asked again at once."""
    consul = _cluster()
    consul.refuse["ui_nodes"] = status
    engine, store = await _resynced(consul)
    assert consul.calls["ui_nodes"] == 1
    assert consul.calls["catalog_service"] == 2
    assert store.views["n0"].services_count == 2
    consul.calls.clear()
    await engine.resync(ResyncReason.REQUESTED)
    assert "ui_nodes" not in consul.calls
    assert consul.calls["catalog_service"] == 2


async def test_a_failed_node_dump_reads_every_name_and_is_tried_again_next_time() -> None:
    """A dump that fails (not refused) costs this resync a read per name; the next one tries it."""
    consul = _cluster()
    consul.failing.add("ui_nodes")
    engine, store = await _resynced(consul)
    assert consul.calls["catalog_service"] == 2
    assert store.views["n0"].services_count == 2
    consul.failing.clear()
    consul.calls.clear()
    await engine.resync(ResyncReason.REQUESTED)
    assert consul.calls["ui_nodes"] == 1
    assert "catalog_service" not in consul.calls


async def test_an_acl_filtered_node_dump_is_not_taken_for_the_whole_catalog() -> None:
    """A dump Consul's ACLs cut short is refused: the names are read one by one."""
    consul = _cluster()
    consul.filtered.add("ui_nodes")
    _engine, store = await _resynced(consul)
    assert consul.calls["catalog_service"] == 2
    assert store.views["n0"].services_count == 2


async def test_a_node_dump_that_times_out_is_left_alone_a_while() -> None:
    """A dump too slow for the timeout is not asked again at the next resync: names are read."""
    consul = _cluster()
    consul.slow.add("ui_nodes")
    engine, store = await _resynced(consul)
    assert consul.calls["catalog_service"] == 2
    consul.slow.clear()
    consul.calls.clear()
    await engine.resync(ResyncReason.REQUESTED)
    assert "ui_nodes" not in consul.calls
    assert store.views["n0"].services_count == 2


async def test_the_members_list_is_due_once_its_interval_has_passed_since_any_read() -> None:
    """Any members read (a resync's too) restarts the interval; 0 never makes it due."""
    consul = _cluster(3)
    consul.members_list = dict.fromkeys(consul.nodes, 1)
    engine, _ = await _started(consul)
    read_at = engine.members_read_at
    assert not engine.members_due(60, read_at + 59)
    assert engine.members_due(60, read_at + 60)
    assert not engine.members_due(0, read_at + 1e6)

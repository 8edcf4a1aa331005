"""API view state: KV updates, address index, cached bodies, ETags, filters and staleness."""

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from contracts import subjects
from contracts.views import Heartbeat, NodeEntry, NodeView, ServiceInstance, ViewMeta
from services import metrics
from services.api.prometheus_sd import target_groups
from services.api.view import MAX_CACHED_BODIES, Delta, ViewState

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STALE_AFTER = 30.0


def _view(
    node: str,
    addr: str,
    *,
    status: str = "alive",
    site_name: str = "Nao mapeado",
    site_code: str | None = None,
    services_status: str = "ok",
) -> NodeView:
    return NodeView.model_validate(
        {
            "node": node,
            "addr": addr,
            "datacenter": "dc1",
            "status": status,
            "type": "server" if node.startswith("consul") else "client",
            "site_name": site_name,
            "site_code": site_code,
            "services_count": 2,
            "service_names": ["alertmanager", "prometheus"],
            "services": {
                "alertmanager": ServiceInstance(name="alertmanager", port=9093),
                "prometheus": ServiceInstance(name="prometheus", port=9090),
            },
            "services_status": services_status,
            "error": "timeout: every Consul server failed" if services_status == "error" else None,
            "consul_index": 15,
            "updated_at": NOW,
        }
    )


PALMAS = _view("prom-palmas-01", "127.10.0.10", site_name="Palmas (TO)", site_code="palmas")
RIO = _view("prom-rio-01", "127.11.0.10", site_name="Rio de Janeiro (RJ)", site_code="rio")
RECIFE = _view("prom-recife-01", "127.12.0.10", status="dead", services_status="error")
SERVER = _view("consul-server-1", "127.0.1.1")

META = ViewMeta(
    generation=3,
    consul_index=22,
    main_server="127.0.0.1:8500",
    active_server="127.0.0.2:8500",
    synced_at=NOW,
)


def _put(state: ViewState, view: NodeView) -> Delta:
    return state.apply(subjects.node_key(view.node), view.model_dump_json().encode(), False)


def _beat(state: ViewState, at: datetime) -> Delta:
    heartbeat = Heartbeat(enricher_id="enricher-a", at=at, interval_seconds=5.0)
    return state.apply(subjects.KEY_HEARTBEAT, heartbeat.model_dump_json().encode(), False)


def _state(*views: NodeView) -> ViewState:
    state = ViewState(STALE_AFTER)
    state.apply(subjects.KEY_META, META.model_dump_json().encode(), False)
    _beat(state, NOW)
    for view in views:
        _put(state, view)
    return state


def _body(state: ViewState, **filters: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(state.nodes_body(NOW, **filters).content)
    return document


def test_meta_filters_keep_nodes_holding_every_pair() -> None:
    """``meta`` keeps the nodes whose meta holds each pair; each filter has its own body."""
    a = PALMAS.model_copy(update={"meta": {"os": "linux", "rack": "r1"}})
    b = RIO.model_copy(update={"meta": {"os": "linux", "rack": "r2"}})
    state = _state(a, b, SERVER)
    linux = _body(state, meta=(("os", "linux"),))
    assert [n["node"] for n in linux["data"]] == ["prom-palmas-01", "prom-rio-01"]
    assert linux["data"][0]["meta"] == {"os": "linux", "rack": "r1"}
    both = _body(state, meta=(("os", "linux"), ("rack", "r2")))
    assert [n["node"] for n in both["data"]] == ["prom-rio-01"]
    assert _body(state, meta=(("rack", "r3"),))["total"] == 0
    assert _body(state, site="palmas", meta=(("rack", "r2"),))["total"] == 0
    assert _body(state)["total"] == 3


def test_entries_carry_id_meta_and_tagged_addresses() -> None:
    """Each ``/api/v1/nodes`` entry has the node's Consul ID, meta and tagged addresses."""
    view = PALMAS.model_copy(
        update={"id": "892f", "meta": {"os": "linux"}, "tagged_addresses": {"lan": "127.10.0.10"}}
    )
    entry = _body(_state(view))["data"][0]
    assert (entry["id"], entry["meta"], entry["tagged_addresses"]) == (
        "892f",
        {"os": "linux"},
        {"lan": "127.10.0.10"},
    )


def test_the_sd_body_is_built_once_per_change_and_follows_the_view() -> None:
    """The service discovery body is cached until a node changes; its ETag follows the content."""
    state = _state(PALMAS, RIO)
    first = state.sd_body()
    assert state.sd_body() is first
    groups = json.loads(first.content)
    assert {g["targets"][0] for g in groups} == {
        "127.10.0.10:9093",
        "127.10.0.10:9090",
        "127.11.0.10:9093",
        "127.11.0.10:9090",
    }
    assert len(json.loads(state.sd_body(service="prometheus", site="rio").content)) == 1
    _beat(state, NOW + timedelta(seconds=1))
    assert state.sd_body() is first
    moved = RIO.model_copy(
        update={"services": {"x": ServiceInstance(name="x", port=1, address="10.0.0.1")}}
    )
    _put(state, moved)
    after = state.sd_body()
    assert after.etag != first.etag
    assert "10.0.0.1:1" in {g["targets"][0] for g in json.loads(after.content)}


@pytest.mark.parametrize(
    ("service", "site"),
    [(None, None), ("prometheus", None), (None, "rio"), ("alertmanager", "Palmas (TO)")],
)
def test_the_sd_body_built_node_by_node_equals_the_whole_document(
    service: str | None, site: str | None
) -> None:
    """Groups kept per node and joined give the very document built from every view at once."""
    state = _state(PALMAS, RIO, RECIFE, SERVER)
    state.sd_body()
    retagged = RIO.model_copy(
        update={"services": {"p": ServiceInstance(name="prometheus", tags=("x",), port=9)}}
    )
    _put(state, retagged)
    state.apply(subjects.node_key("prom-recife-01"), b"", True)
    want = target_groups([PALMAS, retagged, SERVER], service=service, site=site)
    assert json.loads(state.sd_body(service=service, site=site).content) == want


def test_applying_a_node_stores_it_and_reports_its_entry() -> None:
    """A node entry is stored by name and address, and its delta carries the legacy fields."""
    state = ViewState(STALE_AFTER)
    delta = _put(state, PALMAS)
    assert delta.kind == "node"
    assert list(delta.data) == list(NodeEntry.model_fields)
    assert delta.data["site_name"] == "Palmas (TO)"
    assert state.nodes["prom-palmas-01"] == PALMAS
    assert state.by_addr["127.10.0.10"] == PALMAS


def test_a_node_with_an_encoded_key_is_applied() -> None:
    """Nodes whose names need the base64 key encoding are applied under their real name."""
    state = ViewState(STALE_AFTER)
    view = _view("web.dc1 node", "10.0.0.9")
    assert _put(state, view).kind == "node"
    assert state.nodes["web.dc1 node"] == view


def test_an_address_change_moves_the_address_index() -> None:
    """When a node's address changes, only the new address finds it."""
    state = _state(PALMAS)
    _put(state, PALMAS.model_copy(update={"addr": "127.10.0.99"}))
    assert "127.10.0.10" not in state.by_addr
    assert state.by_addr["127.10.0.99"].node == "prom-palmas-01"


def test_an_address_change_keeps_another_node_on_the_old_address() -> None:
    """Two nodes on one address: moving one leaves the other findable by that address."""
    state = _state(_view("a", "10.0.0.1"), _view("b", "10.0.0.1"))
    _put(state, _view("b", "10.0.0.2"))
    assert state.by_addr["10.0.0.2"].node == "b"
    assert state.by_addr["10.0.0.1"].node == "a"


def test_deleting_a_node_removes_it_and_its_address() -> None:
    """A deleted node leaves the view and the address index, and the delta names it."""
    state = _state(PALMAS, RIO)
    delta = state.apply(subjects.node_key("prom-palmas-01"), b"", True)
    assert delta == Delta("node_deleted", {"node": "prom-palmas-01", "addr": "127.10.0.10"})
    assert "prom-palmas-01" not in state.nodes
    assert "127.10.0.10" not in state.by_addr
    assert _body(state)["total"] == 1


def test_deleting_a_node_falls_back_to_another_on_the_same_address() -> None:
    """After deleting one of two nodes sharing an address, the address finds the other."""
    state = _state(_view("a", "10.0.0.1"), _view("b", "10.0.0.1"))
    state.apply(subjects.node_key("b"), b"", True)
    assert state.by_addr["10.0.0.1"].node == "a"


def test_deleting_an_unknown_node_changes_nothing() -> None:
    """Deleting a node that is not in the view is a no-op."""
    state = _state(PALMAS)
    before = state.nodes_body(NOW)
    assert state.apply(subjects.node_key("ghost"), b"", True) == Delta("none")
    assert state.nodes_body(NOW) is before


def test_meta_updates_servers_and_generation() -> None:
    """A meta entry sets generation and servers in the body; deleting meta keeps the last one."""
    state = _state(PALMAS)
    newer = META.model_copy(update={"generation": 4, "active_server": "127.0.0.3:8500"})
    delta = state.apply(subjects.KEY_META, newer.model_dump_json().encode(), False)
    assert delta == Delta("meta", {"generation": 4})
    body = _body(state)
    assert (body["generation"], body["active_server"]) == (4, "127.0.0.3:8500")
    assert body["main_server"] == "127.0.0.1:8500"
    assert state.apply(subjects.KEY_META, b"", True) == Delta("none")
    assert state.meta == newer


def test_heartbeat_is_stored() -> None:
    """A heartbeat entry replaces the previous heartbeat."""
    state = ViewState(STALE_AFTER)
    assert _beat(state, NOW).kind == "heartbeat"
    assert state.heartbeat is not None
    assert state.heartbeat.at == NOW


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (subjects.node_key("prom-palmas-01"), b"{not json"),
        (subjects.node_key("prom-palmas-01"), b'{"node": "x"}'),
        (subjects.KEY_META, b"[]"),
        (subjects.KEY_HEARTBEAT, b"{}"),
        ("something.else", PALMAS.model_dump_json().encode()),
    ],
    ids=["node-not-json", "node-incomplete", "meta-wrong-shape", "heartbeat-empty", "foreign"],
)
def test_unreadable_or_foreign_entries_change_nothing(key: str, value: bytes) -> None:
    """Entries that do not validate, or keys that are not ours, leave the view as it was."""
    state = _state(PALMAS)
    before = state.nodes_body(NOW)
    assert state.apply(key, value, False) == Delta("none")
    assert state.nodes == {"prom-palmas-01": PALMAS}
    assert state.meta == META
    assert state.nodes_body(NOW) is before


@pytest.mark.parametrize("key", ["node64.a", "node64._w"], ids=["short", "not-utf8"])
def test_an_undecodable_node_key_is_ignored(key: str) -> None:
    """A node64 key that is not valid base64 UTF-8 is skipped instead of raising."""
    state = _state(PALMAS)
    assert state.apply(key, PALMAS.model_dump_json().encode(), False) == Delta("none")


def test_body_is_built_once_until_a_change() -> None:
    """Repeated requests get the very same body object until the view changes."""
    state = _state(PALMAS, RIO)
    first = state.nodes_body(NOW)
    assert state.nodes_body(NOW) is first
    assert state.nodes_body(NOW + timedelta(seconds=1)) is first
    _put(state, RECIFE)
    second = state.nodes_body(NOW)
    assert second is not first
    assert state.nodes_body(NOW) is second


def test_a_heartbeat_does_not_rebuild_the_body() -> None:
    """A heartbeat that keeps the view fresh reuses the cached body."""
    state = _state(PALMAS)
    first = state.nodes_body(NOW)
    _beat(state, NOW + timedelta(seconds=5))
    assert state.nodes_body(NOW + timedelta(seconds=5)) is first


def test_each_filter_has_its_own_cached_body() -> None:
    """Filtered bodies are cached per filter and do not replace the unfiltered one."""
    state = _state(PALMAS, RIO)
    everything = state.nodes_body(NOW)
    palmas = state.nodes_body(NOW, site="palmas")
    assert palmas is not everything
    assert state.nodes_body(NOW, site="palmas") is palmas
    assert state.nodes_body(NOW) is everything


def test_the_body_cache_keeps_the_most_recently_used_filters() -> None:
    """Arbitrary filter values cannot grow the cache: the least recently used body goes."""
    state = _state(PALMAS, RIO)
    everything = state.nodes_body(NOW)
    first = state.nodes_body(NOW, site="site-0")
    for n in range(1, MAX_CACHED_BODIES + 10):
        state.nodes_body(NOW, site=f"site-{n}")
        assert state.nodes_body(NOW) is everything
    assert state.nodes_body(NOW, site="site-0") is not first
    last = f"site-{MAX_CACHED_BODIES + 9}"
    assert state.nodes_body(NOW, site=last) is state.nodes_body(NOW, site=last)
    assert json.loads(first.content)["total"] == 0


def test_gzipped_body_decodes_to_the_content_and_is_made_once() -> None:
    """The gzip form is computed on first demand, reused, and decodes to the same bytes."""
    state = _state(PALMAS, RIO, RECIFE)
    body = state.nodes_body(NOW)
    packed = body.gzipped()
    assert body.gzipped() is packed
    assert gzip.decompress(packed) == body.content
    assert state.nodes_body(NOW).gzipped() is packed


def test_etag_is_stable_for_the_same_content() -> None:
    """Re-applying identical data rebuilds the body with the same ETag; replicas agree."""
    state = _state(PALMAS, RIO)
    first = state.nodes_body(NOW)
    _put(state, PALMAS)
    again = state.nodes_body(NOW)
    assert again is not first
    assert again.etag == first.etag
    assert again.content == first.content
    replica = _state(RIO, PALMAS)
    assert replica.nodes_body(NOW).etag == first.etag


def test_etag_changes_with_the_content() -> None:
    """Any change to a node, the meta or staleness gives a new ETag."""
    state = _state(PALMAS)
    tags = {state.nodes_body(NOW).etag}
    _put(state, PALMAS.model_copy(update={"status": "dead"}))
    tags.add(state.nodes_body(NOW).etag)
    state.apply(
        subjects.KEY_META,
        META.model_copy(update={"generation": 9}).model_dump_json().encode(),
        False,
    )
    tags.add(state.nodes_body(NOW).etag)
    tags.add(state.nodes_body(NOW + timedelta(seconds=STALE_AFTER + 1)).etag)
    assert len(tags) == 4
    assert all(tag.startswith('"') and tag.endswith('"') for tag in tags)


def test_body_has_the_legacy_shape_sorted_by_node() -> None:
    """The body holds success, data sorted by node name, total, servers, generation, staleness."""
    body = _body(_state(RIO, PALMAS, SERVER))
    assert body["success"] is True
    assert [e["node"] for e in body["data"]] == ["consul-server-1", "prom-palmas-01", "prom-rio-01"]
    assert body["total"] == 3
    assert body["main_server"] == "127.0.0.1:8500"
    assert body["active_server"] == "127.0.0.2:8500"
    assert body["generation"] == 3
    assert datetime.fromisoformat(body["synced_at"]) == NOW
    assert body["stale"] is False
    assert set(body["data"][0]) == set(NodeEntry.model_fields)


def test_body_without_meta_has_empty_servers() -> None:
    """Before any meta arrives the body still answers, with empty servers and generation 0."""
    state = ViewState(STALE_AFTER)
    _put(state, PALMAS)
    body = json.loads(state.nodes_body(NOW).content)
    assert (body["main_server"], body["active_server"], body["generation"]) == ("", "", 0)
    assert body["synced_at"] is None


@pytest.mark.parametrize(
    ("filters", "nodes"),
    [
        ({"site": "palmas"}, ["prom-palmas-01"]),
        ({"site": "Rio de Janeiro (RJ)"}, ["prom-rio-01"]),
        ({"site": "Nao mapeado"}, ["consul-server-1", "prom-recife-01"]),
        ({"site": "nowhere"}, []),
        ({"status": "dead"}, ["prom-recife-01"]),
        ({"status": "alive"}, ["consul-server-1", "prom-palmas-01", "prom-rio-01"]),
        ({"site": "Nao mapeado", "status": "alive"}, ["consul-server-1"]),
    ],
)
def test_filters_select_by_site_and_status(filters: dict[str, str], nodes: list[str]) -> None:
    """site matches a site name or code, status the node status; both combine."""
    body = _body(_state(PALMAS, RIO, RECIFE, SERVER), **filters)
    assert [e["node"] for e in body["data"]] == nodes
    assert body["total"] == len(nodes)


def test_missing_heartbeat_is_stale() -> None:
    """Without any heartbeat the view is stale, and the body says so."""
    state = ViewState(STALE_AFTER)
    _put(state, PALMAS)
    assert state.is_stale(NOW)
    assert state.view_age(NOW) is None
    assert json.loads(state.nodes_body(NOW).content)["stale"] is True


@pytest.mark.parametrize(
    ("age", "stale"),
    [(0.0, False), (STALE_AFTER, False), (STALE_AFTER + 0.001, True), (3600, True)],
)
def test_staleness_follows_the_heartbeat_age(age: float, stale: bool) -> None:
    """The view is stale exactly when the heartbeat is older than the threshold."""
    state = _state(PALMAS)
    now = NOW + timedelta(seconds=age)
    assert state.is_stale(now) is stale
    assert state.view_age(now) == pytest.approx(age)
    assert _body_at(state, now)["stale"] is stale
    assert _body_at(state, now)["total"] == 1


def _body_at(state: ViewState, now: datetime) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(state.nodes_body(now).content)
    return document


def test_a_new_heartbeat_makes_a_stale_view_fresh() -> None:
    """A heartbeat arriving after an outage turns stale off again, keeping the same nodes."""
    state = _state(PALMAS)
    later = NOW + timedelta(minutes=10)
    assert _body_at(state, later)["stale"] is True
    _beat(state, later)
    assert _body_at(state, later)["stale"] is False
    assert _body_at(state, later)["total"] == 1


def test_node_gauges_follow_the_stored_views() -> None:
    """The status and services-error gauges are set from the views, zero for absent statuses."""
    state = _state(PALMAS, RIO, RECIFE, SERVER)
    metrics.set_node_gauges(state.nodes.values())
    assert _gauge("nodeview_nodes", status="alive") == 3
    assert _gauge("nodeview_nodes", status="dead") == 1
    assert _gauge("nodeview_nodes", status="unknown") == 0
    assert REGISTRY.get_sample_value("nodeview_nodes", {"status": "left"}) is None
    assert _gauge("nodeview_nodes_services_error") == 1
    state.apply(subjects.node_key("prom-recife-01"), b"", True)
    metrics.set_node_gauges(state.nodes.values())
    assert _gauge("nodeview_nodes_services_error") == 0
    assert _gauge("nodeview_nodes", status="dead") == 0


def _gauge(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    assert value is not None
    return value


def test_an_entry_this_release_cannot_read_is_counted_and_the_rest_still_serves() -> None:
    """A node entry that does not decode is skipped visibly (a metric), not silently."""
    state = ViewState(STALE_AFTER)
    state.apply(subjects.node_key("a"), _view("a", "10.0.0.1").model_dump_json().encode(), False)
    sample = {"kind": "node"}
    before = REGISTRY.get_sample_value("nodeview_view_entries_refused_total", sample) or 0.0
    delta = state.apply(subjects.node_key("b"), b'{"node": "b", "status": 42}', False)
    assert delta.kind == "none"
    assert REGISTRY.get_sample_value("nodeview_view_entries_refused_total", sample) == before + 1
    assert set(state.nodes) == {"a"}

"""Contracts: JSON round-trips of events and views, the reversible KV key encoding, message ids."""

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts import subjects
from contracts.events import MAX_NAME_LENGTH, ConsulChange, ResyncRequested
from contracts.views import (
    MAX_NODE_META_KEY_LENGTH,
    MAX_NODE_META_PAIRS,
    MAX_NODE_META_VALUE_LENGTH,
    MAX_TAGGED_ADDRESSES,
    ErrorResponse,
    FlushResponse,
    Heartbeat,
    NodeEntry,
    NodeServicesResponse,
    NodesResponse,
    NodeView,
    ServiceDetail,
    ServiceInstance,
    ServiceNamesResponse,
    TargetGroup,
    ViewMeta,
)

NATS_KV_KEY = re.compile(r"^[-/_=\.a-zA-Z0-9]+$")
"""The characters NATS allows in a KV key."""

AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

CATALOG_NODES_PAYLOAD: list[dict[str, Any]] = [
    {
        "ID": "892f902b-d23f-0824-128b-2f330c5c7fd0",
        "Node": "prom-palmas-01",
        "Address": "127.10.0.10",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "127.10.0.10", "wan": "127.10.0.10"},
        "Meta": {"consul-version": "1.19.2", "os": "linux", "site": "palmas"},
        "CreateIndex": 13,
        "ModifyIndex": 13,
    }
]

PALMAS_SERVICES = {
    "alertmanager": ServiceInstance(
        name="alertmanager", tags=("exporter", "palmas", "linux"), port=9093
    ),
    "prometheus": ServiceInstance(
        name="prometheus", tags=("exporter", "palmas", "linux"), port=9090
    ),
}

PALMAS_VIEW = NodeView(
    node="prom-palmas-01",
    addr="127.10.0.10",
    id="892f902b-d23f-0824-128b-2f330c5c7fd0",
    datacenter="dc1",
    status="alive",
    type="client",
    site_name="Palmas (TO)",
    site_code="palmas",
    services_count=2,
    service_names=("alertmanager", "prometheus"),
    services=PALMAS_SERVICES,
    meta={"consul-version": "1.19.2", "os": "linux", "site": "palmas"},
    tagged_addresses={"lan": "127.10.0.10", "wan": "127.10.0.10"},
    consul_index=15,
    updated_at=AT,
)

ENTRY = NodeEntry(
    node="prom-palmas-01",
    addr="127.10.0.10",
    status="alive",
    type="client",
    datacenter="dc1",
    site_name="Palmas (TO)",
    site_code="palmas",
    services_count=2,
    services_status="ok",
    error=None,
    service_names=("alertmanager", "prometheus"),
    updated_at=AT,
    id="892f902b-d23f-0824-128b-2f330c5c7fd0",
    meta={"os": "linux", "site": "palmas"},
    tagged_addresses={"lan": "127.10.0.10"},
)

EVERY_MODEL: list[BaseModel] = [
    ConsulChange(
        watch_type="nodes",
        consul_index=21,
        datacenter="dc1",
        source="watcher",
        observed_at=AT,
        payload=CATALOG_NODES_PAYLOAD,
    ),
    ConsulChange(
        watch_type="service",
        service="alertmanager",
        consul_index=15,
        source="http",
        observed_at=AT,
        payload=[],
    ),
    ConsulChange(
        watch_type="key",
        key="skills/eye/metadata/sites",
        consul_index=22,
        source="script",
        observed_at=AT,
        payload=None,
    ),
    ResyncRequested(request_id="r-1", requested_by="admin", reason="manual flush", requested_at=AT),
    PALMAS_SERVICES["alertmanager"],
    PALMAS_VIEW,
    PALMAS_VIEW.model_copy(
        update={"services_status": "error", "error": "timeout: every Consul server failed"}
    ),
    ViewMeta(
        generation=7,
        consul_index=22,
        main_server="127.0.0.1:8500",
        active_server="127.0.0.2:8500",
        synced_at=AT,
        last_resync_id="r-1",
        last_resync_at=AT,
        last_resync_changed=3,
        last_event_ltime=1,
    ),
    Heartbeat(enricher_id="enricher-a", at=AT, interval_seconds=5.0),
    ENTRY,
    NodesResponse(
        data=[ENTRY],
        total=1,
        main_server="127.0.0.1:8500",
        active_server="127.0.0.1:8500",
        generation=7,
        synced_at=AT,
        stale=False,
    ),
    ServiceDetail(
        ID="alertmanager",
        Service="alertmanager",
        Tags=["exporter", "palmas", "linux"],
        Port=9093,
        Address="",
    ),
    NodeServicesResponse(
        node="127.10.0.10",
        node_name="prom-palmas-01",
        services={
            "prometheus": ServiceDetail(
                ID="prometheus", Service="prometheus", Tags=["linux"], Port=9090, Address=""
            )
        },
        total=1,
        services_status="ok",
        error=None,
        active_server="127.0.0.1:8500",
    ),
    ServiceNamesResponse(
        node="127.10.0.10",
        node_name="prom-palmas-01",
        data=["alertmanager", "prometheus"],
        total=2,
        active_server="127.0.0.1:8500",
    ),
    FlushResponse(
        success=True,
        message="resync requested",
        keys_flushed=0,
        flushed_at=AT,
        warning=None,
        request_id="r-1",
        generation=8,
    ),
    ErrorResponse(error="not_found", detail="no node with that address"),
    TargetGroup(
        targets=["127.10.0.10:9093"],
        labels={"__meta_nodeview_node": "prom-palmas-01", "__meta_nodeview_tags": ",linux,"},
    ),
]

FROZEN_TYPES = (
    ConsulChange,
    ResyncRequested,
    ServiceInstance,
    NodeView,
    ViewMeta,
    Heartbeat,
    NodeEntry,
)
FROZEN_MODELS: list[BaseModel] = [m for m in EVERY_MODEL if isinstance(m, FROZEN_TYPES)]


def _model_id(model: BaseModel) -> str:
    return type(model).__name__


@pytest.mark.parametrize("model", EVERY_MODEL, ids=_model_id)
def test_every_model_survives_a_json_round_trip(model: BaseModel) -> None:
    """Serialising any contract model to JSON and back gives an equal model."""
    assert type(model).model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("model", FROZEN_MODELS, ids=_model_id)
def test_contract_models_are_frozen(model: BaseModel) -> None:
    """Events and views cannot be changed after they are built."""
    first_field = next(iter(type(model).model_fields))
    with pytest.raises(ValidationError):
        setattr(model, first_field, getattr(model, first_field))


@pytest.mark.parametrize("model_cls", [ConsulChange, ResyncRequested])
def test_events_ignore_unknown_fields(model_cls: type[BaseModel]) -> None:
    """A newer producer's extra fields do not break decoding of an event."""
    base = EVERY_MODEL[0] if model_cls is ConsulChange else EVERY_MODEL[3]
    data = base.model_dump(mode="json") | {"added_in_v2": {"x": 1}}
    decoded = model_cls.model_validate(data)
    assert decoded == base
    assert "added_in_v2" not in decoded.model_dump()


def test_heartbeat_ignores_fields_it_does_not_know() -> None:
    """An older API replica reads a newer enricher's heartbeat: unknown fields are ignored."""
    base = next(m for m in EVERY_MODEL if type(m) is Heartbeat)
    data = base.model_dump(mode="json") | {"from_a_newer_enricher": 1}
    assert Heartbeat.model_validate(data) == base


def test_view_meta_rejects_unknown_fields() -> None:
    """The bucket's meta entry is strict: an unknown field is a validation error."""
    base = next(m for m in EVERY_MODEL if type(m) is ViewMeta)
    with pytest.raises(ValidationError):
        ViewMeta.model_validate(base.model_dump(mode="json") | {"unexpected": 1})


@pytest.mark.parametrize("model_cls", [NodeView, ServiceInstance])
def test_node_views_ignore_fields_they_do_not_know(model_cls: type[BaseModel]) -> None:
    """A replica one release behind reads a newer enricher's node views, without the new fields."""
    base = next(m for m in EVERY_MODEL if type(m) is model_cls)
    assert model_cls.model_validate(base.model_dump(mode="json") | {"added_later": 1}) == base


def test_a_node_view_from_before_meta_decodes_with_empty_defaults() -> None:
    """A view an older enricher wrote (no id, meta, tagged addresses) still decodes."""
    data = PALMAS_VIEW.model_dump(mode="json")
    for name in ("id", "meta", "tagged_addresses"):
        del data[name]
    old = NodeView.model_validate(data)
    assert (old.id, old.meta, old.tagged_addresses) == ("", {}, {})


@pytest.mark.parametrize(
    "update",
    [
        {"meta": {f"k{i}": "v" for i in range(MAX_NODE_META_PAIRS + 1)}},
        {"meta": {"k" * (MAX_NODE_META_KEY_LENGTH + 1): "v"}},
        {"meta": {"k": "v" * (MAX_NODE_META_VALUE_LENGTH + 1)}},
        {"tagged_addresses": {f"a{i}": "127.0.0.1" for i in range(MAX_TAGGED_ADDRESSES + 1)}},
        {"id": "x" * 65},
    ],
    ids=["meta-pairs", "meta-key", "meta-value", "tagged-addresses", "id"],
)
def test_node_views_refuse_meta_beyond_consul_limits(update: dict[str, Any]) -> None:
    """Node meta, tagged addresses and id over their bounds do not make a valid view."""
    data = PALMAS_VIEW.model_dump(mode="json") | update
    with pytest.raises(ValidationError):
        NodeView.model_validate(data)
    at_limit = PALMAS_VIEW.model_dump(mode="json") | {
        "meta": {f"k{i:03d}": "v" * MAX_NODE_META_VALUE_LENGTH for i in range(MAX_NODE_META_PAIRS)}
    }
    assert len(NodeView.model_validate(at_limit).meta) == MAX_NODE_META_PAIRS


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)


@given(payload=json_values, index=st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=100, deadline=None)
def test_consul_change_payload_round_trips_exactly(payload: Any, index: int) -> None:
    """Any JSON payload and 64-bit index travel through the event's JSON unchanged."""
    change = ConsulChange(
        watch_type="nodes", consul_index=index, source="http", observed_at=AT, payload=payload
    )
    decoded = ConsulChange.model_validate_json(change.model_dump_json())
    assert decoded.payload == payload
    assert decoded.consul_index == index


def test_consul_change_rejects_negative_index() -> None:
    """A Consul index is unsigned, so a negative one is refused."""
    with pytest.raises(ValidationError):
        ConsulChange(watch_type="nodes", consul_index=-1, source="http", payload=[])


def test_consul_change_rejects_unknown_watch_type_and_source() -> None:
    """Only the documented watch types and sources are accepted."""
    with pytest.raises(ValidationError):
        ConsulChange.model_validate(
            {"watch_type": "keyprefix", "consul_index": 1, "source": "http", "payload": []}
        )
    with pytest.raises(ValidationError):
        ConsulChange.model_validate(
            {"watch_type": "nodes", "consul_index": 1, "source": "cron", "payload": []}
        )


def test_consul_change_bounds_name_length() -> None:
    """Keys longer than MAX_NAME_LENGTH are refused; exactly MAX_NAME_LENGTH is fine."""
    ok = ConsulChange(
        watch_type="key", key="k" * MAX_NAME_LENGTH, consul_index=1, source="http", payload=None
    )
    assert ok.key is not None
    with pytest.raises(ValidationError):
        ConsulChange(
            watch_type="key",
            key="k" * (MAX_NAME_LENGTH + 1),
            consul_index=1,
            source="http",
            payload=None,
        )


def test_consul_change_observed_at_defaults_to_aware_utc() -> None:
    """A change built without observed_at gets a timezone-aware UTC time."""
    change = ConsulChange(watch_type="nodes", consul_index=1, source="watcher", payload=[])
    assert change.observed_at.utcoffset() is not None
    assert change.observed_at.utcoffset() == UTC.utcoffset(None)


def test_dedup_key_is_the_service_for_service_watches_and_the_key_otherwise() -> None:
    """The dedup key names the watched service for service watches, the key for the others."""
    service = ConsulChange(
        watch_type="service",
        service="web",
        key="ignored",
        consul_index=1,
        source="http",
        payload=[],
    )
    key = ConsulChange(
        watch_type="key", key="a/b", service="ignored", consul_index=1, source="http", payload=None
    )
    nodes = ConsulChange(watch_type="nodes", consul_index=1, source="http", payload=[])
    assert service.dedup_key == "web"
    assert key.dedup_key == "a/b"
    assert nodes.dedup_key is None


def test_resync_request_needs_an_id() -> None:
    """A resync request without a request id is refused."""
    with pytest.raises(ValidationError):
        ResyncRequested(request_id="", requested_by="admin", reason="x")


def _assert_valid_kv_key(key: str) -> None:
    assert NATS_KV_KEY.fullmatch(key), key
    assert not key.startswith(".")
    assert not key.endswith(".")


@pytest.mark.parametrize(
    "name", ["consul-server-1", "prom-palmas-01", "prom_rio_01", "A", "0", "-leading-dash"]
)
def test_plain_node_names_keep_a_readable_key(name: str) -> None:
    """Names made of letters, digits, '-' and '_' are stored as node.<name>."""
    key = subjects.node_key(name)
    assert key == subjects.NODE_KEY_PREFIX + name
    assert subjects.node_from_key(key) == name
    _assert_valid_kv_key(key)


@pytest.mark.parametrize(
    "name",
    ["web.dc1", "node 1", "a/b", "café", "节点", "x=y", "node64.abc", ".", "*", ">", "a.b.", "🙂"],
)
def test_names_with_forbidden_characters_are_encoded_reversibly(name: str) -> None:
    """Names NATS would reject (or misread as tokens) get a base64 key that decodes back."""
    key = subjects.node_key(name)
    assert key.startswith(subjects.NODE_KEY_ENCODED_PREFIX)
    assert subjects.node_from_key(key) == name
    _assert_valid_kv_key(key)


@given(name=st.text(min_size=1, max_size=300))
@settings(max_examples=500, deadline=None)
def test_node_key_is_a_valid_kv_key_and_reversible(name: str) -> None:
    """Every non-empty node name maps to a legal NATS KV key that decodes to the same name."""
    key = subjects.node_key(name)
    _assert_valid_kv_key(key)
    assert subjects.node_from_key(key) == name


@given(a=st.text(min_size=1, max_size=40), b=st.text(min_size=1, max_size=40))
@settings(deadline=None)
def test_distinct_names_get_distinct_keys(a: str, b: str) -> None:
    """Two different node names never share a KV key."""
    if a != b:
        assert subjects.node_key(a) != subjects.node_key(b)


@pytest.mark.parametrize("key", [subjects.KEY_META, subjects.KEY_HEARTBEAT, "other.x", "nodes"])
def test_non_node_keys_decode_to_none(key: str) -> None:
    """Meta, heartbeat and foreign keys are not taken for nodes."""
    assert subjects.node_from_key(key) is None


def test_msg_id_names_type_key_and_index() -> None:
    """The message id is <type>:<key>:<index>, with '-' for a missing key."""
    assert subjects.msg_id("nodes", None, 21) == "nodes:-:21"
    assert subjects.msg_id("key", "skills/eye/metadata/sites", 22) == (
        "key:skills/eye/metadata/sites:22"
    )
    assert subjects.msg_id("service", "", 0) == "service:-:0"


@given(
    watch_type=st.sampled_from(subjects.WATCH_TYPES),
    key=st.none() | st.text(min_size=1, max_size=40),
    a=st.integers(min_value=0, max_value=2**64 - 1),
    b=st.integers(min_value=0, max_value=2**64 - 1),
)
@settings(deadline=None)
def test_msg_id_differs_exactly_when_the_index_differs(
    watch_type: str, key: str | None, a: int, b: int
) -> None:
    """Two changes of one watched thing share a message id only at the same index."""
    assert (subjects.msg_id(watch_type, key, a) == subjects.msg_id(watch_type, key, b)) == (a == b)


def test_msg_id_with_a_digest_appends_it() -> None:
    """A re-published change on a reused index carries its payload digest as a fourth field."""
    assert subjects.msg_id("nodes", None, 21, "abcd") == "nodes:-:21:abcd"


def _keyed(payload: object, watch_type: str = "key") -> ConsulChange:
    return ConsulChange(
        watch_type=watch_type,
        key="skills/eye/metadata/sites",
        consul_index=3,
        source="http",
        payload=payload,
    )


def test_payload_digest_ignores_key_order_and_fields_nodeview_does_not_read() -> None:
    """Key order, extra fields and empty ones do not change the digest; a read field does."""
    entry = {"Key": "skills/eye/metadata/sites", "Value": "e30=", "ModifyIndex": 3}
    reordered = {"LockIndex": 0, **dict(reversed(list(entry.items())))}
    assert _keyed(entry).payload_digest() == _keyed(reordered).payload_digest()
    assert _keyed(entry).payload_digest() != _keyed({**entry, "Value": "W10="}).payload_digest()
    nodes = [{"Node": "a"}, {"Node": "b"}]
    assert _keyed(nodes, "nodes").payload_digest() != _keyed(nodes[:1], "nodes").payload_digest()


def test_a_handler_payload_and_the_raw_answer_of_one_change_digest_alike() -> None:
    """Consul's re-encoded API structs (handler) and its HTTP answer (watcher) give one digest."""
    raw = [
        {
            "Node": "a",
            "CheckID": "serfHealth",
            "Status": "critical",
            "ServiceID": "",
            "ServiceName": "",
            "Definition": {},
            "CreateIndex": 5,
            "ModifyIndex": 9,
        }
    ]
    handler = [
        {
            "Node": "a",
            "CheckID": "serfHealth",
            "Status": "critical",
            "Type": "",
            "Definition": {"Interval": "0s", "Timeout": "0s"},
            "ModifyIndex": 9,
        }
    ]
    assert _keyed(raw, "checks").payload_digest() == _keyed(handler, "checks").payload_digest()
    passing = [{**handler[0], "Status": "passing"}]
    assert _keyed(raw, "checks").payload_digest() != _keyed(passing, "checks").payload_digest()
    service = [
        {
            "Node": {"Node": "a", "Address": "127.0.0.1", "Meta": {"x": "1"}},
            "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 80},
            "Checks": [],
        }
    ]
    service_handler = [
        {
            "Node": {"Node": "a", "Address": "127.0.0.1", "TaggedAddresses": None},
            "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 80, "Meta": None},
        }
    ]
    assert (
        _keyed(service, "service").payload_digest()
        == _keyed(service_handler, "service").payload_digest()
    )


def test_subject_helpers_build_the_documented_subjects() -> None:
    """Changes go to nodeview.consul.<type>; KV entries live under $KV.<bucket>.<key>."""
    assert subjects.consul_subject("nodes") == "nodeview.consul.nodes"
    assert subjects.kv_subject(subjects.BUCKET_NODES, "meta") == "$KV.nodeview_nodes.meta"
    for watch_type in subjects.WATCH_TYPES:
        assert subjects.consul_subject(watch_type).startswith(subjects.SUBJECT_CONSUL_PREFIX + ".")


def test_message_ids_of_two_datacenters_differ() -> None:
    """The same index in two datacenters is two changes, never one collapsed message."""
    local = subjects.msg_id("nodes", None, 42)
    remote = subjects.msg_id("nodes", None, 42, datacenter="dc2")
    assert local != remote
    assert subjects.parse_msg_id(remote) == ("nodes", "-@dc2", 42)

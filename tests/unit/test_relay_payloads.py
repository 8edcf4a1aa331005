"""Relay input validation: Consul indexes, JSON decoding, payload shapes, changes, index rules."""

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import MAX_NAME_LENGTH, ConsulChange
from contracts.subjects import WATCH_TYPES
from contracts.views import MAX_NODE_META_PAIRS
from services.relay.payloads import (
    MAX_INDEX,
    BadWatchPayload,
    check_shape,
    decode_json,
    make_change,
    parse_index,
    parse_watch_type,
)
from services.relay.watcher import next_index

SITES_KEY = "skills/eye/metadata/sites"

CATALOG_NODES: list[dict[str, Any]] = [
    {
        "ID": "9c5b53c5-2608-f2d4-512f-bfa7c02a3f5d",
        "Node": "consul-server-1",
        "Address": "127.0.1.1",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "127.0.1.1", "wan": "127.0.1.1"},
        "Meta": {"consul-network-segment": "", "consul-version": "1.19.2"},
        "CreateIndex": 11,
        "ModifyIndex": 11,
    }
]
CATALOG_SERVICES: dict[str, list[str]] = {
    "alertmanager": ["exporter", "linux", "palmas"],
    "consul": [],
}
KV_ENTRY: dict[str, Any] = {
    "LockIndex": 0,
    "Key": SITES_KEY,
    "Flags": 0,
    "Value": "e30=",
    "CreateIndex": 22,
    "ModifyIndex": 22,
}
EVENTS: list[dict[str, Any]] = [
    {
        "ID": "dde75058-d1d2-a1e8-bfd3-761d1e726b03",
        "Name": "nodeview-resync",
        "Payload": "bWFudWFs",
        "NodeFilter": "",
        "ServiceFilter": "",
        "TagFilter": "",
        "Version": 1,
        "LTime": 1,
    }
]
CHECKS: list[dict[str, Any]] = [
    {
        "Node": "prom-palmas-01",
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "ServiceID": "",
        "ServiceName": "",
    }
]


@pytest.mark.parametrize(
    ("text", "index"),
    [("0", 0), ("21", 21), (" 42 ", 42), ("\t7\n", 7), ("007", 7), (str(MAX_INDEX), MAX_INDEX)],
)
def test_parse_index_accepts_unsigned_64_bit_integers(text: str, index: int) -> None:
    """Decimal digits (surrounding whitespace allowed) up to 2**64-1 parse to the index."""
    assert parse_index(text) == index


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "abc", "-1", "+1", "1.5", "1e3", "0x10", "1 2", str(MAX_INDEX + 1)],
    ids=repr,
)
def test_parse_index_rejects_everything_else(text: str | None) -> None:
    """Missing, signed, non-decimal and over-64-bit indexes raise BadWatchPayload."""
    with pytest.raises(BadWatchPayload):
        parse_index(text)


@pytest.mark.parametrize(
    "text",
    ["\u00b2", "1\u00b3", "\u0661\u0662\u0663", "1" * 5000],
    ids=["sup2", "1sup3", "arabic", "5000-digits"],
)
def test_parse_index_rejects_non_ascii_digits_and_endless_numbers(text: str) -> None:
    """Superscripts, other scripts' digits and 5000-digit strings raise BadWatchPayload."""
    with pytest.raises(BadWatchPayload):
        parse_index(text)


@given(index=st.integers(min_value=0, max_value=MAX_INDEX), pad=st.sampled_from(["", " ", "\t"]))
@settings(deadline=None)
def test_parse_index_round_trips_every_64_bit_value(index: int, pad: str) -> None:
    """Every unsigned 64-bit integer written in decimal parses back to itself."""
    assert parse_index(f"{pad}{index}{pad}") == index


@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=30))
@settings(max_examples=500, deadline=None)
def test_parse_index_of_ascii_text_raises_only_bad_watch_payload(text: str) -> None:
    """Any ASCII header value parses to an index in range or raises BadWatchPayload."""
    try:
        index = parse_index(text)
    except BadWatchPayload:
        return
    assert 0 <= index <= MAX_INDEX


def test_decode_json_decodes_utf8_json() -> None:
    """A UTF-8 JSON document decodes to its value, non-ASCII text included."""
    raw = json.dumps([{"Node": "nó-ção", "Address": "127.0.0.1"}], ensure_ascii=False).encode()
    assert decode_json(raw) == [{"Node": "nó-ção", "Address": "127.0.0.1"}]
    assert decode_json(b"null") is None


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b'["caf\xe9"]', b"\xc3\x28"],
    ids=["utf16-bom", "latin1", "bad-sequence"],
)
def test_decode_json_rejects_non_utf8(raw: bytes) -> None:
    """Bytes that are not UTF-8 raise BadWatchPayload naming the encoding."""
    with pytest.raises(BadWatchPayload, match="UTF-8"):
        decode_json(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b"[1,]",
        b"{'a': 1}",
        b"nul",
        b"[] []",
        b"[NaN]",
        b'{"Port": Infinity}',
        b"-Infinity",
        b"[1e999]",
    ],
)
def test_decode_json_rejects_invalid_json(raw: bytes) -> None:
    """Text that is not one JSON document raises BadWatchPayload."""
    with pytest.raises(BadWatchPayload, match="not JSON") as raised:
        decode_json(raw)
    assert str(raised.value).count("not JSON") == 1


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
def test_decode_json_rejects_deep_nesting(depth: int) -> None:
    """A document nested deeper than the parser can follow raises BadWatchPayload."""
    with pytest.raises(BadWatchPayload):
        decode_json(b"[" * depth + b"]" * depth)
    with pytest.raises(BadWatchPayload):
        decode_json(b'{"a":' * depth + b"1" + b"}" * depth)


def test_decode_json_rejects_endless_integers() -> None:
    """A JSON integer of 5000 digits raises BadWatchPayload, not a bare ValueError."""
    with pytest.raises(BadWatchPayload):
        decode_json(b'[{"LTime": ' + b"9" * 5000 + b"}]")


@pytest.mark.parametrize(
    ("watch_type", "payload"),
    [
        ("nodes", CATALOG_NODES),
        ("nodes", []),
        ("nodes", None),
        ("checks", CHECKS),
        ("service", []),
        ("event", EVENTS),
        ("members", []),
        ("services", CATALOG_SERVICES),
        ("services", {}),
        ("services", {"web": None}),
        ("key", KV_ENTRY),
        ("key", None),
    ],
)
def test_check_shape_accepts_what_consul_sends(watch_type: str, payload: Any) -> None:
    """Each watch type's documented top-level shape passes."""
    check_shape(parse_watch_type(watch_type), payload)


@pytest.mark.parametrize(
    ("watch_type", "payload"),
    [
        ("nodes", {"Node": "a"}),
        ("nodes", ["a"]),
        ("nodes", [CATALOG_NODES[0], 1]),
        ("checks", "passing"),
        ("service", {}),
        ("event", [None]),
        ("members", 1),
        ("services", None),
        ("services", ["alertmanager"]),
        ("services", {"web": "exporter"}),
        ("services", {"web": {"tags": []}}),
        ("key", [KV_ENTRY]),
        ("key", "e30="),
    ],
)
def test_check_shape_rejects_other_shapes(watch_type: str, payload: Any) -> None:
    """A payload of the wrong top-level shape for its watch type raises BadWatchPayload."""
    with pytest.raises(BadWatchPayload):
        check_shape(parse_watch_type(watch_type), payload)


TOO_LONG = [
    ("nodes", [{"Node": "n" * 513, "Address": "127.0.0.1"}]),
    ("members", [{"Name": "m", "Addr": "1" * 600}]),
    ("checks", [{"Node": "a", "CheckID": "c" * 10_000}]),
    ("service", [{"Node": {"Node": "x" * 100_000}, "Service": {"ID": "s"}}]),
    ("service", [{"Node": {"Node": "a"}, "Service": {"ID": "s", "Tags": ["t" * 5000]}}]),
    ("services", {"s" * 513: []}),
    ("services", {"web": ["t" * 4097]}),
    ("nodes", [{"Node": "n", "Meta": {f"k{i}": "v" for i in range(MAX_NODE_META_PAIRS + 1)}}]),
    ("nodes", [{"Node": "n", "Meta": {"k" * 129: "v"}}]),
    ("nodes", [{"Node": "n", "Meta": {"k": "v" * 513}}]),
    ("nodes", [{"Node": "n", "TaggedAddresses": {f"a{i}": "x" for i in range(17)}}]),
    ("service", [{"Node": {"Node": "a", "Meta": {"k": "v" * 513}}, "Service": {"ID": "s"}}]),
]


@pytest.mark.parametrize(("watch_type", "payload"), TOO_LONG)
def test_handler_input_with_a_too_long_name_or_tag_is_refused(
    watch_type: str, payload: Any
) -> None:
    """A handler's payload naming something over 512 characters, a tag over 4096, or node meta
    or tagged addresses beyond Consul's limits (72 pairs, keys 128, values 512), is refused."""
    for source in ("http", "script"):
        with pytest.raises(BadWatchPayload, match="at most"):
            make_change(watch_type, payload, 7, source, service="s")


@pytest.mark.parametrize(("watch_type", "payload"), TOO_LONG)
def test_the_watchers_own_consul_answers_are_not_length_bounded(
    watch_type: str, payload: Any
) -> None:
    """What Consul answers the built-in watcher is taken whole: one odd record freezes nothing."""
    change = make_change(watch_type, payload, 7, "watcher", service="s")
    assert change.payload == payload


def test_names_and_tags_at_the_limits_are_accepted() -> None:
    """The longest accepted name (512), tag (4096) and node meta (72 pairs of 128/512) pass."""
    make_change("nodes", [{"Node": "n" * 512, "Address": "127.0.0.1"}], 1, "http")
    make_change("services", {"s" * 512: ["t" * 4096]}, 1, "http")
    meta = {f"{i:03d}" + "k" * 125: "v" * 512 for i in range(MAX_NODE_META_PAIRS)}
    make_change("nodes", [{"Node": "n", "Meta": meta}], 1, "http")


@pytest.mark.parametrize("watch_type", ["keyprefix", "NODES", "", "nodes ", "agent"])
def test_unknown_watch_types_are_refused(watch_type: str) -> None:
    """Only the seven documented watch types are accepted."""
    with pytest.raises(BadWatchPayload, match="unknown watch type"):
        make_change(watch_type, [], 1, "http")


def test_make_change_wraps_a_valid_answer() -> None:
    """A valid answer becomes a ConsulChange carrying type, index, source and payload unchanged."""
    change = make_change("nodes", CATALOG_NODES, 21, "script", datacenter="dc1")
    assert isinstance(change, ConsulChange)
    assert change.watch_type == "nodes"
    assert change.consul_index == 21
    assert change.source == "script"
    assert change.datacenter == "dc1"
    assert change.payload == CATALOG_NODES
    assert change.key is None


def test_service_watch_needs_a_service_name() -> None:
    """A service watch without the service name is refused; with it the name is kept."""
    with pytest.raises(BadWatchPayload, match="service name"):
        make_change("service", [], 5, "http")
    with pytest.raises(BadWatchPayload, match="service name"):
        make_change("service", [], 5, "http", service="")
    assert make_change("service", [], 5, "http", service="web").service == "web"


def test_key_watch_takes_the_key_from_the_payload() -> None:
    """A key watch without an explicit key uses the entry's Key field."""
    change = make_change("key", KV_ENTRY, 22, "script")
    assert change.key == SITES_KEY
    assert change.dedup_key == SITES_KEY


def test_an_explicit_key_wins_over_the_payload() -> None:
    """The configured key of a watch is kept even if the entry names another."""
    assert make_change("key", KV_ENTRY, 22, "watcher", key="other/key").key == "other/key"


@pytest.mark.parametrize(
    "payload", [None, {}, {"Key": ""}, {"Key": 5}], ids=["deleted", "empty", "blank", "number"]
)
def test_key_watch_without_any_key_is_refused(payload: Any) -> None:
    """A key watch whose key is neither given nor in the entry raises BadWatchPayload."""
    with pytest.raises(BadWatchPayload, match="key"):
        make_change("key", payload, 22, "http")


def test_a_deleted_key_with_its_name_is_a_change() -> None:
    """A null payload (key deleted) with the key named is a valid change."""
    change = make_change("key", None, 23, "watcher", key=SITES_KEY)
    assert change.payload is None
    assert change.key == SITES_KEY


@pytest.mark.parametrize(
    "kwargs",
    [
        {"index": -1},
        {"key": "k" * (MAX_NAME_LENGTH + 1)},
        {"datacenter": "d" * (MAX_NAME_LENGTH + 1)},
    ],
    ids=["negative-index", "long-key", "long-datacenter"],
)
def test_invalid_change_fields_become_bad_watch_payload(kwargs: dict[str, Any]) -> None:
    """Contract validation errors surface as BadWatchPayload, not pydantic errors."""
    index = kwargs.pop("index", 1)
    with pytest.raises(BadWatchPayload, match="invalid change"):
        make_change("nodes", [], index, "http", **kwargs)


@pytest.mark.parametrize(
    ("previous", "returned", "expected"),
    [
        (0, 21, 21),
        (21, 21, 21),
        (21, 30, 30),
        (30, 29, 0),
        (30, 0, 0),
        (0, 0, 1),
        (0, None, 0),
        (30, None, 0),
    ],
)
def test_next_index_follows_consuls_rules(
    previous: int, returned: int | None, expected: int
) -> None:
    """Backwards resets to 0, 0 is never sent after an answer, no index restarts at 0."""
    assert next_index(previous, returned) == expected


@given(
    previous=st.integers(min_value=0, max_value=MAX_INDEX),
    returned=st.none() | st.integers(min_value=0, max_value=MAX_INDEX),
)
@settings(deadline=None)
def test_next_index_is_zero_or_the_new_index(previous: int, returned: int | None) -> None:
    """The next index is 0 (reset) or the returned index (at least 1), never anything else."""
    result = next_index(previous, returned)
    if returned is None or returned < previous:
        assert result == 0
    else:
        assert result == max(returned, 1)
        assert result >= previous


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["Key", "Node", "Name", "Value", "LTime"]) | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
shaped_payloads = (
    json_values
    | st.lists(st.dictionaries(st.text(max_size=6), json_leaves, max_size=3), max_size=3)
    | st.dictionaries(st.text(max_size=8), st.none() | st.lists(st.text(max_size=6)), max_size=3)
    | st.fixed_dictionaries({"Key": st.text(max_size=20) | st.integers(), "Value": json_leaves})
)
watch_types = st.sampled_from(WATCH_TYPES) | st.text(max_size=10)
names = st.none() | st.text(max_size=20) | st.just("x" * (MAX_NAME_LENGTH + 1))
indexes = st.integers(min_value=-5, max_value=MAX_INDEX + 5)


@given(raw=st.binary(max_size=300))
@settings(max_examples=800, deadline=None)
def test_decode_json_of_arbitrary_bytes_raises_only_bad_watch_payload(raw: bytes) -> None:
    """Random bytes decode to a value or raise BadWatchPayload, never anything else."""
    with contextlib.suppress(BadWatchPayload):
        decode_json(raw)


@given(
    text=st.text(
        alphabet=st.sampled_from('[]{}",:0123456789.-+eE tfnrulasNIy\\\u00e9\u2028'), max_size=80
    )
)
@settings(max_examples=500, deadline=None)
def test_decode_json_of_json_like_text_raises_only_bad_watch_payload(text: str) -> None:
    """Near-JSON text made of JSON's own characters decodes or raises BadWatchPayload."""
    with contextlib.suppress(BadWatchPayload):
        decode_json(text.encode())


@given(
    watch_type=watch_types,
    payload=shaped_payloads,
    index=indexes,
    key=names,
    service=names,
    datacenter=names,
)
@settings(max_examples=500, deadline=None)
def test_make_change_raises_only_bad_watch_payload(
    watch_type: str,
    payload: Any,
    index: int,
    key: str | None,
    service: str | None,
    datacenter: str | None,
) -> None:
    """Any type, payload, index and names give a valid ConsulChange or BadWatchPayload."""
    try:
        change = make_change(
            watch_type, payload, index, "http", key=key, service=service, datacenter=datacenter
        )
    except BadWatchPayload:
        return
    assert change.watch_type == watch_type
    assert change.consul_index == index >= 0
    if change.watch_type == "service":
        assert change.service
    if change.watch_type == "key":
        assert change.key


@given(watch_type=st.sampled_from(WATCH_TYPES), payload=shaped_payloads, index=indexes)
@settings(max_examples=300, deadline=None)
def test_decode_then_make_change_raises_only_bad_watch_payload(
    watch_type: str, payload: Any, index: int
) -> None:
    """The handler path (bytes → JSON → change) fails only with BadWatchPayload."""
    raw = json.dumps(payload).encode()
    try:
        change = make_change(watch_type, decode_json(raw), index, "script", service="web")
    except BadWatchPayload:
        return
    assert change.payload == payload

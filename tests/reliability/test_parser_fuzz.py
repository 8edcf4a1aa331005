"""Hypothesis fuzzing of the relay's parsers and the enricher's decoder: only named errors."""

import contextlib
import gzip
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.events import ConsulChange
from contracts.subjects import WATCH_TYPES
from services import bus
from services.relay.payloads import BadWatchPayload, decode_json, make_change, parse_index

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(["Node", "Address", "Key", "Value", "Service", "Name", "ID", "x"])
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=12,
)
FUZZ_SCALE = float(os.environ.get("RELIABILITY_FUZZ_SCALE", "1"))
"""Multiplies the example counts (10,000 inputs in all at 1)."""


def _examples(count: int) -> int:
    return max(1, int(count * FUZZ_SCALE))


WATCH_NAMES = st.sampled_from([*WATCH_TYPES, "", "bogus", "NODES", "nodes "])

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]


@given(raw=st.binary(max_size=400) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=_examples(3500), deadline=None)
def test_decode_json_raises_only_bad_watch_payload(raw: bytes) -> None:
    """Any bytes either decode as JSON or raise BadWatchPayload, never anything else."""
    with contextlib.suppress(BadWatchPayload):
        decode_json(raw)


@given(
    watch_type=WATCH_NAMES,
    payload=JSON_VALUES,
    index=st.text(max_size=25) | st.integers(min_value=0, max_value=2**66).map(str),
    key=st.none() | st.text(max_size=600),
    service=st.none() | st.text(max_size=600),
)
@settings(max_examples=_examples(3500), deadline=None)
def test_make_change_accepts_or_names_the_problem(
    watch_type: str, payload: Any, index: str, key: str | None, service: str | None
) -> None:
    """Every watch call becomes a ConsulChange that survives the wire, or a BadWatchPayload."""
    try:
        change = make_change(
            watch_type, payload, parse_index(index), "http", key=key, service=service
        )
    except BadWatchPayload:
        return
    body, headers = bus.encode_change(change)
    assert ConsulChange.model_validate_json(bus.decode_body(body, headers)) == change


@given(raw=st.binary(max_size=300), gzipped=st.booleans())
@settings(max_examples=_examples(3000), deadline=None)
def test_stream_message_decoding_fails_only_with_known_errors(raw: bytes, gzipped: bool) -> None:
    """A message body off the stream decodes or fails with the errors the enricher dead-letters."""
    headers = {"Content-Encoding": "gzip"} if gzipped else None
    data = gzip.compress(raw) if gzipped and raw[:1] == b"{" else raw
    with contextlib.suppress(ValidationError, OSError, EOFError, ValueError):
        ConsulChange.model_validate_json(bus.decode_body(data, headers))

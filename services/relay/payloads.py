"""Validation of Consul watch payloads and their conversion into ``ConsulChange`` events."""

import json
import math
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from contracts.events import MAX_NAME_LENGTH, ChangeSource, ConsulChange, WatchType, utc_now
from contracts.subjects import WATCH_TYPES
from contracts.views import (
    MAX_ADDRESS_LENGTH,
    MAX_NODE_META_KEY_LENGTH,
    MAX_NODE_META_PAIRS,
    MAX_NODE_META_VALUE_LENGTH,
    MAX_TAGGED_ADDRESS_KEY_LENGTH,
    MAX_TAGGED_ADDRESSES,
)

MAX_INDEX = 2**64 - 1
"""Consul indexes are unsigned 64-bit integers."""

_LIST_TYPES = frozenset({"nodes", "checks", "service", "event", "members"})

MAX_TAG_LENGTH = 4096
"""Longest service tag accepted from a watch handler (a bound on pushed input, not Consul's)."""

_NAME_FIELDS = (
    "Node",
    "Name",
    "ID",
    "Service",
    "ServiceName",
    "ServiceID",
    "CheckID",
    "Address",
    "Addr",
    "Datacenter",
)
"""Fields naming a node, service, check or address: each at most ``MAX_NAME_LENGTH`` long."""

_TAG_FIELDS = ("Tags", "ServiceTags")
"""Fields holding a list of service tags: each tag at most ``MAX_TAG_LENGTH`` long."""

_MAP_BOUNDS = {
    "Meta": (MAX_NODE_META_PAIRS, MAX_NODE_META_KEY_LENGTH, MAX_NODE_META_VALUE_LENGTH),
    "NodeMeta": (MAX_NODE_META_PAIRS, MAX_NODE_META_KEY_LENGTH, MAX_NODE_META_VALUE_LENGTH),
    "TaggedAddresses": (MAX_TAGGED_ADDRESSES, MAX_TAGGED_ADDRESS_KEY_LENGTH, MAX_ADDRESS_LENGTH),
}
"""Node maps a handler may push: at most (pairs, key length, value length), Consul's limits
for node meta."""


class BadWatchPayload(ValueError):
    """A watch payload, its type or its index is not what Consul sends."""


def parse_watch_type(value: str) -> WatchType:
    """Return ``value`` as a watch type, or raise ``BadWatchPayload``."""
    if value not in WATCH_TYPES:
        raise BadWatchPayload(
            f"unknown watch type {value!r}; expected one of {', '.join(WATCH_TYPES)}"
        )
    return value  # type: ignore[return-value]


def parse_index(value: str | None) -> int:
    """Parse ``CONSUL_INDEX`` / ``X-Consul-Index``: an unsigned 64-bit integer."""
    if value is None or not value.strip():
        raise BadWatchPayload("the Consul index is missing (CONSUL_INDEX / X-Consul-Index)")
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_INDEX)):
        raise BadWatchPayload(f"the Consul index {text[:40]!r} is not an unsigned 64-bit integer")
    index = int(text)
    if index > MAX_INDEX:
        raise BadWatchPayload("the Consul index does not fit in 64 bits")
    return index


def decode_json(raw: bytes) -> Any:
    """Decode a UTF-8 JSON document, or raise ``BadWatchPayload``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadWatchPayload("the payload is not UTF-8") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except BadWatchPayload:
        raise
    except json.JSONDecodeError as exc:
        raise BadWatchPayload(f"the payload is not JSON: {exc.msg} at {exc.pos}") from exc
    except ValueError as exc:
        raise BadWatchPayload(f"the payload is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadWatchPayload("the payload nests too deeply") from exc


def _finite_float(text: str) -> float:
    """A JSON number as a float, refusing those too large to be finite (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise BadWatchPayload(f"the payload is not JSON Consul sends: {text[:40]} overflows")
    return value


def _refuse_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``: not JSON, never sent by Consul, and lost on the wire."""
    raise BadWatchPayload(f"the payload is not JSON: {name} is not a JSON value")


def check_shape(watch_type: WatchType, payload: Any) -> None:
    """Check the top-level JSON shape Consul gives a handler of ``watch_type``."""
    if watch_type in _LIST_TYPES:
        if payload is not None and not (
            isinstance(payload, list) and all(isinstance(item, dict) for item in payload)
        ):
            raise BadWatchPayload(f"a {watch_type} payload is a JSON list of objects")
    elif watch_type == "services":
        if not isinstance(payload, dict) or not all(
            isinstance(tags, list | None) for tags in payload.values()
        ):
            raise BadWatchPayload("a services payload is an object of name → tag list")
    elif watch_type == "key" and payload is not None and not isinstance(payload, dict):
        raise BadWatchPayload("a key payload is one KV entry object (or null)")


def check_lengths(watch_type: WatchType, payload: Any) -> None:
    """Refuse names over ``MAX_NAME_LENGTH``, tags over ``MAX_TAG_LENGTH`` characters and node
    meta or tagged addresses beyond Consul's limits (``_MAP_BOUNDS``)."""
    if watch_type == "services":
        for name, tags in payload.items():
            _check_name("service name", name)
            _check_tags(tags)
    elif isinstance(payload, list):
        for item in payload:
            _check_item(item)
            for nested in ("Node", "Service"):
                if isinstance(item.get(nested), dict):
                    _check_item(item[nested])


def _check_item(item: dict[str, Any]) -> None:
    for field in _NAME_FIELDS:
        value = item.get(field)
        if isinstance(value, str):
            _check_name(field, value)
    for field in _TAG_FIELDS:
        _check_tags(item.get(field))
    for field, bounds in _MAP_BOUNDS.items():
        _check_map(field, item.get(field), *bounds)


def _check_map(field: str, value: Any, pairs: int, key_length: int, value_length: int) -> None:
    if not isinstance(value, dict):
        return
    if len(value) > pairs:
        raise BadWatchPayload(f"a {field} has {len(value)} entries; at most {pairs}")
    for key, item in value.items():
        if len(key) > key_length:
            raise BadWatchPayload(f"a {field} key is {len(key)} characters; at most {key_length}")
        if isinstance(item, str) and len(item) > value_length:
            raise BadWatchPayload(
                f"a {field} value is {len(item)} characters; at most {value_length}"
            )


def _check_name(field: str, value: str) -> None:
    if len(value) > MAX_NAME_LENGTH:
        raise BadWatchPayload(f"a {field} is {len(value)} characters; at most {MAX_NAME_LENGTH}")


def _check_tags(tags: Any) -> None:
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and len(tag) > MAX_TAG_LENGTH:
                raise BadWatchPayload(f"a tag is {len(tag)} characters; at most {MAX_TAG_LENGTH}")


def make_change(
    watch_type: str,
    payload: Any,
    index: int,
    source: ChangeSource,
    *,
    key: str | None = None,
    service: str | None = None,
    datacenter: str | None = None,
    observed_at: datetime | None = None,
    filtered_by_acls: bool = False,
) -> ConsulChange:
    """Validate a watch answer and wrap it in a ``ConsulChange``."""
    kind = parse_watch_type(watch_type)
    check_shape(kind, payload)
    if source != "watcher":
        # Input pushed at the relay is bounded; what Consul itself answers is taken as it is.
        check_lengths(kind, payload)
    if kind == "service" and not service:
        raise BadWatchPayload("a service watch needs the service name")
    if kind == "key":
        if key is None and isinstance(payload, dict) and isinstance(payload.get("Key"), str):
            key = payload["Key"]
        if not key:
            raise BadWatchPayload("a key watch needs the key")
    try:
        return ConsulChange(
            watch_type=kind,
            key=key,
            service=service,
            consul_index=index,
            datacenter=datacenter,
            source=source,
            observed_at=observed_at or utc_now(),
            payload=payload,
            filtered_by_acls=filtered_by_acls,
        )
    except ValidationError as exc:
        raise BadWatchPayload(f"invalid change: {exc.errors()[0]['msg']}") from exc

"""NATS stream, subject, bucket and header names, and the reversible KV key encoding."""

import base64
import binascii
import re

STREAM_EVENTS = "NODEVIEW_EVENTS"
"""JetStream stream that holds every Consul change and every command."""

SUBJECT_CONSUL_PREFIX = "nodeview.consul"
"""Consul changes are published to ``nodeview.consul.<watch_type>``."""

SUBJECT_CONSUL_ALL = f"{SUBJECT_CONSUL_PREFIX}.>"
SUBJECT_DELTA_PREFIX = "nodeview.delta"
"""What a whole-list answer changed (``ConsulDelta``) is published to ``nodeview.delta.<type>``."""

SUBJECT_DELTA_ALL = f"{SUBJECT_DELTA_PREFIX}.>"
SUBJECT_CMD_RESYNC = "nodeview.cmd.resync"
"""A ``ResyncRequested`` command for the enricher."""

SUBJECT_CMD_ALL = "nodeview.cmd.>"
STREAM_EVENTS_SUBJECTS = (SUBJECT_CONSUL_ALL, SUBJECT_DELTA_ALL, SUBJECT_CMD_ALL)
SUBJECT_EVENTS_ALL = "nodeview.>"
"""What the enricher's consumer takes from the stream: every change and command."""

STREAM_DEAD_LETTER = "NODEVIEW_DLQ"
"""Stream that keeps poison messages for inspection."""

SUBJECT_DEAD_LETTER = "nodeview.dlq.events"

CONSUMER_ENRICHER = "enricher"
"""Durable consumer name of the enricher on ``STREAM_EVENTS``."""

BUCKET_NODES = "nodeview_nodes"
"""JetStream KV bucket with one entry per node plus ``KEY_META`` and ``KEY_HEARTBEAT``."""

BUCKET_ENRICHER_LOCK = "nodeview_enricher_lock"
"""JetStream KV bucket whose single key elects the active enricher."""

KEY_ENRICHER_LOCK = "active"
KEY_META = "meta"
KEY_HEARTBEAT = "heartbeat"
NODE_KEY_PREFIX = "node."
NODE_KEY_ENCODED_PREFIX = "node64."

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"
HEADER_CONTENT_ENCODING = "Content-Encoding"
HEADER_KV_OPERATION = "KV-Operation"
HEADER_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
HEADER_ROLLUP = "Nats-Rollup"
HEADER_OBSERVED_AT = "Nodeview-Observed-At"
"""Unix time (seconds, float) at which the Consul change behind a message or KV write was seen."""
HEADER_PAYLOAD_DIGEST = "Nodeview-Payload-Digest"
"""Digest of what nodeview reads from a change, telling a repeat of it from a new change that
reuses its Consul index (after an index reset) when JetStream reports a duplicate id."""

WATCH_TYPES = ("nodes", "services", "service", "checks", "key", "event", "members")

_PLAIN_NODE_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def parse_msg_id(value: str, digest: str | None = None) -> tuple[str, str | None, int] | None:
    """Return ``(type, key, index)`` of a change's ``Nats-Msg-Id``, or None if it is not one."""
    if digest and value.endswith(":" + digest):
        value = value[: -len(digest) - 1]
    base, _, index = value.rpartition(":")
    watch_type, _, key = base.partition(":")
    if watch_type not in WATCH_TYPES or not key or not index.isascii() or not index.isdigit():
        return None
    return watch_type, (None if key == "-" else key), int(index)


def resync_msg_id(request_id: str) -> str:
    """Return the ``Nats-Msg-Id`` of a resync request (the same request is stored once)."""
    return f"resync:{request_id}"


def delta_subject(watch_type: str) -> str:
    """Return the subject a delta of a ``watch_type`` list is published on."""
    return f"{SUBJECT_DELTA_PREFIX}.{watch_type}"


def answer_subject(watch_type: str, *, delta: bool) -> str:
    """Return the subject of a Consul answer published whole, or as what it changed."""
    return delta_subject(watch_type) if delta else consul_subject(watch_type)


def consul_subject(watch_type: str) -> str:
    """Return the subject a change of ``watch_type`` is published on."""
    return f"{SUBJECT_CONSUL_PREFIX}.{watch_type}"


def kv_subject(bucket: str, key: str) -> str:
    """Return the stream subject behind ``key`` of a JetStream KV ``bucket``."""
    return f"$KV.{bucket}.{key}"


def node_key(node: str) -> str:
    """Encode a Consul node name as a valid NATS KV key, reversibly."""
    if not node:
        raise ValueError("a node name cannot be empty")
    if _PLAIN_NODE_NAME.fullmatch(node):
        return NODE_KEY_PREFIX + node
    encoded = base64.urlsafe_b64encode(node.encode()).decode().rstrip("=")
    return NODE_KEY_ENCODED_PREFIX + encoded


def node_from_key(key: str) -> str | None:
    """Decode a KV key made by ``node_key``; ``None`` when it is not a node key."""
    if key.startswith(NODE_KEY_ENCODED_PREFIX):
        raw = key[len(NODE_KEY_ENCODED_PREFIX) :]
        try:
            return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    if key.startswith(NODE_KEY_PREFIX):
        return key[len(NODE_KEY_PREFIX) :]
    return None


def msg_id(
    watch_type: str,
    key: str | None,
    consul_index: int,
    digest: str | None = None,
    *,
    datacenter: str | None = None,
) -> str:
    """Return the ``Nats-Msg-Id`` that collapses duplicates (``digest``: after an index reset).

    Another datacenter's change is another thing: its name goes into the key part.
    """
    thing = f"{key or '-'}@{datacenter}" if datacenter else (key or "-")
    base = f"{watch_type}:{thing}:{consul_index}"
    return f"{base}:{digest}" if digest else base

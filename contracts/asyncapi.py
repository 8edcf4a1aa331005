"""The AsyncAPI 3.0 document of nodeview's NATS side, built from the contract models themselves.

Subjects, KV keys and header names come from ``subjects``; message schemas from the pydantic
models' own JSON schema (as they serialise), so the document cannot say what the code does not.
"""

from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts import subjects
from contracts.events import (
    ChangeSource,
    ConsulChange,
    ConsulDelta,
    DeltaType,
    ResyncRequested,
    WatchType,
)
from contracts.views import DegradedItem, Heartbeat, NodeView, ServiceInstance, ViewMeta

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1"
"""Version of the NATS contract as a whole; each event also carries its own schema version."""

REF_TEMPLATE = "#/components/schemas/{model}"
EXAMPLE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed time for the examples, so the generated document does not change between runs."""

_SOURCES = list(get_args(ChangeSource))

_STRING = {"type": "string"}


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


_TRACE_HEADERS = {
    subjects.HEADER_TRACEPARENT: _header("W3C trace context of the change (when tracing is on)"),
    subjects.HEADER_TRACESTATE: _header("W3C trace state, with traceparent"),
}

_EVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": [subjects.HEADER_MSG_ID, subjects.HEADER_PAYLOAD_DIGEST],
    "properties": {
        subjects.HEADER_MSG_ID: _header(
            "`<type>:<key>[@<datacenter>]:<index>`, plus `:<digest>` when a Consul index reset "
            "reused the index: JetStream stores one change once within its duplicate window"
        ),
        subjects.HEADER_PAYLOAD_DIGEST: _header(
            "Digest of what nodeview reads from the answer (the same for every source)"
        ),
        subjects.HEADER_OBSERVED_AT: _header("Unix time (seconds) the relay saw the change"),
        subjects.HEADER_CONTENT_ENCODING: _header(
            "`gzip` when the body was compressed (bodies over 64 KiB)", enum=["gzip"]
        ),
        **_TRACE_HEADERS,
    },
}

_KV_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        subjects.HEADER_KV_OPERATION: _header(
            "`DEL` or `PURGE` on a deletion marker (empty body); absent on a value",
            enum=["DEL", "PURGE"],
        ),
        subjects.HEADER_EXPECTED_LAST_SUBJECT_SEQ: _header(
            "The key's last sequence the writer knew: a newer writer's entry is never overwritten"
        ),
        subjects.HEADER_OBSERVED_AT: _header("Unix time the Consul change behind it was seen"),
        **_TRACE_HEADERS,
    },
}

_DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["Nodeview-Dead-Letter-Reason", "Nodeview-Original-Subject"],
    "properties": {
        "Nodeview-Dead-Letter-Reason": _header("Why the message could not be handled"),
        "Nodeview-Original-Subject": _header("Subject the message was published on"),
        "Nodeview-Original-Sequence": _header("Its sequence in the NODEVIEW_EVENTS stream"),
    },
    "additionalProperties": _STRING,
}


def _examples() -> dict[str, BaseModel]:
    """One message of each kind, as nodeview writes it."""
    node = NodeView(
        node="prom-rio-01",
        addr="10.0.0.11",
        datacenter="dc1",
        status="alive",
        type="client",
        site_name="Rio",
        site_code="rio",
        services_count=1,
        service_names=("node-exporter",),
        services={"node-exporter-1": ServiceInstance(name="node-exporter", tags=("prom",))},
        consul_index=4711,
        updated_at=EXAMPLE_TIME,
    )
    return {
        "ConsulChange": ConsulChange(
            watch_type="key",
            key="skills/eye/metadata/sites",
            consul_index=4712,
            source="watcher",
            observed_at=EXAMPLE_TIME,
            payload={"Key": "skills/eye/metadata/sites", "Value": "eyJzaXRlcyI6IFtdfQ=="},
            relay_id="relay-0",
        ),
        "ConsulDelta": ConsulDelta(
            watch_type="checks",
            consul_index=4711,
            base_index=4702,
            source="watcher",
            observed_at=EXAMPLE_TIME,
            relay_id="relay-0",
            changed={
                "prom-rio-01": {"Node": "prom-rio-01", "CheckID": "serfHealth", "Status": "passing"}
            },
        ),
        "ResyncRequested": ResyncRequested(
            request_id="5f0c7d0e6a6b4c2f9d3e1a2b3c4d5e6f",
            requested_by="api flush from 127.0.0.1",
            reason="admin flush",
            requested_at=EXAMPLE_TIME,
        ),
        "NodeView": node,
        "ViewMeta": ViewMeta(
            generation=42,
            consul_index=4711,
            main_server="http://consul-0:8500",
            active_server="http://consul-0:8500",
            synced_at=EXAMPLE_TIME,
        ),
        "Heartbeat": Heartbeat(
            enricher_id="enricher-0",
            at=EXAMPLE_TIME,
            interval_seconds=5.0,
            degraded=(DegradedItem(item="members", reason="timeout", since=EXAMPLE_TIME),),
            degraded_total=1,
        ),
    }


_MODELS: tuple[type[BaseModel], ...] = (
    ConsulChange,
    ConsulDelta,
    ResyncRequested,
    NodeView,
    ViewMeta,
    Heartbeat,
)


def _message(
    name: str,
    summary: str,
    payload: dict[str, Any],
    headers: dict[str, Any] | None,
    example: BaseModel | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": content_type,
        "payload": payload,
    }
    if headers is not None:
        message["headers"] = headers
    if example is not None:
        message["examples"] = [{"name": name, "payload": example.model_dump(mode="json")}]
    return message


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _channel(
    address: str,
    description: str,
    message: str,
    parameters: dict[str, Any] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }
    if parameters:
        channel["parameters"] = parameters
    channel.update(
        {f"x-nodeview-{key.replace('_', '-')}": value for key, value in extensions.items()}
    )
    return channel


def _operation(action: str, channel: str, message: str, who: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "summary": summary,
        "x-nodeview-service": who,
    }


def asyncapi_document() -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document of the subjects, events and KV entries, as JSON data."""
    _, definitions = models_json_schema(
        [(model, "serialization") for model in _MODELS], ref_template=REF_TEMPLATE
    )
    schemas = definitions.get("$defs", {})
    examples = _examples()
    events = f"JetStream stream `{subjects.STREAM_EVENTS}`"
    bucket = f"JetStream KV bucket `{subjects.BUCKET_NODES}`"
    key_prefixes = f"`{subjects.NODE_KEY_PREFIX}<name>`"
    encoded = f"`{subjects.NODE_KEY_ENCODED_PREFIX}<base64url name, unpadded>`"
    messages = {
        "ConsulChange": _message(
            "ConsulChange",
            "One whole Consul watch answer (schema 1), with the state it carries",
            _ref(ConsulChange),
            _EVENT_HEADERS,
            examples["ConsulChange"],
        ),
        "ConsulDelta": _message(
            "ConsulDelta",
            "What one whole-list answer changed, item by item, each with its full new state",
            _ref(ConsulDelta),
            _EVENT_HEADERS,
            examples["ConsulDelta"],
        ),
        "ResyncRequested": _message(
            "ResyncRequested",
            "A request for a full resync of the view from Consul",
            _ref(ResyncRequested),
            {"type": "object", "properties": {subjects.HEADER_MSG_ID: _header("`resync:<id>`")}},
            examples["ResyncRequested"],
        ),
        "DeadLetter": _message(
            "DeadLetter",
            "A message the enricher could not handle, unchanged, with why in its headers",
            {"description": "The original body, byte for byte (possibly gzip-compressed)"},
            _DEAD_LETTER_HEADERS,
            content_type="application/octet-stream",
        ),
        "NodeView": _message(
            "NodeView",
            "Everything nodeview knows about one node; an empty body with KV-Operation DEL "
            "when the node left the catalog",
            _ref(NodeView),
            _KV_HEADERS,
            examples["NodeView"],
        ),
        "ViewMeta": _message(
            "ViewMeta",
            "State of the whole view, written after the node entries it describes",
            _ref(ViewMeta),
            _KV_HEADERS,
            examples["ViewMeta"],
        ),
        "Heartbeat": _message(
            "Heartbeat",
            "Liveness and progress of the active enricher",
            _ref(Heartbeat),
            _KV_HEADERS,
            examples["Heartbeat"],
        ),
        "EnricherLock": _message(
            "EnricherLock",
            "Id of the enricher holding the lock (the KV entry has a TTL)",
            {"type": "string"},
            None,
            content_type="text/plain",
        ),
    }
    channels = {
        "consulChange": _channel(
            f"{subjects.SUBJECT_CONSUL_PREFIX}.{{watchType}}",
            f"Consul answers published whole, in the {events}.",
            "ConsulChange",
            {"watchType": {"enum": list(get_args(WatchType)), "description": "Consul watch type"}},
            stream=subjects.STREAM_EVENTS,
        ),
        "consulDelta": _channel(
            f"{subjects.SUBJECT_DELTA_PREFIX}.{{watchType}}",
            f"What a whole-list answer changed, in the {events}.",
            "ConsulDelta",
            {"watchType": {"enum": list(get_args(DeltaType)), "description": "the list's type"}},
            stream=subjects.STREAM_EVENTS,
        ),
        "resyncCommand": _channel(
            subjects.SUBJECT_CMD_RESYNC,
            f"Commands for the enricher, in the {events}.",
            "ResyncRequested",
            stream=subjects.STREAM_EVENTS,
        ),
        "deadLetter": _channel(
            subjects.SUBJECT_DEAD_LETTER,
            f"Poison messages, kept in the JetStream stream `{subjects.STREAM_DEAD_LETTER}`.",
            "DeadLetter",
            stream=subjects.STREAM_DEAD_LETTER,
        ),
        "nodeView": _channel(
            subjects.kv_subject(subjects.BUCKET_NODES, "{nodeKey}"),
            f"One entry per node in the {bucket}; read it with a KV watch (last value per key, "
            "then live updates).",
            "NodeView",
            {
                "nodeKey": {
                    "description": f"{key_prefixes} when the name is made of letters, digits, "
                    f"`_` and `-`; else {encoded}",
                    "examples": [subjects.node_key("prom-rio-01"), subjects.node_key("web.01")],
                }
            },
            bucket=subjects.BUCKET_NODES,
        ),
        "viewMeta": _channel(
            subjects.kv_subject(subjects.BUCKET_NODES, subjects.KEY_META),
            f"The view's meta entry in the {bucket}.",
            "ViewMeta",
            bucket=subjects.BUCKET_NODES,
        ),
        "heartbeat": _channel(
            subjects.kv_subject(subjects.BUCKET_NODES, subjects.KEY_HEARTBEAT),
            f"The active enricher's heartbeat in the {bucket}.",
            "Heartbeat",
            bucket=subjects.BUCKET_NODES,
        ),
        "enricherLock": _channel(
            subjects.kv_subject(subjects.BUCKET_ENRICHER_LOCK, subjects.KEY_ENRICHER_LOCK),
            f"The lock electing the active enricher, in `{subjects.BUCKET_ENRICHER_LOCK}`.",
            "EnricherLock",
            bucket=subjects.BUCKET_ENRICHER_LOCK,
        ),
    }
    operations = {
        "publishChange": _operation(
            "send", "consulChange", "ConsulChange", "relay", "A relay publishes a whole answer"
        ),
        "publishDelta": _operation(
            "send", "consulDelta", "ConsulDelta", "relay", "A relay publishes what a list changed"
        ),
        "requestResync": _operation(
            "send", "resyncCommand", "ResyncRequested", "api, relay", "Ask for a full resync"
        ),
        "consumeChange": _operation(
            "receive",
            "consulChange",
            "ConsulChange",
            "enricher",
            f"Durable consumer `{subjects.CONSUMER_ENRICHER}`, explicit acks",
        ),
        "consumeDelta": _operation(
            "receive",
            "consulDelta",
            "ConsulDelta",
            "enricher",
            f"Durable consumer `{subjects.CONSUMER_ENRICHER}`, explicit acks",
        ),
        "consumeResync": _operation(
            "receive",
            "resyncCommand",
            "ResyncRequested",
            "enricher",
            f"Durable consumer `{subjects.CONSUMER_ENRICHER}`, explicit acks",
        ),
        "deadLetterMessage": _operation(
            "send", "deadLetter", "DeadLetter", "enricher", "Set a poison message aside"
        ),
        "writeNodeView": _operation(
            "send", "nodeView", "NodeView", "enricher", "Write or delete one node's view"
        ),
        "writeViewMeta": _operation(
            "send", "viewMeta", "ViewMeta", "enricher", "Write the meta entry after a commit"
        ),
        "writeHeartbeat": _operation(
            "send", "heartbeat", "Heartbeat", "enricher", "Beat every few seconds"
        ),
        "holdLock": _operation(
            "send", "enricherLock", "EnricherLock", "enricher", "Take or refresh the lock"
        ),
        "readNodeView": _operation(
            "receive", "nodeView", "NodeView", "api", "Replay the bucket, then follow it"
        ),
        "readViewMeta": _operation(
            "receive", "viewMeta", "ViewMeta", "api", "Replay the bucket, then follow it"
        ),
        "readHeartbeat": _operation(
            "receive", "heartbeat", "Heartbeat", "api", "Stale once it is too old"
        ),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "nodeview NATS contract",
            "version": DOCUMENT_VERSION,
            "description": (
                "What nodeview publishes on NATS JetStream and keeps in its KV buckets: Consul "
                "changes from the relay, commands, and the enricher's node views that every API "
                f"replica follows. Change sources: {', '.join(_SOURCES)}. Generated from "
                "contracts/ by `python scripts/export_contracts.py`."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }

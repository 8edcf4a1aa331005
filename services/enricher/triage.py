"""Pure triage of a fetched batch: decode, supersede, spot gaps and poison, before any I/O."""

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts import subjects
from contracts.events import ConsulChange, ConsulDelta, ResyncRequested
from services.bus import decode_body
from services.enricher.planner import newest_of_each

Event = ConsulChange | ConsulDelta
"""What a stream message of a Consul answer decodes to."""


class PoisonMessage(Exception):
    """A message on the stream that no enricher can ever decode."""


@dataclass
class Triage:
    """What to do with each message of one fetch, in stream order."""

    changes: list[Event] = field(default_factory=list)
    resyncs: list[tuple[Msg, ResyncRequested]] = field(default_factory=list)
    """Resync requests with their messages: acknowledged once a resync covered them."""
    to_ack: list[Msg] = field(default_factory=list)
    """Acknowledged once the batch is applied (nacked if applying fails)."""
    dead: list[tuple[Msg, str, str]] = field(default_factory=list)
    """Messages for the dead-letter subject, with reason and detail."""
    contexts: list[dict[str, str]] = field(default_factory=list)
    superseded: int = 0
    """Messages left undecoded because a newer one of the same watched thing is in the batch."""
    late: list[Event] = field(default_factory=list)
    """Redelivered answers already overtaken by what was applied since (not applied again)."""
    redelivered: int = 0
    gap: bool = False
    """A first delivery skipped stream sequences: something may have been lost."""
    last_stream_seq: int = 0
    earliest: datetime | None = None
    """When the relay saw the oldest superseded change (freshness counts from the oldest)."""


def observed_at(msg: Msg) -> datetime | None:
    """When the relay saw the change of a message (its ``Nodeview-Observed-At`` header)."""
    raw = (msg.headers or {}).get(subjects.HEADER_OBSERVED_AT)
    try:
        return datetime.fromtimestamp(float(raw), UTC) if raw else None
    except (ValueError, OverflowError, OSError):
        return None


def superseded_in_batch(msgs: Sequence[Msg]) -> set[int]:
    """Positions of whole answers that a later one of the same ``(type, key)`` supersedes.

    Deltas are never superseded (each names its own items) and never supersede.
    """
    things: list[tuple[str, str | None, int] | None] = []
    for msg in msgs:
        headers = msg.headers or {}
        thing = subjects.parse_msg_id(
            headers.get(subjects.HEADER_MSG_ID, ""), headers.get(subjects.HEADER_PAYLOAD_DIGEST)
        )
        is_change = msg.subject.startswith(subjects.SUBJECT_CONSUL_PREFIX + ".")
        # User events are all decoded: each may carry a resync request of its own.
        things.append(thing if is_change and thing and thing[0] != "event" else None)
    candidates = {position for position, thing in enumerate(things) if thing is not None}
    return candidates - set(newest_of_each(things))


def decode_message(msg: Msg) -> Event | ResyncRequested:
    """Decode one stream message; raise ``PoisonMessage`` when it cannot be decoded."""
    try:
        body = decode_body(msg.data, msg.headers)
        if msg.subject == subjects.SUBJECT_CMD_RESYNC:
            return ResyncRequested.model_validate_json(body)
        if msg.subject.startswith(subjects.SUBJECT_CONSUL_PREFIX + "."):
            return ConsulChange.model_validate_json(body)
        if msg.subject.startswith(subjects.SUBJECT_DELTA_PREFIX + "."):
            return ConsulDelta.model_validate_json(body)
    except (ValidationError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise PoisonMessage(f"undecodable message on {msg.subject}: {exc}") from exc
    raise PoisonMessage(f"unexpected subject {msg.subject}")


def triage(
    msgs: Sequence[Msg],
    *,
    last_stream_seq: int,
    max_deliver: int,
    overtaken: Callable[[Event], bool],
) -> Triage:
    """Sort one fetch into what to apply, acknowledge, dead-letter or skip.

    ``overtaken`` tells a redelivered answer that what was applied since has passed (it would
    otherwise look like Consul's index going backwards).
    """
    out = Triage(last_stream_seq=last_stream_seq)
    superseded = superseded_in_batch(msgs)
    for position, msg in enumerate(msgs):
        meta = msg.metadata
        out.redelivered += meta.num_delivered > 1
        if out.last_stream_seq and meta.sequence.stream > out.last_stream_seq + 1:
            out.gap |= meta.num_delivered == 1
        out.last_stream_seq = max(out.last_stream_seq, meta.sequence.stream)
        if meta.num_delivered > max_deliver:
            out.dead.append((msg, "max_deliver", "delivered too many times"))
            continue
        if msg.headers and subjects.HEADER_TRACEPARENT in msg.headers:
            out.contexts.append(dict(msg.headers))
        if position in superseded:
            # Its state is replaced by a newer message of this batch: no need to decode it.
            out.to_ack.append(msg)
            out.superseded += 1
            seen = observed_at(msg) or meta.timestamp
            out.earliest = min(out.earliest or seen, seen)
            continue
        try:
            item = decode_message(msg)
        except PoisonMessage as exc:
            out.dead.append((msg, "undecodable", str(exc)))
            continue
        if isinstance(item, ResyncRequested):
            out.resyncs.append((msg, item))
            continue
        out.to_ack.append(msg)
        if meta.num_delivered > 1 and overtaken(item):
            out.late.append(item)
        else:
            out.changes.append(item)
    return out

"""The API's event stream (``/api/v1/nodes/events``) as typed events, and its SSE parsing."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from contracts.views import MetaEvent, NodeDeletedEvent, NodeEntry, NodesResponse


@dataclass(frozen=True)
class Snapshot:
    """The whole view: replace what you hold. Every (re)connection starts with one."""

    nodes: NodesResponse


@dataclass(frozen=True)
class NodeChanged:
    """One node's new entry (added or changed)."""

    node: NodeEntry


@dataclass(frozen=True)
class NodeDeleted:
    """A node left the view."""

    node: str
    addr: str


@dataclass(frozen=True)
class MetaChanged:
    """The view moved to a new generation (after the enricher committed a change)."""

    generation: int


NodeEvent = Snapshot | NodeChanged | NodeDeleted | MetaChanged

SHUTDOWN = "shutdown"
"""Last event of a stream whose replica is stopping: the subscription reconnects."""


@dataclass(frozen=True)
class RawEvent:
    """One Server-Sent Event as it came: its name and its data."""

    event: str
    data: str


@dataclass
class SseParser:
    """Turns the lines of a ``text/event-stream`` into events (WHATWG HTML, server-sent events)."""

    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] | None = None

    def feed(self, line: str) -> RawEvent | None:
        """Take one line (without its end); return the event a blank line completes."""
        if line == "":
            if self._data is None:
                self._event = ""
                return None
            event = RawEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data = [*(self._data or []), value]
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


async def raw_events(lines: AsyncIterator[str], parser: SseParser) -> AsyncIterator[RawEvent]:
    """The events of a stream of lines."""
    async for line in lines:
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            yield event


def decode(event: RawEvent) -> NodeEvent | None:
    """The typed event of a raw one; ``None`` for events this client does not know.

    Data that does not fit its model raises ``pydantic.ValidationError``: the server speaks
    another contract, and guessing would hand out a wrong view.
    """
    if event.event == "snapshot":
        return Snapshot(NodesResponse.model_validate_json(event.data))
    if event.event == "node":
        return NodeChanged(NodeEntry.model_validate_json(event.data))
    if event.event == "node_deleted":
        deleted = NodeDeletedEvent.model_validate_json(event.data)
        return NodeDeleted(deleted.node, deleted.addr)
    if event.event == "meta":
        return MetaChanged(MetaEvent.model_validate_json(event.data).generation)
    return None

"""Diffs of whole-list watch answers into what changed, item by item (``ConsulDelta``)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from contracts.events import (
    LIST_TYPES,
    SERF_CHECK,
    ConsulChange,
    ConsulDelta,
    DeltaType,
    item_digest,
    list_digest,
    list_item,
    list_items,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a list answer as nodeview reads it, with its digest."""

    stamp: tuple[int, int] | None
    """Consul's ``(CreateIndex, ModifyIndex)`` of the raw entry: while they stay, so does it."""
    item: Any
    digest: str


Items = dict[str, Entry]
"""A list answer's items by node or service name."""


def _stamp(raw: Any) -> tuple[int, int] | None:
    """The raft indexes of a raw list entry, when it carries both."""
    if not isinstance(raw, dict):
        return None
    created, modified = raw.get("CreateIndex"), raw.get("ModifyIndex")
    if type(created) is int and type(modified) is int:
        return created, modified
    return None


def read_items(watch_type: str, payload: Any, previous: Mapping[str, Entry]) -> Items:
    """The items of a list answer, reusing ``previous`` entries whose raw indexes did not move.

    Consul bumps an entry's ``ModifyIndex`` with every change of it, so an entry with the same
    indexes as before is the same entry: only the entries that changed are reduced and digested,
    which keeps the cost of an answer close to parsing it, whatever the number of nodes.
    """
    if watch_type == "services":
        return {
            name: previous[name]
            if name in previous and previous[name].item == tags
            else Entry(None, tags, item_digest(tags))
            for name, tags in list_items(watch_type, payload).items()
        }
    if not isinstance(payload, list):
        return {}
    items: Items = {}
    for raw in payload:
        stamp = _stamp(raw)
        if stamp is not None:
            node = raw.get("Node")
            kept = previous.get(node) if isinstance(node, str) else None
            if (
                kept is not None
                and kept.stamp == stamp
                and (watch_type != "checks" or raw.get("CheckID") == SERF_CHECK)
            ):
                items[cast("str", node)] = kept
                continue
        pair = list_item(watch_type, raw)
        if pair is not None:
            items[pair[0]] = Entry(stamp, pair[1], item_digest(pair[1]))
    return items


def items_digest(items: Items) -> str:
    """The digest of a whole answer (``ConsulChange.payload_digest`` of the same answer)."""
    return list_digest({key: entry.digest for key, entry in items.items()})


def _same(left: Items, right: Items) -> bool:
    return left.keys() == right.keys() and all(
        entry.digest == right[key].digest for key, entry in left.items()
    )


@dataclass
class Baseline:
    """The last answer of one list published, whole or as a delta."""

    index: int
    items: Items
    stream_seq: int
    source: str
    """Which of the relay's sources delivered it (``watcher`` or ``http``)."""


Plan = ConsulChange | ConsulDelta | Baseline
"""What to publish for an answer: it whole, what it changed, or nothing (the baseline that
already holds it)."""


@dataclass
class Differ:
    """The relay's last published answer of each list watch, to publish only what changed.

    Shared by the watcher and the HTTP handler of one relay (which serialises each list's
    items → plan → publish → ``published``): the same answer from both is published once. The
    baseline moves only once a publish succeeded; after a failed publish, or an answer the
    enricher merges rather than applies (ACL-filtered or empty), there is none and the next
    answer goes out whole.
    """

    baselines: dict[tuple[str, str | None], Baseline] = field(default_factory=dict)

    def items(self, change: ConsulChange) -> Items:
        """The items of an answer, reusing the baseline's unchanged ones.

        Not across an index going backwards: after a snapshot restore the same indexes may
        name other content.
        """
        base = self.baselines.get((change.watch_type, change.datacenter))
        reusable = base.items if base is not None and change.consul_index >= base.index else {}
        return read_items(change.watch_type, change.payload, reusable)

    def plan(self, change: ConsulChange, items: Items) -> Plan:
        """Decide what to publish for one answer, given its items (``items``)."""
        if change.watch_type not in LIST_TYPES:
            return change
        base = self.baselines.get((change.watch_type, change.datacenter))
        if base is None or change.filtered_by_acls or (not items and base.items):
            # First answer, or one the enricher must judge whole: published as it is.
            return change
        if change.consul_index < base.index:
            # From the same source, Consul's index went backwards: a reset, sent whole. From
            # the other source it is only a late copy of what the baseline already passed.
            return change if change.source == base.source else base
        if change.consul_index == base.index:
            # The same answer from another source, or a reused index after a reset.
            return base if _same(items, base.items) else change
        changed = {
            key: entry.item
            for key, entry in items.items()
            if (before := base.items.get(key)) is None or before.digest != entry.digest
        }
        removed = tuple(sorted(base.items.keys() - items.keys()))
        if not changed and not removed and change.watch_type != "services":
            return base
        return ConsulDelta(
            watch_type=cast("DeltaType", change.watch_type),
            consul_index=change.consul_index,
            base_index=base.index,
            datacenter=change.datacenter,
            source=change.source,
            observed_at=change.observed_at,
            relay_id=change.relay_id,
            changed=changed,
            removed=removed,
        )

    def published(self, change: ConsulChange, items: Items, stream_seq: int) -> None:
        """Make an answer the baseline once it (or its delta) is in the stream."""
        if change.watch_type not in LIST_TYPES:
            return
        key = (change.watch_type, change.datacenter)
        if change.filtered_by_acls or not items:
            # The enricher merges such an answer instead of applying it: what it left out
            # cannot be diffed against. The next answer goes out whole.
            self.baselines.pop(key, None)
            return
        self.baselines[key] = Baseline(change.consul_index, items, stream_seq, change.source)

    def failed(self, change: ConsulChange) -> None:
        """A publish failed: it may still have been stored, so the next answer goes out whole."""
        self.baselines.pop((change.watch_type, change.datacenter), None)

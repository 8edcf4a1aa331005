"""Diffs of whole-list watch answers into what changed, item by item (``ConsulDelta``)."""

from dataclasses import dataclass, field
from typing import Any, cast

from contracts.events import LIST_TYPES, ConsulChange, ConsulDelta, DeltaType


@dataclass
class Baseline:
    """The last answer of one list published, whole or as a delta."""

    index: int
    items: dict[str, Any]
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
    plan → publish → ``published``): the same answer from both is published once. The
    baseline moves only once a publish succeeded; after a failed publish, or an answer the
    enricher merges rather than applies (ACL-filtered or empty), there is none and the next
    answer goes out whole.
    """

    baselines: dict[tuple[str, str | None], Baseline] = field(default_factory=dict)

    def plan(self, change: ConsulChange, items: dict[str, Any]) -> Plan:
        """Decide what to publish for one answer, given its items (``list_items``)."""
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
            return base if items == base.items else change
        changed = {key: value for key, value in items.items() if base.items.get(key) != value}
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

    def published(self, change: ConsulChange, items: dict[str, Any], stream_seq: int) -> None:
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

"""Pure planning: coalesce a burst of changes, apply the state they carry, list the reads left."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeVar

from contracts.events import ConsulChange
from services.enricher import degraded
from services.enricher.inventory import (
    BadConsulPayload,
    Inventory,
    health_status,
    parse_catalog_nodes,
    parse_health_service,
    parse_members,
    parse_serf_health,
    parse_service_tags,
    replace_service,
)
from services.enricher.sites import BadSitesDocument, SitesMap, decode_kv_value, parse_sites

Outcome = Literal[
    "applied", "duplicate", "superseded", "backwards", "ignored", "bad_payload", "refused"
]
"""``refused``: an answer that would empty a list nodeview holds (an ACL token that lost its
rights answers 200 with nothing): never applied, shown as degraded until a sound answer comes."""

OTHER_ORIGIN_TOLERANCE = timedelta(seconds=1)
"""A lower index from another observer read this much later than the higher one is a reset
(beyond the clock skew between relay pods); read earlier, it is only a late answer."""

NOT_RECORDED: frozenset[Outcome] = frozenset({"bad_payload", "ignored", "refused"})
"""Outcomes whose index is not recorded: a good copy of the same change from another source
must still apply, and things nodeview does not watch leave no state behind."""

Value = TypeVar("Value")


class ResyncReason(StrEnum):
    """Why the view is read from Consul whole; the value is the ``reason`` metric label."""

    START = "start"
    TAKEOVER = "takeover"
    RECONNECT = "reconnect"
    NATS_ERROR = "nats_error"
    STREAM_LOST = "stream_lost"
    STREAM_GAP = "stream_gap"
    DEAD_LETTERED = "dead_lettered"
    PERIODIC = "periodic"
    DEGRADED_ANSWER = "degraded_answer"
    INDEX_RESET = "index_reset"
    COMPACTION = "compaction"
    USER_EVENT = "user_event"
    REQUESTED = "requested"


_TYPE_ORDER = {"members": 0, "nodes": 1, "checks": 2, "services": 3, "service": 4, "key": 5}


@dataclass
class EnricherState:
    """Everything the enricher keeps between batches (in memory; rebuilt by a resync)."""

    inventory: Inventory = field(default_factory=Inventory)
    sites: SitesMap = field(default_factory=SitesMap)
    seen_index: dict[tuple[str, str | None], int] = field(default_factory=dict)
    """(type, key) → highest Consul index already reflected, from events or reads."""
    event_index: dict[tuple[str, str | None], int] = field(default_factory=dict)
    """(type, key) → index of the last change event applied, to see indexes going backwards."""
    event_source: dict[tuple[str, str | None], str] = field(default_factory=dict)
    """(type, key) → origin of that event: the same origin going backwards is a reset."""
    event_observed: dict[tuple[str, str | None], datetime] = field(default_factory=dict)
    """(type, key) → when that event was observed, to tell a late answer from a reset."""
    item_index: dict[tuple[str, str], int] = field(default_factory=dict)
    """(type, node or service name) → index of the delta that last set that item; only items
    changed since the last whole list of their type are kept."""
    last_event_ltime: int = 0
    datacenter: str | None = None
    """The datacenter the catalog belongs to, learnt from a resync's nodes."""

    def rebase(self, read: Mapping[tuple[str, str | None], int]) -> None:
        """After an index reset, make the resync's read indexes the baseline of every thing."""
        # The old indexes mean nothing after a reset: kept, every other watched thing would in
        # turn look like it went backwards (one resync each), and one the resync did not read
        # would ignore its changes until its index passed the old value. User events keep
        # their own order (Lamport times, not indexes).
        for key in [k for k in self.event_index if k[0] != "event"]:
            del self.event_index[key]
            self.event_source.pop(key, None)
            self.event_observed.pop(key, None)
        for key in [k for k in self.seen_index if k[0] != "event"]:
            del self.seen_index[key]
        self.item_index.clear()
        self.seen_index.update(read)

    def settle(self, read: Mapping[tuple[str, str | None], int]) -> None:
        """After a full resync, make its read indexes the truth for what it read.

        An index above what Consul itself answered can only come from a bogus or pre-reset
        event: kept, it would mark every later real change as superseded. Things the resync did
        not read start afresh, which also bounds what posted ``?key=``/``?service=`` leave here.
        """
        for key in [k for k in self.event_index if k[0] != "event"]:
            if key not in read or self.event_index[key] > read[key]:
                del self.event_index[key]
                self.event_source.pop(key, None)
                self.event_observed.pop(key, None)
        for key in [k for k in self.seen_index if k[0] != "event" and k not in read]:
            del self.seen_index[key]
        read_types = {watch_type for watch_type, _ in read}
        self.forget_items(read_types, None)
        self.seen_index.update(read)

    def forget_items(self, types: set[str], up_to: int | None) -> None:
        """Drop the item indexes of ``types`` (those up to ``up_to``): a whole list covers them."""
        self.item_index = {
            key: index
            for key, index in self.item_index.items()
            if key[0] not in types or (up_to is not None and index > up_to)
        }

    def note_event(
        self, key: tuple[str, str | None], index: int, origin: str, observed: datetime
    ) -> None:
        """Remember the last event of a watched thing: its index, observer and time."""
        self.event_index[key] = index
        self.event_source[key] = origin
        self.event_observed[key] = observed

    def note_newer_event(
        self, key: tuple[str, str | None], index: int, origin: str, observed: datetime
    ) -> None:
        """Remember an event that changed nothing (a read already covered it) if it is newer.

        A relay's answer already covered by a resync's read is still where that relay's index
        stands: its next answer lower than it is Consul's index going backwards.
        """
        last = self.event_index.get(key)
        if last is None or index > last:
            self.note_event(key, index, origin, observed)

    def record_changes(
        self, watch_type: str, old: Mapping[str, object], new: Mapping[str, object], index: int
    ) -> None:
        """Give the items a whole read changed that read's index.

        A later delta diffed from before that read says nothing of such an item when it
        left it out: the item is then read again (see ``apply_delta``).
        """
        for key in old.keys() | new.keys():
            if old.get(key) != new.get(key):
                self.item_index[(watch_type, key)] = max(
                    self.item_index.get((watch_type, key), 0), index
                )

    def newer_items(self, watch_type: str, index: int) -> set[str]:
        """Items of ``watch_type`` that a delta set after ``index``."""
        return {
            key for (kind, key), at in self.item_index.items() if kind == watch_type and at > index
        }


@dataclass
class ReadPlan:
    """Consul reads still needed after applying a batch, and the views that may have changed."""

    members: bool = False
    node_services: set[str] = field(default_factory=set)
    service_names: set[str] = field(default_factory=set)
    services_moved: bool = False
    """The services index moved: an instance may have been added, moved or removed anywhere,
    which the names list cannot show; Consul's summary is read to find where."""
    reread: set[str] = field(default_factory=set)
    """Lists (``nodes``, ``checks``, ``services``) to read whole: a delta could not vouch for
    the items it left out."""
    full_resync: ResyncReason | None = None
    """Why a full resync is needed, or ``None``."""
    index_reset: bool = False
    """A watched thing's index went backwards: the resync's reads become the new baseline."""
    dirty: set[str] = field(default_factory=set)
    all_dirty: bool = False
    degraded: dict[str, str] = field(default_factory=dict)
    """Items (``nodes list``, ``services list``, …) the batch showed to be unsure → why."""
    sound: set[str] = field(default_factory=set)
    """Items the batch showed to be sound again."""

    def needs_reads(self) -> bool:
        """Tell whether any Consul read is planned."""
        return bool(
            self.members
            or self.node_services
            or self.service_names
            or self.services_moved
            or self.reread
            or self.full_resync
        )

    def merge(self, other: "ReadPlan") -> None:
        """Add another plan's reads and dirty nodes to this one."""
        self.members |= other.members
        self.node_services |= other.node_services
        self.service_names |= other.service_names
        self.services_moved |= other.services_moved
        self.reread |= other.reread
        self.full_resync = self.full_resync or other.full_resync
        self.index_reset |= other.index_reset
        self.dirty |= other.dirty
        self.all_dirty |= other.all_dirty
        self.sound = (self.sound - other.degraded.keys()) | other.sound
        for item in other.sound:
            self.degraded.pop(item, None)
        self.degraded.update(other.degraded)


@dataclass(frozen=True)
class Settings:
    """The few settings planning depends on."""

    sites_key: str
    resync_event: str
    datacenter: str | None = None
    """The datacenter served (``CONSUL_DATACENTER``); changes named for another are ignored."""


def newest_of_each(things: Sequence[tuple[str, str | None, int] | None]) -> list[int]:
    """Positions of the newest ``(type, key, index)`` of each watched thing, first seen first."""
    # Newest: the highest index, the later on a tie; for user events the later one.
    # ``None`` marks an entry that is no watched thing: it is never among the positions.
    newest: dict[tuple[str, str | None], tuple[int, int]] = {}
    for position, thing in enumerate(things):
        if thing is None:
            continue
        watch_type, key, index = thing
        current = newest.get((watch_type, key))
        if current is None or watch_type == "event" or index >= current[0]:
            newest[(watch_type, key)] = (index, position)
    return [position for _, position in newest.values()]


def coalesce(changes: Sequence[ConsulChange]) -> list[ConsulChange]:
    """Keep only the newest change of each watched thing, in a stable processing order."""
    kept = newest_of_each([(c.watch_type, c.dedup_key, c.consul_index) for c in changes])
    return sorted((changes[p] for p in kept), key=lambda c: _TYPE_ORDER.get(c.watch_type, 9))


def classify(state: EnricherState, change: ConsulChange) -> Outcome | None:
    """Return why a change must be skipped, or ``None`` when it is new."""
    key = (change.watch_type, change.dedup_key)
    if change.watch_type == "event":
        return "duplicate" if state.event_index.get(key) == change.consul_index else None
    last_event = state.event_index.get(key)
    if last_event is not None and change.consul_index < last_event:
        # Two sources (agent watch and watcher) race: an older index from the other one is
        # late, not a Consul reset.
        # Two observers (agent watch and watcher, or two relays) race: an older index from
        # the other one is late, not a Consul reset — unless it was read clearly later.
        if state.event_source.get(key) == change.origin:
            return "backwards"
        seen_at = state.event_observed.get(key)
        if seen_at is not None and change.observed_at - seen_at > OTHER_ORIGIN_TOLERANCE:
            return "backwards"
        return "superseded"
    seen = state.seen_index.get(key)
    if seen is not None and change.consul_index <= seen:
        return "duplicate" if change.consul_index == last_event else "superseded"
    return None


def apply_change(
    state: EnricherState, change: ConsulChange, settings: Settings, plan: ReadPlan
) -> Outcome:
    """Apply the state a change carries to ``state`` and add the reads it needs to ``plan``."""
    served = settings.datacenter or state.datacenter
    if change.datacenter and served and change.datacenter != served:
        # Another datacenter's catalog must never mix with this one's view.
        return "ignored"
    skip = classify(state, change)
    key = (change.watch_type, change.dedup_key)
    if skip == "backwards":
        plan.full_resync = plan.full_resync or ResyncReason.INDEX_RESET
        plan.index_reset = True
        state.note_event(key, change.consul_index, change.origin, change.observed_at)
        return skip
    if skip is not None:
        if change.watch_type != "event":
            state.note_newer_event(key, change.consul_index, change.origin, change.observed_at)
        return skip
    try:
        outcome = _apply(state, change, settings, plan)
    except (BadConsulPayload, BadSitesDocument):
        outcome = "bad_payload"
    if outcome in NOT_RECORDED:
        return outcome
    state.note_event(key, change.consul_index, change.origin, change.observed_at)
    state.seen_index[key] = change.consul_index
    for node in plan.dirty:
        state.inventory.node_index[node] = max(
            state.inventory.node_index.get(node, 0), change.consul_index
        )
    return outcome


def _apply(
    state: EnricherState, change: ConsulChange, settings: Settings, plan: ReadPlan
) -> Outcome:
    inv = state.inventory
    payload = change.payload
    match change.watch_type:
        case "nodes":
            new = parse_catalog_nodes(payload)
            old = inv.catalog
            if _refused(change, bool(new), bool(old), degraded.NODES_LIST, plan):
                return "refused"
            if change.filtered_by_acls:
                # Nodes the token may not read are left out, not gone: keep them.
                new = {**{n: c for n, c in old.items() if n not in new}, **new}
            _keep_newer(state, change, new, old)
            added = new.keys() - old.keys()
            removed = old.keys() - new.keys()
            moved = {n for n in new.keys() & old.keys() if new[n] != old[n]}
            inv.catalog = new
            for node in removed:
                inv.services.pop(node, None)
                inv.failures.pop(node, None)
            plan.node_services |= added
            disagree = _members_disagreeing(inv, inv.serf_health)
            # A join needs no members read (see ``deltas``); a moved node may have a new address.
            if (removed or moved or disagree) and inv.members is not None:
                plan.members = True
            plan.dirty |= added | removed | moved | disagree
        case "checks":
            health = parse_serf_health(payload)
            if _refused(change, bool(health), bool(inv.serf_health), degraded.CHECKS_LIST, plan):
                return "refused"
            if change.filtered_by_acls:
                health = {**inv.serf_health, **health}
            _keep_newer(state, change, health, inv.serf_health)
            changed = {
                n
                for n in health.keys() | inv.serf_health.keys()
                if health.get(n) != inv.serf_health.get(n)
            }
            inv.serf_health = health
            # Members are read live, so they may be newer than the last checks answer: a node
            # that failed and recovered between two answers shows no serfHealth change, yet the
            # members read in between saw it failed. Any disagreement is read again.
            disagree = _members_disagreeing(inv, health)
            if (changed or disagree) and inv.members is not None:
                plan.members = True
            plan.dirty |= changed | disagree
        case "members":
            members = parse_members(payload)
            old_members = inv.members or {}
            if _refused(change, bool(members), bool(old_members), degraded.MEMBERS, plan):
                return "refused"
            plan.dirty |= {
                n
                for n in members.keys() | old_members.keys()
                if members.get(n) != old_members.get(n)
            }
            inv.members = members
        case "services":
            tags = parse_service_tags(payload)
            old_tags = inv.service_tags
            if _refused(change, bool(tags), bool(old_tags), degraded.SERVICES_LIST, plan):
                return "refused"
            if change.filtered_by_acls:
                tags = {**old_tags, **tags}
            _keep_newer(state, change, tags, old_tags)
            for name in old_tags.keys() - tags.keys():
                plan.dirty |= replace_service(inv.services, name, {})
            changed_names = {n for n in tags if tags.get(n) != old_tags.get(n)}
            # New names are read by name; an instance of a known name may have moved in the
            # same answer whatever the list shows: the summary says where (see ``deltas``).
            plan.service_names |= changed_names - old_tags.keys()
            plan.services_moved = True
            inv.service_tags = tags
        case "service":
            if not change.service:
                raise BadConsulPayload("service change without a service name")
            plan.dirty |= replace_service(
                inv.services, change.service, parse_health_service(payload)
            )
        case "key":
            if change.key != settings.sites_key:
                return "ignored"
            document = decode_kv_value(payload)
            state.sites = SitesMap() if document is None else parse_sites(document)
            plan.all_dirty = True
        case "event":
            return _apply_events(state, payload, settings, plan)
    return "applied"


def _keep_newer(
    state: EnricherState, change: ConsulChange, new: dict[str, Value], old: Mapping[str, Value]
) -> None:
    """Items a delta set after this whole answer was read keep the delta's state."""
    for key in state.newer_items(change.watch_type, change.consul_index):
        if key in old:
            new[key] = old[key]
        else:
            new.pop(key, None)
    state.forget_items({change.watch_type}, change.consul_index)
    state.record_changes(change.watch_type, old, new, change.consul_index)


def _members_disagreeing(inv: Inventory, health: Mapping[str, str]) -> set[str]:
    """Nodes whose live member status the latest answers contradict: read members again.

    Members are read live, so a read can see a node that joined and left between two answers:
    alive there but in no catalog answer, it would stay alive for ever. Likewise a member status
    opposite to its ``serfHealth`` check.
    """
    if inv.members is None:
        return set()
    disagree = {
        name
        for name, member in inv.members.items()
        if member.status == "alive" and name not in inv.catalog
    }
    for node, check in health.items():
        member = inv.members.get(node)
        from_check = health_status(check)
        if member is None or "unknown" in (member.status, from_check):
            continue
        if member.status != from_check:
            disagree.add(node)
    return disagree


def _refused(change: ConsulChange, has_new: bool, has_old: bool, item: str, plan: ReadPlan) -> bool:
    """Tell whether a list answer must not be applied; record what the batch learnt of ``item``.

    A Consul cluster always lists its servers: an empty answer where nodeview holds items means
    an ACL token lost its rights, never an empty cluster. An answer Consul marks as filtered is
    applied without its deletions and stays degraded until an unfiltered one arrives.
    """
    if not has_new and has_old:
        plan.degraded[item] = degraded.EMPTY_ANSWER
        plan.sound.discard(item)
        return True
    if change.filtered_by_acls:
        plan.degraded[item] = degraded.FILTERED_ANSWER
        plan.sound.discard(item)
    else:
        plan.sound.add(item)
        plan.degraded.pop(item, None)
    return False


def _apply_events(
    state: EnricherState, payload: object, settings: Settings, plan: ReadPlan
) -> Outcome:
    if payload is None:
        return "applied"
    if not isinstance(payload, list):
        raise BadConsulPayload("event payload is not a list")
    newest = state.last_event_ltime
    for item in payload:
        if not isinstance(item, dict) or item.get("Name") != settings.resync_event:
            continue
        ltime = item.get("LTime")
        if isinstance(ltime, int) and ltime > state.last_event_ltime:
            newest = max(newest, ltime)
    if newest > state.last_event_ltime:
        state.last_event_ltime = newest
        plan.full_resync = plan.full_resync or ResyncReason.USER_EVENT
    return "applied"

"""Pure application of deltas: what one list answer changed, item by item, in any order."""

from collections.abc import Iterable

from contracts.events import ConsulChange, ConsulDelta
from services.enricher import degraded
from services.enricher.inventory import (
    BadConsulPayload,
    parse_catalog_nodes,
    parse_serf_health,
    parse_service_tags,
    replace_service,
)
from services.enricher.planner import (
    EnricherState,
    Outcome,
    ReadPlan,
    ResyncReason,
    Settings,
    classify,
)

MAX_ITEM_INDEXES = 100_000
"""Per-item indexes kept at most; past it a resync makes the whole lists the baseline again."""


def overtaken(state: EnricherState, event: ConsulChange | ConsulDelta) -> bool:
    """Tell whether a redelivered event is already passed by what was applied since.

    Left to ``apply_*`` it would look like Consul's index going backwards.
    """
    if isinstance(event, ConsulChange):
        return classify(state, event) == "backwards"
    last = state.event_index.get((event.watch_type, None))
    return last is not None and event.consul_index < last


def apply_delta(
    state: EnricherState, delta: ConsulDelta, settings: Settings, plan: ReadPlan
) -> Outcome:
    """Apply what one list answer changed, item by item, to ``state``; add the reads it needs.

    An item applies when the delta is newer than the last whole list of its type and than the
    last delta that set that item. Items a delta leaves out are as they were at its base; where
    the enricher holds a state of one set between the base and this index (by another relay's
    delta, or a whole read that changed it), that list is read whole.
    """
    served = settings.datacenter or state.datacenter
    if delta.datacenter and served and delta.datacenter != served:
        return "ignored"
    key = (delta.watch_type, None)
    last = state.event_index.get(key)
    if (
        last is not None
        and delta.consul_index < last
        and state.event_source.get(key) == delta.origin
    ):
        plan.full_resync = plan.full_resync or ResyncReason.INDEX_RESET
        plan.index_reset = True
        return "backwards"
    if delta.consul_index <= state.seen_index.get(key, 0):
        state.note_newer_event(key, delta.consul_index, delta.origin, delta.observed_at)
        return "superseded"
    try:
        fresh, touched = _apply_items(state, delta, plan)
    except BadConsulPayload:
        return "bad_payload"
    if _omissions_unsure(state, delta):
        plan.reread.add(delta.watch_type)
    state.note_newer_event(key, delta.consul_index, delta.origin, delta.observed_at)
    if len(state.item_index) > MAX_ITEM_INDEXES:
        plan.full_resync = plan.full_resync or ResyncReason.COMPACTION
    item = LIST_ITEMS[delta.watch_type]
    plan.sound.add(item)
    plan.degraded.pop(item, None)
    for node in touched:
        state.inventory.node_index[node] = max(
            state.inventory.node_index.get(node, 0), delta.consul_index
        )
    return "applied" if fresh or delta.moved_only else "superseded"


LIST_ITEMS = {
    # The degraded item of each list a delta or a read can leave unsure.
    "nodes": degraded.NODES_LIST,
    "checks": degraded.CHECKS_LIST,
    "services": degraded.SERVICES_LIST,
}


def _omissions_unsure(state: EnricherState, delta: ConsulDelta) -> bool:
    """Tell whether an item the delta leaves out may hold a state set after its base."""
    low, high = delta.base_index, delta.consul_index
    named = delta.changed.keys() | set(delta.removed)
    return any(
        kind == delta.watch_type and low < at < high and key not in named
        for (kind, key), at in state.item_index.items()
    )


def _fresh_items(state: EnricherState, delta: ConsulDelta, keys: Iterable[str]) -> list[str]:
    """The items of a delta newer than what set them last; their index becomes the delta's."""
    fresh = []
    for key in keys:
        item = (delta.watch_type, key)
        if state.item_index.get(item, 0) < delta.consul_index:
            state.item_index[item] = delta.consul_index
            fresh.append(key)
    return fresh


def _apply_items(state: EnricherState, delta: ConsulDelta, plan: ReadPlan) -> tuple[bool, set[str]]:
    """Apply a delta's fresh items; return whether any was fresh and the nodes touched.

    Everything is parsed before any index is recorded: a bad copy leaves none behind.
    """
    inv = state.inventory
    touched: set[str] = set()
    match delta.watch_type:
        case "nodes":
            parsed = parse_catalog_nodes(list(delta.changed.values()))
            changed = _fresh_items(state, delta, parsed)
            removed = _fresh_items(state, delta, delta.removed)
            joined = set(changed) - inv.catalog.keys()
            inv.catalog.update({name: parsed[name] for name in changed})
            plan.node_services |= joined
            for name in removed:
                inv.catalog.pop(name, None)
                inv.services.pop(name, None)
                inv.failures.pop(name, None)
                inv.node_index.pop(name, None)
            # A node gone from the catalog may still be a member: one members read gives its
            # "left" (and that of any node that joined and left between two answers, which no
            # delta names). A joined node needs none: its serfHealth check (the checks delta of
            # the same write) gives its status and its services say whether it is a server, so
            # a join costs one read of its own size, not one of the whole gossip pool.
            plan.members |= bool(removed) and inv.members is not None
        case "checks":
            health = parse_serf_health(list(delta.changed.values()))
            changed = _fresh_items(state, delta, health)
            removed = _fresh_items(state, delta, delta.removed)
            inv.serf_health.update({name: health[name] for name in changed})
            for name in removed:
                inv.serf_health.pop(name, None)
        case "services":
            tags = parse_service_tags(delta.changed)
            changed = _fresh_items(state, delta, tags)
            removed = _fresh_items(state, delta, delta.removed)
            # A new name is read by name. Whatever else the answer shows, the index moved over
            # every write since its base: an instance of a known name may have been added,
            # removed or re-tagged anywhere in the same answer, which the names list cannot
            # show. Consul's summary, read beside the reads by name, tells where.
            plan.service_names |= set(changed) - inv.service_tags.keys()
            plan.services_moved = True
            inv.service_tags.update({name: tags[name] for name in changed})
            for name in removed:
                inv.service_tags.pop(name, None)
                touched |= replace_service(inv.services, name, {})
    if delta.watch_type != "services":
        touched = set(changed) | set(removed)
    plan.dirty |= touched
    return bool(changed or removed), touched

"""What the enricher cannot vouch for right now: items with a public reason and a start time."""

from datetime import datetime

from contracts.events import utc_now
from contracts.views import DegradedItem

MAX_DEGRADED_ITEMS = 50
"""Items published in the heartbeat at most (the oldest first); their count goes whole."""

RESYNC = "resync"
MEMBERS = "members"
NODES_LIST = "nodes list"
SERVICES_LIST = "services list"
CHECKS_LIST = "checks list"
SERVICE_INSTANCES = "service instances"
"""Where service instances moved could not be read: counts may be out of date until it is."""

EMPTY_ANSWER = "Consul answered an empty list (check the ACL token); view kept"
"""Why an empty list answer is refused: a token that lost its rights, never an empty cluster."""

FILTERED_ANSWER = "Consul's ACLs filtered the answer; items left out are kept"
"""Why an ACL-filtered answer is degraded: what it leaves out is hidden, not gone."""

LISTS = (MEMBERS, NODES_LIST, SERVICES_LIST, CHECKS_LIST)
"""Items that only a new read heals (a token's rights coming back moves no Consul index)."""


def service_item(name: str) -> str:
    """The item of one service name whose instances could not be read."""
    return f"service {name}"


class Degradation:
    """Open degraded items; an item keeps the time it first went wrong until it is cleared."""

    def __init__(self) -> None:
        self._items: dict[str, DegradedItem] = {}

    def mark(self, item: str, reason: str, now: datetime | None = None) -> None:
        """Record that ``item`` cannot be vouched for, keeping when it started."""
        current = self._items.get(item)
        since = current.since if current is not None else (now or utc_now())
        self._items[item] = DegradedItem(item=item, reason=reason, since=since)

    def clear(self, item: str) -> None:
        """Record that ``item`` is fine again."""
        self._items.pop(item, None)

    def since(self, item: str) -> datetime | None:
        """When ``item`` went wrong, or ``None`` while it is fine."""
        current = self._items.get(item)
        return current.since if current is not None else None

    def any_of(self, items: tuple[str, ...]) -> bool:
        """Tell whether any of ``items`` is open."""
        return any(item in self._items for item in items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> tuple[DegradedItem, ...]:
        """The open items, oldest first, at most ``MAX_DEGRADED_ITEMS``."""
        ordered = sorted(self._items.values(), key=lambda i: (i.since, i.item))
        return tuple(ordered[:MAX_DEGRADED_ITEMS])

"""Writing a commit's views: bounded concurrency, and the node gauges kept in step."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from contracts.views import NodeView
from services import metrics

MAX_CONCURRENT_WRITES = 128
"""KV writes awaiting their acknowledgement at once during one commit."""


@dataclass
class NodeGauges:
    """Counts behind the node gauges, kept in step with each write instead of recounted."""

    by_status: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    @classmethod
    def of(cls, views: Iterable[NodeView]) -> "NodeGauges":
        """Count a whole set of views."""
        gauges = cls()
        for view in views:
            gauges.replace(None, view)
        return gauges

    def replace(self, old: NodeView | None, new: NodeView | None) -> None:
        """Account for one view replaced (``None``: none before, or none after)."""
        if old is not None:
            self.by_status[old.status] -= 1
            self.errors -= old.services_status == "error"
        if new is not None:
            self.by_status[new.status] += 1
            self.errors += new.services_status == "error"

    def export(self) -> None:
        """Set the Prometheus gauges from the counts."""
        metrics.set_node_counts(self.by_status, self.errors)


async def bounded_all(writes: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run the writes, ``MAX_CONCURRENT_WRITES`` at a time; after a failure start no more."""
    limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)
    failures: list[BaseException] = []

    async def run(write: Callable[[], Awaitable[None]]) -> None:
        async with limit:
            if failures:
                return
            try:
                await write()
            except Exception as exc:  # noqa: BLE001 -- re-raised below, after the others stop
                failures.append(exc)

    await asyncio.gather(*(run(write) for write in writes))
    if failures:
        # The nodes not written stay in ``unwritten`` and go out with the next commit.
        raise failures[0]

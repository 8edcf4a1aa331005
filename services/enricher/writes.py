"""Writing a commit's views with bounded concurrency."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

MAX_CONCURRENT_WRITES = 128
"""KV writes awaiting their acknowledgement at once during one commit."""


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

"""Stopping a task that swallows one cancellation, as nats-py's connect loop can."""

import asyncio

from services.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_still_ends() -> None:
    """The first cancellation is caught and the loop goes on; the next one ends the task."""
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, within=5.0)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_a_task_that_never_ends_is_reported() -> None:
    """A task that ignores every cancellation is given up after the bound, not awaited forever."""
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    assert not await cancel_and_wait(task, within=0.5)
    release.set()
    await cancel_and_wait(task, within=1.0)
    assert task.done()

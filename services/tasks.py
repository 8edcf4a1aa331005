"""Stopping background tasks whose libraries may swallow a cancellation (nats-py's connect)."""

import asyncio
import logging

log = logging.getLogger("nodeview")

CANCEL_REPEAT_SECONDS = 0.2
"""How often a task that outlived its cancellation is cancelled again."""


async def cancel_and_wait(task: "asyncio.Task[None]", within: float) -> bool:
    """Cancel ``task`` until it ends, for at most ``within`` seconds; True if it ended.

    nats-py's connect loop catches ``CancelledError`` while it closes a failed attempt, so one
    cancellation can be lost; cancelling again lands elsewhere and ends it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_REPEAT_SECONDS)
    if not task.done():
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "task failed while stopping",
            extra={
                "event": "task.failed",
                "task": task.get_name(),
                "reason": str(task.exception()),
            },
        )
    return True

"""Deterministic bursts of Consul changes applied to the double, with hooks at chosen steps."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from tests.e2e.stack import Stack

Hook = Callable[[], Awaitable[None]]

CHANGE_KINDS = 5
"""One node goes through join, service, fail, second service, then recover or leave."""


def burst_node(prefix: str, step: int) -> str:
    """Name of the node a burst changes at ``step``."""
    return f"{prefix}-{step // CHANGE_KINDS:04d}"


def burst_addr(octet: int, step: int) -> str:
    """Address of the node a burst changes at ``step`` (``octet`` keeps bursts apart)."""
    ordinal = step // CHANGE_KINDS
    return f"127.{octet}.{ordinal // 250}.{ordinal % 250 + 1}"


def apply_change(stack: Stack, prefix: str, octet: int, step: int) -> None:
    """Apply the ``step``-th change of a burst: exactly one write to the double's state."""
    state = stack.consul.state
    node = burst_node(prefix, step)
    match step % CHANGE_KINDS:
        case 0:
            state.join_node(node, burst_addr(octet, step))
        case 1:
            state.register_service(node, "burst-a", "burst_a", tags=("burst",), port=7000)
        case 2:
            state.fail_node(node)
        case 3:
            state.register_service(node, "burst-b", "burst_b", tags=("burst", "b"), port=7001)
        case _:
            if (step // CHANGE_KINDS) % 2:
                state.recover_node(node)
            else:
                state.leave_node(node)


async def burst(
    stack: Stack,
    count: int,
    *,
    prefix: str,
    octet: int,
    pause: float = 0.01,
    hooks: Mapping[int, Hook] | None = None,
) -> None:
    """Apply ``count`` changes, ``pause`` seconds apart, running ``hooks[step]`` before a step."""
    for step in range(count):
        hook = (hooks or {}).get(step)
        if hook is not None:
            await hook()
        apply_change(stack, prefix, octet, step)
        await asyncio.sleep(pause)

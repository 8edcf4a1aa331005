"""The active enricher SIGKILLed in the middle of a slow resync: the standby finishes the work."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack, eventually
from tests.reliability.churn import burst
from tests.reliability.support import (
    assert_nothing_lost,
    converge,
    report,
    supervised,
    wait_until,
)

pytestmark = [pytest.mark.reliability]

NODE_DUMP_LATENCY = 5.0
"""Delay of each ``/v1/internal/ui/nodes`` read (one per resync), so that a resync takes seconds."""


async def _active(stack: Stack) -> str:
    for name in ("enricher-1", "enricher-2"):
        if not stack.processes[name].running:
            continue
        status = (await stack.http.get(stack.url(name) + "/healthz")).json()
        if status["active"]:
            return name
    raise AssertionError("no active enricher")


@pytest.mark.timeout(300)
async def test_active_enricher_killed_mid_resync_the_standby_takes_over(tmp_path: Path) -> None:
    """SIGKILL during a flush-triggered resync: the standby resyncs, the flush still completes."""
    stack = Stack(
        tmp_path,
        nodes=400,
        services=24,
        enrichers=2,
        apis=1,
        extra_env={
            "API_FLUSH_WAIT_TIMEOUT": "120",
            "CONSUL_SEMAPHORE_LIMIT": "2",
        },
    )
    await stack.start()
    try:
        async with supervised(stack):
            await converge(stack, ("api-1",), within=90)
        active = await eventually(lambda: _active(stack))
        standby = "enricher-2" if active == "enricher-1" else "enricher-1"
        offset = len(stack.consul.state.change_log)
        stack.consul.set_latency(NODE_DUMP_LATENCY, path_prefix="/v1/internal/ui/nodes")
        flush = asyncio.create_task(
            stack.http.post(
                stack.url("api-1") + "/api/v1/admin/cache/nodes/flush?wait=true",
                headers={"Authorization": f"Bearer {stack.admin_token}"},
                timeout=httpx.Timeout(150.0),
            )
        )
        counters = stack.consul.counters
        reads_before = counters.total("/v1/internal/ui/nodes")
        # Mid-resync: the lists are read, the node dump is on its way.
        await wait_until(
            lambda: counters.total("/v1/internal/ui/nodes") >= reads_before + 1, within=60
        )
        await asyncio.to_thread(stack.processes[active].stop, kill=True)
        killed_at = time.monotonic()
        await burst(stack, 40, prefix="fo", octet=111)
        assert await eventually(lambda: _active(stack), within=60) == standby
        takeover = round(time.monotonic() - killed_at, 2)
        response = await asyncio.wait_for(flush, 150)
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        stack.consul.clear_faults()
        seconds = await converge(stack, ("api-1",), within=90)
        changes = await assert_nothing_lost(stack, "api-1", offset)
        report(
            "enricher_killed_mid_resync",
            changes_during_failover=changes,
            seconds_to_takeover=takeover,
            seconds_kill_to_converged=round(time.monotonic() - killed_at, 2),
            converge_wait=seconds,
        )
    finally:
        stack.consul.clear_faults()
        await stack.stop()

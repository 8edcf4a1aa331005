"""End to end: the active enricher dies mid-burst and the standby finishes the work."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def _active(stack: Stack) -> str:
    for name in ("enricher-1", "enricher-2"):
        if not stack.processes[name].running:
            continue
        status = (await stack.http.get(stack.url(name) + "/healthz")).json()
        if status["active"]:
            return name
    raise AssertionError("no active enricher")


async def test_killing_the_active_enricher_mid_burst_loses_no_change(tmp_path: Path) -> None:
    """SIGKILL of the active enricher during a burst: the standby takes over and converges."""
    stack = Stack(tmp_path, nodes=60, services=5, enrichers=2, apis=1)
    try:
        await stack.start()
        await eventually(lambda: stack.assert_converged("api-1"))
        active = await eventually(lambda: _active(stack))
        standby = "enricher-2" if active == "enricher-1" else "enricher-1"
        assert not (await stack.http.get(stack.url(standby) + "/healthz")).json()["active"]
        state = stack.consul.state
        for i in range(40):
            state.join_node(f"burst-{i:03d}", f"127.60.0.{i + 1}")
            state.register_service(f"burst-{i:03d}", "svc", "burst", port=9000 + i)
            if i == 10:
                await asyncio.to_thread(stack.processes[active].stop, kill=True)
            if i % 3 == 0:
                state.fail_node(f"burst-{i:03d}")
            await asyncio.sleep(0.01)
        assert await eventually(lambda: _active(stack), within=30) == standby
        await eventually(lambda: stack.assert_converged("api-1"), within=60)
        nodes = await stack.nodes_of("api-1")
        assert nodes["burst-039"]["services_count"] == 1
        assert nodes["burst-000"]["status"] == "dead"
    finally:
        await stack.stop()


async def test_api_reports_stale_when_no_enricher_runs(tmp_path: Path) -> None:
    """With every enricher gone the API keeps serving the last view and flags it stale."""
    stack = Stack(
        tmp_path,
        nodes=10,
        services=2,
        enrichers=1,
        apis=1,
        extra_env={"API_STALE_AFTER_SECONDS": "3"},
    )
    try:
        await stack.start()
        await eventually(lambda: stack.assert_converged("api-1"))
        await asyncio.to_thread(stack.processes["enricher-1"].stop, kill=True)

        async def stale() -> httpx.Response:
            response = await stack.http.get(stack.url("api-1") + "/api/v1/nodes")
            assert response.json()["stale"] is True
            return response

        response = await eventually(stale, within=30)
        assert response.json()["total"] == len(stack.expected())
    finally:
        await stack.stop()

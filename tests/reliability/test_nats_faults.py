"""NATS faults: nats-server killed mid-burst (store kept), and restarted with its store wiped."""

import asyncio
import shutil
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.stack import LOCK_TTL_SECONDS, Stack, eventually
from tests.reliability.churn import burst
from tests.reliability.support import (
    assert_nothing_lost,
    converge,
    report,
    supervised,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

APIS = ("api-1", "api-2")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack (100 nodes, one enricher, two API replicas) shared by the NATS fault tests."""
    running = Stack(tmp_path_factory.mktemp("nats-faults"), nodes=60, services=5)
    await running.start()
    try:
        async with supervised(running):
            await converge(running, APIS)
        yield running
    finally:
        await running.stop()


async def _fresh(stack: Stack, api: str) -> None:
    body = (await stack.http.get(stack.url(api) + "/api/v1/nodes")).json()
    assert body["stale"] is False, body["stale"]


@pytest.mark.timeout(300)
async def test_nats_killed_and_restarted_during_a_burst_loses_no_change(stack: Stack) -> None:
    """SIGKILL of nats-server during 500 changes, restart on the same store: nothing is lost."""
    assert stack.nats is not None
    nats_server = stack.nats
    offset = len(stack.consul.state.change_log)
    restarted_at: list[float] = []

    async def kill() -> None:
        await asyncio.to_thread(nats_server.stop, kill=True)

    async def revive() -> None:
        await asyncio.to_thread(nats_server.start)
        restarted_at.append(time.monotonic())

    started = time.monotonic()
    await burst(stack, 500, prefix="nk", octet=81, hooks={150: kill, 300: revive})
    burst_seconds = round(time.monotonic() - started, 2)
    seconds = await converge(stack, APIS, within=120)
    lost_check = await assert_nothing_lost(stack, "api-2", offset)
    await eventually(lambda: _fresh(stack, "api-1"), within=30)
    assert all(process.running for process in stack.processes.values())
    report(
        "nats_killed_mid_burst",
        changes_injected=lost_check,
        burst_seconds=burst_seconds,
        seconds_to_converge_after_burst=seconds,
        seconds_since_nats_restart=round(time.monotonic() - restarted_at[0], 2),
    )


@pytest.mark.timeout(150)
async def test_enricher_survives_a_nats_outage_longer_than_its_lock_ttl(stack: Stack) -> None:
    """NATS down longer than ENRICHER_LOCK_TTL: the same enricher process takes its lock again."""
    assert stack.nats is not None
    enricher = stack.processes["enricher-1"]
    assert enricher.process is not None
    pid = enricher.process.pid
    generation = (await stack.http.get(stack.url("enricher-1") + "/healthz")).json()["generation"]
    await asyncio.to_thread(stack.nats.stop, kill=True)
    # The outage is the fault under test: it must outlast the lock's TTL.
    await asyncio.sleep(LOCK_TTL_SECONDS + 3)
    await asyncio.to_thread(stack.nats.start)
    stack.consul.state.join_node("after-outage", "127.83.0.1")
    await converge(stack, APIS, within=45)

    async def active_again() -> dict[str, object]:
        status = (await stack.http.get(stack.url("enricher-1") + "/healthz")).json()
        assert status["active"] is True, status
        assert status["generation"] > generation, status
        return dict(status)

    await eventually(active_again, within=45)
    assert enricher.process is not None, "the enricher exited"
    assert enricher.process.pid == pid, "the enricher was restarted instead of surviving"


@pytest.mark.timeout(240)
async def test_nats_store_wiped_while_down_is_detected_and_resynced(stack: Stack) -> None:
    """nats-server restarted with an empty store: streams and bucket come back, full view again."""
    assert stack.nats is not None
    nats_server = stack.nats
    offset = len(stack.consul.state.change_log)
    await asyncio.to_thread(nats_server.stop, kill=True)
    shutil.rmtree(nats_server.store_dir)
    await burst(stack, 50, prefix="nw", octet=82)
    await asyncio.to_thread(nats_server.start)
    started = time.monotonic()
    seconds = await converge(stack, APIS, within=90)
    await assert_nothing_lost(stack, "api-1", offset)
    await eventually(lambda: _fresh(stack, "api-2"), within=30)
    assert all(process.running for process in stack.processes.values())
    report(
        "nats_store_wiped",
        changes_injected_while_down=len(stack.consul.state.change_log) - offset,
        seconds_to_converge_after_restart=round(time.monotonic() - started, 2),
        converge_wait=seconds,
    )

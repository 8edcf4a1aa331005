"""Start-up and shutdown as Kubernetes drives them: health at once, ready when ready, SIGTERM."""

import asyncio
import functools
import time
from pathlib import Path

import httpx
import pytest

from devstack.nats import NatsServer, free_port
from tests.e2e.stack import LOCK_TTL_SECONDS, Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DRAIN_SECONDS = 3
"""SHUTDOWN_DRAIN_SECONDS of the processes here."""

SERVICES = {
    "relay": (["relay", "watch"], "RELAY_PORT"),
    "enricher-1": (["enricher"], "ENRICHER_PORT"),
    "api-1": (["api"], "API_PORT"),
}


async def _probe(stack: Stack, name: str, path: str) -> httpx.Response:
    return await stack.http.get(stack.url(name) + path, timeout=2.0)


async def test_every_service_answers_health_at_once_and_is_ready_when_nats_appears(
    tmp_path: Path,
) -> None:
    """NATS unreachable: /healthz 200, /readyz 503 with why; NATS appears: ready, no restart."""
    stack = Stack(tmp_path, nodes=10, services=2)
    nats_port = free_port()
    await stack.start_parts(NatsServer(tmp_path / "js", port=nats_port))
    assert stack.nats is not None
    stack.nats.stop()
    env = {"SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    try:
        started = time.monotonic()
        for name, (args, port_var) in SERVICES.items():
            stack.add(name, args, port_var, env)
        pids = {name: stack.processes[name].process.pid for name in SERVICES}  # type: ignore[union-attr]

        async def alive_not_ready(name: str) -> None:
            assert (await _probe(stack, name, "/healthz")).status_code == 200
            ready = await _probe(stack, name, "/readyz")
            assert ready.status_code == 503, ready.text
            assert "NATS" in ready.json()["reason"], ready.text

        for name in SERVICES:
            await eventually(functools.partial(alive_not_ready, name), within=30)
        seconds_to_health = round(time.monotonic() - started, 2)
        await asyncio.to_thread(stack.nats.start)
        for name in SERVICES:
            await asyncio.to_thread(stack.processes[name].wait_ready)
        await eventually(lambda: stack.assert_converged("api-1"), within=60)
        for name in SERVICES:
            process = stack.processes[name].process
            assert process is not None, f"{name} exited"
            assert process.pid == pids[name], f"{name} was restarted"
        print(f"lifecycle: health within {seconds_to_health} s of start, NATS unreachable")
    finally:
        await stack.stop()


@pytest.mark.parametrize("name", list(SERVICES))
async def test_sigterm_while_connecting_exits_zero_within_the_drain_time(
    tmp_path: Path, name: str
) -> None:
    """SIGTERM while NATS is still unreachable: the process exits 0 within the drain time."""
    stack = Stack(tmp_path, nodes=5, services=1)
    await stack.start_parts(NatsServer(tmp_path / "js"))
    assert stack.nats is not None
    stack.nats.stop()
    try:
        args, port_var = SERVICES[name]
        stack.add(name, args, port_var, {"SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)})
        await eventually(lambda: _healthy(stack, name), within=30)
        started = time.monotonic()
        code = await asyncio.to_thread(stack.processes[name].stop, timeout=30.0)
        seconds = time.monotonic() - started
        assert code == 0, (name, code, stack.processes[name].log_text()[-2000:])
        assert seconds < DRAIN_SECONDS + 10, seconds
    finally:
        await stack.stop()


async def _healthy(stack: Stack, name: str) -> None:
    assert (await _probe(stack, name, "/healthz")).status_code == 200


async def test_sigterm_while_serving_drains_streams_and_hands_the_lock_over(
    tmp_path: Path,
) -> None:
    """Serving: SIGTERM ends SSE streams with a final event, exits 0; a standby takes over."""
    stack = Stack(
        tmp_path,
        nodes=10,
        services=2,
        enrichers=2,
        apis=1,
        extra_env={"SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)},
    )
    await stack.start()
    try:
        await eventually(lambda: stack.assert_converged("api-1"), within=60)
        active = await eventually(lambda: _active(stack), within=60)
        standby = "enricher-2" if active == "enricher-1" else "enricher-1"
        started = time.monotonic()
        assert await asyncio.to_thread(stack.processes[active].stop, timeout=30.0) == 0
        assert await eventually(lambda: _active(stack), within=60) == standby
        takeover = round(time.monotonic() - started, 2)
        stack.consul.state.join_node("after-handover", "127.73.0.1")
        await eventually(lambda: stack.assert_converged("api-1"), within=60)

        events: list[str] = []

        async def listen() -> None:
            url = stack.url("api-1") + "/api/v1/nodes/events"
            async with (
                httpx.AsyncClient(timeout=60.0) as client,
                client.stream("GET", url) as response,
            ):
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        events.append(line.removeprefix("event: "))

        listener = asyncio.create_task(listen())

        async def subscribed() -> None:
            assert events[:1] == ["snapshot"]

        await eventually(subscribed, within=30)
        code = await asyncio.to_thread(stack.processes["api-1"].stop, timeout=30.0)
        await asyncio.wait_for(listener, 30)
        assert code == 0
        assert events[-1] == "shutdown", events
        print(
            f"lifecycle: standby active {takeover} s after SIGTERM, lock TTL {LOCK_TTL_SECONDS} s"
        )
    finally:
        await stack.stop()


async def _active(stack: Stack) -> str:
    for name in ("enricher-1", "enricher-2"):
        if not stack.processes[name].running:
            continue
        status = (await _probe(stack, name, "/healthz")).json()
        if status["active"]:
            return name
    raise AssertionError("no active enricher")

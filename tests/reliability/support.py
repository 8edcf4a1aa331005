"""Shared helpers of the reliability suite: extra processes, the nothing-lost check, figures."""

import asyncio
import contextlib
import functools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from devstack.nats import NatsServer, free_port
from devstack.processes import ServiceProcess, nodeview_command
from tests.e2e.stack import HOST, Stack, eventually

REPORT_ENV = "RELIABILITY_REPORT_FILE"
"""When set, every scenario appends its figures (JSON lines) to this file."""

_NODE_IN_CHANGE = re.compile(r"(?:node|on|from|of) ([^\s()]+)")


def report(scenario: str, **figures: Any) -> None:
    """Record the figures of one scenario (changes, faults, seconds to converge)."""
    line = json.dumps({"scenario": scenario, **figures}, default=str)
    print(f"reliability: {line}")
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def add_process(
    stack: Stack,
    name: str,
    args: list[str],
    port_var: str,
    env: Mapping[str, str] | None = None,
    *,
    drop: Iterable[str] = (),
) -> ServiceProcess:
    """Start one more process like ``Stack.add``, leaving out the variables named in ``drop``."""
    port = free_port()
    dropped = set(drop)
    full = {**stack.env(), **stack.role_env(name), port_var: str(port), **(env or {})}
    process = ServiceProcess(
        name,
        args,
        {k: v for k, v in full.items() if k not in dropped},
        health_url=f"http://{HOST}:{port}",
        log_dir=stack.tmp / "logs",
    )
    stack.processes[name] = process.start()
    return process


async def converge(stack: Stack, apis: Iterable[str], within: float = 60.0) -> float:
    """Wait until every named replica equals the double's state; return the seconds it took."""
    started = time.monotonic()
    for api in apis:
        await eventually(functools.partial(stack.assert_converged, api), within=within)
    return round(time.monotonic() - started, 2)


def touched_nodes(stack: Stack, offset: int) -> set[str]:
    """Names of the nodes the double's change log mentions from ``offset`` on."""
    names: set[str] = set()
    known = set(stack.consul.state.members) | set(stack.consul.state.nodes)
    for record in stack.consul.state.change_log[offset:]:
        for match in _NODE_IN_CHANGE.finditer(record.description):
            if match.group(1) in known:
                names.add(match.group(1))
    return names


async def assert_nothing_lost(stack: Stack, api: str, offset: int) -> int:
    """Every node changed since ``offset`` shows its last state (status, service names) in ``api``.

    Returns the number of changes the double logged since ``offset``.
    """
    view = await stack.nodes_of(api)
    state = stack.consul.state
    expected = stack.expected()
    for node in touched_nodes(stack, offset):
        if node not in expected:
            assert node not in view, (node, "gone from Consul but still in the view")
            continue
        assert node in view, (node, "changed in Consul but missing from the view")
        want_names = sorted(
            {svc.name for svc in state.services.get(node, {}).values()} - {"consul"}
        )
        got = view[node]
        assert got["status"] == expected[node]["status"], (node, got["status"])
        assert sorted(set(got["service_names"]) - {"consul"}) == want_names, (
            node,
            got["service_names"],
            want_names,
        )
    return len(state.change_log) - offset


async def nats_client(stack: Stack, **options: Any) -> Client:
    """Open a NATS connection to the stack's server (closed by the caller)."""
    assert stack.nats is not None
    return await nats.connect(stack.nats.url, connect_timeout=5, **options)


def run_handler(
    stack: Stack,
    args: list[str],
    body: bytes,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``nodeview relay handle ARGS`` as Consul's script handler would (blocking)."""
    return subprocess.run(
        nodeview_command("relay", "handle", *args),
        input=body,
        env={**os.environ, **stack.env(), **(env or {})},
        capture_output=True,
        timeout=timeout,
        check=False,
    )


async def handler(
    stack: Stack, args: list[str], body: bytes, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``run_handler`` off the event loop (the double keeps answering meanwhile)."""
    return await asyncio.to_thread(run_handler, stack, args, body, env)


@dataclass
class RequestRate:
    """Requests the double counted over a measured window."""

    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Average requests per second over the window."""
        return self.requests / self.seconds if self.seconds else 0.0


async def measure_requests(stack: Stack, seconds: float) -> RequestRate:
    """Count the requests every client sends to the double during ``seconds``."""
    before = stack.consul.counters.total()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    return RequestRate(stack.consul.counters.total() - before, time.monotonic() - started)


async def wait_until(check: Callable[[], bool], within: float, interval: float = 0.02) -> None:
    """Wait until a plain condition holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


async def restart(process: ServiceProcess, *, kill: bool = False) -> None:
    """Stop a process (SIGTERM, or SIGKILL) and start it again with the same environment."""
    await asyncio.to_thread(process.stop, kill=kill)
    process.start()
    await asyncio.to_thread(process.wait_ready)


@contextlib.asynccontextmanager
async def supervised(stack: Stack, interval: float = 0.5) -> AsyncIterator[Counter[str]]:
    """Restart stack processes that exit, as Kubernetes would, and fail if any had to be.

    A crash that a restart hides is still a crash: the block passes only when no process exited.
    """
    restarts: Counter[str] = Counter()
    expected = [name for name, process in stack.processes.items() if process.running]

    async def watch() -> None:
        while True:
            for name in expected:
                process = stack.processes[name]
                if not process.running:
                    restarts[name] += 1
                    await asyncio.to_thread(process.stop)
                    process.start()
            await asyncio.sleep(interval)

    task = asyncio.create_task(watch())
    try:
        yield restarts
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not restarts, f"processes exited and were restarted: {dict(restarts)}"


def log_text(stack: Stack) -> str:
    """Everything every process of the stack (and nats-server) wrote so far."""
    parts = [p.log_text() for p in stack.processes.values()]
    nats_log = stack.tmp / "nats.log"
    if nats_log.exists():
        parts.append(nats_log.read_text(errors="replace"))
    return "\n".join(parts)


async def start_with_nats(stack: Stack, server: NatsServer) -> Stack:
    """Start a stack on a nats-server the caller configured (auth), as ``Stack.start`` does."""
    await stack.start_parts(server)
    return await stack.start_processes()


def tmp_file(directory: Path, name: str, text: str) -> Path:
    """Write a file readable only by its owner (a secret file) and return its path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path

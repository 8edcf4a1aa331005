"""Liveness of the Consul servers that hold blocking queries: a silent one is given up."""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

import httpx

log = logging.getLogger("nodeview.consul")

T = TypeVar("T")

PROBE_INTERVAL_SECONDS = 1.0
"""How often a server holding blocking queries is asked ``/v1/status/leader``."""

PROBE_TIMEOUT_SECONDS = 2.0
"""A server that does not answer its probe within this is unresponsive (blackholed, hung)."""


class ServerUnresponsive(Exception):
    """A server holding a blocking query stopped answering its probes."""


class ServerProbe:
    """Probes the servers that hold blocking queries and abandons the queries of a silent one.

    A blocking query waits minutes by design, so a server that accepts connections but never
    answers would hold it for the whole wait; its probe, short and frequent, tells sooner.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        interval: float = PROBE_INTERVAL_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._http = http
        self._interval = interval
        self._timeout = timeout
        self._holding: Counter[str] = Counter()
        self._silent: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    async def guard(self, server: str, request: Awaitable[T]) -> T:
        """Await a blocking request on ``server``; ``ServerUnresponsive`` once it goes silent."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="consul-probe")
        silent = self._silent.setdefault(server, asyncio.Event())
        answer = asyncio.ensure_future(request)
        if silent.is_set():
            answer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answer
            raise ServerUnresponsive(server)
        self._holding[server] += 1
        gone = asyncio.ensure_future(silent.wait())
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            if answer.done():
                return answer.result()
            raise ServerUnresponsive(server)
        finally:
            self._holding[server] -= 1
            for task in (answer, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _run(self) -> None:
        """Probe, every interval, the servers holding queries and those found silent."""
        while True:
            await asyncio.sleep(self._interval)
            servers = {s for s, n in self._holding.items() if n > 0}
            servers |= {s for s, event in self._silent.items() if event.is_set()}
            for server in sorted(servers):
                silent = self._silent.setdefault(server, asyncio.Event())
                if await self._answers(server):
                    silent.clear()
                elif not silent.is_set():
                    log.warning(
                        "consul server unresponsive; giving up its blocking queries",
                        extra={"event": "consul.server_unresponsive", "server": server},
                    )
                    silent.set()

    async def _answers(self, server: str) -> bool:
        """Tell whether ``server`` answers its status endpoint in time (any HTTP answer)."""
        try:
            await self._http.get(server + "/v1/status/leader", timeout=self._timeout)
        except httpx.HTTPError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

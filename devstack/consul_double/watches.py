"""Consul agent watches: blocking-query plans that invoke script or HTTP handlers on change."""

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from devstack.consul_double.durations import parse_duration
from devstack.consul_double.errors import BadDuration, BadWatchDefinition
from devstack.consul_double.records import event_index

logger = logging.getLogger(__name__)

RETRY_INTERVAL_SECONDS = 5.0
"""Base of the plan's quadratic back-off after a failed query (Consul: 5 s)."""

MAX_BACKOFF_SECONDS = 180.0
"""Largest back-off between failed queries (Consul: 180 s)."""

DEFAULT_HTTP_HANDLER_TIMEOUT = "10s"
"""Timeout of an HTTP handler call when the definition sets none (Consul: 10 s)."""

WATCH_TYPES = ("key", "keyprefix", "services", "nodes", "service", "checks", "event")
"""Watch types supported (Consul's blocking-index watch types)."""

_UNSET: Any = object()


class WatchQueryFailed(Exception):
    """The blocking query behind a watch answered with an error status."""


@dataclass(frozen=True)
class WatchPlan:
    """One watch definition turned into the query it runs and the handler it invokes."""

    type: str
    path: str
    params: dict[str, str]
    definition: dict[str, Any] = field(repr=False)

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> "WatchPlan":
        """Validate an agent-config watch stanza and derive its endpoint."""
        kind = definition.get("type")
        if kind not in WATCH_TYPES:
            raise BadWatchDefinition(f"unsupported watch type {kind!r}")
        handler_type = definition.get("handler_type", "script")
        if handler_type == "script" and not (definition.get("args") or definition.get("handler")):
            raise BadWatchDefinition("a script watch needs 'args' (or 'handler')")
        if handler_type == "http" and not (definition.get("http_handler_config") or {}).get("path"):
            raise BadWatchDefinition("an http watch needs http_handler_config.path")
        if handler_type not in ("script", "http"):
            raise BadWatchDefinition(f"unsupported handler_type {handler_type!r}")
        path, params = _endpoint(str(kind), definition)
        if definition.get("stale") and kind != "event":
            params["stale"] = ""
        if definition.get("datacenter"):
            params["dc"] = str(definition["datacenter"])
        return cls(str(kind), path, params, dict(definition))


def _need(definition: dict[str, Any], name: str) -> str:
    """A required string parameter of a watch type."""
    value = definition.get(name)
    if not value or not isinstance(value, str):
        raise BadWatchDefinition(f"watch type {definition.get('type')!r} needs {name!r}")
    return value


def _endpoint(kind: str, definition: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """HTTP path and query parameters of the blocking query behind a watch type."""
    if kind == "key":
        return f"/v1/kv/{quote(_need(definition, 'key'))}", {}
    if kind == "keyprefix":
        return f"/v1/kv/{quote(_need(definition, 'prefix'))}", {"recurse": ""}
    if kind == "services":
        return "/v1/catalog/services", {}
    if kind == "nodes":
        return "/v1/catalog/nodes", {}
    if kind == "service":
        params = {"tag": str(definition["tag"])} if definition.get("tag") else {}
        if definition.get("passingonly"):
            params["passing"] = "1"
        return f"/v1/health/service/{quote(_need(definition, 'service'))}", params
    if kind == "checks":
        service, state = definition.get("service"), definition.get("state")
        if service and state:
            raise BadWatchDefinition("Cannot specify service and state")
        if service:
            return f"/v1/health/checks/{quote(str(service))}", {}
        return f"/v1/health/state/{quote(str(state or 'any'))}", {}
    name = definition.get("name")
    return "/v1/event/list", {"name": str(name)} if name else {}


def next_index(index: int, previous: int | None) -> int:
    """Index for the next query: reset to 0 when the index went backwards (Consul's rule)."""
    if previous is not None and previous > index:
        return 0
    return index


class WatchRunner:
    """Runs watch plans against one Consul address and invokes their handlers, like an agent."""

    def __init__(
        self,
        definitions: Sequence[dict[str, Any]],
        address: str,
        *,
        token: str | None = None,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
    ) -> None:
        """Validate every definition; nothing runs until :meth:`start`."""
        self.plans = [WatchPlan.from_definition(dict(d)) for d in definitions]
        self.address = address.rstrip("/")
        self.token = token
        self.retry_interval = retry_interval
        self.invocations = 0
        self.handled = 0
        self.answers = 0
        self.failures = 0
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._handler_clients: dict[bool, httpx.AsyncClient] = {}

    async def start(self) -> None:
        """Start one task per plan."""
        self._client = httpx.AsyncClient(
            base_url=self.address,
            timeout=httpx.Timeout(10.0, read=None),
            verify=self.address.startswith("https://"),
        )
        self._tasks = [asyncio.create_task(self._run(plan)) for plan in self.plans]

    async def stop(self) -> None:
        """Stop every plan and close the HTTP client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for client in self._handler_clients.values():
            await client.aclose()
        self._handler_clients.clear()

    def _handler_client(self, *, verify: bool) -> httpx.AsyncClient:
        """The client HTTP handlers are called with (one per TLS verification setting)."""
        if verify not in self._handler_clients:
            self._handler_clients[verify] = httpx.AsyncClient(verify=verify)
        return self._handler_clients[verify]

    async def __aenter__(self) -> "WatchRunner":
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        await self.stop()

    async def wait_for(self, *, answers: int = 0, handled: int = 0, failures: int = 0) -> None:
        """Wait until at least that many query answers, finished handler runs and failures."""
        while self.answers < answers or self.handled < handled or self.failures < failures:
            self._progress.clear()
            await self._progress.wait()

    def _advance(self) -> None:
        """Wake :meth:`wait_for` callers."""
        self._progress.set()

    async def _run(self, plan: WatchPlan) -> None:
        """The loop of Consul's ``watch.Plan.Run``: block, compare, invoke, back off on errors."""
        last_index: int | None = None
        last_result: Any = _UNSET
        failures = 0
        while True:
            try:
                index, result = await self._fetch(plan, last_index)
            except (httpx.HTTPError, WatchQueryFailed) as error:
                failures += 1
                self.failures += 1
                self._advance()
                last_index = None
                delay = min(self.retry_interval * failures * failures, MAX_BACKOFF_SECONDS)
                logger.warning(
                    "watch query failed",
                    extra={"event": "watch_error", "reason": str(error), "retry_s": delay},
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.answers += 1
            self._advance()
            if last_index is not None and last_index == index:
                continue
            previous = last_index
            last_index = next_index(index, previous)
            if previous is not None and result == last_result:
                continue
            last_result = result
            await self._invoke(plan, index, result)

    async def _fetch(self, plan: WatchPlan, last_index: int | None) -> tuple[int, Any]:
        """Run the plan's blocking query once; returns the index and the handler payload."""
        assert self._client is not None
        params = dict(plan.params)
        if last_index:
            params["index"] = str(last_index)
        token = plan.definition.get("token") or self.token
        headers = {"X-Consul-Token": str(token)} if token else {}
        response = await self._client.get(plan.path, params=params, headers=headers)
        missing = response.status_code == 404 and plan.type in ("key", "keyprefix")
        if response.status_code != 200 and not missing:
            raise WatchQueryFailed(f"{response.status_code}: {response.text.strip()}")
        index = int(response.headers.get("X-Consul-Index", "0"))
        body = None if missing else response.json()
        if plan.type == "key":
            body = body[0] if body else None
        elif plan.type == "event" and body:
            for position, event in enumerate(body):
                if last_index is not None and event_index(event["ID"]) == last_index:
                    body = body[position + 1 :]
                    break
        return index, body

    async def _invoke(self, plan: WatchPlan, index: int, result: Any) -> None:
        """Invoke the plan's handler with the result, as the agent does (one call at a time)."""
        self.invocations += 1
        data = (json.dumps(result, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        if plan.definition.get("handler_type", "script") == "http":
            config = plan.definition.get("http_handler_config") or {}
            client = self._handler_client(verify=not config.get("tls_skip_verify", False))
            await _invoke_http(client, config, index, data)
        else:
            await _invoke_script(plan.definition, index, data)
        self.handled += 1
        self._advance()


async def _invoke_script(definition: dict[str, Any], index: int, data: bytes) -> None:
    """Run the script with the JSON on stdin and ``CONSUL_INDEX`` in its environment."""
    env = {**os.environ, "CONSUL_INDEX": str(index)}
    args = definition.get("args")
    if args:
        process = await asyncio.create_subprocess_exec(
            *[str(a) for a in args],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    else:
        process = await asyncio.create_subprocess_shell(
            str(definition["handler"]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    output, _ = await process.communicate(data)
    if process.returncode != 0:
        logger.warning(
            "watch handler failed",
            extra={
                "event": "watch_handler_failed",
                "reason": f"exit {process.returncode}",
                "output": output[-4096:].decode(errors="replace"),
            },
        )


async def _invoke_http(
    client: httpx.AsyncClient, config: dict[str, Any], index: int, data: bytes
) -> None:
    """POST (or ``method``) the JSON with ``X-Consul-Index`` and the configured headers."""
    try:
        timeout = parse_duration(str(config.get("timeout") or DEFAULT_HTTP_HANDLER_TIMEOUT))
    except BadDuration:
        timeout = parse_duration(DEFAULT_HTTP_HANDLER_TIMEOUT)
    headers = [("Content-Type", "application/json"), ("X-Consul-Index", str(index))]
    for name, values in (config.get("header") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(value)))
    try:
        response = await client.request(
            str(config.get("method") or "POST"),
            str(config["path"]),
            content=data,
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        logger.warning(
            "watch http handler failed",
            extra={"event": "watch_handler_failed", "reason": str(error)},
        )
        return
    if not 200 <= response.status_code <= 299:
        logger.warning(
            "watch http handler failed",
            extra={"event": "watch_handler_failed", "reason": f"status {response.status_code}"},
        )

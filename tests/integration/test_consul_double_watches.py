"""Consul-style watches run against the double: handler invocation for http and script handlers."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.consul_double import (
    BadWatchDefinition,
    ConsulDouble,
    WatchRunner,
    generate_inventory,
)
from devstack.consul_double.watches import next_index

pytestmark = pytest.mark.timeout(30)

RECORDER_SCRIPT = """
import json, os, sys
data = sys.stdin.read()
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"index": os.environ["CONSUL_INDEX"], "stdin": data}) + "\\n")
"""


@dataclass
class Hit:
    """One request received by the recording HTTP server."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """A tiny HTTP server on 127.0.0.1 recording every request it gets."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one HTTP/1.1 request, record it and answer 200."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.hits.append(Hit(method, path, headers, json.loads(body)))
        self.arrived.set()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def wait_for(self, count: int) -> list[Hit]:
        """Wait until ``count`` requests arrived (the test timeout bounds it)."""
        while len(self.hits) < count:
            self.arrived.clear()
            await self.arrived.wait()
        return self.hits


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A recording HTTP server on a free port."""
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield recorder


@pytest.fixture
async def double() -> AsyncIterator[ConsulDouble]:
    """A one-server double with a few nodes."""
    async with ConsulDouble(1, inventory=generate_inventory(4, 3, 2, seed=3)) as running:
        yield running


def http_watch(kind: str, url: str, **extra: Any) -> dict[str, Any]:
    """An http-handler watch definition as in a Consul agent config."""
    return {
        "type": kind,
        "handler_type": "http",
        "http_handler_config": {
            "path": f"{url}/hook/{kind}",
            "method": "POST",
            "header": {"Authorization": ["Bearer relay-token"]},
            "timeout": "5s",
        },
        **extra,
    }


async def test_http_handler_gets_nodes_on_start_and_change(
    double: ConsulDouble, recorder: Recorder
) -> None:
    """A nodes watch POSTs the catalog nodes with X-Consul-Index first, then after a join."""
    async with WatchRunner([http_watch("nodes", recorder.url)], double.urls[0]):
        first = (await recorder.wait_for(1))[0]
        assert first.method == "POST"
        assert first.path == "/hook/nodes"
        assert first.headers["authorization"] == "Bearer relay-token"
        assert first.headers["content-type"] == "application/json"
        assert int(first.headers["x-consul-index"]) == double.state.indexes.table("nodes")
        assert len(first.body) == 5
        double.state.join_node("prom-new-01", "127.99.0.1")
        second = (await recorder.wait_for(2))[1]
        assert "prom-new-01" in {n["Node"] for n in second.body}


async def test_same_content_with_new_index_does_not_invoke(
    double: ConsulDouble, recorder: Recorder
) -> None:
    """As Consul's plan does, a new index with identical content skips the handler."""
    async with WatchRunner([http_watch("nodes", recorder.url)], double.urls[0]) as runner:
        await recorder.wait_for(1)
        answers = runner.answers
        double.state.register_service("prom-palmas-01", "extra", "extra")
        await runner.wait_for(answers=answers + 1)
        assert runner.invocations == 1
        assert len(recorder.hits) == 1


async def test_key_watch_passes_single_entry_or_null(
    double: ConsulDouble, recorder: Recorder
) -> None:
    """A key watch sends null while the key is missing, then the entry object."""
    watch = http_watch("key", recorder.url, key="feature/flag")
    async with WatchRunner([watch], double.urls[0]):
        assert (await recorder.wait_for(1))[0].body is None
        double.state.kv_put("feature/flag", b"on")
        entry = (await recorder.wait_for(2))[1].body
        assert entry["Key"] == "feature/flag"
        assert entry["Value"] == "b24="


async def test_event_watch_passes_only_new_events(double: ConsulDouble, recorder: Recorder) -> None:
    """An event watch gets the list of events newer than the last index."""
    first = double.state.fire_event("resync", b"a")
    async with WatchRunner([http_watch("event", recorder.url, name="resync")], double.urls[0]):
        assert [e["ID"] for e in (await recorder.wait_for(1))[0].body] == [first["ID"]]
        second = double.state.fire_event("resync", b"b")
        double.state.fire_event("unrelated", b"c")
        assert [e["ID"] for e in (await recorder.wait_for(2))[1].body] == [second["ID"]]


async def test_checks_and_service_watches(double: ConsulDouble, recorder: Recorder) -> None:
    """A checks watch reads health state any; a service watch reads health service entries."""
    watches = [
        http_watch("checks", recorder.url),
        http_watch("service", recorder.url, service="consul"),
    ]
    async with WatchRunner(watches, double.urls[0]):
        hits = await recorder.wait_for(2)
        by_path = {hit.path: hit.body for hit in hits}
        assert {c["CheckID"] for c in by_path["/hook/checks"]} == {"serfHealth"}
        assert [list(e) for e in by_path["/hook/service"]] == [["Node", "Service", "Checks"]]


async def test_script_handler_gets_stdin_and_consul_index(
    double: ConsulDouble, tmp_path: Path
) -> None:
    """A script watch runs args with the JSON on stdin and CONSUL_INDEX in the environment."""
    out = tmp_path / "calls.jsonl"
    watch = {
        "type": "services",
        "handler_type": "script",
        "args": [sys.executable, "-c", RECORDER_SCRIPT, str(out)],
    }
    async with WatchRunner([watch], double.urls[0]) as runner:
        await runner.wait_for(handled=1)
        double.state.register_service("prom-palmas-01", "new", "brand_new")
        await runner.wait_for(handled=2)
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(calls) == 2
    assert int(calls[0]["index"]) < int(calls[1]["index"]) == double.state.indexes.table("services")
    assert "brand_new" in json.loads(calls[1]["stdin"])
    assert calls[1]["stdin"].endswith("\n")


async def test_double_starts_and_stops_its_watches(recorder: Recorder) -> None:
    """Watches given to the double run while it runs, with its ACL token."""
    watch = http_watch("services", recorder.url)
    async with ConsulDouble(1, acl_token="secret", watches=[watch]):
        hits = await recorder.wait_for(1)
        assert "consul" in hits[0].body


async def test_watch_errors_back_off_and_recover(double: ConsulDouble, recorder: Recorder) -> None:
    """Failed queries are retried after a back-off; the handler runs once the server answers."""
    double.fail_requests(500, count=1)
    async with WatchRunner(
        [http_watch("nodes", recorder.url)], double.urls[0], retry_interval=0.05
    ) as runner:
        await recorder.wait_for(1)
        assert runner.failures == 1


def test_invalid_definitions_are_rejected() -> None:
    """Unknown types, missing handlers and missing parameters raise BadWatchDefinition."""
    for definition in (
        {"type": "bogus", "args": ["true"]},
        {"type": "nodes"},
        {"type": "key", "args": ["true"]},
        {"type": "nodes", "handler_type": "http", "http_handler_config": {}},
        {"type": "checks", "service": "a", "state": "any", "args": ["true"]},
    ):
        with pytest.raises(BadWatchDefinition):
            WatchRunner([definition], "http://127.0.0.1:1")


def test_index_going_backwards_resets_to_zero() -> None:
    """The next index is reset to 0 when Consul's index went backwards."""
    assert next_index(5, None) == 5
    assert next_index(7, 5) == 7
    assert next_index(3, 5) == 0

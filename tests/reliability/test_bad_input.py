"""Bad input: poison messages, malformed watch payloads, Consul watch quirks, an invalid sites
document, odd but legal Consul data and a schemathesis run against the API's OpenAPI."""

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import pytest_asyncio

from contracts.events import ConsulChange
from tests.e2e.stack import Stack, eventually
from tests.reliability.support import (
    add_process,
    assert_nothing_lost,
    converge,
    handler,
    nats_client,
    report,
    supervised,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

SMALL_BODY_LIMIT = 65536
"""Body limit of the second relay, to test the 413 path without sending 32 MB."""

SCHEMATHESIS_MAX_EXAMPLES = int(os.environ.get("RELIABILITY_SCHEMATHESIS_EXAMPLES", "60"))
"""Examples schemathesis generates per API operation."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack (30 nodes, one API replica) plus a watcher-less relay with a 64 KiB body limit."""
    running = Stack(tmp_path_factory.mktemp("bad-input"), nodes=30, services=4, apis=1)
    await running.start()
    try:
        add_process(
            running,
            "relay-small",
            ["relay", "serve"],
            "RELAY_PORT",
            {"RELAY_WATCHER_ENABLED": "false", "RELAY_MAX_BODY_BYTES": str(SMALL_BODY_LIMIT)},
        )
        await asyncio.to_thread(running.processes["relay-small"].wait_ready)
        async with supervised(running):
            await converge(running, ("api-1",))
        yield running
    finally:
        await running.stop()


def _auth(stack: Stack, index: str = "7") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.relay_token}", "X-Consul-Index": index}


async def _stored(stack: Stack, relay: str) -> float:
    total = 0.0
    for kind in ("nodes", "services", "service", "checks", "key", "event", "members"):
        for source in ("http", "script"):
            total += await stack.metric(
                relay,
                "nodeview_relay_published_total",
                {"type": kind, "source": source, "outcome": "stored"},
            )
    return total


@pytest.mark.timeout(120)
async def test_poison_messages_are_dead_lettered_and_the_consumer_keeps_going(
    stack: Stack,
) -> None:
    """Undecodable bytes, a non-change JSON and broken gzip go to NODEVIEW_DLQ; work goes on."""
    nc = await nats_client(stack)
    js = nc.jetstream()
    try:
        before = await stack.metric(
            "enricher-1", "nodeview_dead_letters_total", {"reason": "undecodable"}
        )
        poison = [
            (b"\xff\xfe\x00 not json", {}),
            (b'{"hello": "world"}', {}),
            (b"\x1f\x8b broken gzip", {"Content-Encoding": "gzip"}),
        ]
        seqs = []
        for body, headers in poison:
            ack = await js.publish("nodeview.consul.nodes", body, headers=headers or None)
            seqs.append(ack.seq)

        async def dead_lettered() -> list[str]:
            info = await js.stream_info("NODEVIEW_DLQ")
            assert info.state.messages >= len(poison), info.state
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg("NODEVIEW_DLQ", seq)
                headers = msg.headers or {}
                found.append(headers.get("Nodeview-Original-Sequence", ""))
                assert headers.get("Nodeview-Dead-Letter-Reason") == "undecodable"
                assert msg.subject == "nodeview.dlq.events"
            assert {str(s) for s in seqs} <= set(found), (seqs, found)
            return found

        await eventually(dead_lettered, within=30)
        after = await stack.metric(
            "enricher-1", "nodeview_dead_letters_total", {"reason": "undecodable"}
        )
        assert after - before == len(poison)

        async def nothing_pending() -> None:
            info = await js.consumer_info("NODEVIEW_EVENTS", "enricher")
            assert info.num_ack_pending == 0
            assert info.num_pending == 0

        await eventually(nothing_pending, within=30)
    finally:
        await nc.close()
    offset = len(stack.consul.state.change_log)
    stack.consul.state.join_node("after-poison", "127.101.0.1")
    await converge(stack, ("api-1",), within=30)
    await assert_nothing_lost(stack, "api-1", offset)
    report("poison_messages", dead_lettered=len(poison))


@pytest.mark.timeout(120)
async def test_bad_watch_requests_get_a_clear_4xx_and_change_nothing(stack: Stack) -> None:
    """Malformed, oversized, mistyped or unknown watch calls answer 4xx; nothing is published."""
    auth = _auth(stack)
    too_deep = b"[" * 100_000 + b"]" * 100_000
    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("relay", "/v1/watch/nodes", auth, b"{not json", 400),
        ("relay", "/v1/watch/nodes", auth, b"\xff\xfe\xfa", 400),
        ("relay", "/v1/watch/nodes", auth, '[{"Node": "caf\u00e9"}]'.encode("latin-1"), 400),
        ("relay", "/v1/watch/nodes", auth, b'{"Node": "x"}', 400),
        ("relay", "/v1/watch/nodes", auth, b"[1, 2, 3]", 400),
        ("relay", "/v1/watch/services", auth, b"[]", 400),
        ("relay", "/v1/watch/services", auth, b'{"web": "not-a-list"}', 400),
        ("relay", "/v1/watch/checks", auth, b'"text"', 400),
        ("relay", "/v1/watch/key", auth, b"[]", 400),
        ("relay", "/v1/watch/key", auth, b"{}", 400),
        ("relay", "/v1/watch/service", auth, b"[]", 400),
        ("relay", "/v1/watch/bogus", auth, b"[]", 400),
        ("relay", "/v1/watch/nodes", auth, too_deep, 400),
        ("relay", "/v1/watch/nodes", {**auth, "X-Consul-Index": "abc"}, b"[]", 400),
        ("relay", "/v1/watch/nodes", {**auth, "X-Consul-Index": str(2**64)}, b"[]", 400),
        ("relay", "/v1/watch/nodes", {"Authorization": auth["Authorization"]}, b"[]", 400),
        ("relay", "/v1/watch/key?key=" + "k" * 600, auth, b"null", 422),
        ("relay-small", "/v1/watch/nodes", auth, b"[" + b"{}," * 30_000 + b"{}]", 413),
    ]
    before = await stack.nodes_of("api-1")
    stored = {name: await _stored(stack, name) for name in ("relay", "relay-small")}
    for relay, path, headers, body, status in cases:
        response = await stack.http.post(stack.url(relay) + path, content=body, headers=headers)
        assert response.status_code == status, (path, body[:60], response.text[:300])
        assert response.json().get("success") is not True
    streamed = await stack.http.post(
        stack.url("relay-small") + "/v1/watch/nodes",
        content=_chunks(b"x" * 8192, 20),
        headers=auth,
    )
    assert streamed.status_code == 413
    for name, count in stored.items():
        assert await _stored(stack, name) == count, name
    # A later change is the marker that anything the refused requests could have sent is done.
    stack.consul.state.join_node("after-bad-requests", "127.105.0.1")
    await converge(stack, ("api-1",))
    after = await stack.nodes_of("api-1")
    del after["after-bad-requests"]
    assert after == before
    report("bad_watch_requests", inputs=len(cases) + 1)


async def _chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


@pytest.mark.timeout(180)
async def test_script_handler_refuses_bad_input_with_one_line_and_exit_2(stack: Stack) -> None:
    """The script handler exits 2 with one stderr line on bad JSON, type, index or size."""
    index = {"CONSUL_INDEX": "9"}
    cases: list[tuple[list[str], bytes, dict[str, str]]] = [
        (["--type", "nodes"], b"{not json", index),
        (["--type", "nodes"], b"\xff\xfe", index),
        (["--type", "nodes"], b'{"Node": "x"}', index),
        (["--type", "services"], b"[]", index),
        (["--type", "service"], b"[]", index),
        (["--type", "nodes"], b"[]", {"CONSUL_INDEX": "-3"}),
        (["--type", "nodes"], b"[]", {}),
        (
            ["--type", "nodes"],
            b"[" + b"{}," * 2000 + b"{}]",
            {**index, "RELAY_MAX_BODY_BYTES": "1024"},
        ),
        (["--type", "bogus"], b"[]", index),
    ]
    stored_before = await _stored(stack, "relay")
    slots = asyncio.Semaphore(3)

    async def run(args: list[str], body: bytes, env: dict[str, str]) -> CompletedProcess[bytes]:
        async with slots:
            return await handler(stack, args, body, env)

    results = await asyncio.gather(*(run(a, b, e) for a, b, e in cases))
    for (args, body, _), result in zip(cases, results, strict=True):
        stderr = result.stderr.decode(errors="replace").strip()
        assert result.returncode == 2, (args, body[:40], stderr)
        assert stderr, (args, "no message")
        if args != ["--type", "bogus"]:
            assert len(stderr.splitlines()) == 1, stderr
            assert stderr.startswith("nodeview relay handle: bad payload:"), stderr
    assert await _stored(stack, "relay") == stored_before
    report("script_handler_bad_input", inputs=len(cases))


@pytest.mark.timeout(180)
async def test_one_change_delivered_many_ways_is_applied_once(stack: Stack) -> None:
    """Consul quirks: re-sent at reload, several times, same index every wait: applied once."""
    service = "node_exporter"
    reply = await stack.http.get(stack.consul.urls[0] + f"/v1/health/service/{service}")
    body, index = reply.content, reply.headers["X-Consul-Index"]
    applied = {"type": "service", "outcome": "applied"}
    duplicate = {"type": "service", "outcome": "duplicate"}
    applied_before = await stack.metric("enricher-1", "nodeview_events_total", applied)
    duplicate_before = await stack.metric("enricher-1", "nodeview_events_total", duplicate)
    outcomes = []
    for _ in range(4):
        response = await stack.http.post(
            stack.url("relay") + f"/v1/watch/service?service={service}",
            content=body,
            headers=_auth(stack, index),
        )
        assert response.status_code == 202, response.text
        outcomes.append(response.json()["duplicate"])
    assert outcomes == [False, True, True, True]
    script = await handler(
        stack, ["--type", "service", "--service", service], body, {"CONSUL_INDEX": index}
    )
    assert script.returncode == 0, script.stderr
    assert b"duplicate" in script.stderr
    http_labels = {"type": "service", "source": "http"}
    assert (
        await stack.metric(
            "relay", "nodeview_relay_published_total", {**http_labels, "outcome": "stored"}
        )
        == 1
    )
    assert (
        await stack.metric(
            "relay", "nodeview_relay_published_total", {**http_labels, "outcome": "duplicate"}
        )
        == 3
    )

    async def applied_once() -> None:
        got = await stack.metric("enricher-1", "nodeview_events_total", applied)
        assert got - applied_before == 1

    await eventually(applied_once, within=30)
    # Past the stream's duplicate window (an agent reload minutes later) only the enricher
    # can tell: the same change arrives under a new message id.
    change = ConsulChange(
        watch_type="service",
        service=service,
        consul_index=int(index),
        source="http",
        payload=json.loads(body),
    )
    nc = await nats_client(stack)
    try:
        for attempt in range(3):
            await nc.jetstream().publish(
                "nodeview.consul.service",
                change.model_dump_json().encode(),
                headers={"Nats-Msg-Id": f"late-redelivery-{attempt}"},
            )
    finally:
        await nc.close()

    async def collapsed() -> None:
        got = await stack.metric("enricher-1", "nodeview_events_total", duplicate)
        assert got - duplicate_before >= 1

    await eventually(collapsed, within=30)
    # A later change in the stream is the marker that every late copy has been handled: the
    # enricher consumes in stream order, so once it is in the view the copies were seen too.
    stack.consul.state.join_node("after-late-copies", "127.104.0.1")
    await converge(stack, ("api-1",))
    assert await stack.metric("enricher-1", "nodeview_events_total", applied) - applied_before == 1
    report("watch_quirks", deliveries=4 + 1 + 3, applied=1)


def _site_of(entry: dict[str, str]) -> str:
    return entry["site_name"]


@pytest.mark.timeout(120)
async def test_invalid_sites_document_keeps_the_last_good_sites(stack: Stack) -> None:
    """A sites document that is not JSON, or has no known shape, leaves the last good labels."""
    state = stack.consul.state
    node = sorted(n for n in stack.expected() if n.startswith("prom-"))[0]
    addr = stack.expected()[node]["addr"]
    state.set_sites({"sites": [{"code": "good", "name": "Good Site", "prometheus_instance": addr}]})
    await converge(stack, ("api-1",))
    labels = {"type": "key", "outcome": "bad_payload"}
    for document in (b"{not json", b'{"no_sites": true}', b"\xff\xfe"):
        before = await stack.metric("enricher-1", "nodeview_events_total", labels)
        state.kv_put(state.sites_key, document)

        async def rejected(before: float = before) -> None:
            assert await stack.metric("enricher-1", "nodeview_events_total", labels) > before

        await eventually(rejected, within=30)
        assert _site_of((await stack.nodes_of("api-1"))[node]) == "Good Site"
    state.set_sites({"sites": [{"code": "new", "name": "New Site", "prometheus_instance": addr}]})
    await converge(stack, ("api-1",))
    assert _site_of((await stack.nodes_of("api-1"))[node]) == "New Site"
    report("invalid_sites", documents_rejected=3)


@pytest.mark.timeout(120)
async def test_odd_but_legal_consul_data_reaches_the_view(stack: Stack) -> None:
    """Long and non-ASCII node names, dotted names and a service with many long tags converge."""
    state = stack.consul.state
    offset = len(state.change_log)
    names = ["n" * 250, "node.with.dots", "n\u00f3-\u00e7\u00e3o-\u65e5\u672c", "a b"]
    for i, name in enumerate(names):
        state.join_node(name, f"127.102.0.{i + 1}")
    tags = tuple(f"tag-{i:04d}-" + "t" * 100 for i in range(300))
    state.register_service(names[0], "many-tags", "many_tags", tags=tags, port=1)
    await converge(stack, ("api-1",), within=60)
    await assert_nothing_lost(stack, "api-1", offset)
    services = await stack.http.get(stack.url("api-1") + "/api/v1/nodes/127.102.0.1/services")
    assert len(services.json()["services"]["many-tags"]["Tags"]) == 300
    report("odd_legal_data", nodes=len(names), tags=len(tags))


@pytest.mark.timeout(120)
async def test_huge_node_name_in_a_watch_payload_is_refused(stack: Stack) -> None:
    """A watch payload naming a node with a 100 KB name is refused with 400 before publishing."""
    catalog = (await stack.http.get(stack.consul.urls[0] + "/v1/catalog/nodes")).json()
    catalog.append({"Node": "h" * 100_000, "Address": "127.103.0.1", "Datacenter": "dc1"})
    response = await stack.http.post(
        stack.url("relay") + "/v1/watch/nodes",
        content=json.dumps(catalog).encode(),
        headers=_auth(stack, "1"),
    )
    try:
        assert response.status_code == 400, response.text[:200]
    finally:
        stack.consul.state.join_node("after-huge-name", "127.103.0.2")
        await converge(stack, ("api-1",), within=60)


@pytest.mark.timeout(300)
async def test_schemathesis_finds_no_server_error_in_the_api(stack: Stack, tmp_path: Path) -> None:
    """Schemathesis fuzzes every API operation: no 5xx; documented bodies and types match."""
    binary = Path(sys.executable).parent / "schemathesis"
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(binary),
            "run",
            stack.url("api-1") + "/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            str(SCHEMATHESIS_MAX_EXAMPLES),
            "--exclude-path",
            "/api/v1/nodes/events",
            "--request-timeout",
            "20",
            "--seed",
            "8",
            "--generation-database",
            "none",
            "--report-ndjson-path",
            str(tmp_path / "schemathesis.ndjson"),
            "--report",
            "ndjson",
        ],
        capture_output=True,
        timeout=240,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output[-3000:] + result.stderr.decode(errors="replace")[-2000:]
    generated = re.findall(r"(\d+) generated", output)
    report(
        "schemathesis",
        cases=generated[-1] if generated else "?",
        summary=output.strip().splitlines()[-1] if output.strip() else "",
    )
    await converge(stack, ("api-1",))

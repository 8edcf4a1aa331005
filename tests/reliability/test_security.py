"""Security: bearer tokens (env and file), no secret in logs, headers, body and SSE limits,
Consul ACL tokens and authenticated NATS."""

import asyncio
import contextlib
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio

from devstack.nats import NatsServer
from devstack.nats_roles import role_users
from devstack.processes import nodeview_command
from tests.e2e.otlp import OtlpReceiver
from tests.e2e.stack import Stack, eventually
from tests.reliability.support import (
    add_process,
    converge,
    log_text,
    report,
    start_with_nats,
    supervised,
    tmp_file,
)

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.asyncio(loop_scope="module"),
]

RELAY_FILE_TOKEN = "relay-file-" + secrets.token_urlsafe(12)
ADMIN_FILE_TOKEN = "admin-file-" + secrets.token_urlsafe(12)
WRONG_TOKEN = "wrong-" + secrets.token_urlsafe(12)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A stack plus a relay and an API reading their tokens from files, and token-less ones."""
    tmp = tmp_path_factory.mktemp("security")
    running = Stack(tmp, nodes=10, services=2, apis=1)
    await running.start()
    try:
        relay_file = tmp_file(tmp, "relay.token", RELAY_FILE_TOKEN + "\n")
        admin_file = tmp_file(tmp, "admin.token", ADMIN_FILE_TOKEN + "\n")
        serve = {"RELAY_WATCHER_ENABLED": "false"}
        add_process(
            running,
            "relay-file",
            ["relay", "serve"],
            "RELAY_PORT",
            {**serve, "RELAY_TOKEN_FILE": str(relay_file)},
            drop=["RELAY_TOKEN"],
        )
        add_process(
            running, "relay-none", ["relay", "serve"], "RELAY_PORT", serve, drop=["RELAY_TOKEN"]
        )
        add_process(
            running,
            "api-file",
            ["api"],
            "API_PORT",
            {"API_ADMIN_TOKEN_FILE": str(admin_file)},
            drop=["API_ADMIN_TOKEN"],
        )
        add_process(running, "api-none", ["api"], "API_PORT", drop=["API_ADMIN_TOKEN"])
        add_process(
            running,
            "api-proxied",
            ["api"],
            "API_PORT",
            {"API_TRUSTED_PROXIES": "127.0.0.1/32", "API_SSE_MAX_PER_CLIENT": "2"},
        )
        for process in running.processes.values():
            await asyncio.to_thread(process.wait_ready)
        async with supervised(running):
            await converge(running, ("api-1",))
        yield running
    finally:
        await running.stop()


def _bad_credentials(token: str) -> list[tuple[dict[str, str], int]]:
    return [
        ({}, 401),
        ({"Authorization": ""}, 401),
        ({"Authorization": f"Basic {token}"}, 401),
        ({"Authorization": f"bearer{token}"}, 401),
        ({"Authorization": f"Bearer {WRONG_TOKEN}"}, 403),
        ({"Authorization": f"Bearer {token[:-1]}"}, 403),
        ({"Authorization": f"Bearer {token}x"}, 403),
        ({"Authorization": f"Bearer {token.upper()}"}, 403),
    ]


async def _resyncs(stack: Stack) -> float:
    return await stack.metric(
        "enricher-1", "nodeview_events_total", {"type": "resync", "outcome": "applied"}
    )


@pytest.mark.timeout(120)
async def test_watch_and_flush_refuse_missing_or_wrong_tokens(stack: Stack) -> None:
    """Injecting and state-changing endpoints refuse every missing, malformed or wrong token."""
    watch = stack.url("relay") + "/v1/watch/nodes"
    flush = stack.url("api-1") + "/api/v1/admin/cache/nodes/flush"
    resyncs = await _resyncs(stack)
    stored = await stack.metric(
        "relay",
        "nodeview_relay_published_total",
        {"type": "nodes", "source": "http", "outcome": "stored"},
    )
    tried = 0
    for headers, status in _bad_credentials(stack.relay_token):
        response = await stack.http.post(
            watch, content=b"[]", headers={**headers, "X-Consul-Index": "3"}
        )
        assert response.status_code == status, (headers, response.text)
        tried += 1
    for headers, status in _bad_credentials(stack.admin_token):
        response = await stack.http.post(flush, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["success"] is False
        tried += 1
    none_watch = await stack.http.post(
        stack.url("relay-none") + "/v1/watch/nodes",
        content=b"[]",
        headers={"Authorization": f"Bearer {stack.relay_token}", "X-Consul-Index": "3"},
    )
    none_flush = await stack.http.post(
        stack.url("api-none") + "/api/v1/admin/cache/nodes/flush",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert none_watch.status_code == none_flush.status_code == 503
    # One accepted flush is the marker: it is handled only after anything published before it,
    # so once it is done a refused request that had slipped through would be counted too.
    accepted = await stack.http.post(
        flush + "?wait=true", headers={"Authorization": f"Bearer {stack.admin_token}"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["success"] is True, accepted.text
    assert await _resyncs(stack) == resyncs + 1
    assert (
        await stack.metric(
            "relay",
            "nodeview_relay_published_total",
            {"type": "nodes", "source": "http", "outcome": "stored"},
        )
        == stored
    )
    report("token_refusals", requests=tried + 2)


@pytest.mark.timeout(120)
async def test_tokens_read_from_files_work_and_env_tokens_do_not_leak_across(
    stack: Stack,
) -> None:
    """RELAY_TOKEN_FILE and API_ADMIN_TOKEN_FILE tokens are accepted (trailing newline stripped)."""
    catalog = await stack.http.get(stack.consul.urls[0] + "/v1/catalog/nodes")
    index = catalog.headers["X-Consul-Index"]
    watch = stack.url("relay-file") + "/v1/watch/nodes"
    ok = await stack.http.post(
        watch,
        content=catalog.content,
        headers={"Authorization": f"Bearer {RELAY_FILE_TOKEN}", "X-Consul-Index": index},
    )
    assert ok.status_code == 202, ok.text
    other = await stack.http.post(
        watch,
        content=catalog.content,
        headers={"Authorization": f"Bearer {stack.relay_token}", "X-Consul-Index": index},
    )
    assert other.status_code == 403
    resyncs = await _resyncs(stack)
    flush = await stack.http.post(
        stack.url("api-file") + "/api/v1/admin/cache/nodes/flush?wait=true",
        headers={"Authorization": f"Bearer {ADMIN_FILE_TOKEN}"},
        timeout=httpx.Timeout(60.0),
    )
    assert flush.status_code == 200, flush.text
    assert await _resyncs(stack) > resyncs
    refused = await stack.http.post(
        stack.url("api-file") + "/api/v1/admin/cache/nodes/flush",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert refused.status_code == 403


@pytest.mark.timeout(60)
async def test_every_api_answer_carries_security_headers(stack: Stack) -> None:
    """200, 304, 404, 401, 413 and health answers all carry the security headers."""
    base = stack.url("api-1")
    etag = (await stack.http.get(base + "/api/v1/nodes")).headers["etag"]
    answers = [
        await stack.http.get(base + "/api/v1/nodes"),
        await stack.http.get(base + "/api/v1/nodes", headers={"If-None-Match": etag}),
        await stack.http.get(base + "/api/v1/nodes/10.255.0.1/services"),
        await stack.http.post(base + "/api/v1/admin/cache/nodes/flush"),
        await stack.http.post(base + "/api/v1/admin/cache/nodes/flush", content=b"x" * 70_000),
        await stack.http.get(base + "/healthz"),
        await stack.http.get(base + "/openapi.json"),
        await stack.http.get(base + "/no/such/path"),
    ]
    assert [a.status_code for a in answers] == [200, 304, 404, 401, 413, 200, 200, 404]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name)
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")


@pytest.mark.timeout(60)
async def test_declared_body_over_the_limit_is_refused_before_any_handler(stack: Stack) -> None:
    """A request whose Content-Length exceeds API_MAX_BODY_BYTES gets 413, even with a token."""
    response = await stack.http.post(
        stack.url("api-1") + "/api/v1/admin/cache/nodes/flush",
        content=b"{}" + b" " * 65_536,
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    small = await stack.http.post(
        stack.url("api-1") + "/api/v1/admin/cache/nodes/flush",
        content=b"{}",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert small.status_code == 202


async def _chunks(size: int, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b" " * size


@pytest.mark.timeout(60)
async def test_chunked_body_over_the_limit_is_refused(stack: Stack) -> None:
    """A chunked request body (no Content-Length) larger than API_MAX_BODY_BYTES gets 413."""
    response = await stack.http.post(
        stack.url("api-1") + "/api/v1/admin/cache/nodes/flush",
        content=_chunks(16_384, 8),
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert response.status_code == 413


@pytest.mark.timeout(90)
async def test_event_streams_per_client_are_bounded(stack: Stack) -> None:
    """API_SSE_MAX_PER_CLIENT streams per address are served; one more gets 429 until one closes."""
    url = stack.url("api-1") + "/api/v1/nodes/events"
    limit = 8
    async with AsyncExitStack() as streams:
        client = await streams.enter_async_context(httpx.AsyncClient(timeout=30.0))
        for _ in range(limit):
            response = await streams.enter_async_context(client.stream("GET", url))
            assert response.status_code == 200
        refused = await stack.http.get(url)
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_streams"
    async with httpx.AsyncClient(timeout=30.0) as client, client.stream("GET", url) as response:
        assert response.status_code == 200


@pytest.mark.timeout(90)
async def test_behind_a_trusted_proxy_stream_limits_are_per_forwarded_client(
    stack: Stack,
) -> None:
    """Behind a trusted proxy each X-Forwarded-For client has its own limit, not the proxy's."""
    url = stack.url("api-proxied") + "/api/v1/nodes/events"
    alice = {"X-Forwarded-For": "198.51.100.1"}
    async with AsyncExitStack() as streams:
        client = await streams.enter_async_context(httpx.AsyncClient(timeout=30.0))
        for _ in range(2):
            response = await streams.enter_async_context(client.stream("GET", url, headers=alice))
            assert response.status_code == 200
        refused = await stack.http.get(url, headers=alice)
        assert refused.status_code == 429
        # Claiming alice's address further left changes nothing: the rightmost hop counts.
        other = {"X-Forwarded-For": "198.51.100.1, 192.0.2.1"}
        spoofed = await streams.enter_async_context(client.stream("GET", url, headers=other))
        assert spoofed.status_code == 200
        bob = await streams.enter_async_context(
            client.stream("GET", url, headers={"X-Forwarded-For": "198.51.100.2"})
        )
        assert bob.status_code == 200


@pytest.mark.timeout(60)
async def test_no_token_ever_appears_in_the_logs(stack: Stack) -> None:
    """After refused, accepted and file-based token use, no token is in any process log."""
    text = log_text(stack)
    assert "relay.published" in text or "change published" in text
    for secret in (
        stack.relay_token,
        stack.admin_token,
        RELAY_FILE_TOKEN,
        ADMIN_FILE_TOKEN,
        WRONG_TOKEN,
    ):
        assert secret not in text


@pytest.mark.timeout(180)
async def test_consul_acl_token_is_honoured_and_its_absence_is_visible(tmp_path: Path) -> None:
    """With CONSUL_TOKEN the stack converges on an ACL-protected Consul; without it, it says so."""
    token = "acl-" + secrets.token_urlsafe(12)
    stack = Stack(
        tmp_path,
        nodes=10,
        services=2,
        apis=1,
        acl_token=token,
        extra_env={"CONSUL_TOKEN": token},
    )
    await stack.start()
    try:
        await converge(stack, ("api-1",))
        add_process(stack, "relay-no-acl", ["relay", "watch"], "RELAY_PORT", drop=["CONSUL_TOKEN"])
        await asyncio.to_thread(stack.processes["relay-no-acl"].wait_ready, "/healthz")

        async def refused() -> None:
            status = (await stack.http.get(stack.url("relay-no-acl") + "/healthz")).json()
            watches = status["watches"]
            assert sum(w["errors"] for w in watches.values()) >= len(watches)
            assert sum(w["published"] for w in watches.values()) == 0
            assert "403" in stack.processes["relay-no-acl"].log_text()
            ready = await stack.http.get(stack.url("relay-no-acl") + "/readyz")
            assert ready.status_code == 503, ready.text
            assert "ACL token" in ready.json()["reason"]

        await eventually(refused, within=60)
        stack.consul.state.join_node("acl-node", "127.120.0.1")
        await converge(stack, ("api-1",))
        assert token not in log_text(stack)
    finally:
        await stack.stop()


@pytest.mark.timeout(180)
async def test_stack_runs_against_a_password_protected_nats(tmp_path: Path) -> None:
    """With NATS_USER/NATS_PASSWORD every process connects to an auth-enabled nats-server."""
    password = "pw-" + secrets.token_urlsafe(12)
    server = NatsServer(
        tmp_path / "jetstream",
        log_file=tmp_path / "nats.log",
        extra_config=f'authorization {{ user: nv, password: "{password}" }}',
    )
    stack = Stack(
        tmp_path,
        nodes=10,
        services=2,
        apis=1,
        extra_env={"NATS_USER": "nv", "NATS_PASSWORD": password},
    )
    try:
        await start_with_nats(stack, server)
        await converge(stack, ("api-1",))
        stack.consul.state.join_node("auth-node", "127.121.0.1")
        await converge(stack, ("api-1",))
        add_process(stack, "api-no-creds", ["api"], "API_PORT", drop=["NATS_PASSWORD"])
        no_creds = stack.processes["api-no-creds"]

        async def refused() -> None:
            assert "Authorization Violation" in no_creds.log_text()

        await eventually(refused, within=60)
        with contextlib.suppress(httpx.HTTPError):
            ready = await stack.http.get(stack.url("api-no-creds") + "/readyz")
            assert ready.status_code != 200
        assert password not in log_text(stack)
    finally:
        await stack.stop()


def _handle(url: str, token: str | None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NATS_URL": url, "CONSUL_INDEX": "5", "LOG_FORMAT": "json"}
    if token is not None:
        env["NATS_TOKEN"] = token
    return subprocess.run(
        nodeview_command("relay", "handle", "--type", "nodes"),
        input=b"[]",
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
    )


@pytest.mark.timeout(150)
async def test_script_handler_publishes_to_a_token_protected_nats(tmp_path: Path) -> None:
    """NATS_TOKEN authenticates the script handler against a token-protected nats-server."""
    token = "nt-" + secrets.token_urlsafe(12)
    server = NatsServer(tmp_path / "js", extra_config=f'authorization {{ token: "{token}" }}')
    server.start()
    try:
        ok = await asyncio.to_thread(_handle, server.url, token)
        assert ok.returncode == 0, ok.stderr
        assert b"stored" in ok.stderr
        assert token.encode() not in ok.stderr + ok.stdout
    finally:
        server.stop()


@pytest.mark.timeout(150)
async def test_script_handler_without_nats_credentials_exits_1(tmp_path: Path) -> None:
    """Without NATS_TOKEN the script handler fails with exit 1 and a one-line error."""
    server = NatsServer(tmp_path / "js", extra_config='authorization { token: "t0ken-x" }')
    server.start()
    try:
        denied = await asyncio.to_thread(_handle, server.url, None)
        assert denied.returncode == 1, denied.stderr
        assert b"cannot publish" in denied.stderr
    finally:
        server.stop()


@pytest.mark.timeout(180)
async def test_consul_url_userinfo_never_leaks(tmp_path: Path) -> None:
    """``user:password@`` in CONSUL_SERVERS shows in no log, metric, span or API body."""
    password = "pw-" + secrets.token_urlsafe(12)
    receiver = OtlpReceiver()
    await receiver.start()
    stack = Stack(tmp_path, nodes=10, services=2, apis=1)
    try:
        stack.extra_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        await stack.start_parts()
        servers = ",".join(u.replace("://", f"://nodeview:{password}@") for u in stack.consul.urls)
        stack.extra_env["CONSUL_SERVERS"] = servers
        await stack.start_processes()
        await converge(stack, ("api-1",))
        stack.consul.state.join_node("userinfo-node", "127.122.0.1")
        await converge(stack, ("api-1",))
        await eventually(lambda: _spans_from(receiver, "nodeview-enricher"), within=30)
        body = (await stack.http.get(stack.url("api-1") + "/api/v1/nodes")).json()
        assert body["main_server"] == stack.consul.urls[0].removeprefix("http://")
        seen = [log_text(stack), str(body)]
        for name in stack.processes:
            seen.append((await stack.http.get(stack.url(name) + "/metrics")).text)
        seen.extend(export.decode(errors="replace") for export in receiver.exports)
        for text in seen:
            assert password not in text
    finally:
        await stack.stop()
        await receiver.stop()


async def _spans_from(receiver: OtlpReceiver, service: str) -> None:
    assert any(span.service == service for span in receiver.spans)


@pytest.mark.timeout(120)
async def test_a_burst_of_flushes_shares_resyncs(stack: Stack) -> None:
    """Twenty flushes within half a second all complete, served by at most two resyncs."""
    requested = {"reason": "requested", "outcome": "ok"}
    before = await stack.metric("enricher-1", "nodeview_resyncs_total", requested)
    members_before = stack.consul.counters.total(endpoint="/v1/agent/members")
    flush = stack.url("api-1") + "/api/v1/admin/cache/nodes/flush?wait=true"
    auth = {"Authorization": f"Bearer {stack.admin_token}"}

    async def one(delay: float) -> httpx.Response:
        await asyncio.sleep(delay)
        return await stack.http.post(flush, headers=auth)

    # Within half a second: the second resync (a second after the first) serves the rest.
    answers = await asyncio.gather(*(one(i / 40) for i in range(20)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
    resyncs = await stack.metric("enricher-1", "nodeview_resyncs_total", requested) - before
    assert 1 <= resyncs <= 2, resyncs
    members_reads = stack.consul.counters.total(endpoint="/v1/agent/members") - members_before
    report("flush_burst", flushes=20, resyncs=resyncs, members_reads=members_reads)


@pytest.mark.timeout(180)
async def test_each_role_has_its_own_nats_user_and_the_api_cannot_write_views(
    tmp_path: Path,
) -> None:
    """Relay, enricher and API run as their own NATS users; the API's user cannot write views."""
    users = role_users()
    stack = Stack(tmp_path, nodes=10, services=2, apis=1, nats_users=users)
    try:
        await stack.start()
        await converge(stack, ("api-1",))
        stack.consul.state.join_node("role-node", "127.123.0.1")
        await converge(stack, ("api-1",))
        assert stack.nats is not None
        errors: list[str] = []

        async def error_cb(exc: Exception) -> None:
            errors.append(str(exc))

        api = users["api"]
        nc = await nats.connect(
            stack.nats.url, user=api.user, password=api.password, error_cb=error_cb
        )
        try:
            for subject in ("$KV.nodeview_nodes.forged", "$KV.nodeview_enricher_lock.lock"):
                await nc.publish(subject, b"{}")
            await nc.publish("nodeview.consul.nodes", b"[]")
            await nc.flush()

            async def refused() -> None:
                assert sum("permissions violation" in e.lower() for e in errors) >= 3, errors

            await eventually(refused, within=30)
        finally:
            await nc.close()
        body = await stack.nodes_of("api-1")
        assert "forged" not in body
    finally:
        await stack.stop()

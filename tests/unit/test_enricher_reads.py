"""Enricher reads and the Consul client over httpx's MockTransport: failures, fallback, headers."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services import metrics
from services.config import ConsulSettings, SettingsError
from services.consul import (
    ConsulACLDenied,
    ConsulBadResponse,
    ConsulClient,
    ConsulHTTPError,
    ConsulNotFound,
    ConsulTimeout,
    ConsulUnavailable,
    error_type,
)
from services.enricher.inventory import services_count
from services.enricher.reads import read_node_services, read_service

SERVER_A = "http://127.0.0.1:1"
SERVER_B = "http://127.0.0.2:2"
LABEL_A = "127.0.0.1:1"
LABEL_B = "127.0.0.2:2"

CONSUL_HEADERS = {
    "X-Consul-Index": "15",
    "X-Consul-KnownLeader": "true",
    "X-Consul-LastContact": "0",
    "X-Consul-Effective-Consistency": "leader",
    "X-Consul-Query-Backend": "blocking-query",
}


def _agent_service(service: str, port: int, index: int) -> dict[str, Any]:
    return {
        "ID": service,
        "Service": service,
        "Tags": ["exporter", "palmas", "linux"],
        "Address": "",
        "Meta": {"metrics_path": "/metrics", "site": "palmas"},
        "Port": port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
        "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
        "Connect": {},
        "PeerName": "",
        "CreateIndex": index,
        "ModifyIndex": index,
    }


NODE_SERVICES_PALMAS: dict[str, Any] = {
    "Node": {
        "ID": "892f902b-d23f-0824-128b-2f330c5c7fd0",
        "Node": "prom-palmas-01",
        "Address": "127.10.0.10",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "127.10.0.10", "wan": "127.10.0.10"},
        "Meta": {"consul-version": "1.19.2", "os": "linux", "site": "palmas"},
        "CreateIndex": 13,
        "ModifyIndex": 13,
    },
    "Services": [_agent_service("alertmanager", 9093, 15), _agent_service("prometheus", 9090, 14)],
}
"""``GET /v1/catalog/node-services/prom-palmas-01``."""

CATALOG_NODES: list[dict[str, Any]] = [
    {
        "ID": "9c5b53c5-2608-f2d4-512f-bfa7c02a3f5d",
        "Node": "consul-server-1",
        "Address": "127.0.1.1",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "127.0.1.1", "wan": "127.0.1.1"},
        "Meta": {"consul-network-segment": "", "consul-version": "1.19.2"},
        "CreateIndex": 11,
        "ModifyIndex": 11,
    }
]

KV_ENTRY: dict[str, Any] = {
    "LockIndex": 0,
    "Key": "skills/eye/metadata/sites",
    "Flags": 0,
    "Value": "e30=",
    "CreateIndex": 22,
    "ModifyIndex": 22,
}

Handler = Callable[[httpx.Request], httpx.Response]


class FakeSleep:
    """Records the delays the client asks for instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FakeConsul:
    """An httpx transport handler answering per server with a fixed handler, recording requests."""

    def __init__(self, **by_server: Handler) -> None:
        self.by_server = {server_url(name): handler for name, handler in by_server.items()}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        return self.by_server[origin](request)

    def servers_called(self) -> list[str]:
        """Return host:port of each request, in order."""
        return [f"{r.url.host}:{r.url.port}" for r in self.requests]


def server_url(name: str) -> str:
    """Map a handler keyword (a or b) to its server URL."""
    return {"a": SERVER_A, "b": SERVER_B}[name]


def ok(data: Any, headers: dict[str, str] | None = None) -> Handler:
    """Answer 200 with ``data`` as JSON and Consul's headers."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.dumps(data).encode()
        content_type = {"Content-Type": "application/json"}
        return httpx.Response(
            200, content=body, headers=CONSUL_HEADERS | content_type | (headers or {})
        )

    return handle


def status(code: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    """Answer with a fixed status code."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, text=body, headers=headers or {})

    return handle


def raises(exc_type: type[httpx.TransportError]) -> Handler:
    """Fail like a network error of ``exc_type``."""

    def handle(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handle


def _settings(**env: Any) -> ConsulSettings:
    values: dict[str, Any] = {
        "CONSUL_SERVERS": f"{SERVER_A},{SERVER_B}",
        "CONSUL_RETRY_DELAY": 0,
        "CONSUL_MAX_RETRIES": 1,
    }
    values.update(env)
    return ConsulSettings.model_validate(values)


def _client(fake: FakeConsul, sleep: FakeSleep | None = None, **env: Any) -> ConsulClient:
    return ConsulClient(
        _settings(**env), transport=httpx.MockTransport(fake), sleep=sleep or FakeSleep()
    )


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _failures(node: str, kind: str) -> float:
    return _sample("consul_node_enrich_failures_total", {"node": node, "error_type": kind})


async def test_read_times_out_on_every_server() -> None:
    """Timeouts on every server and retry give a failed read of type timeout, counted per node."""
    fake = FakeConsul(a=raises(httpx.ReadTimeout), b=raises(httpx.ReadTimeout))
    before = _failures("prom-timeout-01", "timeout")
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-timeout-01", "127.10.0.11")
    assert not read.ok
    assert read.services is None
    assert read.error_type == "timeout"
    assert read.reason is not None
    assert read.reason.startswith("timeout:")
    assert _failures("prom-timeout-01", "timeout") == before + 1
    assert fake.servers_called() == [LABEL_A, LABEL_B, LABEL_A, LABEL_B]


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_read_with_5xx_everywhere_is_unavailable(code: int) -> None:
    """A 5xx on every server and retry fails the read as unavailable, never as 0 services."""
    fake = FakeConsul(a=status(code, "No cluster leader"), b=status(code, "No cluster leader"))
    node = f"prom-5xx-{code}"
    before = _failures(node, "unavailable")
    async with _client(fake) as consul:
        read = await read_node_services(consul, node, "127.10.0.12")
    assert not read.ok
    assert read.error_type == "unavailable"
    assert read.services is None
    assert _failures(node, "unavailable") == before + 1
    assert len(fake.requests) == 4


async def test_read_denied_by_acl_is_acl_denied_without_fallback() -> None:
    """A 403 fails the read as acl_denied at once: no other server, no retry."""
    fake = FakeConsul(a=status(403, "Permission denied"), b=ok(NODE_SERVICES_PALMAS))
    before = _failures("prom-acl-01", "acl_denied")
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-acl-01", "127.10.0.13")
    assert not read.ok
    assert read.error_type == "acl_denied"
    assert _failures("prom-acl-01", "acl_denied") == before + 1
    assert fake.servers_called() == [LABEL_A]


async def test_read_of_malformed_json_is_bad_response() -> None:
    """A 200 whose body is not JSON fails the read as bad_response."""

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"Node": {', headers=CONSUL_HEADERS)

    fake = FakeConsul(a=garbage, b=garbage)
    before = _failures("prom-garbage-01", "bad_response")
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-garbage-01", "127.10.0.14")
    assert not read.ok
    assert read.error_type == "bad_response"
    assert _failures("prom-garbage-01", "bad_response") == before + 1


async def test_read_of_a_wrong_shape_is_bad_payload() -> None:
    """A JSON answer of the wrong shape fails the read as bad_payload."""
    fake = FakeConsul(a=ok({"Services": ["alertmanager"]}), b=ok({}))
    before = _failures("prom-shape-01", "bad_payload")
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-shape-01", "127.10.0.15")
    assert not read.ok
    assert read.error_type == "bad_payload"
    assert _failures("prom-shape-01", "bad_payload") == before + 1


async def test_read_succeeds_with_services_count_and_index() -> None:
    """A good answer gives the node's services, their count and the Consul index; no failure."""
    fake = FakeConsul(a=ok(NODE_SERVICES_PALMAS), b=ok(NODE_SERVICES_PALMAS))
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-palmas-01", "127.10.0.10")
    assert read.ok
    assert read.services is not None
    assert set(read.services) == {"alertmanager", "prometheus"}
    assert read.services["alertmanager"].port == 9093
    assert services_count(read.services.values()) == 2
    assert read.index == 15
    assert read.error_type is None
    assert fake.requests[0].url.path == "/v1/catalog/node-services/prom-palmas-01"
    for kind in ("timeout", "unavailable", "acl_denied", "bad_response", "bad_payload"):
        assert _failures("prom-palmas-01", kind) == 0


async def test_read_of_a_vanished_node_is_empty_not_a_failure() -> None:
    """A 404 for a node means it has no services; it is not counted as a failure."""
    fake = FakeConsul(a=status(404), b=status(404))
    async with _client(fake) as consul:
        read = await read_node_services(consul, "prom-gone-01", "127.10.0.16")
    assert read.ok
    assert read.services == {}
    assert _failures("prom-gone-01", "not_found") == 0


async def test_node_names_are_escaped_in_the_path() -> None:
    """A node name with '/' or spaces stays one path segment."""
    fake = FakeConsul(a=ok(None), b=ok(None))
    async with _client(fake) as consul:
        await consul.node_services("rack 1/node")
    assert fake.requests[0].url.raw_path == b"/v1/catalog/node-services/rack%201%2Fnode"


async def test_connect_error_falls_back_to_the_next_server() -> None:
    """A connect error on the first server is answered by the second, which becomes active."""
    fake = FakeConsul(a=raises(httpx.ConnectError), b=ok(CATALOG_NODES))
    before = _sample("consul_server_fallback_total", {"server": LABEL_A, "status": "connect_error"})
    async with _client(fake) as consul:
        assert consul.active_server == LABEL_A
        response = await consul.catalog_nodes()
        assert consul.active_server == LABEL_B
        assert consul.main_server == LABEL_A
    assert response.server == LABEL_B
    assert response.data == CATALOG_NODES
    assert fake.servers_called() == [LABEL_A, LABEL_B]
    after = _sample("consul_server_fallback_total", {"server": LABEL_A, "status": "connect_error"})
    assert after == before + 1


@pytest.mark.parametrize("code", [500, 503, 504])
async def test_5xx_falls_back_to_the_next_server(code: int) -> None:
    """A 5xx from the first server is answered by the second."""
    fake = FakeConsul(a=status(code), b=ok(CATALOG_NODES))
    async with _client(fake) as consul:
        response = await consul.catalog_nodes()
    assert response.server == LABEL_B
    assert fake.servers_called() == [LABEL_A, LABEL_B]


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [(400, ConsulHTTPError), (403, ConsulACLDenied), (404, ConsulNotFound)],
)
async def test_4xx_does_not_fall_back(code: int, exc_type: type[ConsulHTTPError]) -> None:
    """A 4xx would be the same on every server, so it is raised without trying another."""
    fake = FakeConsul(a=status(code, "no", {"X-Consul-Index": "9"}), b=ok(CATALOG_NODES))
    async with _client(fake) as consul:
        with pytest.raises(exc_type) as caught:
            await consul.catalog_nodes()
        assert consul.active_server == LABEL_A
    assert caught.value.status == code
    assert caught.value.server == LABEL_A
    assert caught.value.index == 9
    assert fake.servers_called() == [LABEL_A]


async def test_rate_limited_read_falls_back_to_the_next_server() -> None:
    """A 429 (Consul's rate limit) is retried on the next server, as Consul asks clients to."""
    fake = FakeConsul(a=status(429), b=ok(CATALOG_NODES))
    async with _client(fake) as consul:
        response = await consul.catalog_nodes()
    assert response.server == LABEL_B
    assert fake.servers_called() == [LABEL_A, LABEL_B]


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_every_server_is_tried_once_per_attempt(retries: int) -> None:
    """With CONSUL_MAX_RETRIES=n each server is tried n+1 times, sleeping between attempts."""
    fake = FakeConsul(a=status(503), b=status(502))
    sleep = FakeSleep()
    async with _client(fake, sleep, CONSUL_MAX_RETRIES=retries, CONSUL_RETRY_DELAY=1.0) as consul:
        with pytest.raises(ConsulUnavailable) as caught:
            await consul.catalog_nodes()
    assert not isinstance(caught.value, ConsulTimeout)
    assert len(fake.requests) == 2 * (retries + 1)
    assert len(sleep.delays) == retries
    for attempt, delay in enumerate(sleep.delays, start=1):
        base = 2 ** (attempt - 1)
        assert 0.5 * base <= delay <= 1.5 * base


async def test_a_retry_can_succeed() -> None:
    """A server failing once and answering on the retry gives its answer."""
    answers = iter([httpx.Response(503), httpx.Response(200, json=[], headers=CONSUL_HEADERS)])
    fake = FakeConsul(a=lambda request: next(answers))
    sleep = FakeSleep()
    async with _client(fake, sleep, CONSUL_SERVERS=SERVER_A) as consul:
        response = await consul.catalog_nodes()
    assert response.data == []
    assert len(sleep.delays) == 1


async def test_timeout_is_reported_only_when_the_last_failure_timed_out() -> None:
    """ConsulTimeout when the last try timed out, ConsulUnavailable otherwise."""
    timing_out = FakeConsul(a=raises(httpx.ConnectError), b=raises(httpx.ReadTimeout))
    async with _client(timing_out, CONSUL_MAX_RETRIES=0) as consul:
        with pytest.raises(ConsulTimeout):
            await consul.catalog_nodes()
    refusing = FakeConsul(a=raises(httpx.ReadTimeout), b=raises(httpx.ConnectError))
    async with _client(refusing, CONSUL_MAX_RETRIES=0) as consul:
        with pytest.raises(ConsulUnavailable) as caught:
            await consul.catalog_nodes()
    assert not isinstance(caught.value, ConsulTimeout)


async def test_non_json_answer_raises_bad_response() -> None:
    """A 200 with a body that is not JSON raises ConsulBadResponse."""
    fake = FakeConsul(a=lambda request: httpx.Response(200, text="<html>proxy</html>"))
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        with pytest.raises(ConsulBadResponse):
            await consul.catalog_nodes()


async def test_token_from_consul_token_is_sent() -> None:
    """CONSUL_TOKEN is sent as X-Consul-Token on every request."""
    fake = FakeConsul(a=ok([]))
    async with _client(fake, CONSUL_SERVERS=SERVER_A, CONSUL_TOKEN="s3cr3t-token") as consul:
        await consul.catalog_nodes()
        await consul.members()
    assert [r.headers["X-Consul-Token"] for r in fake.requests] == ["s3cr3t-token"] * 2


async def test_token_from_consul_token_file_is_sent(tmp_path: Path) -> None:
    """CONSUL_TOKEN_FILE is read once, whitespace stripped, and sent as X-Consul-Token."""
    token_file = tmp_path / "consul.token"
    token_file.write_text("  file-token-123\n", encoding="utf-8")
    fake = FakeConsul(a=ok([]))
    async with _client(fake, CONSUL_SERVERS=SERVER_A, CONSUL_TOKEN_FILE=str(token_file)) as consul:
        await consul.catalog_nodes()
    assert fake.requests[0].headers["X-Consul-Token"] == "file-token-123"


async def test_no_token_sends_no_header() -> None:
    """Without a token no X-Consul-Token header is sent."""
    fake = FakeConsul(a=ok([]))
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        await consul.catalog_nodes()
    assert "X-Consul-Token" not in fake.requests[0].headers


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    """Setting both CONSUL_TOKEN and CONSUL_TOKEN_FILE is a settings error."""
    token_file = tmp_path / "consul.token"
    token_file.write_text("x", encoding="utf-8")
    settings = _settings(CONSUL_TOKEN="y", CONSUL_TOKEN_FILE=str(token_file))
    with pytest.raises(SettingsError):
        settings.consul_token_value()


@pytest.mark.parametrize(
    ("index", "wait", "expected"),
    [
        (21, 5.0, {"index": "21", "wait": "5000ms"}),
        (21, None, {"index": "21", "wait": "300000ms"}),
        (21, 3600.0, {"index": "21", "wait": "600000ms"}),
        (21, 0.25, {"index": "21", "wait": "250ms"}),
        (0, 5.0, {}),
        (None, 5.0, {}),
    ],
)
async def test_blocking_queries_send_index_and_wait(
    index: int | None, wait: float | None, expected: dict[str, str]
) -> None:
    """A positive index makes a blocking query with wait in ms (capped at 10 min); 0 does not."""
    fake = FakeConsul(a=ok(CATALOG_NODES))
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        await consul.catalog_nodes(index=index, wait=wait)
    assert dict(fake.requests[0].url.params) == expected


async def test_stale_and_datacenter_are_added_when_configured() -> None:
    """CONSUL_STALE adds ?stale and CONSUL_DATACENTER adds ?dc to every read."""
    fake = FakeConsul(a=ok([]))
    async with _client(
        fake, CONSUL_SERVERS=SERVER_A, CONSUL_STALE=True, CONSUL_DATACENTER="dc2"
    ) as consul:
        await consul.event_list("nodeview-resync", index=7, wait=1.0)
    params = fake.requests[0].url.params
    assert params["stale"] == ""
    assert params["dc"] == "dc2"
    assert params["name"] == "nodeview-resync"
    assert params["index"] == "7"


@pytest.mark.parametrize(
    ("headers", "index", "leader", "contact"),
    [
        (CONSUL_HEADERS | {"X-Consul-Index": "21"}, 21, True, 0),
        (
            {"X-Consul-Index": "7076322995783912171", "X-Consul-KnownLeader": "false"},
            7076322995783912171,
            False,
            None,
        ),
        ({"X-Consul-LastContact": "42"}, None, None, 42),
        ({"X-Consul-Index": "abc", "X-Consul-LastContact": "?"}, None, None, None),
    ],
    ids=["catalog", "event-list", "agent", "garbage"],
)
async def test_consistency_headers_are_parsed(
    headers: dict[str, str], index: int | None, leader: bool | None, contact: int | None
) -> None:
    """X-Consul-Index, KnownLeader and LastContact are parsed; missing or bad ones are None."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps([]).encode(), headers=headers)

    fake = FakeConsul(a=handle)
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        response = await consul.catalog_nodes()
    assert (response.index, response.known_leader, response.last_contact_ms) == (
        index,
        leader,
        contact,
    )
    assert response.server == LABEL_A


async def test_kv_get_of_a_missing_key_is_none_with_its_index() -> None:
    """A 404 on a KV key gives data None and the index from the header, not an error."""
    fake = FakeConsul(a=status(404, headers={"X-Consul-Index": "30"}))
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        response = await consul.kv_get("skills/eye/metadata/sites", index=22, wait=1.0)
    assert response.data is None
    assert response.index == 30
    assert response.server == LABEL_A
    assert fake.requests[0].url.path == "/v1/kv/skills/eye/metadata/sites"


async def test_kv_get_returns_the_single_entry() -> None:
    """A KV answer (a one-element list) is returned as the entry object with its headers."""
    fake = FakeConsul(a=ok([KV_ENTRY], {"X-Consul-Index": "22"}))
    async with _client(fake, CONSUL_SERVERS=SERVER_A) as consul:
        response = await consul.kv_get("skills/eye/metadata/sites")
    assert response.data == KV_ENTRY
    assert response.index == 22
    assert response.known_leader is True


@pytest.mark.parametrize(
    ("exc", "label"),
    [
        (ConsulTimeout("t", endpoint="e"), "timeout"),
        (ConsulUnavailable("u", endpoint="e"), "unavailable"),
        (ConsulACLDenied("d", endpoint="e", server="s", status=403), "acl_denied"),
        (ConsulNotFound("n", endpoint="e", server="s", status=404), "not_found"),
        (ConsulHTTPError("h", endpoint="e", server="s", status=400), "http_4xx"),
        (ConsulBadResponse("b", endpoint="e"), "bad_response"),
        (RuntimeError("other"), "error"),
    ],
)
def test_error_type_labels_are_bounded(exc: BaseException, label: str) -> None:
    """Each Consul error maps to one short metric label."""
    assert error_type(exc) == label


async def test_consul_error_text_stays_in_the_logs_not_in_the_public_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 403's text (token accessor id) is logged; the view's reason holds only its class."""
    denial = "Permission denied: token with AccessorID 'a1b2-secret-accessor' lacks node:read"
    fake = FakeConsul(a=status(403, denial), b=status(403, denial))
    async with _client(fake) as consul:
        with caplog.at_level("WARNING", logger="nodeview.enricher"):
            node = await read_node_services(consul, "prom-acl-01", "127.10.0.12")
            service = await read_service(consul, "node_exporter")
    for reason in (node.reason, service.reason):
        assert reason is not None
        assert reason.startswith("acl_denied: ")
        assert "a1b2-secret-accessor" not in reason
    logged = [getattr(record, "reason", "") for record in caplog.records]
    assert len(logged) == 2
    assert all("a1b2-secret-accessor" in reason for reason in logged)


async def test_a_path_every_server_refuses_pauses_only_itself() -> None:
    """One service read that every server answers 500 pauses that read, never the others."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/catalog/service/broken":
            return httpx.Response(500, text="rpc error")
        if request.url.path.startswith("/v1/catalog/service/"):
            return ok([])(request)
        return ok({"consul": []})(request)

    fake = FakeConsul(a=handler, b=handler)
    async with _client(fake, CONSUL_MAX_RETRIES=0) as consul:
        broken = await read_service(consul, "broken")
        assert broken.error_type == "unavailable"
        sent = len(fake.requests)
        again = await read_service(consul, "broken")
        assert again.error_type == "unavailable"
        assert len(fake.requests) == sent, "a paused path is not sent again at once"
        services = await consul.catalog_services()
        assert services.data == {"consul": []}
        other = await read_service(consul, "web")
        assert other.error_type is None


async def test_several_endpoints_refused_by_every_server_pause_every_read() -> None:
    """Consul down (two endpoints refused everywhere): other reads pause too, unsent."""
    fake = FakeConsul(a=status(500), b=status(500))
    async with _client(fake, CONSUL_MAX_RETRIES=0) as consul:
        assert (await read_service(consul, "web")).error_type == "unavailable"
        assert (await read_node_services(consul, "n1", "127.0.0.1")).error_type == "unavailable"
        sent = len(fake.requests)
        with pytest.raises(ConsulUnavailable, match="recently"):
            await consul.catalog_services()
        assert len(fake.requests) == sent


async def test_a_departed_nodes_failure_series_is_forgotten() -> None:
    """consul_node_enrich_failures_total keeps no series for nodes that left the view."""
    fake = FakeConsul(a=raises(httpx.ReadTimeout), b=raises(httpx.ReadTimeout))
    async with _client(fake) as consul:
        await read_node_services(consul, "prom-gone-01", "127.10.0.99")
    assert _failures("prom-gone-01", "timeout") >= 1
    metrics.forget_node("prom-gone-01")
    assert (
        REGISTRY.get_sample_value(
            "consul_node_enrich_failures_total", {"node": "prom-gone-01", "error_type": "timeout"}
        )
        is None
    )

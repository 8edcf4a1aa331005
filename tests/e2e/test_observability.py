"""End to end: one trace from Consul change to every API replica, metrics that move, safe logs."""

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.otlp import OtlpReceiver, ReceivedSpan
from tests.e2e.stack import Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CONSUL_TOKEN = "consul-acl-token-for-tests"


def _trace_with_every_hop(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """Return the spans of a trace that holds relay → enricher → Consul reads → both APIs."""
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    for trace_spans in by_trace.values():
        ids = {s.span_id: s for s in trace_spans}
        relay = [
            s
            for s in trace_spans
            if s.name.startswith("consul.watch ") and s.service == "nodeview-relay"
        ]
        enrich = [
            s
            for s in trace_spans
            if s.name == "nodeview.enrich" and s.parent_id in {r.span_id for r in relay}
        ]
        if not enrich:
            continue
        enrich_ids = {s.span_id for s in enrich}
        consul = [
            s for s in trace_spans if s.name.startswith("GET /v1/") and s.parent_id in enrich_ids
        ]
        applies = [s for s in trace_spans if s.name == "view.apply" and s.parent_id in enrich_ids]
        instances = {s.instance for s in applies}
        if consul and {"api-1", "api-2"} <= instances:
            assert all(ids[s.parent_id].service == "nodeview-enricher" for s in applies)
            return trace_spans
    summary = sorted({(s.service, s.instance, s.name, bool(s.parent_id)) for s in spans})
    raise AssertionError(f"no complete trace among {len(by_trace)} traces: {summary}")


async def test_one_consul_change_is_one_trace_through_every_service(tmp_path: Path) -> None:
    """A node joining is one trace: relay → enricher → Consul reads → each API replica's apply."""
    receiver = OtlpReceiver()
    await receiver.start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    stack = Stack(tmp_path, nodes=10, services=2, apis=0, extra_env=otel)
    try:
        await stack.start()
        for name in ("api-1", "api-2"):
            stack.add(
                name,
                ["api"],
                "API_PORT",
                {"OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={name}"},
            )
            await asyncio.to_thread(stack.processes[name].wait_ready)
        await eventually(lambda: stack.assert_converged("api-1"))
        stack.consul.state.join_node("traced-node-1", "127.70.0.1")
        await eventually(lambda: stack.assert_converged("api-2"))

        async def complete() -> list[ReceivedSpan]:
            return _trace_with_every_hop(receiver.spans)

        trace_spans = await eventually(complete, within=30)
        services = {s.service for s in trace_spans}
        assert {"nodeview-relay", "nodeview-enricher", "nodeview-api"} <= services

        await stack.http.get(stack.url("api-1") + "/api/v1/nodes")

        async def access_line_names_its_span() -> None:
            # The last line for the path is this request's: earlier reads were answered before.
            line = [
                line
                for line in _log_lines(stack, "api-1", "api.access")
                if line["path"] == "/api/v1/nodes"
            ][-1]
            spans = [s for s in receiver.spans if s.span_id == line["span_id"]]
            assert [(s.trace_id, s.name, s.service, s.instance) for s in spans] == [
                (line["trace_id"], "GET /api/v1/nodes", "nodeview-api", "api-1")
            ]

        await eventually(access_line_names_its_span, within=30)
    finally:
        await stack.stop()
        await receiver.stop()


async def test_metrics_move_after_consul_failures_and_logs_stay_clean(tmp_path: Path) -> None:
    """Consul faults move the fallback, failure and error metrics; logs warn and hold no secret."""
    stack = Stack(
        tmp_path,
        nodes=10,
        services=2,
        apis=1,
        acl_token=CONSUL_TOKEN,
        extra_env={"CONSUL_CATALOG_TIMEOUT": "0.3", "CONSUL_TOKEN": CONSUL_TOKEN},
    )
    try:
        await stack.start()
        await eventually(lambda: stack.assert_converged("api-1"))
        names = {
            "relay": ["nodeview_relay_published_total", "consul_requests_total"],
            "enricher-1": [
                "consul_requests_total",
                "consul_request_duration_seconds_bucket",
                "nodeview_events_total",
                "nodeview_nodes",
                "nodeview_nodes_services_error",
                "nodeview_resync_duration_seconds_bucket",
                "nodeview_consumer_pending",
            ],
            "api-1": [
                "nodeview_event_to_view_seconds_bucket",
                "nodeview_nodes",
                "nodeview_nodes_services_error",
                "nodeview_view_age_seconds",
                "nodeview_view_stale",
                "http_requests_total",
                "http_request_duration_seconds_bucket",
            ],
        }
        for name, metrics in names.items():
            text = (await stack.http.get(stack.url(name) + "/metrics")).text
            for metric in metrics:
                assert f"\n{metric}" in text, (name, metric)

        stack.consul.fail_requests(500, server=0)
        server0 = stack.consul.urls[0].removeprefix("http://")
        stack.consul.state.join_node("readable-node", "127.71.0.2")

        async def fell_back_and_read() -> None:
            fallback = await stack.metric(
                "enricher-1", "consul_server_fallback_total", {"server": server0, "status": "500"}
            )
            assert fallback >= 1
            entry = (await stack.nodes_of("api-1"))["readable-node"]
            assert entry["services_status"] == "ok", entry

        # The 500s first, alone, until readable-node's own read has landed in the view: slow reads
        # set while it is still pending would make it time out too.
        await eventually(fell_back_and_read, within=60)
        stack.consul.set_latency(5.0, path_prefix="/v1/catalog/node-services/")
        stack.consul.state.join_node("unreadable-node", "127.71.0.1")

        async def moved() -> None:
            failures = await stack.metric(
                "enricher-1",
                "consul_node_enrich_failures_total",
                {"node": "unreadable-node", "error_type": "timeout"},
            )
            gauge = await stack.metric("api-1", "nodeview_nodes_services_error", {})
            assert failures >= 1
            assert gauge >= 1

        await eventually(moved, within=60)
        entry = (await stack.nodes_of("api-1"))["unreadable-node"]
        assert entry["services_status"] == "error"
        stack.consul.clear_faults()

        warnings = [
            line
            for line in _log_lines(stack, "enricher-1", "enrich.node_failed")
            if line.get("node") == "unreadable-node"
        ]
        assert warnings, "no warning for the failed node read"
        for warning in warnings:
            assert warning["level"] == "warning"
            assert warning["addr"] == "127.71.0.1"
            assert "timed out" in warning["reason"] or "timeout" in warning["reason"]
        for process in stack.processes.values():
            text = process.log_text()
            for secret in (CONSUL_TOKEN, stack.relay_token, stack.admin_token):
                assert secret not in text, (process.name, "secret in log")
    finally:
        await stack.stop()


def _log_lines(stack: Stack, process: str, event: str) -> list[dict[str, Any]]:
    lines = []
    for raw in stack.processes[process].log_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if line.get("event") == event:
            lines.append(line)
    return lines

"""Prometheus metrics of nodeview, defined once and shared by every service."""

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from contracts.views import NodeStatus, NodeView

CONSUL_REQUESTS = Counter(
    "consul_requests_total",
    "Consul HTTP requests by endpoint template, server and outcome.",
    ["endpoint", "server", "outcome"],
)
CONSUL_REQUEST_DURATION = Histogram(
    "consul_request_duration_seconds",
    "Duration of Consul HTTP requests (blocking queries excluded).",
    ["endpoint", "server"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
CONSUL_SERVER_FALLBACK = Counter(
    "consul_server_fallback_total",
    "Times a Consul server failed and the next server of CONSUL_SERVERS was tried.",
    ["server", "status"],
)
CONSUL_INTERNAL_FALLBACK = Counter(
    "nodeview_consul_internal_fallback_total",
    "Times Consul refused an internal endpoint; for five minutes after each, the enricher "
    "reads through public endpoints instead.",
    ["endpoint", "status"],
)
CONSUL_NODE_ENRICH_FAILURES = Counter(
    "consul_node_enrich_failures_total",
    "Nodes whose services could not be read from Consul, by node and error type.",
    ["node", "error_type"],
)
CONSUL_NODE_ENRICH_DURATION = Histogram(
    "consul_node_enrich_duration_seconds",
    "Duration of reading one node's services from Consul.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
EVENTS = Counter(
    "nodeview_events_total",
    "Events handled, by watch type (or command) and outcome.",
    ["type", "outcome"],
)
RELAY_PUBLISHED = Counter(
    "nodeview_relay_published_total",
    "Consul changes published by the relay, by watch type, source and outcome.",
    ["type", "source", "outcome"],
)
RESYNCS = Counter(
    "nodeview_resyncs_total",
    "Full resyncs from Consul, by reason and outcome.",
    ["reason", "outcome"],
)
RESYNC_DURATION = Histogram(
    "nodeview_resync_duration_seconds",
    "Wall time of a full resync from Consul.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
VIEW_ENTRIES_REFUSED = Counter(
    "nodeview_view_entries_refused_total",
    "KV entries of the view an API replica could not decode (skipped, view kept)",
    ["kind"],
)
DEAD_LETTERS = Counter(
    "nodeview_dead_letters_total",
    "Messages moved to the dead-letter subject, by reason.",
    ["reason"],
)
REDELIVERIES = Counter(
    "nodeview_redeliveries_total",
    "Messages the enricher received more than once.",
)
EVENT_TO_VIEW = Histogram(
    "nodeview_event_to_view_seconds",
    "Freshness: time from a Consul change being observed to an API replica applying it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
NODES = Gauge("nodeview_nodes", "Nodes in the view, by status.", ["status"])
NODES_SERVICES_ERROR = Gauge(
    "nodeview_nodes_services_error",
    "Nodes whose services could not be read (services_status=error).",
)
VIEW_AGE = Gauge(
    "nodeview_view_age_seconds",
    "Age of the enricher's last heartbeat as seen by this API replica.",
)
VIEW_STALE = Gauge("nodeview_view_stale", "1 when this API replica serves a stale view.")
VIEW_DEGRADED = Gauge(
    "nodeview_view_degraded_items",
    "Items the active enricher cannot vouch for (a failing resync, a refused answer, …).",
)
CONSUMER_PENDING = Gauge(
    "nodeview_consumer_pending",
    "Enricher consumer lag: messages not yet delivered (pending) or not yet acked (ack_pending).",
    ["kind"],
)
ENRICHER_ACTIVE = Gauge("nodeview_enricher_active", "1 when this enricher holds the lock.")
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Duration of HTTP requests served, by method and route template.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


NODE_STATUSES: tuple[NodeStatus, ...] = get_args(NodeStatus)


def set_node_gauges(views: Iterable[NodeView]) -> None:
    """Set ``nodeview_nodes{status}`` and ``nodeview_nodes_services_error`` from the views."""
    NodeGauges.of(views).export()


def set_node_counts(by_status: Mapping[str, int], errors: int) -> None:
    """Set the node gauges from counts already made."""
    for status in NODE_STATUSES:
        NODES.labels(status).set(by_status.get(status, 0))
    NODES_SERVICES_ERROR.set(errors)


def forget_node(node: str) -> None:
    """Drop a node's enrichment-failure series once it left the view (bounded by live nodes)."""
    kinds = {
        sample.labels["error_type"]
        for family in CONSUL_NODE_ENRICH_FAILURES.collect()
        for sample in family.samples
        if sample.labels.get("node") == node
    }
    for kind in kinds:
        CONSUL_NODE_ENRICH_FAILURES.remove(node, kind)


@dataclass
class NodeGauges:
    """Counts behind the node gauges, kept in step with each write instead of recounted."""

    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: int = 0

    @classmethod
    def of(cls, views: Iterable[NodeView]) -> "NodeGauges":
        """Count a whole set of views."""
        gauges = cls()
        for view in views:
            gauges.replace(None, view)
        return gauges

    def replace(self, old: NodeView | None, new: NodeView | None) -> None:
        """Account for one view replaced (``None``: none before, or none after)."""
        if old is not None:
            self.by_status[old.status] -= 1
            self.errors -= old.services_status == "error"
        if new is not None:
            self.by_status[new.status] += 1
            self.errors += new.services_status == "error"

    def export(self) -> None:
        """Set the Prometheus gauges from the counts."""
        set_node_counts(self.by_status, self.errors)

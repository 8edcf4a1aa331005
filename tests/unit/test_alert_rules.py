"""Every alert expression names only metrics, and labels, that the services really export."""

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from services import metrics

promql_parser: Any = importlib.import_module("promql_parser")

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")
_SCRAPE_LABELS = {"instance", "job", "namespace", "pod", "service", "le"}


def _selectors(node: Any) -> list[Any]:
    """Every vector selector inside a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector] if hasattr(node, "vector_selector") else [node.vs]
    found: list[Any] = []
    for name in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, name, None)
        if child is not None and not isinstance(child, str | int | float):
            found += _selectors(child)
    for arg in getattr(node, "args", None) or []:
        found += _selectors(arg)
    return found


def _exported() -> dict[str, set[str]]:
    """Sample names the services export (with histogram/counter suffixes) and their labels."""
    names: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            base = value._name
            labels = set(value._labelnames)
            for suffix in ("", *_SUFFIXES):
                names.setdefault(base + suffix, set()).update(labels)
    return names


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_rules_file_has_every_rollback_trigger() -> None:
    """The rules encode the six rollback triggers and the mass services error alert."""
    expressions = " ".join(rule["expr"] for rule in _rules())
    for metric in (
        "consul_requests_total",
        "http_request_duration_seconds_bucket",
        "consul_node_enrich_failures_total",
        "http_requests_total",
        "nodeview_nodes_services_error",
        "nodeview_view_stale",
    ):
        assert metric in expressions


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r.get("alert")))
def test_each_alert_uses_exported_metrics_and_labels(rule: dict[str, Any]) -> None:
    """Each selector of the alert names a metric and labels that nodeview exports."""
    exported = _exported()
    selectors = _selectors(promql_parser.parse(rule["expr"]))
    assert selectors, rule["expr"]
    for selector in selectors:
        assert selector.name in exported, f"{rule['alert']}: {selector.name} is not exported"
        for matcher in selector.matchers.matchers:
            assert matcher.name in exported[selector.name] | _SCRAPE_LABELS, (
                f"{rule['alert']}: label {matcher.name} not on {selector.name}"
            )

"""Every alert names only metrics, labels and jobs nodeview exports, and links its runbook."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import exported_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
SEVERITIES = {"warning", "critical"}
RUNBOOK_URL = re.compile(r"docs/(?P<page>[a-z]+\.md)#(?P<anchor>[a-z0-9-]+)")
"""The one form of ``runbook_url``: a page of docs/ and an anchor, relative to the repository."""


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
    assert exported_metrics.selectors(rule["expr"]), rule["expr"]
    assert exported_metrics.problems(rule["expr"]) == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r.get("alert")))
def test_each_alert_selects_nodeview_jobs_only(rule: dict[str, Any]) -> None:
    """Each selector names the job of a nodeview role, so a shared Prometheus cannot misfire it."""
    assert exported_metrics.job_problems(rule["expr"]) == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r.get("alert")))
def test_each_alert_links_a_runbook_section_that_exists(rule: dict[str, Any]) -> None:
    """``runbook_url`` (not ``runbook``) points at an anchor that exists in docs/."""
    annotations = rule["annotations"]
    assert "runbook" not in annotations
    link = RUNBOOK_URL.fullmatch(annotations["runbook_url"])
    assert link is not None, annotations["runbook_url"]
    page = (ROOT / "docs" / link["page"]).read_text()
    assert f'<a id="{link["anchor"]}"></a>' in page


def test_severities_follow_impact() -> None:
    """Only warning and critical are used, and both are: not every alert pages."""
    severities = [rule["labels"]["severity"] for rule in _rules()]
    assert set(severities) == SEVERITIES


def test_the_checks_catch_a_foreign_metric_label_and_job() -> None:
    """The helpers reject an unknown metric, a label the metric lacks and a missing job."""
    expression = 'sum by (kind) (rate(nodeview_events_total{colour="red"}[5m])) + up_and_away'
    assert exported_metrics.problems(expression) == [
        "label colour is not on nodeview_events_total",
        "sum by/without: label kind is not on its operand",
        "up_and_away is not exported",
    ]
    assert exported_metrics.job_problems('nodeview_nodes{job=~".*api.*"}') == [
        "nodeview_nodes: job '.*api.*' is no nodeview role"
    ]
    assert exported_metrics.job_problems("nodeview_nodes") == ["nodeview_nodes has no job matcher"]

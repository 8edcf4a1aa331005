"""Grafana dashboard: an importable shape; queries that parse and name only nodeview's series."""

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests import exported_metrics
from tests.deploy.support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "nodeview.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MIN_SCHEMA_VERSION = 38
"""The dashboard schema of Grafana 10.0; older ones are migrated on import, newer ones are not."""
GRID_COLUMNS = 24
GRAFANA_RANGES = {"__rate_interval", "__interval", "__range"}
"""Grafana's own duration variables; each becomes a PromQL duration."""
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")
REQUIRED_SERIES = {
    "nodeview_event_to_view_seconds_bucket",
    "consul_requests_total",
    "nodeview_events_total",
    "nodeview_consumer_pending",
    "nodeview_view_degraded_items",
    "nodeview_nodes_services_error",
    "nodeview_resyncs_total",
    "consul_server_fallback_total",
    "nodeview_consul_internal_fallback_total",
    "nodeview_relay_published_total",
}
"""Freshness, reads per change, lag, degraded and error nodes, resyncs, Consul errors and
fallbacks, internal-endpoint fallbacks, relay publishes: what the dashboard is for."""


def _load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def _substitute(expr: str, variables: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """``expr`` with each variable as the marker ``var_<name>``, and the unknown variables."""
    unknown: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name in GRAFANA_RANGES:
            return "1m"
        if name not in variables:
            unknown.append(name)
        return f"var_{name}"

    return VARIABLE.sub(value, expr), unknown


def _query_problems(where: str, expr: str, variables: dict[str, dict[str, Any]]) -> list[str]:
    """Why one query would not work: unknown variables, bad PromQL, names nodeview lacks."""
    text, unknown = _substitute(expr, variables)
    found = [f"{where}: unknown variable ${name}" for name in unknown]
    try:
        selectors = exported_metrics.selectors(text)
    except ValueError as exc:
        return [*found, f"{where}: invalid PromQL: {exc}"]
    found += [f"{where}: {p}" for p in exported_metrics.problems(text)]
    found += [f"{where}: {p}" for p in exported_metrics.job_problems(text)]
    for selector in selectors:
        namespaces = [m.value for m in selector.matchers.matchers if m.name == "namespace"]
        if selector.name != "up" and namespaces != ["var_namespace"]:
            found.append(f"{where}: {selector.name} ignores the namespace variable")
    return found


def _layout_problems(panels: list[dict[str, Any]]) -> list[str]:
    """Panels that leave the grid or overlap another one."""
    found: list[str] = []
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        if grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > GRID_COLUMNS:
            found.append(f"panel {panel['id']}: outside the {GRID_COLUMNS} columns")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), panel["id"])
                if other != panel["id"]:
                    found.append(f"panel {panel['id']}: overlaps panel {other}")
    return sorted(set(found))


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """Every reason the dashboard would not import, filter or query as intended."""
    found: list[str] = []
    if dashboard.get("schemaVersion", 0) < MIN_SCHEMA_VERSION:
        found.append(f"schemaVersion below {MIN_SCHEMA_VERSION}")
    if not dashboard.get("uid") or not dashboard.get("title") or dashboard.get("id") is not None:
        found.append("a dashboard to import has a uid, a title and no id")
    variables = _variables(dashboard)
    source = variables.get("datasource", {})
    if source.get("type") != "datasource" or source.get("query") != "prometheus":
        found.append("no datasource variable for Prometheus")
    namespace = variables.get("namespace", {})
    if namespace.get("datasource") != DATASOURCE or not namespace.get("includeAll"):
        found.append("no namespace variable with an All option on the chosen Prometheus")
    query = LABEL_VALUES.fullmatch(str(namespace.get("query", "")))
    if query is None or query["label"] != "namespace":
        found.append("the namespace variable does not list namespaces")
    else:
        found += _query_problems("variable namespace", query["selector"], variables)
    panels = list(_panels(dashboard))
    ids = [panel.get("id") for panel in panels]
    if len(set(ids)) != len(ids) or None in ids:
        found.append("panel ids are missing or repeated")
    found += _layout_problems(panels)
    for panel in (p for p in panels if p.get("type") != "row"):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        targets = panel.get("targets") or []
        if not targets:
            found.append(f"{where}: no query")
        if panel.get("datasource") != DATASOURCE:
            found.append(f"{where}: datasource is not the $datasource variable")
        refs = [target.get("refId") for target in targets]
        if len(set(refs)) != len(refs):
            found.append(f"{where}: repeated refId")
        for target in targets:
            if target.get("datasource") != DATASOURCE:
                found.append(f"{where} {target.get('refId')}: datasource is not $datasource")
            found += _query_problems(f"{where} {target.get('refId')}", target["expr"], variables)
    return found


def _series_used(dashboard: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    variables = _variables(dashboard)
    for panel in _panels(dashboard):
        for target in panel.get("targets") or []:
            text, _ = _substitute(target["expr"], variables)
            names |= {selector.name for selector in exported_metrics.selectors(text)}
    return names


def test_the_dashboard_has_no_problem() -> None:
    """The JSON loads, imports as a Grafana 10+ dashboard and every query checks out."""
    assert dashboard_problems(_load()) == []


def test_the_dashboard_shows_what_operators_need() -> None:
    """It charts freshness, reads per change, lag, degraded/error nodes, resyncs and fallbacks."""
    assert _series_used(_load()) >= REQUIRED_SERIES


def _first_query(dashboard: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = next(p for p in _panels(dashboard) if p.get("targets"))["targets"][0]
    return target


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        (
            'sum(rate(nodeview_events_total{job="nodeview-enricher",namespace=~"$namespace"}[5m])',
            "invalid PromQL",
        ),
        (
            'nodeview_gone{job="nodeview-api",namespace=~"$namespace"}',
            "nodeview_gone is not exported",
        ),
        (
            'nodeview_nodes{job="nodeview-api",namespace=~"$namespace",colour="red"}',
            "label colour is not on nodeview_nodes",
        ),
        (
            'nodeview_nodes{job="nodeview-api",namespace=~"$namespace",pod=~"$pod"}',
            "unknown variable $pod",
        ),
        ('nodeview_nodes{namespace=~"$namespace"}', "nodeview_nodes has no job matcher"),
        ('nodeview_nodes{job="nodeview-api"}', "ignores the namespace variable"),
        (
            'nodeview_consumer_pending_bucket{job="nodeview-enricher",namespace=~"$namespace"}',
            "nodeview_consumer_pending_bucket is not exported",
        ),
    ],
)
def test_a_broken_query_is_reported(expr: str, problem: str) -> None:
    """A query that does not parse, or names what nodeview lacks, is reported with its panel."""
    dashboard = copy.deepcopy(_load())
    _first_query(dashboard)["expr"] = expr
    problems = dashboard_problems(dashboard)
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_a_panel_on_another_datasource_or_off_the_grid_is_reported() -> None:
    """A hard-wired datasource and a panel wider than the grid are both caught."""
    dashboard = copy.deepcopy(_load())
    panel = next(p for p in _panels(dashboard) if p.get("targets"))
    panel["datasource"] = {"type": "prometheus", "uid": "my-prometheus"}
    panel["gridPos"]["w"] = GRID_COLUMNS + 1
    problems = dashboard_problems(dashboard)
    assert any("datasource is not the $datasource variable" in p for p in problems)
    assert any("outside the 24 columns" in p for p in problems)

#!/usr/bin/env python3
"""Evaluate nodeview's rollback triggers against Prometheus and roll back in the documented order.

Standard library only, so it runs from a checkout with any Python 3.11, without installing nodeview.
Dry run by default: it prints the fired triggers and the plan; ``--apply`` runs the plan.
See docs/rollback.md for the meaning of each trigger and how to verify every step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SUBQUERY_STEP = "30s"
"""Resolution at which a trigger's condition must hold during its whole window."""

DEFAULT_NAMESPACE = "nodeview"
DEFAULT_HTTP_TIMEOUT = 10.0
DEFAULT_ROLLOUT_TIMEOUT = "300s"

EXIT_OK = 0
"""No trigger fired (or ``--force`` rollback done)."""
EXIT_FIRED = 1
"""At least one trigger fired (the plan was printed, or applied with ``--apply``)."""
EXIT_PROMETHEUS = 2
"""Prometheus could not be reached or refused a query: nothing was done."""
EXIT_KUBECTL = 3
"""A kubectl step failed: the steps after it were not run."""

PIPELINE_DEPLOYMENTS = ("nodeview-enricher", "nodeview-relay")
API_DEPLOYMENT = "nodeview-api"

API_JOB = "nodeview-api"
"""Prometheus ``job`` of the API's targets (docs/operations.md, "Jobs")."""
ENRICHER_JOB = "nodeview-enricher"
CONSUL_JOBS = "nodeview-enricher|nodeview-relay"
"""The jobs whose targets read Consul, as a regular expression."""
SERVICES_ERROR_RATIO = (
    f'max(nodeview_nodes_services_error{{job="{API_JOB}"}})'
    f' / max(sum by (instance) (nodeview_nodes{{job="{API_JOB}"}}))'
)
"""Share of the API's nodes whose services could not be read."""


@dataclass(frozen=True)
class Trigger:
    """One objective rollback criterion: a PromQL value, a threshold and how long it must hold."""

    name: str
    alert: str
    condition: str
    op: str
    threshold: float
    hold: str
    summary: str

    @property
    def alert_expr(self) -> str:
        """Return the expression of the alerting rule (paired with ``for: <hold>``)."""
        return f"{self.condition} {self.op} {self.threshold:g}"

    @property
    def query(self) -> str:
        """Return an instant query that is non-empty only if the condition held all window long."""
        window = f"[{self.hold}:{SUBQUERY_STEP}]"
        return f"min_over_time(({self.condition}){window}) {self.op} {self.threshold:g}"


TRIGGERS: tuple[Trigger, ...] = (
    Trigger(
        name="consul_timeouts",
        alert="NodeviewConsulTimeoutRateHigh",
        condition=(
            f'sum(rate(consul_requests_total{{job=~"{CONSUL_JOBS}",outcome="timeout"}}[5m]))'
            f' / sum(rate(consul_requests_total{{job=~"{CONSUL_JOBS}"}}[5m]))'
        ),
        op=">",
        threshold=0.05,
        hold="10m",
        summary="more than 5 % of Consul reads time out",
    ),
    Trigger(
        name="nodes_p99",
        alert="NodeviewNodesLatencyP99High",
        condition=(
            "histogram_quantile(0.99, sum by (le) "
            f'(rate(http_request_duration_seconds_bucket{{job="{API_JOB}",'
            'route="/api/v1/nodes"}[5m])))'
        ),
        op=">",
        threshold=5,
        hold="5m",
        summary="P99 latency of GET /api/v1/nodes above 5 s",
    ),
    Trigger(
        name="enrich_failures",
        alert="NodeviewEnrichFailuresHigh",
        condition=f'sum(rate(consul_node_enrich_failures_total{{job="{ENRICHER_JOB}"}}[5m])) * 60',
        op=">",
        threshold=10,
        hold="5m",
        summary="more than 10 node enrichment failures per minute",
    ),
    Trigger(
        name="http_5xx",
        alert="NodeviewHttp5xxRateHigh",
        condition=(
            f'sum(rate(http_requests_total{{job="{API_JOB}",status=~"5.."}}[5m]))'
            f' / sum(rate(http_requests_total{{job="{API_JOB}"}}[5m]))'
        ),
        op=">",
        threshold=0.01,
        hold="5m",
        summary="more than 1 % of HTTP answers are 5xx",
    ),
    Trigger(
        name="all_nodes_services_error",
        alert="NodeviewAllNodesServicesError",
        condition=SERVICES_ERROR_RATIO,
        op=">=",
        threshold=1,
        hold="1m",
        summary='services_status="error" on every node',
    ),
    Trigger(
        name="mass_nodes_services_error",
        alert="NodeviewManyNodesServicesError",
        condition=SERVICES_ERROR_RATIO,
        op=">",
        threshold=0.5,
        hold="5m",
        summary='services_status="error" on over half of the nodes',
    ),
    Trigger(
        name="view_stale",
        alert="NodeviewViewStale",
        condition=f'max(nodeview_view_stale{{job="{API_JOB}"}})',
        op=">=",
        threshold=1,
        hold="5m",
        summary="the API serves a stale view",
    ),
)


class RollbackError(Exception):
    """Base of the errors this script reports."""


class PrometheusUnavailable(RollbackError):
    """Prometheus could not be reached or did not answer in time."""


class PrometheusQueryFailed(RollbackError):
    """Prometheus answered, but not with a successful vector result."""


class KubectlFailed(RollbackError):
    """A kubectl command of the plan exited non-zero."""


def query_prometheus(base_url: str, promql: str, timeout: float) -> list[Any]:
    """Run an instant query and return its result vector."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    if not url.startswith(("http://", "https://")):
        raise PrometheusUnavailable(f"not an http(s) URL: {base_url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        if not body:
            raise PrometheusQueryFailed(f"HTTP {exc.code} from {base_url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusUnavailable(f"cannot reach Prometheus at {base_url}: {reason}") from exc
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise PrometheusQueryFailed(f"answer of {base_url} is not JSON") from exc
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error", "unknown error") if isinstance(answer, dict) else answer
        raise PrometheusQueryFailed(f"query failed: {error}: {promql}")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise PrometheusQueryFailed(f"expected a vector result for: {promql}")
    return list(data["result"])


def fired_triggers(base_url: str, triggers: Sequence[Trigger], timeout: float) -> list[Trigger]:
    """Return the triggers whose condition held during their whole window."""
    return [t for t in triggers if query_prometheus(base_url, t.query, timeout)]


@dataclass(frozen=True)
class Step:
    """One step of the rollback plan: a command to run, or a manual action to take."""

    stage: str
    argv: tuple[str, ...] | None
    note: str = ""

    def describe(self) -> str:
        """Return the step as one printable line."""
        if self.argv is None:
            return f"[{self.stage}] MANUAL: {self.note}"
        return f"[{self.stage}] " + " ".join(self.argv)


def _undo(kubectl: str, stage: str, namespace: str, name: str, timeout: str) -> list[Step]:
    """Return the undo step of one Deployment and the wait for its rollout."""
    target = f"deployment/{name}"
    return [
        Step(stage, (kubectl, "--namespace", namespace, "rollout", "undo", target)),
        Step(
            stage,
            (
                kubectl,
                "--namespace",
                namespace,
                "rollout",
                "status",
                target,
                f"--timeout={timeout}",
            ),
        ),
    ]


def plan_steps(
    kubectl: str,
    namespace: str,
    dashboard: str | None,
    config_dir: str | None,
    rollout_timeout: str = DEFAULT_ROLLOUT_TIMEOUT,
) -> list[Step]:
    """Return the rollback plan: dashboard, api, enricher and relay, then configuration."""
    steps: list[Step] = []
    if dashboard:
        dash_ns, _, dash_name = dashboard.rpartition("/")
        steps += _undo(kubectl, "dashboard", dash_ns or namespace, dash_name, rollout_timeout)
    else:
        steps.append(
            Step(
                "dashboard", None, "point the dashboard back at the old backend (docs/rollback.md)"
            )
        )
    steps += _undo(kubectl, "api", namespace, API_DEPLOYMENT, rollout_timeout)
    for name in PIPELINE_DEPLOYMENTS:
        steps += _undo(kubectl, "pipeline", namespace, name, rollout_timeout)
    if config_dir:
        steps.append(Step("configuration", (kubectl, "apply", "--kustomize", config_dir)))
    else:
        steps.append(
            Step(
                "configuration",
                None,
                "apply the last good overlay: kubectl apply -k <checkout>/deploy/k8s/overlays/prod",
            )
        )
    return steps


def run_steps(steps: Sequence[Step]) -> None:
    """Run the plan's commands in order, stopping at the first failure."""
    for step in steps:
        print(step.describe(), flush=True)
        if step.argv is None:
            continue
        try:
            completed = subprocess.run(step.argv, check=False)
        except OSError as exc:
            raise KubectlFailed(f"cannot run {step.argv[0]}: {exc}") from exc
        if completed.returncode != 0:
            raise KubectlFailed(f"exit code {completed.returncode}: {' '.join(step.argv)}")


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", default=True, help="print only (default)")
    mode.add_argument("--apply", action="store_true", help="run the rollback steps")
    parser.add_argument("--force", action="store_true", help="plan a rollback with no trigger")
    parser.add_argument("--kubectl", default="kubectl", help="kubectl executable")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="nodeview's namespace")
    parser.add_argument("--dashboard", help="dashboard Deployment as [NAMESPACE/]NAME")
    parser.add_argument("--config-dir", help="kustomize directory of the last good configuration")
    parser.add_argument("--timeout", type=float, default=DEFAULT_HTTP_TIMEOUT, help="seconds")
    parser.add_argument("--rollout-timeout", default=DEFAULT_ROLLOUT_TIMEOUT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate the triggers, print them and the plan, and apply it when asked."""
    args = build_parser().parse_args(argv)
    try:
        fired = fired_triggers(args.prometheus, TRIGGERS, args.timeout)
    except RollbackError as exc:
        print(f"error: {exc}; no action taken", file=sys.stderr)
        return EXIT_PROMETHEUS
    for trigger in TRIGGERS:
        state = "FIRED" if trigger in fired else "ok"
        print(f"{state:5} {trigger.name}: {trigger.summary} for {trigger.hold}")
    if not fired and not args.force:
        print("no rollback trigger fired; nothing to do")
        return EXIT_OK
    steps = plan_steps(
        args.kubectl, args.namespace, args.dashboard, args.config_dir, args.rollout_timeout
    )
    if not args.apply:
        print("rollback plan (dry run; pass --apply to run it):")
        for step in steps:
            print("  " + step.describe())
        return EXIT_FIRED if fired else EXIT_OK
    print("rolling back:")
    try:
        run_steps(steps)
    except KubectlFailed as exc:
        print(f"error: {exc}; later steps not run", file=sys.stderr)
        return EXIT_KUBECTL
    print("rollback steps done; verify each part as docs/rollback.md says")
    return EXIT_FIRED if fired else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

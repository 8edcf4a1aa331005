"""Tests of scripts/rollback.py against a fake Prometheus and a recording kubectl."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    ROOT,
    SCRIPTS,
    PrometheusState,
    fake_prometheus,
    load_script,
    recorded,
    write_fake_kubectl,
)

rollback = load_script("rollback")
TRIGGERS: tuple[Any, ...] = rollback.TRIGGERS
RUN_TIMEOUT = 60


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the rollback script as an operator would."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "rollback.py"), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def free_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_no_trigger_does_nothing(tmp_path: Path) -> None:
    """With every query empty, even --apply runs no kubectl and exits 0."""
    kubectl, log = write_fake_kubectl(tmp_path)
    state = PrometheusState()
    with fake_prometheus(state) as url:
        done = run("--prometheus", url, "--apply", "--kubectl", str(kubectl))
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    assert recorded(log) == []
    assert sorted(state.received) == sorted(t.query for t in TRIGGERS)


@pytest.mark.parametrize("trigger", TRIGGERS, ids=[t.name for t in TRIGGERS])
def test_each_trigger_alone_is_reported(tmp_path: Path, trigger: Any) -> None:
    """A trigger that held is reported as fired, the others as ok; a dry run runs nothing."""
    kubectl, log = write_fake_kubectl(tmp_path)
    with fake_prometheus(PrometheusState(firing={trigger.query})) as url:
        done = run("--prometheus", url, "--kubectl", str(kubectl))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert f"FIRED {trigger.name}: {trigger.summary} for {trigger.hold}" in lines
    fired = [line for line in lines if line.startswith("FIRED")]
    assert len(fired) == 1
    assert "dry run" in done.stdout
    assert recorded(log) == []


def test_apply_runs_steps_in_documented_order(tmp_path: Path) -> None:
    """--apply undoes dashboard, api, enricher, relay, then applies the configuration, in order."""
    kubectl, log = write_fake_kubectl(tmp_path)
    with fake_prometheus(PrometheusState(firing={TRIGGERS[0].query})) as url:
        done = run(
            "--prometheus",
            url,
            "--apply",
            "--kubectl",
            str(kubectl),
            "--dashboard",
            "web/dashboard",
            "--config-dir",
            "good/deploy/k8s/overlays/prod",
        )
    assert done.returncode == 1, done.stderr
    ns = ["--namespace", "nodeview"]
    expected = [["--namespace", "web", "rollout", "undo", "deployment/dashboard"]]
    expected.append(
        ["--namespace", "web", "rollout", "status", "deployment/dashboard", "--timeout=300s"]
    )
    for name in ("nodeview-api", "nodeview-enricher", "nodeview-relay"):
        expected.append([*ns, "rollout", "undo", f"deployment/{name}"])
        expected.append([*ns, "rollout", "status", f"deployment/{name}", "--timeout=300s"])
    expected.append(["apply", "--kustomize", "good/deploy/k8s/overlays/prod"])
    assert recorded(log) == expected


def test_apply_without_dashboard_names_the_manual_steps(tmp_path: Path) -> None:
    """Without --dashboard and --config-dir those steps are manual; the others still run."""
    kubectl, log = write_fake_kubectl(tmp_path)
    with fake_prometheus(PrometheusState(firing={TRIGGERS[-1].query})) as url:
        done = run("--prometheus", url, "--apply", "--kubectl", str(kubectl))
    assert done.returncode == 1, done.stderr
    assert "[dashboard] MANUAL" in done.stdout
    assert "[configuration] MANUAL" in done.stdout
    undone = [argv[4] for argv in recorded(log) if argv[3] == "undo"]
    assert undone == [
        "deployment/nodeview-api",
        "deployment/nodeview-enricher",
        "deployment/nodeview-relay",
    ]


def test_failed_kubectl_stops_the_rollback(tmp_path: Path) -> None:
    """A failing step is reported with exit code 3 and no later step runs."""
    kubectl, log = write_fake_kubectl(tmp_path, exit_code=1)
    with fake_prometheus(PrometheusState(firing={TRIGGERS[1].query})) as url:
        done = run("--prometheus", url, "--apply", "--kubectl", str(kubectl))
    assert done.returncode == 3
    assert "later steps not run" in done.stderr
    assert len(recorded(log)) == 1


def test_prometheus_down_is_a_clear_error_and_no_action(tmp_path: Path) -> None:
    """An unreachable Prometheus gives exit code 2, a one-line reason, and no kubectl call."""
    kubectl, log = write_fake_kubectl(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    done = run("--prometheus", url, "--apply", "--kubectl", str(kubectl), "--timeout", "5")
    assert done.returncode == 2
    assert f"cannot reach Prometheus at {url}" in done.stderr
    assert "no action taken" in done.stderr
    assert "Traceback" not in done.stderr
    assert recorded(log) == []


def test_prometheus_query_error_is_no_action(tmp_path: Path) -> None:
    """A Prometheus that refuses the queries is an error too: exit code 2, no kubectl call."""
    kubectl, log = write_fake_kubectl(tmp_path)
    with fake_prometheus(PrometheusState(error="parse error")) as url:
        done = run("--prometheus", url, "--apply", "--kubectl", str(kubectl))
    assert done.returncode == 2
    assert "parse error" in done.stderr
    assert recorded(log) == []


def test_alert_rules_encode_the_same_triggers() -> None:
    """rules.yml's rollback group alerts on exactly the script's triggers, thresholds, windows."""
    yaml: Any = importlib.import_module("yaml")
    groups = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
    rules = {r["alert"]: r for g in groups if g["name"] == "nodeview-rollback" for r in g["rules"]}
    assert set(rules) == {t.alert for t in TRIGGERS}
    for trigger in TRIGGERS:
        rule = rules[trigger.alert]
        assert " ".join(rule["expr"].split()) == trigger.alert_expr
        assert rule["for"] == trigger.hold
        assert rule["labels"]["rollback_trigger"] == trigger.name


def test_trigger_query_requires_the_whole_window() -> None:
    """Each query takes the minimum over the trigger's window, so a short spike does not fire."""
    for trigger in TRIGGERS:
        window = f"[{trigger.hold}:{rollback.SUBQUERY_STEP}]"
        assert trigger.query == (
            f"min_over_time(({trigger.condition}){window}) {trigger.op} {trigger.threshold:g}"
        )


def test_trigger_expressions_are_valid_promql() -> None:
    """Every alert expression and every query the script sends parses as PromQL."""
    promql: Any = importlib.import_module("promql_parser")
    for trigger in TRIGGERS:
        promql.parse(trigger.alert_expr)
        promql.parse(trigger.query)


def test_runbook_documents_every_trigger() -> None:
    """docs/rollback.md has an anchor, the alert name and the window of every trigger."""
    runbook = (ROOT / "docs" / "rollback.md").read_text()
    for trigger in TRIGGERS:
        assert f'<a id="{trigger.name.replace("_", "-")}"></a>`{trigger.name}`' in runbook
        assert f"| {trigger.alert} |" in runbook
        assert f"| {trigger.hold} |" in runbook

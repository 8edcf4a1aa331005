"""Tests of scripts/k8s_check.py: the real overlays pass, broken copies fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.deploy.support import ROOT, SCRIPTS, load_script

k8s_check = load_script("k8s_check")
RUN_TIMEOUT = 180


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the check as CI does."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "k8s_check.py"), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def broken_copy(tmp_path: Path, file: str, edit: Callable[[str], str]) -> Path:
    """Copy deploy/k8s (dev overlay only), apply ``edit`` to one file and return the copy."""
    copy = tmp_path / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    shutil.rmtree(copy / "overlays" / "prod")
    target = copy / file
    before = target.read_text()
    after = edit(before)
    assert after != before
    target.write_text(after)
    return copy


def test_every_overlay_renders_and_validates() -> None:
    """dev and prod render with kubectl kustomize and pass every check."""
    done = run_check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "overlay dev:" in done.stdout
    assert "overlay prod:" in done.stdout
    assert "k8s-check: 2 overlay(s) rendered and valid" in done.stdout


def test_unknown_field_fails_strict_validation(tmp_path: Path) -> None:
    """A misspelt field of a Deployment is rejected by the strict Kubernetes schema."""
    copy = broken_copy(
        tmp_path, "base/api.yaml", lambda t: t.replace("  replicas: 3\n", "  replicaz: 3\n")
    )
    done = run_check("--k8s-dir", str(copy))
    assert done.returncode == 1
    assert "Deployment/nodeview-api" in done.stderr
    assert "replicaz" in done.stderr


def test_bad_prometheus_rule_fails_its_schema(tmp_path: Path) -> None:
    """A PrometheusRule whose duration is not a Prometheus duration is rejected."""
    copy = broken_copy(
        tmp_path, "base/monitoring.yaml", lambda t: t.replace("for: 10m", "for: 10 minutes", 1)
    )
    done = run_check("--k8s-dir", str(copy))
    assert done.returncode == 1
    assert "PrometheusRule/nodeview-rollback" in done.stderr
    assert "10 minutes" in done.stderr
    assert "groups differ from rules.yml" in done.stderr


def test_unrenderable_overlay_fails(tmp_path: Path) -> None:
    """An overlay naming a missing resource fails at the kustomize step."""
    copy = broken_copy(
        tmp_path,
        "base/kustomization.yaml",
        lambda t: t.replace("  - api.yaml\n", "  - api.yaml\n  - missing.yaml\n"),
    )
    done = run_check("--k8s-dir", str(copy))
    assert done.returncode == 1
    assert "kustomize failed" in done.stderr


def workload(**container: Any) -> dict[str, Any]:
    """Return a minimal Deployment with one container built from ``container``."""
    return {
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"securityContext": {"runAsNonRoot": True}, "containers": [container]},
            },
        },
    }


DENY_ALL = {
    "kind": "NetworkPolicy",
    "metadata": {"name": "default-deny"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}
GOOD_CONTAINER: dict[str, Any] = {
    "name": "web",
    "image": "web:1.0",
    "livenessProbe": {},
    "readinessProbe": {},
    "resources": {
        "requests": {"cpu": "1", "memory": "1Mi"},
        "limits": {"cpu": "1", "memory": "1Mi"},
    },
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    },
}


def test_policy_accepts_a_hardened_workload() -> None:
    """A container with probes, limits, pinned image and a locked-down context passes."""
    assert k8s_check.policy_problems([workload(**GOOD_CONTAINER), DENY_ALL]) == []


def test_policy_names_each_broken_house_rule() -> None:
    """Each missing house rule of a container is reported by name."""
    bad = {**GOOD_CONTAINER, "image": "web:latest", "securityContext": {}}
    del bad["readinessProbe"]
    problems = k8s_check.policy_problems([workload(**bad)])
    text = "\n".join(problems)
    for expected in (
        "not pinned",
        "no readinessProbe",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "drop ALL",
        "no default-deny NetworkPolicy",
    ):
        assert expected in text


def test_policy_requires_a_budget_for_replicated_workloads() -> None:
    """A workload with more than one replica and no PodDisruptionBudget is reported."""
    replicated = workload(**GOOD_CONTAINER)
    replicated["spec"]["replicas"] = 3
    assert k8s_check.policy_problems([replicated, DENY_ALL]) == [
        "Deployment/web: no PodDisruptionBudget selects its pods"
    ]
    budget = {
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }
    assert k8s_check.policy_problems([replicated, DENY_ALL, budget]) == []


def test_invalid_promql_in_rules_file_fails(tmp_path: Path) -> None:
    """An alert expression that is not PromQL is reported by name."""
    rules = tmp_path / "deploy" / "prometheus" / "rules.yml"
    rules.parent.mkdir(parents=True)
    text = (ROOT / "deploy" / "prometheus" / "rules.yml").read_text()
    stale = 'max(nodeview_view_stale{job="nodeview-api"}) >= 1'
    assert stale in text
    rules.write_text(text.replace(stale, stale.replace("}) >=", "} >=")))
    problems = k8s_check.rules_problems([], rules, ROOT / "deploy" / "k8s" / "schemas")
    assert len(problems) == 1
    assert "NodeviewViewStale: invalid PromQL" in problems[0]

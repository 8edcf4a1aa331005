"""The benchmark's ``--quick`` run works end to end and writes a complete report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_RUN_TIMEOUT_SECONDS = 600
"""Generous bound for a run meant to take under two minutes on an idle machine."""

SECTIONS = (
    "## Run",
    "## Goals",
    "## `GET /api/v1/nodes` latency",
    "## Throughput",
    "## Freshness",
    "## Consul load",
    "## Churn",
    "## Memory",
)


@pytest.mark.e2e
@pytest.mark.timeout(QUICK_RUN_TIMEOUT_SECONDS + 30)
def test_quick_run_writes_results_and_report(tmp_path: Path) -> None:
    """``scripts/bench_nodes.py --quick`` writes the JSON, the report and its plots."""
    report = tmp_path / "report.md"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_nodes.py"),
            "--mode",
            "all",
            "--quick",
            "--results-dir",
            str(tmp_path / "results"),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        check=True,
        timeout=QUICK_RUN_TIMEOUT_SECONDS,
    )
    (results_file,) = (tmp_path / "results").glob("*.json")
    results = json.loads(results_file.read_text())
    assert {"machine", "profile", "phases", "rss"} <= set(results)
    phase = results["phases"][0]
    for key in ("latency", "throughput", "per_change", "resync", "steady", "freshness", "churn"):
        assert key in phase, key
    assert {"legacy_miss", "legacy_hit", "nodeview", "nodeview_304"} <= set(phase["latency"])
    assert {r["system"] for r in phase["throughput"]} == {"legacy_hit", "nodeview"}
    text = report.read_text()
    for section in SECTIONS:
        assert section in text, section
    for plot in ("latency", "freshness", "churn"):
        assert (tmp_path / f"report-{plot}.png").stat().st_size > 0

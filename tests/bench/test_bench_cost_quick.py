"""The benchmark's ``--mode cost --quick`` run works end to end and writes its section."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_RUN_TIMEOUT_SECONDS = 300
"""Generous bound for a run meant to take under a minute on an idle machine."""

KINDS = {
    "node_join",
    "node_leave",
    "node_fail",
    "service_register",
    "instance_add",
    "service_deregister",
    "sites_change",
}

SECTIONS = (
    "## Per-change cost as the cluster grows",
    "### Goals",
    "### Consul reads by the enricher per change",
    "### Blocking queries held on Consul",
    "### Bytes added to the stream per change",
    "### CPU per change",
    "### Freshness, one change at a time, beside its floor",
    "### Churn at 100 x 10, steady",
    "### Churn at 100 x 10, growing",
    "### Full resync",
)


@pytest.mark.e2e
@pytest.mark.timeout(QUICK_RUN_TIMEOUT_SECONDS + 30)
def test_quick_cost_run_writes_results_and_section(tmp_path: Path) -> None:
    """``--mode cost --quick`` measures every change kind and puts its section above old text."""
    report = tmp_path / "report.md"
    report.write_text("# nodeview benchmark\n\n## An earlier run\n\nkept below\n")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_nodes.py"),
            "--mode",
            "cost",
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
    assert results["complete"]
    (shape,) = results["shapes"]
    assert {row["kind"] for row in shape["changes"]} == KINDS
    assert all(row["seen"] for row in shape["changes"])
    assert {"cpu", "freshness", "resync", "held_at_rest"} <= set(shape)
    assert shape["freshness"]["all"]["visible"]["count"] > 0
    for key in ("churn", "churn_growing"):
        # Every change of a churn run is seen: in the steady mix, the undos as well.
        assert shape[key]["changes"] > 0
        assert shape[key]["not_seen"] == 0, shape[key]["not_seen_by_kind"]
    text = report.read_text()
    for section in SECTIONS:
        assert section in text, section
    assert text.index(SECTIONS[0]) < text.index("## An earlier run") < text.index("kept below")
    for plot in ("cost-reads", "cost-freshness"):
        assert (tmp_path / f"report-{plot}.png").stat().st_size > 0

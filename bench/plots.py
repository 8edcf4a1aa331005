"""PNG plots of a run: latency percentiles, freshness distribution, churn over time."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

VARIANTS = ("legacy_miss", "legacy_hit", "nodeview", "nodeview_304")
DPI = 80


def _save(fig: Figure, path: Path) -> bool:
    """Lay a figure out, write it to ``path`` and free it; ``True``: a plot was written."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def latency(results: dict[str, Any], path: Path) -> bool:
    """Bars of p50/p95/p99 per variant and size (log scale); False when there is no data."""
    phases = [p for p in results["phases"] if "latency" in p]
    if not phases:
        return False
    fig, axes = plt.subplots(1, len(phases), figsize=(4.2 * len(phases), 3.6), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        present = [v for v in VARIANTS if phase["latency"].get(v, {}).get("count")]
        for offset, pct in enumerate(("p50", "p95", "p99")):
            values = [phase["latency"][v][pct] for v in present]
            xs = [i + (offset - 1) * 0.27 for i in range(len(present))]
            ax.bar(xs, values, width=0.27, label=pct)
        ax.set_xticks(range(len(present)), [v.replace("_", "\n") for v in present], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"N = {phase['nodes']:,}")
        ax.set_ylabel("ms")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("GET /api/v1/nodes latency (one sequential client)")
    return _save(fig, path)


def freshness(results: dict[str, Any], path: Path) -> bool:
    """Cumulative distribution of freshness per change kind; False when not measured."""
    data = next((p["freshness"] for p in results["phases"] if "freshness" in p), None)
    if data is None:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for kind, samples in data["samples_ms"].items():
        if samples:
            ordered = sorted(samples)
            ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.step(ordered, ys, where="post", label=kind)
    ax.axvline(50, color="gray", linestyle="--", linewidth=1, label="goal p99 50 ms")
    ax.set_xlabel("Consul change → API event (ms)")
    ax.set_ylabel("fraction of changes")
    ax.set_title("nodeview freshness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def churn(results: dict[str, Any], path: Path) -> bool:
    """Freshness per window and consumer lag over the churn run; False when not measured."""
    data = next((p["churn"] for p in results["phases"] if "churn" in p), None)
    if data is None:
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.2), sharex=True)
    windows = [w for w in data["windows"] if w.get("count")]
    xs = [w["start_s"] for w in windows]
    for pct in ("p50", "p99"):
        top.plot(xs, [w[pct] for w in windows], marker="o", label=pct)
    top.set_ylabel("freshness (ms)")
    top.set_title(f"churn: {data['achieved_rate']} changes/s")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    ts = [s["t"] for s in data["lag"]]
    bottom.plot(ts, [s["num_pending"] for s in data["lag"]], label="num_pending")
    bottom.plot(ts, [s["num_ack_pending"] for s in data["lag"]], label="num_ack_pending")
    bottom.set_xlabel("seconds since start")
    bottom.set_ylabel("messages")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8)
    return _save(fig, path)


def cost_reads(results: dict[str, Any], path: Path) -> bool:
    """Worst enricher reads per change vs nodes, one line per service-name count."""
    shapes = [e for e in results.get("shapes", []) if e.get("changes")]
    if not shapes:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for names in sorted({e["names"] for e in shapes}):
        rows = sorted((e for e in shapes if e["names"] == names), key=lambda e: e["nodes"])
        worst = [max(r["enricher_reads"] for r in e["changes"]) for e in rows]
        mean = [sum(r["enricher_reads"] for r in e["changes"]) / len(e["changes"]) for e in rows]
        xs = [e["nodes"] for e in rows]
        ax.plot(xs, worst, marker="o", label=f"{names} names, worst kind")
        ax.plot(xs, mean, marker="x", linestyle=":", label=f"{names} names, mean of kinds")
    ax.axhline(2, color="gray", linestyle="--", linewidth=1, label="goal ≤ 2")
    top = max(r["enricher_reads"] for e in shapes for r in e["changes"])
    ax.set_ylim(0, max(top, 2) + 1)
    ax.set_xscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("Consul reads per change")
    ax.set_title("enricher reads per change")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def cost_freshness(results: dict[str, Any], path: Path) -> bool:
    """Freshness p50/p99 and the floor's p50/p99 vs nodes; False when not measured."""
    shapes = [e for e in results.get("shapes", []) if e.get("freshness")]
    if not shapes:
        return False
    shapes.sort(key=lambda e: e["nodes"])
    xs = [e["nodes"] for e in shapes]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for series, style in (("visible", "-"), ("floor", "--")):
        for pct in ("p50", "p99"):
            ys = [e["freshness"]["all"][series].get(pct, float("nan")) for e in shapes]
            label = f"{'nodeview' if series == 'visible' else 'floor'} {pct}"
            ax.plot(xs, ys, marker="o", linestyle=style, label=label)
    for e in shapes:
        p99 = e["freshness"]["all"]["visible"].get("p99", 0.0)
        ax.annotate(f"{e['names']} names", (e["nodes"], p99), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("ms after the Consul write returned")
    ax.set_title("freshness, one change at a time, vs a bare blocking client")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)

"""Percentiles and summaries of latency samples."""

import math
from collections.abc import Sequence

PERCENTILES = (50, 95, 99)


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``samples``; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """Count, p50/p95/p99, max and mean of samples given in seconds, reported in ms."""
    if not samples:
        return {"count": 0}
    result: dict[str, float] = {"count": len(samples)}
    for pct in PERCENTILES:
        result[f"p{pct}"] = round(percentile(samples, pct) * 1000, 3)
    result["max"] = round(max(samples) * 1000, 3)
    result["mean"] = round(sum(samples) / len(samples) * 1000, 3)
    return result

"""The per-change cost goals, checked against a cost results document (reported, not asserted)."""

from typing import Any

from bench.changes import COST_KINDS

READS_PER_CHANGE = 2
"""Consul reads the enricher may make for one change, at every cluster shape."""

HELD_QUERIES = 6
"""Blocking queries nodeview may hold on Consul."""

BYTES_PER_CHANGE = 4 * 1024
"""Bytes one single-node change may add to the event stream at the largest node count."""

FRESH_P99_MS = 50.0
"""Freshness p99 at up to ``FRESH_ABSOLUTE_MAX_NODES`` nodes."""

FRESH_ABSOLUTE_MAX_NODES = 100
"""Up to this many nodes freshness has an absolute goal; above it, one over the floor."""

FRESH_OVER_FLOOR_MS = 50.0
"""Freshness p99 above the floor's p99 at larger shapes."""

RESYNC_MAX_SECONDS = 1.0
RESYNC_EXTRA_READS = 5
"""Reads a full resync may make besides one per service name (members, nodes, Serf health,
the sites key, the service summary)."""

ONE_NODE_KINDS = tuple(kind for kind in COST_KINDS if kind != "sites_change")
"""Change kinds that touch one node (a sites change rewrites a whole document)."""


FLAT_LAG_FACTOR = 2.0
FLAT_LAG_SLACK_MS = 100.0
"""Lag is flat when the freshness p50 of the churn's last 5 s stays within twice that of its
first 5 s plus this slack: a pipeline that keeps up does not fall further behind."""


def flat_lag_limit(first_p50_ms: float) -> float:
    """The most the last window's freshness p50 may be for the lag to count as flat."""
    return FLAT_LAG_FACTOR * first_p50_ms + FLAT_LAG_SLACK_MS


def verdict(ok: bool | None) -> str:
    """Met, missed or not measured."""
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def worst_by_kind(entry: dict[str, Any], field: str) -> dict[str, int]:
    """The largest ``field`` of each change kind measured at one shape."""
    worst: dict[str, int] = {}
    for row in entry.get("changes", []):
        worst[row["kind"]] = max(worst.get(row["kind"], 0), int(row[field]))
    return worst


def largest(results: dict[str, Any]) -> int:
    """The largest node count with per-change measurements."""
    return max((e["nodes"] for e in results["shapes"] if e.get("changes")), default=0)


def goals(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per goal: what it asks, what was measured, and whether it was met."""
    rows: list[dict[str, str]] = []

    def add(goal: str, measured: str, ok: bool | None) -> None:
        rows.append({"goal": goal, "measured": measured, "verdict": verdict(ok)})

    measured = [e for e in results["shapes"] if e.get("changes")]
    if measured:
        worst = max(max(worst_by_kind(e, "enricher_reads").values()) for e in measured)
        unseen = sum(1 for e in measured for r in e["changes"] if not r["seen"])
        add(
            f"≤ {READS_PER_CHANGE} Consul reads per change, every shape and kind",
            f"worst {worst} over {len(measured)} shapes; {unseen} changes never visible",
            worst <= READS_PER_CHANGE and unseen == 0,
        )
        held = max(
            max(
                [sum(e["held_at_rest"].values())]
                + [max(r["held_before"], r["held_after"]) for r in e["changes"]]
            )
            for e in measured
        )
        add(
            f"≤ {HELD_QUERIES} blocking queries held",
            f"at most {held} in flight",
            held <= HELD_QUERIES,
        )
        top = largest(results)
        at_top = [e for e in measured if e["nodes"] == top]
        one_node = max(
            v
            for e in at_top
            for k, v in worst_by_kind(e, "stream_bytes").items()
            if k in ONE_NODE_KINDS
        )
        add(
            f"≤ {BYTES_PER_CHANGE // 1024} KiB added to the stream per one-node change at "
            f"{top:,} nodes",
            f"worst {one_node:,} bytes",
            one_node <= BYTES_PER_CHANGE,
        )
    fresh = [e for e in results["shapes"] if e.get("freshness")]
    for e in fresh:
        data = e["freshness"]["all"]
        p99 = data["visible"].get("p99")
        floor = data["floor"].get("p99")
        shape = f"{e['nodes']:,} nodes / {e['names']} names"
        if p99 is None:
            add(f"freshness at {shape}", "no change became visible", False)
        elif e["nodes"] <= FRESH_ABSOLUTE_MAX_NODES:
            add(
                f"freshness p99 ≤ {FRESH_P99_MS:.0f} ms at {shape}",
                f"p99 {p99:.1f} ms (floor p99 {floor:.1f} ms), {data['not_seen']} not seen",
                p99 <= FRESH_P99_MS and data["not_seen"] == 0,
            )
        else:
            limit = (floor or 0.0) + FRESH_OVER_FLOOR_MS
            add(
                f"freshness p99 ≤ floor p99 + {FRESH_OVER_FLOOR_MS:.0f} ms at {shape}",
                f"p99 {p99:.1f} ms vs floor p99 {floor:.1f} ms + 50 = {limit:.1f} ms, "
                f"{data['not_seen']} not seen",
                p99 <= limit and data["not_seen"] == 0,
            )
    for e in results["shapes"]:
        if "churn" in e:
            c = e["churn"]
            end = c["lag"][-1]["num_pending"] if c["lag"] else None
            windows = c.get("windows") or []
            first = windows[0]["p50"] if windows else None
            last = windows[-1]["p50"] if windows else None
            flat = first is not None and last is not None and last <= flat_lag_limit(first)
            add(
                f"churn at {e['nodes']:,} nodes without growing lag",
                f"{c['achieved_rate']}/s; max pending {c['max_num_pending']}, end {end}; "
                f"freshness p50 first 5 s {first:,.0f} ms, last 5 s {last:,.0f} ms; "
                f"{c['not_seen']} not seen"
                if first is not None and last is not None
                else f"{c['achieved_rate']}/s; no freshness windows",
                end == 0 and c["not_seen"] == 0 and flat,
            )
        nv = e.get("resync", {}).get("nodeview")
        if nv:
            latency = e["resync"]["consul_latency_ms"]
            where = f"{e['nodes']:,} nodes / {e['names']} names, {latency:.0f} ms"
            add(
                f"full resync ≤ {RESYNC_MAX_SECONDS:.0f} s ({where})",
                f"{nv['wall_seconds']:.2f} s (flush?wait=true round trip)",
                nv["status"] == 200 and nv["wall_seconds"] <= RESYNC_MAX_SECONDS,
            )
            limit = e.get("resync_names", e["names"]) + RESYNC_EXTRA_READS
            add(
                f"full resync ≤ names + {RESYNC_EXTRA_READS} reads ({where})",
                f"{nv['enricher_reads']} enricher reads, {limit - RESYNC_EXTRA_READS} names "
                f"in the catalog",
                nv["enricher_reads"] <= limit,
            )
    return rows

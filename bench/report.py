"""Markdown report of a results document: run facts, goals, tables and plots."""

import json
from pathlib import Path
from typing import Any

from bench import plots
from bench.churn import MIXES
from bench.goals import goals
from bench.machine import STALL_THRESHOLD_SECONDS

LATENCY_ROWS = (
    ("legacy_miss", "legacy, cache miss"),
    ("legacy_hit", "legacy, cache hit"),
    ("nodeview", "nodeview, 200"),
    ("nodeview_304", "nodeview, If-None-Match → 304"),
)


def _fmt(value: Any) -> str:
    """A table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _loads(results: dict[str, Any], when: str) -> str:
    """1, 5 and 15 minute load averages at the start or end of the run."""
    values = results.get(f"load_average_{when}") or []
    return ", ".join(f"{v:.1f}" for v in values) or "-"


def _stalls(stalls: dict[str, float] | None) -> str:
    """How often a busy loop was not scheduled: tails below this are the machine's, not ours."""
    if not stalls:
        return "-"
    return (
        f"{stalls['stalls']:.0f} gaps > {STALL_THRESHOLD_SECONDS * 1000:.0f} ms in a "
        f"{stalls['seconds']:.0f} s busy loop "
        f"({stalls['stalled_ms']:,.0f} ms lost, longest {stalls['max_ms']:,.0f} ms)"
    )


def _run_section(results: dict[str, Any]) -> list[str]:
    """Where and how the run happened."""
    m = results["machine"]
    rows = [
        ["date (UTC)", m["date"]],
        ["machine", f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}"],
        ["Python", m["python"]],
        ["commit", m["commit"] + (" (uncommitted changes)" if m["dirty"] else "")],
        ["profile / mode", f"{results['profile']['name']} / {results['mode']}"],
        ["complete", "yes" if results.get("complete", True) else "no: stopped before the end"],
        ["duration", f"{results.get('duration_seconds', 0):.0f} s"],
        ["load average at start / end", f"{_loads(results, 'start')} / {_loads(results, 'end')}"],
        ["scheduler stalls before the run", _stalls(results.get("scheduler_stalls"))],
    ]
    if results.get("baseline"):
        rows.append(["legacy baseline", f"from {results['baseline']}"])
    return ["## Run", "", *_table(["", ""], rows)]


def _latency_section(results: dict[str, Any]) -> list[str]:
    """Latency percentiles per size and variant."""
    rows = []
    for phase in results["phases"]:
        for key, label in LATENCY_ROWS:
            r = phase.get("latency", {}).get(key)
            if r and r.get("unfinished_after_s"):
                late = f"> {r['unfinished_after_s'] * 1000:,.0f} (did not finish)"
                rows.append([phase["nodes"], label, 1, late, late, late, late])
            if r and r.get("count"):
                if r.get("primed"):
                    label += " (cache primed, see below)"
                rows.append(
                    [phase["nodes"], label, r["count"], r["p50"], r["p95"], r["p99"], r["max"]]
                )
    header = ["nodes", "variant", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    return [
        "## `GET /api/v1/nodes` latency (one sequential client)",
        "",
        *_table(header, rows),
        "",
        "Where the old backend's miss does not finish in time, its cache is filled by the same "
        "fan-out over one pooled client (`POST /_bench/cache/prime`), so its unchanged hit path "
        "can still be measured and compared at the same size.",
    ]


def _throughput_section(results: dict[str, Any]) -> list[str]:
    """Requests per second with the client's and the server's CPU."""
    rows = [
        [
            phase["nodes"],
            r["system"],
            r["concurrency"],
            r["rps"],
            r.get("p50"),
            r.get("p99"),
            r["client_cpu_percent"],
            r["server_cpu_percent"],
            r["errors"],
        ]
        for phase in results["phases"]
        for r in phase.get("throughput", [])
    ]
    header = ["nodes", "system", "clients", "req/s", "p50 ms", "p99 ms"]
    header += ["load client CPU %", "server CPU %", "errors"]
    return [
        "## Throughput",
        "",
        "Same load client for both: raw asyncio HTTP/1.1 keep-alive connections in one process "
        "(`bench/load.py`). CPU % is of one core.",
        "",
        *_table(header, rows),
    ]


def _freshness_section(results: dict[str, Any]) -> list[str]:
    """Freshness per change kind."""
    phase = next((p for p in results["phases"] if "freshness" in p), None)
    if phase is None:
        return []
    data = phase["freshness"]
    rows = [
        [kind, r["count"], r.get("p50"), r.get("p95"), r.get("p99"), r.get("max"), r["missed"]]
        for kind, r in data["by_kind"].items()
    ]
    a = data["all"]
    rows.append(["all", a["count"], a.get("p50"), a.get("p95"), a.get("p99"), a.get("max"), ""])
    metric = data["api_metric_event_to_view"]
    return [
        f"## Freshness at {phase['nodes']:,} nodes",
        "",
        "Time from the change request to the Consul double until the node event arrives on the "
        "API's SSE stream (`/api/v1/nodes/events`); rounds of four changes in flight at once, "
        "one of each kind.",
        "",
        *_table(["change", "samples", "p50 ms", "p95 ms", "p99 ms", "max ms", "not seen"], rows),
        f"API metric `nodeview_event_to_view_seconds` over the same changes: "
        f"{_fmt(metric['count'])} observations, p50 ≤ {metric['p50_bucket_le_s']} s, "
        f"p99 ≤ {metric['p99_bucket_le_s']} s (bucket bounds).",
        "",
        "Legacy: a change is invisible until the 60 s cache entry expires, then costs a full "
        "miss: freshness is uniform on [miss, 60 s + miss] (p50 ≈ 30 s, p99 ≈ 59 s).",
        "",
    ]


def _load_section(results: dict[str, Any]) -> list[str]:
    """Consul requests at rest, per change and per full resync."""
    out = ["## Consul load", ""]
    steady_phase = next((p for p in results["phases"] if "steady" in p), None)
    steady = steady_phase["steady"] if steady_phase else None
    if steady and steady_phase:
        rows = []
        if "nodeview" in steady:
            nv = steady["nodeview"]
            rows.append(["nodeview", nv["per_minute_total"], nv["per_minute_enricher_reads"]])
        if "legacy_per_miss" in steady_phase:
            per_miss = steady_phase["legacy_per_miss"]
            rows.append(["legacy (one replica)", per_miss["per_minute_at_rest"], "same"])
        out += [
            f"Steady state over {steady['window_seconds']:.0f} s (no change), per minute:",
            "",
            *_table(["system", "all requests", "catalog reads (enricher)"], rows),
            "nodeview's requests at rest are the relay's blocking queries timing out and being "
            "re-armed. Legacy, under any steady traffic, pays one full miss per 60 s TTL per "
            "replica: requests of one measured miss x 60 / TTL.",
            "",
        ]
    rows = []
    for phase in results["phases"]:
        pc = phase.get("per_change", {})
        row: list[Any] = [phase["nodes"]]
        row += [_reads(pc.get(kind)) for kind in plots_kinds()]
        row.append(phase.get("legacy_per_miss", {}).get("consul_requests"))
        rows.append(row)
    header = ["nodes", *plots_kinds(), "legacy per miss"]
    out += [
        "Consul requests caused by one change: enricher reads (members, node services, "
        "service instances) / every request the Consul double counted, including the relay "
        "re-arming its blocking queries; vs one legacy miss:",
        "",
    ]
    out += _table(header, rows)
    rows = []
    for phase in results["phases"]:
        for key in ("resync", "resync_slow"):
            r = phase.get(key)
            if not r:
                continue
            nv = r.get("nodeview", {})
            lg = phase.get("legacy_per_miss", {}) if key == "resync" else {}
            rows.append(
                [
                    phase["nodes"],
                    r["consul_latency_ms"],
                    nv.get("wall_seconds"),
                    nv.get("consul_requests_total"),
                    lg.get("seconds"),
                    lg.get("consul_requests"),
                    lg.get("zero_services"),
                ]
            )
    header = ["nodes", "Consul latency ms", "nodeview resync s", "nodeview Consul requests"]
    header += ["legacy miss s", "legacy requests", "legacy nodes shown with 0 services"]
    out += ["Full resync (`POST …/flush?wait=true`) vs one legacy cache miss:", ""]
    return out + _table(header, rows)


def _reads(change: dict[str, Any] | None) -> str:
    """``enricher reads / all requests`` of one change."""
    if not change:
        return "-"
    return f"{change['enricher_reads']} / {change['consul_requests_total']}"


def plots_kinds() -> tuple[str, ...]:
    """Change kinds in report order."""
    return ("node_join", "service_register", "node_fail", "sites_change")


def _churn_section(results: dict[str, Any]) -> list[str]:
    """Churn summary and windows."""
    data = next((p["churn"] for p in results["phases"] if "churn" in p), None)
    if data is None:
        return []
    f = data["freshness"]
    last = data["lag"][-1] if data["lag"] else {}
    rows = [
        [w["start_s"], w.get("count"), w.get("p50"), w.get("p99"), w.get("max")]
        for w in data["windows"]
    ]
    return [
        "## Churn",
        "",
        f"Target {data.get('target_rate', 0):.0f} changes/s; the Consul double accepted "
        f"{data['changes']:,} changes ({MIXES[data.get('mix', 'growing')]}) at "
        f"{data['achieved_rate']} changes/s (changes it could not take in time are dropped); "
        f"{data['seen']:,} seen, {data['not_seen']:,} not "
        f"seen within the drain time. Freshness p50 {_fmt(f.get('p50'))} ms, p99 "
        f"{_fmt(f.get('p99'))} ms, max {_fmt(f.get('max'))} ms. Consumer `enricher`: max "
        f"num_pending {data['max_num_pending']}, max num_ack_pending "
        f"{data['max_num_ack_pending']}, at the end {last.get('num_pending')} / "
        f"{last.get('num_ack_pending')}.",
        "",
        *_table(["window start s", "changes", "p50 ms", "p99 ms", "max ms"], rows),
    ]


def _memory_section(results: dict[str, Any]) -> list[str]:
    """RSS of the processes."""
    rows = [[p["nodes"], json.dumps(p.get("rss_mb", {}))] for p in results["phases"]]
    skipped = [
        f"N={p['nodes']:,}: {p['legacy_skipped']}"
        for p in results["phases"]
        if p.get("legacy_skipped")
    ]
    out = ["## Memory (RSS, MiB)", "", *_table(["nodes", "RSS by process"], rows)]
    out += [*skipped, ""] if skipped else []
    if results.get("rss_error"):
        out += [f"Memory phase: {results['rss_error']}", ""]
    rss = results.get("rss")
    if rss:
        out += [
            f"At {rss['nodes']:,} nodes x {rss['services_per_node']} services: API "
            f"{rss['rss_mb'].get('api')} MiB, enricher {rss['rss_mb'].get('enricher')} MiB, "
            f"relay {rss['rss_mb'].get('relay')} MiB; body {rss['body_bytes']:,} bytes; the "
            f"view was complete {rss['view_ready_seconds']} s after the API was ready.",
            "",
        ]
    return out


def _restarts_section(results: dict[str, Any]) -> list[str]:
    """Services that exited during the run and were restarted by the benchmark's supervisor."""
    rows = [
        [phase["nodes"], r["service"], r["last_log"][-160:].replace("|", "/")]
        for phase in results["phases"]
        for r in phase.get("service_restarts", [])
    ]
    if not rows:
        return ["## Service restarts", "", "None: no nodeview process exited during the run.", ""]
    return [
        "## Service restarts",
        "",
        "nodeview processes that exited during the run (restarted at once, as Kubernetes would):",
        "",
        *_table(["nodes", "service", "last log line"], rows),
    ]


def write(results: dict[str, Any], path: Path) -> None:
    """Write the markdown report and its PNG plots beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for name, draw in (
        ("latency", plots.latency),
        ("freshness", plots.freshness),
        ("churn", plots.churn),
    ):
        image = path.with_name(f"{path.stem}-{name}.png")
        if draw(results, image):
            images.append(f"![{name}]({image.name})")
    goal_rows = [[g["goal"], g["measured"], g["verdict"]] for g in goals(results)]
    lines = [
        "# nodeview benchmark: old request path vs nodeview",
        "",
        "Produced by `scripts/bench_nodes.py`; raw numbers in the JSON of the same run.",
        "",
        *_run_section(results),
        "## Goals",
        "",
        *_table(["goal", "measured", "verdict"], goal_rows),
        *_latency_section(results),
        *_throughput_section(results),
        *_freshness_section(results),
        *_load_section(results),
        *_churn_section(results),
        *_memory_section(results),
        *_restarts_section(results),
        "## Plots",
        "",
        *[f"{image}\n" for image in images],
    ]
    path.write_text("\n".join(lines).rstrip() + "\n")


def latest_baseline(directory: Path) -> str | None:
    """Name of the newest results file holding legacy numbers, for a ``compare`` run."""
    for candidate in sorted(directory.glob("*.json"), reverse=True):
        try:
            if json.loads(candidate.read_text()).get("mode") in ("baseline", "all"):
                return candidate.name
        except (OSError, ValueError):
            continue
    return None

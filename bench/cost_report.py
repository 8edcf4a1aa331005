"""Markdown section of a cost run, written at the top of a report that may hold earlier runs."""

from pathlib import Path
from typing import Any

from bench import plots
from bench.changes import COST_KINDS
from bench.churn import CHURN_KEYS, MIXES
from bench.cost_goals import ONE_NODE_KINDS, goals, worst_by_kind
from bench.floor import FLOOR_KINDS, FLOOR_QUERIES
from bench.report import _fmt, _loads, _stalls, _table

TITLE = "## Per-change cost as the cluster grows"
END_MARKER = "<!-- end of the per-change cost section -->"
"""Ends the section, so that a later run replaces it and leaves what follows alone."""

HEADING = "# nodeview benchmark"


def _shape(entry: dict[str, Any]) -> str:
    """``nodes x names`` of a shape."""
    return f"{entry['nodes']:,} x {entry['names']}"


def _run(results: dict[str, Any]) -> list[str]:
    """Command, machine and conditions of the run."""
    m = results["machine"]
    profile = results["profile"]
    rows = [
        ["command", f"`{results.get('command', 'scripts/bench_nodes.py --mode cost')}`"],
        ["date (UTC)", m["date"]],
        ["machine", f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}"],
        ["Python", m["python"]],
        ["commit", m["commit"] + (" (uncommitted changes)" if m["dirty"] else "")],
        ["profile", profile["name"]],
        ["complete", "yes" if results.get("complete") else "no: stopped before the end"],
        ["duration", f"{results.get('duration_seconds', 0):.0f} s"],
        ["load average at start / end", f"{_loads(results, 'start')} / {_loads(results, 'end')}"],
        ["scheduler stalls before the run", _stalls(results.get("scheduler_stalls"))],
        ["Consul double latency", f"{profile['consul_latency'] * 1000:.0f} ms per request"],
        ["API replicas", f"{profile['api_replicas']} (a change counts when all show it)"],
        [
            "Consul double connections",
            "`TCP_NODELAY` on, as Consul's (`devstack/consul_double/server.py`): without it "
            "every answer on a kept-alive connection waits ~40 ms for a delayed ACK",
        ],
    ]
    return _table(["", ""], rows)


def _reads(results: dict[str, Any]) -> list[str]:
    """Enricher reads per change, worst of the changes of each kind."""
    rows = []
    detail = []
    for e in results["shapes"]:
        if not e.get("changes"):
            continue
        worst = worst_by_kind(e, "enricher_reads")
        rows.append([_shape(e), *[worst.get(k) for k in COST_KINDS]])
        for r in e["changes"]:
            if r["enricher_reads"] > 2 or not r["seen"] or r["internal_fallbacks"]:
                endpoints = ", ".join(f"`{k}` {v}" for k, v in r["enricher_by_endpoint"].items())
                seen = "yes" if r["seen"] else "**no**"
                detail.append([_shape(e), r["kind"], r["enricher_reads"], endpoints, seen])
    out = [
        "### Consul reads by the enricher per change",
        "",
        "Delta of the enricher's own `consul_requests_total` (every endpoint) from before the "
        "write until the change is visible on every API replica plus 1 s; the worst of the "
        f"changes of each kind at a shape ({results['profile']['changes_per_kind']} per kind).",
        "",
        *_table(["nodes x names", *COST_KINDS], rows),
    ]
    if detail:
        out += [
            "Changes above 2 reads, never visible, or read through the public fallback:",
            "",
            *_table(["nodes x names", "kind", "reads", "by endpoint", "visible"], detail),
        ]
    return out


def _held(results: dict[str, Any]) -> list[str]:
    """Blocking queries in flight on the Consul double."""
    rows = []
    for e in results["shapes"]:
        at_rest = e.get("held_at_rest", {})
        after = [r["held_after"] for r in e.get("changes", [])]
        rows.append(
            [
                _shape(e),
                sum(at_rest.values()),
                max(after) if after else None,
                ", ".join(f"`{k}` {v}" for k, v in at_rest.items()),
            ]
        )
    return [
        "### Blocking queries held on Consul",
        "",
        "Requests in flight on the Consul double (its per-endpoint counters), at rest after the "
        "full view and 1 s after each change.",
        "",
        *_table(["nodes x names", "at rest", "max after a change", "at rest by endpoint"], rows),
    ]


def _bytes(results: dict[str, Any]) -> list[str]:
    """Bytes and messages each change added to the event stream."""
    rows = []
    for e in results["shapes"]:
        if not e.get("changes"):
            continue
        size = worst_by_kind(e, "stream_bytes")
        count = worst_by_kind(e, "stream_messages")
        rows.append([_shape(e), *[f"{size.get(k, 0):,} / {count.get(k, 0)}" for k in COST_KINDS]])
    return [
        "### Bytes added to the stream per change",
        "",
        "`state.bytes` / `state.messages` of `NODEVIEW_EVENTS` before the write and after the "
        "change is visible plus 1 s (worst of the changes of each kind); the undo of a fail or "
        "leave is not counted. One-node kinds: " + ", ".join(ONE_NODE_KINDS) + ".",
        "",
        *_table(["nodes x names", *COST_KINDS], rows),
    ]


def _cpu(results: dict[str, Any]) -> list[str]:
    """CPU per change of each service."""
    rows = []
    for e in results["shapes"]:
        c = e.get("cpu")
        if not c:
            continue
        rows.append(
            [
                _shape(e),
                c["changes"],
                c["us_per_change"]["enricher"],
                c["net_us_per_change"]["enricher"],
                c["us_per_change"]["relay"],
                c["us_per_change"]["api"],
                c["idle_us_per_second"]["enricher"],
                c["not_seen"],
            ]
        )
    if not rows:
        return []
    header = ["nodes x names", "changes", "enricher µs/change", "enricher net of idle"]
    header += ["relay µs/change", "API µs/change (each replica)", "enricher idle µs/s", "not seen"]
    return [
        "### CPU per change",
        "",
        "User + system CPU of each process (`/proc/<pid>/stat`) over node_fail/recover pairs made "
        "one at a time (each visible on every replica before the next), divided by the number "
        'of changes; "net of idle" subtracts the rate measured over 5 s with no change.',
        "",
        *_table(header, rows),
    ]


def _freshness(results: dict[str, Any]) -> list[str]:
    """Freshness with its floor, per shape and kind."""
    out = [
        "### Freshness, one change at a time, beside its floor",
        "",
        "From the moment the Consul write returns until the node event arrives on every API "
        "replica's SSE stream; *floor*: in the same run, a bare httpx client already blocking "
        "on the Consul query that first carries the change ("
        + ", ".join(f"{k}: `{FLOOR_QUERIES[k][0]}`" for k in FLOOR_KINDS)
        + ") gets its answer. A floor below zero means the answer came before the write's "
        "own response.",
        "",
    ]
    header = ["nodes x names", "kind", "samples", "p50 ms", "p95 ms", "p99 ms"]
    header += ["floor p50", "floor p95", "floor p99", "p99 over floor", "not seen"]
    rows = []
    for e in results["shapes"]:
        f = e.get("freshness")
        if not f:
            continue
        for kind, block in [*f["by_kind"].items(), ("all", f["all"])]:
            v, fl, over = block["visible"], block["floor"], block["over_floor"]
            rows.append(
                [
                    _shape(e),
                    kind,
                    v.get("count"),
                    v.get("p50"),
                    v.get("p95"),
                    v.get("p99"),
                    fl.get("p50"),
                    fl.get("p95"),
                    fl.get("p99"),
                    over.get("p99"),
                    block["not_seen"],
                ]
            )
    return out + _table(header, rows)


def _by_kind(counts: dict[str, int] | None) -> str:
    """`` (kind n, …)`` for counts by change kind, or nothing when there are none."""
    return f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""


def _churn_resync(results: dict[str, Any]) -> list[str]:
    """The churn and resync scenarios of the run."""
    out: list[str] = []
    for e in results["shapes"]:
        for key in CHURN_KEYS:
            c = e.get(key)
            if not c:
                continue
            f = c["freshness"]
            last = c["lag"][-1] if c["lag"] else {}
            mix = c.get("mix", "growing")
            out += [
                f"### Churn at {_shape(e)}, {mix}",
                "",
                f"Target {c['target_rate']:.0f} changes/s for "
                f"{results['profile']['churn_seconds']:.0f} s ({MIXES[mix]}); "
                f"the double accepted {c['changes']:,} at {c['achieved_rate']}/s; "
                f"{c['seen']:,} seen, {c['not_seen']:,} not seen within the drain time"
                f"{_by_kind(c.get('not_seen_by_kind'))}. "
                f"Freshness p50 {_fmt(f.get('p50'))} ms, p99 {_fmt(f.get('p99'))} ms, max "
                f"{_fmt(f.get('max'))} ms. Consumer `enricher`: max num_pending "
                f"{c['max_num_pending']}, at the end {last.get('num_pending')} / "
                f"{last.get('num_ack_pending')} (pending / ack pending).",
                "",
            ]
    rows = []
    for e in results["shapes"]:
        r = e.get("resync")
        nv = r.get("nodeview") if r else None
        if r and nv:
            endpoints = ", ".join(f"`{k}` {v}" for k, v in nv["enricher_by_endpoint"].items())
            rows.append(
                [
                    _shape(e),
                    e.get("resync_names"),
                    r["consul_latency_ms"],
                    nv["status"],
                    nv["wall_seconds"],
                    nv["enricher_reads"],
                    endpoints,
                ]
            )
    if rows:
        header = ["nodes x names", "names in catalog", "Consul latency ms", "status"]
        header += ["wall s", "enricher reads", "by endpoint"]
        out += [
            "### Full resync",
            "",
            "`POST /api/v1/admin/cache/nodes/flush?wait=true` round trip and the enricher's "
            "Consul reads.",
            "",
            *_table(header, rows),
        ]
    return out


def _restarts(results: dict[str, Any]) -> list[str]:
    """Services that exited during the run, and shapes that could not be measured."""
    failed = [
        f"- {_shape(e)}: not measured, {e['error']}" for e in results["shapes"] if "error" in e
    ]
    rows = [
        [_shape(e), r["service"], r["last_log"][-160:].replace("|", "/")]
        for e in results["shapes"]
        for r in e.get("service_restarts", [])
    ]
    lead = [*failed, ""] if failed else []
    if not rows:
        return [*lead, "No nodeview process exited during the run.", ""]
    return [
        *lead,
        "Processes that exited during the run (restarted at once):",
        "",
        *_table(["nodes x names", "service", "last log line"], rows),
    ]


def section(results: dict[str, Any], images: list[str]) -> list[str]:
    """The whole cost section."""
    goal_rows = [[g["goal"], g["measured"], g["verdict"]] for g in goals(results)]
    return [
        TITLE,
        "",
        "Produced by `scripts/bench_nodes.py --mode cost`; raw numbers in the JSON of the same "
        "run. Each shape (nodes x service names) runs in a stack of its own: the Consul double, "
        "nats-server, relay, enricher and the API replicas.",
        "",
        *_run(results),
        "### Goals",
        "",
        *_table(["goal", "measured", "verdict"], goal_rows),
        *_reads(results),
        *_held(results),
        *_bytes(results),
        *_cpu(results),
        *_freshness(results),
        *_churn_resync(results),
        "### Service restarts",
        "",
        *_restarts(results),
        "### Plots",
        "",
        *[f"{image}\n" for image in images],
        END_MARKER,
    ]


def write(results: dict[str, Any], path: Path) -> None:
    """Write the section (and its PNG plots beside ``path``) at the top of ``path``.

    A section of an earlier cost run is replaced; anything else already in the file stays
    below the new section.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    images = []
    for name, draw in (("cost-reads", plots.cost_reads), ("cost-freshness", plots.cost_freshness)):
        image = path.with_name(f"{path.stem}-{name}.png")
        if draw(results, image):
            images.append(f"![{name}]({image.name})")
    text = "\n".join(section(results, images))
    old = path.read_text() if path.exists() else ""
    if END_MARKER in old:
        rest = old.split(END_MARKER, 1)[1].lstrip("\n")
    else:
        rest = old.removeprefix(HEADING + "\n").lstrip("\n")
    body = f"{HEADING}\n\n{text}\n"
    if rest:
        body += "\n" + rest
    path.write_text(body.rstrip() + "\n")

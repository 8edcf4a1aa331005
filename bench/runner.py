"""Runs the benchmark phases in order, bounded in time, and writes the results and report."""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import churn, cost_report, cost_run, report, scenarios
from bench.config import COST_FULL, COST_QUICK, FULL, QUICK, Profile, freshness_only
from bench.legacy_runs import legacy_block
from bench.machine import describe, scheduler_stalls
from bench.procs import rss_mb
from bench.sse import SseWatch
from bench.stack import ClusterShape
from bench.systems import Systems, systems_for, wait_full_view

MODES = ("baseline", "compare", "all", "cost")
RESULTS_DIR = Path(__file__).parent / "results"


def log(message: str) -> None:
    """Progress line on stdout."""
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def memory(systems: Systems) -> dict[str, float]:
    """RSS (MiB) of every process of the phase."""
    pids: dict[str, int] = {}
    if systems.nodeview is not None:
        pids.update({name: systems.nodeview.pid(name) for name in ("api", "enricher", "relay")})
    if systems.legacy is not None:
        pids["legacy"] = systems.legacy.process.pid
    return {name: round(rss_mb(pid), 1) for name, pid in pids.items()}


async def size_phase(nodes: int, profile: Profile, mode: str, tmp: Path) -> dict[str, Any]:
    """Every per-size scenario at ``nodes`` nodes."""
    shape = ClusterShape(nodes, profile.services)
    phase: dict[str, Any] = {"nodes": nodes}
    with_legacy = nodes <= profile.legacy_max_nodes
    if not with_legacy and mode != "compare":
        phase["legacy_skipped"] = (
            f"the old backend is not run above {profile.legacy_max_nodes:,} nodes: one miss "
            "builds a new HTTP client per node, far beyond the run's time bounds"
        )
    async with (
        httpx.AsyncClient(timeout=60.0) as http,
        systems_for(shape, mode, tmp, http, legacy=with_legacy) as systems,
    ):
        for double in (systems.nv_double, systems.lg_double):
            if double is not None:
                await double.control.latency(profile.consul_latency)
        watch = None
        if systems.nodeview is not None:
            phase["view_ready_seconds"] = round(await wait_full_view(systems, nodes + 1), 2)
            watch = await SseWatch(systems.api).start()
        try:
            phase["latency"], phase["throughput"] = {}, []
            if systems.legacy is not None:
                log(f"N={nodes}: legacy misses, hits and throughput")
                block = await legacy_block(systems, profile)
                phase["latency"].update(block["latency"])
                phase["throughput"] += block["throughput"]
                phase["legacy_per_miss"] = block["per_miss"]
            if systems.nodeview is None:
                phase["rss_mb"] = memory(systems)
                return phase
            log(f"N={nodes}: latency")
            phase["latency"].update(await scenarios.latency(systems, profile))
            log(f"N={nodes}: throughput")
            phase["throughput"] += await scenarios.throughput(systems, profile)
            log(f"N={nodes}: Consul load per change")
            phase["per_change"] = await scenarios.per_change(systems, watch)
            log(f"N={nodes}: full resync")
            latency = profile.consul_latency
            phase["resync"] = await scenarios.resync(systems, latency, latency)
            if nodes == profile.resync_size:
                log(f"N={nodes}: full resync at {profile.resync_latency * 1000:.0f} ms")
                phase["resync_slow"] = await scenarios.resync(
                    systems, profile.resync_latency, latency
                )
            if nodes == profile.freshness_size:
                log(f"N={nodes}: steady-state Consul load ({profile.steady_seconds:.0f} s)")
                phase["steady"] = await scenarios.steady_load(systems, profile.steady_seconds)
                if watch is not None:
                    log(f"N={nodes}: freshness")
                    phase["freshness"] = await scenarios.freshness(
                        systems, watch, profile.freshness_changes
                    )
                    log(f"N={nodes}: churn {profile.churn_rate:.0f}/s")
                    phase["churn"] = await churn.churn(
                        systems, watch, profile.churn_rate, profile.churn_seconds, "growing"
                    )
            phase["rss_mb"] = memory(systems)
            if systems.nodeview is not None:
                phase["service_restarts"] = systems.nodeview.restarts
        finally:
            if watch is not None:
                await watch.stop()
    return phase


async def rss_phase(profile: Profile, tmp: Path) -> dict[str, Any]:
    """API memory with a large inventory (nodeview only)."""
    per_node = profile.rss_services_per_node
    shape = ClusterShape(profile.rss_nodes, max(profile.services, 2 * per_node), per_node)
    async with (
        httpx.AsyncClient(timeout=120.0) as http,
        systems_for(shape, "compare", tmp, http) as systems,
    ):
        ready = await wait_full_view(systems, profile.rss_nodes + 1)
        body = await http.get(systems.api + "/api/v1/nodes")
        return {
            "nodes": profile.rss_nodes,
            "services_per_node": per_node,
            "view_ready_seconds": round(ready, 2),
            "body_bytes": len(body.content),
            "rss_mb": memory(systems),
        }


Checkpoint = Callable[[dict[str, Any]], None]


async def run(profile: Profile, mode: str, work: Path, checkpoint: Checkpoint) -> dict[str, Any]:
    """All phases of the mode; ``checkpoint`` saves the results after each phase."""
    results: dict[str, Any] = {
        "machine": describe(),
        "mode": mode,
        "profile": asdict(profile),
        "phases": [],
        "load_average_start": list(os.getloadavg()),
        "scheduler_stalls": scheduler_stalls(),
        "complete": False,
    }
    started = time.perf_counter()

    def save() -> None:
        results["load_average_end"] = list(os.getloadavg())
        results["duration_seconds"] = round(time.perf_counter() - started, 1)
        checkpoint(results)

    for nodes in profile.sizes:
        log(f"phase N={nodes}")
        results["phases"].append(await size_phase(nodes, profile, mode, work))
        save()
    if mode in ("compare", "all") and profile.rss_nodes:
        log(f"memory phase N={profile.rss_nodes} x {profile.rss_services_per_node} services")
        results["rss"] = await rss_phase(profile, work)
    elif mode in ("compare", "all"):
        last = results["phases"][-1]
        results["rss"] = {
            "nodes": last["nodes"],
            "services_per_node": "1-3",
            "view_ready_seconds": last.get("view_ready_seconds"),
            "body_bytes": last["latency"]["nodeview"].get("body_bytes", 0),
            "rss_mb": last["rss_mb"],
        }
    results["complete"] = True
    save()
    return results


def _shape(text: str) -> tuple[int, int]:
    """``NODESxNAMES`` as a shape."""
    nodes, _, names = text.lower().partition("x")
    try:
        return int(nodes), int(names)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NODESxNAMES") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, write ``<results>/<date>.json`` and the markdown report."""
    parser = argparse.ArgumentParser(prog="bench_nodes.py", description=__doc__)
    parser.add_argument("--mode", choices=MODES, default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (< 2 min)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--report", type=Path, help="markdown report path (default: beside JSON)")
    parser.add_argument("--keep-logs", type=Path, help="keep process logs in this directory")
    parser.add_argument(
        "--freshness-only",
        metavar="NODESxNAMES",
        type=_shape,
        help="cost mode: only the one-at-a-time freshness of this one shape (e.g. 1000x300)",
    )
    parser.add_argument(
        "--rounds", type=int, default=50, help="with --freshness-only: rounds of each kind"
    )
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    json_path = args.results_dir / f"{stamp}.json"
    md_path = args.report or args.results_dir / f"{stamp}.md"
    command = " ".join(["scripts/bench_nodes.py", *(sys.argv[1:] if argv is None else argv)])

    def checkpoint(results: dict[str, Any]) -> None:
        results["command"] = command
        if args.mode == "compare":
            results["baseline"] = report.latest_baseline(args.results_dir)
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        if args.mode == "cost":
            cost_report.write(results, md_path)
        else:
            report.write(results, md_path)

    async def go(work: Path) -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        if args.mode == "cost":
            profile = COST_QUICK if args.quick else COST_FULL
            if args.freshness_only is not None:
                profile = freshness_only(profile, args.freshness_only, args.rounds)
            await cost_run.run(profile, work, checkpoint, log)
        else:
            await run(QUICK if args.quick else FULL, args.mode, work, checkpoint)

    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        asyncio.run(go(args.keep_logs))
    else:
        with tempfile.TemporaryDirectory(prefix="nodeview-bench-") as tmp:
            asyncio.run(go(Path(tmp)))
    log(f"results: {json_path}")
    log(f"report: {md_path}")
    return 0

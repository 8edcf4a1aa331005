"""Command line of the double: serve a generated cluster until interrupted."""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack.consul_double.errors import BadWatchDefinition
from devstack.consul_double.inventory import generate_inventory
from devstack.consul_double.server import ConsulDouble

DEFAULT_PORT = 8500
"""First HTTP port; server N listens on ``port + N``."""


def load_watches(path: Path | None) -> list[dict[str, Any]]:
    """Watch definitions from a JSON file: a list, or an object with a ``watches`` list."""
    if path is None:
        return []
    document = json.loads(path.read_text())
    watches = document.get("watches", []) if isinstance(document, dict) else document
    if not isinstance(watches, list):
        raise BadWatchDefinition(f"{path}: expected a list of watch definitions")
    return [dict(w) for w in watches]


async def serve(
    *,
    servers: int = 3,
    nodes: int = 50,
    services: int = 8,
    sites: int = 3,
    seed: int = 1,
    port: int = DEFAULT_PORT,
    acl_token: str | None = None,
    control_token: str | None = None,
    watches: Sequence[dict[str, Any]] = (),
    datacenter: str = "dc1",
    stop: asyncio.Event | None = None,
) -> None:
    """Run a double on consecutive ports from ``port`` until ``stop`` is set (or Ctrl-C)."""
    double = ConsulDouble(
        servers,
        acl_token,
        control_token,
        generate_inventory(nodes, services, sites, seed, servers=servers),
        datacenter,
        ports=[port + i if port else 0 for i in range(servers)],
        watches=watches,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with double:
            for i, url in enumerate(double.urls):
                role = "leader" if i == double.leader else "follower"
                print(f"consul double server {i} ({role}): {url}", flush=True)
            print(f"control API: {double.urls[0]}/_double/state", flush=True)
            await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m devstack.consul_double", description=__doc__)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks free ports")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--acl-token")
    parser.add_argument("--control-token")
    parser.add_argument("--watch-config", type=Path)
    args = parser.parse_args(argv)
    try:
        watches = load_watches(args.watch_config)
    except (OSError, ValueError, BadWatchDefinition) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    asyncio.run(
        serve(
            servers=args.servers,
            nodes=args.nodes,
            services=args.services,
            sites=args.sites,
            seed=args.seed,
            port=args.port,
            acl_token=args.acl_token,
            control_token=args.control_token,
            watches=watches,
            datacenter=args.datacenter,
        )
    )
    return 0

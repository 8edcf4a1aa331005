"""The ``nodeview`` command: one entry point with a subcommand per process."""

import argparse
import sys
from collections.abc import Sequence

from contracts.subjects import WATCH_TYPES

DEVSTACK_MISSING = (
    "nodeview dev: the local stack is not installed (production installs leave it out); "
    "from a source checkout run `make venv`, or `pip install -e './devstack'`"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeview",
        description="Always-fresh inventory of the nodes of a Consul cluster.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev", help="run the whole stack locally: NATS, the Consul double, relay, enricher, api"
    )
    dev.add_argument("--nodes", type=int, default=50, help="nodes in the generated inventory")
    dev.add_argument("--services", type=int, default=8, help="distinct service names")
    dev.add_argument("--sites", type=int, default=3, help="sites in the sites document")
    dev.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="PER_SECOND",
        help="also change the inventory this many times per second",
    )
    dev.add_argument("--api-replicas", type=int, default=1, help="API processes (ports 8080+)")
    dev.add_argument(
        "--tracing",
        action="store_true",
        help="export traces over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4318)",
    )

    relay = commands.add_parser("relay", help="publish Consul changes to NATS")
    relay_modes = relay.add_subparsers(dest="mode", required=True, metavar="MODE")
    relay_modes.add_parser(
        "serve", help="HTTP watch handler (+ watcher when RELAY_WATCHER_ENABLED=true)"
    )
    relay_modes.add_parser("watch", help="built-in blocking-query watcher (+ HTTP handler)")
    handle = relay_modes.add_parser(
        "handle", help="Consul script handler: watch JSON on stdin, CONSUL_INDEX in env"
    )
    handle.add_argument("--type", required=True, choices=WATCH_TYPES, dest="watch_type")
    handle.add_argument("--key", help="KV key of a key watch")
    handle.add_argument("--service", help="service name of a service watch")
    handle.add_argument("--name", help="event name of an event watch")

    commands.add_parser("enricher", help="turn changes into node views (active/standby)")
    commands.add_parser("api", help="serve /api/v1/nodes from memory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named on the command line."""
    args = _parser().parse_args(argv)
    if args.command == "dev":
        try:
            from devstack.dev import DevOptions
            from devstack.dev import main as dev_main
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != "devstack":
                raise
            print(DEVSTACK_MISSING, file=sys.stderr)
            return 2

        return dev_main(
            DevOptions(
                nodes=args.nodes,
                services=args.services,
                sites=args.sites,
                churn=args.churn,
                api_replicas=args.api_replicas,
                tracing=args.tracing,
            )
        )
    if args.command == "relay":
        from services.relay import app as relay_app

        if args.mode == "handle":
            return relay_app.handle_main(args.watch_type, args.key or args.name, args.service)
        relay_app.main(watcher=args.mode == "watch")
        return 0
    if args.command == "enricher":
        from services.enricher import app as enricher_app

        enricher_app.main()
        return 0
    from services.api import app as api_app

    api_app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

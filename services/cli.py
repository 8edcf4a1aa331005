"""The ``nodeview`` command: one entry point with a subcommand per process, and ``config check``.

Every process command takes its settings as flags or environment variables (``--help`` lists
them); a configuration that cannot be used ends the command with status 2 and one line per
problem, before anything starts.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from pydantic_settings import BaseSettings

from contracts.subjects import WATCH_TYPES
from services.api.settings import ApiSettings
from services.cli_settings import (
    add_setting_flags,
    apply_flags,
    describe,
    flag_values,
    known_variables,
    load,
    near_misses,
    render_problems,
)
from services.enricher.settings import EnricherSettings
from services.relay.settings import RelaySettings

try:
    from devstack.dev_settings import DevSettings
except ModuleNotFoundError as missing:  # production installs leave the local stack out
    if missing.name is None or missing.name.split(".")[0] != "devstack":
        raise
    DevSettings = None  # type: ignore[assignment,misc]

ROLES: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "enricher": EnricherSettings,
    "relay": RelaySettings,
}
"""Settings class of each role ``config check`` knows."""

CONFIG_ERROR = 2
"""Exit status of a configuration that cannot be used (as for a usage error)."""

RAW = argparse.RawDescriptionHelpFormatter


def _version() -> str:
    try:
        return version("nodeview")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    summary: str,
    settings: type[BaseSettings],
    usage: str = "",
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        formatter_class=RAW,
        usage=f"%(prog)s {usage}[--SETTING VALUE ...]",
        # No abbreviations: --relay-token must not be taken for --relay-token-file.
        allow_abbrev=False,
    )
    add_setting_flags(parser, settings)
    parser.set_defaults(settings_class=settings)
    return parser


DEVSTACK_MISSING = (
    "nodeview dev: the local stack is not installed (production installs leave it out); "
    "from a source checkout run `make venv`, or `pip install -e './devstack'`"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeview",
        description="Always-fresh inventory of the nodes of a Consul cluster.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev_summary = "run the whole stack locally: NATS, the Consul double, relay, enricher, api"
    if DevSettings is not None:
        _command(commands, "dev", dev_summary, DevSettings)
    else:
        dev = commands.add_parser("dev", help=dev_summary, description=DEVSTACK_MISSING)
        dev.add_argument("ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    relay = commands.add_parser("relay", help="publish Consul changes to NATS")
    relay_modes = relay.add_subparsers(dest="mode", required=True, metavar="MODE")
    _command(
        relay_modes,
        "serve",
        "HTTP watch handler (+ watcher when RELAY_WATCHER_ENABLED=true)",
        RelaySettings,
    )
    _command(
        relay_modes, "watch", "built-in blocking-query watcher (+ HTTP handler)", RelaySettings
    )
    handle = _command(
        relay_modes,
        "handle",
        "Consul script handler: watch JSON on stdin, CONSUL_INDEX in env",
        RelaySettings,
        usage="--type TYPE [--key K] [--service S] [--name N] ",
    )
    handle.add_argument("--type", required=True, choices=WATCH_TYPES, dest="watch_type")
    handle.add_argument("--key", help="KV key of a key watch")
    handle.add_argument("--service", help="service name of a service watch")
    handle.add_argument("--name", help="event name of an event watch")

    _command(
        commands, "enricher", "turn changes into node views (active/standby)", EnricherSettings
    )
    _command(commands, "api", "serve /api/v1/nodes from memory", ApiSettings)

    config = commands.add_parser("config", help="check the configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser(
        "check",
        help="validate and print the effective configuration (secrets hidden)",
        description="Validate and print the effective configuration of one role (default: all), "
        "with where each value came from; exit 0 when valid, 2 when not.",
    )
    roles = check.add_subparsers(dest="role", required=False, metavar="ROLE")
    for role, settings in ROLES.items():
        _command(roles, role, f"the {role}'s configuration", settings)
    return parser


def _prepare(
    args: argparse.Namespace, command: str, settings: type[BaseSettings] | None
) -> dict[str, str]:
    """Put the command's flags into the environment and warn of near-miss variable names."""
    flags = flag_values(args, settings) if settings is not None else {}
    apply_flags(flags, os.environ)
    known = known_variables([*ROLES.values(), *([] if DevSettings is None else [DevSettings])])
    for warning in near_misses(os.environ, known):
        print(f"nodeview {command}: {warning}", file=sys.stderr)
    return flags


def _config_check(args: argparse.Namespace) -> int:
    """``nodeview config check [ROLE]``: every role's problems once, each valid role's values."""
    roles = [args.role] if args.role else list(ROLES)
    flags = _prepare(args, "config check", ROLES[args.role] if args.role else None)
    problems: list[str] = []
    for role in roles:
        settings, found = load(ROLES[role], flags)
        problems += [p for p in found if p not in problems]
        if settings is not None:
            print(f"{role}: valid")
            print("\n".join(describe(settings, flags, os.environ)))
    if problems:
        sys.stderr.write(render_problems("config check", problems))
        return CONFIG_ERROR
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named on the command line."""
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _config_check(args)
    if args.command == "dev" and DevSettings is None:
        print(DEVSTACK_MISSING, file=sys.stderr)
        return CONFIG_ERROR
    command = f"relay {args.mode}" if args.command == "relay" else args.command
    flags = _prepare(args, command, args.settings_class)
    settings, problems = load(args.settings_class, flags)
    if settings is None:
        sys.stderr.write(render_problems(command, problems))
        return CONFIG_ERROR
    if DevSettings is not None and isinstance(settings, DevSettings):
        from devstack.dev import DevOptions
        from devstack.dev import main as dev_main

        return dev_main(
            DevOptions(
                nodes=settings.nodes,
                services=settings.services,
                sites=settings.sites,
                churn=settings.churn,
                api_replicas=settings.api_replicas,
                tracing=settings.tracing,
                relay_token=_reveal(settings.relay_token),
                admin_token=_reveal(settings.api_admin_token),
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


def _reveal(secret: object) -> str | None:
    """The text of an optional secret, for the process that hands it on."""
    get = getattr(secret, "get_secret_value", None)
    return None if get is None else str(get())


if __name__ == "__main__":
    sys.exit(main())

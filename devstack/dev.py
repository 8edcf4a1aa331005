"""``nodeview dev``: the whole stack on this machine — NATS, the Consul double and every service."""

import asyncio
import contextlib
import random
import secrets
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.consul_double import ConsulDouble, generate_inventory
from devstack.nats import NatsServer
from devstack.nats_roles import RoleUser, authorization_config, role_users
from devstack.processes import ServiceProcess

NATS_PORT = 4222
CONSUL_PORT = 8500
API_PORT = 8080
RELAY_PORT = 8081
ENRICHER_PORT = 8082
HOST = "127.0.0.1"


@dataclass(frozen=True)
class DevOptions:
    """What ``nodeview dev`` was asked for."""

    nodes: int = 50
    services: int = 8
    sites: int = 3
    churn: float = 0.0
    api_replicas: int = 1
    tracing: bool = False
    servers: int = 3
    relay_token: str | None = None
    """Bearer token of the relay's watch handler; generated when None."""
    admin_token: str | None = None
    """Bearer token of the API's flush endpoint; generated when None."""


def nats_login(user: RoleUser) -> dict[str, str]:
    """The NATS credentials a process of ``user``'s role is given."""
    return {"NATS_USER": user.user, "NATS_PASSWORD": user.password}


def service_env(
    nats_url: str, consul_urls: list[str], relay_token: str, admin_token: str
) -> dict[str, str]:
    """Return the environment every dev process gets."""
    return {
        "NATS_URL": nats_url,
        "CONSUL_SERVERS": ",".join(consul_urls),
        "RELAY_TOKEN": relay_token,
        "API_ADMIN_TOKEN": admin_token,
        "LOG_FORMAT": "json",
    }


def http_watches(relay_url: str, token: str, sites_key: str) -> list[dict[str, object]]:
    """Consul agent ``watches`` that call the relay's HTTP handler, as in deploy/consul."""
    header = {"Authorization": [f"Bearer {token}"]}

    def watch(kind: str, query: str = "", **extra: object) -> dict[str, object]:
        return {
            "type": kind,
            "handler_type": "http",
            "http_handler_config": {
                "path": f"{relay_url}/v1/watch/{kind}{query}",
                "method": "POST",
                "header": header,
                "timeout": "10s",
            },
            **extra,
        }

    return [
        watch("nodes"),
        watch("services"),
        watch("checks"),
        watch("key", f"?key={sites_key}", key=sites_key),
    ]


async def churn(double: ConsulDouble, per_second: float, stop: asyncio.Event) -> None:
    """Change the inventory at a steady rate: fail/recover nodes, register/deregister services."""
    rng = random.Random(7)
    counter = 0
    while not stop.is_set():
        counter += 1
        state = double.state
        nodes = [n for n in state.node_names() if not n.startswith("consul-server")]
        if nodes:
            node = rng.choice(nodes)
            action = rng.randrange(3)
            if action == 0:
                state.fail_node(node)
            elif action == 1:
                state.recover_node(node)
            else:
                service_id = f"churn-{counter % 5}"
                if rng.random() < 0.5:
                    state.register_service(node, service_id, "churn", tags=("dev",), port=9000)
                else:
                    state.deregister_service(node, service_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0 / per_second)


async def run(options: DevOptions) -> None:
    """Start everything, print where it is, and stop it all on Ctrl-C."""
    workdir = Path(tempfile.mkdtemp(prefix="nodeview-dev-"))
    relay_token = options.relay_token or secrets.token_urlsafe(24)
    admin_token = options.admin_token or secrets.token_urlsafe(24)
    # One NATS user per role, each denied what its role must never do (as in deploy/).
    users = role_users()
    nats_server = NatsServer(
        workdir / "jetstream",
        port=NATS_PORT,
        log_file=workdir / "nats.log",
        extra_config=authorization_config(users),
    )
    nats_server.start()
    relay_url = f"http://{HOST}:{RELAY_PORT}"
    double = ConsulDouble(
        servers=options.servers,
        inventory=generate_inventory(
            nodes=options.nodes, services=options.services, sites=options.sites, seed=1
        ),
        ports=[CONSUL_PORT + i for i in range(options.servers)],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    processes: list[ServiceProcess] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await double.start()
        env = service_env(nats_server.url, double.urls, relay_token, admin_token)
        if options.tracing:
            env.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
        processes.append(
            ServiceProcess(
                "relay",
                ["relay", "watch"],
                {**env, **nats_login(users["relay"]), "RELAY_PORT": str(RELAY_PORT)},
                health_url=relay_url,
                log_dir=workdir,
            )
        )
        processes.append(
            ServiceProcess(
                "enricher",
                ["enricher"],
                {**env, **nats_login(users["enricher"]), "ENRICHER_PORT": str(ENRICHER_PORT)},
                health_url=f"http://{HOST}:{ENRICHER_PORT}",
                log_dir=workdir,
            )
        )
        for i in range(options.api_replicas):
            port = API_PORT if i == 0 else API_PORT + 10 + i
            processes.append(
                ServiceProcess(
                    f"api-{i + 1}",
                    ["api"],
                    {**env, **nats_login(users["api"]), "API_PORT": str(port)},
                    health_url=f"http://{HOST}:{port}",
                    log_dir=workdir,
                )
            )
        for process in processes:
            process.start()
        for process in processes:
            await asyncio.to_thread(process.wait_ready)
        # The agent's watches call the relay's HTTP handler: started once it listens.
        await double.start_watches(
            http_watches(relay_url, relay_token, "skills/eye/metadata/sites")
        )
        if options.churn > 0:
            tasks.append(asyncio.create_task(churn(double, options.churn, stop)))
        token_file = workdir / "tokens.env"
        logins = "".join(
            f"NATS_{role.upper()}_USER={user.user}\nNATS_{role.upper()}_PASSWORD={user.password}\n"
            for role, user in users.items()
        )
        token_file.write_text(f"RELAY_TOKEN={relay_token}\nAPI_ADMIN_TOKEN={admin_token}\n{logins}")
        token_file.chmod(0o600)
        api_urls = [p.health_url for p in processes if p.name.startswith("api")]
        print(
            "nodeview dev stack is up\n"
            f"  API          {api_urls[0]}/api/v1/nodes\n"
            f"  replicas     {', '.join(map(str, api_urls))}\n"
            f"  events (SSE) {api_urls[0]}/api/v1/nodes/events\n"
            f"  relay        {relay_url}  (POST /v1/watch/<type>, /metrics)\n"
            f"  enricher     http://{HOST}:{ENRICHER_PORT}/metrics\n"
            f"  Consul       {', '.join(double.urls)}  (double, control API under /_double/)\n"
            f"  NATS         {nats_server.url}\n"
            f"  tokens       {token_file}\n"
            f"  logs         {workdir}\n"
            "Try:\n"
            f"  curl -s {api_urls[0]}/api/v1/nodes | python3 -m json.tool | head -40\n"
            f'  . {token_file}; curl -s -X POST -H "Authorization: Bearer $API_ADMIN_TOKEN" '
            f"'{api_urls[0]}/api/v1/admin/cache/nodes/flush?wait=true'\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        await double.stop()
        nats_server.stop()
        print("nodeview dev stack stopped", flush=True)


def main(options: DevOptions) -> int:
    """Entry point of ``nodeview dev``."""
    asyncio.run(run(options))
    return 0

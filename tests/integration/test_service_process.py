"""The dev stack's process runner: a start counts only when the process it started answers."""

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.nats import free_port
from devstack.processes import ProcessError, ServiceProcess

HOST = "127.0.0.1"


class _ForeignReady(http.server.BaseHTTPRequestHandler):
    """Another process's readiness answer on the port: 200 with a pid that is not ours."""

    def do_GET(self) -> None:
        body = json.dumps({"ready": True, "pid": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def foreign_port() -> Iterator[int]:
    """A port where a foreign server already answers /readyz with 200."""
    server = http.server.ThreadingHTTPServer((HOST, free_port()), _ForeignReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_start_that_lost_its_port_is_not_taken_for_ready(
    foreign_port: int, tmp_path: Path
) -> None:
    """An API whose port another server holds is not ready because that server answers."""
    process = ServiceProcess(
        "api-x",
        ["api"],
        {"API_PORT": str(foreign_port), "NATS_URL": f"nats://{HOST}:{free_port()}"},
        health_url=f"http://{HOST}:{foreign_port}",
        log_dir=tmp_path,
    ).start()
    try:
        with pytest.raises(ProcessError, match=r"another process answers|exited"):
            process.wait_ready(timeout=30)
    finally:
        process.stop(kill=True)

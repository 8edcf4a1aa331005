"""Doubles for the deploy tests: a fake Prometheus HTTP API, a recording kubectl."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the scripts are not a package) and return the module."""
    module_name = f"nodeview_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class PrometheusState:
    """What the fake Prometheus answers: queries with a sample, or one error for every query."""

    firing: set[str] = field(default_factory=set)
    error: str | None = None
    received: list[str] = field(default_factory=list)


def _handler(state: PrometheusState) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class serving ``/api/v1/query`` from ``state``."""

    class Handler(BaseHTTPRequestHandler):
        """Answers instant queries like Prometheus' HTTP API does."""

        def do_GET(self) -> None:
            """Answer one ``GET /api/v1/query?query=...``."""
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/api/v1/query":
                self._send(404, {"status": "error", "errorType": "not_found", "error": url.path})
                return
            query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
            state.received.append(query)
            if state.error is not None:
                self._send(400, {"status": "error", "errorType": "bad_data", "error": state.error})
                return
            result = []
            if query in state.firing:
                result = [{"metric": {}, "value": [1_700_000_000.0, "1"]}]
            self._send(
                200, {"status": "success", "data": {"resultType": "vector", "result": result}}
            )

        def _send(self, code: int, body: object) -> None:
            """Write a JSON answer."""
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    return Handler


@contextmanager
def fake_prometheus(state: PrometheusState) -> Iterator[str]:
    """Serve ``state`` on a free port of 127.0.0.1 and yield the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_fake_kubectl(directory: Path, exit_code: int = 0) -> tuple[Path, Path]:
    """Write a kubectl stand-in that logs its argv as JSON lines; return it and the log."""
    log = directory / "kubectl.log"
    script = directory / "kubectl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return script, log


def recorded(log: Path) -> list[list[str]]:
    """Return the argv lists the fake kubectl recorded, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]

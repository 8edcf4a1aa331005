"""Processes the benchmark starts (the double, the old backend) and their memory use."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 120.0
"""Longest a process may take to answer its health URL (a 10,000-node double takes a while)."""


class BenchProcessError(RuntimeError):
    """A benchmark process exited early or never became ready."""


class PythonProcess:
    """``python -m MODULE ARGS`` with its own log file, a health URL and a clean stop."""

    def __init__(self, name: str, module: str, args: list[str], health_url: str, logs: Path):
        """Describe the process; :meth:`start` launches it."""
        self.name = name
        self.command = [sys.executable, "-m", module, *args]
        self.health_url = health_url
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Process id of the running process."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> "PythonProcess":
        """Launch the process (output to its log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=log, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Block until the health URL answers 2xx or 404 (the server is listening)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BenchProcessError(f"{self.name} exited; see {self.log_path}")
            try:
                if httpx.get(self.health_url, timeout=2.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise BenchProcessError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from ``/proc/<pid>/status`` (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return 0.0
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (0 when unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks

"""Starts nodeview's own processes (relay, enricher, api) as a user would, and stops them."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 90.0


class ProcessError(RuntimeError):
    """A process exited early or never became ready."""


def nodeview_command(*args: str) -> list[str]:
    """Return the command line of ``nodeview ARGS`` for this Python."""
    return [sys.executable, "-m", "services.cli", *args]


def _answering_pid(answer: httpx.Response) -> int | None:
    """The ``pid`` a readiness answer names, if it names one."""
    try:
        body = answer.json()
    except ValueError:
        return None
    pid = body.get("pid") if isinstance(body, dict) else None
    return pid if isinstance(pid, int) else None


class ServiceProcess:
    """One nodeview process with its environment, log file and health URL."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        *,
        health_url: str | None,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.health_url = health_url
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServiceProcess":
        """Start the process (its output goes to its log file)."""
        env = {**os.environ, **self.env}
        env.setdefault("LOG_FORMAT", "json")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                nodeview_command(*self.args),
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        return self

    def wait_ready(self, path: str = "/readyz", timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Wait until the health URL answers 200 on ``path``."""
        if self.health_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ProcessError(f"{self.name} exited; see {self.log_path}")
            try:
                answer = httpx.get(self.health_url + path, timeout=1.0)
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 200:
                if _answering_pid(answer) not in (None, self.process.pid):
                    raise ProcessError(
                        f"{self.name}: another process answers on {self.health_url}; "
                        f"see {self.log_path}"
                    )
                return
            time.sleep(0.1)
        raise ProcessError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    @property
    def running(self) -> bool:
        """Tell whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> int | None:
        """Stop the process (SIGTERM, or SIGKILL when ``kill``); return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        code = self.process.returncode
        self.process = None
        return code

    def log_text(self) -> str:
        """Return what the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

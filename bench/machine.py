"""Describes where a run happened: machine, Python, commit."""

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    """Total memory in GiB from ``/proc/meminfo``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _git(*args: str) -> str:
    """Output of a git command in the repository (empty when git is unavailable)."""
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


MEASURED = ("--", ".", ":(exclude)bench/RESULTS*", ":(exclude)bench/results")
"""The paths whose uncommitted changes make a run's commit not what was measured."""


def describe() -> dict[str, Any]:
    """Machine, OS, Python and commit of this run."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Earlier reports the benchmark wrote itself are not changes to what it measures.
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", *MEASURED)),
    }


STALL_THRESHOLD_SECONDS = 0.02
"""A gap this long between two turns of a busy loop means the process was not running."""


def scheduler_stalls(seconds: float = 2.0) -> dict[str, float]:
    """Gaps a busy loop sees while nothing else of the run is started: the machine's own tail."""
    gaps: list[float] = []
    started = last = time.perf_counter()
    while last - started < seconds:
        now = time.perf_counter()
        if now - last > STALL_THRESHOLD_SECONDS:
            gaps.append(now - last)
        last = now
    return {
        "seconds": seconds,
        "stalls": len(gaps),
        "stalled_ms": round(sum(gaps) * 1000, 1),
        "max_ms": round(max(gaps, default=0.0) * 1000, 1),
    }

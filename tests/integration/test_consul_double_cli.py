"""The double's command line: serves a generated cluster, prints its URLs, stops on SIGINT."""

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from devstack.consul_double import BadWatchDefinition
from devstack.consul_double.cli import load_watches

pytestmark = pytest.mark.timeout(60)


async def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    """``python -m devstack.consul_double`` prints server URLs, answers, and exits 0 on SIGINT."""
    watches = tmp_path / "watches.json"
    watches.write_text(json.dumps({"watches": []}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devstack.consul_double",
        "--servers",
        "2",
        "--nodes",
        "4",
        "--services",
        "2",
        "--sites",
        "2",
        "--port",
        "0",
        "--acl-token",
        "t0ken",
        "--watch-config",
        str(watches),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("control API"):
            lines.append((await process.stdout.readline()).decode().strip())
        urls = [line.rsplit(" ", 1)[1] for line in lines if line.startswith("consul double")]
        assert len(urls) == 2
        async with httpx.AsyncClient(timeout=10) as client:
            members = await client.get(
                f"{urls[1]}/v1/agent/members", headers={"X-Consul-Token": "t0ken"}
            )
        assert len(members.json()) == 6
    finally:
        process.send_signal(signal.SIGINT)
        code = await process.wait()
    assert code == 0


def test_load_watches_accepts_agent_config_shapes(tmp_path: Path) -> None:
    """A watch file may hold a bare list or an agent config object with ``watches``."""
    definition = {"type": "nodes", "args": ["true"]}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([definition]))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"watches": [definition]}))
    assert load_watches(bare) == load_watches(wrapped) == [definition]
    assert load_watches(None) == []
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"watches": {"type": "nodes"}}))
    with pytest.raises(BadWatchDefinition):
        load_watches(broken)

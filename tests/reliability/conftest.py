"""Registers the ``reliability`` marker for this folder (the suite runs with strict markers)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker of the slow fault, load and security scenarios."""
    config.addinivalue_line(
        "markers", "reliability: slow fault-injection, bad-input, security and load scenarios"
    )

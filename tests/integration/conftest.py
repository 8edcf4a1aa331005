"""Fixtures of the integration tests: an HTTP client, and the control API of a module's double."""

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.consul_double import ConsulDouble
from tests.integration.double_support import CONTROL_TOKEN


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with a bound timeout."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@pytest.fixture
async def control(double: ConsulDouble) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the control API of server 0 of the module's ``double``, authenticated."""
    async with httpx.AsyncClient(
        base_url=f"{double.urls[0]}/_double",
        headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
        timeout=10,
    ) as http:
        yield http

"""End to end: node meta, tagged addresses and IDs reach the API, and a real Prometheus
discovers the stack's service instances through ``/api/v1/sd/prometheus``."""

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devstack.nats import free_port
from tests.e2e.stack import HOST, Stack, converged, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SD_REFRESH_SECONDS = 1
"""How often the test's Prometheus reads the discovery endpoint."""

PROMETHEUS_WAIT_SECONDS = 60.0
"""Bound on waiting for Prometheus to show what the view holds."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One running stack (12 nodes in 3 sites; relay, one enricher, one API) for this module."""
    running = Stack(tmp_path_factory.mktemp("stack"), nodes=12, services=3, apis=1)
    async with converged(running):
        yield running


def _catalog(stack: Stack) -> dict[str, dict[str, Any]]:
    """The double's catalog nodes as ``/v1/catalog/nodes`` lists them, by name."""
    return {node["Node"]: node for node in stack.consul.state.snapshot()["nodes"]}


async def _assert_node_data_matches_the_catalog(stack: Stack) -> None:
    got = await stack.nodes_of("api-1")
    want = _catalog(stack)
    assert set(got) == set(want)
    for name, node in want.items():
        entry = got[name]
        assert entry["id"] == node["ID"], name
        assert entry["meta"] == node["Meta"], name
        assert entry["tagged_addresses"] == node["TaggedAddresses"], name


async def test_meta_tagged_addresses_and_ids_reach_the_api(stack: Stack) -> None:
    """Every node entry carries the catalog's node ID, meta and tagged addresses."""
    await eventually(lambda: _assert_node_data_matches_the_catalog(stack))
    entry = (await stack.nodes_of("api-1"))["prom-palmas-01"]
    assert entry["meta"]["site"] == "palmas"
    assert entry["meta"]["consul-version"]
    assert entry["tagged_addresses"]["lan"] == entry["addr"]


async def test_a_meta_change_and_a_new_node_reach_the_api_and_the_filter(stack: Stack) -> None:
    """A node re-registered with other meta, and one joining with meta, show up and filter."""
    state = stack.consul.state
    node = state.nodes["prom-rio-01"]
    state.catalog_register(
        {
            "Node": node.name,
            "Address": node.address,
            "ID": node.id,
            "NodeMeta": {**node.meta, "rack": "r7"},
            "TaggedAddresses": {"lan": node.address, "wan": "203.0.113.7"},
        }
    )
    state.join_node("e2e-meta-1", "127.60.0.1", meta={"rack": "r7", "os": "linux"})
    await eventually(lambda: _assert_node_data_matches_the_catalog(stack))
    url = stack.url("api-1") + "/api/v1/nodes"
    racked = (await stack.http.get(url, params={"meta": "rack:r7"})).json()
    assert sorted(n["node"] for n in racked["data"]) == ["e2e-meta-1", "prom-rio-01"]
    both = await stack.http.get(url, params={"meta": ["rack:r7", "site:rio"]})
    assert [n["node"] for n in both.json()["data"]] == ["prom-rio-01"]
    assert (await stack.http.get(url, params={"meta": "rack"})).status_code == 400


def _expected_targets(stack: Stack) -> set[str]:
    """``addr:port`` of every service instance with a port in the double's catalog."""
    state = stack.consul.state
    targets = set()
    for name, services in state.services.items():
        for service in services.values():
            if service.port > 0:
                targets.add(f"{service.address or state.nodes[name].address}:{service.port}")
    return targets


async def _sd_targets(stack: Stack) -> set[str]:
    response = await stack.http.get(stack.url("api-1") + "/api/v1/sd/prometheus")
    assert response.status_code == 200, response.text
    return {target for group in response.json() for target in group["targets"]}


async def test_the_sd_endpoint_lists_every_instance(stack: Stack) -> None:
    """``/api/v1/sd/prometheus`` lists exactly the catalog's instances, with a working ETag."""

    async def converged() -> None:
        assert await _sd_targets(stack) == _expected_targets(stack)

    await eventually(converged)
    url = stack.url("api-1") + "/api/v1/sd/prometheus"
    first = await stack.http.get(url)
    again = await stack.http.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def _prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    if found:
        return found
    debian = "/usr/bin/prometheus"
    return debian if os.access(debian, os.X_OK) else None


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on a free 127.0.0.1 port, discovering through the stack's API."""
    binary = _prometheus_binary()
    if binary is None:
        reason = "no prometheus binary (scripts/install_prometheus.sh installs Debian's)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)  # under CI a missing server is a broken setup, not a skip
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1h\n"
        "scrape_configs:\n"
        "  - job_name: nodeview\n"
        "    http_sd_configs:\n"
        f"      - url: {stack.url('api-1')}/api/v1/sd/prometheus\n"
        f"        refresh_interval: {SD_REFRESH_SECONDS}s\n"
    )
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    try:
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


async def _discovered(http: httpx.AsyncClient, prometheus: str) -> dict[str, dict[str, str]]:
    """Prometheus' active targets of the ``nodeview`` job: address → discovered labels."""
    response = await http.get(prometheus + "/api/v1/targets", params={"state": "active"})
    assert response.status_code == 200, response.text
    return {
        target["discoveredLabels"]["__address__"]: target["discoveredLabels"]
        for target in response.json()["data"]["activeTargets"]
        if target["scrapePool"] == "nodeview"
    }


async def test_a_real_prometheus_discovers_the_stacks_instances(
    stack: Stack, prometheus: str
) -> None:
    """Prometheus' targets list every instance; a service registered in Consul joins them."""

    async def lists_every_instance() -> None:
        assert set(await _discovered(stack.http, prometheus)) == _expected_targets(stack)

    await eventually(lists_every_instance, within=PROMETHEUS_WAIT_SECONDS, interval=0.5)
    labels = next(
        found
        for found in (await _discovered(stack.http, prometheus)).values()
        if found["__meta_nodeview_node"] == "prom-palmas-01"
    )
    assert labels["__meta_nodeview_site"] == "Palmas (TO)"
    assert labels["__meta_nodeview_node_meta_site"] == "palmas"
    assert labels["__meta_nodeview_tags"].startswith(",exporter,")

    node = stack.consul.state.nodes["prom-recife-01"]
    stack.consul.state.register_service(
        node.name, "e2e-sd", "e2e-sd", tags=("sd", "e2e"), port=19999
    )
    target = f"{node.address}:19999"

    async def lists_the_new_service() -> None:
        found = (await _discovered(stack.http, prometheus))[target]
        assert found["__meta_nodeview_service"] == "e2e-sd"
        assert found["__meta_nodeview_tags"] == ",sd,e2e,"
        assert found["__meta_nodeview_node"] == "prom-recife-01"

    await eventually(lists_the_new_service, within=PROMETHEUS_WAIT_SECONDS, interval=0.5)
    # What Prometheus holds is exactly what the view holds, the new instance included.
    assert set(await _discovered(stack.http, prometheus)) == _expected_targets(stack)

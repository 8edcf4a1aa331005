"""The live node dashboard in headless Chromium, against the real stack."""

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.support import API, Dashboard
from tests.e2e.stack import Stack, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]

UI_TIMEOUT_MS = 60_000
"""How long the page may take to show a change (generous: the stack may share a busy machine)."""
NOT_READY = '{"success":false,"error":"not_ready","detail":"replaying"}'
ROW_FIELDS = ("addr", "status", "type", "site_name", "services_count", "services_status")
ROWS_SCRIPT = """() => [...document.querySelectorAll('#nodes-body tr')].map((tr) => ({
  node: tr.dataset.node,
  addr: tr.querySelector('.col-addr').textContent,
  status: tr.dataset.status,
  type: tr.querySelector('.col-type').textContent,
  site_name: tr.querySelector('.col-site').textContent,
  services_count: Number(tr.querySelector('.col-count').textContent),
  services_status: tr.querySelector('.col-services-status').textContent,
}))"""


async def _api_nodes(stack: Stack) -> dict[str, Any]:
    response = await stack.http.get(stack.url(API) + "/api/v1/nodes")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _api_shows(stack: Stack, node: str, **fields: object) -> None:
    """Wait until the API itself serves ``node`` with ``fields`` (the pipeline's part)."""

    async def check() -> None:
        entry = (await stack.nodes_of(API))[node]
        assert {k: entry[k] for k in fields} == fields, (node, entry)

    await eventually(check, within=UI_TIMEOUT_MS / 1000)


async def _open(board: Dashboard) -> Page:
    await board.page.goto(board.url)
    await expect(board.page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=UI_TIMEOUT_MS
    )
    return board.page


async def _assert_table_matches_api(stack: Stack, page: Page) -> None:
    body = await _api_nodes(stack)
    want = {n["node"]: {f: n[f] for f in ROW_FIELDS} for n in body["data"]}
    rows = await page.evaluate(ROWS_SCRIPT)
    got = {row.pop("node"): row for row in rows}
    assert got == want
    assert [row["node"] for row in await page.evaluate(ROWS_SCRIPT)] == sorted(want)
    for status in ("alive", "dead", "unknown"):
        count = sum(1 for n in body["data"] if n["status"] == status)
        assert await page.text_content(f"#count-{status}") == str(count), status
    assert await page.text_content("#count-total") == str(body["total"])
    assert await page.text_content("#main-server") == body["main_server"]


async def _mark_page(page: Page) -> None:
    await page.evaluate("() => { window.sameDocument = true; }")


async def _assert_same_page(page: Page) -> None:
    assert await page.evaluate("() => window.sameDocument === true"), "the page was reloaded"


async def test_page_and_files_are_served_with_types_csp_and_cache_headers(stack: Stack) -> None:
    """``/`` and ``/static/*`` answer with their content type, CSP, ETag/304 and no-cache."""
    expected = {
        "/": "text/html",
        "/static/app.js": "text/javascript",
        "/static/selector.js": "text/javascript",
        "/static/events.js": "text/javascript",
        "/static/style.css": "text/css",
        "/static/favicon.svg": "image/svg+xml",
    }
    for path, content_type in expected.items():
        response = await stack.http.get(stack.url(API) + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(content_type), path
        assert response.headers["cache-control"] == "no-cache", path
        assert "default-src 'self'" in response.headers["content-security-policy"], path
        again = await stack.http.get(
            stack.url(API) + path, headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304, path
    for missing in ("/static/nope.js", "/static/..%2Fdashboard.py", "/static/"):
        assert (await stack.http.get(stack.url(API) + missing)).status_code == 404, missing


async def test_table_matches_the_api(stack: Stack, dashboard: Dashboard) -> None:
    """Once live, every row, count and the main server equal ``GET /api/v1/nodes``."""
    page = await _open(dashboard)
    await eventually(lambda: _assert_table_matches_api(stack, page), within=UI_TIMEOUT_MS / 1000)
    assert await page.is_hidden("#stale-banner")


async def test_filters_narrow_the_table(stack: Stack, dashboard: Dashboard) -> None:
    """The site and status filters show exactly the API's nodes of that site and status."""
    page = await _open(dashboard)
    body = await _api_nodes(stack)
    site = sorted({n["site_name"] for n in body["data"] if n["type"] == "client"})[0]
    await expect(page.locator(f"#filter-site option[value='{site}']")).to_have_count(1)
    await page.select_option("#filter-site", site)
    await page.select_option("#filter-status", "alive")
    want = sorted(
        n["node"] for n in body["data"] if n["site_name"] == site and n["status"] == "alive"
    )
    await expect(page.locator("#nodes-body tr")).to_have_count(len(want), timeout=UI_TIMEOUT_MS)
    assert [row["node"] for row in await page.evaluate(ROWS_SCRIPT)] == want
    assert await page.text_content("#count-shown") == str(len(want))


async def test_joining_node_appears_without_reload(stack: Stack, dashboard: Dashboard) -> None:
    """A node joining in Consul shows up as a new alive row, live, with no page reload."""
    page = await _open(dashboard)
    await _mark_page(page)
    state = stack.consul.state
    state.join_node("web-joined-01", "127.60.0.1")
    state.register_service("web-joined-01", "web-1", "web", tags=("browser",), port=8080)
    await _api_shows(stack, "web-joined-01", status="alive", services_count=1)
    row = page.locator("#nodes-body tr[data-node='web-joined-01']")
    await expect(row).to_have_attribute("data-status", "alive", timeout=UI_TIMEOUT_MS)
    await expect(row.locator(".col-count")).to_have_text("1", timeout=UI_TIMEOUT_MS)
    await expect(row.locator(".col-addr")).to_have_text("127.60.0.1")
    await _assert_same_page(page)


async def test_failing_node_turns_its_row_dead(stack: Stack, dashboard: Dashboard) -> None:
    """A node failing in Consul turns its row dead and moves one node to the dead counter."""
    page = await _open(dashboard)
    await _mark_page(page)
    body = await _api_nodes(stack)
    node = next(n["node"] for n in body["data"] if n["status"] == "alive" and n["type"] == "client")
    dead_before = int(await page.text_content("#count-dead") or "0")
    stack.consul.state.fail_node(node)
    await _api_shows(stack, node, status="dead")
    row = page.locator(f"#nodes-body tr[data-node='{node}']")
    await expect(row).to_have_attribute("data-status", "dead", timeout=UI_TIMEOUT_MS)
    await expect(row).to_have_class("status-dead")
    await expect(page.locator("#count-dead")).to_have_text(str(dead_before + 1))
    await _assert_same_page(page)


async def test_reconnects_and_resyncs_after_the_stream_is_cut(
    stack: Stack, dashboard: Dashboard
) -> None:
    """After the API restarts (and once answers 503), the page reconnects and shows the changes."""
    page = await _open(dashboard)
    await _mark_page(page)
    assert await page.evaluate("() => nodeview.live.stats.snapshots") == 1
    refused: list[str] = []

    async def refuse_once(route: Route) -> None:
        # The browser's own EventSource retry gives up for good on a 503 (the API replaying).
        if not refused:
            refused.append(route.request.url)
            await route.fulfill(status=503, content_type="application/json", body=NOT_READY)
        else:
            await route.continue_()

    await page.route("**/api/v1/nodes/events", refuse_once)
    process = stack.processes[API]
    await asyncio.to_thread(process.stop)
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "reconnecting", timeout=UI_TIMEOUT_MS
    )
    state = stack.consul.state
    state.join_node("web-while-down", "127.60.0.2")
    victim = next(
        n for n, v in stack.expected().items() if v["status"] == "alive" and n.startswith("prom-")
    )
    state.fail_node(victim)
    process.start()
    await asyncio.to_thread(process.wait_ready)
    await _api_shows(stack, "web-while-down", status="alive")
    await _api_shows(stack, victim, status="dead")
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=UI_TIMEOUT_MS
    )
    await expect(page.locator("#nodes-body tr[data-node='web-while-down']")).to_have_count(
        1, timeout=UI_TIMEOUT_MS
    )
    await expect(page.locator(f"#nodes-body tr[data-node='{victim}']")).to_have_attribute(
        "data-status", "dead", timeout=UI_TIMEOUT_MS
    )
    await eventually(lambda: _assert_table_matches_api(stack, page), within=UI_TIMEOUT_MS / 1000)
    assert await page.evaluate("() => nodeview.live.stats.snapshots") >= 2
    assert len(refused) == 1
    await page.unroute("**/api/v1/nodes/events")
    await _assert_same_page(page)


async def test_selecting_a_node_lists_its_services(stack: Stack, dashboard: Dashboard) -> None:
    """The main server is selected first; choosing another node lists exactly its services."""
    page = await _open(dashboard)
    panel = page.locator("#services")
    await expect(page.locator("#node-select")).to_have_value("consul-server-1")
    await expect(panel).to_have_attribute("data-node", "consul-server-1")
    await expect(panel).to_have_attribute("data-loaded", "true", timeout=UI_TIMEOUT_MS)
    body = await _api_nodes(stack)
    node = next(n for n in body["data"] if n["type"] == "client" and n["services_count"] >= 2)
    await page.select_option("#node-select", node["node"])
    await expect(panel).to_have_attribute("data-node", node["node"])
    await expect(panel).to_have_attribute("data-loaded", "true", timeout=UI_TIMEOUT_MS)
    services = await stack.http.get(stack.url(API) + f"/api/v1/nodes/{node['addr']}/services")
    want = sorted(services.json()["services"])
    got = await page.eval_on_selector_all(
        "#services-body tr", "rows => rows.map(r => r.dataset.service)"
    )
    assert got == want
    other = next(
        n
        for n in body["data"]
        if n["type"] == "client" and n["services_count"] >= 2 and n["node"] != node["node"]
    )
    await page.click(f"#nodes-body tr[data-node='{other['node']}'] .col-node")
    await expect(page.locator("#node-select")).to_have_value(other["node"])
    await expect(panel).to_have_attribute("data-node", other["node"])
    await expect(page.locator("#services-title")).to_contain_text(other["addr"])


async def test_swapped_callback_still_receives_the_initial_selection(
    stack: Stack, dashboard: Dashboard
) -> None:
    """A callback swapped in before the nodes arrive gets the initial choice; the old one not."""
    page = dashboard.page
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/api/v1/nodes/events", hold)
    await page.goto(dashboard.url)
    await page.evaluate(
        """() => {
            window.calls = [];
            nodeview.setOnChange((addr, node) => window.calls.push(['first', addr, node.node]));
            nodeview.setOnChange((addr, node) => window.calls.push(['latest', addr, node.node]));
        }"""
    )
    assert await page.evaluate("() => window.calls") == []
    release.set()
    await expect(page.locator("#node-select")).to_have_value(
        "consul-server-1", timeout=UI_TIMEOUT_MS
    )
    addr = (await stack.nodes_of(API))["consul-server-1"]["addr"]
    assert await page.evaluate("() => window.calls") == [["latest", addr, "consul-server-1"]]
    assert await page.get_attribute("#services", "data-loaded") == "false"
    await page.unroute("**/api/v1/nodes/events")


async def test_main_node_rule(stack: Stack, dashboard: Dashboard) -> None:
    """The first choice is the node at main_server's host, else an alive server, else node 1."""
    page = await _open(dashboard)
    picked = await page.evaluate(
        """async () => {
            const { pickMainNode } = await import('./static/selector.js');
            const n = (node, addr, type, status) => ({ node, addr, type, status });
            const a = n('a', '10.0.0.1', 'client', 'alive');
            const b = n('b', '10.0.0.2', 'server', 'dead');
            const c = n('c', '10.0.0.3', 'server', 'alive');
            return [
                pickMainNode([a, b, c], '10.0.0.1:8500').node,
                pickMainNode([a, b, c], '127.0.0.1:8500').node,
                pickMainNode([a, b], '').node,
                pickMainNode([a], '127.0.0.1:8500').node,
                pickMainNode([a, c], '[::1]:8500').node,
                pickMainNode([], '10.0.0.1:8500'),
            ];
        }"""
    )
    assert picked == ["a", "c", "b", "a", "c", None]

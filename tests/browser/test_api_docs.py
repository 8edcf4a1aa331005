"""/docs (Swagger UI) and /redoc (ReDoc) in headless Chromium, cut off from all but 127.0.0.1."""

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, Route, expect

from devstack.nats import free_port
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.health import make_server
from tests.browser.support import ARTIFACTS, VIEWPORT

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

HOST = "127.0.0.1"
UI_TIMEOUT_MS = 30_000
"""How long a page may take to render (the bundles are a few MB on a busy machine)."""

VIOLATIONS_SCRIPT = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__violations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""
"""Collects every Content-Security-Policy violation the page reports (injected before it runs)."""


STARTUP_SECONDS = 30.0
"""Longest the API server may take to listen."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api_url() -> AsyncIterator[str]:
    """The API app served by uvicorn on 127.0.0.1; the docs need no NATS, so none is started."""
    port = free_port()
    settings = ApiSettings.model_validate({"API_HOST": HOST, "API_PORT": port})
    server = make_server(create_app(settings), HOST, port, lifespan="off")
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class OfflinePage:
    """A page whose requests may only reach 127.0.0.1; it records what it tried and refused."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.outside: list[str] = []
        self.errors: list[str] = []

    async def block_outside(self, route: Route) -> None:
        """Let requests to 127.0.0.1 through; abort (and note) every other."""
        if urlsplit(route.request.url).hostname == HOST:
            await route.continue_()
            return
        self.outside.append(route.request.url)
        await route.abort("internetdisconnected")

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep errors the page logs (Chromium logs CSP violations there too)."""
        if message.type == "error":
            self.errors.append(message.text)

    async def assert_clean(self) -> None:
        """Nothing tried to leave the machine, no policy violation, no error logged."""
        violations = await self.page.evaluate("() => window.__violations")
        assert violations == []
        assert self.outside == []
        assert self.errors == []


@pytest_asyncio.fixture(loop_scope="module")
async def offline(browser: Browser) -> AsyncIterator[OfflinePage]:
    """A fresh browser context cut off from everything but 127.0.0.1."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    handle = OfflinePage(page)
    await context.route("**/*", handle.block_outside)
    await context.add_init_script(VIOLATIONS_SCRIPT)
    page.on("console", handle.on_console)
    page.on("pageerror", lambda error: handle.errors.append(f"uncaught: {error}"))
    try:
        yield handle
    finally:
        await context.close()


async def _rendered(locator: Locator) -> None:
    await expect(locator).to_be_visible(timeout=UI_TIMEOUT_MS)


async def test_swagger_ui_renders_offline_under_its_policy(
    api_url: str, offline: OfflinePage
) -> None:
    """/docs draws every operation from /openapi.json offline, with no CSP violation."""
    page = offline.page
    await page.goto(api_url + "/docs")
    # Operation rows exist only once Swagger UI ran and read the OpenAPI document.
    await _rendered(page.locator(".opblock-summary-path", has_text="/api/v1/nodes").first)
    paths = await page.locator(".opblock-summary-path").all_text_contents()
    assert "/api/v1/admin/cache/nodes/flush" in [p.replace("\u200b", "") for p in paths]
    await offline.assert_clean()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "api-docs.png")


async def test_redoc_renders_offline_under_its_policy(api_url: str, offline: OfflinePage) -> None:
    """/redoc draws the operations and its search box offline, with no CSP violation."""
    page = offline.page
    await page.goto(api_url + "/redoc")
    await _rendered(page.get_by_role("heading", name="List Nodes"))
    await _rendered(page.get_by_placeholder("Search..."))
    await offline.assert_clean()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "api-redoc.png")

"""Fixtures of the browser tests: the real stack, Debian's Chromium and a dashboard page."""

import os
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, async_playwright

from tests.browser.support import (
    API,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SKIP_REASON,
    VIEWPORT,
    Dashboard,
)
from tests.e2e.stack import Stack, converged


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One running stack (24 nodes, relay, enricher, one API replica) for the module."""
    running = Stack(
        tmp_path_factory.mktemp("browser-stack"),
        nodes=24,
        services=4,
        apis=1,
    )
    async with converged(running, API):
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser).

    Without Chromium the browser tests skip with the reason, except under ``CI=true``: there a
    missing browser is a broken setup, and the tests fail instead of passing by skipping.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def dashboard(
    stack: Stack, browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[Dashboard]:
    """A fresh browser context on the dashboard (not yet loaded); screenshot saved at the end."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    board = Dashboard(page, stack.url(API) + "/")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            board.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: board.errors.append(f"uncaught: {error}"))
    try:
        yield board
        assert board.errors == [], board.errors
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
        if not page.is_closed() and page.url.startswith("http"):
            await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        await context.close()

"""Shared pieces of the browser tests: where Chromium is, how it starts, the page handle."""

from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
API = "api-1"
SKIP_REASON = (
    f"Chromium is not installed at {CHROMIUM} and scripts/install_chromium.sh could not "
    "install it with apt-get (not root, no apt-get, or no package source)"
)


@dataclass
class Dashboard:
    """A page on the dashboard, with the errors the page itself reported."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)

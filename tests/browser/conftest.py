"""The browser tier: the web page in Debian's Chromium, driven by Playwright.

The app runs under ``serve.run`` as in the serve tier, but with ``local`` storage:
the page then uploads to, plays from and downloads from its own origin, the way a
one-machine deployment serves it. (With S3 the browser talks to the bucket
directly, which needs CORS on the bucket: see docs/WEB.md.) The app takes the
serve tier's name and route ``/``; tiers run in order, so that tier is done.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from ray import serve

from config import Settings
from deployments.app import compose
from pipelines.separation import save_random_htdemucs
from tests.serve.conftest import APP, serve_args
from tests.serving import TINY_HTDEMUCS, wait_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 900, "height": 900}


def launch(playwright: Playwright, *extra_args: str) -> Browser:
    """Debian's Chromium (never a browser build of Playwright's own)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh as root")
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], timeout=60_000
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Save ``docs/screenshots/{name}.png`` (overwritten on every run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page)


@pytest.fixture(scope="session")
def web_app(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app with local storage; the page is its ``GET /``."""
    repo = tmp_path_factory.mktemp("browser-models")
    save_random_htdemucs(repo, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    settings = Settings(storage_backend="local", data_dir=tmp_path_factory.mktemp("browser-data"))
    serve.run(compose(serve_args(repo), settings), name=APP, route_prefix="/")
    wait_ready(ray_cluster)
    yield ray_cluster
    serve.delete(APP)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser, web_app: str) -> Iterator[Page]:
    """A fresh desktop-sized tab on the page, its models loaded."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(web_app + "/")
    tab.wait_for_selector("#separation-model option", state="attached")
    yield tab
    context.close()

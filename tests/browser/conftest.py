"""The browser tier: the web page in Debian's Chromium, driven by Playwright.

The app runs under ``serve.run`` as in the serve tier, but with ``local`` storage:
the page then uploads to, plays from and downloads from its own origin, the way a
one-machine deployment serves it. ``test_s3_storage.py`` runs it on SeaweedFS
instead, where the browser talks to the bucket directly. Each module deploys its
own app under the serve tier's name and route ``/`` (tiers run in order, so that
tier is done; only one app can own ``/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    FilePayload,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from config import Settings
from deployments.app import compose
from harness.models import save_random_htdemucs
from tests.serve.conftest import serve_args
from tests.serving import TINY_HTDEMUCS, Stage

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
DESKTOP: ViewportSize = {"width": 900, "height": 900}


def launch(playwright: Playwright, *extra_args: str) -> Browser:
    """Debian's Chromium (never a browser build of Playwright's own)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh as root")
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], timeout=60_000
    )


def choose_file(page: Page, name: str, data: bytes, mime: str) -> None:
    """Put an in-memory file into the page's file input, as picking it would."""
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    page.set_input_files("#file", files=[payload])


def use_api_key(page: Page, key: str) -> None:
    """Answer the page's request for a key, as a person would, and wait for the models."""
    expect(page.locator("#error")).to_have_text(
        "An API key is required: send Authorization: Bearer <key>."
    )
    expect(page.locator("#api-key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#separation-model option", state="attached")
    expect(page.locator("#error")).to_be_hidden()


def screenshot(target: Page | Locator, name: str) -> None:
    """Save ``docs/screenshots/{name}.png`` of a tab's viewport or of one element."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=SCREENSHOTS / f"{name}.png")


def deploy(stage: Stage, key: str, model_repo: Path, settings: Settings) -> str:
    """Run the app with ``settings`` as the page's server (``key`` names that setup)."""
    return stage.ensure(f"browser-{key}", lambda: compose(serve_args(model_repo), settings))


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("browser-models")
    save_random_htdemucs(repo, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    return repo


def local_settings(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> Settings:
    data_dir = tmp_path_factory.mktemp("browser-data")
    return Settings(storage_backend="local", data_dir=data_dir, **overrides)


@pytest.fixture(scope="session")
def plain_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return local_settings(tmp_path_factory)


@pytest.fixture(scope="module")
def web_app(stage: Stage, model_repo: Path, plain_settings: Settings) -> str:
    """Base URL of the app with local storage and no API keys; the page is its ``GET /``."""
    return deploy(stage, "plain", model_repo, plain_settings)


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
    """A fresh desktop-sized tab on the page, its models loaded (or its key asked for).

    Fails the test on an uncaught script error or anything the page's
    Content-Security-Policy blocked.
    """
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    tab.set_default_timeout(30_000)
    tab.goto(web_app + "/")
    tab.wait_for_selector("#separation-model option, #key-form:not([hidden])", state="attached")
    yield tab
    context.close()
    assert problems == []

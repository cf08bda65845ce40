"""The page itself: its headers, errors as sentences, a phone-sized screen, the keyboard."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import choose_file, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PHONE: ViewportSize = {"width": 390, "height": 844}
NOT_AUDIO = b"These bytes are a text file, not audio at all.\n" * 64


def test_page_and_its_files_are_served_with_strict_headers(web_app: str) -> None:
    page = httpx.get(web_app + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        response = httpx.get(f"{web_app}/static/{name}", timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        again = httpx.get(
            f"{web_app}/static/{name}", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304
    missing = httpx.get(f"{web_app}/static/nothing.js", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{web_app}/static/index.html", timeout=10).status_code == 404
    assert httpx.get(f"{web_app}/static/..%2Fapi%2Fweb.py", timeout=10).status_code == 404


def test_undecodable_file_shows_the_api_sentence_not_its_code(page: Page, web_app: str) -> None:
    files = {"file": ("notes.mp3", NOT_AUDIO, "audio/mpeg")}
    refused = httpx.post(f"{web_app}/v1/separations", files=files, timeout=30)
    assert refused.status_code == 415
    message = refused.json()["error"]["message"]

    choose_file(page, "notes.mp3", NOT_AUDIO, "audio/mpeg")
    page.click("#start")
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=60_000)
    expect(error).to_have_text(message)
    assert "unsupported_audio" not in page.inner_text("body")


def test_refused_upload_shows_the_api_sentence(page: Page) -> None:
    too_big = bytes(9 * 1024 * 1024)  # the serve args allow 8 MB
    choose_file(page, "big.wav", too_big, "audio/wav")
    page.click("#start")
    error = page.locator("#error")
    expect(error).to_have_text(f"The file is {len(too_big)} bytes; the upload limit is "
                               f"{8 * 1024 * 1024} bytes.")  # fmt: skip
    assert "payload_too_large" not in page.inner_text("body")
    expect(page.locator("#start")).to_be_enabled()


def test_keyboard_reaches_file_mode_and_start_in_order(page: Page) -> None:
    screenshot(page, "idle")
    page.locator("body").focus()
    order: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.name"))
    assert order.index("file") < order.index("mode") < order.index("start")
    page.focus("#file")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # radio group: arrows choose
    assert page.evaluate("document.querySelector('input[name=mode]:checked').value") == "transcribe"
    expect(page.locator("#transcription-model")).to_be_visible()
    expect(page.locator("#stems")).to_be_hidden()


def test_phone_screen_has_no_sideways_scroll(browser: Browser, web_app: str) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(web_app + "/")
    page.wait_for_selector("#stem-choices input", state="attached")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1]
    for selector in ("#file", "input[name=mode][value=lyrics]", "#start", "#live-start"):
        control = page.locator(selector)
        control.scroll_into_view_if_needed()
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "phone")
    context.close()

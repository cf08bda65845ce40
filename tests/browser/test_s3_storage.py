"""The page as deployed for real: S3 storage and API keys.

The browser PUTs to, plays from and downloads from the bucket: presigned URLs point
at SeaweedFS (another origin than the page), so this checks that the page's
Content-Security-Policy names the storage origin and that the bucket answers CORS
(SeaweedFS does for any origin). The page asks for the key, sends it as a bearer
token and as ``?token=`` on the job's event stream.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import choose_file, deploy, use_api_key
from tests.s3server import S3Server
from tests.serving import Stage
from tests.speech import song_with_vocals

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PLAY = """async (audio) => {
  await audio.play();
  const started = audio.currentTime;
  // Playing shows as time moving; on a loaded machine it may take a while to start.
  const deadline = Date.now() + 15000;
  while (audio.currentTime <= started && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  audio.pause();
  return { started, now: audio.currentTime, readyState: audio.readyState };
}"""


API_KEY = "browser-tier-key-0123456789"


@pytest.fixture(scope="module")
def web_app(stage: Stage, model_repo: Path, s3_server: S3Server) -> str:
    settings = s3_server.settings(bucket="browser-tier", api_keys=f"browser:{API_KEY}")
    return deploy(stage, "s3", model_repo, settings)


def test_two_stems_upload_play_and_download_from_the_bucket(
    page: Page, s3_server: S3Server
) -> None:
    use_api_key(page, API_KEY)
    song = song_with_vocals("weather")
    choose_file(page, "song.mp3", song, "audio/mpeg")
    page.select_option("#two-stems", "vocals")
    expect(page.locator("input[name=stems]").first).to_be_disabled()
    page.select_option("#format", "flac")
    page.click("#start")
    expect(page.locator("#job-text")).to_have_text("100 %", timeout=120_000)
    expect(page.locator("#error")).to_be_hidden()

    players = page.locator("#stems-list audio")
    expect(players).to_have_count(2)
    assert sorted(page.locator("#stems-list h3").all_inner_texts()) == ["no_vocals", "vocals"]
    assert (players.first.get_attribute("src") or "").startswith(s3_server.endpoint + "/")
    played = players.first.evaluate(PLAY)
    assert played["readyState"] >= 2 and played["now"] > played["started"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all stems (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == ["no_vocals.flac", "vocals.flac"]


def test_lyrics_show_the_transcript_fetched_from_the_bucket(page: Page) -> None:
    use_api_key(page, API_KEY)
    choose_file(page, "song.mp3", song_with_vocals("weather"), "audio/mpeg")
    page.check("input[name=mode][value=lyrics]")
    page.click("#start")
    expect(page.locator("#job-text")).to_have_text("100 %", timeout=120_000)
    expect(page.locator("#error")).to_be_hidden()
    assert sorted(page.locator("#stems-list h3").all_inner_texts()) == ["instrumental", "vocals"]
    expect(page.locator("#transcript-view")).to_be_visible()
    expect(page.locator("#transcript li").first).to_be_visible()
    for label in ("LRC", "SRT", "JSON"):
        expect(page.locator("#transcript-files").get_by_role("link", name=label)).to_be_visible()

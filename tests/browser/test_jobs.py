"""Jobs from the page: upload with progress, live job progress, players, downloads, transcript."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from evaluation.wer import word_error_rate
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.browser.conftest import choose_file, screenshot
from tests.speech import TRANSCRIPTS, WER_BOUND, speech_path

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

STEMS = ["drums", "bass", "other", "vocals"]
TIMESTAMP = re.compile(r"^\d+:\d\d\.\d \N{EN DASH} \d+:\d\d\.\d$")

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


def test_separate_a_song_play_a_stem_and_download_the_zip(page: Page) -> None:
    song = audio.encode(sine_mix(6.0, 44100, channels=2, seed=3), 44100, format="wav")
    choose_file(page, "song.wav", song, "audio/wav")
    expect(page.locator("#status")).to_contain_text("Ready: song.wav")
    page.check("input[name=mode][value=separate]")
    page.click("#start")

    expect(page.locator("#upload-text")).to_have_text("100 %")
    expect(page.locator("#job-label")).to_have_text("Separating")
    bar = page.locator("#job-bar")
    for _ in range(100):  # the picture: a job part-way, if it is not done too soon
        if float(bar.get_attribute("value") or 0) > 0 or page.is_visible("#result"):
            break
        page.wait_for_timeout(100)
    screenshot(page, "progress")
    expect(page.locator("#job-text")).to_have_text("100 %", timeout=120_000)
    expect(page.locator("#status")).to_have_text("Done.")
    expect(page.locator("#error")).to_be_hidden()

    players = page.locator("#stems-list audio")
    expect(players).to_have_count(len(STEMS))
    names = page.locator("#stems-list h3").all_inner_texts()
    assert sorted(names) == sorted(STEMS)
    played = players.first.evaluate(PLAY)
    assert played["readyState"] >= 2 and played["now"] > played["started"]
    screenshot(page.locator("#result"), "result")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download all stems (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == sorted(f"{stem}.wav" for stem in STEMS)
    stem = audio.decode(io.BytesIO(archive.read("vocals.wav")), sample_rate=44100, channels=2)
    assert abs(stem.shape[-1] / 44100 - 6.0) < 0.05


def test_transcribe_speech_shows_the_text_with_timestamps(page: Page) -> None:
    choose_file(page, "weather.wav", speech_path("weather").read_bytes(), "audio/wav")
    page.check("input[name=mode][value=transcribe]")
    page.click("#start")

    segments = page.locator("#transcript li")
    expect(segments.first).to_be_visible(timeout=120_000)
    times = page.locator("#transcript .time").all_inner_texts()
    assert times and all(TIMESTAMP.match(t) for t in times)
    text = " ".join(page.locator("#transcript .text").all_inner_texts())
    assert word_error_rate(TRANSCRIPTS["weather"], text) <= WER_BOUND
    for label in ("SRT", "VTT", "TXT"):
        link = page.locator("#transcript-files").get_by_role("link", name=label, exact=True)
        expect(link).to_have_attribute("href", re.compile(r"/v1/files/"))
    expect(page.locator("#job-text")).to_have_text("100 %")
    page.locator("#result").scroll_into_view_if_needed()
    screenshot(page, "transcript")

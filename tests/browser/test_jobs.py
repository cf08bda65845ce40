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

STEM_TIMES = "() => [...document.querySelectorAll('#stems-list audio')].map((a) => a.currentTime)"
SILENT_ONLY = """(silent) => {
  const strips = [...document.querySelectorAll('#stems-list li')];
  return strips.length > 0 && strips.every((li) => {
    const level = li.querySelector('meter').value;
    return silent.includes(li.dataset.stem) ? level === 0 : level > 0;
  });
}"""
SEEK = """(slider, value) => {
  slider.value = String(value);
  slider.dispatchEvent(new Event('input'));
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

    expect(page.locator("#stems-list audio")).to_have_count(len(STEMS))
    names = page.locator("#stems-list h3").all_inner_texts()
    assert sorted(names) == sorted(STEMS)
    check_mixer(page)
    screenshot(page.locator("#result"), "result")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download all stems (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == sorted(f"{stem}.wav" for stem in STEMS)
    stem = audio.decode(io.BytesIO(archive.read("vocals.wav")), sample_rate=44100, channels=2)
    assert abs(stem.shape[-1] / 44100 - 6.0) < 0.05


def check_mixer(page: Page) -> None:
    """One transport plays every stem in sync; mute silences one; a seek moves them all."""
    expect(page.locator("#stems-list canvas[data-drawn=true]")).to_have_count(len(STEMS))
    page.click("#mixer-play")
    expect(page.locator("#mixer-play")).to_have_text("Pause")
    page.wait_for_function("() => document.querySelector('#stems-list audio').currentTime > 0.5")
    times = page.evaluate(STEM_TIMES)
    assert max(times) - min(times) < 0.1, times
    levels_follow(page, silent=[])
    page.get_by_label("Mute drums").check()
    levels_follow(page, silent=["drums"])
    page.locator("#mixer-seek").evaluate(SEEK, 1.0)
    times = page.evaluate(STEM_TIMES)
    assert all(1.0 <= t < 1.5 for t in times), times
    expect(page.locator("#mixer-time")).to_have_text(re.compile(r"^0:0[12]\.\d$"))
    page.get_by_label("Mute drums").uncheck()
    page.get_by_label("Solo vocals").check()
    levels_follow(page, silent=["drums", "bass", "other"])
    page.get_by_label("Solo vocals").uncheck()
    page.get_by_label("bass volume").evaluate(SEEK, 0)
    levels_follow(page, silent=["bass"])
    page.click("#mixer-play")
    expect(page.locator("#mixer-play")).to_have_text("Play")


def levels_follow(page: Page, silent: list[str]) -> None:
    """Wait until exactly the ``silent`` stems' level meters read zero."""
    page.wait_for_function(SILENT_ONLY, arg=silent, timeout=15_000)


def test_a_recent_job_reopens_in_the_mixer(page: Page) -> None:
    song = audio.encode(sine_mix(2.0, 44100, channels=2, seed=4), 44100, format="wav")
    choose_file(page, "short.wav", song, "audio/wav")
    page.select_option("#two-stems", "vocals")
    page.click("#start")
    expect(page.locator("#status")).to_have_text(re.compile("^Done"), timeout=120_000)
    page.reload()
    recent = page.locator("#recent li").first
    expect(recent).to_contain_text("Stems")
    expect(recent).to_contain_text("succeeded")
    recent.get_by_role("button", name=re.compile("^Open")).click()
    expect(page.locator("#status")).to_have_text("Reopened an earlier job.")
    expect(page.locator("#stems-list h3")).to_have_count(2)
    assert sorted(page.locator("#stems-list h3").all_inner_texts()) == ["no_vocals", "vocals"]
    expect(page.locator("#stems-list canvas[data-drawn=true]")).to_have_count(2)


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

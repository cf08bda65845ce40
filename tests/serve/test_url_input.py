"""``input.url`` through the served app against a real HTTP server on loopback.

The serve tier's app allows private addresses (its test servers live on loopback), so
a host *name* that resolves to one (``localhost``) is fetched here; the boundary tier's
app, which does not allow them, refuses the same name (``test_boundary.py``). Every
redirect hop is checked like the first; the size cap stops a body mid-stream and the
time cap a server that trickles or stalls, each with a clear error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from pipelines import audio
from pipelines.fetch import MAX_REDIRECTS
from tests.audio_factory import sine_mix
from tests.serving import follow_job

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

PORT = int(os.environ.get("STEMSCRIBE_TEST_FILES_PORT", "28300"))
SONG = audio.encode(sine_mix(1.0, 44100, seed=3), 44100, format="wav")
BIG = 9 * 1024 * 1024  # over the serve tier's 8 MB upload limit


class Origin(BaseHTTPRequestHandler):
    """Routes: a song, redirects (chains, loops, to other schemes), a body larger than the
    limit sent without a length, a body that trickles and one that stalls."""

    seen: ClassVar[list[str]] = []
    sent: ClassVar[dict[str, int]] = {}
    stop = threading.Event()

    def do_GET(self) -> None:
        self.seen.append(self.path)
        route, _, arg = self.path.strip("/").partition("/")
        if route == "song.wav":
            self._send(SONG)
        elif route == "hop":  # /hop/N redirects N more times, then to the song
            left = int(arg)
            self._redirect(f"/hop/{left - 1}" if left > 1 else "/song.wav")
        elif route == "to":  # a redirect to an absolute target given after /to/
            self._redirect(arg)
        elif route == "loop":
            self._redirect("/loop")
        elif route in ("big", "trickle", "stall"):
            self._stream(route)
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream(self, route: str) -> None:
        """No Content-Length: only counting what arrives can enforce the caps."""
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        try:
            while sent < 4 * BIG and not self.stop.is_set():
                if route == "big":
                    sent += self.wfile.write(b"\0" * 65536)
                    continue
                time.sleep(0.2)
                if route == "trickle":  # a byte at a time, never silent for long
                    sent += self.wfile.write(b"\0")
                    self.wfile.flush()
        except OSError:
            pass  # the service hung up: what the caps are for
        self.sent[route] = sent

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with ThreadingHTTPServer(("127.0.0.1", PORT), Origin) as httpd:
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{PORT}"
        finally:
            Origin.stop.set()
            httpd.shutdown()


@pytest.fixture()
def seen() -> list[str]:
    Origin.seen.clear()
    return Origin.seen


@pytest.fixture(scope="module")
def client(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=120) as session:
        yield session


def separate(client: httpx.Client, url: str) -> httpx.Response:
    body = {"input": {"url": url}, "stems": ["drums"], "shifts": 0}
    return client.post("/v1/separations", json=body)


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


def test_a_url_is_fetched_and_separated(client: httpx.Client, origin: str) -> None:
    accepted = separate(client, f"{origin}/song.wav")
    assert accepted.status_code == 202, accepted.text
    job = follow_job(client, accepted.json())
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["duration"] == pytest.approx(1.0, abs=0.05)


def test_every_redirect_hop_is_followed_and_checked(
    client: httpx.Client, origin: str, seen: list[str]
) -> None:
    accepted = separate(client, f"{origin}/hop/3")
    assert accepted.status_code == 202, accepted.text
    assert seen == ["/hop/3", "/hop/2", "/hop/1", "/song.wav"]
    seen.clear()
    message = refused(separate(client, f"{origin}/to/file:///etc/passwd"), 400, "invalid_request")
    assert "http(s)" in message and seen == ["/to/file:///etc/passwd"]
    seen.clear()
    with_credentials = f"http://user:secret@127.0.0.1:{PORT}/song.wav"
    message = refused(separate(client, f"{origin}/to/{with_credentials}"), 400, "invalid_request")
    assert "credentials" in message and seen == [f"/to/{with_credentials}"]
    seen.clear()
    message = refused(separate(client, f"{origin}/loop"), 400, "invalid_request")
    assert f"more than {MAX_REDIRECTS} times" in message
    assert seen == ["/loop"] * (MAX_REDIRECTS + 1)


def test_a_name_resolving_to_loopback_is_fetched_where_private_urls_are_allowed(
    client: httpx.Client, origin: str, seen: list[str]
) -> None:
    """``localhost`` is refused by default (test_boundary.py); this app allows it."""
    local = f"http://localhost:{PORT}/song.wav"
    accepted = separate(client, f"{origin}/to/{local}")
    assert accepted.status_code == 202, accepted.text
    assert seen == [f"/to/{local}", "/song.wav"]


def test_the_size_cap_stops_a_body_mid_stream(client: httpx.Client, origin: str) -> None:
    message = refused(separate(client, f"{origin}/big"), 413, "payload_too_large")
    assert "larger than the limit" in message
    assert 0 < _sent("big") < 4 * BIG  # the service hung up before the server finished


@pytest.mark.parametrize("route", ["trickle", "stall"])
def test_the_time_cap_ends_a_slow_download(client: httpx.Client, origin: str, route: str) -> None:
    response = separate(client, f"{origin}/{route}")
    message = refused(response, 400, "invalid_request")
    assert "took longer than the 5 s allowed" in message
    assert response.json()["error"]["details"] == {"field": "input.url"}
    if route == "trickle":
        assert _sent(route) > 0  # it hung up on a server that was still sending


def _sent(route: str) -> int:
    """Bytes the origin sent on ``route`` before the service hung up (waits for it)."""
    for _ in range(100):
        if route in Origin.sent:
            return Origin.sent.pop(route)
        time.sleep(0.1)
    raise AssertionError(f"the service never hung up on /{route}")

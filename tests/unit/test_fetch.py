"""``input.url`` fetching: address rules, pinning against DNS rebinding, caps."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipelines.errors import InvalidRequest, PayloadTooLarge
from pipelines.fetch import check_url, check_url_form, fetch_url, is_public, pin_url

pytestmark = pytest.mark.unit

BODY = b"RIFF" + bytes(2000)


class _Handler(BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hosts.append(self.headers.get("Host", ""))
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", "/song.wav")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Handler.hosts = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::7f00:1",  # IPv4-compatible (::127.0.0.1)
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
    ],
)
def test_private_addresses_and_ipv4_inside_ipv6_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:99999/a.wav",
        "http://example.com:port/a.wav",
        "ftp://example.com/a.wav",
        "file:///etc/passwd",
        "http://user:pw@example.com/a.wav",
        "http:///a.wav",
    ],
)
def test_malformed_urls_are_invalid_requests(url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_url_form(url)
    assert caught.value.details == {"field": "input.url"}


def test_loopback_names_are_refused_unless_allowed(server: int) -> None:
    with pytest.raises(InvalidRequest, match="non-public"):
        check_url(f"http://localhost:{server}/song.wav")
    check_url(f"http://localhost:{server}/song.wav", allow_private=True)


def rebinding(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Make ``rebind.test`` resolve to each of ``answers`` in turn; the names asked for."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_the_connection_goes_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, server: int, tmp_path: Path
) -> None:
    """Each hop resolves once; any further resolution (the HTTP client's own) would
    answer an address where nothing listens: the fetch connects to what was checked."""
    asked = rebinding(monkeypatch, ["127.0.0.1", "127.0.0.1", "127.0.0.2"])
    url = f"http://rebind.test:{server}/hop"
    size = fetch_url(url, tmp_path / "in", max_bytes=10_000, timeout=10, allow_private=True)
    assert size == len(BODY) and (tmp_path / "in").read_bytes() == BODY
    assert _Handler.hosts == [f"rebind.test:{server}"] * 2  # the hop and its target
    assert len(asked) == 2  # once per hop, each pinned: no resolution by the HTTP client
    assert pin_url(url, allow_private=True).address == ipaddress.ip_address("127.0.0.2")
    with pytest.raises(InvalidRequest, match="could not be fetched"):  # unpinned: refused
        fetch_url(url, tmp_path / "again", max_bytes=10_000, timeout=10, allow_private=True)


def test_a_public_answer_then_a_private_one_never_reaches_inside(
    monkeypatch: pytest.MonkeyPatch, server: int, tmp_path: Path
) -> None:
    rebinding(monkeypatch, ["127.0.0.1"])
    with pytest.raises(InvalidRequest, match="non-public"):
        fetch_url(
            f"http://rebind.test:{server}/song.wav", tmp_path / "in", max_bytes=10_000, timeout=10
        )
    assert _Handler.hosts == []


def test_proxy_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch, server: int, tmp_path: Path
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    url = f"http://127.0.0.1:{server}/song.wav"
    assert fetch_url(url, tmp_path / "in", max_bytes=10_000, timeout=10, allow_private=True) > 0


def test_size_cap_while_downloading(server: int, tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge):
        url = f"http://127.0.0.1:{server}/song.wav"
        fetch_url(url, tmp_path / "in", max_bytes=100, timeout=10, allow_private=True)

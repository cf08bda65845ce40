"""Fetch a job's input given by URL: http(s) only, bounded in size, time and redirects.

Private, loopback and link-local addresses are refused unless allowed, so a client
cannot make the service read from inside its own network.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from pipelines.errors import InvalidRequest, PayloadTooLarge

MAX_REDIRECTS = 5


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Refuse URLs the service must not fetch (scheme, credentials, internal hosts)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("input.url must be an http(s) URL.", details={"field": "input.url"})
    if parts.username or parts.password:
        raise InvalidRequest(
            "input.url must not carry credentials.", details={"field": "input.url"}
        )
    if not allow_private:
        for address in _addresses(parts.hostname, parts.port or 443):
            if not address.is_global:
                raise InvalidRequest(
                    f"input.url points to a non-public address ({address}).",
                    details={"field": "input.url"},
                )


def _addresses(host: str, port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidRequest(f"input.url host {host!r} does not resolve.") from exc
    return {ipaddress.ip_address(info[4][0]) for info in infos}


def fetch_url(
    url: str, dest: Path, *, max_bytes: int, timeout: float, allow_private: bool = False
) -> int:
    """Download ``url`` into ``dest``; every redirect hop is checked like the first URL."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=min(timeout, 30.0), follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private=allow_private)
            with client.stream("GET", url) as response:
                if response.is_redirect:
                    url = str(response.next_request.url) if response.next_request else ""
                    continue
                return _save(response, dest, max_bytes, deadline)
    raise InvalidRequest(f"input.url redirected more than {MAX_REDIRECTS} times.")


def _save(response: httpx.Response, dest: Path, max_bytes: int, deadline: float) -> int:
    if response.status_code != 200:
        raise InvalidRequest(f"input.url answered HTTP {response.status_code}.")
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise PayloadTooLarge(f"input.url is {declared} bytes; the limit is {max_bytes}.")
    written = 0
    with dest.open("wb") as out:
        for chunk in response.iter_bytes(1 << 16):
            written += len(chunk)
            if written > max_bytes:
                raise PayloadTooLarge(f"input.url is larger than the limit of {max_bytes} bytes.")
            if time.monotonic() > deadline:
                raise InvalidRequest("input.url took too long to download.")
            out.write(chunk)
    return written

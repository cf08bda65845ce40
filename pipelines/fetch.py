"""Fetch a job's input given by URL: http(s) only, bounded in size, time and redirects.

The same address rules guard every URL the service connects to on a client's word
(``input.url``, and ``callback_url`` of signed job callbacks, ``pipelines.webhooks``).
Private, loopback and link-local addresses are refused unless allowed, so a client
cannot make the service read from inside its own network. Each hop's host name is
resolved once, checked, and the connection goes to that very address (the name still
travels as ``Host`` and TLS server name), so a name that answers a public address to
the check and a private one to the connection (DNS rebinding) reaches nothing inside.
Proxy variables and ``.netrc`` in the environment are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx

from pipelines.errors import InvalidRequest, PayloadTooLarge

__all__ = [
    "INPUT_FIELD",
    "MAX_REDIRECTS",
    "PinnedUrl",
    "check_url",
    "check_url_form",
    "fetch_url",
    "is_public",
    "pin_url",
]

MAX_REDIRECTS = 5
INPUT_FIELD = "input.url"
_FIELD = {"field": INPUT_FIELD}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address in their low 32 bits: NAT64 (well-known
# and local-use) and the deprecated IPv4-compatible form. IPv4-mapped (::ffff:0:0/96)
# and 6to4 (2002::/16, bits 16-48) are read by the ipaddress module itself.
_EMBEDDING_V4 = tuple(
    ipaddress.IPv6Network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")
)


@dataclass(frozen=True)
class PinnedUrl:
    """A checked URL and the address its connection must go to."""

    url: str
    host: str
    address: IPAddress

    @property
    def connect_url(self) -> str:
        """``url`` with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{ip}:{parts.port}" if parts.port else ip
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc.rsplit("@", 1)[-1]


def check_url(url: str, *, allow_private: bool = False, field: str = INPUT_FIELD) -> None:
    """Refuse URLs the service must not reach (scheme, credentials, internal hosts).

    ``field`` names the request field in errors (``input.url``, ``callback_url``)."""
    pin_url(url, allow_private=allow_private, field=field)


def check_url_form(url: str, field: str = INPUT_FIELD) -> None:
    """Refuse URLs that are malformed, not http(s) or carry credentials (no DNS lookup)."""
    _split(url, field)


def pin_url(url: str, *, allow_private: bool = False, field: str = INPUT_FIELD) -> PinnedUrl:
    """Check ``url`` and choose the one address its connection will use."""
    parts = _split(url, field)
    host = parts.hostname or ""
    addresses = _addresses(host, _port(parts), field)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise InvalidRequest(
                    f"{field} points to a non-public address ({address}).",
                    details={"field": field},
                )
    return PinnedUrl(url, host, sorted(addresses, key=lambda a: a.version)[0])


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is globally reachable, judging IPv4 inside IPv6 as IPv4."""
    return address.is_global and all(v4.is_global for v4 in _embedded_v4(address))


def _embedded_v4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    if address.version == 4:
        return []
    assert isinstance(address, ipaddress.IPv6Address)
    found = [v4 for v4 in (address.ipv4_mapped, address.sixtofour) if v4 is not None]
    if any(address in net for net in _EMBEDDING_V4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        found.append(address.teredo[1])
    return found


def _split(url: str, field: str = INPUT_FIELD) -> SplitResult:
    details = {"field": field}
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidRequest(f"{field} is not a valid URL.", details=details) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{field} must be an http(s) URL.", details=details)
    if parts.username or parts.password:
        raise InvalidRequest(f"{field} must not carry credentials.", details=details)
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _addresses(host: str, port: int, field: str) -> set[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidRequest(
            f"{field} host {host!r} does not resolve.", details={"field": field}
        ) from exc
    # Scoped IPv6 ("fe80::1%eth0") carries its zone after the address.
    return {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}


def fetch_url(
    url: str, dest: Path, *, max_bytes: int, timeout: float, allow_private: bool = False
) -> int:
    """Download ``url`` into ``dest``; every redirect hop is checked and pinned like the first."""
    deadline = time.monotonic() + timeout
    with httpx.Client(
        timeout=min(timeout, 30.0), follow_redirects=False, trust_env=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            pinned = pin_url(url, allow_private=allow_private)
            request = client.build_request(
                "GET",
                pinned.connect_url,
                headers={"Host": pinned.host_header},
                extensions={"sni_hostname": pinned.host},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _unreachable(exc, timeout) from exc
            try:
                if response.is_redirect:
                    url = _next_hop(url, response)
                    continue
                return _save(response, dest, max_bytes, deadline, timeout)
            finally:
                response.close()
    raise InvalidRequest(f"input.url redirected more than {MAX_REDIRECTS} times.", details=_FIELD)


def _next_hop(url: str, response: httpx.Response) -> str:
    """The redirect's target, resolved against the URL as the client asked for it."""
    location = response.headers.get("location", "")
    return str(httpx.URL(url).join(location))


def _save(
    response: httpx.Response, dest: Path, max_bytes: int, deadline: float, timeout: float
) -> int:
    if response.status_code != 200:
        raise InvalidRequest(f"input.url answered HTTP {response.status_code}.", details=_FIELD)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"input.url is {declared} bytes; the limit is {max_bytes}.")
    written = 0
    try:
        with dest.open("wb") as out:
            # Chunks as they arrive (no re-chunking), so a server that trickles bytes
            # meets the deadline between any two of them.
            for chunk in response.iter_bytes():
                written += len(chunk)
                if written > max_bytes:
                    raise PayloadTooLarge(
                        f"input.url is larger than the limit of {max_bytes} bytes."
                    )
                if time.monotonic() > deadline:
                    raise _too_slow(timeout)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise _unreachable(exc, timeout) from exc
    return written


def _unreachable(exc: httpx.HTTPError, timeout: float) -> InvalidRequest:
    if isinstance(exc, httpx.TimeoutException):
        return _too_slow(timeout)
    return InvalidRequest(f"input.url could not be fetched: {exc}.", details=_FIELD)


def _too_slow(timeout: float) -> InvalidRequest:
    return InvalidRequest(
        f"input.url took longer than the {timeout:g} s allowed to download.", details=_FIELD
    )

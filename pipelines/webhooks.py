"""Signed HTTP callbacks, per the Standard Webhooks scheme (standardwebhooks.com).

Each POST carries ``webhook-id`` (the same on every attempt), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` then the base64
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the secret, given as
``whsec_<base64 key>``. The target address is checked and pinned by
``pipelines.fetch`` exactly like ``input.url`` (no private addresses unless allowed,
the connection goes to the address that was checked, no redirects followed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx

from pipelines.errors import InvalidRequest
from pipelines.fetch import pin_url

__all__ = ["CALLBACK_FIELD", "DeliveryResult", "WebhookSecret", "WebhookSender"]

CALLBACK_FIELD = "callback_url"
RETRYABLE_STATUS = frozenset({408, 425, 429})
"""Client-error answers that mean "later" rather than "never"; every 5xx is retried too."""


@dataclass(frozen=True)
class WebhookSecret:
    """The signing key: the bytes of a ``whsec_<base64>`` secret
    (``config.Settings.webhook_key`` decodes and checks it)."""

    key: bytes

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` value for one message."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        digest = hmac.new(self.key, content, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class DeliveryResult:
    """What one POST got: an HTTP status, or the reason there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Worth another try: no answer, a server error, or "slow down"."""
        code = self.status_code
        return code is None or code >= 500 or code in RETRYABLE_STATUS


class WebhookSender:
    """POSTs signed messages to checked, pinned addresses."""

    def __init__(self, secret: WebhookSecret, *, timeout: float, allow_private: bool) -> None:
        self._secret = secret
        self._timeout = timeout
        self._allow_private = allow_private

    async def send(self, url: str, msg_id: str, body: bytes) -> DeliveryResult:
        try:
            pinned = await asyncio.to_thread(
                pin_url, url, allow_private=self._allow_private, field=CALLBACK_FIELD
            )
        except InvalidRequest as exc:  # DNS may answer again later: retried like a network error
            return DeliveryResult(error=exc.message)
        timestamp = int(time.time())
        headers = {
            "Host": pinned.host_header,
            "Content-Type": "application/json",
            "User-Agent": "stemscribe-webhooks",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._secret.sign(msg_id, timestamp, body),
        }
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            request = client.build_request(
                "POST",
                pinned.connect_url,
                content=body,
                headers=headers,
                extensions={"sni_hostname": pinned.host},
            )
            try:
                response = await client.send(request)
            except httpx.HTTPError as exc:
                return DeliveryResult(error=f"{type(exc).__name__}: {exc}".rstrip(": "))
            await response.aclose()
        return DeliveryResult(status_code=response.status_code)

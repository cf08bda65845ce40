"""HMAC-signed URLs for the ``local`` backend's ``/v1/files/{key}`` route.

A signature covers one HTTP method, one object key, one expiry time and the
download file name, so a download URL cannot be replayed as an upload, for another
object, later, or re-labelled as another file.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pipelines.errors import InvalidSignature

_VERSION = b"stemscribe-url-v2"


class UrlSigner:
    """Signs and verifies ``(method, key, exp, filename)`` with HMAC-SHA256."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("The URL signing secret must be at least 16 bytes long.")
        self._secret = secret

    def sign(self, method: str, key: str, exp: int, filename: str | None = None) -> str:
        """Hex signature granting ``method`` on ``key`` until Unix time ``exp``.

        ``filename``, when given, is the ``Content-Disposition`` name the URL carries.
        """
        # Key last: method, exp and the name's length-prefixed form cannot contain the
        # separator ambiguously, so the encoding is unambiguous.
        name = (filename or "").encode("utf-8", "surrogatepass")
        message = b"\n".join(
            [
                _VERSION,
                method.upper().encode(),
                str(int(exp)).encode(),
                str(len(name)).encode() + b":" + name,
                key.encode(),
            ]
        )
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        method: str,
        key: str,
        exp: int | str,
        sig: str,
        now: float | None = None,
        *,
        filename: str | None = None,
    ) -> None:
        """Return if ``sig`` grants ``method`` on ``key`` now, else raise ``InvalidSignature``.

        ``exp``, ``sig`` and ``filename`` may come straight from a query string. A
        ``HEAD`` request should be verified as ``GET``.
        """
        expires = _parse_exp(exp)
        expected = self.sign(method, key, expires, filename)
        given = sig.lower().encode("utf-8", "replace") if isinstance(sig, str) else b""
        if not hmac.compare_digest(expected.encode(), given):
            raise InvalidSignature("The URL signature is invalid.")
        if (time.time() if now is None else now) >= expires:
            raise InvalidSignature("The URL has expired.", details={"expired_at": expires})


def _parse_exp(exp: int | str) -> int:
    try:
        return int(exp)
    except (TypeError, ValueError):
        raise InvalidSignature("The URL signature is invalid.") from None

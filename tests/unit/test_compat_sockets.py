"""Who a Socket.IO connection acts for, and the compat switches in the app args."""

from __future__ import annotations

import pytest

from config import AppArgs
from deployments.api.auth import ApiKeys
from deployments.api.compat.sockets import Refused, same_origin, tenant

pytestmark = pytest.mark.unit

KEY = "k" * 24
KEYS = ApiKeys({KEY: "acme"})


def test_open_service_acts_for_the_public_tenant() -> None:
    assert tenant(ApiKeys({}), {}, None) == "public"


@pytest.mark.parametrize(
    ("environ", "auth"),
    [
        ({}, {"token": KEY}),
        ({"HTTP_AUTHORIZATION": f"Bearer {KEY}"}, None),
        ({"QUERY_STRING": f"EIO=4&transport=websocket&token={KEY}"}, None),
    ],
)
def test_a_key_from_auth_header_or_query(environ: dict[str, str], auth: object) -> None:
    assert tenant(KEYS, environ, auth) == "acme"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (None, "An API key is required: connect with auth: {token}."),
        ({"token": "x" * 24}, "The API key is not valid."),
    ],
)
def test_missing_or_wrong_keys_are_refused(auth: object, message: str) -> None:
    with pytest.raises(Refused) as refused:
        tenant(KEYS, {}, auth)
    assert refused.value.error_args == {"message": message, "data": {"code": "unauthorized"}}


def test_compat_args() -> None:
    args = AppArgs()
    assert args.compat.enabled is True
    assert args.compat.socketio_transports == ["polling", "websocket"]
    assert AppArgs.model_validate({"compat": {"socketio_transports": ["websocket"]}})
    with pytest.raises(ValueError, match="socketio_transports"):
        AppArgs.model_validate({"compat": {"socketio_transports": ["flash"]}})
    with pytest.raises(ValueError, match="socketio_transports"):
        AppArgs.model_validate({"compat": {"socketio_transports": []}})


@pytest.mark.parametrize(
    ("origin", "scheme", "allowed"),
    [
        ("http://127.0.0.1:8000", "http", True),
        ("http://127.0.0.1:8000", "ws", True),
        ("https://127.0.0.1:8000", "wss", True),
        ("https://127.0.0.1:8000", "https", True),
        ("http://127.0.0.1:8000", "https", False),
        ("https://evil.example", "wss", False),
    ],
)
def test_same_origin_follows_the_connection_scheme(origin: str, scheme: str, allowed: bool) -> None:
    environ = {"HTTP_HOST": "127.0.0.1:8000", "asgi.scope": {"scheme": scheme}}
    assert same_origin(origin, environ) is allowed
    assert same_origin(origin, {"asgi.scope": {"scheme": scheme}}) is False

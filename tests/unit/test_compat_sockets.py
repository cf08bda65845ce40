"""Who a Socket.IO connection acts for, and the compat switches in the app args."""

from __future__ import annotations

import pytest

from config import AppArgs
from deployments.api.auth import ApiKeys
from deployments.api.compat.sockets import Refused, tenant

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

"""The SeaweedFS S3 server (``harness.s3server``) as a pytest fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness.s3server import DEFAULT_PORT, PORT_ENV, S3Server

__all__ = ["DEFAULT_PORT", "PORT_ENV", "S3Server", "s3_server_fixture"]


def s3_server_fixture(scope: str = "session") -> Callable[..., Iterator[S3Server]]:
    """A pytest fixture that runs one ``S3Server`` for ``scope``.

    In a conftest: ``s3_server = s3_server_fixture()``.
    """

    @pytest.fixture(scope=scope, name="s3_server")  # type: ignore[call-overload]
    def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
        with S3Server(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server

    return s3_server  # type: ignore[no-any-return]

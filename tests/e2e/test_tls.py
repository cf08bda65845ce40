"""HTTPS and WSS from Ray Serve itself: ``http_options.ssl_keyfile`` / ``ssl_certfile``.

The offline config served by ``serve run`` with a self-signed certificate made here;
clients trust exactly that certificate (verification stays on).
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import socketio
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from evaluation.wer import word_error_rate
from tests.e2e.conftest import ROOT, serve_run
from tests.serve.test_compat_socketio import pcm16_chunks
from tests.speech import TRANSCRIPTS, WER_BOUND

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TLS_PORT = int(os.environ.get("STEMSCRIBE_TEST_TLS_PORT", "28150"))


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(https base URL, certificate) of the offline config served over TLS."""
    work = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(work)
    config = yaml.safe_load((ROOT / "serve_config.offline.yaml").read_text())
    config["http_options"] |= {
        "port": TLS_PORT,
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }
    trusted = ssl.create_default_context(cafile=str(cert))
    with serve_run(config, work, TLS_PORT, scheme="https", verify=trusted) as base:
        yield base, cert


async def transcribe_over_wss(base: str, cert: Path) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(cert))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    client = socketio.AsyncClient(http_session=session)
    got: dict[str, Any] = {"errors": []}
    finished = asyncio.Event()

    @client.on("error", namespace="/transcribe")
    async def on_error(data: dict[str, Any]) -> None:
        got["errors"].append(data)

    @client.on("finished", namespace="/transcribe")
    async def on_finished(data: dict[str, Any]) -> None:
        got["finished"] = data
        finished.set()

    try:
        await client.connect(
            base, namespaces=["/transcribe"], transports=["websocket"], wait_timeout=60
        )
        got["url"] = client.eio.base_url
        mime = "audio/pcm;rate=16000"
        for chunk in pcm16_chunks("weather"):
            payload = {"payload": {"data": chunk, "mimeType": mime}}
            await client.emit("audio", payload, namespace="/transcribe")
            await asyncio.sleep(0.1)
        await client.emit("finish", {}, namespace="/transcribe")
        await asyncio.wait_for(finished.wait(), timeout=240)
    finally:
        await client.disconnect()
        await session.close()
        # aiohttp closes TLS transports after the session: give them their shutdown
        # so none is left for the garbage collector (an unclosed-transport warning).
        await asyncio.sleep(0.25)
    return got


def test_https_with_a_self_signed_certificate(tls_app: tuple[str, Path]) -> None:
    base, cert = tls_app
    trusted = ssl.create_default_context(cafile=str(cert))
    health = httpx.get(f"{base}/health", verify=trusted, timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused
        httpx.get(f"{base}/health", timeout=30)
    plain = base.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):  # and nothing answers in clear text
        httpx.get(f"{plain}/health", timeout=10)


def test_wss_transcribe_namespace(tls_app: tuple[str, Path]) -> None:
    base, cert = tls_app
    got = asyncio.run(transcribe_over_wss(base, cert))
    gc.collect()  # a leaked transport warns here, in this test, not in a later one
    assert got["url"].startswith("wss://127.0.0.1")
    assert got["errors"] == []
    assert word_error_rate(TRANSCRIPTS["weather"], got["finished"]["transcription"]) <= WER_BOUND

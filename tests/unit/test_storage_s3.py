"""``S3Storage`` against a real SeaweedFS server: the shared contract plus presigning.

SeaweedFS verifies SigV4 signatures and presigned-URL expiry like AWS, so the
URL tests below check what a client will really experience.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.errors import NotFound, StorageUnavailable
from pipelines.jobs import JobRecord, JobStore, new_job_id
from pipelines.jobs.context import JobContext
from pipelines.storage import S3Storage, open_storage
from pipelines.storage import s3 as s3_module
from tests.s3server import S3Server
from tests.unit.test_storage import StorageContract

pytestmark = pytest.mark.s3


def make_storage(server: S3Server, **overrides: Any) -> S3Storage:
    bucket = overrides.pop("bucket", server.bucket)
    options: dict[str, Any] = {
        "endpoint_url": server.endpoint,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "default_ttl": 3600,
        **overrides,
    }
    return S3Storage(bucket, **options)


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> S3Storage:
    storage = open_storage(s3_server.settings())
    assert isinstance(storage, S3Storage)
    return storage


@pytest.fixture
def prefix(s3: S3Storage) -> Iterator[str]:
    prefix = f"t-{uuid.uuid4().hex[:12]}/"
    yield prefix
    s3.delete_prefix(prefix)


class TestS3Contract(StorageContract):
    @pytest.fixture
    def storage(self, s3: S3Storage) -> S3Storage:
        return s3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_presigned_get_with_plain_http(s3: S3Storage, prefix: str) -> None:
    s3.put(f"{prefix}vocals.wav", b"RIFF-data")
    url = s3.presign_get(f"{prefix}vocals.wav", filename="My vocals.wav").url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"RIFF-data"
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="My vocals.wav"'
    )
    ranged = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert (ranged.status_code, ranged.content) == (206, b"FF-d")


def test_presigned_put_then_get(s3: S3Storage, prefix: str) -> None:
    upload = s3.presign_put(f"{prefix}uploads/song.mp3", content_type="audio/mpeg")
    response = httpx.put(upload.url, content=b"ID3...", headers={"Content-Type": "audio/mpeg"})
    assert response.status_code == 200, response.text
    assert s3.get(f"{prefix}uploads/song.mp3") == b"ID3..."
    assert s3.stat(f"{prefix}uploads/song.mp3").content_type == "audio/mpeg"


def test_presigned_put_refuses_another_content_type(s3: S3Storage, prefix: str) -> None:
    upload = s3.presign_put(f"{prefix}song.mp3", content_type="audio/mpeg")
    response = httpx.put(upload.url, content=b"x", headers={"Content-Type": "text/html"})
    assert response.status_code == 403
    assert not s3.exists(f"{prefix}song.mp3")


def test_presigned_url_expires(s3: S3Storage, prefix: str) -> None:
    s3.put(f"{prefix}a.txt", b"hi")
    url = s3.presign_get(f"{prefix}a.txt", ttl=1).url
    assert httpx.get(url).status_code == 200
    time.sleep(2.2)
    expired = httpx.get(url)
    assert expired.status_code == 403
    assert b"AccessDenied" in expired.content or b"Expired" in expired.content


@pytest.mark.parametrize(
    "edit",
    [
        lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),  # the signature's last digit
        lambda url: url.replace("/a.txt?", "/b.txt?"),  # another object
        lambda url: url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),  # a longer life
    ],
)
def test_tampered_presigned_url_is_refused(s3: S3Storage, prefix: str, edit: Any) -> None:
    s3.put(f"{prefix}a.txt", b"hi")
    s3.put(f"{prefix}b.txt", b"other")
    url = s3.presign_get(f"{prefix}a.txt", ttl=60).url
    assert httpx.get(url).status_code == 200
    assert httpx.get(edit(url)).status_code == 403


def test_presigned_get_cannot_be_used_to_put(s3: S3Storage, prefix: str) -> None:
    s3.put(f"{prefix}a.txt", b"hi")
    url = s3.presign_get(f"{prefix}a.txt").url
    assert httpx.put(url, content=b"overwritten").status_code == 403
    assert s3.get(f"{prefix}a.txt") == b"hi"


def test_public_endpoint_is_used_only_for_urls(s3_server: S3Server, prefix: str) -> None:
    public = f"http://localhost:{s3_server.ports.s3}"
    storage = make_storage(s3_server, public_endpoint_url=public)
    storage.put(f"{prefix}a.txt", b"via public")
    url = storage.presign_get(f"{prefix}a.txt").url
    assert url.startswith(f"{public}/{s3_server.bucket}/{prefix}a.txt?")
    assert httpx.get(url).content == b"via public"
    upload = storage.presign_put(f"{prefix}b.txt").url
    assert upload.startswith(public)
    assert httpx.put(upload, content=b"up").status_code == 200
    assert storage.get(f"{prefix}b.txt") == b"up"


def test_multipart_upload_of_a_file_object(s3: S3Storage, prefix: str) -> None:
    data = os.urandom(9 << 20)  # above boto3's 8 MiB multipart threshold
    assert s3.put(f"{prefix}big.wav", io.BytesIO(data)) == len(data)
    assert s3.stat(f"{prefix}big.wav").size == len(data)
    assert b"".join(s3.stream(f"{prefix}big.wav", chunk_size=1 << 20)) == data


def test_job_output_larger_than_a_part_is_uploaded_in_parts(s3: S3Storage, tmp_path: Path) -> None:
    """Stems and the ZIP go up from disk with boto3's managed (multipart) transfer."""
    record = JobRecord(new_job_id(), "separation", "me", {}, {})
    ctx = JobContext(JobStore(s3), record)
    path = tmp_path / "stems.zip"
    data = os.urandom(17 << 20)  # above the 8 MiB part size: three parts
    path.write_bytes(data)
    output = asyncio.run(ctx.write_output_file("archive", "stems.zip", path, "application/zip"))
    assert output.bytes == len(data)
    head = s3._client.head_object(Bucket=s3.bucket, Key=output.key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    assert b"".join(s3.stream(output.key)) == data


def test_delete_prefix_in_batches(
    s3: S3Storage, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 2)
    for index in range(5):
        s3.put(f"{prefix}job/{index}", b"x")
    assert s3.delete_prefix(f"{prefix}job/") == 5
    assert list(s3.list(prefix)) == []


def test_create_bucket_when_missing(s3_server: S3Server) -> None:
    bucket = f"created-{uuid.uuid4().hex[:8]}"
    storage = make_storage(s3_server, bucket=bucket, create_bucket=True)
    storage.ping()
    make_storage(s3_server, bucket=bucket, create_bucket=True).ping()  # already there: fine
    s3_server.client().delete_bucket(Bucket=bucket)


def test_missing_bucket_is_unavailable(s3_server: S3Server) -> None:
    storage = make_storage(s3_server, bucket="no-such-bucket-here")
    with pytest.raises(StorageUnavailable, match="does not exist"):
        storage.ping()
    with pytest.raises(StorageUnavailable):
        storage.get("a")


def test_wrong_credentials_are_unavailable(s3_server: S3Server) -> None:
    storage = make_storage(s3_server, secret_access_key="wrong", max_attempts=1)
    with pytest.raises(StorageUnavailable):
        storage.ping()
    with pytest.raises(StorageUnavailable):
        storage.put("a", b"x")


def test_closed_endpoint_is_unavailable_fast() -> None:
    options: dict[str, Any] = {
        "endpoint_url": f"http://127.0.0.1:{closed_port()}",
        "access_key_id": "k",
        "secret_access_key": "s",
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "max_attempts": 1,
    }
    storage = S3Storage("b", **options)
    started = time.monotonic()
    for call in (
        storage.ping,
        lambda: storage.put("a", b"x"),
        lambda: storage.put("a", io.BytesIO(b"x")),
        lambda: storage.get("a"),
        lambda: storage.stream("a"),
        lambda: list(storage.list("")),
        lambda: storage.delete("a"),
        lambda: storage.delete_prefix("a/"),
        lambda: storage.exists("a"),
        lambda: S3Storage("b", create_bucket=True, **options),
    ):
        with pytest.raises(StorageUnavailable, match="unreachable"):
            call()
    assert storage.presign_get("a").url  # presigning needs no network
    assert time.monotonic() - started < 10


def test_server_outage_then_recovery(s3_server: S3Server, s3: S3Storage, prefix: str) -> None:
    s3.put(f"{prefix}kept.json", b"{}")
    down = make_storage(s3_server, connect_timeout=0.5, max_attempts=1)
    s3_server.stop()
    try:
        with pytest.raises(StorageUnavailable):
            down.get(f"{prefix}kept.json")
    finally:
        s3_server.start()
    assert down.get(f"{prefix}kept.json") == b"{}"
    with pytest.raises(NotFound):
        down.get(f"{prefix}gone.json")

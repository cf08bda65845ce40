"""Storage: the backend contract (run here on ``LocalStorage``), URL signing, the factory.

``StorageContract`` is reused by ``test_storage_s3.py`` against a real S3 server:
a subclass provides the ``storage`` and ``prefix`` fixtures.
"""

from __future__ import annotations

import hmac
import io
import os
import stat
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from config.settings import Settings
from pipelines.errors import (
    InvalidRequest,
    InvalidSignature,
    NotFound,
    StorageUnavailable,
)
from pipelines.storage import (
    LocalStorage,
    ObjectInfo,
    PresignedUrl,
    S3Storage,
    Storage,
    UrlSigner,
    content_disposition,
    open_storage,
)

pytestmark = pytest.mark.unit

SECRET = b"0123456789abcdef0123456789abcdef"
BAD_KEYS = [
    "", "../x", "/abs", "a/../../b", "a/./b", "a\\b", "a\x00b", "a\nb", "a//b", "a/",
    ".hidden", "a/.sidecar", "x" * 201, "/".join(["abc"] * 300),
]  # fmt: skip


class StorageContract:
    """What every backend must do; subclasses supply ``storage`` and ``prefix``."""

    def test_put_get_stat(self, storage: Storage, prefix: str) -> None:
        key = f"{prefix}jobs/j1/outputs/vocals.flac"
        assert storage.put(key, b"abc", content_type="audio/x-test") == 3
        assert storage.get(key) == b"abc"
        info = storage.stat(key)
        assert (info.key, info.size, info.content_type) == (key, 3, "audio/x-test")
        assert info.modified.tzinfo is not None
        assert abs((datetime.now(UTC) - info.modified).total_seconds()) < 60

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("a.wav", "audio/wav"),
            ("a.json", "application/json"),
            ("a.qqq", "application/octet-stream"),
        ],
    )
    def test_content_type_guessed_from_key(
        self, storage: Storage, prefix: str, name: str, expected: str
    ) -> None:
        storage.put(f"{prefix}{name}", b"x")
        assert storage.stat(f"{prefix}{name}").content_type == expected

    def test_put_streams_file_objects(self, storage: Storage, prefix: str) -> None:
        data = os.urandom((5 << 20) // 2)
        assert storage.put(f"{prefix}big.bin", io.BytesIO(data)) == len(data)
        assert storage.get(f"{prefix}big.bin") == data

    def test_overwrite_replaces_bytes_and_type(self, storage: Storage, prefix: str) -> None:
        storage.put(f"{prefix}k", b"first", content_type="text/plain")
        storage.put(f"{prefix}k", b"2nd", content_type="application/json")
        assert storage.get(f"{prefix}k") == b"2nd"
        assert storage.stat(f"{prefix}k").content_type == "application/json"

    def test_empty_object(self, storage: Storage, prefix: str) -> None:
        assert storage.put(f"{prefix}empty", b"") == 0
        assert storage.get(f"{prefix}empty") == b""
        assert list(storage.stream(f"{prefix}empty")) == []
        assert list(storage.stream(f"{prefix}empty", 0, 10)) == []

    def test_unicode_key(self, storage: Storage, prefix: str) -> None:
        key = f"{prefix}uploads/ü 1/naïve song #2.wav"
        storage.put(key, b"la")
        assert storage.get(key) == b"la"
        assert [info.key for info in storage.list(f"{prefix}uploads/")] == [key]

    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            (0, None, b"0123456789"),
            (0, 0, b"0"),
            (2, 5, b"2345"),
            (7, None, b"789"),
            (8, 99, b"89"),
            (9, 9, b"9"),
            (10, None, b""),
            (15, 20, b""),
        ],
    )
    def test_stream_ranges_end_inclusive(
        self,
        storage: Storage,
        prefix: str,
        start: int,
        end: int | None,
        expected: bytes,
    ) -> None:
        storage.put(f"{prefix}digits", b"0123456789")
        chunks = list(storage.stream(f"{prefix}digits", start, end, chunk_size=3))
        assert b"".join(chunks) == expected
        assert all(0 < len(chunk) <= 3 for chunk in chunks)

    @pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
    def test_stream_rejects_bad_ranges(
        self, storage: Storage, prefix: str, start: int, end: int | None
    ) -> None:
        storage.put(f"{prefix}digits", b"0123456789")
        with pytest.raises(InvalidRequest):
            storage.stream(f"{prefix}digits", start, end)

    def test_missing_key_is_not_found(self, storage: Storage, prefix: str, tmp_path: Path) -> None:
        key = f"{prefix}nope/missing.wav"
        for call in (
            lambda: storage.get(key),
            lambda: storage.stat(key),
            lambda: storage.stream(key),  # raised by the call, before any iteration
            lambda: storage.stream(key, 3, 5),
            lambda: storage.download_to(key, tmp_path / "out"),
        ):
            with pytest.raises(NotFound):
                call()
        assert storage.exists(key) is False

    def test_delete_is_idempotent(self, storage: Storage, prefix: str) -> None:
        storage.put(f"{prefix}a/b", b"x")
        assert storage.exists(f"{prefix}a/b")
        storage.delete(f"{prefix}a/b")
        storage.delete(f"{prefix}a/b")
        assert not storage.exists(f"{prefix}a/b")
        assert list(storage.list(prefix)) == []

    def test_list_is_a_string_prefix_match(self, storage: Storage, prefix: str) -> None:
        for key in ["b/2", "a-c", "a/b", "a/bc/d", "c"]:
            storage.put(f"{prefix}{key}", key.encode())
        listed = sorted(storage.list(prefix), key=lambda info: info.key)
        assert [info.key for info in listed] == [
            f"{prefix}{k}" for k in ["a-c", "a/b", "a/bc/d", "b/2", "c"]
        ]
        assert [info.size for info in listed] == [3, 3, 6, 3, 1]
        assert all(isinstance(info, ObjectInfo) and info.content_type is None for info in listed)
        assert sorted(i.key for i in storage.list(f"{prefix}a/b")) == [
            f"{prefix}a/b",
            f"{prefix}a/bc/d",
        ]
        assert list(storage.list(f"{prefix}zzz/")) == []

    def test_delete_prefix(self, storage: Storage, prefix: str) -> None:
        for key in ["job1/a", "job1/b/c", "job10/a", "job2/a"]:
            storage.put(f"{prefix}{key}", b"x")
        assert storage.delete_prefix(f"{prefix}job1/") == 2
        assert sorted(i.key for i in storage.list(prefix)) == [
            f"{prefix}job10/a",
            f"{prefix}job2/a",
        ]
        assert storage.delete_prefix(f"{prefix}job1/") == 0
        with pytest.raises(InvalidRequest):
            storage.delete_prefix("")

    def test_download_to(self, storage: Storage, prefix: str, tmp_path: Path) -> None:
        storage.put(f"{prefix}x.wav", b"RIFF....")
        storage.download_to(f"{prefix}x.wav", tmp_path / "x.wav")
        assert (tmp_path / "x.wav").read_bytes() == b"RIFF...."

    def test_presigned_urls_expire_after_ttl(self, storage: Storage, prefix: str) -> None:
        before = int(time.time())
        url = storage.presign_get(f"{prefix}x.wav", ttl=120, filename="x.wav")
        upload = storage.presign_put(f"{prefix}up.wav", content_type="audio/wav")
        assert isinstance(url, PresignedUrl)
        assert before + 119 <= url.expires_at.timestamp() <= time.time() + 121
        assert upload.expires_at > url.expires_at  # default TTL is an hour here
        assert url.to_dict()["expires_at"].endswith("Z")

    @pytest.mark.parametrize("ttl", [0, -5, 7 * 24 * 3600 + 1])
    def test_presign_rejects_bad_ttl(self, storage: Storage, prefix: str, ttl: int) -> None:
        with pytest.raises(InvalidRequest):
            storage.presign_get(f"{prefix}x", ttl=ttl)

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_rejected(self, storage: Storage, key: str) -> None:
        for call in (
            lambda: storage.put(key, b"x"),
            lambda: storage.get(key),
            lambda: storage.stat(key),
            lambda: storage.exists(key),
            lambda: storage.delete(key),
            lambda: storage.presign_get(key),
            lambda: storage.presign_put(key),
        ):
            with pytest.raises(InvalidRequest):
                call()

    def test_ping(self, storage: Storage) -> None:
        storage.ping()
        assert isinstance(storage, Storage)


class TestLocalContract(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        return LocalStorage(tmp_path / "data", UrlSigner(SECRET), default_ttl=3600)

    @pytest.fixture
    def prefix(self) -> str:
        return f"t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(
        tmp_path / "data", UrlSigner(SECRET), 600, "https://api.example.com/v1/files/"
    )


def test_local_layout_hides_sidecars_and_temp_files(local: LocalStorage) -> None:
    local.put("jobs/j1/job.json", b"{}")
    assert (local.root / "jobs" / "j1" / "job.json").read_bytes() == b"{}"
    assert sorted(p.name for p in (local.root / "jobs" / "j1").iterdir()) == [
        ".job.json.meta.json",
        "job.json",
    ]
    (local.root / "jobs" / "j1" / ".stray.tmp").write_bytes(b"x")
    assert [info.key for info in local.list("")] == ["jobs/j1/job.json"]


def test_local_traversal_never_leaves_root(local: LocalStorage, tmp_path: Path) -> None:
    for key in ["../x", "a/../../b", "/abs", "..\\x"]:
        with pytest.raises(InvalidRequest):
            local.put(key, b"evil")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert list(local.root.rglob("*")) == []


def test_local_overwrite_is_atomic_for_readers(local: LocalStorage) -> None:
    old, new = b"A" * (3 << 20), b"B" * (3 << 20)
    local.put("jobs/j/job.json", old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(local.get("jobs/j/job.json")[:: 1 << 16])

    reader = threading.Thread(target=read)
    reader.start()
    for round_ in range(12):
        local.put("jobs/j/job.json", new if round_ % 2 == 0 else old)
    stop.set()
    reader.join()
    assert seen <= {old[:: 1 << 16], new[:: 1 << 16]}
    assert [p.name for p in local.root.rglob("*.tmp")] == []


def test_local_failed_write_keeps_old_object(local: LocalStorage) -> None:
    class Broken(io.RawIOBase):
        def readinto(self, buffer: object) -> int:
            raise OSError("client went away")

    local.put("k", b"old")
    with pytest.raises(StorageUnavailable):
        local.put("k", cast(BinaryIO, Broken()))
    assert local.get("k") == b"old"
    assert [p.name for p in local.root.iterdir()] == [".k.meta.json", "k"]


def test_local_key_clashing_with_a_folder(local: LocalStorage) -> None:
    local.put("a/b", b"x")
    with pytest.raises(InvalidRequest):
        local.put("a", b"y")
    with pytest.raises(InvalidRequest):
        local.put("a/b/c", b"y")
    with pytest.raises(NotFound):
        local.get("a")


def test_local_delete_prunes_empty_folders(local: LocalStorage) -> None:
    local.put("jobs/j1/outputs/a.wav", b"x")
    local.put("jobs/j2/job.json", b"x")
    local.delete_prefix("jobs/j1/")
    assert sorted(p.name for p in (local.root / "jobs").iterdir()) == ["j2"]
    local.put("jobs/j1/outputs/a.wav", b"again")
    assert local.get("jobs/j1/outputs/a.wav") == b"again"


def test_local_presigned_urls_verify_with_the_signer(local: LocalStorage) -> None:
    url = local.presign_get("uploads/u1/my song.wav", ttl=60, filename="my song.wav")
    parts = urlsplit(url.url)
    assert (parts.scheme, parts.netloc) == ("https", "api.example.com")
    assert parts.path == "/v1/files/uploads/u1/my%20song.wav"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["filename"] == "my song.wav"
    assert int(query["exp"]) == int(url.expires_at.timestamp())
    signed = (query["exp"], query["sig"])
    local.url_signer.verify("GET", "uploads/u1/my song.wav", *signed, filename="my song.wav")
    with pytest.raises(InvalidSignature):
        local.url_signer.verify("PUT", "uploads/u1/my song.wav", *signed, filename="my song.wav")
    with pytest.raises(InvalidSignature):  # the download name is signed too
        local.url_signer.verify("GET", "uploads/u1/my song.wav", *signed, filename="evil.exe")
    with pytest.raises(InvalidSignature):
        local.url_signer.verify("GET", "uploads/u1/my song.wav", *signed)

    put = parse_qs(urlsplit(local.presign_put("uploads/u1/x.wav").url).query)
    local.url_signer.verify("PUT", "uploads/u1/x.wav", put["exp"][0], put["sig"][0])


def test_local_relative_urls_without_base(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, UrlSigner(SECRET), 60, "/v1/files/")
    assert storage.presign_get("a/b.wav").url.startswith("/v1/files/a/b.wav?exp=")


def test_local_ping_fails_without_its_folder(local: LocalStorage) -> None:
    local.root.rmdir()
    with pytest.raises(StorageUnavailable):
        local.ping()


class TestUrlSigner:
    signer = UrlSigner(SECRET)
    exp = 2_000_000_000

    def test_valid(self) -> None:
        sig = self.signer.sign("GET", "jobs/j1/a.wav", self.exp)
        self.signer.verify("GET", "jobs/j1/a.wav", self.exp, sig, now=self.exp - 1)
        self.signer.verify("get", "jobs/j1/a.wav", str(self.exp), sig.upper(), now=0)

    def test_expired(self) -> None:
        sig = self.signer.sign("GET", "k", self.exp)
        with pytest.raises(InvalidSignature, match="expired"):
            self.signer.verify("GET", "k", self.exp, sig, now=self.exp)
        past = int(time.time()) - 1
        with pytest.raises(InvalidSignature, match="expired"):
            self.signer.verify("GET", "k", past, self.signer.sign("GET", "k", past))

    @pytest.mark.parametrize(
        ("method", "key", "exp", "sig_edit"),
        [
            ("GET", "k", exp, lambda s: s[:-1] + ("0" if s[-1] != "0" else "1")),
            ("GET", "k2", exp, lambda s: s),
            ("PUT", "k", exp, lambda s: s),
            ("GET", "k", exp + 1, lambda s: s),
            ("GET", "k", "nope", lambda s: s),
            ("GET", "k", exp, lambda s: "ü" * 64),
            ("GET", "k", exp, lambda s: ""),
        ],
    )
    def test_tampered(self, method: str, key: str, exp: int | str, sig_edit: object) -> None:
        sig = sig_edit(self.signer.sign("GET", "k", self.exp))  # type: ignore[operator]
        with pytest.raises(InvalidSignature, match="invalid"):
            self.signer.verify(method, key, exp, sig, now=0)

    def test_other_secret_does_not_verify(self) -> None:
        sig = UrlSigner(b"another-secret-of-32-bytes-long!").sign("GET", "k", self.exp)
        with pytest.raises(InvalidSignature):
            self.signer.verify("GET", "k", self.exp, sig, now=0)

    def test_compares_in_constant_time(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[object, object]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)
        self.signer.verify("GET", "k", self.exp, self.signer.sign("GET", "k", self.exp), now=0)
        assert len(calls) == 1

    def test_short_secret_refused(self) -> None:
        with pytest.raises(ValueError, match="16 bytes"):
            UrlSigner(b"short")


def test_open_storage_local_creates_the_secret_once(tmp_path: Path) -> None:
    settings = Settings(storage_backend="local", data_dir=tmp_path / "data")
    first = open_storage(settings)
    secret_file = tmp_path / "data" / ".signing-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    content = secret_file.read_bytes()
    second = open_storage(settings)
    assert secret_file.read_bytes() == content
    assert isinstance(first, LocalStorage) and isinstance(second, LocalStorage)
    url = urlsplit(first.presign_get("a.wav").url)
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    second.url_signer.verify("GET", "a.wav", query["exp"], query["sig"])
    assert [p.name for p in (tmp_path / "data").iterdir()] == [".signing-secret"]


def test_open_storage_local_with_configured_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        signing_secret=SecretStr("s" * 32),
        public_base_url="http://h",
    )
    storage = open_storage(settings, files_url="http://h/v1/files/")
    assert not (tmp_path / ".signing-secret").exists()
    assert isinstance(storage, LocalStorage)
    storage.url_signer.verify("GET", "k", 5, UrlSigner(b"s" * 32).sign("GET", "k", 5), now=0)
    assert storage.presign_get("k").url.startswith("http://h/v1/files/k?")


def test_open_storage_s3_presigns_on_the_public_endpoint() -> None:
    settings = Settings(
        storage_backend="s3",
        bucket="b",
        s3_endpoint_url="http://minio.internal:9000",
        s3_public_endpoint_url="https://files.example.com",
        s3_access_key_id=SecretStr("k"),
        s3_secret_access_key=SecretStr("s"),
        s3_create_bucket=False,
    )
    storage = open_storage(settings)
    assert isinstance(storage, S3Storage)
    url = storage.presign_get("jobs/j/a.wav", ttl=60).url
    assert url.startswith("https://files.example.com/b/jobs/j/a.wav?")
    assert "X-Amz-Expires=60" in url


def test_presigned_url_to_dict() -> None:
    url = PresignedUrl("u", datetime(2025, 1, 31, 12, 0, 0, 999, tzinfo=UTC))
    assert url.to_dict() == {"url": "u", "expires_at": "2025-01-31T12:00:00Z"}


def test_content_disposition_survives_any_filename() -> None:
    header = content_disposition('vocals "ü".wav')
    assert header == (
        "attachment; filename=\"vocals ___.wav\"; filename*=UTF-8''vocals%20%22%C3%BC%22.wav"
    )

"""The ``s3`` backend: AWS S3 or any compatible store (MinIO, SeaweedFS, R2...).

Two clients share one set of credentials: ``_client`` talks to ``endpoint_url``
(the address the cluster reaches storage at) for every data operation, and
``_presigner`` is configured with ``public_endpoint_url`` and is used only to sign
URLs for clients, which often reach storage at another address. botocore errors
are translated into domain errors in exactly one place, ``_translated``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from os import PathLike, fspath
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.errors import InvalidRequest, NotFound, StorageUnavailable
from pipelines.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    PresignedUrl,
    check_range,
    content_disposition,
    guess_content_type,
    resolve_ttl,
    utc_from_timestamp,
    validate_key,
    validate_prefix,
)
from pipelines.storage.conditional import Versioned

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_BUCKET_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
# A conditional write that lost: the version changed (412), a concurrent conditional
# write won (409), or If-Match named an object that is gone (404).
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call accepts


class S3Storage:
    """Objects in one S3 bucket, handed out through SigV4 presigned URLs."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        path_style: bool = True,
        default_ttl: int = 3600,
        create_bucket: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        self.bucket = bucket
        self.default_ttl = default_ttl
        self._region = region
        config = _config(region, path_style, connect_timeout, read_timeout, max_attempts)
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._presigner: S3Client = session.client(
            "s3", endpoint_url=public_endpoint_url or endpoint_url, config=config
        )
        self._transfer = TransferConfig(max_concurrency=4)
        if create_bucket:
            self._ensure_bucket()

    @property
    def url_signer(self) -> None:
        """None: S3 presigns its own URLs, and the API serves none of them."""
        return None

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> int:
        """``PutObject`` for bytes; multipart ``upload_fileobj`` for file-like data."""
        validate_key(key)
        ctype = content_type or guess_content_type(key)
        with self._translated(key):
            if isinstance(data, (bytes, bytearray, memoryview)):
                body = bytes(data)
                self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=ctype)
                return len(body)
            self._client.upload_fileobj(
                data,
                self.bucket,
                key,
                ExtraArgs={"ContentType": ctype},
                Config=self._transfer,
            )
        return self.stat(key).size

    def get(self, key: str) -> bytes:
        """The whole object."""
        validate_key(key)
        with self._translated(key):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_versioned(self, key: str) -> Versioned:
        """The whole object and its ETag (see ``pipelines.storage.conditional``)."""
        validate_key(key)
        with self._translated(key):
            reply = self._client.get_object(Bucket=self.bucket, Key=key)
            return Versioned(reply["Body"].read(), reply["ETag"])

    def put_if(
        self, key: str, data: bytes, version: str | None, content_type: str | None = None
    ) -> str | None:
        """``PutObject`` with ``If-None-Match: *`` or ``If-Match``; ``None`` if it lost."""
        validate_key(key)
        condition: Any = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        ctype = content_type or guess_content_type(key)
        with self._translated(key):
            try:
                reply = self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType=ctype, **condition
                )
            except ClientError as exc:
                if _error_code(exc) in _CONDITION_FAILED:
                    return None
                raise
        return reply["ETag"]

    def stream(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) through one ranged ``GetObject``."""
        validate_key(key)
        check_range(start, end)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        with self._translated(key):
            try:
                body = self._client.get_object(**params)["Body"]
            except ClientError as exc:
                if _error_code(exc) != "InvalidRange":
                    raise
                return iter(())  # the range starts past the end: nothing to send
        return self._chunks(body, key, chunk_size)

    def _chunks(self, body: StreamingBody, key: str, chunk_size: int) -> Iterator[bytes]:
        with self._translated(key), contextlib.closing(body):
            yield from body.iter_chunks(chunk_size)

    def stat(self, key: str) -> ObjectInfo:
        """``HeadObject``."""
        validate_key(key)
        with self._translated(key):
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        modified = _utc(head["LastModified"])
        return ObjectInfo(key, head["ContentLength"], head.get("ContentType"), modified)

    def exists(self, key: str) -> bool:
        """Whether ``HeadObject`` finds the object."""
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """``DeleteObject`` (S3 answers success for a missing key too)."""
        validate_key(key)
        with self._translated(key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        """List, then ``DeleteObjects`` in batches of 1000."""
        if not validate_prefix(prefix):
            raise InvalidRequest("Refusing to delete with an empty prefix.")
        keys = [info.key for info in self.list(prefix)]
        for first in range(0, len(keys), _DELETE_BATCH):
            self._delete_batch(keys[first : first + _DELETE_BATCH])
        return len(keys)

    def _delete_batch(self, keys: Sequence[str]) -> None:
        objects: Any = [{"Key": key} for key in keys]
        with self._translated():
            reply = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        if reply.get("Errors"):
            failed = reply["Errors"][0]
            raise StorageUnavailable(
                f"Object storage refused to delete {len(reply['Errors'])} object(s).",
                details={"key": failed.get("Key"), "s3_code": failed.get("Code")},
            )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """``ListObjectsV2`` pages, in the store's order (see ``Storage.list``)."""
        validate_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        with self._translated():
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], item["Size"], None, _utc(item["LastModified"]))

    def presign_get(
        self, key: str, ttl: int | None = None, filename: str | None = None
    ) -> PresignedUrl:
        """A SigV4 ``GetObject`` URL on the public endpoint."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": validate_key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return self._presign("get_object", params, ttl)

    def presign_put(
        self, key: str, ttl: int | None = None, content_type: str | None = None
    ) -> PresignedUrl:
        """A SigV4 ``PutObject`` URL on the public endpoint."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": validate_key(key)}
        if content_type:
            params["ContentType"] = content_type
        return self._presign("put_object", params, ttl)

    def _presign(self, operation: str, params: dict[str, Any], ttl: int | None) -> PresignedUrl:
        seconds = resolve_ttl(ttl, self.default_ttl)
        issued = int(time.time())  # botocore signs with its own clock, a moment later
        with self._translated():
            url = self._presigner.generate_presigned_url(
                operation, Params=params, ExpiresIn=seconds
            )
        return PresignedUrl(url, utc_from_timestamp(issued + seconds))

    def ping(self) -> None:
        """``HeadBucket``: reachable, credentials accepted, bucket present."""
        with self._translated():
            self._client.head_bucket(Bucket=self.bucket)

    def download_to(self, key: str, path: str | PathLike[str]) -> None:
        """Parallel ranged download into ``path``."""
        validate_key(key)
        with self._translated(key):
            self._client.download_file(self.bucket, key, fspath(path), Config=self._transfer)

    def _ensure_bucket(self) -> None:
        try:
            return self.ping()
        except StorageUnavailable as exc:
            if exc.details.get("s3_code") != "NoSuchBucket":
                raise
        options: Any = {}
        if self._region != "us-east-1":  # the one region S3 refuses to be told
            options["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            with self._translated():
                self._client.create_bucket(Bucket=self.bucket, **options)
        except StorageUnavailable as exc:  # another process created it first
            if exc.details.get("s3_code") not in _BUCKET_EXISTS:
                raise

    @contextlib.contextmanager
    def _translated(self, key: str | None = None) -> Iterator[None]:
        """Turn botocore/boto3 failures into ``NotFound`` or ``StorageUnavailable``."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, key) from exc
        except (BotoCoreError, S3UploadFailedError) as exc:
            raise StorageUnavailable(
                f"Object storage is unreachable ({type(exc).__name__})."
            ) from exc

    def _client_error(self, exc: ClientError, key: str | None) -> NotFound | StorageUnavailable:
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (key is None and status == 404):
            return StorageUnavailable(
                f"Bucket {self.bucket!r} does not exist.",
                details={"s3_code": "NoSuchBucket"},
            )
        if key is not None and (code in _MISSING_CODES or status == 404):
            return NotFound(f"No object named {key!r}.", details={"key": key})
        return StorageUnavailable(
            f"Object storage refused the request ({code or status}).",
            details={"s3_code": code},
        )


def _config(region: str, path_style: bool, connect: float, read: float, attempts: int) -> Config:
    return Config(
        signature_version="s3v4",
        region_name=region,
        s3={"addressing_style": "path" if path_style else "auto"},
        connect_timeout=connect,
        read_timeout=read,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=32,
        # Checksums only where S3 demands them: several compatible stores reject
        # the trailing checksums that recent botocore sends by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

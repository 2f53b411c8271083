"""IMM's side of OSS: read sources and write targets through the public OSS API with oss2,
as the project's service role (checked against the local :class:`~localcloud.imm.policy.Policy`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import oss2
from immflow.ossuri import OssUri

from localcloud.core.account import Account
from localcloud.imm.errors import TaskFailure, task_failed_file_missing, task_failed_forbidden
from localcloud.imm.policy import Access, Policy


class OssAccess:
    def __init__(self, endpoint: str, account: Account, policy: Policy, role: str) -> None:
        self._endpoint = endpoint
        self._auth = oss2.Auth(account.access_key_id, account.access_key_secret)
        self._policy = policy
        self._role = role
        self._buckets: dict[str, oss2.Bucket] = {}

    def _bucket(self, uri: OssUri, access: Access) -> oss2.Bucket:
        if not self._policy.allows(self._role, access, uri.bucket):
            raise task_failed_forbidden()
        if uri.bucket not in self._buckets:
            self._buckets[uri.bucket] = oss2.Bucket(
                self._auth, self._endpoint, uri.bucket, connect_timeout=10
            )
        return self._buckets[uri.bucket]

    def _failure(self, uri: OssUri, exc: Exception) -> TaskFailure:
        if isinstance(exc, oss2.exceptions.NotFound):
            return task_failed_file_missing(str(uri))
        if isinstance(exc, oss2.exceptions.AccessDenied):
            return task_failed_forbidden()
        if isinstance(exc, oss2.exceptions.RequestError):
            return TaskFailure("InternalError", f"OSS at {self._endpoint} is unreachable ({exc}).")
        if isinstance(exc, oss2.exceptions.OssError):
            return TaskFailure(
                "InternalError", f"OSS answered {exc.status} {exc.code} for {uri}: {exc.message}"
            )
        raise exc

    def download(self, uri: OssUri, dest: Path) -> datetime:
        """Copy ``uri`` to ``dest``; return the object's upload (Last-Modified) time."""
        bucket = self._bucket(uri, "read")
        try:
            result = bucket.get_object_to_file(uri.key, str(dest))
        except oss2.exceptions.OssError as exc:
            raise self._failure(uri, exc) from None
        return datetime.fromtimestamp(result.last_modified, tz=timezone.utc)

    def read_bytes(self, uri: OssUri) -> bytes:
        bucket = self._bucket(uri, "read")
        try:
            return bytes(bucket.get_object(uri.key).read())
        except oss2.exceptions.OssError as exc:
            raise self._failure(uri, exc) from None

    def upload(self, uri: OssUri, path: Path) -> None:
        bucket = self._bucket(uri, "write")
        try:
            bucket.put_object_from_file(uri.key, str(path))
        except oss2.exceptions.OssError as exc:
            raise self._failure(uri, exc) from None

    def write_bytes(self, uri: OssUri, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket = self._bucket(uri, "write")
        try:
            bucket.put_object(uri.key, data, headers={"Content-Type": content_type})
        except oss2.exceptions.OssError as exc:
            raise self._failure(uri, exc) from None

    def list_keys(self, prefix: OssUri) -> Iterator[str]:
        bucket = self._bucket(prefix, "read")
        try:
            for info in oss2.ObjectIterator(bucket, prefix=prefix.key):
                if not info.key.endswith("/"):
                    yield info.key
        except oss2.exceptions.OssError as exc:
            raise self._failure(prefix, exc) from None

"""OSS over ``oss2``: list a prefix, write a JSON document, and read objects (for the dashboard).

The "client" of oss2 is per bucket (``oss2.Bucket``), so the ready-made form is a callable that gives
the ``Bucket`` for a name. Errors: 5xx answers and network failures are retryable, the rest permanent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

from immflow.adapters import ServiceError
from immflow.fc import Credentials
from immflow.ossuri import OssUri

SERVICE = "OSS"
_CHUNK = 256 * 1024


class ObjectInfo(NamedTuple):
    uri: OssUri
    size: int
    etag: str


class ObjectHead(NamedTuple):
    size: int
    etag: str
    content_type: str


class OssAdapter:
    def __init__(
        self,
        *,
        endpoint: str,
        credentials: Credentials | None = None,
        bucket_client: Callable[[str], Any] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._given = bucket_client
        self._buckets: dict[str, Any] = {}

    def use_credentials(self, credentials: Credentials) -> None:
        if credentials != self._credentials:
            self._credentials = credentials
            self._buckets.clear()

    def bucket(self, name: str) -> Any:
        if name not in self._buckets:
            self._buckets[name] = self._given(name) if self._given else self._build_bucket(name)
        return self._buckets[name]

    def _build_bucket(self, name: str) -> Any:
        import oss2

        creds = self._credentials
        if creds is None:
            raise ServiceError(
                SERVICE, "connect", "MissingCredentials", "no credentials given", retryable=False
            )
        auth = (
            oss2.StsAuth(creds.access_key_id, creds.access_key_secret, creds.security_token)
            if creds.security_token
            else oss2.Auth(creds.access_key_id, creds.access_key_secret)
        )
        return oss2.Bucket(auth, self._endpoint, name)

    def list_objects(self, prefix: OssUri) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix.key`, in key order."""
        import oss2

        bucket = self.bucket(prefix.bucket)
        try:
            return [
                ObjectInfo(OssUri(prefix.bucket, item.key), int(item.size), str(item.etag))
                for item in oss2.ObjectIteratorV2(bucket, prefix=prefix.key, max_keys=1000)
                if not item.key.endswith("/")
            ]
        except Exception as exc:
            raise _service_error("ListObjects", exc) from exc

    def last_modified(self, uri: OssUri) -> datetime:
        """The object's upload time, as IMM reads it for the ``{year}``..``{sec}`` template variables."""
        try:
            meta = self.bucket(uri.bucket).get_object_meta(uri.key)
        except Exception as exc:
            raise _service_error("GetObjectMeta", exc) from exc
        return datetime.fromtimestamp(int(meta.last_modified), tz=timezone.utc)

    def head(self, uri: OssUri) -> ObjectHead | None:
        """The object's size, ETag and content type; None when it does not exist (any more)."""
        from oss2.exceptions import NoSuchKey, NotFound

        try:
            result = self.bucket(uri.bucket).head_object(uri.key)
        except (NoSuchKey, NotFound):
            return None
        except Exception as exc:
            raise _service_error("HeadObject", exc) from exc
        return ObjectHead(
            int(result.content_length or 0),
            str(result.etag or ""),
            str(result.content_type or "application/octet-stream"),
        )

    def read_range(self, uri: OssUri, first: int, last: int) -> Iterator[bytes]:
        """Bytes ``first..last`` (inclusive) of the object, in chunks, never the whole object at once."""
        try:
            stream = self.bucket(uri.bucket).get_object(uri.key, byte_range=(first, last))
        except Exception as exc:
            raise _service_error("GetObject", exc) from exc
        with contextlib.closing(stream):
            while chunk := stream.read(_CHUNK):
                yield chunk

    def put_json(self, uri: OssUri, document: object) -> None:
        data = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8")
        try:
            self.bucket(uri.bucket).put_object(uri.key, data, headers={"Content-Type": "application/json"})
        except Exception as exc:
            raise _service_error("PutObject", exc) from exc


def _service_error(action: str, exc: Exception) -> ServiceError:
    from oss2.exceptions import OssError

    if isinstance(exc, OssError):
        status = int(exc.status)
        # oss2 reports a network failure as a RequestError with a negative pseudo-status.
        retryable = status < 0 or status >= 500
        return ServiceError(
            SERVICE,
            action,
            str(exc.code or type(exc).__name__),
            str(exc.message or exc),
            status=status if status > 0 else None,
            retryable=retryable,
        )
    if isinstance(exc, OSError):
        return ServiceError(SERVICE, action, "NetworkError", str(exc), retryable=True)
    return ServiceError(SERVICE, action, type(exc).__name__, str(exc), retryable=False)

"""The local OSS: the OSS REST API (path-style) for oss2, plus event notifications.

Implemented actions: ListBuckets, PutBucket, DeleteBucket, GetBucketInfo, GetBucketLocation,
ListObjects, ListObjectsV2, PutObject, GetObject, HeadObject, GetObjectMeta, DeleteObject,
DeleteMultipleObjects, CopyObject, AppendObject, InitiateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, ListParts, and presigned GET/PUT URLs (v1 and
v4). Every other subresource (acl, lifecycle, cors, website, tagging, symlink, restore,
x-oss-process, versioning, ...) and PostObject (form upload) answer 501 ``NotImplemented``.

Addressing is path-style only (``/<bucket>/<key>``), which oss2 uses on its own for an IP or
``localhost`` endpoint; the whole key part of the path is percent-decoded (oss2 sends ``/`` as
``%2F``).

Local-only extension: trigger administration. In the cloud, FC's CreateTrigger configures an
OSS trigger on the bucket; locally a trigger is registered on this server, over HTTP or with
the Python methods of :class:`OssService`:

- ``PUT /_localcloud/triggers/<name>`` with JSON ``{"bucket": "b", "events":
  ["oss:ObjectCreated:*"], "prefix": "in/", "suffix": "", "target": {"kind": "http", "url":
  "http://..."}}`` or ``"target": {"kind": "fc", "endpoint": "http://127.0.0.1:9413",
  "service": "s", "function": "f", "qualifier": null}``. Answers 200 with the stored trigger;
  400 with ``{"Code", "Message"}`` when invalid or overlapping another trigger of the bucket.
- ``GET /_localcloud/triggers`` lists them (``{"triggers": [...]}``); ``GET`` or ``DELETE
  /_localcloud/triggers/<name>`` reads or removes one (404 when unknown).

These paths take the state folder's admin token, not a signature (`localcloud.core.admin`);
``_localcloud`` is not a valid bucket name, so they cannot clash with the OSS API. Event shapes and delivery: see
:mod:`localcloud.oss.events`.

Choices where the cloud's behaviour is UNCONFIRMED: PutBucket on a bucket the account already
owns succeeds (200) unless it asks for another storage class (409 BucketAlreadyExists, "Cannot
modify existing bucket's storage class."). The ETag of an appendable object is the MD5 of the
previous ETag and the appended bytes' MD5 (OSS only says it is not the content MD5). A multipart
ETag is the MD5 of the parts' binary MD5s plus ``-<part count>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from localcloud.core.account import Account
from localcloud.core.admin import AdminGuard
from localcloud.core.http import Request, Response
from localcloud.oss import wire
from localcloud.oss.auth import SUBRESOURCES, verify_request
from localcloud.oss.errors import (
    OssError,
    invalid_argument,
    malformed_xml,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    not_implemented,
)
from localcloud.oss.events import Deliverer, ObjectFacts, Trigger, build_event, check_new_trigger
from localcloud.oss.store import Store

ADMIN_PREFIX = "/_localcloud/triggers"

#: Bodies up to this size are read into memory; larger ones are streamed from disk.
STREAM_THRESHOLD = 1 << 20
_CHUNK = 256 * 1024
_PARALLEL_THRESHOLD = 64 * 1024

#: Headers kept with an object and sent back on GET/HEAD, besides ``x-oss-meta-*``.
_STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
#: Query names that are part of an implemented action or only modify it.
_HANDLED = {
    "uploads",
    "uploadId",
    "partNumber",
    "append",
    "position",
    "delete",
    "objectMeta",
    "bucketInfo",
    "location",
    "continuation-token",
    "security-token",
    *_RESPONSE_OVERRIDES,
}
_ACTION_NAMES = {
    ("PUT", "symlink"): "PutSymlink",
    ("GET", "symlink"): "GetSymlink",
    ("POST", "restore"): "RestoreObject",
    ("GET", "x-oss-process"): "GetObject with x-oss-process (image/video processing)",
    ("POST", "x-oss-process"): "ProcessObject (x-oss-process)",
    ("GET", "versionId"): "GetObject of a version (versionId)",
    ("GET", "stat"): "GetBucketStat",
}
_STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
_MIN_PART_SIZE = 100 * 1024
_MAX_KEYS = 1000


@dataclass
class Call:
    """One request, parsed: who it addresses and its query."""

    request: Request
    request_id: str
    bucket: str
    key: str
    params: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @property
    def encode_keys(self) -> bool:
        return self.params.get("encoding-type") == "url"


class OssService:
    name = "oss"

    def __init__(
        self,
        state_dir: Path,
        account: Account,
        *,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        max_event_age: float = 5 * 3600.0,
    ) -> None:
        self.account = account
        self.admin_guard = AdminGuard.for_state_dir(state_dir)
        self._store = Store(state_dir / "oss")
        self._store.sweep()
        self._triggers_lock = threading.Lock()
        self._triggers = {
            row["name"]: Trigger.from_config(row["name"], json.loads(row["config"]))
            for row in self._store.all("SELECT name, config FROM triggers")
        }
        # Hashing, CRC and the fsynced write of a large body run side by side (hashlib and file
        # writes release the GIL), which roughly halves the time of a 1 MiB PUT.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="oss-io")
        self._deliverer = Deliverer(
            self._store, account, retry_base=retry_base, retry_cap=retry_cap, max_event_age=max_event_age
        )

    def close(self) -> None:
        self._deliverer.close()
        self._pool.shutdown()
        self._store.close()

    # --- triggers and deliveries (in-process API) ---------------------------------------------

    def put_trigger(self, name: str, config: dict[str, Any]) -> Trigger:
        """Register (or replace) trigger ``name``; raises :class:`OssError` when invalid."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", name):
            raise OssError(400, "InvalidArgument", "Trigger names are 1-128 letters, digits, '_' or '-'.")
        trigger = Trigger.from_config(name, config)
        with self._triggers_lock:
            check_new_trigger(trigger, list(self._triggers.values()))
            with self._store.transaction() as db:
                if db.execute("SELECT 1 FROM buckets WHERE name = ?", (trigger.bucket,)).fetchone() is None:
                    raise no_such_bucket(trigger.bucket)
                stored = json.dumps({k: v for k, v in trigger.to_config().items() if k != "name"})
                db.execute("INSERT OR REPLACE INTO triggers VALUES (?, ?, ?)", (name, trigger.bucket, stored))
            self._triggers[name] = trigger
        return trigger

    def delete_trigger(self, name: str) -> bool:
        with self._triggers_lock, self._store.transaction() as db:
            found = db.execute("DELETE FROM triggers WHERE name = ?", (name,)).rowcount > 0
            self._triggers.pop(name, None)
            return found

    def list_triggers(self) -> list[Trigger]:
        with self._triggers_lock:
            return sorted(self._triggers.values(), key=lambda t: t.name)

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every queued event was delivered; ``False`` if ``timeout`` passed first."""
        return self._deliverer.wait_idle(timeout)

    def pending_deliveries(self) -> int:
        return self._deliverer.pending()

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        request_id = wire.new_request_id()
        if request.raw_path == ADMIN_PREFIX or request.raw_path.startswith(ADMIN_PREFIX + "/"):
            response = self._admin(request)
        else:
            try:
                response = self._dispatch(self._parse(request, request_id))
            except OssError as error:
                response = self._error(request, request_id, error)
        response.headers["x-oss-request-id"] = request_id
        response.headers["Date"] = wire.http_date()
        response.headers["Server"] = "AliyunOSS"
        return response

    def _error(self, request: Request, request_id: str, error: OssError) -> Response:
        body = error.to_xml(request_id, request.headers.get("host", "localhost"))
        headers = {"Content-Type": "application/xml", **error.headers}
        if request.method == "HEAD":
            # A HEAD answer has no body; oss2 reads the error from this header instead.
            headers["x-oss-err"] = base64.b64encode(body).decode()
            return Response(error.status, headers, b"")
        return Response(error.status, headers, body)

    def _parse(self, request: Request, request_id: str) -> Call:
        bucket_raw, _, key_raw = request.raw_path.lstrip("/").partition("/")
        bucket = unquote(bucket_raw)
        if bucket:
            wire.check_bucket_name(bucket)
        key = wire.decode_key(key_raw) if key_raw else ""
        query = request.query_items()
        verify_request(request, query, bucket, key, self.account)
        return Call(request, request_id, bucket, key, dict(query))

    def _dispatch(self, call: Call) -> Response:
        method = call.request.method
        params = call.params
        unsupported = [p for p in params if (p in SUBRESOURCES and p not in _HANDLED) or p == "x-oss-process"]
        if unsupported:
            sub = unsupported[0]
            level = "Object" if call.key else "Bucket"
            action = _ACTION_NAMES.get((method, sub), f"{method.title()}{level}{sub[0].upper()}{sub[1:]}")
            raise not_implemented(action)
        handler: Callable[[Call], Response] | None
        if not call.bucket:
            handler = {"GET": self.list_buckets}.get(method)
        elif not call.key:
            handler = self._bucket_handler(method, params, call)
        else:
            handler = self._object_handler(method, params, call)
        if handler is None:
            level = "object" if call.key else "bucket" if call.bucket else "service"
            raise not_implemented(f"{method} on a {level} with query {sorted(params)}")
        return handler(call)

    def _bucket_handler(
        self, method: str, params: dict[str, str], call: Call
    ) -> Callable[[Call], Response] | None:
        if method == "PUT" and not params:
            return self.put_bucket
        if method == "DELETE" and not params:
            return self.delete_bucket
        if method == "POST" and "delete" in params:
            return self.delete_multiple_objects
        if method == "POST" and "multipart/form-data" in (call.header("content-type") or ""):
            raise not_implemented("PostObject (HTML form upload)")
        if method == "GET":
            if "bucketInfo" in params:
                return self.get_bucket_info
            if "location" in params:
                return self.get_bucket_location
            if "uploads" in params:
                raise not_implemented("ListMultipartUploads")
            if params.get("list-type") == "2":
                return self.list_objects_v2
            return self.list_objects
        return None

    def _object_handler(
        self, method: str, params: dict[str, str], call: Call
    ) -> Callable[[Call], Response] | None:
        if method == "PUT":
            if "uploadId" in params:
                if call.header("x-oss-copy-source"):
                    raise not_implemented("UploadPartCopy")
                return self.upload_part
            return self.copy_object if call.header("x-oss-copy-source") else self.put_object
        if method == "GET":
            return self.list_parts if "uploadId" in params else self.get_object
        if method == "HEAD":
            return self.get_object_meta if "objectMeta" in params else self.head_object
        if method == "DELETE":
            return self.abort_multipart_upload if "uploadId" in params else self.delete_object
        if method == "POST":
            if "append" in params:
                return self.append_object
            if "uploads" in params:
                return self.initiate_multipart_upload
            if "uploadId" in params:
                return self.complete_multipart_upload
        return None

    # --- helpers ------------------------------------------------------------------------------

    def _require_bucket(self, bucket: str) -> Any:
        row = self._store.one("SELECT * FROM buckets WHERE name = ?", bucket)
        if row is None:
            raise no_such_bucket(bucket)
        return row

    def _store_body(self, data: bytes) -> tuple[str, int, str]:
        """``(md5 hex, crc64, data id)`` of a request body, stored durably."""
        if len(data) < _PARALLEL_THRESHOLD:
            return wire.md5_hex(data), wire.crc64(data), self._store.write_data(data)
        written = self._pool.submit(self._store.write_data, data)
        md5 = self._pool.submit(wire.md5_hex, data)
        crc = wire.crc64(data)
        return md5.result(), crc, written.result()

    @staticmethod
    def _xml(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(status, {"Content-Type": "application/xml", **(headers or {})}, wire.xml_doc(body))

    @staticmethod
    def _headers_to_store(call: Call) -> dict[str, str]:
        return {
            name: value
            for name, value in call.request.headers.items()
            if name.startswith("x-oss-meta-") or name in _STORED_HEADERS
        }

    @staticmethod
    def _forbid_overwrite(call: Call) -> bool:
        return (call.header("x-oss-forbid-overwrite") or "").lower() == "true"

    def _commit_object(
        self,
        call: Call,
        *,
        key: str,
        data_id: str,
        size: int,
        etag: str,
        crc: int,
        content_type: str,
        stored_headers: dict[str, str],
        object_type: str,
        event_name: str,
        extra_sql: Callable[[Any], list[str]] | None = None,
    ) -> None:
        """Make a new object version visible, with its events, in one durable transaction.

        ``extra_sql`` runs inside the transaction and returns further data ids to remove once
        committed (multipart parts). On any failure the new data file is removed again.
        """
        obsolete: list[str] = []
        now = time.time()
        try:
            with self._store.transaction() as db:
                if db.execute("SELECT 1 FROM buckets WHERE name = ?", (call.bucket,)).fetchone() is None:
                    raise no_such_bucket(call.bucket)
                old = db.execute(
                    "SELECT data_id, size FROM objects WHERE bucket = ? AND key = ?", (call.bucket, key)
                ).fetchone()
                if old is not None and self._forbid_overwrite(call):
                    raise OssError(
                        409,
                        "FileAlreadyExists",
                        "The object you specified already exists and can not be overwritten.",
                        Key=key,
                    )
                if extra_sql is not None:
                    obsolete += extra_sql(db)
                db.execute(
                    "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        call.bucket,
                        key,
                        data_id,
                        size,
                        etag,
                        str(crc),
                        content_type,
                        json.dumps(stored_headers),
                        object_type,
                        now,
                    ),
                )
                facts = ObjectFacts(key, size, etag, content_type, _user_meta(stored_headers))
                self._enqueue(db, call, event_name, facts, size - (old["size"] if old else 0), now)
                if old is not None:
                    obsolete.append(old["data_id"])
        except BaseException:
            self._store.remove_data([data_id])
            raise
        self._store.remove_data(obsolete)
        self._deliverer.notify()

    def _enqueue(
        self,
        db: Any,
        call: Call,
        event_name: str,
        facts: ObjectFacts,
        delta_size: int,
        now: float,
        position: int | None = None,
    ) -> None:
        with self._triggers_lock:
            matching = [
                t
                for t in self._triggers.values()
                if t.bucket == call.bucket and t.matches(event_name, facts.key)
            ]
        for trigger in matching:
            payload = build_event(
                event_name,
                call.bucket,
                facts,
                delta_size,
                account=self.account,
                request_id=call.request_id,
                source_ip=call.request.client or "127.0.0.1",
                rule_id=trigger.name,
                event_time=now,
                position=position,
            )
            db.execute(
                "INSERT INTO deliveries (trigger_name, target, payload, next_attempt, created) VALUES (?, ?, ?, ?, ?)",
                (trigger.name, json.dumps(trigger.target), payload, now, now),
            )

    # --- service and buckets ------------------------------------------------------------------

    def _bucket_xml(self, row: Any) -> str:
        region = self.account.region
        return (
            "<Bucket>"
            + wire.tag("CreationDate", wire.iso_time(row["created"]))
            + wire.tag("ExtranetEndpoint", f"oss-{region}.aliyuncs.com")
            + wire.tag("IntranetEndpoint", f"oss-{region}-internal.aliyuncs.com")
            + wire.tag("Location", f"oss-{region}")
            + wire.tag("Name", row["name"])
            + wire.tag("Region", region)
            + wire.tag("StorageClass", row["storage_class"])
            + "</Bucket>"
        )

    def _owner_xml(self) -> str:
        return f"<Owner>{wire.tag('ID', self.account.account_id)}{wire.tag('DisplayName', self.account.account_id)}</Owner>"

    def list_buckets(self, call: Call) -> Response:
        prefix = call.params.get("prefix", "")
        marker = call.params.get("marker", "")
        max_keys = _int_param(call.params, "max-keys", 100, 1, _MAX_KEYS)
        rows = self._store.all(
            "SELECT * FROM buckets WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
            marker,
            len(prefix),
            prefix,
            max_keys + 1,
        )
        truncated = len(rows) > max_keys
        rows = rows[:max_keys]
        paging = ""
        if {"prefix", "marker", "max-keys"} & call.params.keys():
            paging = (
                wire.tag("Prefix", prefix)
                + wire.tag("Marker", marker)
                + wire.tag("MaxKeys", max_keys)
                + wire.tag("IsTruncated", str(truncated).lower())
                + (wire.tag("NextMarker", rows[-1]["name"]) if truncated else "")
            )
        body = (
            "<ListAllMyBucketsResult>"
            + paging
            + self._owner_xml()
            + "<Buckets>"
            + "".join(self._bucket_xml(r) for r in rows)
            + "</Buckets></ListAllMyBucketsResult>"
        )
        return self._xml(body)

    def put_bucket(self, call: Call) -> Response:
        storage_class = "Standard"
        if call.request.body.strip():
            root = _parse_xml(call.request.body, "CreateBucketConfiguration")
            storage_class = (root.findtext("StorageClass") or "Standard").strip()
            if storage_class not in _STORAGE_CLASSES:
                raise invalid_argument(
                    f"StorageClass must be one of {', '.join(_STORAGE_CLASSES)}.",
                    "StorageClass",
                    storage_class,
                )
        acl = call.header("x-oss-acl") or "private"
        if acl not in ("private", "public-read", "public-read-write"):
            raise invalid_argument(
                "x-oss-acl must be private, public-read or public-read-write.", "x-oss-acl", acl
            )
        with self._store.transaction() as db:
            existing = db.execute(
                "SELECT storage_class FROM buckets WHERE name = ?", (call.bucket,)
            ).fetchone()
            if existing is not None:
                if existing["storage_class"] != storage_class:
                    raise OssError(
                        409,
                        "BucketAlreadyExists",
                        "Cannot modify existing bucket's storage class.",
                        BucketName=call.bucket,
                    )
            else:
                db.execute(
                    "INSERT INTO buckets VALUES (?, ?, ?, ?)", (call.bucket, time.time(), storage_class, acl)
                )
        return Response(200, {"Location": f"/{call.bucket}"})

    def delete_bucket(self, call: Call) -> Response:
        with self._triggers_lock, self._store.transaction() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (call.bucket,)).fetchone() is None:
                raise no_such_bucket(call.bucket)
            busy = db.execute(
                "SELECT 1 FROM objects WHERE bucket = ? UNION ALL SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1",
                (call.bucket, call.bucket),
            ).fetchone()
            if busy is not None:
                raise OssError(
                    409,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty. Delete its objects and abort its "
                    "multipart uploads first.",
                    BucketName=call.bucket,
                )
            db.execute("DELETE FROM buckets WHERE name = ?", (call.bucket,))
            # Deleting a bucket deletes its notification rules, so its triggers go too.
            db.execute("DELETE FROM triggers WHERE bucket = ?", (call.bucket,))
            for name in [n for n, t in self._triggers.items() if t.bucket == call.bucket]:
                del self._triggers[name]
        return Response(204)

    def get_bucket_info(self, call: Call) -> Response:
        row = self._require_bucket(call.bucket)
        region = self.account.region
        body = (
            "<BucketInfo><Bucket>"
            + wire.tag("AccessMonitor", "Disabled")
            + wire.tag("CreationDate", wire.iso_time(row["created"]))
            + wire.tag("ExtranetEndpoint", f"oss-{region}.aliyuncs.com")
            + wire.tag("IntranetEndpoint", f"oss-{region}-internal.aliyuncs.com")
            + wire.tag("Location", f"oss-{region}")
            + wire.tag("StorageClass", row["storage_class"])
            + wire.tag("TransferAcceleration", "Disabled")
            + wire.tag("CrossRegionReplication", "Disabled")
            + wire.tag("Name", row["name"])
            + wire.tag("DataRedundancyType", "LRS")
            + f"<Owner>{wire.tag('DisplayName', self.account.account_id)}{wire.tag('ID', self.account.account_id)}</Owner>"
            + f"<AccessControlList>{wire.tag('Grant', row['acl'])}</AccessControlList>"
            + "<ServerSideEncryptionRule><SSEAlgorithm>None</SSEAlgorithm></ServerSideEncryptionRule>"
            + "</Bucket></BucketInfo>"
        )
        return self._xml(body)

    def get_bucket_location(self, call: Call) -> Response:
        self._require_bucket(call.bucket)
        return self._xml(wire.tag("LocationConstraint", f"oss-{self.account.region}"))

    # --- listing ------------------------------------------------------------------------------

    def _scan(
        self, bucket: str, prefix: str, delimiter: str, after: str, limit: int
    ) -> tuple[list[Any], list[str], bool, str]:
        """Keys and common prefixes after ``after``, in key order; ``(objects, prefixes, truncated, last)``."""
        objects: list[Any] = []
        prefixes: list[str] = []
        bound = prefix if prefix > after else after
        inclusive = prefix > after
        last = ""
        while True:
            op = ">=" if inclusive else ">"
            rows = self._store.all(
                f"SELECT * FROM objects WHERE bucket = ? AND key {op} ? ORDER BY key LIMIT 200", bucket, bound
            )
            if not rows:
                return objects, prefixes, False, last
            inclusive = False
            for row in rows:
                key = row["key"]
                if not key.startswith(prefix):
                    return objects, prefixes, False, last
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    # Skip every key under this common prefix in one step.
                    bound = common + "\U0010ffff"
                    if common <= after:
                        break
                    if len(objects) + len(prefixes) == limit:
                        return objects, prefixes, True, last
                    prefixes.append(common)
                    last = common
                    break
                if len(objects) + len(prefixes) == limit:
                    return objects, prefixes, True, last
                objects.append(row)
                last = key
                bound = key

    def _contents_xml(self, row: Any, encode: bool, owner: bool) -> str:
        return (
            "<Contents>"
            + wire.tag("Key", wire.url_encode(row["key"], encode))
            + wire.tag("LastModified", wire.iso_time(row["last_modified"]))
            + wire.tag("ETag", f'"{row["etag"]}"')
            + wire.tag("Type", row["object_type"])
            + wire.tag("Size", row["size"])
            + wire.tag("StorageClass", "Standard")
            + (self._owner_xml() if owner else "")
            + "</Contents>"
        )

    def _list_params(self, call: Call) -> tuple[str, str, int]:
        self._require_bucket(call.bucket)
        encoding = call.params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise invalid_argument("encoding-type must be 'url' when given.", "encoding-type", encoding)
        return (
            call.params.get("prefix", ""),
            call.params.get("delimiter", ""),
            _int_param(call.params, "max-keys", 100, 0, _MAX_KEYS),
        )

    def list_objects(self, call: Call) -> Response:
        prefix, delimiter, max_keys = self._list_params(call)
        marker = call.params.get("marker", "")
        encode = call.encode_keys
        objects, prefixes, truncated, last = self._scan(call.bucket, prefix, delimiter, marker, max_keys)
        body = (
            "<ListBucketResult>"
            + wire.tag("Name", call.bucket)
            + wire.tag("Prefix", wire.url_encode(prefix, encode))
            + wire.tag("Marker", wire.url_encode(marker, encode))
            + wire.tag("MaxKeys", max_keys)
            + wire.tag("Delimiter", wire.url_encode(delimiter, encode))
            + (wire.tag("EncodingType", "url") if encode else "")
            + wire.tag("IsTruncated", str(truncated).lower())
            + (wire.tag("NextMarker", wire.url_encode(last, encode)) if truncated else "")
            + "".join(self._contents_xml(r, encode, owner=True) for r in objects)
            + "".join(
                f"<CommonPrefixes>{wire.tag('Prefix', wire.url_encode(p, encode))}</CommonPrefixes>"
                for p in prefixes
            )
            + "</ListBucketResult>"
        )
        return self._xml(body)

    def list_objects_v2(self, call: Call) -> Response:
        prefix, delimiter, max_keys = self._list_params(call)
        token = call.params.get("continuation-token", "")
        start_after = call.params.get("start-after", "")
        after = start_after
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
            except ValueError:
                raise invalid_argument(
                    "continuation-token is not one this server issued; pass NextContinuationToken back unchanged.",
                    "continuation-token",
                    token,
                ) from None
        encode = call.encode_keys
        owner = call.params.get("fetch-owner", "false") == "true"
        objects, prefixes, truncated, last = self._scan(call.bucket, prefix, delimiter, after, max_keys)
        next_token = base64.urlsafe_b64encode(last.encode()).decode() if truncated else ""
        body = (
            "<ListBucketResult>"
            + wire.tag("Name", call.bucket)
            + wire.tag("Prefix", wire.url_encode(prefix, encode))
            + (wire.tag("StartAfter", wire.url_encode(start_after, encode)) if start_after else "")
            + (wire.tag("ContinuationToken", token) if token else "")
            + wire.tag("MaxKeys", max_keys)
            + wire.tag("Delimiter", wire.url_encode(delimiter, encode))
            + (wire.tag("EncodingType", "url") if encode else "")
            + wire.tag("IsTruncated", str(truncated).lower())
            + (wire.tag("NextContinuationToken", next_token) if truncated else "")
            + "".join(self._contents_xml(r, encode, owner) for r in objects)
            + "".join(
                f"<CommonPrefixes>{wire.tag('Prefix', wire.url_encode(p, encode))}</CommonPrefixes>"
                for p in prefixes
            )
            + wire.tag("KeyCount", len(objects) + len(prefixes))
            + "</ListBucketResult>"
        )
        return self._xml(body)

    # --- objects ------------------------------------------------------------------------------

    def put_object(self, call: Call) -> Response:
        self._require_bucket(call.bucket)
        data = call.request.body
        wire.check_content_md5(call.header("content-md5"), data)
        etag, crc, data_id = self._store_body(data)
        self._commit_object(
            call,
            key=call.key,
            data_id=data_id,
            size=len(data),
            etag=etag,
            crc=crc,
            content_type=call.header("content-type") or "application/octet-stream",
            stored_headers=self._headers_to_store(call),
            object_type="Normal",
            event_name="ObjectCreated:PutObject",
        )
        return Response(
            200,
            {
                "ETag": f'"{etag}"',
                "x-oss-hash-crc64ecma": str(crc),
                "Content-MD5": base64.b64encode(bytes.fromhex(etag)).decode(),
            },
        )

    def _object_headers(self, row: Any) -> dict[str, str]:
        headers = {
            "Content-Type": row["content_type"],
            "ETag": f'"{row["etag"]}"',
            "Last-Modified": wire.http_date(row["last_modified"]),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": row["object_type"],
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": row["crc64"],
            **json.loads(row["stored_headers"]),
        }
        if row["object_type"] == "Appendable":
            headers["x-oss-next-append-position"] = str(row["size"])
        return headers

    def _check_conditions(self, call: Call, row: Any) -> None:
        etag = f'"{row["etag"]}"'
        modified = int(row["last_modified"])
        if_match = call.header("if-match")
        if if_match is not None and if_match.strip() not in (etag, row["etag"], "*"):
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
                Condition="If-Match",
            )
        unmodified = _http_time(call.header("if-unmodified-since"))
        if unmodified is not None and modified > unmodified:
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
                Condition="If-Unmodified-Since",
            )
        if_none = call.header("if-none-match")
        since = _http_time(call.header("if-modified-since"))
        if (if_none is not None and if_none.strip() in (etag, row["etag"], "*")) or (
            since is not None and modified <= since
        ):
            error = OssError(304, "NotModified", "Not Modified")
            error.headers = {"ETag": etag, "Last-Modified": wire.http_date(row["last_modified"])}
            raise error

    def _open(self, call: Call) -> tuple[Any, BinaryIO]:
        self._require_bucket(call.bucket)
        found = self._store.open_object(call.bucket, call.key)
        if found is None:
            raise no_such_key(call.key)
        return found

    def get_object(self, call: Call) -> Response:
        row, stream = self._open(call)
        try:
            self._check_conditions(call, row)
            size = row["size"]
            standard = (call.header("x-oss-range-behavior") or "").lower() == "standard"
            byte_range = wire.parse_range(call.header("range"), size, standard)
            headers = self._object_headers(row)
            for param, header in _RESPONSE_OVERRIDES.items():
                if param in call.params:
                    headers[header] = call.params[param]
            status, start, length = 200, 0, size
            if byte_range is not None:
                start, end = byte_range
                status, length = 206, end - start + 1
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["Content-Length"] = str(length)
            stream.seek(start)
            if length <= STREAM_THRESHOLD:
                body = stream.read(length)
                stream.close()
                return Response(status, headers, body)
        except BaseException:
            stream.close()
            raise
        return Response(status, headers, _stream(stream, length), length=length)

    def head_object(self, call: Call) -> Response:
        row, stream = self._open(call)
        stream.close()
        self._check_conditions(call, row)
        headers = self._object_headers(row)
        headers["Content-Length"] = str(row["size"])
        return Response(200, headers)

    def get_object_meta(self, call: Call) -> Response:
        row, stream = self._open(call)
        stream.close()
        return Response(
            200,
            {
                "ETag": f'"{row["etag"]}"',
                "Content-Length": str(row["size"]),
                "Last-Modified": wire.http_date(row["last_modified"]),
            },
        )

    def _delete_keys(self, call: Call, keys: list[str], event_name: str) -> list[str]:
        """Delete ``keys`` (missing ones count as deleted, as in OSS) and emit their events."""
        obsolete: list[str] = []
        now = time.time()
        with self._store.transaction() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (call.bucket,)).fetchone() is None:
                raise no_such_bucket(call.bucket)
            for key in keys:
                row = db.execute(
                    "SELECT * FROM objects WHERE bucket = ? AND key = ?", (call.bucket, key)
                ).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (call.bucket, key))
                obsolete.append(row["data_id"])
                stored = json.loads(row["stored_headers"])
                facts = ObjectFacts(key, row["size"], row["etag"], row["content_type"], _user_meta(stored))
                self._enqueue(db, call, event_name, facts, -row["size"], now)
        self._store.remove_data(obsolete)
        self._deliverer.notify()
        return keys

    def delete_object(self, call: Call) -> Response:
        self._delete_keys(call, [call.key], "ObjectRemoved:DeleteObject")
        return Response(204)

    def delete_multiple_objects(self, call: Call) -> Response:
        body = call.request.body
        wire.check_content_md5(call.header("content-md5"), body)
        root = _parse_xml(body, "Delete")
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        if not keys or len(keys) > _MAX_KEYS:
            raise malformed_xml(
                f"<Delete> must list 1 to {_MAX_KEYS} <Object><Key> elements, found {len(keys)}"
            )
        for key in keys:
            wire.check_key(key)
        deleted = self._delete_keys(call, keys, "ObjectRemoved:DeleteObjects")
        encode = call.encode_keys
        listed = (
            ""
            if quiet
            else "".join(f"<Deleted>{wire.tag('Key', wire.url_encode(k, encode))}</Deleted>" for k in deleted)
        )
        return self._xml(
            "<DeleteResult>"
            + (wire.tag("EncodingType", "url") if encode else "")
            + listed
            + "</DeleteResult>"
        )

    def copy_object(self, call: Call) -> Response:
        source = unquote(call.header("x-oss-copy-source") or "")
        src_bucket, sep, src_key = source.lstrip("/").partition("/")
        if not source.startswith("/") or not sep or not src_key:
            raise invalid_argument(
                "x-oss-copy-source must be '/<bucket>/<url-encoded key>'.", "x-oss-copy-source", source
            )
        wire.check_bucket_name(src_bucket)
        wire.check_key(src_key)
        directive = (call.header("x-oss-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise invalid_argument(
                "x-oss-metadata-directive must be COPY or REPLACE.", "x-oss-metadata-directive", directive
            )
        self._require_bucket(call.bucket)
        self._require_bucket(src_bucket)
        found = self._store.open_object(src_bucket, src_key)
        if found is None:
            raise no_such_key(src_key)
        row, stream = found
        with stream:
            data_id = self._store.concat_data([(stream, row["size"])])
        if directive == "COPY":
            content_type, stored = row["content_type"], json.loads(row["stored_headers"])
        else:
            content_type = call.header("content-type") or "application/octet-stream"
            stored = self._headers_to_store(call)
        self._commit_object(
            call,
            key=call.key,
            data_id=data_id,
            size=row["size"],
            etag=row["etag"],
            crc=int(row["crc64"]),
            content_type=content_type,
            stored_headers=stored,
            object_type="Normal",
            event_name="ObjectCreated:CopyObject",
        )
        body = (
            "<CopyObjectResult>"
            + wire.tag("LastModified", wire.iso_time(time.time()))
            + wire.tag("ETag", f'"{row["etag"]}"')
            + "</CopyObjectResult>"
        )
        return self._xml(body, headers={"ETag": f'"{row["etag"]}"', "x-oss-hash-crc64ecma": row["crc64"]})

    def append_object(self, call: Call) -> Response:
        position_text = call.params.get("position", "")
        if not position_text.isdigit():
            raise invalid_argument("position must be a non-negative integer.", "position", position_text)
        position = int(position_text)
        data = call.request.body
        wire.check_content_md5(call.header("content-md5"), data)
        self._require_bucket(call.bucket)
        now = time.time()
        # Appends to one key must be serialised from the position check to the commit, so the
        # whole append runs inside the transaction (appends are small; other keys wait briefly).
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT * FROM objects WHERE bucket = ? AND key = ?", (call.bucket, call.key)
            ).fetchone()
            if row is not None and row["object_type"] != "Appendable":
                raise OssError(
                    409,
                    "ObjectNotAppendable",
                    "The operation is not valid for the current state of the object.",
                    Key=call.key,
                )
            current = row["size"] if row is not None else 0
            if position != current:
                error = OssError(
                    409, "PositionNotEqualToLength", "Position is not equal to file length", Key=call.key
                )
                error.headers["x-oss-next-append-position"] = str(current)
                raise error
            if row is None:
                data_id = self._store.write_data(data)
                etag, crc = wire.md5_hex(data), wire.crc64(data)
                content_type = call.header("content-type") or "application/octet-stream"
                stored = self._headers_to_store(call)
            else:
                data_id = row["data_id"]
                self._store.append_data(data_id, current, data)
                etag = wire.md5_hex(bytes.fromhex(row["etag"]) + hashlib.md5(data).digest())
                crc = wire.crc64_combine(int(row["crc64"]), wire.crc64(data), len(data))
                content_type, stored = row["content_type"], json.loads(row["stored_headers"])
            size = current + len(data)
            db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.bucket,
                    call.key,
                    data_id,
                    size,
                    etag,
                    str(crc),
                    content_type,
                    json.dumps(stored),
                    "Appendable",
                    now,
                ),
            )
            facts = ObjectFacts(call.key, size, etag, content_type, _user_meta(stored))
            self._enqueue(db, call, "ObjectCreated:AppendObject", facts, len(data), now, position=position)
        self._deliverer.notify()
        return Response(
            200,
            {"ETag": f'"{etag}"', "x-oss-next-append-position": str(size), "x-oss-hash-crc64ecma": str(crc)},
        )

    # --- multipart ----------------------------------------------------------------------------

    def _require_upload(self, call: Call) -> Any:
        upload_id = call.params.get("uploadId", "")
        row = self._store.one(
            "SELECT * FROM uploads WHERE upload_id = ? AND bucket = ? AND key = ?",
            upload_id,
            call.bucket,
            call.key,
        )
        if row is None:
            self._require_bucket(call.bucket)
            raise no_such_upload(upload_id)
        return row

    def initiate_multipart_upload(self, call: Call) -> Response:
        self._require_bucket(call.bucket)
        if self._forbid_overwrite(call) and self._store.one(
            "SELECT 1 FROM objects WHERE bucket = ? AND key = ?", call.bucket, call.key
        ):
            raise OssError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
                Key=call.key,
            )
        upload_id = wire.new_request_id() + wire.new_request_id()[:8]
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                (
                    upload_id,
                    call.bucket,
                    call.key,
                    time.time(),
                    call.header("content-type") or "application/octet-stream",
                    json.dumps(self._headers_to_store(call)),
                ),
            )
        encode = call.encode_keys
        body = (
            "<InitiateMultipartUploadResult>"
            + wire.tag("Bucket", call.bucket)
            + wire.tag("Key", wire.url_encode(call.key, encode))
            + wire.tag("UploadId", upload_id)
            + (wire.tag("EncodingType", "url") if encode else "")
            + "</InitiateMultipartUploadResult>"
        )
        return self._xml(body)

    def upload_part(self, call: Call) -> Response:
        upload = self._require_upload(call)
        number = _int_param(call.params, "partNumber", None, 1, 10000)
        data = call.request.body
        wire.check_content_md5(call.header("content-md5"), data)
        etag, crc, data_id = self._store_body(data)
        try:
            with self._store.transaction() as db:
                if (
                    db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload["upload_id"],)).fetchone()
                    is None
                ):
                    raise no_such_upload(upload["upload_id"])
                old = db.execute(
                    "SELECT data_id FROM parts WHERE upload_id = ? AND part_number = ?",
                    (upload["upload_id"], number),
                ).fetchone()
                db.execute(
                    "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (upload["upload_id"], number, data_id, len(data), etag, str(crc), time.time()),
                )
        except BaseException:
            self._store.remove_data([data_id])
            raise
        if old is not None:
            self._store.remove_data([old["data_id"]])
        return Response(200, {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)})

    def complete_multipart_upload(self, call: Call) -> Response:
        upload = self._require_upload(call)
        upload_id = upload["upload_id"]
        stored_parts = {
            row["part_number"]: row
            for row in self._store.all("SELECT * FROM parts WHERE upload_id = ?", upload_id)
        }
        if (call.header("x-oss-complete-all") or "").lower() == "yes":
            if call.request.body.strip():
                raise invalid_argument(
                    "With x-oss-complete-all: yes the body must be empty.", "x-oss-complete-all", "yes"
                )
            chosen = [stored_parts[n] for n in sorted(stored_parts)]
        else:
            chosen = self._chosen_parts(call.request.body, stored_parts)
        if not chosen:
            raise malformed_xml("a multipart upload needs at least one part")
        for part in chosen[:-1]:
            if part["size"] < _MIN_PART_SIZE:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    f"Your proposed upload smaller than the minimum allowed size: part {part['part_number']} "
                    f"is {part['size']} bytes; every part but the last needs at least {_MIN_PART_SIZE}.",
                    PartNumber=str(part["part_number"]),
                )
        streams = [self._store.open_data(p["data_id"]) for p in chosen]
        try:
            data_id = self._store.concat_data([(s, p["size"]) for s, p in zip(streams, chosen, strict=True)])
        finally:
            for s in streams:
                s.close()
        digest = hashlib.md5(b"".join(bytes.fromhex(p["etag"]) for p in chosen)).hexdigest().upper()
        etag = f"{digest}-{len(chosen)}"
        crc = 0
        for part in chosen:
            crc = wire.crc64_combine(crc, int(part["crc64"]), part["size"])
        size = sum(p["size"] for p in chosen)

        def finish_upload(db: Any) -> list[str]:
            if db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone() is None:
                raise no_such_upload(upload_id)
            part_ids = [
                r["data_id"]
                for r in db.execute("SELECT data_id FROM parts WHERE upload_id = ?", (upload_id,))
            ]
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
            return part_ids

        self._commit_object(
            call,
            key=call.key,
            data_id=data_id,
            size=size,
            etag=etag,
            crc=crc,
            content_type=upload["content_type"],
            stored_headers=json.loads(upload["stored_headers"]),
            object_type="Multipart",
            event_name="ObjectCreated:CompleteMultipartUpload",
            extra_sql=finish_upload,
        )
        encode = call.encode_keys
        host = call.header("host") or "localhost"
        body = (
            "<CompleteMultipartUploadResult>"
            + (wire.tag("EncodingType", "url") if encode else "")
            + wire.tag("Location", f"http://{host}/{call.bucket}/{wire.url_encode(call.key, True)}")
            + wire.tag("Bucket", call.bucket)
            + wire.tag("Key", wire.url_encode(call.key, encode))
            + wire.tag("ETag", f'"{etag}"')
            + "</CompleteMultipartUploadResult>"
        )
        return self._xml(body, headers={"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)})

    @staticmethod
    def _chosen_parts(body: bytes, stored: dict[int, Any]) -> list[Any]:
        root = _parse_xml(body, "CompleteMultipartUpload")
        chosen: list[Any] = []
        previous = 0
        for node in root.findall("Part"):
            number_text = (node.findtext("PartNumber") or "").strip()
            if not number_text.isdigit():
                raise malformed_xml(f"PartNumber {number_text!r} is not a number")
            number = int(number_text)
            if number <= previous:
                raise OssError(
                    400,
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts list must specified in order by part number.",
                )
            previous = number
            etag = (node.findtext("ETag") or "").strip().strip('"').upper()
            part = stored.get(number)
            if part is None or part["etag"] != etag:
                raise OssError(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found or the specified entity tag "
                    "might not have matched the part's entity tag.",
                    PartNumber=str(number),
                    ETag=etag,
                )
            chosen.append(part)
        return chosen

    def abort_multipart_upload(self, call: Call) -> Response:
        upload = self._require_upload(call)
        with self._store.transaction() as db:
            part_ids = [
                r["data_id"]
                for r in db.execute("SELECT data_id FROM parts WHERE upload_id = ?", (upload["upload_id"],))
            ]
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload["upload_id"],))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload["upload_id"],))
        self._store.remove_data(part_ids)
        return Response(204)

    def list_parts(self, call: Call) -> Response:
        upload = self._require_upload(call)
        max_parts = _int_param(call.params, "max-parts", 1000, 1, 1000)
        marker = _int_param(call.params, "part-number-marker", 0, 0, 10000)
        rows = self._store.all(
            "SELECT * FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            upload["upload_id"],
            marker,
            max_parts + 1,
        )
        truncated = len(rows) > max_parts
        rows = rows[:max_parts]
        encode = call.encode_keys
        body = (
            "<ListPartsResult>"
            + wire.tag("Bucket", call.bucket)
            + wire.tag("Key", wire.url_encode(call.key, encode))
            + wire.tag("UploadId", upload["upload_id"])
            + wire.tag("PartNumberMarker", marker)
            + wire.tag("NextPartNumberMarker", rows[-1]["part_number"] if rows else marker)
            + wire.tag("MaxParts", max_parts)
            + wire.tag("IsTruncated", str(truncated).lower())
            + "".join(
                "<Part>"
                + wire.tag("PartNumber", r["part_number"])
                + wire.tag("LastModified", wire.iso_time(r["last_modified"]))
                + wire.tag("ETag", f'"{r["etag"]}"')
                + wire.tag("HashCrc64ecma", r["crc64"])
                + wire.tag("Size", r["size"])
                + "</Part>"
                for r in rows
            )
            + "</ListPartsResult>"
        )
        return self._xml(body)

    # --- local-only trigger admin API ---------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        refusal = self.admin_guard.refusal(request)
        if refusal is not None:
            return _json(refusal.status, {"Code": refusal.code, "Message": refusal.message})
        name = unquote(request.raw_path[len(ADMIN_PREFIX) :].strip("/"))
        try:
            if not name and request.method == "GET":
                return _json(200, {"triggers": [t.to_config() for t in self.list_triggers()]})
            if name and request.method == "PUT":
                try:
                    config = json.loads(request.body or b"null")
                except ValueError as exc:
                    raise OssError(400, "InvalidArgument", f"The trigger body is not JSON: {exc}") from None
                return _json(200, self.put_trigger(name, config).to_config())
            if name and request.method == "GET":
                trigger = next((t for t in self.list_triggers() if t.name == name), None)
                if trigger is None:
                    return _json(404, {"Code": "TriggerNotFound", "Message": f"No trigger named {name!r}."})
                return _json(200, trigger.to_config())
            if name and request.method == "DELETE":
                if not self.delete_trigger(name):
                    return _json(404, {"Code": "TriggerNotFound", "Message": f"No trigger named {name!r}."})
                return Response(204)
        except OssError as error:
            return _json(error.status, {"Code": error.code, "Message": error.message})
        return _json(
            405,
            {
                "Code": "MethodNotAllowed",
                "Message": f"{request.method} {request.raw_path}: use PUT/GET/DELETE {ADMIN_PREFIX}/<name> "
                f"or GET {ADMIN_PREFIX}.",
            },
        )


def _json(status: int, value: object) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(value).encode())


def _user_meta(stored: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in stored.items() if k.startswith("x-oss-meta-")}


def _stream(stream: BinaryIO, length: int) -> Iterator[bytes]:
    with stream:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _parse_xml(body: bytes, root_tag: str) -> ElementTree.Element:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise malformed_xml(str(exc)) from None
    if root.tag != root_tag:
        raise malformed_xml(f"the root element must be <{root_tag}>, not <{root.tag}>")
    return root


def _int_param(params: dict[str, str], name: str, default: int | None, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or (text == "" and default is not None):
        if default is None:
            raise invalid_argument(f"{name} is required.", name, "")
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise invalid_argument(f"{name} must be an integer from {low} to {high}.", name, text)
    return int(text)


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None

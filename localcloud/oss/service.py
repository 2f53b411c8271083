"""The local OSS: the OSS REST API and its S3-compatible API on one port, plus event notifications.

The package is laid out like the other local services: this module parses a request (signature,
addressing) and routes it (:meth:`OssService._route`, one ``match`` table); the actions are
methods named like them on :class:`~localcloud.oss.buckets.Buckets`,
:class:`~localcloud.oss.objects.Objects` and :class:`~localcloud.oss.multipart.Multipart`; all
SQL is in :mod:`localcloud.oss.store`.

Implemented actions: ListBuckets, PutBucket, DeleteBucket, GetBucketInfo, GetBucketLocation,
Get/PutBucketAcl, ListObjects, ListObjectsV2, PutObject, GetObject, HeadObject, GetObjectMeta,
DeleteObject, DeleteMultipleObjects, CopyObject, AppendObject, InitiateMultipartUpload,
UploadPart, UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts,
ListMultipartUploads, Put/Get/DeleteObjectTagging, Put/GetSymlink, Get/PutObjectAcl,
RestoreObject, ListLiveChannel (always empty), and presigned GET/PUT URLs (v1 and v4). Objects
keep their storage class, tags and ACL (see :mod:`localcloud.oss.attributes`). Every other
subresource (lifecycle, cors, website, versioning, x-oss-process, ...) and PostObject (form
upload) answer 501 ``NotImplemented``; ``docs/local-cloud-compatibility.md`` says why each is left.

Addressing: path style (``/<bucket>/<key>``), which oss2 uses on its own for an IP or
``localhost`` endpoint, the whole key part of the path percent-decoded (oss2 sends ``/`` as
``%2F``); and virtual-host style, ``<bucket>.localhost:<port>``.

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
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from localcloud.core.account import Account
from localcloud.core.admin import AdminGuard
from localcloud.core.faults import FaultPlan
from localcloud.core.http import Request, Response
from localcloud.oss import s3, wire
from localcloud.oss.actions import State
from localcloud.oss.auth import SUBRESOURCES, verify_request
from localcloud.oss.buckets import Buckets
from localcloud.oss.call import OssRequest, json_response
from localcloud.oss.errors import OssError, not_implemented
from localcloud.oss.events import Deliverer, Trigger, Triggers
from localcloud.oss.multipart import Multipart
from localcloud.oss.objects import RESPONSE_OVERRIDES, Objects
from localcloud.oss.store import Store

ADMIN_PREFIX = "/_localcloud/triggers"

#: Query names that choose an action, in the order they are looked for; ``None`` stands for
#: none of them (the plain action of the method on the bucket or object).
_ACTION_QUERIES = (
    "uploadId",
    "uploads",
    "append",
    "delete",
    "objectMeta",
    "bucketInfo",
    "location",
    "tagging",
    "symlink",
    "acl",
    "restore",
    "live",
)
#: Query names that modify an action without choosing it.
_MODIFIERS = {"partNumber", "position", "continuation-token", "security-token", *RESPONSE_OVERRIDES}
_ACTION_NAMES = {
    ("GET", "x-oss-process"): "GetObject with x-oss-process (image/video processing)",
    ("POST", "x-oss-process"): "ProcessObject (x-oss-process)",
    ("GET", "versionId"): "GetObject of a version (versionId)",
    ("GET", "stat"): "GetBucketStat",
}

Handler = Callable[[OssRequest], Response]


class OssService:
    """The local OSS. ``restore_delay`` (seconds) is how long a RestoreObject takes."""

    name = "oss"

    def __init__(
        self,
        state_dir: Path,
        account: Account,
        *,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        max_event_age: float = 5 * 3600.0,
        restore_delay: float = 1.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.account = account
        self.admin_guard = AdminGuard.for_state_dir(state_dir)
        self.store = Store(state_dir / "oss")
        self.store.sweep()
        self._triggers = Triggers(self.store)
        self._deliverer = Deliverer(
            self.store,
            account,
            retry_base=retry_base,
            retry_cap=retry_cap,
            max_event_age=max_event_age,
            faults=faults,
        )
        self._state = State(
            store=self.store,
            account=account,
            triggers=self._triggers,
            deliverer=self._deliverer,
            pool=ThreadPoolExecutor(max_workers=8, thread_name_prefix="oss-io"),
            restore_delay=restore_delay,
        )
        self.buckets = Buckets(self._state)
        self.objects = Objects(self._state)
        self.multipart = Multipart(self._state)
        #: Actions whose body is object data, written to disk as it arrives; every other
        #: action's body is a small document read whole (``OssRequest.document``).
        self._streamed_actions: set[Handler] = {
            self.objects.put_object,
            self.objects.append_object,
            self.multipart.upload_part,
        }

    @property
    def restore_delay(self) -> float:
        return self._state.restore_delay

    @restore_delay.setter
    def restore_delay(self, seconds: float) -> None:
        self._state.restore_delay = seconds

    def close(self) -> None:
        self._deliverer.close()
        self._state.pool.shutdown()
        self.store.close()

    # --- triggers and deliveries (in-process API) ---------------------------------------------

    def put_trigger(self, name: str, config: dict[str, Any]) -> Trigger:
        """Register (or replace) trigger ``name``; raises :class:`OssError` when invalid."""
        return self._triggers.put(name, config)

    def delete_trigger(self, name: str) -> bool:
        return self._triggers.delete(name)

    def list_triggers(self) -> list[Trigger]:
        return self._triggers.all()

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every queued event was delivered; ``False`` if ``timeout`` passed first."""
        return self._deliverer.wait_idle(timeout)

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        request_id = wire.new_request_id()
        if request.raw_path == ADMIN_PREFIX or request.raw_path.startswith(ADMIN_PREFIX + "/"):
            response = self._admin(request)
        else:
            try:
                call = self._parse(request, request_id)
                action = self._route(call)
                if action not in self._streamed_actions:
                    # Read up front, so that an S3 body's hash is checked before the action runs.
                    call.document()
                response = action(call)
            except OssError as error:
                response = self._error(request, request_id, error)
        response.headers["x-oss-request-id"] = request_id
        response.headers["Date"] = wire.http_date()
        response.headers["Server"] = "AliyunOSS"
        if s3.is_s3(request):
            response.headers = s3.s3_response_headers(response.headers)
        return response

    def _error(self, request: Request, request_id: str, error: OssError) -> Response:
        if s3.is_s3(request):
            body = s3.error_xml(error, request_id, request.path)
        else:
            body = error.to_xml(request_id, request.headers.get("host", "localhost"))
        headers = {"Content-Type": "application/xml", **error.headers}
        if request.method == "HEAD":
            # A HEAD answer has no body; oss2 reads the error from this header instead.
            headers["x-oss-err"] = base64.b64encode(body).decode()
            return Response(error.status, headers, b"")
        return Response(error.status, headers, body)

    def _parse(self, request: Request, request_id: str) -> OssRequest:
        """Who the request addresses, after its signature was checked.

        Path style is ``/<bucket>/<key>``; virtual-host style names the bucket in the Host,
        ``<bucket>.localhost:<port>`` (``*.localhost`` resolves to the loopback address), with the
        whole path as the key. A request signed for the S3 API (:mod:`localcloud.oss.s3`) goes on
        with its ``x-amz-*`` headers in their ``x-oss-*`` forms.
        """
        host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
        if host.endswith(".localhost"):
            bucket = host[: -len(".localhost")]
            key_raw = request.raw_path.lstrip("/")
        else:
            bucket_raw, _, key_raw = request.raw_path.lstrip("/").partition("/")
            bucket = unquote(bucket_raw)
        if bucket:
            wire.check_bucket_name(bucket)
        key = wire.decode_key(key_raw) if key_raw else ""
        query = request.query_items()
        if s3.is_s3(request):
            signing = s3.verify(request, self.account)
            body, body_sha256 = s3.body(request, signing), s3.payload_sha256(request)
            request.headers = s3.oss_headers(request.headers)
            query = [(k, v) for k, v in query if not k.startswith("X-Amz-") and k != "x-id"]
        else:
            verify_request(request, query, bucket, key, self.account)
            body, body_sha256 = request.stream, None
        return OssRequest(request, request_id, bucket, key, dict(query), body, body_sha256)

    # --- routing ------------------------------------------------------------------------------

    def _route(self, call: OssRequest) -> Handler:
        """The action a request names: its level (service, bucket, object), method and the query
        name that selects the action, matched in one table as the other local services do."""
        method, params = call.request.method, call.params
        unsupported = [
            p
            for p in params
            if (p in SUBRESOURCES and p not in _ACTION_QUERIES and p not in _MODIFIERS)
            or p == "x-oss-process"
        ]
        level = "object" if call.key else "bucket" if call.bucket else "service"
        if unsupported:
            sub = unsupported[0]
            action = _ACTION_NAMES.get(
                (method, sub), f"{method.title()}{level.title()}{sub[0].upper()}{sub[1:]}"
            )
            raise not_implemented(action)
        query = next((name for name in _ACTION_QUERIES if name in params), None)
        copying = call.header("x-oss-copy-source") is not None
        form = "multipart/form-data" in (call.header("content-type") or "")
        b, o, m = self.buckets, self.objects, self.multipart
        match (level, method, query):
            case ("service", "GET", None):
                return b.list_buckets
            case ("bucket", "PUT", None):
                return b.put_bucket
            case ("bucket", "DELETE", None):
                return b.delete_bucket
            case ("bucket", "GET", None) if params.get("list-type") == "2":
                return b.list_objects_v2
            case ("bucket", "GET", None):
                return b.list_objects
            case ("bucket", "GET", "bucketInfo"):
                return b.get_bucket_info
            case ("bucket", "GET", "location"):
                return b.get_bucket_location
            case ("bucket", "GET", "acl"):
                return b.get_bucket_acl
            case ("bucket", "PUT", "acl"):
                return b.put_bucket_acl
            case ("bucket", "GET", "live"):
                return b.list_live_channel
            case ("bucket", "GET", "uploads"):
                return m.list_multipart_uploads
            case ("bucket", "POST", "delete"):
                return o.delete_multiple_objects
            case ("bucket", "POST", None) if form:
                raise not_implemented("PostObject (HTML form upload)")
            case ("object", "PUT", None):
                return o.copy_object if copying else o.put_object
            case ("object", "GET", None):
                return o.get_object
            case ("object", "HEAD", None):
                return o.head_object
            case ("object", "DELETE", None):
                return o.delete_object
            case ("object", "HEAD", "objectMeta"):
                return o.get_object_meta
            case ("object", "POST", "append"):
                return o.append_object
            case ("object", "PUT", "tagging"):
                return o.put_object_tagging
            case ("object", "GET", "tagging"):
                return o.get_object_tagging
            case ("object", "DELETE", "tagging"):
                return o.delete_object_tagging
            case ("object", "PUT", "symlink"):
                return o.put_symlink
            case ("object", "GET", "symlink"):
                return o.get_symlink
            case ("object", "PUT", "acl"):
                return o.put_object_acl
            case ("object", "GET", "acl"):
                return o.get_object_acl
            case ("object", "POST", "restore"):
                return o.restore_object
            case ("object", "POST", "uploads"):
                return m.initiate_multipart_upload
            case ("object", "PUT", "uploadId"):
                return m.upload_part_copy if copying else m.upload_part
            case ("object", "GET", "uploadId"):
                return m.list_parts
            case ("object", "POST", "uploadId"):
                return m.complete_multipart_upload
            case ("object", "DELETE", "uploadId"):
                return m.abort_multipart_upload
        raise not_implemented(f"{method} on a {level} with query {sorted(params)}")

    # --- local-only trigger admin API ---------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        refusal = self.admin_guard.refusal(request)
        if refusal is not None:
            return json_response(refusal.status, {"Code": refusal.code, "Message": refusal.message})
        name = unquote(request.raw_path[len(ADMIN_PREFIX) :].strip("/"))
        try:
            if not name and request.method == "GET":
                return json_response(200, {"triggers": [t.to_config() for t in self.list_triggers()]})
            if name and request.method == "PUT":
                try:
                    config = json.loads(request.body or b"null")
                except ValueError as exc:
                    raise OssError(400, "InvalidArgument", f"The trigger body is not JSON: {exc}") from None
                return json_response(200, self.put_trigger(name, config).to_config())
            if name and request.method == "GET":
                trigger = next((t for t in self.list_triggers() if t.name == name), None)
                if trigger is None:
                    return json_response(
                        404, {"Code": "TriggerNotFound", "Message": f"No trigger named {name!r}."}
                    )
                return json_response(200, trigger.to_config())
            if name and request.method == "DELETE":
                if not self.delete_trigger(name):
                    return json_response(
                        404, {"Code": "TriggerNotFound", "Message": f"No trigger named {name!r}."}
                    )
                return Response(204)
        except OssError as error:
            return json_response(error.status, {"Code": error.code, "Message": error.message})
        return json_response(
            405,
            {
                "Code": "MethodNotAllowed",
                "Message": f"{request.method} {request.raw_path}: use PUT/GET/DELETE {ADMIN_PREFIX}/<name> "
                f"or GET {ADMIN_PREFIX}.",
            },
        )

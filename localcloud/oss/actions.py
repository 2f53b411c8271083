"""What the bucket, object and multipart actions share: the service's state and the helpers that
look up buckets, store bodies, and commit a new object with its events in one transaction."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote

from localcloud.core.account import Account
from localcloud.core.http import Response
from localcloud.oss import attributes, s3, wire
from localcloud.oss.call import OssRequest, check_sha256, http_time, user_meta, xml_response
from localcloud.oss.errors import (
    OssError,
    entity_too_large,
    invalid_argument,
    no_such_bucket,
    no_such_key,
    not_implemented,
)
from localcloud.oss.events import Deliverer, ObjectFacts, Triggers, build_event
from localcloud.oss.store import NewData, Store

#: Objects up to this size are answered from memory; larger ones are streamed from disk.
STREAM_THRESHOLD = 1 << 20
CHUNK = 256 * 1024
#: Object data in a request body is read, hashed and written in pieces of this size.
BODY_CHUNK = 1 << 20
#: From this size, a piece's MD5 and its write run beside its CRC-64 (smaller: not worth a thread).
PARALLEL_THRESHOLD = 64 * 1024
#: The largest object one PutObject, AppendObject (the whole object) or UploadPart (one part)
#: writes: 5 GiB (docs/oss-api.md "Request bodies"; larger objects are uploaded in parts).
MAX_OBJECT_SIZE = 5 << 30
#: Headers kept with an object and sent back on GET/HEAD, besides ``x-oss-meta-*``.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")


@dataclass
class Received:
    """A request body written to a data file that is not an object yet."""

    data: NewData
    etag: str
    crc: int

    @property
    def size(self) -> int:
        return self.data.size


@dataclass
class State:
    """What every action reaches: the store, the account, triggers and their delivery."""

    store: Store
    account: Account
    triggers: Triggers
    deliverer: Deliverer
    #: A body's MD5 and its write to disk run beside its CRC-64, piece by piece (hashlib and file
    #: writes release the GIL).
    pool: ThreadPoolExecutor
    #: Seconds a RestoreObject takes before the copy is readable (the cloud takes minutes for
    #: Archive and hours for the cold classes; locally it is short so that code waiting for
    #: ``ongoing-request="false"`` is exercised without the wait).
    restore_delay: float = 1.0


class Actions:
    """Base of :class:`~localcloud.oss.buckets.Buckets`, :class:`~localcloud.oss.objects.Objects`
    and :class:`~localcloud.oss.multipart.Multipart`: one method per OSS action, named like the
    action, taking the parsed :class:`OssRequest`."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.account = state.account
        self._store = state.store
        self._triggers = state.triggers
        self._deliverer = state.deliverer
        self._pool = state.pool

    def _require_bucket(self, bucket: str) -> Any:
        row = self._store.bucket_row(bucket)
        if row is None:
            raise no_such_bucket(bucket)
        return row

    def _receive_body(self, call: OssRequest, max_size: int) -> Received:
        """Write the request body to a new data file as it arrives, ``BODY_CHUNK`` at a time.

        On the way it computes the MD5 (the ETag) and the CRC-64, checks ``Content-MD5`` and,
        through the S3 API, ``x-amz-content-sha256``, and refuses a body over ``max_size``
        (EntityTooLarge) as soon as it is known to be one. The file is not an object yet: the
        caller installs and commits it, or it is removed (:class:`~localcloud.oss.store.NewData`).
        """
        if call.body.length is not None and call.body.length > max_size:
            raise entity_too_large(call.body.length, max_size)
        md5 = hashlib.md5()
        sha256 = hashlib.sha256() if call.body_sha256 is not None else None
        crc = 0
        new = self._store.new_data()
        try:
            while chunk := call.read(BODY_CHUNK):
                if new.size + len(chunk) > max_size:
                    raise entity_too_large(new.size + len(chunk), max_size)
                if len(chunk) < PARALLEL_THRESHOLD:
                    new.write(chunk)
                    md5.update(chunk)
                    crc = wire.crc64(chunk, crc)
                else:
                    last = call.body.length == new.size + len(chunk)
                    written = self._pool.submit(new.write, chunk, sync=last)
                    hashed = self._pool.submit(md5.update, chunk)
                    crc = wire.crc64(chunk, crc)
                    written.result()
                    hashed.result()
                if sha256 is not None:
                    sha256.update(chunk)
            wire.check_content_md5(call.header("content-md5"), md5.digest())
            if call.body_sha256 is not None and sha256 is not None:
                check_sha256(call.body_sha256, sha256.hexdigest())
        except BaseException:
            new.discard()
            raise
        return Received(new, md5.hexdigest().upper(), crc)

    def _acl_xml(self, call: OssRequest, grant: str) -> Response:
        """Get(Bucket|Object)Acl's answer: OSS's one-word ``<Grant>``, or S3's grant list when the
        request came through the S3 API (:func:`localcloud.oss.s3.acl_grants`)."""
        grants = (
            s3.acl_grants(self.account.account_id, grant)
            if s3.is_s3(call.request)
            else wire.tag("Grant", grant)
        )
        return xml_response(
            "<AccessControlPolicy>"
            + self._owner_xml()
            + f"<AccessControlList>{grants}</AccessControlList>"
            + "</AccessControlPolicy>"
        )

    @staticmethod
    def _required_acl(call: OssRequest, header: str) -> str:
        value = call.header(header)
        if not value:
            if s3.is_s3(call.request):
                raise not_implemented(
                    "Put(Bucket|Object)Acl with an AccessControlPolicy document (use a canned ACL)"
                )
            raise invalid_argument(f"This request needs the {header} header.", header, "")
        return value

    @staticmethod
    def _headers_to_store(call: OssRequest) -> dict[str, str]:
        return {
            name: value
            for name, value in call.request.headers.items()
            if name.startswith("x-oss-meta-") or name in STORED_HEADERS
        }

    @staticmethod
    def _props(call: OssRequest) -> dict[str, Any]:
        """The storage class, tags and ACL a write asks for in its headers, checked."""
        return {
            "storage_class": attributes.storage_class(call.header("x-oss-storage-class")),
            "tags": json.dumps(attributes.tags_from_header(call.header("x-oss-tagging"))),
            "acl": attributes.object_acl(call.header("x-oss-object-acl")),
            "symlink_target": None,
        }

    @staticmethod
    def _check_readable(row: Any) -> None:
        if not attributes.readable(row["storage_class"], row["restore_ready"], row["restore_expiry"]):
            raise OssError(
                403,
                "InvalidObjectState",
                f"The operation is not valid for the object's storage class {row['storage_class']}: "
                "restore it first (RestoreObject), then read it once x-oss-restore says "
                'ongoing-request="false".',
                Key=row["key"],
            )

    @staticmethod
    def _forbid_overwrite(call: OssRequest) -> bool:
        return (call.header("x-oss-forbid-overwrite") or "").lower() == "true"

    def _commit_object(
        self,
        call: OssRequest,
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
        props: dict[str, Any],
        in_transaction: Callable[[], list[str]] | None = None,
    ) -> None:
        """Make a new object version visible, with its events, in one durable transaction.

        ``props`` are the object's storage class, tags, ACL and symlink target (see
        :meth:`_props`). ``in_transaction`` runs inside the transaction and returns further data ids
        to remove once committed (multipart parts). On any failure the new data file is removed again.
        """
        obsolete: list[str] = []
        now = time.time()
        try:
            with self._store.transaction():
                if self._store.bucket_row(call.bucket) is None:
                    raise no_such_bucket(call.bucket)
                old = self._store.object_row(call.bucket, key)
                if old is not None and self._forbid_overwrite(call):
                    raise OssError(
                        409,
                        "FileAlreadyExists",
                        "The object you specified already exists and can not be overwritten.",
                        Key=key,
                    )
                if in_transaction is not None:
                    obsolete += in_transaction()
                self._store.put_object_row(
                    {
                        "bucket": call.bucket,
                        "key": key,
                        "data_id": data_id,
                        "size": size,
                        "etag": etag,
                        "crc64": str(crc),
                        "content_type": content_type,
                        "stored_headers": json.dumps(stored_headers),
                        "object_type": object_type,
                        "last_modified": now,
                        "restore_ready": None,
                        "restore_expiry": None,
                        **props,
                    },
                )
                facts = ObjectFacts(key, size, etag, content_type, user_meta(stored_headers))
                self._enqueue(call, event_name, facts, size - (old["size"] if old else 0), now)
                if old is not None:
                    obsolete.append(old["data_id"])
        except BaseException:
            self._store.remove_data([data_id])
            raise
        self._store.remove_data(obsolete)
        self._deliverer.notify()

    def _enqueue(
        self,
        call: OssRequest,
        event_name: str,
        facts: ObjectFacts,
        delta_size: int,
        now: float,
        position: int | None = None,
    ) -> None:
        """Queue the event for each matching trigger (inside the write's transaction)."""
        for trigger in self._triggers.matching(call.bucket, event_name, facts.key):
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
            self._store.add_delivery(trigger.name, json.dumps(trigger.target), payload, now)

    def _owner_xml(self) -> str:
        return f"<Owner>{wire.tag('ID', self.account.account_id)}{wire.tag('DisplayName', self.account.account_id)}</Owner>"

    def _copy_source(self, call: OssRequest) -> tuple[str, str]:
        """The ``(bucket, key)`` that ``x-oss-copy-source: /bucket/url-encoded-key`` names."""
        raw = call.header("x-oss-copy-source") or ""
        path, _, version = raw.partition("?")
        if version:
            raise not_implemented("copying a version (x-oss-copy-source with ?versionId=)")
        source = unquote(path)
        src_bucket, sep, src_key = source.lstrip("/").partition("/")
        if not source.startswith("/") or not sep or not src_key:
            raise invalid_argument(
                "x-oss-copy-source must be '/<bucket>/<url-encoded key>'.", "x-oss-copy-source", raw
            )
        wire.check_bucket_name(src_bucket)
        wire.check_key(src_key)
        self._require_bucket(src_bucket)
        return src_bucket, src_key

    @staticmethod
    def _check_copy_source_conditions(call: OssRequest, row: Any) -> None:
        """``x-oss-copy-source-if-*``: OSS answers 412 PreconditionFailed for each that fails."""
        etag = row["etag"]
        modified = int(row["last_modified"])
        failed = ""
        if_match = call.header("x-oss-copy-source-if-match")
        if_none = call.header("x-oss-copy-source-if-none-match")
        unmodified = http_time(call.header("x-oss-copy-source-if-unmodified-since"))
        since = http_time(call.header("x-oss-copy-source-if-modified-since"))
        if if_match is not None and if_match.strip().strip('"').upper() != etag:
            failed = "x-oss-copy-source-if-match"
        elif if_none is not None and if_none.strip().strip('"').upper() == etag:
            failed = "x-oss-copy-source-if-none-match"
        elif unmodified is not None and modified > unmodified:
            failed = "x-oss-copy-source-if-unmodified-since"
        elif since is not None and modified <= since:
            failed = "x-oss-copy-source-if-modified-since"
        if failed:
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
                Condition=failed,
            )

    def _open_copy_source(self, call: OssRequest) -> tuple[Any, BinaryIO]:
        src_bucket, src_key = self._copy_source(call)
        found = self._store.open_object(src_bucket, src_key)
        if found is None:
            raise no_such_key(src_key)
        row, stream = found
        try:
            self._check_copy_source_conditions(call, row)
            self._check_readable(row)
        except BaseException:
            stream.close()
            raise
        return row, stream

    def _digest_data(self, data_id: str) -> tuple[str, int]:
        """``(md5 hex, crc64)`` of a stored data file, read in chunks."""
        md5 = hashlib.md5()
        crc = 0
        with self._store.open_data(data_id) as stream:
            while chunk := stream.read(CHUNK):
                md5.update(chunk)
                crc = wire.crc64(chunk, crc)
        return md5.hexdigest().upper(), crc

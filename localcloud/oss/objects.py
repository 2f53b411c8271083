"""Object actions: write, read, copy, append and delete objects, and their tags, symlinks, ACLs
and restores."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import unquote

from localcloud.core.http import Response
from localcloud.oss import attributes, wire
from localcloud.oss.actions import CHUNK, MAX_OBJECT_SIZE, STREAM_THRESHOLD, Actions
from localcloud.oss.call import MAX_KEYS, OssRequest, http_time, parse_xml, user_meta, xml_response
from localcloud.oss.errors import OssError, invalid_argument, malformed_xml, no_such_bucket, no_such_key
from localcloud.oss.events import ObjectFacts

#: Query parameters of GetObject that set a response header.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


class Objects(Actions):
    def put_object(self, call: OssRequest) -> Response:
        self._require_bucket(call.bucket)
        props = self._props(call)
        received = self._receive_body(call, MAX_OBJECT_SIZE)
        etag, crc = received.etag, received.crc
        with received.data:
            data_id = received.data.install()
        self._commit_object(
            call,
            key=call.key,
            data_id=data_id,
            size=received.size,
            etag=etag,
            crc=crc,
            content_type=call.header("content-type") or "application/octet-stream",
            stored_headers=self._headers_to_store(call),
            object_type="Normal",
            event_name="ObjectCreated:PutObject",
            props=props,
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
            "x-oss-storage-class": row["storage_class"],
            "x-oss-hash-crc64ecma": row["crc64"],
            **json.loads(row["stored_headers"]),
        }
        if row["object_type"] == "Appendable":
            headers["x-oss-next-append-position"] = str(row["size"])
        tag_count = len(json.loads(row["tags"]))
        if tag_count:
            headers["x-oss-tagging-count"] = str(tag_count)
        restore = attributes.restore_header(row["storage_class"], row["restore_ready"], row["restore_expiry"])
        if restore is not None:
            headers["x-oss-restore"] = restore
        return headers

    def _check_conditions(self, call: OssRequest, row: Any) -> None:
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
        unmodified = http_time(call.header("if-unmodified-since"))
        if unmodified is not None and modified > unmodified:
            raise OssError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
                Condition="If-Unmodified-Since",
            )
        if_none = call.header("if-none-match")
        since = http_time(call.header("if-modified-since"))
        if (if_none is not None and if_none.strip() in (etag, row["etag"], "*")) or (
            since is not None and modified <= since
        ):
            error = OssError(304, "NotModified", "Not Modified")
            error.headers = {"ETag": etag, "Last-Modified": wire.http_date(row["last_modified"])}
            raise error

    def _open(self, call: OssRequest) -> tuple[Any, BinaryIO, Any | None]:
        """The object's row and bytes, through a symlink; the third item is the link's row.

        A link is followed one level: a link whose target is itself a link is refused (OSS
        documents links to objects only; UNCONFIRMED which error it answers, this one says why).
        A link whose target is missing answers 404 NoSuchKey naming the target.
        """
        self._require_bucket(call.bucket)
        found = self._store.open_object(call.bucket, call.key)
        if found is None:
            raise no_such_key(call.key)
        row, stream = found
        if row["symlink_target"] is None:
            return row, stream, None
        stream.close()
        link = row
        target = self._store.open_object(call.bucket, link["symlink_target"])
        if target is None:
            error = no_such_key(link["symlink_target"])
            error.message = (
                f"The symlink {call.key!r} points to {link['symlink_target']!r}, which does not exist."
            )
            raise error
        if target[0]["symlink_target"] is not None:
            target[1].close()
            raise OssError(
                400,
                "InvalidTargetType",
                f"The symlink {call.key!r} points to {link['symlink_target']!r}, which is itself a symlink; "
                "OSS follows one link only.",
                Key=call.key,
            )
        return target[0], target[1], link

    def _read_headers(self, row: Any, link: Any | None) -> dict[str, str]:
        headers = self._object_headers(row)
        if link is not None:
            # Through a link: the target's bytes and checksums, the link's own type and metadata.
            headers.update(json.loads(link["stored_headers"]))
            headers["x-oss-object-type"] = "Symlink"
            headers["Last-Modified"] = wire.http_date(max(row["last_modified"], link["last_modified"]))
        return headers

    def get_object(self, call: OssRequest) -> Response:
        row, stream, link = self._open(call)
        try:
            self._check_readable(row)
            self._check_conditions(call, row)
            size = row["size"]
            standard = (call.header("x-oss-range-behavior") or "").lower() == "standard"
            byte_range = wire.parse_range(call.header("range"), size, standard)
            headers = self._read_headers(row, link)
            for param, header in RESPONSE_OVERRIDES.items():
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

    def head_object(self, call: OssRequest) -> Response:
        """HeadObject. Unlike GetObject it answers for an unrestored Archive object too, with its
        ``x-oss-restore`` state, as OSS does."""
        row, stream, link = self._open(call)
        stream.close()
        self._check_conditions(call, row)
        headers = self._read_headers(row, link)
        headers["Content-Length"] = str(row["size"])
        return Response(200, headers)

    def get_object_meta(self, call: OssRequest) -> Response:
        row, stream, _ = self._open(call)
        stream.close()
        return Response(
            200,
            {
                "ETag": f'"{row["etag"]}"',
                "Content-Length": str(row["size"]),
                "Last-Modified": wire.http_date(row["last_modified"]),
            },
        )

    def _delete_keys(self, call: OssRequest, keys: list[str], event_name: str) -> list[str]:
        """Delete ``keys`` (missing ones count as deleted, as in OSS) and emit their events."""
        obsolete: list[str] = []
        now = time.time()
        with self._store.transaction():
            if self._store.bucket_row(call.bucket) is None:
                raise no_such_bucket(call.bucket)
            for key in keys:
                row = self._store.object_row(call.bucket, key)
                if row is None:
                    continue
                self._store.remove_object(call.bucket, key)
                obsolete.append(row["data_id"])
                stored = json.loads(row["stored_headers"])
                facts = ObjectFacts(key, row["size"], row["etag"], row["content_type"], user_meta(stored))
                self._enqueue(call, event_name, facts, -row["size"], now)
        self._store.remove_data(obsolete)
        self._deliverer.notify()
        return keys

    def delete_object(self, call: OssRequest) -> Response:
        self._delete_keys(call, [call.key], "ObjectRemoved:DeleteObject")
        return Response(204)

    def delete_multiple_objects(self, call: OssRequest) -> Response:
        body = call.document()
        wire.check_content_md5(call.header("content-md5"), hashlib.md5(body).digest())
        root = parse_xml(body, "Delete")
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        if not keys or len(keys) > MAX_KEYS:
            raise malformed_xml(
                f"<Delete> must list 1 to {MAX_KEYS} <Object><Key> elements, found {len(keys)}"
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
        return xml_response(
            "<DeleteResult>"
            + (wire.tag("EncodingType", "url") if encode else "")
            + listed
            + "</DeleteResult>"
        )

    def copy_object(self, call: OssRequest) -> Response:
        """CopyObject. A symlink source copies the link itself (OSS does the same); an Archive or
        ColdArchive source must be restored first."""
        directive = (call.header("x-oss-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise invalid_argument(
                "x-oss-metadata-directive must be COPY or REPLACE.", "x-oss-metadata-directive", directive
            )
        tagging_directive = (call.header("x-oss-tagging-directive") or "Copy").capitalize()
        if tagging_directive not in ("Copy", "Replace"):
            raise invalid_argument(
                "x-oss-tagging-directive must be Copy or Replace.",
                "x-oss-tagging-directive",
                call.header("x-oss-tagging-directive") or "",
            )
        self._require_bucket(call.bucket)
        props = self._props(call)
        row, stream = self._open_copy_source(call)
        with stream:
            data_id = self._store.concat_data([(stream, row["size"])])
        if directive == "COPY":
            content_type, stored = row["content_type"], json.loads(row["stored_headers"])
        else:
            content_type = call.header("content-type") or "application/octet-stream"
            stored = self._headers_to_store(call)
        if tagging_directive == "Copy":
            props["tags"] = row["tags"]
        if not call.header("x-oss-storage-class"):
            props["storage_class"] = row["storage_class"]
        props["symlink_target"] = row["symlink_target"]
        self._commit_object(
            call,
            key=call.key,
            data_id=data_id,
            size=row["size"],
            etag=row["etag"],
            crc=int(row["crc64"]),
            content_type=content_type,
            stored_headers=stored,
            object_type="Symlink" if row["symlink_target"] is not None else "Normal",
            event_name="ObjectCreated:CopyObject",
            props=props,
        )
        body = (
            "<CopyObjectResult>"
            + wire.tag("LastModified", wire.iso_time(time.time()))
            + wire.tag("ETag", f'"{row["etag"]}"')
            + "</CopyObjectResult>"
        )
        return xml_response(body, headers={"ETag": f'"{row["etag"]}"', "x-oss-hash-crc64ecma": row["crc64"]})

    def append_object(self, call: OssRequest) -> Response:
        """AppendObject. The body is written to a new data file first, outside the transaction (a
        slow client holds no lock); inside it, the position is checked again and the bytes are
        copied after the object's committed size (or the file becomes the new object's)."""
        position_text = call.params.get("position", "")
        if not position_text.isdigit():
            raise invalid_argument("position must be a non-negative integer.", "position", position_text)
        position = int(position_text)
        self._require_bucket(call.bucket)
        # Refused before the body is read when it already cannot fit; checked again below.
        self._append_target(call, position)
        received = self._receive_body(call, MAX_OBJECT_SIZE - position)
        now = time.time()
        # Appends to one key are serialised from the position check to the commit.
        with received.data, self._store.transaction():
            row = self._append_target(call, position)
            if row is None:
                data_id = received.data.install()
                etag, crc = received.etag, received.crc
                content_type = call.header("content-type") or "application/octet-stream"
                stored = self._headers_to_store(call)
            else:
                data_id = row["data_id"]
                with received.data.reader() as appended:
                    self._store.append_data(data_id, position, appended, received.size)
                etag = wire.md5_hex(bytes.fromhex(row["etag"]) + bytes.fromhex(received.etag))
                crc = wire.crc64_combine(int(row["crc64"]), received.crc, received.size)
                content_type, stored = row["content_type"], json.loads(row["stored_headers"])
            size = position + received.size
            props = (
                self._props(call)
                if row is None
                else {name: row[name] for name in ("storage_class", "tags", "acl", "symlink_target")}
            )
            self._store.put_object_row(
                {
                    "bucket": call.bucket,
                    "key": call.key,
                    "data_id": data_id,
                    "size": size,
                    "etag": etag,
                    "crc64": str(crc),
                    "content_type": content_type,
                    "stored_headers": json.dumps(stored),
                    "object_type": "Appendable",
                    "last_modified": now,
                    "restore_ready": None,
                    "restore_expiry": None,
                    **props,
                },
            )
            facts = ObjectFacts(call.key, size, etag, content_type, user_meta(stored))
            self._enqueue(call, "ObjectCreated:AppendObject", facts, received.size, now, position=position)
        self._deliverer.notify()
        return Response(
            200,
            {"ETag": f'"{etag}"', "x-oss-next-append-position": str(size), "x-oss-hash-crc64ecma": str(crc)},
        )

    def _append_target(self, call: OssRequest, position: int) -> Any:
        """The appendable object's row (``None`` when the key is new), if ``position`` is its length."""
        row = self._store.object_row(call.bucket, call.key)
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
        return row

    def _object_row(self, call: OssRequest) -> Any:
        self._require_bucket(call.bucket)
        row = self._store.object_row(call.bucket, call.key)
        if row is None:
            raise no_such_key(call.key)
        return row

    def put_object_tagging(self, call: OssRequest) -> Response:
        """PutObjectTagging: replaces the object's tags; Last-Modified does not change (as in OSS)."""
        self._object_row(call)
        root = parse_xml(call.document(), "Tagging")
        pairs = [
            ((tag.findtext("Key") or ""), (tag.findtext("Value") or "")) for tag in root.findall("TagSet/Tag")
        ]
        tags = attributes.check_tags(pairs)
        self._store.set_object_columns(call.bucket, call.key, tags=json.dumps(tags))
        return Response(200)

    def get_object_tagging(self, call: OssRequest) -> Response:
        row = self._object_row(call)
        tags = json.loads(row["tags"])
        body = (
            "<Tagging><TagSet>"
            + "".join(f"<Tag>{wire.tag('Key', k)}{wire.tag('Value', v)}</Tag>" for k, v in tags.items())
            + "</TagSet></Tagging>"
        )
        return xml_response(body)

    def delete_object_tagging(self, call: OssRequest) -> Response:
        self._object_row(call)
        self._store.set_object_columns(call.bucket, call.key, tags="{}")
        return Response(204)

    def put_symlink(self, call: OssRequest) -> Response:
        """PutSymlink: the target need not exist (OSS does not check it either)."""
        self._require_bucket(call.bucket)
        raw_target = call.header("x-oss-symlink-target")
        if not raw_target:
            raise invalid_argument(
                "PutSymlink needs x-oss-symlink-target: the URL-encoded key the link points to.",
                "x-oss-symlink-target",
                "",
            )
        target = unquote(raw_target)
        wire.check_key(target)
        props = self._props(call)
        props["symlink_target"] = target
        etag = wire.md5_hex(target.encode("utf-8"))
        self._commit_object(
            call,
            key=call.key,
            data_id=self._store.write_data(b""),
            size=0,
            etag=etag,
            crc=0,
            content_type=call.header("content-type") or "application/octet-stream",
            stored_headers=self._headers_to_store(call),
            object_type="Symlink",
            event_name="ObjectCreated:PutSymlink",
            props=props,
        )
        return Response(200, {"ETag": f'"{etag}"'})

    def get_symlink(self, call: OssRequest) -> Response:
        row = self._object_row(call)
        if row["symlink_target"] is None:
            raise OssError(400, "NotSymlink", "The specified object is not a symlink.", Key=call.key)
        return Response(
            200,
            {
                "x-oss-symlink-target": wire.url_encode(row["symlink_target"], True),
                "ETag": f'"{row["etag"]}"',
                "Last-Modified": wire.http_date(row["last_modified"]),
                **{k: v for k, v in json.loads(row["stored_headers"]).items() if k.startswith("x-oss-meta-")},
            },
        )

    def get_object_acl(self, call: OssRequest) -> Response:
        return self._acl_xml(call, self._object_row(call)["acl"])

    def put_object_acl(self, call: OssRequest) -> Response:
        """PutObjectAcl (``x-oss-object-acl``): stored and reported, not enforced (see PutBucketAcl)."""
        acl = attributes.object_acl(self._required_acl(call, "x-oss-object-acl"))
        self._object_row(call)
        self._store.set_object_columns(call.bucket, call.key, acl=acl)
        return Response(200)

    def restore_object(self, call: OssRequest) -> Response:
        """RestoreObject: the copy is readable ``restore_delay`` seconds later (the cloud takes
        minutes to hours) and for ``Days`` days (default 1). A second request while one is running
        answers 409 RestoreAlreadyInProgress; one after it finished extends the expiry (200)."""
        row = self._object_row(call)
        if row["storage_class"] not in attributes.ARCHIVED_CLASSES:
            raise OssError(
                400,
                "OperationNotSupported",
                f"RestoreObject is for Archive, ColdArchive and DeepColdArchive objects; {call.key!r} is "
                f"{row['storage_class']}.",
                Key=call.key,
            )
        days = attributes.DEFAULT_RESTORE_DAYS
        if call.document().strip():
            root = parse_xml(call.document(), "RestoreRequest")
            days_text = (root.findtext("Days") or str(days)).strip()
            if not days_text.isdigit() or not 1 <= int(days_text) <= 365:
                raise malformed_xml(f"Days must be an integer from 1 to 365, not {days_text!r}")
            days = int(days_text)
        now = time.time()
        ready, expiry = row["restore_ready"], row["restore_expiry"]
        if ready is not None and now < ready:
            raise OssError(
                409, "RestoreAlreadyInProgress", "The restore operation is in progress.", Key=call.key
            )
        if ready is not None and expiry is not None and now < expiry:
            self._store.set_object_columns(call.bucket, call.key, restore_expiry=now + days * 86400)
            return Response(200)
        self._store.set_object_columns(
            call.bucket,
            call.key,
            restore_ready=now + self.state.restore_delay,
            restore_expiry=now + self.state.restore_delay + days * 86400,
        )
        return Response(202)


def _stream(stream: BinaryIO, length: int) -> Iterator[bytes]:
    with stream:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

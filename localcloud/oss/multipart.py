"""Multipart upload actions: initiate, upload (or copy) parts, list, complete, abort."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from localcloud.core.http import Response
from localcloud.oss import wire
from localcloud.oss.actions import MAX_OBJECT_SIZE, Actions
from localcloud.oss.call import OssRequest, int_param, parse_xml, xml_response
from localcloud.oss.errors import OssError, invalid_argument, malformed_xml, no_such_upload

#: OSS's smallest part, except for the last one.
MIN_PART_SIZE = 100 * 1024


class Multipart(Actions):
    def _require_upload(self, call: OssRequest) -> Any:
        upload_id = call.params.get("uploadId", "")
        row = self._store.upload_row(upload_id, call.bucket, call.key)
        if row is None:
            self._require_bucket(call.bucket)
            raise no_such_upload(upload_id)
        return row

    def initiate_multipart_upload(self, call: OssRequest) -> Response:
        self._require_bucket(call.bucket)
        if self._forbid_overwrite(call) and self._store.object_row(call.bucket, call.key) is not None:
            raise OssError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
                Key=call.key,
            )
        props = self._props(call)
        # Ids sort in the order uploads began (time first), as ListMultipartUploads lists them.
        upload_id = f"{time.time_ns():020X}" + wire.new_request_id()
        with self._store.transaction():
            self._store.add_upload(
                {
                    "upload_id": upload_id,
                    "bucket": call.bucket,
                    "key": call.key,
                    "initiated": time.time(),
                    "content_type": call.header("content-type") or "application/octet-stream",
                    "stored_headers": json.dumps(self._headers_to_store(call)),
                    "storage_class": props["storage_class"],
                    "tags": props["tags"],
                    "acl": props["acl"],
                }
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
        return xml_response(body)

    def upload_part(self, call: OssRequest) -> Response:
        upload = self._require_upload(call)
        number = int_param(call.params, "partNumber", None, 1, 10000)
        received = self._receive_body(call, MAX_OBJECT_SIZE)
        with received.data:
            data_id = received.data.install()
        self._save_part(upload["upload_id"], number, data_id, received.size, received.etag, received.crc)
        return Response(200, {"ETag": f'"{received.etag}"', "x-oss-hash-crc64ecma": str(received.crc)})

    def _save_part(self, upload_id: str, number: int, data_id: str, size: int, etag: str, crc: int) -> None:
        try:
            with self._store.transaction():
                if self._store.upload_row(upload_id) is None:
                    raise no_such_upload(upload_id)
                old = self._store.part_row(upload_id, number)
                self._store.put_part(upload_id, number, data_id, size, etag, crc, time.time())
        except BaseException:
            self._store.remove_data([data_id])
            raise
        if old is not None:
            self._store.remove_data([old["data_id"]])

    def upload_part_copy(self, call: OssRequest) -> Response:
        """UploadPartCopy: a part made of a source object's bytes, or of ``x-oss-copy-source-range``.

        A range must lie inside the source (``bytes=first-last``, both given); OSS refuses one that
        does not, and so does this. An Appendable source is copied (the cloud refuses it).
        """
        upload = self._require_upload(call)
        number = int_param(call.params, "partNumber", None, 1, 10000)
        row, stream = self._open_copy_source(call)
        with stream:
            start, length = copy_range(call.header("x-oss-copy-source-range"), row["size"])
            stream.seek(start)
            data_id = self._store.concat_data([(stream, length)])
        try:
            etag, crc = self._digest_data(data_id)
        except BaseException:
            self._store.remove_data([data_id])
            raise
        self._save_part(upload["upload_id"], number, data_id, length, etag, crc)
        body = (
            "<CopyPartResult>"
            + wire.tag("LastModified", wire.iso_time(time.time()))
            + wire.tag("ETag", f'"{etag}"')
            + "</CopyPartResult>"
        )
        return xml_response(body, headers={"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)})

    def list_multipart_uploads(self, call: OssRequest) -> Response:
        """ListMultipartUploads: uploads in key order, those of one key in the order they began."""
        self._require_bucket(call.bucket)
        prefix = call.params.get("prefix", "")
        delimiter = call.params.get("delimiter", "")
        key_marker = call.params.get("key-marker", "")
        id_marker = call.params.get("upload-id-marker", "") if key_marker else ""
        max_uploads = int_param(call.params, "max-uploads", 1000, 1, 1000)
        encoding = call.params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise invalid_argument("encoding-type must be 'url' when given.", "encoding-type", encoding)
        encode = encoding == "url"
        uploads: list[Any] = []
        prefixes: list[str] = []
        truncated = False
        next_key = next_id = ""
        for row in self._store.list_uploads(call.bucket, prefix, key_marker, id_marker):
            key = row["key"]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            common = key[: cut + len(delimiter)] if cut >= 0 else None
            if common is not None and (common in prefixes or common <= key_marker):
                continue
            if len(uploads) + len(prefixes) == max_uploads:
                truncated = True
                break
            if common is not None:
                prefixes.append(common)
                next_key, next_id = common, ""
            else:
                uploads.append(row)
                next_key, next_id = key, row["upload_id"]
        body = (
            "<ListMultipartUploadsResult>"
            + wire.tag("Bucket", call.bucket)
            + (wire.tag("EncodingType", "url") if encode else "")
            + wire.tag("KeyMarker", wire.url_encode(key_marker, encode))
            + wire.tag("UploadIdMarker", id_marker)
            + wire.tag("NextKeyMarker", wire.url_encode(next_key if truncated else "", encode))
            + wire.tag("NextUploadIdMarker", next_id if truncated else "")
            + wire.tag("Delimiter", wire.url_encode(delimiter, encode))
            + wire.tag("Prefix", wire.url_encode(prefix, encode))
            + wire.tag("MaxUploads", max_uploads)
            + wire.tag("IsTruncated", str(truncated).lower())
            + "".join(
                "<Upload>"
                + wire.tag("Key", wire.url_encode(r["key"], encode))
                + wire.tag("UploadId", r["upload_id"])
                + wire.tag("StorageClass", r["storage_class"])
                + wire.tag("Initiated", wire.iso_time(r["initiated"]))
                + "</Upload>"
                for r in uploads
            )
            + "".join(
                f"<CommonPrefixes>{wire.tag('Prefix', wire.url_encode(p, encode))}</CommonPrefixes>"
                for p in prefixes
            )
            + "</ListMultipartUploadsResult>"
        )
        return xml_response(body)

    def complete_multipart_upload(self, call: OssRequest) -> Response:
        upload = self._require_upload(call)
        upload_id = upload["upload_id"]
        stored_parts = {row["part_number"]: row for row in self._store.parts(upload_id)}
        if (call.header("x-oss-complete-all") or "").lower() == "yes":
            if call.document().strip():
                raise invalid_argument(
                    "With x-oss-complete-all: yes the body must be empty.", "x-oss-complete-all", "yes"
                )
            chosen = [stored_parts[n] for n in sorted(stored_parts)]
        else:
            chosen = self._chosen_parts(call.document(), stored_parts)
        if not chosen:
            raise malformed_xml("a multipart upload needs at least one part")
        for part in chosen[:-1]:
            if part["size"] < MIN_PART_SIZE:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    f"Your proposed upload smaller than the minimum allowed size: part {part['part_number']} "
                    f"is {part['size']} bytes; every part but the last needs at least {MIN_PART_SIZE}.",
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

        def finish_upload() -> list[str]:
            if self._store.upload_row(upload_id) is None:
                raise no_such_upload(upload_id)
            return self._store.remove_upload(upload_id)

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
            props={
                "storage_class": upload["storage_class"],
                "tags": upload["tags"],
                "acl": upload["acl"],
                "symlink_target": None,
            },
            in_transaction=finish_upload,
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
        return xml_response(body, headers={"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)})

    @staticmethod
    def _chosen_parts(body: bytes, stored: dict[int, Any]) -> list[Any]:
        root = parse_xml(body, "CompleteMultipartUpload")
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

    def abort_multipart_upload(self, call: OssRequest) -> Response:
        upload = self._require_upload(call)
        with self._store.transaction():
            part_ids = self._store.remove_upload(upload["upload_id"])
        self._store.remove_data(part_ids)
        return Response(204)

    def list_parts(self, call: OssRequest) -> Response:
        upload = self._require_upload(call)
        max_parts = int_param(call.params, "max-parts", 1000, 1, 1000)
        marker = int_param(call.params, "part-number-marker", 0, 0, 10000)
        rows = self._store.parts(upload["upload_id"], after=marker, limit=max_parts + 1)
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
        return xml_response(body)


def copy_range(header: str | None, size: int) -> tuple[int, int]:
    """``(start, length)`` of ``x-oss-copy-source-range: bytes=first-last`` (the whole source when absent)."""
    if header is None:
        return 0, size
    match = re.fullmatch(r"\s*bytes=(\d+)-(\d+)\s*", header)
    if not match or int(match.group(1)) > int(match.group(2)) or int(match.group(2)) >= size:
        raise invalid_argument(
            f"x-oss-copy-source-range must be bytes=first-last inside the source object ({size} bytes: "
            f"0-{size - 1}).",
            "x-oss-copy-source-range",
            header,
        )
    start, end = int(match.group(1)), int(match.group(2))
    return start, end - start + 1

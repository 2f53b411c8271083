"""Bucket actions: create, delete, describe, ACL, and listing a bucket's objects."""

from __future__ import annotations

import base64
import time
from typing import Any

from localcloud.core.http import Response
from localcloud.oss import attributes, wire
from localcloud.oss.actions import Actions
from localcloud.oss.call import MAX_KEYS, OssRequest, int_param, parse_xml, xml_response
from localcloud.oss.errors import OssError, invalid_argument, no_such_bucket


class Buckets(Actions):
    @staticmethod
    def _endpoint(call: OssRequest) -> str:
        """The endpoint ListBuckets and GetBucketInfo name: the address this request came to.

        The cloud names ``oss-<region>.aliyuncs.com`` (and its ``-internal`` form); a client that
        follows those, as the SDKs' helpers do, would leave the machine. Locally both are the
        Host the client used, which it can reach. A virtual-host name (``bucket.localhost:port``)
        is cut back to the endpoint part.
        """
        host = call.header("host") or "127.0.0.1"
        if call.bucket and host.startswith(call.bucket + "."):
            host = host[len(call.bucket) + 1 :]
        return host

    def _bucket_xml(self, row: Any, endpoint: str) -> str:
        region = self.account.region
        return (
            "<Bucket>"
            + wire.tag("CreationDate", wire.iso_time(row["created"]))
            + wire.tag("ExtranetEndpoint", endpoint)
            + wire.tag("IntranetEndpoint", endpoint)
            + wire.tag("Location", f"oss-{region}")
            + wire.tag("Name", row["name"])
            + wire.tag("Region", region)
            + wire.tag("StorageClass", row["storage_class"])
            + "</Bucket>"
        )

    def list_buckets(self, call: OssRequest) -> Response:
        prefix = call.params.get("prefix", "")
        marker = call.params.get("marker", "")
        max_keys = int_param(call.params, "max-keys", 100, 1, MAX_KEYS)
        rows = self._store.list_buckets(prefix, marker, max_keys + 1)
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
            + "".join(self._bucket_xml(r, self._endpoint(call)) for r in rows)
            + "</Buckets></ListAllMyBucketsResult>"
        )
        return xml_response(body)

    def put_bucket(self, call: OssRequest) -> Response:
        storage_class = "Standard"
        if call.document().strip():
            root = parse_xml(call.document(), "CreateBucketConfiguration")
            storage_class = attributes.storage_class(root.findtext("StorageClass"), header="StorageClass")
        acl = attributes.bucket_acl(call.header("x-oss-acl"))
        with self._store.transaction():
            existing = self._store.bucket_row(call.bucket)
            if existing is not None:
                if existing["storage_class"] != storage_class:
                    raise OssError(
                        409,
                        "BucketAlreadyExists",
                        "Cannot modify existing bucket's storage class.",
                        BucketName=call.bucket,
                    )
            else:
                self._store.add_bucket(call.bucket, time.time(), storage_class, acl)
        return Response(200, {"Location": f"/{call.bucket}"})

    def delete_bucket(self, call: OssRequest) -> Response:
        with self._store.transaction():
            if self._store.bucket_row(call.bucket) is None:
                raise no_such_bucket(call.bucket)
            if self._store.bucket_in_use(call.bucket):
                raise OssError(
                    409,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty. Delete its objects and abort its "
                    "multipart uploads first.",
                    BucketName=call.bucket,
                )
            # Deleting a bucket deletes its notification rules, so its triggers go too.
            self._store.remove_bucket(call.bucket)
        self._triggers.forget_bucket(call.bucket)
        return Response(204)

    def get_bucket_info(self, call: OssRequest) -> Response:
        row = self._require_bucket(call.bucket)
        region = self.account.region
        body = (
            "<BucketInfo><Bucket>"
            + wire.tag("AccessMonitor", "Disabled")
            + wire.tag("CreationDate", wire.iso_time(row["created"]))
            + wire.tag("ExtranetEndpoint", self._endpoint(call))
            + wire.tag("IntranetEndpoint", self._endpoint(call))
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
        return xml_response(body)

    def get_bucket_location(self, call: OssRequest) -> Response:
        self._require_bucket(call.bucket)
        return xml_response(wire.tag("LocationConstraint", f"oss-{self.account.region}"))

    def get_bucket_acl(self, call: OssRequest) -> Response:
        return self._acl_xml(call, self._require_bucket(call.bucket)["acl"])

    def put_bucket_acl(self, call: OssRequest) -> Response:
        """PutBucketAcl: stored and reported. There is one account locally, and every request is
        signed with its key pair, so the ACL grants nothing more: anonymous requests stay refused
        whatever the ACL says (the cloud would serve a public-read bucket's objects to anyone)."""
        acl = attributes.bucket_acl(self._required_acl(call, "x-oss-acl"))
        with self._store.transaction():
            if not self._store.set_bucket_acl(call.bucket, acl):
                raise no_such_bucket(call.bucket)
        return Response(200)

    def list_live_channel(self, call: OssRequest) -> Response:
        """ListLiveChannel: always empty; the local OSS has no RTMP ingest, so PutLiveChannel
        answers 501 and no channel can exist."""
        self._require_bucket(call.bucket)
        return xml_response(
            "<ListLiveChannelResult>"
            + wire.tag("Prefix", call.params.get("prefix", ""))
            + wire.tag("Marker", call.params.get("marker", ""))
            + wire.tag("MaxKeys", int_param(call.params, "max-keys", 100, 1, 1000))
            + wire.tag("IsTruncated", "false")
            + wire.tag("NextMarker", "")
            + "</ListLiveChannelResult>"
        )

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
            rows = self._store.objects_from(bucket, bound, inclusive, 200)
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
            + wire.tag("StorageClass", row["storage_class"])
            + (self._owner_xml() if owner else "")
            + "</Contents>"
        )

    def _list_params(self, call: OssRequest) -> tuple[str, str, int]:
        self._require_bucket(call.bucket)
        encoding = call.params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise invalid_argument("encoding-type must be 'url' when given.", "encoding-type", encoding)
        return (
            call.params.get("prefix", ""),
            call.params.get("delimiter", ""),
            int_param(call.params, "max-keys", 100, 0, MAX_KEYS),
        )

    def list_objects(self, call: OssRequest) -> Response:
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
        return xml_response(body)

    def list_objects_v2(self, call: OssRequest) -> Response:
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
        return xml_response(body)

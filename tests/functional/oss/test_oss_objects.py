"""Object and bucket actions through oss2 (v1 and v4 signatures), including their errors."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import oss2
import pytest
from oss2.models import PartInfo

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer

KEYS = [
    "plain.txt",
    "dir/sub/with space.txt",
    "plus+sign.bin",
    "per%cent.bin",
    "unicode/é中文.jpg",
    "a~b!c'd(e)*",
]


def test_bucket_lifecycle(auth: oss2.AuthBase, oss_server: ServiceServer, account: Account) -> None:
    service = oss2.Service(auth, oss_server.url, region=account.region)
    bucket = oss2.Bucket(auth, oss_server.url, "life-cycle-1", region=account.region)
    bucket.create_bucket()
    bucket.create_bucket()  # the owner creating it again is not an error
    assert "life-cycle-1" in [b.name for b in service.list_buckets().buckets]
    info = bucket.get_bucket_info()
    assert (info.name, info.location, info.storage_class) == (
        "life-cycle-1",
        f"oss-{account.region}",
        "Standard",
    )
    assert bucket.get_bucket_location().location == f"oss-{account.region}"
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.create_bucket(
            oss2.BUCKET_ACL_PRIVATE, oss2.models.BucketCreateConfig(oss2.BUCKET_STORAGE_CLASS_IA)
        )
    assert (exc.value.status, exc.value.code) == (409, "BucketAlreadyExists")
    bucket.put_object("x", b"1")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        bucket.delete_bucket()
    bucket.delete_object("x")
    bucket.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        bucket.get_bucket_info()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        bucket.put_object("x", b"1")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        bucket.delete_bucket()


@pytest.mark.parametrize("name", ["ab", "Upper", "-dash", "dash-", "under_score", "x" * 64])
def test_invalid_bucket_names(
    auth: oss2.AuthBase, oss_server: ServiceServer, account: Account, name: str
) -> None:
    bucket = oss2.Bucket(auth, oss_server.url, "valid-name", region=account.region)
    bucket.bucket_name = name  # oss2 checks names too; set it afterwards so that the server sees it
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.create_bucket()
    assert (exc.value.status, exc.value.code) == (400, "InvalidBucketName")


@pytest.mark.parametrize("key", KEYS)
def test_put_get_head_round_trip(bucket: oss2.Bucket, key: str, tmp_path: Path) -> None:
    data = os.urandom(3000)
    result = bucket.put_object(
        key,
        data,
        headers={"Content-Type": "image/jpeg", "x-oss-meta-owner": "alice", "Cache-Control": "no-cache"},
    )
    md5 = hashlib.md5(data).hexdigest().upper()
    assert result.etag == md5
    assert result.resp.headers["ETag"] == f'"{md5}"'
    assert result.crc is not None  # oss2 compared it with its own CRC (enable_crc is on)
    request_id = result.resp.headers["x-oss-request-id"]
    assert len(request_id) == 24 and request_id == request_id.upper()
    assert result.resp.headers["Server"] == "AliyunOSS"

    got = bucket.get_object(key)
    assert got.read() == data
    assert got.content_type == "image/jpeg"
    assert got.headers["x-oss-meta-owner"] == "alice"
    assert got.headers["Cache-Control"] == "no-cache"
    assert got.headers["x-oss-object-type"] == "Normal"
    assert got.headers["Last-Modified"].endswith("GMT")

    head = bucket.head_object(key)
    assert (head.content_length, head.etag, head.object_type) == (3000, md5, "Normal")
    meta = bucket.get_object_meta(key)
    assert (meta.content_length, meta.etag) == (3000, md5)
    assert bucket.object_exists(key)
    assert [o.key for o in bucket.list_objects_v2(prefix=key).object_list] == [key]

    path = tmp_path / "download"
    bucket.get_object_to_file(key, str(path))  # checks the whole-object CRC
    assert path.read_bytes() == data


def test_range_reads(bucket: oss2.Bucket) -> None:
    data = bytes(range(256)) * 4
    bucket.put_object("r.bin", data)
    part = bucket.get_object("r.bin", byte_range=(10, 19))
    assert part.status == 206 and part.read() == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert bucket.get_object("r.bin", byte_range=(1000, None)).read() == data[1000:]
    assert bucket.get_object("r.bin", byte_range=(None, 24)).read() == data[-24:]
    # OSS ignores an out-of-range Range unless asked for standard behaviour.
    whole = bucket.get_object("r.bin", byte_range=(5000, 6000))
    assert whole.status == 200 and whole.read() == data
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.get_object("r.bin", byte_range=(5000, 6000), headers={"x-oss-range-behavior": "standard"})
    assert (exc.value.status, exc.value.code) == (416, "InvalidRange")
    clipped = bucket.get_object(
        "r.bin", byte_range=(1000, 5000), headers={"x-oss-range-behavior": "standard"}
    )
    assert clipped.status == 206 and clipped.read() == data[1000:]


def test_big_object_streams_and_checks_crc(bucket: oss2.Bucket, tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    bucket.put_object("big.bin", data)
    path = os.path.join(tmp_path, "big.bin")
    bucket.get_object_to_file("big.bin", path)
    with open(path, "rb") as f:
        assert f.read() == data
    assert bucket.get_object("big.bin", byte_range=(2_000_000, 2_000_009)).read() == data[2_000_000:2_000_010]


def test_object_errors(bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as exc:
        bucket.get_object("missing")
    assert exc.value.message == "The specified key does not exist."
    assert exc.value.details["Key"] == "missing"
    assert len(exc.value.request_id) == 24
    with pytest.raises(oss2.exceptions.NoSuchKey):  # HEAD: read from the x-oss-err header
        bucket.head_object("missing")
    assert not bucket.object_exists("missing")
    bucket.put_object("once", b"1")
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.put_object("once", b"2", headers={"x-oss-forbid-overwrite": "true"})
    assert (exc.value.status, exc.value.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("once").read() == b"1"
    bucket.put_object("once", b"3", headers={"x-oss-forbid-overwrite": "false"})
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("md5", b"data", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()})
    bucket.delete_object("missing")  # deleting a missing key succeeds, as in OSS


# Keys with ".." segments are legal OSS keys: see test_oss_signatures_and_names.py.
@pytest.mark.parametrize("key", ["x" * 1024, "é" * 512])
def test_invalid_object_names(bucket: oss2.Bucket, key: str) -> None:
    with pytest.raises(oss2.exceptions.InvalidObjectName):
        bucket.put_object(key, b"x")


@pytest.mark.parametrize("key", ["/leading-slash", "\\leading-backslash", "nul\x00byte"])
def test_invalid_object_names_unchecked_by_sdk(bucket: oss2.Bucket, key: str) -> None:
    strict = oss2.Bucket(
        bucket.auth, bucket.endpoint, bucket.bucket_name, region=bucket.region, is_verify_object_strict=False
    )
    with pytest.raises(oss2.exceptions.InvalidObjectName):
        strict.put_object(key, b"x")


def test_copy_object(bucket: oss2.Bucket) -> None:
    bucket.put_object(
        "src/a b+c.txt", b"copy me", headers={"Content-Type": "text/plain", "x-oss-meta-k": "v"}
    )
    result = bucket.copy_object(bucket.bucket_name, "src/a b+c.txt", "dst/copy.txt")
    assert result.etag == hashlib.md5(b"copy me").hexdigest().upper()
    got = bucket.get_object("dst/copy.txt")
    assert (got.read(), got.content_type, got.headers["x-oss-meta-k"]) == (b"copy me", "text/plain", "v")
    bucket.copy_object(
        bucket.bucket_name,
        "src/a b+c.txt",
        "dst/replaced.txt",
        headers={
            "x-oss-metadata-directive": "REPLACE",
            "Content-Type": "application/json",
            "x-oss-meta-n": "2",
        },
    )
    head = bucket.head_object("dst/replaced.txt")
    assert head.content_type == "application/json"
    assert head.headers["x-oss-meta-n"] == "2" and "x-oss-meta-k" not in head.headers
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(bucket.bucket_name, "nope", "dst/x")
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.copy_object(
            bucket.bucket_name, "src/a b+c.txt", "dst/copy.txt", headers={"x-oss-forbid-overwrite": "true"}
        )
    assert exc.value.code == "FileAlreadyExists"


def test_append_object(bucket: oss2.Bucket) -> None:
    first = bucket.append_object("log.txt", 0, b"hello ", headers={"Content-Type": "text/plain"}, init_crc=0)
    assert first.next_position == 6
    second = bucket.append_object("log.txt", 6, b"world", init_crc=first.crc)  # oss2 checks the combined CRC
    assert second.next_position == 11
    got = bucket.get_object("log.txt")
    assert got.read() == b"hello world"
    assert got.headers["x-oss-object-type"] == "Appendable"
    assert got.headers["x-oss-next-append-position"] == "11"
    assert bucket.head_object("log.txt").content_type == "text/plain"
    with pytest.raises(oss2.exceptions.PositionNotEqualToLength) as exc:
        bucket.append_object("log.txt", 3, b"x")
    assert exc.value.headers["x-oss-next-append-position"] == "11"
    bucket.put_object("normal", b"n")
    with pytest.raises(oss2.exceptions.ObjectNotAppendable):
        bucket.append_object("normal", 1, b"x")


def test_multipart_upload_5mib(bucket: oss2.Bucket) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    part_size = 1024 * 1024
    upload_id = bucket.init_multipart_upload("mp/big.bin", headers={"Content-Type": "video/mp4"}).upload_id
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size), start=1):
        chunk = data[offset : offset + part_size]
        result = bucket.upload_part("mp/big.bin", upload_id, number, chunk)
        parts.append(PartInfo(number, result.etag, size=len(chunk), part_crc=result.crc))
    listed = bucket.list_parts("mp/big.bin", upload_id).parts
    assert [(p.part_number, p.etag, p.size) for p in listed] == [
        (p.part_number, p.etag, p.size) for p in parts
    ]
    done = bucket.complete_multipart_upload("mp/big.bin", upload_id, parts)  # oss2 checks the CRC
    expected = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts)).hexdigest().upper()
    assert done.etag == f"{expected}-{len(parts)}"
    got = bucket.get_object("mp/big.bin")
    assert got.read() == data
    assert (got.content_type, got.headers["x-oss-object-type"]) == ("video/mp4", "Multipart")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("mp/big.bin", upload_id)


def test_multipart_errors_and_abort(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("mp/x").upload_id
    small = bucket.upload_part("mp/x", upload_id, 1, b"a" * 10)
    last = bucket.upload_part("mp/x", upload_id, 2, b"b" * 10)
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.complete_multipart_upload("mp/x", upload_id, [PartInfo(1, "0" * 32)])
    assert (exc.value.status, exc.value.code) == (400, "InvalidPart")
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        bucket.complete_multipart_upload("mp/x", upload_id, [PartInfo(1, small.etag), PartInfo(2, last.etag)])
    assert exc.value.code == "EntityTooSmall"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.upload_part("mp/x", upload_id, 10001, b"x")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        bucket.delete_bucket()  # an unfinished upload keeps the bucket busy
    bucket.abort_multipart_upload("mp/x", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("mp/x", upload_id, 1, b"x")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload("mp/x", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.complete_multipart_upload("mp/x", "F" * 32, [PartInfo(1, small.etag)])
    one = bucket.init_multipart_upload("mp/one").upload_id
    only = bucket.upload_part("mp/one", one, 1, b"single small part")
    bucket.complete_multipart_upload("mp/one", one, [PartInfo(1, only.etag)])
    assert bucket.get_object("mp/one").read() == b"single small part"


def test_list_objects_v1_and_v2(bucket: oss2.Bucket) -> None:
    keys = ["a/1", "a/2", "a/b/3", "b+c/4", "b c/5", "top", "zz%/6", "é/7"]
    for key in keys:
        bucket.put_object(key, b"x")
    assert [o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=2)] == sorted(
        keys, key=lambda k: k.encode()
    )
    assert [o.key for o in oss2.ObjectIterator(bucket, max_keys=3)] == sorted(keys, key=lambda k: k.encode())
    v2 = bucket.list_objects_v2(delimiter="/")
    assert [o.key for o in v2.object_list] == ["top"]
    assert v2.prefix_list == ["a/", "b c/", "b+c/", "zz%/", "é/"]
    v1 = bucket.list_objects(prefix="a/", delimiter="/")
    assert [o.key for o in v1.object_list] == ["a/1", "a/2"] and v1.prefix_list == ["a/b/"]
    # Paging through common prefixes never repeats one.
    seen = [o.key for o in oss2.ObjectIteratorV2(bucket, delimiter="/", max_keys=1)]
    assert seen == ["a/", "b c/", "b+c/", "top", "zz%/", "é/"]
    page = bucket.list_objects_v2(max_keys=3)
    assert page.is_truncated and page.next_continuation_token
    rest = bucket.list_objects_v2(continuation_token=page.next_continuation_token, max_keys=100)
    assert len(page.object_list) + len(rest.object_list) == len(keys)
    after = bucket.list_objects_v2(start_after="b c/5")
    assert after.object_list[0].key == "b+c/4"
    assert bucket.list_objects(marker="top").object_list[0].key == "zz%/6"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.list_objects_v2(max_keys=1001)


def test_batch_delete(bucket: oss2.Bucket) -> None:
    for key in ["d/1", "d/2 x", "d/3+y"]:
        bucket.put_object(key, b"x")
    result = bucket.batch_delete_objects(["d/1", "d/2 x", "d/3+y", "d/never"])
    assert result.deleted_keys == ["d/1", "d/2 x", "d/3+y", "d/never"]
    assert bucket.list_objects_v2(prefix="d/").object_list == []


def test_unimplemented_subresources_answer_501(bucket: oss2.Bucket) -> None:
    bucket.put_object("k", b"x")
    calls: list[Callable[[], object]] = [
        bucket.get_bucket_lifecycle,
        bucket.get_bucket_versioning,
        lambda: bucket.get_object("k", process="image/resize,w_10"),
    ]
    for call in calls:
        with pytest.raises(oss2.exceptions.ServerError) as exc:
            call()
        assert (exc.value.status, exc.value.code) == (501, "NotImplemented")
        assert "is not implemented locally by immflow's local OSS" in exc.value.message

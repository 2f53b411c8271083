"""OSS's S3-compatible API, driven with boto3: objects boto3 writes are the ones oss2 reads, and
S3-API uploads fire the same events as OSS-API uploads."""

from __future__ import annotations

import io
import os
import socket
from typing import Any

import boto3
import oss2
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService

PART = 5 * 1024 * 1024  # boto3's minimum part size; OSS's own minimum (100 KB) is smaller


@pytest.fixture(params=["v1"])
def auth(request: pytest.FixtureRequest, account: Account) -> oss2.AuthBase:
    return oss2.Auth(account.access_key_id, account.access_key_secret)


def _s3(account: Account, server: ServiceServer, style: str, region: str | None = None) -> Any:
    host = "localhost" if style == "virtual" else "127.0.0.1"
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{server.port}",
        aws_access_key_id=account.access_key_id,
        aws_secret_access_key=account.access_key_secret,
        region_name=region or account.region,
        config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1}),
    )


@pytest.fixture(params=["path", "virtual"])
def s3(
    request: pytest.FixtureRequest,
    account: Account,
    oss_server: ServiceServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    if request.param == "virtual":
        # RFC 6761: names under .localhost are the loopback address. systemd-resolved and browsers
        # resolve them so; glibc's resolver alone does not, so the test resolves them itself.
        resolve = socket.getaddrinfo

        def loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(host, str) and host.endswith(".localhost"):
                host = "127.0.0.1"
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", loopback)
    return _s3(account, oss_server, request.param)


def test_boto3_puts_gets_lists_and_deletes_what_oss2_reads(s3: Any, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    s3.put_object(
        Bucket=name, Key="dir/a b.txt", Body=b"from boto3", Metadata={"who": "s3"}, ContentType="text/plain"
    )
    s3.put_object(Bucket=name, Key="dir/c.txt", Body=b"second", Tagging="t=1")
    read = bucket.get_object("dir/a b.txt")
    assert read.read() == b"from boto3"
    assert read.headers["x-oss-meta-who"] == "s3" and read.headers["Content-Type"] == "text/plain"
    assert bucket.get_object_tagging("dir/c.txt").tag_set.tagging_rule == {"t": "1"}

    bucket.put_object("dir/from-oss2.txt", b"from oss2", headers={"x-oss-meta-who": "oss"})
    got = s3.get_object(Bucket=name, Key="dir/from-oss2.txt")
    assert got["Body"].read() == b"from oss2" and got["Metadata"] == {"who": "oss"}
    assert s3.head_object(Bucket=name, Key="dir/a b.txt")["ContentLength"] == len(b"from boto3")
    ranged = s3.get_object(Bucket=name, Key="dir/c.txt", Range="bytes=1-3")
    assert ranged["Body"].read() == b"eco"

    listed = s3.list_objects_v2(Bucket=name, Prefix="dir/", MaxKeys=2)
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b.txt", "dir/c.txt"]
    assert listed["IsTruncated"]
    rest = s3.list_objects_v2(Bucket=name, Prefix="dir/", ContinuationToken=listed["NextContinuationToken"])
    assert [o["Key"] for o in rest["Contents"]] == ["dir/from-oss2.txt"]
    grouped = s3.list_objects_v2(Bucket=name, Delimiter="/")
    assert grouped["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    s3.copy_object(Bucket=name, Key="copy.txt", CopySource={"Bucket": name, "Key": "dir/a b.txt"})
    assert bucket.get_object("copy.txt").read() == b"from boto3"
    s3.delete_object(Bucket=name, Key="dir/a b.txt")
    assert not bucket.object_exists("dir/a b.txt")
    deleted = s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "dir/c.txt"}, {"Key": "copy.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy.txt", "dir/c.txt"]
    assert [o.key for o in bucket.list_objects_v2().object_list] == ["dir/from-oss2.txt"]


def test_boto3_multipart_upload_read_by_oss2(s3: Any, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    data = os.urandom(PART + 1234)
    upload = s3.create_multipart_upload(Bucket=name, Key="big.bin")
    assert s3.list_multipart_uploads(Bucket=name)["Uploads"][0]["UploadId"] == upload["UploadId"]
    one = s3.upload_part(
        Bucket=name, Key="big.bin", UploadId=upload["UploadId"], PartNumber=1, Body=data[:PART]
    )
    two = s3.upload_part(
        Bucket=name, Key="big.bin", UploadId=upload["UploadId"], PartNumber=2, Body=data[PART:]
    )
    s3.complete_multipart_upload(
        Bucket=name,
        Key="big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": one["ETag"]}, {"PartNumber": 2, "ETag": two["ETag"]}]
        },
    )
    assert bucket.get_object("big.bin").read() == data
    # boto3's transfer manager (upload_fileobj) uses the same actions.
    s3.upload_fileobj(
        io.BytesIO(data),
        name,
        "managed.bin",
        Config=boto3.s3.transfer.TransferConfig(multipart_threshold=PART, multipart_chunksize=PART),
    )
    assert bucket.get_object("managed.bin").read() == data


def test_s3_errors_have_s3_shape(
    s3: Any, bucket: oss2.Bucket, account: Account, oss_server: ServiceServer
) -> None:
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket.bucket_name, Key="nope")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as no_bucket:
        s3.list_objects_v2(Bucket="no-such-bucket-s3")
    assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"
    elsewhere = _s3(account, oss_server, "path", region="us-east-1")
    with pytest.raises(ClientError) as region:
        elsewhere.list_objects_v2(Bucket=bucket.bucket_name)
    assert region.value.response["Error"]["Code"] == "AuthorizationHeaderMalformed"
    wrong_key = boto3.client(
        "s3",
        endpoint_url=oss_server.url,
        aws_access_key_id=account.access_key_id,
        aws_secret_access_key="not-the-secret",
        region_name=account.region,
    )
    with pytest.raises(ClientError) as signature:
        wrong_key.list_objects_v2(Bucket=bucket.bucket_name)
    assert signature.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_presigned_s3_urls(s3: Any, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": name, "Key": "pre.txt"}, ExpiresIn=60)
    assert requests.put(put_url, data=b"presigned", timeout=5).status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "pre.txt"}, ExpiresIn=60)
    assert requests.get(get_url, timeout=5).content == b"presigned"
    assert requests.get(get_url.replace("pre.txt", "other.txt"), timeout=5).status_code == 403


def test_s3_uploads_fire_the_same_events(
    oss_service: OssService, s3: Any, bucket: oss2.Bucket, sink: Any
) -> None:
    oss_service.put_trigger(
        f"s3-{bucket.bucket_name}",
        {
            "bucket": bucket.bucket_name,
            "events": ["oss:ObjectCreated:*", "oss:ObjectRemoved:*"],
            "target": {"kind": "http", "url": sink.url},
        },
    )
    s3.put_object(
        Bucket=bucket.bucket_name,
        Key="in/s3.txt",
        Body=b"hello",
        Metadata={"who": "s3"},
        ContentType="text/plain",
    )
    bucket.put_object("in/oss.txt", b"hello", headers={"x-oss-meta-who": "s3"})
    s3.delete_object(Bucket=bucket.bucket_name, Key="in/s3.txt")
    records = sink.wait_for(3)
    assert [(r["eventName"], r["oss"]["object"]["key"]) for r in records] == [
        ("ObjectCreated:PutObject", "in/s3.txt"),
        ("ObjectCreated:PutObject", "in/oss.txt"),
        ("ObjectRemoved:DeleteObject", "in/s3.txt"),
    ]
    by_s3, by_oss = records[0]["oss"]["object"], records[1]["oss"]["object"]
    assert {k: v for k, v in by_s3.items() if k != "key"} == {k: v for k, v in by_oss.items() if k != "key"}
    oss_service.delete_trigger(f"s3-{bucket.bucket_name}")


def test_keys_and_query_values_with_percent_signs(s3: Any, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    s3.put_object(Bucket=name, Key="odd%41 key+.txt", Body=b"odd")
    assert bucket.get_object("odd%41 key+.txt").read() == b"odd"
    listed = s3.list_objects_v2(Bucket=name, Prefix="odd%41")
    assert [o["Key"] for o in listed["Contents"]] == ["odd%41 key+.txt"]


def test_tagging_and_acls_through_s3(s3: Any, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    s3.put_object(Bucket=name, Key="t.txt", Body=b"x", ACL="public-read")
    s3.put_object_tagging(Bucket=name, Key="t.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=name, Key="t.txt")["TagSet"] == [{"Key": "k", "Value": "v"}]
    assert bucket.get_object_tagging("t.txt").tag_set.tagging_rule == {"k": "v"}
    assert bucket.get_object_acl("t.txt").acl == "public-read"
    grants = s3.get_object_acl(Bucket=name, Key="t.txt")["Grants"]
    assert sorted(g["Permission"] for g in grants) == ["FULL_CONTROL", "READ"]
    s3.put_bucket_acl(Bucket=name, ACL="public-read-write")
    assert bucket.get_bucket_acl().acl == "public-read-write"
    with pytest.raises(ClientError) as document:
        s3.put_object_acl(
            Bucket=name,
            Key="t.txt",
            AccessControlPolicy={"Grants": [], "Owner": {"ID": "someone"}},
        )
    assert document.value.response["Error"]["Code"] == "NotImplemented"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_boto3_checksums_are_checked(s3: Any, bucket: oss2.Bucket, algorithm: str) -> None:
    """boto3 sends S3's additional checksums (over http as an ``x-amz-checksum-*`` header; over https
    in an aws-chunked trailer, which test_oss_streamed_bodies sends); a body that does not match is
    refused and not stored."""
    sent: list[dict[str, str]] = []
    s3.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(dict(request.headers)))
    name, body = bucket.bucket_name, os.urandom(100_000)
    s3.put_object(Bucket=name, Key="sum.bin", Body=body, ChecksumAlgorithm=algorithm)
    assert bucket.get_object("sum.bin").read() == body
    s3.upload_fileobj(
        io.BufferedReader(io.BytesIO(body)), name, "streamed.bin", ExtraArgs={"ChecksumAlgorithm": algorithm}
    )
    assert bucket.get_object("streamed.bin").read() == body
    header = f"x-amz-checksum-{algorithm.lower()}"
    assert all(
        header in {k.lower() for k in headers} or headers.get("x-amz-trailer") == header for headers in sent
    )
    wrong = {"CRC32": "AAAAAA==", "SHA1": "A" * 27 + "=", "SHA256": "A" * 43 + "="}[algorithm]
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=name, Key="bad.bin", Body=body, **{f"Checksum{algorithm}": wrong})
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("bad.bin")

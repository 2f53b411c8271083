"""Multi-MiB bodies through oss2, alibabacloud-oss-v2 and boto3: written to disk as they arrive
(with Content-Length, chunked, aws-chunked), with ETag, CRC-64, Content-MD5 and
x-amz-content-sha256 still checked, and nothing left behind by a refused body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
import boto3
import oss2
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from oss2.models import PartInfo
from oss2.utils import Crc64

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService, s3

MIB = 1 << 20
#: Not a multiple of the server's 1 MiB pieces nor of the SDKs' own.
SIZE = 6 * MIB + 12345


@pytest.fixture(params=["v1"])
def auth(request: pytest.FixtureRequest, account: Account) -> oss2.AuthBase:
    return oss2.Auth(account.access_key_id, account.access_key_secret)


def _data(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * (MIB // 32)
    return (block * (size // len(block) + 1))[:size]


def _pieces(data: bytes, piece: int = 300_000) -> Iterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def _crc(data: bytes) -> int:
    crc = Crc64(0)
    crc.update(data)
    return int(crc.crc)


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _leftovers(service: OssService) -> list[Path]:
    return [p for p in service.store.data_dir.rglob(".tmp-*")]


def _data_files(service: OssService) -> int:
    return sum(1 for p in service.store.data_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oss2_put_of_a_multi_mib_body_keeps_etag_crc_and_bytes(bucket: oss2.Bucket, framing: str) -> None:
    data = _data(SIZE)
    body: Any = data if framing == "content-length" else _pieces(data)
    result = bucket.put_object("big.bin", body, headers={"Content-MD5": _md5_b64(data)})
    assert result.etag == hashlib.md5(data).hexdigest().upper()
    assert result.crc == _crc(data)  # oss2 also compares it with its own CRC (enable_crc)
    assert bucket.get_object("big.bin").read() == data
    ranged = bucket.get_object("big.bin", byte_range=(MIB - 10, 3 * MIB + 10)).read()
    assert ranged == data[MIB - 10 : 3 * MIB + 11]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oss2_put_with_a_wrong_content_md5_stores_nothing(
    bucket: oss2.Bucket, oss_service: OssService, framing: str
) -> None:
    data = _data(SIZE, seed=1)
    files = _data_files(oss_service)
    body: Any = data if framing == "content-length" else _pieces(data)
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("refused.bin", body, headers={"Content-MD5": _md5_b64(data[:-1])})
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("refused.bin")
    assert _leftovers(oss_service) == [] and _data_files(oss_service) == files


def test_oss2_multipart_parts_are_checked_and_combined(bucket: oss2.Bucket, oss_service: OssService) -> None:
    first, second = _data(5 * MIB + 3, seed=2), _data(MIB + 7, seed=3)
    upload_id = bucket.init_multipart_upload("parts.bin").upload_id
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.upload_part("parts.bin", upload_id, 1, first, headers={"Content-MD5": _md5_b64(second)})
    assert bucket.list_parts("parts.bin", upload_id).parts == []
    one = bucket.upload_part(
        "parts.bin", upload_id, 1, _pieces(first), headers={"Content-MD5": _md5_b64(first)}
    )
    two = bucket.upload_part("parts.bin", upload_id, 2, second)
    assert one.etag == hashlib.md5(first).hexdigest().upper() and one.crc == _crc(first)
    bucket.complete_multipart_upload(
        "parts.bin",
        upload_id,
        [PartInfo(1, one.etag, size=len(first)), PartInfo(2, two.etag, size=len(second))],
    )
    whole = bucket.get_object("parts.bin")
    assert whole.read() == first + second
    assert int(whole.headers["x-oss-hash-crc64ecma"]) == _crc(first + second)
    assert _leftovers(oss_service) == []


def test_oss2_append_streams_each_body_and_refuses_a_wrong_one(bucket: oss2.Bucket) -> None:
    first, second = _data(3 * MIB + 1, seed=4), _data(2 * MIB, seed=5)
    appended = bucket.append_object("log.bin", 0, first, init_crc=0)
    assert appended.next_position == len(first) and appended.crc == _crc(first)
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.append_object("log.bin", len(first), second, headers={"Content-MD5": _md5_b64(first)})
    assert bucket.head_object("log.bin").content_length == len(first)
    appended = bucket.append_object("log.bin", len(first), _pieces(second), init_crc=appended.crc)
    assert appended.next_position == len(first + second) and appended.crc == _crc(first + second)
    assert bucket.get_object("log.bin").read() == first + second


def test_v2_sdk_put_append_and_multipart_with_crc_checks(v2: oss.Client, bucket: oss2.Bucket) -> None:
    name = bucket.bucket_name
    data = _data(SIZE, seed=6)
    put = v2.put_object(oss.PutObjectRequest(bucket=name, key="v2.bin", body=data))
    assert put.etag == f'"{hashlib.md5(data).hexdigest().upper()}"' and put.hash_crc64 == str(_crc(data))
    with pytest.raises(oss.exceptions.OperationError) as refused:
        v2.put_object(
            oss.PutObjectRequest(bucket=name, key="v2-bad.bin", body=data, content_md5=_md5_b64(b"x"))
        )
    assert "InvalidDigest" in str(refused.value)
    appended = v2.append_object(oss.AppendObjectRequest(bucket=name, key="v2-log.bin", position=0, body=data))
    assert appended.next_position == len(data) and appended.hash_crc64 == str(_crc(data))
    # The uploader sends parts (with their CRC-64s checked by the SDK) for a body above its threshold.
    uploader = v2.uploader(part_size=5 * MIB, parallel_num=2, leave_parts_on_error=False)
    big = _data(12 * MIB + 5, seed=7)
    uploader.upload_from(oss.PutObjectRequest(bucket=name, key="v2-parts.bin"), io.BytesIO(big))
    assert bucket.get_object("v2-parts.bin").read() == big
    assert bucket.head_object("v2-parts.bin").etag.endswith("-3")


def _s3(account: Account, server: ServiceServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=account.access_key_id,
        aws_secret_access_key=account.access_key_secret,
        region_name=account.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_boto3_put_multipart_and_content_md5(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket
) -> None:
    s3 = _s3(account, oss_server)
    name = bucket.bucket_name
    data = _data(SIZE, seed=8)
    put = s3.put_object(Bucket=name, Key="s3.bin", Body=data, ContentMD5=_md5_b64(data))
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert s3.get_object(Bucket=name, Key="s3.bin")["Body"].read() == data
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=name, Key="s3-bad.bin", Body=data, ContentMD5=_md5_b64(b"x"))
    assert refused.value.response["Error"]["Code"] == "InvalidDigest"
    big = _data(11 * MIB, seed=9)
    s3.upload_fileobj(io.BytesIO(big), name, "s3-parts.bin")  # 8 MiB parts by default: two parts
    assert bucket.get_object("s3-parts.bin").read() == big
    assert bucket.head_object("s3-parts.bin").etag.endswith("-2")


def _signed_s3_put(account: Account, url: str, headers: dict[str, str], body: Any) -> requests.Response:
    """A PUT signed with SigV4 by botocore, with ``x-amz-content-sha256`` as given (not computed)."""
    request = AWSRequest(method="PUT", url=url, headers=headers)
    credentials = Credentials(account.access_key_id, account.access_key_secret)
    SigV4Auth(credentials, "s3", account.region).add_auth(request)
    return requests.put(url, headers=dict(request.headers.items()), data=body, timeout=30)


def test_s3_body_that_does_not_match_its_signed_sha256_is_refused(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket, oss_service: OssService
) -> None:
    data = _data(SIZE, seed=10)
    url = f"{oss_server.url}/{bucket.bucket_name}/sha.bin"
    wrong = hashlib.sha256(data[:-1]).hexdigest()
    refused = _signed_s3_put(account, url, {"x-amz-content-sha256": wrong}, data)
    assert refused.status_code == 400 and b"XAmzContentSHA256Mismatch" in refused.content
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("sha.bin")
    assert _leftovers(oss_service) == []
    stored = _signed_s3_put(account, url, {"x-amz-content-sha256": hashlib.sha256(data).hexdigest()}, data)
    assert stored.status_code == 200 and bucket.get_object("sha.bin").read() == data


def test_s3_aws_chunked_body_sent_chunked_is_decoded_as_it_arrives(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket
) -> None:
    data = _data(SIZE, seed=11)

    def framed(crc32: int) -> Iterator[bytes]:  # aws-chunked inside HTTP chunked, with a checksum trailer
        for piece in _pieces(data, 64 * 1024 + 3):
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b"0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % base64.b64encode(crc32.to_bytes(4, "big"))

    headers = {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "content-encoding": "aws-chunked",
    }
    url = f"{oss_server.url}/{bucket.bucket_name}/chunked.bin"
    refused = _signed_s3_put(account, url, headers, framed(zlib.crc32(data) ^ 1))
    assert refused.status_code == 400 and b"<Code>BadDigest</Code>" in refused.content
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("chunked.bin")
    stored = _signed_s3_put(account, url, headers, framed(zlib.crc32(data)))
    assert stored.status_code == 200, stored.content
    assert stored.headers["ETag"] == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert bucket.get_object("chunked.bin").read() == data


def test_s3_signed_chunks_are_checked_against_the_requests_signature(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket, oss_service: OssService
) -> None:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: botocore signs the headers; each chunk carries the
    signature chained from it (the chaining is pinned to AWS's published example in
    tests/unit/test_localcloud_oss_s3.py). A chunk changed on the way is refused, nothing stored."""
    data = _data(3 * 64 * 1024 + 5, seed=12)
    url = f"{oss_server.url}/{bucket.bucket_name}/signed-chunks.bin"
    headers = {
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": str(len(data)),
        "content-encoding": "aws-chunked",
    }
    request = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(account.access_key_id, account.access_key_secret), "s3", account.region).add_auth(
        request
    )
    sent = dict(request.headers.items())
    amz_date = sent["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{account.region}/s3/aws4_request"
    key = ("AWS4" + account.access_key_secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signing = s3.Signing(amz_date, scope, key, sent["Authorization"].rpartition("Signature=")[2])

    def body(payload: bytes) -> bytes:
        framed, previous = b"", signing.seed
        for piece in [*_pieces(payload, 64 * 1024), b""]:
            previous = signing.chunk(previous, hashlib.sha256(piece).hexdigest())
            framed += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), previous.encode(), piece)
        return framed

    changed = body(data).replace(data[1000:1010], b"x" * 10, 1)
    refused = requests.put(url, headers=sent, data=changed, timeout=30)
    assert refused.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in refused.content
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("signed-chunks.bin")
    assert _leftovers(oss_service) == []
    stored = requests.put(url, headers=sent, data=body(data), timeout=30)
    assert stored.status_code == 200, stored.content
    assert bucket.get_object("signed-chunks.bin").read() == data


def test_a_body_over_5_gib_is_refused_before_it_is_sent(bucket: oss2.Bucket) -> None:
    url = urlsplit(bucket.sign_url("PUT", "huge.bin", 600))
    connection = http.client.HTTPConnection(url.netloc, timeout=10)
    try:
        connection.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        connection.putheader("Content-Length", str(5 * 1024 * MIB + 1))
        connection.endheaders()  # no body follows: the answer must come anyway
        answer = connection.getresponse()
        assert answer.status == 400 and b"<Code>EntityTooLarge</Code>" in answer.read()
        assert answer.getheader("Connection") == "close"
    finally:
        connection.close()


def test_a_document_over_the_limit_is_refused(bucket: oss2.Bucket) -> None:
    bucket.put_object("doc.txt", b"x")
    answer = requests.put(
        bucket.sign_url("PUT", "doc.txt", 600, params={"tagging": ""}), data=b" " * (11 * MIB)
    )
    assert answer.status_code == 400 and b"<Code>EntityTooLarge</Code>" in answer.content


def test_a_body_that_breaks_off_stores_nothing(bucket: oss2.Bucket, oss_service: OssService) -> None:
    url = urlsplit(bucket.sign_url("PUT", "cut.bin", 600))
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10) as sock:
        sock.sendall(
            f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {2 * MIB}\r\n\r\n".encode()
            + _data(MIB + 5)
        )
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 400") and b"<Code>IncompleteBody</Code>" in answer
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object("cut.bin")
    assert _leftovers(oss_service) == []


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_upload_refused_before_its_body_is_read_gets_its_error(
    auth: oss2.AuthBase, oss_server: ServiceServer, framing: str
) -> None:
    # 100 MiB is over what the server reads and drops before answering: it answers first, then
    # reads the rest while the client is still sending, so the client sees the error, not a reset.
    missing = oss2.Bucket(auth, oss_server.url, "no-such-bucket-here")
    data = b"\0" * (100 * MIB)
    body: Any = data if framing == "content-length" else _pieces(data, MIB)
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.put_object("k.bin", body)

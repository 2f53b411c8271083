"""The S3 API's body decoding and header mapping, without a server."""

from __future__ import annotations

import pytest

from localcloud.core.http import Request
from localcloud.oss import s3
from localcloud.oss.errors import OssError


def _request(body: bytes, payload: str) -> Request:
    return Request("PUT", "/b/k", "", {"x-amz-content-sha256": payload}, body)


def _decoded(request: Request, piece: int = 4) -> bytes:
    body = s3.body(request)
    return b"".join(iter(lambda: body.read(piece), b""))


def test_aws_chunked_bodies_are_decoded_signed_or_not() -> None:
    signed = (
        b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n"
    )
    assert _decoded(_request(signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) == b"hello world"
    assert _decoded(_request(signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"), piece=1 << 20) == b"hello world"
    trailer = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    assert _decoded(_request(trailer, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")) == b"abc"
    assert _decoded(_request(b"3\r\nabc", "UNSIGNED-PAYLOAD")) == b"3\r\nabc"
    for broken in (b"3\r\nabc\r\n", b"3\r\nabcd\r\n0\r\n\r\n", b"zz\r\nabc\r\n0\r\n\r\n"):
        with pytest.raises(OssError) as cut:
            _decoded(_request(broken, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
        assert cut.value.code == "IncompleteBody"


def test_aws_chunked_payload_must_have_the_decoded_length() -> None:
    request = _request(b"3\r\nabc\r\n0\r\n\r\n", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    request.headers["x-amz-decoded-content-length"] = "4"
    with pytest.raises(OssError) as cut:
        _decoded(request)
    assert cut.value.code == "IncompleteBody"


def test_amz_headers_get_their_oss_forms() -> None:
    headers = s3.oss_headers(
        {
            "x-amz-meta-who": "me",
            "x-amz-copy-source": "bucket/a%20b",
            "x-amz-storage-class": "GLACIER",
            "x-amz-acl": "public-read",
            "x-amz-tagging-directive": "REPLACE",
        }
    )
    assert headers["x-oss-meta-who"] == "me"
    assert headers["x-oss-copy-source"] == "/bucket/a%20b"
    assert headers["x-oss-storage-class"] == "Archive"
    assert headers["x-oss-object-acl"] == "public-read"
    assert headers["x-oss-tagging-directive"] == "Replace"
    answered = s3.s3_response_headers({"x-oss-meta-who": "me", "x-oss-storage-class": "IA"})
    assert answered["x-amz-meta-who"] == "me" and answered["x-amz-storage-class"] == "STANDARD_IA"

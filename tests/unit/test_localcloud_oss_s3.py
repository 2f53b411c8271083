"""The S3 API's body decoding and header mapping, without a server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import pytest

from localcloud.core.http import Request
from localcloud.oss import s3
from localcloud.oss.errors import OssError

# AWS's published examples of a chunked upload ("Signature calculations for the Authorization header:
# transferring payload in multiple chunks", and its "...including trailing headers" page): 66,560 bytes
# of "a" sent as 64 KiB + 1 KiB + the empty last chunk, signed with the documentation's example key.
_EXAMPLE_KEY = b"AWS4wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
for _part in ("20130524", "us-east-1", "s3", "aws4_request"):
    _EXAMPLE_KEY = hmac.new(_EXAMPLE_KEY, _part.encode(), hashlib.sha256).digest()
_SCOPE = "20130524/us-east-1/s3/aws4_request"
_DATA = b"a" * 66560
_SIGNED = (
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ],
)
_SIGNED_TRAILER = (
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ],
)
_TRAILER = b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
_TRAILER_SIGNATURE = (
    b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
)
_NO_SIGNING = s3.Signing("20130524T000000Z", _SCOPE, b"", "")


def _request(body: bytes, payload: str, **headers: str) -> Request:
    return Request("PUT", "/b/k", "", {"x-amz-content-sha256": payload, **headers}, body)


def _decoded(request: Request, piece: int = 4, signing: s3.Signing = _NO_SIGNING) -> bytes:
    body = s3.body(request, signing)
    return b"".join(iter(lambda: body.read(piece), b""))


def _chunks(signatures: list[str], data: bytes = _DATA, trailer: bytes = b"") -> bytes:
    pieces = [data[:65536], data[65536:], b""]
    framed = b"".join(
        b"%x;chunk-signature=%s\r\n%s" % (len(piece), sig.encode(), piece + b"\r\n" if piece else b"")
        for piece, sig in zip(pieces, signatures, strict=True)
    )
    return framed + (trailer or b"\r\n")


def _code(request: Request, signing: s3.Signing = _NO_SIGNING) -> str:
    with pytest.raises(OssError) as refused:
        _decoded(request, piece=1 << 20, signing=signing)
    return refused.value.code


def test_awss_example_of_a_signed_chunked_upload_is_accepted_and_any_change_refused() -> None:
    seed, signatures = _SIGNED
    signing = s3.Signing("20130524T000000Z", _SCOPE, _EXAMPLE_KEY, seed)
    streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert _decoded(_request(_chunks(signatures), streaming), piece=1 << 20, signing=signing) == _DATA
    assert _decoded(_request(_chunks(signatures), streaming), piece=1000, signing=signing) == _DATA
    tampered = _DATA[: 70000 - 4000] + b"b" + _DATA[70000 - 4000 + 1 :]
    assert _code(_request(_chunks(signatures, tampered), streaming), signing) == "SignatureDoesNotMatch"
    unsigned_end = _chunks(signatures).replace(f"0;chunk-signature={signatures[2]}".encode(), b"0")
    assert _code(_request(unsigned_end, streaming), signing) == "SignatureDoesNotMatch"
    swapped = _chunks([signatures[1], signatures[0], signatures[2]])
    assert _code(_request(swapped, streaming), signing) == "SignatureDoesNotMatch"


def test_awss_example_with_a_signed_trailer_checks_the_trailer_and_its_checksum() -> None:
    seed, signatures = _SIGNED_TRAILER
    signing = s3.Signing("20130524T000000Z", _SCOPE, _EXAMPLE_KEY, seed)
    streaming, headers = (
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        {"x-amz-trailer": "x-amz-checksum-crc32c"},
    )
    body = _chunks(signatures, trailer=_TRAILER + _TRAILER_SIGNATURE + b"\r\n")
    assert _decoded(_request(body, streaming, **headers), piece=1 << 20, signing=signing) == _DATA
    # Some clients (and AWS's own example) put an empty line between the last chunk and the trailers.
    spaced = _chunks(signatures, trailer=b"\r\n" + _TRAILER + _TRAILER_SIGNATURE + b"\r\n")
    assert _decoded(_request(spaced, streaming, **headers), piece=1 << 20, signing=signing) == _DATA
    forged = _chunks(signatures, trailer=b"x-amz-checksum-crc32c:AAAAAA==\r\n" + _TRAILER_SIGNATURE + b"\r\n")
    assert _code(_request(forged, streaming, **headers), signing) == "SignatureDoesNotMatch"
    unsigned = _chunks(signatures, trailer=_TRAILER + b"\r\n")
    assert _code(_request(unsigned, streaming, **headers), signing) == "SignatureDoesNotMatch"


def test_aws_chunked_bodies_are_decoded_and_their_trailer_checksum_checked() -> None:
    crc32 = base64.b64encode(zlib.crc32(b"abc").to_bytes(4, "big"))
    trailer = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % crc32
    headers = {"x-amz-trailer": "x-amz-checksum-crc32"}
    assert _decoded(_request(trailer, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", **headers)) == b"abc"
    wrong = trailer.replace(b"abc", b"abd")
    assert _code(_request(wrong, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", **headers)) == "BadDigest"
    missing = b"3\r\nabc\r\n0\r\n\r\n"
    assert _code(_request(missing, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", **headers)) == "InvalidRequest"
    assert _decoded(_request(b"3\r\nabc", "UNSIGNED-PAYLOAD")) == b"3\r\nabc"
    for broken in (b"3\r\nabc\r\n", b"3\r\nabcd\r\n0\r\n\r\n", b"zz\r\nabc\r\n0\r\n\r\n"):
        with pytest.raises(OssError) as cut:
            _decoded(_request(broken, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
        assert cut.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    ("algorithm", "check_value"),
    [
        # The catalogue check values of each CRC ("123456789"), and the SHA digests of the same bytes.
        ("crc32", 0xCBF43926),
        ("crc32c", 0xE3069283),
        ("crc64nvme", 0xAE8B14860A799888),
        ("sha1", int(hashlib.sha1(b"123456789").hexdigest(), 16)),
        ("sha256", int(hashlib.sha256(b"123456789").hexdigest(), 16)),
    ],
    ids=["crc32", "crc32c", "crc64nvme", "sha1", "sha256"],
)
def test_a_checksum_header_is_checked_against_the_body(algorithm: str, check_value: int) -> None:
    width = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}[algorithm]
    value = base64.b64encode(check_value.to_bytes(width, "big")).decode()
    header = {f"x-amz-checksum-{algorithm}": value}
    assert _decoded(_request(b"123456789", "UNSIGNED-PAYLOAD", **header)) == b"123456789"
    assert _code(_request(b"123456780", "UNSIGNED-PAYLOAD", **header)) == "BadDigest"
    assert _code(_request(b"123456789", "UNSIGNED-PAYLOAD", **{f"x-amz-checksum-{algorithm}": "xyz"})) == (
        "InvalidRequest"
    )


def test_one_checksum_per_request_of_an_algorithm_s3_knows() -> None:
    two = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAA=="}
    assert _code(_request(b"x", "UNSIGNED-PAYLOAD", **two)) == "InvalidRequest"
    unknown = {"x-amz-trailer": "x-amz-checksum-md5"}
    assert _code(_request(b"1\r\nx\r\n0\r\n\r\n", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", **unknown)) == (
        "InvalidRequest"
    )
    assert _decoded(_request(b"x", "UNSIGNED-PAYLOAD", **{"x-amz-checksum-mode": "ENABLED"})) == b"x"


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

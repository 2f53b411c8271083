"""OSS's S3-compatible API on the same port: AWS Signature V4, ``x-amz-*`` headers, S3's errors.

The cloud's OSS accepts requests signed with ``AWS4-HMAC-SHA256`` (header or presigned query),
path style and virtual-host style, and answers them with the same actions; so does this. A
request is recognised as S3 by its signature; then:

- the signature is checked as AWS documents SigV4 for S3 (service ``s3``; the scope's region
  must be the account's); ``x-amz-content-sha256``, when it is a hash, is checked against the
  body once the body is read (:class:`~localcloud.oss.call.OssRequest`), before the action uses it;
  a body sent ``aws-chunked`` (``STREAMING-*`` payloads) is decoded as it arrives
  (:class:`AwsChunkedBody`), each chunk's signature and a signed trailer's checked against the
  chain that starts at the request's signature (403 ``SignatureDoesNotMatch``);
- a body checksum (``x-amz-checksum-<algorithm>``, as a header or an aws-chunked trailer named
  by ``x-amz-trailer``: CRC32, CRC32C, CRC64NVME, SHA1, SHA256) is computed as the body is read
  and a body that does not match is refused (400 ``BadDigest``) before it is stored
  (:class:`ChecksumBody`);
- ``x-amz-*`` request headers become their ``x-oss-*`` forms (``x-amz-meta-*``,
  ``x-amz-copy-source`` and its conditions and range, ``x-amz-metadata-directive``,
  ``x-amz-tagging``, ``x-amz-storage-class``, ``x-amz-acl``) so the actions see one API;
- ``x-oss-meta-*`` and ``x-oss-request-id`` answer as ``x-amz-meta-*`` and ``x-amz-request-id``;
- errors are S3's ``<Error><Code/><Message/><Resource/><RequestId/></Error>``.

Storage classes map as OSS documents for its S3 API: STANDARD = Standard, STANDARD_IA = IA,
GLACIER = Archive, DEEP_ARCHIVE = ColdArchive (UNCONFIRMED for DEEP_ARCHIVE).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import zlib
from calendar import timegm
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.oss.auth import MAX_SKEW_SECONDS
from localcloud.oss.call import BodySource
from localcloud.oss.errors import OssError
from localcloud.oss.wire import header_text

ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = "UNSIGNED-PAYLOAD"
_SIGNED_CHUNKS = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_STORAGE_CLASSES = {
    "STANDARD": "Standard",
    "STANDARD_IA": "IA",
    "GLACIER": "Archive",
    "DEEP_ARCHIVE": "ColdArchive",
}
_S3_STORAGE_CLASSES = {oss: s3 for s3, oss in _STORAGE_CLASSES.items()}


def is_s3(request: Request) -> bool:
    return request.headers.get("authorization", "").startswith(ALGORITHM) or any(
        name == "X-Amz-Algorithm" for name, _ in request.query_items(plus_is_space=False)
    )


def _error(status: int, code: str, message: str) -> OssError:
    return OssError(status, code, message)


def _encode(text: str, safe: str) -> str:
    return quote(text, safe=safe)


@dataclass(frozen=True)
class Signing:
    """What a checked SigV4 signature leaves to sign an aws-chunked body's chunks and trailer with
    (AWS, "Signature calculations for the Authorization header: transferring payload in multiple
    chunks"): each chunk's signature signs the previous one, starting from the request's."""

    amz_date: str
    scope: str
    key: bytes
    seed: str

    def chunk(self, previous: str, chunk_sha256: str) -> str:
        return self._sign("AWS4-HMAC-SHA256-PAYLOAD", previous, _EMPTY_SHA256, chunk_sha256)

    def trailer(self, previous: str, trailer_sha256: str) -> str:
        return self._sign("AWS4-HMAC-SHA256-TRAILER", previous, trailer_sha256)

    def _sign(self, kind: str, *lines: str) -> str:
        text = "\n".join([kind, self.amz_date, self.scope, *lines])
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


def verify(request: Request, account: Account) -> Signing:
    """Raise :class:`OssError` (S3 codes) unless the request carries the account's SigV4 signature;
    return what signs its body's chunks."""
    params = request.query_items(plus_is_space=False)
    authorization = request.headers.get("authorization", "")
    if authorization:
        fields = {}
        for item in authorization[len(ALGORITHM) :].split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        credential = fields.get("Credential", "")
        signed_headers = fields.get("SignedHeaders", "")
        provided = fields.get("Signature", "")
        amz_date = request.headers.get("x-amz-date", "")
        payload = request.headers.get("x-amz-content-sha256", "")
        if not payload:
            raise _error(
                400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            )
        signed_time = _parse_time(amz_date)
        if abs(time.time() - signed_time) > MAX_SKEW_SECONDS:
            raise _error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
        query = params
    else:
        values = dict(params)
        credential = values.get("X-Amz-Credential", "")
        signed_headers = values.get("X-Amz-SignedHeaders", "")
        provided = values.get("X-Amz-Signature", "")
        amz_date = values.get("X-Amz-Date", "")
        expires = values.get("X-Amz-Expires", "")
        if not expires.isdigit():
            raise _error(
                400, "AuthorizationQueryParametersError", "X-Amz-Expires must be a number of seconds."
            )
        if time.time() > _parse_time(amz_date) + int(expires):
            raise _error(403, "AccessDenied", "Request has expired")
        payload = _UNSIGNED
        query = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    key_id, date, region, service, terminator = (credential.split("/") + [""] * 5)[:5]
    if terminator != "aws4_request" or service != "s3" or date != amz_date[:8]:
        raise _error(
            400,
            "AuthorizationHeaderMalformed",
            "The Credential must be '<AccessKeyId>/<yyyymmdd>/<region>/s3/aws4_request'.",
        )
    if key_id != account.access_key_id:
        raise _error(
            403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
        )
    if region != account.region:
        raise _error(
            400,
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; the region '{region}' is wrong; expecting "
            f"'{account.region}'.",
        )
    names = [h for h in signed_headers.split(";") if h]
    if "host" not in names:
        raise _error(400, "AuthorizationHeaderMalformed", "SignedHeaders must include host.")
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_encode(k, "-_.~"), _encode(v, "-_.~")) for k, v in query)
    )
    canonical_headers = "".join(
        f"{name}:{' '.join(header_text(request.headers.get(name, '')).split())}\n" for name in names
    )
    canonical_request = "\n".join(
        [
            request.method,
            _encode(unquote(request.raw_path), "/-_.~"),
            canonical_query,
            canonical_headers,
            ";".join(names),
            payload,
        ]
    )
    scope = f"{date}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    signing_key = ("AWS4" + account.access_key_secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, provided):
        raise OssError(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            StringToSign=string_to_sign,
            CanonicalRequest=canonical_request,
        )
    return Signing(amz_date, scope, signing_key, provided)


def _parse_time(text: str) -> float:
    try:
        return float(timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise _error(
            403, "AccessDenied", "x-amz-date is missing or is not an ISO 8601 basic time (yyyymmddTHHMMSSZ)."
        ) from None


def payload_sha256(request: Request) -> str | None:
    """``x-amz-content-sha256`` when it is the body's hash (not ``UNSIGNED-PAYLOAD``/``STREAMING-*``)."""
    payload = request.headers.get("x-amz-content-sha256", "").lower()
    return payload if len(payload) == 64 else None


def body(request: Request, signing: Signing) -> BodySource:
    """The request's payload: the body itself, or an ``aws-chunked`` one decoded (and its chunks'
    signatures checked) as it is read; with a checksum checked at its end when one is announced."""
    payload = request.headers.get("x-amz-content-sha256", "")
    source: BodySource = request.stream
    chunked = None
    if payload.startswith("STREAMING-"):
        decoded = request.headers.get("x-amz-decoded-content-length", "")
        trailer = request.headers.get("x-amz-trailer", "").strip().lower() or None
        chunked = AwsChunkedBody(
            request.stream,
            int(decoded) if decoded.isdigit() else None,
            signing if payload in _SIGNED_CHUNKS else None,
            trailer,
        )
        source = chunked
    # (x-amz-checksum-mode, -type and -algorithm are other headers, not values.)
    announced = [name for name in request.headers if name in _NAMES]
    if chunked is not None and chunked.trailer is not None:
        announced.append(chunked.trailer)
    if not announced:
        return source
    if len(announced) > 1:
        raise _error(
            400,
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    [name] = announced
    algorithm = name.removeprefix("x-amz-checksum-")
    if algorithm not in CHECKSUMS:
        raise _error(
            400, "InvalidRequest", f"{name} is not a checksum S3 knows: use one of {', '.join(_NAMES)}."
        )
    if chunked is not None and name == chunked.trailer:
        return ChecksumBody(source, algorithm, lambda: chunked.trailers.get(name))
    value = request.headers[name]
    return ChecksumBody(source, algorithm, lambda: value)


class _Crc:
    """A CRC with S3's encoding of it: the big-endian bytes of the value, base64."""

    def __init__(self, update: Callable[[bytes, int], int], width: int) -> None:
        self._update = update
        self._width = width
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = self._update(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self._width, "big")


def _crc32c() -> _Crc:
    import crc32c  # the Tablestore SDK's dependency; imported when a body uses it

    return _Crc(lambda data, value: int(crc32c.crc32c(data, value)), 4)


def _crc64nvme() -> _Crc:
    import crcmod  # oss2's dependency (its C extension); imported when a body uses it

    # CRC-64/NVME: reflected, poly 0xAD93D23594C93659, init and xorout all ones (crcmod takes the
    # initial value already XORed with xorout, hence 0). Check value ("123456789"): 0xAE8B14860A799888.
    update = crcmod.mkCrcFun(0x1AD93D23594C93659, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    return _Crc(update, 8)


#: S3's additional checksums (AWS, "Checking object integrity"): name -> a fresh running checksum.
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "crc32": lambda: _Crc(zlib.crc32, 4),
    "crc32c": _crc32c,
    "crc64nvme": _crc64nvme,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
_NAMES = [f"x-amz-checksum-{name}" for name in CHECKSUMS]


class ChecksumBody:
    """A payload whose S3 checksum is computed as it is read and compared, at its end, with the
    value the request announced (a header, or a trailer known only then: ``expected``)."""

    def __init__(self, inner: BodySource, algorithm: str, expected: Callable[[], str | None]) -> None:
        self._inner = inner
        self.length = inner.length
        self._algorithm = algorithm
        self._sum = CHECKSUMS[algorithm]()
        self._expected = expected

    def read(self, size: int) -> bytes:
        data = self._inner.read(size)
        if data:
            self._sum.update(data)
            return data
        name = f"x-amz-checksum-{self._algorithm}"
        expected = self._expected()
        if expected is None:
            raise _error(400, "InvalidRequest", f"The trailer {name} that x-amz-trailer names was not sent.")
        try:
            announced = base64.b64decode(expected.strip(), validate=True)
        except binascii.Error:
            announced = b""
        digest = self._sum.digest()
        if len(announced) != len(digest):
            raise _error(400, "InvalidRequest", f"Value for {name} header is invalid.")
        if not hmac.compare_digest(announced, digest):
            raise _error(
                400,
                "BadDigest",
                f"The {self._algorithm.upper()} you specified did not match the calculated checksum.",
            )
        return b""


class AwsChunkedBody:
    """The payload of an ``aws-chunked`` body (``<hex size>[;chunk-signature=...]\\r\\n<data>\\r\\n``
    ... ``0``, then trailers such as ``x-amz-checksum-crc32``), decoded as it is read so that
    no more than one network read is held. ``length`` is ``x-amz-decoded-content-length``; a
    payload of another length is refused (IncompleteBody). With ``signing`` (a
    ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` body) every chunk, the empty last one
    included, must carry the signature that chains from the request's, and a ``trailer`` the
    ``x-amz-trailer-signature`` after it."""

    _MAX_LINE = 8192

    def __init__(
        self,
        inner: BodySource,
        length: int | None,
        signing: Signing | None = None,
        trailer: str | None = None,
    ) -> None:
        self._inner = inner
        self.length = length
        self._signing = signing
        self.trailer = trailer
        self.trailers: dict[str, str] = {}
        self._buffer = bytearray()
        self._left = 0
        self._finished = False
        self.received = 0
        self._previous = signing.seed if signing else ""
        self._chunk_signature = ""
        self._chunk_sha256 = hashlib.sha256()

    def read(self, size: int) -> bytes:
        if self._finished:
            return b""
        if self._left == 0:
            self._start_chunk()
            if self._left == 0:
                self._check_chunk()
                self._read_trailers()
                return b""
        if self._buffer:
            data = bytes(self._buffer[: min(size, self._left)])
            del self._buffer[: len(data)]
        else:
            data = self._inner.read(min(size, self._left))
            if not data:
                raise _incomplete("The aws-chunked body ends inside a chunk.")
        self._left -= len(data)
        self.received += len(data)
        if self._signing is not None:
            self._chunk_sha256.update(data)
        if self._left == 0:
            if self._line().strip():
                raise _incomplete("An aws-chunked chunk is longer than its header says.")
            self._check_chunk()
        return data

    def _start_chunk(self) -> None:
        line = self._line()
        size, _, extension = line.strip().partition(b";")
        try:
            self._left = int(size.strip(), 16)
        except ValueError:
            raise _incomplete(f"{line[:40]!r} is not an aws-chunked chunk header") from None
        name, _, value = extension.decode("latin-1").partition("=")
        self._chunk_signature = value.strip() if name.strip() == "chunk-signature" else ""

    def _check_chunk(self) -> None:
        if self._signing is None:
            return
        expected = self._signing.chunk(self._previous, self._chunk_sha256.hexdigest())
        if not hmac.compare_digest(expected, self._chunk_signature):
            raise _signature_mismatch("an aws-chunked chunk's signature")
        self._previous = expected
        self._chunk_sha256 = hashlib.sha256()

    def _fill(self) -> bool:
        data = self._inner.read(64 * 1024)
        self._buffer += data
        return bool(data)

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > self._MAX_LINE or not self._fill():
                raise _incomplete("The aws-chunked body ends inside a chunk header.")
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def _read_trailers(self) -> None:
        # A body may end right after the final chunk's header (no trailer section); that is accepted.
        # Some clients put an empty line before the trailers: skipped while none has come yet.
        trailer_signature = None
        while self._buffer or self._fill():
            line = self._line().strip()
            if not line:
                if self.trailers or trailer_signature or self.trailer is None:
                    break
                continue
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "x-amz-trailer-signature":
                trailer_signature = value.strip()
            else:
                self.trailers[name.strip().lower()] = value.strip()
        self._finished = True
        if self.length is not None and self.received != self.length:
            raise _incomplete(
                f"The aws-chunked payload has {self.received} bytes; x-amz-decoded-content-length says "
                f"{self.length}."
            )
        if self._signing is not None and self.trailer is not None:
            canonical = "".join(f"{name}:{value}\n" for name, value in self.trailers.items())
            expected = self._signing.trailer(self._previous, hashlib.sha256(canonical.encode()).hexdigest())
            if not hmac.compare_digest(expected, trailer_signature or ""):
                raise _signature_mismatch("the aws-chunked trailer's signature")


def _signature_mismatch(what: str) -> OssError:
    return _error(
        403,
        "SignatureDoesNotMatch",
        f"The request signature we calculated does not match the signature you provided ({what}). "
        "Check your key and signing method.",
    )


def _incomplete(message: str) -> OssError:
    return _error(400, "IncompleteBody", message)


def oss_headers(headers: dict[str, str]) -> dict[str, str]:
    """Request headers with each ``x-amz-*`` one given its ``x-oss-*`` form (kept too)."""
    translated = dict(headers)
    for name, value in headers.items():
        if not name.startswith("x-amz-"):
            continue
        oss_name = "x-oss-" + name[len("x-amz-") :]
        if name == "x-amz-copy-source":
            value = value if value.startswith("/") else "/" + value
        elif name == "x-amz-storage-class":
            value = _STORAGE_CLASSES.get(value, value)
        elif name == "x-amz-acl":
            translated["x-oss-object-acl"] = value
        elif name == "x-amz-metadata-directive" or name == "x-amz-tagging-directive":
            value = value.upper() if name == "x-amz-metadata-directive" else value.capitalize()
        translated.setdefault(oss_name, value)
    return translated


def s3_response_headers(headers: dict[str, str]) -> dict[str, str]:
    """Response headers an S3 client reads: ``x-amz-meta-*``, ``x-amz-request-id``, storage class."""
    answered: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-oss-meta-"):
            answered["x-amz-meta-" + name[len("x-oss-meta-") :]] = value
        elif lower == "x-oss-request-id":
            answered["x-amz-request-id"] = value
            answered[name] = value
        elif lower == "x-oss-storage-class":
            answered["x-amz-storage-class"] = _S3_STORAGE_CLASSES.get(value, value)
            answered[name] = value
        else:
            answered[name] = value
    return answered


def acl_grants(owner: str, acl: str) -> str:
    """An OSS ACL as S3's ``<Grant>`` list: the owner's FULL_CONTROL, plus AllUsers READ (and WRITE)
    for the public ACLs. An object's ``default`` (inherit the bucket's) lists the owner only."""
    xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    grants = [
        f'<Grant><Grantee {xsi} xsi:type="CanonicalUser"><ID>{owner}</ID><DisplayName>{owner}</DisplayName>'
        "</Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    ]
    everyone = "http://acs.amazonaws.com/groups/global/AllUsers"
    for permission in {"public-read": ["READ"], "public-read-write": ["READ", "WRITE"]}.get(acl, []):
        grants.append(
            f'<Grant><Grantee {xsi} xsi:type="Group"><URI>{everyone}</URI></Grantee>'
            f"<Permission>{permission}</Permission></Grant>"
        )
    return "".join(grants)


def error_xml(error: OssError, request_id: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()

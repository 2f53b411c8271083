"""OSS wire details shared by the actions: names, dates, XML text, ranges, checksums."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from email.utils import formatdate
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

from oss2.utils import Crc64

from localcloud.oss.errors import OssError

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1023


def new_request_id() -> str:
    return secrets.token_hex(12).upper()


def http_date(ts: float | None = None) -> str:
    return formatdate(ts, usegmt=True)


def iso_time(ts: float) -> str:
    # OSS writes whole seconds with a literal ".000Z", and oss2's parser accepts only that.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.match(name):
        raise OssError(
            400,
            "InvalidBucketName",
            "The specified bucket is not valid. Bucket names are 3-63 characters of lower-case "
            "letters, digits and hyphens, and start and end with a letter or digit.",
            BucketName=name,
        )


def decode_key(raw: str) -> str:
    """The object key from its percent-encoded path form, refused if OSS would refuse it."""
    try:
        key = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise OssError(
            400, "InvalidObjectName", "The object name is not valid UTF-8.", ObjectName=raw
        ) from None
    check_key(key)
    return key


def check_key(key: str) -> None:
    """OSS's documented key rules: 1-1023 bytes of UTF-8, not starting with ``/`` or ``\\``.

    ``..`` segments, ``./`` and names that look like absolute paths are legal keys and are kept
    as they are: the store names files by random ids, never by key (see
    :mod:`localcloud.oss.store`), so no key can reach a path. NUL is refused although OSS does
    not document it: a key must be writable into the XML of a listing, and XML 1.0 cannot carry it.
    """
    problem = ""
    if not key:
        problem = "The object name must not be empty."
    elif len(key.encode("utf-8")) > MAX_KEY_BYTES:
        problem = f"The Length of Object name must be less than {MAX_KEY_BYTES + 1}."
    elif key.startswith(("/", "\\")):
        problem = "The object name must not start with '/' or '\\'."
    elif "\x00" in key:
        problem = "The object name must not contain NUL characters."
    if problem:
        raise OssError(400, "InvalidObjectName", problem, ObjectName=key)


def header_text(value: str) -> str:
    """A header value as the text the client meant: the server reads header bytes as ISO-8859-1,
    and clients (oss2 among them) send non-ASCII values, such as ``x-oss-meta-*``, as UTF-8.
    Bytes that are not UTF-8 stay as they were read."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def tag(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def xml_doc(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def url_encode(text: str, encode: bool) -> str:
    """Key text in list responses: percent-encoded when the request asked ``encoding-type=url``."""
    return quote(text, safe="/") if encode else text


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def crc64(data: bytes, init: int = 0) -> int:
    crc = Crc64(init)
    crc.update(data)
    return int(crc.crc)


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    return int(Crc64().combine(crc1, crc2, len2))


def check_content_md5(header: str | None, digest: bytes) -> None:
    """Refuse a body whose MD5 ``digest`` (raw bytes) is not the one ``Content-MD5`` announced."""
    if header is None:
        return
    if base64.b64encode(digest).decode() != header.strip():
        raise OssError(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified was invalid: it does not match the body's MD5 (base64 of the raw digest).",
            ContentMD5=header,
        )


def parse_range(header: str | None, size: int, standard: bool) -> tuple[int, int] | None:
    """``(start, end)`` inclusive, or ``None`` for the whole object.

    OSS ignores an invalid or out-of-range ``Range`` and sends the whole object with 200, unless
    the request carries ``x-oss-range-behavior: standard``; then an end past the object is cut
    to the object and a start past it is 416 InvalidRange.
    """
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        _reject_range(standard, header, size)
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or (suffix > size and not standard):
            _reject_range(standard, header, size)
            return None
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        _reject_range(standard, header, size)
        return None
    if end >= size:
        if not standard:
            return None
        end = size - 1
    return start, end


def _reject_range(standard: bool, header: str, size: int) -> None:
    if standard:
        raise OssError(
            416,
            "InvalidRange",
            "The requested range cannot be satisfied",
            RangeRequested=header,
            ActualObjectSize=str(size),
        )

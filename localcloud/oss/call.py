"""One parsed OSS request (:class:`OssRequest`) and the request/response helpers every action uses."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol

from localcloud.core.http import IncompleteBody, Request, Response
from localcloud.oss import wire
from localcloud.oss.errors import OssError, entity_too_large, incomplete_body, invalid_argument, malformed_xml

#: The most keys (objects, uploads, deletes) one request may ask for.
MAX_KEYS = 1000
#: The largest body an action that takes a document (XML or JSON) reads into memory. OSS does not
#: publish one limit for these bodies (UNCONFIRMED); this one is above the largest a valid request
#: makes (CompleteMultipartUpload naming 10,000 parts, DeleteMultipleObjects with 1,000 keys of
#: 1,023 bytes written as XML entities).
MAX_DOCUMENT_BYTES = 10 << 20


class BodySource(Protocol):
    """A request body read in pieces: ``length`` when known, ``read`` up to ``size`` bytes (``b""`` at the end)."""

    length: int | None

    def read(self, size: int) -> bytes: ...


@dataclass
class OssRequest:
    """One request, parsed: who it addresses, its query, and its body as it arrives."""

    request: Request
    request_id: str
    bucket: str
    key: str
    params: dict[str, str]
    #: The body (through the S3 API: its payload, without the aws-chunked framing).
    body: BodySource
    #: ``x-amz-content-sha256`` when it is the hex SHA-256 of the body (S3 API): checked once
    #: the body is read, before it is used.
    body_sha256: str | None = None
    _document: bytes | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body; ``b""`` at its end."""
        try:
            return self.body.read(size)
        except IncompleteBody as exc:
            raise incomplete_body(str(exc)) from None

    def document(self) -> bytes:
        """The whole body of an action that takes a small document (XML, JSON), read once.

        Refused with 400 EntityTooLarge past :data:`MAX_DOCUMENT_BYTES`; checked against
        ``x-amz-content-sha256`` when the request carries the body's hash.
        """
        if self._document is None:
            if self.body.length is not None and self.body.length > MAX_DOCUMENT_BYTES:
                raise entity_too_large(self.body.length, MAX_DOCUMENT_BYTES)
            parts: list[bytes] = []
            size = 0
            while chunk := self.read(1 << 20):
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise entity_too_large(size, MAX_DOCUMENT_BYTES)
                parts.append(chunk)
            document = b"".join(parts)
            if self.body_sha256 is not None:
                check_sha256(self.body_sha256, hashlib.sha256(document).hexdigest())
            self._document = document
        return self._document

    @property
    def encode_keys(self) -> bool:
        return self.params.get("encoding-type") == "url"


def check_sha256(expected: str, computed: str) -> None:
    if computed != expected:
        raise OssError(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ClientComputedContentSHA256=expected,
            S3ComputedContentSHA256=computed,
        )


def xml_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": "application/xml", **(headers or {})}, wire.xml_doc(body))


def json_response(status: int, value: object) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(value).encode())


def parse_xml(body: bytes, root_tag: str) -> ElementTree.Element:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise malformed_xml(str(exc)) from None
    # S3 clients put their documents in S3's namespace; OSS's have none. Names are compared bare.
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    if root.tag != root_tag:
        raise malformed_xml(f"the root element must be <{root_tag}>, not <{root.tag}>")
    return root


def int_param(params: dict[str, str], name: str, default: int | None, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or (text == "" and default is not None):
        if default is None:
            raise invalid_argument(f"{name} is required.", name, "")
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise invalid_argument(f"{name} must be an integer from {low} to {high}.", name, text)
    return int(text)


def http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def user_meta(stored: dict[str, str]) -> dict[str, str]:
    # Stored values are the header bytes as read (sent back unchanged); events carry their text.
    return {k: wire.header_text(v) for k, v in stored.items() if k.startswith("x-oss-meta-")}

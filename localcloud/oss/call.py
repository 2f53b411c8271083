"""One parsed OSS request (:class:`Call`) and the request/response helpers every action uses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from localcloud.core.http import Request, Response
from localcloud.oss import wire
from localcloud.oss.errors import invalid_argument, malformed_xml

#: The most keys (objects, uploads, deletes) one request may ask for.
MAX_KEYS = 1000


@dataclass
class Call:
    """One request, parsed: who it addresses and its query."""

    request: Request
    request_id: str
    bucket: str
    key: str
    params: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @property
    def encode_keys(self) -> bool:
        return self.params.get("encoding-type") == "url"


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

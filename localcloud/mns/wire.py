"""The MNS XML wire format: reading request bodies and writing response bodies.

Every body is ``<?xml ...?><Root xmlns="http://mns.aliyuncs.com/doc/v1/">…``; the SDK tells
success from failure by the root element's name alone, so callers pass exact names.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from xml.sax.saxutils import escape

from localcloud.mns.errors import invalid_argument, malformed_xml

XMLNS = "http://mns.aliyuncs.com/doc/v1/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
#: A field is either text or a list of nested fields (for UserProperties and list items).
Field = tuple[str, "str | int | list[Field]"]


def body_md5(text: str) -> str:
    """MNS's MessageBodyMD5: upper-case hex MD5 of the body text as stored."""
    return hashlib.md5(text.encode()).hexdigest().upper()


def _render(fields: Iterable[Field]) -> str:
    parts = []
    for name, value in fields:
        inner = _render(value) if isinstance(value, list) else escape(str(value))
        parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)


def document(root: str, fields: Iterable[Field]) -> bytes:
    return f'{XML_DECLARATION}<{root} xmlns="{XMLNS}">{_render(fields)}</{root}>'.encode()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse(body: bytes, roots: Iterable[str]) -> tuple[str, ET.Element]:
    """Parse a request body whose root must be one of ``roots``; return (root name, element)."""
    wanted = tuple(roots)
    if not body.strip():
        raise malformed_xml(f"The request body is empty; expected an XML <{'> or <'.join(wanted)}> document.")
    try:
        element = ET.fromstring(body)
    except ET.ParseError as e:
        raise malformed_xml(f"The request body is not well-formed XML ({e}).") from None
    root = _local(element.tag)
    if root not in wanted:
        raise malformed_xml(
            f"The request body's root element is <{root}>; expected <{'> or <'.join(wanted)}>."
        )
    return root, element


def children(element: ET.Element) -> dict[str, ET.Element]:
    return {_local(child.tag): child for child in element}


def text_fields(element: ET.Element) -> dict[str, str]:
    """The element's direct children as name → text (nested elements give ``""``)."""
    return {name: (child.text or "") for name, child in children(element).items()}


def items(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def int_field(fields: dict[str, str], name: str, low: int, high: int) -> int | None:
    """An optional integer field, checked against the documented range."""
    if name not in fields:
        return None
    raw = fields[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise invalid_argument(f"The value of {name} must be an integer, got {raw!r}.") from None
    if not low <= value <= high:
        raise invalid_argument(f"The value of {name} should be between {low} and {high}, got {value}.")
    return value


def bool_field(fields: dict[str, str], name: str) -> bool | None:
    if name not in fields:
        return None
    raw = fields[name].strip().lower()
    if raw not in ("true", "false"):
        raise invalid_argument(f"The value of {name} must be True or False, got {fields[name]!r}.")
    return raw == "true"


def properties(element: ET.Element | None) -> list[dict[str, str]]:
    """``<UserProperties><PropertyValue><Name/><Value/><Type/></PropertyValue>…`` as dicts."""
    if element is None:
        return []
    return [text_fields(item) for item in items(element, "PropertyValue")]


def properties_field(props: list[dict[str, str]]) -> list[Field]:
    return [("UserProperties", [("PropertyValue", [(k, v) for k, v in p.items()]) for p in props])]

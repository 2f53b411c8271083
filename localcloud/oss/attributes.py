"""What OSS keeps about an object besides its bytes: storage class, tags, ACL, restore state.

The rules are OSS's documented ones (see ``docs/local-cloud-compatibility.md`` for the pages):

- storage classes ``Standard``, ``IA``, ``Archive``, ``ColdArchive``, ``DeepColdArchive``; an
  object of the last three is not readable until RestoreObject made a readable copy;
- object tags: at most 10, unique keys, a key 1-128 characters, a value up to 256, letters,
  digits, space and ``+ - = . _ : /``; sent as ``x-oss-tagging: k1=v1&k2=v2`` (URL-encoded) or
  as a ``<Tagging><TagSet><Tag>`` document;
- ACLs: a bucket's is ``private``, ``public-read`` or ``public-read-write``; an object's adds
  ``default`` (inherit the bucket's).
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote_plus

from localcloud.oss.errors import OssError, invalid_argument

STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
#: Classes whose objects cannot be read until restored.
ARCHIVED_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
BUCKET_ACLS = ("private", "public-read", "public-read-write")
OBJECT_ACLS = ("default", *BUCKET_ACLS)

MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_TEXT = re.compile(r"[A-Za-z0-9 +\-=._:/]*")

#: How long a restored copy stays readable when RestoreObject names no ``Days`` (OSS: 1 day).
DEFAULT_RESTORE_DAYS = 1


def storage_class(value: str | None, default: str = "Standard", header: str = "x-oss-storage-class") -> str:
    if value is None or value == "":
        return default
    # OSS accepts the class names in any case and answers with its own spelling.
    for name in STORAGE_CLASSES:
        if name.lower() == value.strip().lower():
            return name
    raise invalid_argument(f"{header} must be one of {', '.join(STORAGE_CLASSES)}.", header, value)


def object_acl(value: str | None, header: str = "x-oss-object-acl") -> str:
    acl = (value or "default").strip()
    if acl not in OBJECT_ACLS:
        raise invalid_argument(f"{header} must be one of {', '.join(OBJECT_ACLS)}.", header, acl)
    return acl


def bucket_acl(value: str | None, header: str = "x-oss-acl") -> str:
    acl = (value or "private").strip()
    if acl not in BUCKET_ACLS:
        raise invalid_argument(f"{header} must be one of {', '.join(BUCKET_ACLS)}.", header, acl)
    return acl


def _invalid_tag(message: str) -> OssError:
    return OssError(400, "InvalidTag", message)


def check_tags(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The tags as a dict in their order, or :class:`OssError` naming the rule broken."""
    if len(pairs) > MAX_TAGS:
        raise _invalid_tag(f"An object can have at most {MAX_TAGS} tags; {len(pairs)} were given.")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key:
            raise _invalid_tag("A tag key must not be empty.")
        if len(key) > MAX_TAG_KEY:
            raise _invalid_tag(f"The tag key {key[:20]!r}... is longer than {MAX_TAG_KEY} characters.")
        if len(value) > MAX_TAG_VALUE:
            raise _invalid_tag(f"The value of tag {key!r} is longer than {MAX_TAG_VALUE} characters.")
        for text in (key, value):
            if not _TAG_TEXT.fullmatch(text):
                raise _invalid_tag(
                    f"The tag {key!r}={value!r} has a character OSS does not allow: tags hold letters, "
                    "digits, spaces and + - = . _ : /"
                )
        if key in tags:
            raise _invalid_tag(f"The tag key {key!r} is given twice; tag keys must be unique.")
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str]:
    """``x-oss-tagging: k1=v1&k2`` (URL-encoded keys and values) as a tag dict."""
    if not value:
        return {}
    pairs: list[tuple[str, str]] = []
    for item in value.split("&"):
        if not item:
            continue
        if item.count("=") > 1:
            raise invalid_argument(
                "x-oss-tagging must be key1=value1&key2=value2 (URL-encoded), with one '=' per tag.",
                "x-oss-tagging",
                value,
            )
        key, _, tag_value = item.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(tag_value)))
    return check_tags(pairs)


def restore_header(
    object_class: str, ready_at: float | None, expires_at: float | None, now: float | None = None
) -> str | None:
    """The ``x-oss-restore`` value OSS sends for an archived object, or None when it sends none."""
    if object_class not in ARCHIVED_CLASSES or ready_at is None or expires_at is None:
        return None
    now = time.time() if now is None else now
    if now < ready_at:
        return 'ongoing-request="true"'
    if now >= expires_at:
        return None  # the restored copy is gone again: the object reads as never restored
    expiry = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expires_at))
    return f'ongoing-request="false", expiry-date="{expiry}"'


def readable(
    object_class: str, ready_at: float | None, expires_at: float | None, now: float | None = None
) -> bool:
    """Whether GetObject may read the bytes: not archived, or restored and not yet expired again."""
    if object_class not in ARCHIVED_CLASSES:
        return True
    now = time.time() if now is None else now
    return ready_at is not None and expires_at is not None and ready_at <= now < expires_at

"""OSS URIs: ``oss://<bucket>/<key>``, the only form IMM accepts for sources and targets.

The rules are those of the IMM docs (docs/imm.md#limits): an HTTP URL is wrong, and so is an endpoint
host in place of the bucket (``oss://bucket.oss-cn-hangzhou.aliyuncs.com/...``). Bucket and key
rules are OSS's own naming rules. Every refusal says what the right form looks like.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from immflow.errors import ImmflowError

SCHEME = "oss://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ENDPOINT_HOST = re.compile(r"\.(oss|oss-[a-z0-9-]+)(-internal)?\.aliyuncs\.com$|\.aliyuncs\.com$")
MAX_KEY_BYTES = 1023
RIGHT_FORM = "oss://<bucket>/<key>, for example oss://my-bucket/videos/intro.mp4"


class OssUriError(ImmflowError, ValueError):
    """A string that should be an ``oss://bucket/key`` URI is not one."""

    def __init__(self, value: str, problem: str, field: str = "") -> None:
        self.value = value
        self.field = field
        self.problem = problem
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{value!r} is not a valid OSS URI: {problem}. Write it as {RIGHT_FORM}")


def check_bucket_name(bucket: str) -> str | None:
    """Return why ``bucket`` is not a valid OSS bucket name, or ``None`` when it is."""
    if not _BUCKET.match(bucket):
        return (
            f"bucket name {bucket!r} must be 3 to 63 characters of lower-case letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return None


def check_object_key(key: str, *, allow_prefix: bool = False) -> str | None:
    """Return why ``key`` is not a usable OSS object key, or ``None`` when it is.

    Besides OSS's own rules (1 to 1023 UTF-8 bytes, not starting with ``/`` or ``\\``) this
    refuses NUL and ``..`` segments, which no real media key needs and which would let a key
    escape a folder on a local disk. ``allow_prefix`` accepts a folder (``out/``) or an empty key.
    """
    if not key:
        return None if allow_prefix else "the object key is empty"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"the object key is longer than {MAX_KEY_BYTES} bytes"
    if key[0] in "/\\":
        return "the object key must not start with '/' or '\\' (is there a '//' after the bucket?)"
    if "\x00" in key:
        return "the object key contains a NUL character"
    if ".." in key.replace("\\", "/").split("/"):
        return "the object key contains a '..' segment"
    if key.endswith("/") and not allow_prefix:
        return "the object key ends with '/', which names a folder, not an object"
    return None


@dataclass(frozen=True, order=True)
class OssUri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, value: str, *, field: str = "", allow_prefix: bool = False) -> OssUri:
        """Parse and validate ``value``; ``allow_prefix`` accepts ``oss://bucket/folder/`` and ``oss://bucket/``."""
        if not isinstance(value, str):
            raise OssUriError(repr(value), "it is not a string", field)
        if value.lower().startswith(("http://", "https://")):
            raise OssUriError(value, "an HTTP URL is not accepted", field)
        if not value.startswith(SCHEME):
            raise OssUriError(value, "it does not start with oss://", field)
        bucket, slash, key = value[len(SCHEME) :].partition("/")
        if _ENDPOINT_HOST.search(bucket):
            raise OssUriError(value, f"{bucket!r} is an endpoint host; put only the bucket name there", field)
        problem = check_bucket_name(bucket)
        if problem is None and not slash and not allow_prefix:
            problem = "there is no object key after the bucket"
        if problem is None:
            problem = check_object_key(key, allow_prefix=allow_prefix)
        if problem is not None:
            raise OssUriError(value, problem, field)
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def dirname(self) -> str:
        """The key's folder without leading or trailing ``/``; ``""`` for an object at the bucket root."""
        return posixpath.dirname(self.key).strip("/")

    @property
    def basename(self) -> str:
        return posixpath.basename(self.key)

    @property
    def barename(self) -> str:
        base = self.basename
        dot = base.rfind(".")
        return base[:dot] if dot > 0 else base

    @property
    def ext(self) -> str:
        """The extension without the dot, as written in the key (``""`` when there is none)."""
        base = self.basename
        dot = base.rfind(".")
        return base[dot + 1 :] if dot > 0 else ""

    def child(self, key: str) -> OssUri:
        return OssUri(self.bucket, key)

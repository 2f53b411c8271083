"""The event a native OSS trigger hands to a Function Compute function.

Shape: docs/events.md#oss-trigger-event (FC 3.0 "触发器event格式" and the fc3 event template). The models keep the
cloud's own field names, as Powertools does for AWS events, and allow unknown fields so a field the
cloud adds later does not break parsing.

Object keys are used exactly as they arrive: the trigger delivers the raw object name, not a
URL-encoded one (docs/events.md#oss-trigger-event: every official FC library and sample passes the key straight to
the OSS SDK). Calling ``unquote_plus`` on it, as handlers ported from AWS Lambda do, would corrupt real
keys: a literal ``+`` would become a space and a literal ``%41`` would become ``A``.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from immflow.parsing import UtcDatetime, expect_object, load_json, parse_model

KIND = "OSS trigger event"

OssEventName = Literal[
    "ObjectCreated:PutObject",
    "ObjectCreated:PostObject",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectCreated:AppendObject",
    "ObjectCreated:CopyObject",
    "ObjectCreated:PutSymlink",
    "ObjectCreated:InitiateMultipartUpload",
    "ObjectCreated:UploadPart",
    "ObjectCreated:UploadPartCopy",
    "ObjectRemoved:DeleteObject",
    "ObjectRemoved:DeleteObjects",
    "ObjectRemoved:AbortMultipartUpload",
    "ObjectModified:UpdateObjectMeta",
    # Only in the FC 2.0 Go SDK constants (docs/events.md#oss-trigger-event), accepted so such a trigger does not fail.
    "ObjectReplication:ObjectCreated",
    "ObjectReplication:ObjectRemoved",
    "ObjectReplication:ObjectModified",
]
"""Every event name a trigger can deliver; in the event it has no ``oss:`` prefix."""

OSS_EVENT_NAMES: frozenset[str] = frozenset(get_args(OssEventName))


class _CloudModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


#: OSS's own limits (OSS documentation, "Bucket naming conventions" and "Object naming conventions"):
#: anything longer did not come from OSS, and would only bloat logs and ledger rows.
MAX_BUCKET_NAME = 63
MAX_KEY_BYTES = 1023


class OssBucket(_CloudModel):
    arn: str
    name: str = Field(min_length=1, max_length=MAX_BUCKET_NAME)
    ownerIdentity: str
    virtualBucket: str | None = None
    """Only in older samples, always ``""`` there."""


class OssObjectMeta(_CloudModel):
    """Present only in the 2025 FC 3.0 sample; whether the cloud always sends it is UNCONFIRMED."""

    mimeType: str | None = None
    userMeta: dict[str, str] = Field(default_factory=dict)
    """The ``x-oss-meta-*`` headers of the object, keys with the prefix."""


class OssObject(_CloudModel):
    key: str = Field(min_length=1)
    """The object name, raw (see the module docstring); at most 1023 bytes of UTF-8, as OSS allows."""
    eTag: str | None = Field(default=None, max_length=128)
    """Upper-case hex MD5 (``-N`` suffixed for multipart uploads), without quotes."""
    size: int | None = Field(default=None, ge=0)
    deltaSize: int | None = None
    """Size change of the bucket: ``size`` for a new object, ``new - old`` for an overwrite."""
    objectMeta: OssObjectMeta | None = None
    versionId: str | None = Field(default=None, max_length=255)
    """The object's version id on a versioned bucket. No FC sample shows it; taken when present
    (UNCONFIRMED, as in the S3 event shape OSS's follows), and only ever compared for equality."""

    @field_validator("key")
    @classmethod
    def _key_fits_oss(cls, key: str) -> str:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_BYTES:
            raise ValueError(
                f"an OSS object key is at most {MAX_KEY_BYTES} bytes of UTF-8; this one is {size:,}"
            )
        return key


class OssDetails(_CloudModel):
    bucket: OssBucket
    object: OssObject
    ossSchemaVersion: str
    ruleId: str


class OssRequestParameters(_CloudModel):
    sourceIPAddress: str


class OssResponseElements(_CloudModel):
    requestId: str
    """The ``x-oss-request-id`` of the request that caused the event."""


class OssUserIdentity(_CloudModel):
    principalId: str


class OssEventRecord(_CloudModel):
    eventName: OssEventName
    eventSource: str
    eventTime: UtcDatetime
    eventVersion: str
    oss: OssDetails
    region: str
    requestParameters: OssRequestParameters
    responseElements: OssResponseElements
    userIdentity: OssUserIdentity

    @field_validator("oss")
    @classmethod
    def _object_described_unless_removed(cls, oss: OssDetails, info: ValidationInfo) -> OssDetails:
        # The doc template does not mark size/eTag/deltaSize as event-specific, so every event except a
        # removal (for which no sample exists, docs/events.md#oss-trigger-event) must carry them.
        event_name = info.data.get("eventName")
        if event_name is None or _is_removal(event_name):
            return oss
        missing = [name for name in ("eTag", "size", "deltaSize") if getattr(oss.object, name) is None]
        if missing:
            names = ", ".join(f"object.{name}" for name in missing)
            raise ValueError(f"{names} required for {event_name} events (only removals may omit them)")
        return oss

    @property
    def bucket(self) -> str:
        return self.oss.bucket.name

    @property
    def key(self) -> str:
        return self.oss.object.key

    @property
    def source_uri(self) -> str:
        """The object as IMM names it: ``oss://<bucket>/<key>``, key unaltered."""
        return f"oss://{self.oss.bucket.name}/{self.oss.object.key}"

    @property
    def etag(self) -> str | None:
        """The object's ETag as OSS's ``ETag`` header gives it, minus quotes; None only on a removal
        event that does not carry one."""
        tag = self.oss.object.eTag
        return None if tag is None else tag.strip('"')


def _is_removal(event_name: str) -> bool:
    return event_name.startswith("ObjectRemoved:") or event_name == "ObjectReplication:ObjectRemoved"


class OssEvent(_CloudModel):
    """The whole trigger event. The docs say each API call triggers once, so `events` normally holds one
    record; iterate anyway."""

    events: list[OssEventRecord] = Field(min_length=1)


def parse_oss_event(event: bytes | str | dict[str, object]) -> OssEvent:
    """Parse the `event` argument of an FC handler behind an OSS trigger (the UTF-8 JSON bytes, or an
    already-decoded object); raises `PayloadError` naming the bad field."""
    data = event if isinstance(event, dict) else load_json(event, KIND)
    return parse_model(OssEvent, expect_object(data, KIND), KIND)

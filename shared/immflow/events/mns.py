"""The event an MNS topic trigger hands to a Function Compute function, unwrapped into one message model.

Shapes (docs/events.md#mns-topic-trigger-event), chosen by the trigger's ``notifyContentFormat``:

* ``STREAM`` without message attributes: the event is the published body, byte for byte.
* ``STREAM`` with attributes: ``{"body": "<body>", "attrs": {"Extend": "{\\"key\\":\\"value\\"}"}}``.
* ``JSON``: ``{"TopicOwner", "Message", "Subscriber", "PublishTime", "SubscriptionName", "MessageMD5",
  "TopicName", "MessageId"}`` (``PublishTime`` epoch ms, an int in FC events and a string in MNS queue
  pushes; ``MessageTag`` possibly), plus the attribute keys flattened in at the top level.

MNS and FC never Base64-encode the body; a publisher that did (``Base64TopicMessage``) leaves Base64
text in `MnsTopicMessage.body`, which the payload's own parser must handle.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from immflow.errors import PayloadError
from immflow.parsing import EpochMsDatetime, load_json, parse_model

KIND = "MNS topic trigger event"

ContentFormat = Literal["STREAM", "JSON"]


class MnsJsonEvent(BaseModel):
    """The ``JSON`` trigger format, with the cloud's field names; attribute keys land in the extras."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    TopicOwner: str
    Message: str
    Subscriber: str = ""
    PublishTime: EpochMsDatetime | None = None
    SubscriptionName: str = ""
    MessageMD5: str = ""
    TopicName: str = ""
    MessageId: str
    MessageTag: str | None = None


class MnsStreamAttrsEvent(BaseModel):
    """The ``STREAM`` trigger format when the message had attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    body: str
    attrs: dict[str, JsonValue] = Field(default_factory=dict)


class MnsTopicMessage(BaseModel):
    """One topic message, whatever trigger format carried it.

    This is immflow's own model (snake_case), not a cloud payload: the metadata is None when the
    format does not carry it (``STREAM`` carries only the body and the attributes).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    body: str
    content_format: ContentFormat
    message_id: str | None = None
    topic_name: str | None = None
    topic_owner: str | None = None
    subscription_name: str | None = None
    publish_time: datetime | None = None
    message_md5: str | None = None
    message_tag: str | None = None
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    """User attributes: the keys of the ``Extend`` JSON object (flattened the way the ``JSON`` format
    flattens them, so both formats read alike), plus any other attribute as given."""


_JSON_FORMAT_MARKERS = frozenset({"TopicOwner", "Message", "MessageId"})
_STREAM_WRAPPER_KEYS = frozenset({"body", "attrs"})


def parse_mns_trigger_event(
    event: bytes | str, content_format: ContentFormat | None = None
) -> MnsTopicMessage:
    """Parse the `event` of an FC function behind an MNS topic trigger.

    With `content_format` None the format is detected:

    * a JSON object holding ``TopicOwner``, ``Message`` and ``MessageId`` is the ``JSON`` format;
    * a JSON object whose keys are exactly ``body`` (a string) and optionally ``attrs`` (an object) is
      ``STREAM`` with attributes;
    * anything else (not JSON, or other JSON) is a ``STREAM`` body, taken verbatim.

    The one ambiguity: a ``STREAM`` message whose *published body* is itself such a JSON object (only
    ``body``/``attrs``, or the three JSON-format keys) is indistinguishable from the wrappers and is
    unwrapped. Passing `content_format` removes the JSON-format half of it; the ``body``/``attrs`` half
    remains even then, because FC itself emits both forms under ``STREAM``. IMM notifications never
    have that shape.
    """
    text = _as_text(event)
    if content_format == "JSON":
        data = load_json(text, KIND)
        if not isinstance(data, dict):
            raise PayloadError(KIND, "", "a JSON-format trigger event must be a JSON object")
        return _from_json_format(data)
    data = _json_object_or_none(text)
    if data is not None:
        if content_format is None and data.keys() >= _JSON_FORMAT_MARKERS:
            return _from_json_format(data)
        if "body" in data and data.keys() <= _STREAM_WRAPPER_KEYS and isinstance(data["body"], str):
            wrapper = parse_model(MnsStreamAttrsEvent, data, KIND)
            return MnsTopicMessage(
                body=wrapper.body, content_format="STREAM", attributes=_flatten_extend(wrapper.attrs)
            )
    return MnsTopicMessage(body=text, content_format="STREAM")


def _as_text(event: bytes | str) -> str:
    if isinstance(event, str):
        return event
    try:
        return event.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(KIND, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _json_object_or_none(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None  # a STREAM body is the published message, whatever it holds
    return data if isinstance(data, dict) else None


def _from_json_format(data: dict[str, Any]) -> MnsTopicMessage:
    event = parse_model(MnsJsonEvent, data, KIND)
    return MnsTopicMessage(
        body=event.Message,
        content_format="JSON",
        message_id=event.MessageId,
        topic_name=event.TopicName or None,
        topic_owner=event.TopicOwner,
        subscription_name=event.SubscriptionName or None,
        publish_time=event.PublishTime,
        message_md5=event.MessageMD5 or None,
        message_tag=event.MessageTag,
        attributes=dict(event.model_extra or {}),
    )


def _flatten_extend(attrs: dict[str, JsonValue]) -> dict[str, JsonValue]:
    flattened = {name: value for name, value in attrs.items() if name != "Extend"}
    extend = attrs.get("Extend")
    if extend is None:
        return flattened
    try:
        extended = json.loads(extend) if isinstance(extend, str) else extend
    except json.JSONDecodeError:
        extended = None
    if isinstance(extended, dict):
        flattened.update(extended)
    else:
        # Not a JSON object: there are no keys to flatten, so keep the attribute itself.
        flattened["Extend"] = extend
    return flattened

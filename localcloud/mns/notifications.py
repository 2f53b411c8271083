"""What a subscription endpoint receives for one published message, per NotifyContentFormat.

Facts from docs/mns.md#push-to-subscriptions and docs/mns.md:
- MNS never base64-encodes: ``Message`` (and the SIMPLIFIED body) is the published body as sent.
- XML: ``<Notification>`` with TopicOwner, TopicName, Subscriber, SubscriptionName, MessageId,
  Message, MessageMD5, [MessageTag], PublishTime (epoch ms).
- JSON: compact, keys in the captured order TopicOwner, Message, Subscriber, PublishTime,
  SubscriptionName, MessageMD5, TopicName, MessageId, with PublishTime a *string*.
  MessageTag appears only when the message had one; its position is UNCONFIRMED, and we put it
  just before PublishTime as the documentation's example does.
- SIMPLIFIED: the raw body, with the message's details in ``x-mns-*`` headers (HTTP only).

Message attributes (DirectMail/DirectSMS/Extend) and UserProperties are stored with the topic
message but not rendered into notifications: no source shows where MNS would put them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from localcloud.mns.wire import document

FORMATS = ("XML", "JSON", "SIMPLIFIED")
CONTENT_TYPES = {
    "XML": "text/xml;charset=utf-8",
    # UNCONFIRMED for JSON; SIMPLIFIED's text/plain is from the 2024 Go sample.
    "JSON": "application/json;charset=utf-8",
    "SIMPLIFIED": "text/plain;charset=utf-8",
}


@dataclass(frozen=True)
class Notification:
    topic_owner: str
    topic_name: str
    subscriber: str
    subscription_name: str
    message_id: str
    message: str
    message_md5: str
    message_tag: str
    publish_time: int


def render(n: Notification, notify_format: str) -> tuple[str, dict[str, str]]:
    """The body text and the extra ``x-mns-*`` headers (SIMPLIFIED only) for one format."""
    if notify_format == "XML":
        fields: list[tuple[str, str | int]] = [
            ("TopicOwner", n.topic_owner),
            ("TopicName", n.topic_name),
            ("Subscriber", n.subscriber),
            ("SubscriptionName", n.subscription_name),
            ("MessageId", n.message_id),
            ("Message", n.message),
            ("MessageMD5", n.message_md5),
        ]
        if n.message_tag:
            fields.append(("MessageTag", n.message_tag))
        fields.append(("PublishTime", n.publish_time))
        return document("Notification", fields).decode(), {}
    if notify_format == "JSON":
        obj: dict[str, str] = {"TopicOwner": n.topic_owner, "Message": n.message, "Subscriber": n.subscriber}
        if n.message_tag:
            obj["MessageTag"] = n.message_tag
        obj.update(
            PublishTime=str(n.publish_time),
            SubscriptionName=n.subscription_name,
            MessageMD5=n.message_md5,
            TopicName=n.topic_name,
            MessageId=n.message_id,
        )
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False), {}
    headers = {
        "x-mns-message-id": n.message_id,
        "x-mns-topic-owner": n.topic_owner,
        "x-mns-topic-name": n.topic_name,
        "x-mns-subscriber": n.subscriber,
        "x-mns-subscription-name": n.subscription_name,
        "x-mns-publish-time": str(n.publish_time),
    }
    if n.message_tag:
        headers["x-mns-message-tag"] = n.message_tag
    return n.message, headers

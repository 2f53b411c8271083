"""Topic and subscription actions, publishing, and pushes to queue endpoints (encoding-facts Q2)."""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING

import mns.account
import pytest
from mns.message_property import MessagePropertyValue
from mns.mns_exception import MNSServerException
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import Base64TopicMessage, DirectMailInfo, TopicMessage, TopicMeta

if TYPE_CHECKING:
    from tests.support.mns import LocalMns


NS = "{http://mns.aliyuncs.com/doc/v1/}"


def _error(call: Callable[..., object], *args: object) -> MNSServerException:
    with pytest.raises(MNSServerException) as info:
        call(*args)
    return info.value


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def test_topic_lifecycle(account: mns.account.Account) -> None:
    topic = account.get_topic("events")
    url = topic.create(TopicMeta())
    assert url.endswith("/topics/events")
    assert topic.create(TopicMeta()) == url
    assert _error(topic.create, TopicMeta(maximum_message_size=2048)).type == "TopicAlreadyExist"

    meta = topic.get_attributes()
    assert (meta.topic_name, meta.maximum_message_size, meta.message_retention_period) == (
        "events",
        65536,
        86400,
    )
    assert (meta.message_count, meta.logging_enabled) == (0, False)
    topic.set_attributes(TopicMeta(maximum_message_size=4096, logging_enabled=True))
    meta = topic.get_attributes()
    assert (meta.maximum_message_size, meta.logging_enabled) == (4096, True)

    account.get_topic("events-2").create(TopicMeta())
    account.get_topic("zzz").create(TopicMeta())
    urls, marker = account.list_topic(prefix="events", ret_number=1)
    assert urls == [url] and marker
    urls, marker = account.list_topic(prefix="events", ret_number=1, marker=marker)
    assert [u.rsplit("/", 1)[1] for u in urls] == ["events-2"] and marker == ""

    topic.delete()
    assert _error(topic.get_attributes).type == "TopicNotExist"
    assert _error(topic.publish_message, TopicMessage("x")).type == "TopicNotExist"
    assert _error(account.get_topic("bad_name").create, TopicMeta()).type == "InvalidTopicName"


def test_subscription_lifecycle(local_mns: LocalMns, account: mns.account.Account) -> None:
    topic = account.get_topic("t")
    topic.create(TopicMeta())
    sub = topic.get_subscription("s1")
    meta = SubscriptionMeta("http://127.0.0.1:1/hook", "EXPONENTIAL_DECAY_RETRY", "JSON", "tagA")
    url = sub.subscribe(meta)
    assert url.endswith("/topics/t/subscriptions/s1")
    assert sub.subscribe(meta) == url
    other = SubscriptionMeta("http://127.0.0.1:1/other", "EXPONENTIAL_DECAY_RETRY", "JSON", "tagA")
    assert _error(sub.subscribe, other).type == "SubscriptionAlreadyExist"

    got = sub.get_attributes()
    assert (got.topic_owner, got.topic_name, got.subscription_name) == (
        local_mns.account.account_id,
        "t",
        "s1",
    )
    assert (got.endpoint, got.filter_tag) == ("http://127.0.0.1:1/hook", "tagA")
    assert (got.notify_strategy, got.notify_content_format) == ("EXPONENTIAL_DECAY_RETRY", "JSON")

    sub.set_attributes(SubscriptionMeta(notify_strategy="BACKOFF_RETRY"))
    assert sub.get_attributes().notify_strategy == "BACKOFF_RETRY"

    topic.get_subscription("s2").subscribe(SubscriptionMeta(local_mns.queue_endpoint("q")))
    defaults = topic.get_subscription("s2").get_attributes()
    assert (defaults.notify_strategy, defaults.notify_content_format, defaults.filter_tag) == (
        "BACKOFF_RETRY",
        "XML",
        "",
    )
    urls, marker = topic.list_subscription()
    assert [u.rsplit("/", 1)[1] for u in urls] == ["s1", "s2"] and marker == ""
    urls, marker = topic.list_subscription(ret_number=1)
    assert len(urls) == 1 and marker == "s2"

    sub.unsubscribe()
    assert _error(sub.get_attributes).type == "SubscriptionNotExist"
    assert _error(sub.unsubscribe).type == "SubscriptionNotExist"
    assert _error(account.get_topic("nope").get_subscription("s").get_attributes).type == "TopicNotExist"


def test_subscribe_rejects_bad_endpoints(local_mns: LocalMns, account: mns.account.Account) -> None:
    topic = account.get_topic("t")
    topic.create(TopicMeta())
    for endpoint in ["ftp://x", "acs:mns:cn-beijing:1:queues/q", "queues/q"]:
        error = _error(topic.get_subscription("s").subscribe, SubscriptionMeta(endpoint))
        assert error.type == "InvalidEndpoint", endpoint
    error = _error(topic.get_subscription("s").subscribe, SubscriptionMeta("mail:directmail:a@example.com"))
    assert error.type == "NotImplemented" and "not implemented locally" in error.message
    error = _error(topic.get_subscription("s").subscribe, SubscriptionMeta("http://x", "SOMETIMES"))
    assert error.type == "InvalidArgument"
    assert _error(topic.get_subscription("bad_name").subscribe, SubscriptionMeta("http://x")).type == (
        "InvalidSubscriptionName"
    )


def test_publish_returns_id_and_md5_and_counts(account: mns.account.Account) -> None:
    topic = account.get_topic("t")
    topic.create(TopicMeta(maximum_message_size=1024))
    message = TopicMessage(
        '{"a":1}', "tagA", direct_mail=DirectMailInfo("sender@example.com", "subject", 0, 0, 0)
    )
    message.add_user_property("taskType", MessagePropertyValue.create_string("MediaConvert"))
    published = topic.publish_message(message)
    assert published.message_body_md5 == _md5('{"a":1}') and len(published.message_id) == 32
    assert topic.get_attributes().message_count == 1
    error = _error(topic.publish_message, TopicMessage("x" * 1025))
    assert error.type == "InvalidArgument" and "1025" in error.message


def _queue_subscription(local_mns: LocalMns, account: mns.account.Account, fmt: str, tag: str = "") -> None:
    account.get_queue(f"q-{fmt.lower()}").create(QueueMeta())
    account.get_topic("t").get_subscription(f"s-{fmt.lower()}").subscribe(
        SubscriptionMeta(
            local_mns.queue_endpoint(f"q-{fmt.lower()}"), notify_content_format=fmt, filter_tag=tag
        )
    )


def test_push_to_queue_in_all_three_formats(local_mns: LocalMns, account: mns.account.Account) -> None:
    account.get_topic("t").create(TopicMeta())
    for fmt in ["XML", "JSON", "SIMPLIFIED"]:
        _queue_subscription(local_mns, account, fmt)
    before = int(time.time() * 1000)
    published = account.get_topic("t").publish_message(TopicMessage('{"k": "v"}'))
    assert local_mns.service.wait_for_deliveries(5)
    owner = local_mns.account.account_id

    def receive(fmt: str) -> str:
        queue = account.get_queue(f"q-{fmt.lower()}")
        queue.set_encoding(False)  # MNS stores the notification as text, never base64
        message = queue.receive_message(0)
        assert message.message_body_md5 == _md5(message.message_body)
        return str(message.message_body)

    assert receive("SIMPLIFIED") == '{"k": "v"}'

    body = receive("JSON")
    assert body == json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)  # compact
    notification = json.loads(body)
    assert list(notification) == [
        "TopicOwner",
        "Message",
        "Subscriber",
        "PublishTime",
        "SubscriptionName",
        "MessageMD5",
        "TopicName",
        "MessageId",
    ]
    assert notification["Message"] == '{"k": "v"}' and notification["MessageMD5"] == _md5('{"k": "v"}')
    assert isinstance(notification["PublishTime"], str) and int(notification["PublishTime"]) >= before
    assert (notification["TopicOwner"], notification["Subscriber"]) == (owner, owner)
    assert (notification["SubscriptionName"], notification["TopicName"]) == ("s-json", "t")
    assert notification["MessageId"] == published.message_id

    root = ET.fromstring(receive("XML"))
    assert root.tag == f"{NS}Notification"
    fields = {child.tag.removeprefix(NS): child.text for child in root}
    assert list(fields) == [
        "TopicOwner",
        "TopicName",
        "Subscriber",
        "SubscriptionName",
        "MessageId",
        "Message",
        "MessageMD5",
        "PublishTime",
    ]
    assert fields["Message"] == '{"k": "v"}' and fields["SubscriptionName"] == "s-xml"
    assert int(fields["PublishTime"] or 0) >= before


def test_push_to_queue_with_tag_and_filter(local_mns: LocalMns, account: mns.account.Account) -> None:
    account.get_topic("t").create(TopicMeta())
    _queue_subscription(local_mns, account, "JSON", tag="wanted")
    _queue_subscription(local_mns, account, "XML")
    topic = account.get_topic("t")
    topic.publish_message(TopicMessage("tagged", "wanted"))
    topic.publish_message(TopicMessage("other tag", "unwanted"))
    topic.publish_message(Base64TopicMessage("untagged"))
    assert local_mns.service.wait_for_deliveries(5)

    filtered = account.get_queue("q-json")
    filtered.set_encoding(False)
    messages = filtered.batch_receive_message(16, 0)
    assert [json.loads(m.message_body)["Message"] for m in messages] == ["tagged"]
    assert list(json.loads(messages[0].message_body))[3:5] == ["MessageTag", "PublishTime"]
    assert json.loads(messages[0].message_body)["MessageTag"] == "wanted"

    unfiltered = account.get_queue("q-xml")
    unfiltered.set_encoding(False)
    bodies = [ET.fromstring(m.message_body) for m in unfiltered.batch_receive_message(16, 0)]
    # Pushes run concurrently, so (as in the cloud) they may arrive in any order.
    assert sorted((b.findtext(f"{NS}Message"), b.findtext(f"{NS}MessageTag")) for b in bodies) == [
        ("dW50YWdnZWQ=", None),
        ("other tag", "unwanted"),
        ("tagged", "wanted"),
    ]


def test_push_to_missing_queue_is_retried_until_it_exists(
    local_mns: LocalMns, account: mns.account.Account
) -> None:
    topic = account.get_topic("t")
    topic.create(TopicMeta())
    topic.get_subscription("s").subscribe(
        SubscriptionMeta(local_mns.queue_endpoint("later"), "EXPONENTIAL_DECAY_RETRY", "SIMPLIFIED")
    )
    topic.publish_message(TopicMessage("waiting"))
    assert not local_mns.service.wait_for_deliveries(0.05)
    queue = account.get_queue("later")
    queue.create(QueueMeta())
    assert local_mns.service.wait_for_deliveries(5)
    queue.set_encoding(False)
    assert queue.receive_message(0).message_body == "waiting"

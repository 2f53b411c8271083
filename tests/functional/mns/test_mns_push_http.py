"""Pushes to HTTP endpoints: bodies, headers, FilterTag, retries by strategy, isolation."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import mns.account
import pytest
from mns.subscription import SubscriptionMeta
from mns.topic import Topic, TopicMessage, TopicMeta

from localcloud.mns.push import retry_wait

if TYPE_CHECKING:
    from tests.support.mns import LocalMns, Receiver

NS = "{http://mns.aliyuncs.com/doc/v1/}"


@pytest.fixture
def topic(account: mns.account.Account) -> Topic:
    topic = account.get_topic("t")
    topic.create(TopicMeta())
    return topic


def _subscribe(topic: Topic, name: str, endpoint: str, fmt: str = "XML", **kwargs: str) -> None:
    meta = SubscriptionMeta(endpoint, notify_content_format=fmt, **kwargs)
    topic.get_subscription(name).subscribe(meta)


def _common_headers_ok(headers: dict[str, str], body: bytes) -> None:
    assert headers["x-mns-version"] == "2015-06-06" and headers["x-mns-request-id"]
    assert headers["user-agent"] == "Aliyun Notification Service Agent"
    assert headers["date"].endswith("GMT")
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()


def test_xml_push_to_endpoint_without_path_goes_to_notifications(
    local_mns: LocalMns, topic: Topic, receiver: Receiver
) -> None:
    _subscribe(topic, "s", receiver.url, "XML")
    published = topic.publish_message(TopicMessage("<hello & bye>", "tag1"))
    [push] = receiver.wait_for(1)
    assert push.path == "/notifications"
    assert push.headers["content-type"] == "text/xml;charset=utf-8"
    _common_headers_ok(push.headers, push.body)
    root = ET.fromstring(push.body)
    assert root.tag == f"{NS}Notification"
    assert root.findtext(f"{NS}Message") == "<hello & bye>"
    assert root.findtext(f"{NS}MessageTag") == "tag1"
    assert root.findtext(f"{NS}MessageId") == published.message_id
    assert root.findtext(f"{NS}TopicOwner") == local_mns.account.account_id


def test_json_push_keeps_endpoint_path(local_mns: LocalMns, topic: Topic, receiver: Receiver) -> None:
    _subscribe(topic, "s", f"{receiver.url}/hooks/mns?x=1", "JSON")
    topic.publish_message(TopicMessage("body"))
    [push] = receiver.wait_for(1)
    assert push.path == "/hooks/mns?x=1"
    assert push.headers["content-type"].startswith("application/json")
    notification = json.loads(push.body)
    assert notification["Message"] == "body" and "MessageTag" not in notification
    assert isinstance(notification["PublishTime"], str)


def test_simplified_push_is_the_raw_body_with_details_in_headers(
    local_mns: LocalMns, topic: Topic, receiver: Receiver
) -> None:
    _subscribe(topic, "simple", receiver.url, "SIMPLIFIED")
    published = topic.publish_message(TopicMessage("raw body ✓", "t"))
    [push] = receiver.wait_for(1)
    assert push.body == "raw body ✓".encode()
    assert push.headers["content-type"] == "text/plain;charset=utf-8"
    _common_headers_ok(push.headers, push.body)
    assert push.headers["x-mns-message-id"] == published.message_id
    assert push.headers["x-mns-message-tag"] == "t"
    assert push.headers["x-mns-topic-name"] == "t"
    assert push.headers["x-mns-subscription-name"] == "simple"
    assert push.headers["x-mns-topic-owner"] == local_mns.account.account_id
    assert int(push.headers["x-mns-publish-time"]) > 0


def test_filter_tag_pushes_only_exact_matches(local_mns: LocalMns, topic: Topic, receiver: Receiver) -> None:
    _subscribe(topic, "s", receiver.url, "SIMPLIFIED", filter_tag="images")
    for body, tag in [("a", "images"), ("b", "video"), ("c", ""), ("d", "images-2"), ("e", "images")]:
        topic.publish_message(TopicMessage(body, tag))
    assert local_mns.service.wait_for_deliveries(5)
    assert sorted(p.body for p in receiver.pushes) == [b"a", b"e"]


def test_backoff_retry_until_the_endpoint_accepts(
    local_mns: LocalMns, topic: Topic, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503, 404]
    _subscribe(topic, "s", receiver.url, "SIMPLIFIED", notify_strategy="BACKOFF_RETRY")
    started = time.monotonic()
    topic.publish_message(TopicMessage("persistent"))
    assert local_mns.service.wait_for_deliveries(5)
    assert [p.body for p in receiver.pushes] == [b"persistent"] and receiver.attempts == 4
    assert time.monotonic() - started >= 3 * 10 * 0.001  # three waits of 10–20 s, scaled


def test_backoff_retry_gives_up_after_three_retries(
    local_mns: LocalMns, topic: Topic, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    _subscribe(topic, "s", receiver.url, "SIMPLIFIED", notify_strategy="BACKOFF_RETRY")
    topic.publish_message(TopicMessage("doomed"))
    assert local_mns.service.wait_for_deliveries(5)
    assert receiver.pushes == [] and receiver.attempts == 4


def test_exponential_retry_until_the_endpoint_accepts(
    local_mns: LocalMns, topic: Topic, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 6
    _subscribe(topic, "s", receiver.url, "SIMPLIFIED", notify_strategy="EXPONENTIAL_DECAY_RETRY")
    topic.publish_message(TopicMessage("eventually"))
    assert local_mns.service.wait_for_deliveries(5)
    assert [p.body for p in receiver.pushes] == [b"eventually"] and receiver.attempts == 7


def test_retry_schedules_match_the_documented_strategies() -> None:
    waits = [retry_wait("EXPONENTIAL_DECAY_RETRY", n) for n in range(1, 178)]
    assert waits[:11] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512]
    assert waits[175] == 512 and waits[176] is None  # 176 retries
    assert sum(w for w in waits if w is not None) <= 86400  # within a day
    backoff = [retry_wait("BACKOFF_RETRY", n) for n in range(1, 5)]
    assert all(w is not None and 10 <= w <= 20 for w in backoff[:3]) and backoff[3] is None


def test_a_slow_endpoint_does_not_hold_up_others(
    local_mns: LocalMns, topic: Topic, receiver: Receiver, second_receiver: Receiver
) -> None:
    receiver.answering.clear()  # the slow endpoint answers nothing until the fast one has everything
    _subscribe(topic, "slow", receiver.url, "SIMPLIFIED")
    _subscribe(topic, "fast", second_receiver.url, "SIMPLIFIED")
    for i in range(8):
        topic.publish_message(TopicMessage(f"m{i}"))
    second_receiver.wait_for(8, timeout=5)
    assert receiver.pushes == []
    receiver.answering.set()
    assert local_mns.service.wait_for_deliveries(10)
    assert len(receiver.pushes) == 8


def test_unsubscribe_drops_pending_retries(local_mns: LocalMns, topic: Topic, receiver: Receiver) -> None:
    receiver.statuses = [500] * 1000
    _subscribe(topic, "s", receiver.url, "SIMPLIFIED", notify_strategy="EXPONENTIAL_DECAY_RETRY")
    topic.publish_message(TopicMessage("x"))
    assert not local_mns.service.wait_for_deliveries(0.2)
    topic.get_subscription("s").unsubscribe()
    assert local_mns.service.wait_for_deliveries(5)

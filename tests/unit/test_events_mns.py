"""MNS topic trigger events: STREAM (raw and with attrs) and JSON, detected or stated."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from immflow.errors import PayloadError
from immflow.events.imm import parse_imm_notification
from immflow.events.mns import KIND, parse_mns_trigger_event

FIXTURES = Path(__file__).parent.parent / "events" / "mns"
ALL_FIXTURES = sorted(FIXTURES.iterdir())


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_every_fixture_parses_and_has_the_format_its_name_says(path: Path) -> None:
    message = parse_mns_trigger_event(path.read_bytes())
    expected_format = "JSON" if "json" in path.stem.split("-")[:2] else "STREAM"
    assert message.content_format == expected_format


def test_stream_without_attributes_is_the_body_itself() -> None:
    message = parse_mns_trigger_event((FIXTURES / "doc-stream-raw.bin").read_bytes())
    assert message.body == "hello topic"
    assert message.content_format == "STREAM"
    assert (message.message_id, message.topic_name, message.publish_time) == (None, None, None)
    assert message.attributes == {}


@pytest.mark.parametrize(
    "name", ["stream-imm-notification.bin", "stream-raw-multiline-text.bin", "stream-raw-json-lookalike.bin"]
)
def test_stream_bodies_are_kept_byte_for_byte(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    assert parse_mns_trigger_event(raw).body.encode("utf-8") == raw
    assert parse_mns_trigger_event(raw.decode("utf-8"), "STREAM").body.encode("utf-8") == raw


def test_stream_with_attributes_unwraps_body_and_flattens_extend() -> None:
    message = parse_mns_trigger_event((FIXTURES / "doc-stream-with-attrs.json").read_bytes())
    assert message.body == "hello topic"
    assert message.content_format == "STREAM"
    assert message.attributes == {"key": "value"}


def test_stream_attributes_other_than_extend_are_kept() -> None:
    event = {"body": "x", "attrs": {"Extend": "not json", "DirectMail": '{"Subject":"s"}'}}
    message = parse_mns_trigger_event(json.dumps(event))
    assert message.attributes == {"Extend": "not json", "DirectMail": '{"Subject":"s"}'}


def test_the_doc_json_event_carries_the_metadata() -> None:
    message = parse_mns_trigger_event((FIXTURES / "doc-json.json").read_bytes())
    assert message.content_format == "JSON"
    assert message.body == "hello topic"
    assert message.message_id == "2F5B…"
    assert message.topic_name == "Mytopic"
    assert message.topic_owner == "1186…"
    assert message.subscription_name == "test-fc-subscribe"
    assert message.message_md5 == "BA4B…"
    assert message.publish_time == datetime(2019, 2, 15, 7, 41, 20, 40000, tzinfo=timezone.utc)
    assert message.message_tag is None
    assert message.attributes == {}


def test_the_real_console_message_keeps_its_md5() -> None:
    message = parse_mns_trigger_event((FIXTURES / "json-console-message.json").read_bytes())
    assert message.body == "json meesage from MNS console"
    assert message.message_md5 == "D2DE9F47F7987095172CF5956D856DEA"


def test_json_attributes_are_the_flattened_extra_keys() -> None:
    message = parse_mns_trigger_event((FIXTURES / "json-with-attributes.json").read_bytes())
    assert message.attributes == {"key": "value", "priority": 5}


def test_json_publish_time_may_be_a_string_and_a_tag_may_be_present() -> None:
    message = parse_mns_trigger_event((FIXTURES / "json-queue-style-string-time-and-tag.json").read_bytes())
    assert message.publish_time == datetime(2022, 1, 22, 15, 26, 11, 548000, tzinfo=timezone.utc)
    assert message.message_tag == "important"
    assert message.attributes == {}


def test_stating_stream_keeps_a_json_format_lookalike_as_the_body() -> None:
    text = (FIXTURES / "doc-json.json").read_text()
    assert parse_mns_trigger_event(text, "STREAM").body == text
    assert parse_mns_trigger_event(text).body == "hello topic"


def test_a_body_wrapper_with_other_keys_is_a_raw_body() -> None:
    text = '{"body": "x", "attrs": {}, "more": 1}'
    assert parse_mns_trigger_event(text).body == text


@pytest.mark.parametrize(
    ("event", "field", "problem"),
    [
        ("hello topic", "", "not valid JSON"),
        ('["TopicOwner"]', "", "must be a JSON object"),
        ('{"TopicOwner": "1", "Message": "m"}', "MessageId", "field required"),
        ('{"TopicOwner": "1", "Message": 5, "MessageId": "i"}', "Message", "valid string"),
        (
            '{"TopicOwner": "1", "Message": "m", "MessageId": "i", "PublishTime": "soon"}',
            "PublishTime",
            "datetime",
        ),
    ],
)
def test_a_stated_json_format_must_be_the_json_wrapper(event: str, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_mns_trigger_event(event, "JSON")
    assert (caught.value.kind, caught.value.field) == (KIND, field)
    assert problem in caught.value.problem


def test_a_detected_json_wrapper_is_validated_too() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_mns_trigger_event('{"TopicOwner": "1", "Message": null, "MessageId": "i"}')
    assert caught.value.field == "Message"


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_mns_trigger_event(b"\x89PNG\r\n\x1a\n\xff")
    assert caught.value.kind == KIND
    assert "not UTF-8" in caught.value.problem


@pytest.mark.parametrize(
    "name",
    ["stream-imm-notification.bin", "stream-imm-notification-compact.bin", "json-imm-notification.json"],
)
def test_an_imm_notification_reads_the_same_through_either_format(name: str) -> None:
    reference = parse_imm_notification(
        (FIXTURES.parent / "imm" / "doc-envelope-mediaconvert-succeeded.json").read_text()
    )
    message = parse_mns_trigger_event((FIXTURES / name).read_bytes())
    assert parse_imm_notification(message.body) == reference


def test_a_failed_imm_notification_through_the_json_format() -> None:
    message = parse_mns_trigger_event((FIXTURES / "json-imm-notification-failed.json").read_bytes())
    result = parse_imm_notification(message.body).content
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument")

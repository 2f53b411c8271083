"""OSS trigger events: every fixture parses, keys stay raw, malformed events fail with the field named."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from immflow.errors import PayloadError
from immflow.events.oss import KIND, OSS_EVENT_NAMES, OssEvent, parse_oss_event

FIXTURES = Path(__file__).parent.parent / "events" / "oss"
ALL_FIXTURES = sorted(FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def parse_with(mutate: Any, fixture: str = "event-ObjectCreated-PutObject.json") -> OssEvent:
    data = load(fixture)
    mutate(data["events"][0])
    return parse_oss_event(json.dumps(data).encode())


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_every_fixture_parses(path: Path) -> None:
    event = parse_oss_event(path.read_bytes())
    record = event.events[0]
    assert record.eventName in OSS_EVENT_NAMES
    assert record.source_uri == f"oss://{record.oss.bucket.name}/{record.oss.object.key}"
    assert record.eventTime.tzinfo is not None


def test_there_is_one_fixture_per_documented_event_name() -> None:
    names = {json.loads(path.read_text())["events"][0]["eventName"] for path in FIXTURES.glob("event-*.json")}
    replication = {name for name in OSS_EVENT_NAMES if name.startswith("ObjectReplication:")}
    assert names == OSS_EVENT_NAMES - replication


def test_the_2025_doc_sample_reads_as_documented() -> None:
    record = parse_oss_event((FIXTURES / "doc-fc3-2025-sample.json").read_bytes()).events[0]
    assert record.eventName == "ObjectCreated:PutObject"
    assert record.eventTime == datetime(2022, 8, 13, 6, 45, 43, tzinfo=timezone.utc)
    assert record.bucket == "testbucket"
    assert record.key == "source/a.png"
    assert record.source_uri == "oss://testbucket/source/a.png"
    assert record.etag == "688A7BF4F233DC9C88A80BF985AB****"
    assert record.oss.object.size == record.oss.object.deltaSize == 122539
    assert record.oss.object.objectMeta is not None
    assert record.oss.object.objectMeta.mimeType == "application/zip"
    assert record.oss.object.objectMeta.userMeta == {"x-oss-meta-last-modified": "20250213"}
    assert record.oss.bucket.virtualBucket is None
    assert record.responseElements.requestId == "58F9FF2D3DF792092E12044C"
    assert record.userIdentity.principalId == "164901546557****"


def test_the_older_sample_carries_virtual_bucket_and_no_object_meta() -> None:
    record = parse_oss_event((FIXTURES / "doc-older-sample-virtual-bucket.json").read_text()).events[0]
    assert record.oss.bucket.virtualBucket == ""
    assert record.oss.object.objectMeta is None
    assert record.region == "ap-southeast-1"
    assert record.etag == "688A7BF4F233DC9C88A80BF985AB7329"


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        ("key-with-spaces.json", "in/my holiday clip.mp4"),
        ("key-plus.json", "in/a+b c++.mp4"),
        ("key-percent.json", "in/100%25 real %41.mp4"),
        ("key-unicode.json", "in/视频/假期 ☀.mp4"),
        ("key-unicode-escaped.json", "in/视频/假期 ☀.mp4"),
    ],
)
def test_keys_are_used_exactly_as_delivered(fixture: str, key: str) -> None:
    record = parse_oss_event((FIXTURES / fixture).read_bytes()).events[0]
    assert record.key == key
    assert record.source_uri == f"oss://in-bucket/{key}"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("event-*.json")), ids=lambda path: path.name)
def test_removal_is_told_by_the_event_name(path: Path) -> None:
    # Only a removal may leave the object's size out: the event name alone decides.
    data = json.loads(path.read_bytes())
    record = data["events"][0]
    record["oss"]["object"].pop("size", None)
    if record["eventName"].startswith("ObjectRemoved:"):
        assert parse_oss_event(data).events[0].oss.object.size is None
    else:
        with pytest.raises(PayloadError, match=r"object\.size"):
            parse_oss_event(data)


def test_a_removal_may_omit_size_and_etag() -> None:
    record = parse_oss_event(
        (FIXTURES / "event-ObjectRemoved-AbortMultipartUpload.json").read_bytes()
    ).events[0]
    assert record.etag is None
    assert record.oss.object.size is None


def test_a_creation_must_describe_the_object() -> None:
    def drop_etag(record: dict[str, Any]) -> None:
        del record["oss"]["object"]["eTag"]

    with pytest.raises(PayloadError) as caught:
        parse_with(drop_etag)
    assert caught.value.field == "events.0.oss"
    assert "object.eTag" in caught.value.problem
    assert "ObjectCreated:PutObject" in caught.value.problem


def test_quoted_etag_is_unquoted() -> None:
    def quote_etag(record: dict[str, Any]) -> None:
        record["oss"]["object"]["eTag"] = '"ABC"'

    assert parse_with(quote_etag).events[0].etag == "ABC"


def test_unknown_cloud_fields_do_not_break_parsing() -> None:
    def add_fields(record: dict[str, Any]) -> None:
        record["newTopLevel"] = {"x": 1}
        record["oss"]["object"]["position"] = 12

    record = parse_with(add_fields).events[0]
    assert record.model_extra == {"newTopLevel": {"x": 1}}


def test_a_decoded_dict_is_accepted_too() -> None:
    assert parse_oss_event(load("key-plus.json")).events[0].key == "in/a+b c++.mp4"


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda r: r["oss"]["object"].pop("key"), "events.0.oss.object.key", "field required"),
        (lambda r: r["oss"]["object"].update(key=""), "events.0.oss.object.key", "at least 1 character"),
        (lambda r: r["oss"]["object"].update(size="big"), "events.0.oss.object.size", "valid integer"),
        (
            lambda r: r.update(eventName="ObjectCreated:Teleport"),
            "events.0.eventName",
            "ObjectCreated:PutObject",
        ),
        (lambda r: r.update(eventName="oss:ObjectCreated:PutObject"), "events.0.eventName", "ObjectCreated"),
        (lambda r: r.update(eventTime="yesterday"), "events.0.eventTime", "datetime"),
        (lambda r: r["oss"].pop("bucket"), "events.0.oss.bucket", "field required"),
        (
            lambda r: r["oss"]["object"].update(size=-5),
            "events.0.oss.object.size",
            "greater than or equal to 0",
        ),
        (
            lambda r: r["oss"]["object"].update(key="k" * 10_000_000),
            "events.0.oss.object.key",
            "at most 1023 bytes",
        ),
        (lambda r: r["oss"]["object"].update(key="é" * 512), "events.0.oss.object.key", "this one is 1,024"),
        (lambda r: r["oss"]["bucket"].update(name="b" * 64), "events.0.oss.bucket.name", "at most 63"),
    ],
    ids=[
        "missing-key",
        "empty-key",
        "size-not-int",
        "unknown-event",
        "prefixed-event",
        "bad-time",
        "no-bucket",
        "negative-size",
        "10-MB-key",
        "key-over-1023-bytes",
        "bucket-name-too-long",
    ],
)
def test_malformed_records_name_the_field(mutate: Any, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_with(mutate)
    error = caught.value
    assert (error.kind, error.field) == (KIND, field)
    assert problem in error.problem
    assert str(error).startswith(f"malformed OSS trigger event at {field}: ")
    assert "pydantic" not in str(error)


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        (b"{not json", "", "not valid JSON"),
        (b"\xff\xfe", "", "not UTF-8"),
        (b"[]", "", "expected a JSON object, got an array"),
        (b'{"events": []}', "events", "at least 1 item"),
        (b'{"Records": []}', "events", "field required"),
    ],
)
def test_malformed_payloads_name_the_kind(payload: bytes, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_oss_event(payload)
    assert (caught.value.kind, caught.value.field) == (KIND, field)
    assert problem in caught.value.problem


def test_every_error_past_the_first_is_counted() -> None:
    def break_two(record: dict[str, Any]) -> None:
        del record["region"]
        del record["eventSource"]

    with pytest.raises(PayloadError) as caught:
        parse_with(break_two)
    assert caught.value.problem.endswith("(and 1 more problem)")

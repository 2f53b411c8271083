"""Triggers deployed from s.yaml: OSS uploads, MNS topic messages (STREAM and JSON), timers."""

from __future__ import annotations

import hashlib
import json

import oss2
import pytest
from mns.account import Account as MnsAccount
from mns.topic import TopicMessage, TopicMeta

from localcloud.fc.syaml import SYamlError
from tests.support.fc import FcCloud, probe_function


def _oss_trigger(bucket: str, prefix: str, suffix: str) -> dict[str, object]:
    return {
        "triggerName": "uploads",
        "triggerType": "oss",
        "sourceArn": f"acs:oss:cn-hangzhou:${{config('AccountID')}}:{bucket}",
        "triggerConfig": {
            "events": ["oss:ObjectCreated:PutObject", "oss:ObjectCreated:CompleteMultipartUpload"],
            "filter": {"key": {"prefix": prefix, "suffix": suffix}},
        },
    }


def test_oss_upload_invokes_the_function_with_the_oss_event(fc_cloud: FcCloud) -> None:
    bucket = oss2.Bucket(
        oss2.Auth(fc_cloud.account.access_key_id, fc_cloud.account.access_key_secret),
        fc_cloud.oss_url,
        "media-in",
    )
    bucket.create_bucket()
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(probe_function("on-upload", triggers=[_oss_trigger("media-in", "in/", ".txt")]))
    )

    bucket.put_object("in/a.txt", b"hello")
    bucket.put_object("in/skipped.bin", b"not matching the suffix")
    bucket.put_object("elsewhere/b.txt", b"not matching the prefix")
    fc_cloud.wait_delivered()

    (record,) = fc_cloud.records_where()
    (event,) = json.loads(record["event"])["events"]
    assert event["eventName"] == "ObjectCreated:PutObject"
    assert event["oss"]["bucket"]["name"] == "media-in" and event["oss"]["object"]["key"] == "in/a.txt"
    assert event["oss"]["object"]["eTag"] == hashlib.md5(b"hello").hexdigest().upper()
    assert event["oss"]["ruleId"] == "fc-on-upload-uploads"


def test_oss_trigger_on_a_missing_bucket_is_refused_clearly(fc_cloud: FcCloud) -> None:
    with pytest.raises(RuntimeError, match="no-such-bucket"):
        fc_cloud.fc.deploy(
            fc_cloud.write_s_yaml(probe_function("f", triggers=[_oss_trigger("no-such-bucket", "", "")]))
        )


def _mns_trigger(name: str, content_format: str) -> dict[str, object]:
    return {
        "triggerName": name,
        "triggerType": "mns_topic",
        "sourceArn": "acs:mns:cn-hangzhou:${config('AccountID')}:/topics/imm-events",
        "triggerConfig": {"notifyContentFormat": content_format, "notifyStrategy": "BACKOFF_RETRY"},
    }


def test_mns_topic_trigger_passes_stream_and_json_events(fc_cloud: FcCloud) -> None:
    mns = MnsAccount(fc_cloud.mns_url, fc_cloud.account.access_key_id, fc_cloud.account.access_key_secret)
    topic = mns.get_topic("imm-events")
    topic.create(TopicMeta())
    fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(
            probe_function("stream", triggers=[_mns_trigger("s", "STREAM")])
            + probe_function("json", triggers=[_mns_trigger("j", "JSON")])
        )
    )

    body = '{"id":"1","content":"{\\"Status\\":\\"Succeeded\\"}"} ünïcode'
    published = topic.publish_message(TopicMessage(body))
    records = fc_cloud.wait_for_records(2)

    stream = next(r for r in records if r["function"]["name"] == "stream")
    assert stream["event"] == body  # the exact body bytes
    as_json = next(r for r in records if r["function"]["name"] == "json")
    assert list(json.loads(as_json["event"])) == [
        "TopicOwner", "Message", "Subscriber", "PublishTime", "SubscriptionName", "MessageMD5", "TopicName", "MessageId",
    ]  # fmt: skip
    event = json.loads(as_json["event"])
    assert event["Message"] == body and event["TopicName"] == "imm-events"
    assert isinstance(event["PublishTime"], int) and event["MessageId"] == published.message_id
    assert event["MessageMD5"] == hashlib.md5(body.encode()).hexdigest().upper()
    assert event["SubscriptionName"] == "fc-json-j" and event["TopicOwner"] == fc_cloud.account.account_id
    assert ", " not in as_json["event"] and ": " not in as_json["event"].replace(body, "")  # compact


def test_redeploy_moves_the_subscription_without_duplicating_it(fc_cloud: FcCloud) -> None:
    mns = MnsAccount(fc_cloud.mns_url, fc_cloud.account.access_key_id, fc_cloud.account.access_key_secret)
    topic = mns.get_topic("imm-events")
    topic.create(TopicMeta())
    s_yaml = fc_cloud.write_s_yaml(probe_function("stream", triggers=[_mns_trigger("s", "STREAM")]))
    fc_cloud.fc.deploy(s_yaml)
    fc_cloud.fc.deploy(s_yaml)

    topic.publish_message(TopicMessage("once"))
    fc_cloud.wait_delivered()

    assert [r["event"] for r in fc_cloud.records_where()] == ["once"]


def test_timer_trigger_fires_on_its_schedule_with_the_payload(fc_cloud: FcCloud) -> None:
    timer = {
        "triggerName": "tick",
        "triggerType": "timer",
        "triggerConfig": {"cronExpression": "@every 1s", "enable": True, "payload": "hello"},
    }
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("ticker", triggers=[timer])))

    records = fc_cloud.wait_for_records(2, timeout=10)

    event = json.loads(records[0]["event"])
    assert event["triggerName"] == "tick" and event["payload"] == "hello"
    assert event["triggerTime"].endswith("Z")


def test_unsupported_trigger_types_are_refused(fc_cloud: FcCloud) -> None:
    http = {"triggerName": "web", "triggerType": "http", "triggerConfig": {"methods": ["GET"]}}
    with pytest.raises(SYamlError, match="'http' triggers are not implemented locally"):
        fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("f", triggers=[http])))

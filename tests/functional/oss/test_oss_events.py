"""Trigger registration and the FC-OSS-trigger events each action emits."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import oss2
import pytest
import requests
from oss2.models import PartInfo

from localcloud.core.account import Account
from localcloud.core.admin import admin_headers
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService
from localcloud.oss.errors import OssError


@pytest.fixture(params=["v1"])
def auth(request: pytest.FixtureRequest, account: Account) -> oss2.AuthBase:
    return oss2.Auth(account.access_key_id, account.access_key_secret)


def _register(service: OssService, name: str, bucket: oss2.Bucket, sink: Any, **config: Any) -> None:
    service.put_trigger(
        name,
        {
            "bucket": bucket.bucket_name,
            "events": ["oss:ObjectCreated:*", "oss:ObjectRemoved:*"],
            "prefix": "",
            "suffix": "",
            "target": {"kind": "http", "url": sink.url},
            **config,
        },
    )


def test_admin_api_register_list_delete(
    oss_service: OssService, oss_server: ServiceServer, bucket: oss2.Bucket, sink: Any
) -> None:
    base = f"{oss_server.url}/_localcloud/triggers"
    session = requests.Session()
    session.headers.update(admin_headers(oss_service.admin_guard.token))
    config = {
        "bucket": bucket.bucket_name,
        "events": ["oss:ObjectCreated:PutObject"],
        "prefix": "in/",
        "suffix": ".jpg",
        "target": {"kind": "http", "url": sink.url},
    }
    created = session.put(f"{base}/t-admin", json=config)
    assert created.status_code == 200 and created.json()["prefix"] == "in/"
    assert "t-admin" in [t["name"] for t in session.get(base).json()["triggers"]]
    assert session.get(f"{base}/t-admin").json()["suffix"] == ".jpg"
    overlapping = session.put(f"{base}/t-other", json={**config, "prefix": "in/sub/", "suffix": "g"})
    assert overlapping.status_code == 400
    assert (
        overlapping.json()["Message"] == "Cannot specify overlapping prefix and suffix with same event type."
    )
    # Other event types, or disjoint prefixes, do not overlap.
    assert (
        session.put(
            f"{base}/t-del", json={**config, "events": ["oss:ObjectRemoved:DeleteObject"]}
        ).status_code
        == 200
    )
    assert session.put(f"{base}/t-out", json={**config, "prefix": "out/"}).status_code == 200
    bad = session.put(f"{base}/t-bad", json={**config, "events": ["ObjectCreated:Put"]})
    assert bad.status_code == 400 and "matches no OSS event" in bad.json()["Message"]
    missing = session.put(f"{base}/t-nobucket", json={**config, "bucket": "no-such-bucket-x"})
    assert missing.status_code == 404 and missing.json()["Code"] == "NoSuchBucket"
    for name in ("t-admin", "t-del", "t-out"):
        assert session.delete(f"{base}/{name}").status_code == 204
    assert session.delete(f"{base}/t-admin").status_code == 404


def test_overlap_rule(oss_service: OssService, bucket: oss2.Bucket, sink: Any) -> None:
    _register(
        oss_service, "o1", bucket, sink, events=["oss:ObjectCreated:PutObject"], prefix="a/", suffix=".png"
    )
    with pytest.raises(OssError, match="overlapping"):
        _register(oss_service, "o2", bucket, sink, events=["oss:ObjectCreated:*"], prefix="", suffix="")
    _register(
        oss_service, "o3", bucket, sink, events=["oss:ObjectCreated:PutObject"], prefix="b/", suffix=".png"
    )
    _register(
        oss_service, "o4", bucket, sink, events=["oss:ObjectCreated:PutObject"], prefix="a/", suffix=".jpg"
    )
    _register(
        oss_service, "o1", bucket, sink, events=["oss:ObjectCreated:PutObject"], prefix="a/x", suffix=".png"
    )
    for name in ("o1", "o3", "o4"):
        assert oss_service.delete_trigger(name)


def test_event_shape_for_each_action(
    oss_service: OssService, bucket: oss2.Bucket, sink: Any, account: Account
) -> None:
    _register(oss_service, "shape", bucket, sink)
    key = "in/photo 1+x%é.jpg"
    put = bucket.put_object(
        key, b"hello", headers={"Content-Type": "image/jpeg", "x-oss-meta-owner": "alice"}
    )
    bucket.put_object(key, b"hello world")  # overwrite: deltaSize = new - old
    bucket.copy_object(bucket.bucket_name, key, "copy.jpg")
    bucket.append_object("log", 0, b"abc")
    bucket.append_object("log", 3, b"de")
    upload_id = bucket.init_multipart_upload("mp").upload_id
    part = bucket.upload_part("mp", upload_id, 1, b"m" * 10)
    bucket.complete_multipart_upload("mp", upload_id, [PartInfo(1, part.etag)])
    bucket.delete_object("copy.jpg")
    bucket.delete_object("never-existed")  # no event
    bucket.batch_delete_objects(["log", "mp"])
    assert oss_service.wait_for_deliveries(10)
    records = sink.wait_for(9)
    assert oss_service.delete_trigger("shape")

    names = [(r["eventName"], r["oss"]["object"]["key"]) for r in records]
    assert sorted(names) == sorted(
        [
            ("ObjectCreated:PutObject", key),
            ("ObjectCreated:PutObject", key),
            ("ObjectCreated:CopyObject", "copy.jpg"),
            ("ObjectCreated:AppendObject", "log"),
            ("ObjectCreated:AppendObject", "log"),
            ("ObjectCreated:CompleteMultipartUpload", "mp"),
            ("ObjectRemoved:DeleteObject", "copy.jpg"),
            ("ObjectRemoved:DeleteObjects", "log"),
            ("ObjectRemoved:DeleteObjects", "mp"),
        ]
    )
    assert all(h["content-type"] == "application/json" for h in sink.headers)
    assert all(len(json.loads(b)["events"]) == 1 for b in sink.bodies)

    first = next(r for r in records if r["responseElements"]["requestId"] == put.request_id)
    assert first["eventSource"] == "acs:oss" and first["eventVersion"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["eventTime"])
    assert first["region"] == account.region
    assert first["userIdentity"] == {"principalId": account.account_id}
    assert first["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    assert first["oss"]["bucket"] == {
        "arn": f"acs:oss:{account.region}:{account.account_id}:{bucket.bucket_name}",
        "name": bucket.bucket_name,
        "ownerIdentity": account.account_id,
    }
    assert first["oss"]["ossSchemaVersion"] == "1.0" and first["oss"]["ruleId"] == "shape"
    assert first["oss"]["object"] == {
        "deltaSize": 5,
        "eTag": hashlib.md5(b"hello").hexdigest().upper(),
        "key": key,
        "size": 5,
        "objectMeta": {"mimeType": "image/jpeg", "userMeta": {"x-oss-meta-owner": "alice"}},
    }
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r["eventName"], []).append(r["oss"]["object"])
    overwrite = next(o for o in by_name["ObjectCreated:PutObject"] if o["size"] == 11)
    assert overwrite["deltaSize"] == 6
    appends = sorted(by_name["ObjectCreated:AppendObject"], key=lambda o: o["size"])
    assert [(o["position"], o["deltaSize"], o["size"]) for o in appends] == [(0, 3, 3), (3, 2, 5)]
    (completed,) = by_name["ObjectCreated:CompleteMultipartUpload"]
    assert completed["eTag"].endswith("-1") and completed["size"] == 10
    (deleted,) = by_name["ObjectRemoved:DeleteObject"]
    assert (deleted["size"], deleted["deltaSize"]) == (11, -11)


def test_filters_and_retries(oss_service: OssService, bucket: oss2.Bucket, sink: Any) -> None:
    _register(
        oss_service,
        "filtered",
        bucket,
        sink,
        events=["oss:ObjectCreated:PutObject"],
        prefix="in/",
        suffix=".jpg",
    )
    sink.fail_next = 2  # delivered only on the third attempt
    bucket.put_object("in/a.jpg", b"1")
    bucket.put_object("in/a.png", b"1")
    bucket.put_object("out/a.jpg", b"1")
    bucket.append_object("in/b.jpg", 0, b"1")  # not a subscribed event
    assert oss_service.wait_for_deliveries(10)
    assert [r["oss"]["object"]["key"] for r in sink.records()] == ["in/a.jpg"]
    assert oss_service.delete_trigger("filtered")


class FakeFc:
    """Records fc2 invocations (path, headers, body) and answers 202 like an async invoke."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake_fc() -> Iterator[FakeFc]:
    fc = FakeFc()
    yield fc
    fc.server.shutdown()
    fc.server.server_close()


def test_fc_target_invokes_async_through_fc2(
    oss_service: OssService, bucket: oss2.Bucket, fake_fc: FakeFc, account: Account
) -> None:
    oss_service.put_trigger(
        "to-fc",
        {
            "bucket": bucket.bucket_name,
            "events": ["oss:ObjectCreated:PutObject"],
            "prefix": "",
            "suffix": "",
            "target": {
                "kind": "fc",
                "endpoint": fake_fc.endpoint,
                "service": "media",
                "function": "on-upload",
                "qualifier": None,
            },
        },
    )
    result = bucket.put_object("in/x.txt", b"abc")
    assert oss_service.wait_for_deliveries(15)
    assert oss_service.delete_trigger("to-fc")
    ((path, headers, body),) = fake_fc.calls
    assert path == "/2016-08-15/services/media/functions/on-upload/invocations"
    assert headers["x-fc-invocation-type"] == "Async"
    assert headers["authorization"].startswith(f"FC {account.access_key_id}:")
    record = json.loads(body)["events"][0]
    assert record["eventName"] == "ObjectCreated:PutObject"
    assert record["responseElements"]["requestId"] == result.request_id

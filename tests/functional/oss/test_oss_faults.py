"""The fault plan in the local OSS's event delivery: events dropped, duplicated and delayed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService
from tests.support.oss import EventSink


@pytest.fixture
def plan(tmp_path: Path) -> FaultPlan:
    return FaultPlan(seed=5, log_path=tmp_path / "faults.log")


@pytest.fixture
def watched(tmp_path: Path, plan: FaultPlan, sink: EventSink) -> Iterator[tuple[OssService, oss2.Bucket]]:
    account = Account.new()
    service = OssService(tmp_path / "state", account, retry_base=0.05, faults=plan)
    server = ServiceServer(service).start()
    bucket = oss2.Bucket(
        oss2.Auth(account.access_key_id, account.access_key_secret),
        server.url,
        "faulty",
        region=account.region,
    )
    bucket.create_bucket()
    service.put_trigger(
        "watch",
        {"bucket": "faulty", "events": ["oss:ObjectCreated:*"], "target": {"kind": "http", "url": sink.url}},
    )
    yield service, bucket
    server.stop()
    service.close()


def _logged(plan: FaultPlan) -> list[dict[str, str]]:
    assert plan.log_path is not None
    return [json.loads(line) for line in plan.log_path.read_text().splitlines()]


def test_a_dropped_event_is_never_delivered(
    watched: tuple[OssService, oss2.Bucket], plan: FaultPlan, sink: EventSink
) -> None:
    service, bucket = watched
    plan.rates["oss.event.drop"] = 1.0
    etag = bucket.put_object("in/dropped.txt", b"x").etag.upper()
    assert service.wait_for_deliveries(5)
    plan.rates["oss.event.drop"] = 0.0
    bucket.put_object("in/kept.txt", b"y")
    assert [r["oss"]["object"]["key"] for r in sink.wait_for(1)] == ["in/kept.txt"]
    assert service.wait_for_deliveries(5) and len(sink.records()) == 1
    (entry,) = _logged(plan)
    assert entry["kind"] == "oss.event.drop" and entry["detail"] == "watch"
    assert entry["item"] == f"watch:faulty/in/dropped.txt@{etag}"


def test_a_duplicated_event_is_delivered_twice(
    watched: tuple[OssService, oss2.Bucket], plan: FaultPlan, sink: EventSink
) -> None:
    service, bucket = watched
    plan.rates["oss.event.duplicate"] = 1.0
    bucket.put_object("in/twice.txt", b"x")
    first, second = sink.wait_for(2)
    assert first == second and first["oss"]["object"]["key"] == "in/twice.txt"
    assert service.wait_for_deliveries(5) and len(sink.records()) == 2
    assert [e["kind"] for e in _logged(plan)] == ["oss.event.duplicate"]


def test_a_delayed_event_arrives_late_once(
    watched: tuple[OssService, oss2.Bucket], plan: FaultPlan, sink: EventSink
) -> None:
    _, bucket = watched
    plan.rates["oss.event.delay"] = 1.0
    plan.settings["delay_seconds"] = 2.0
    started = time.monotonic()
    bucket.put_object("in/late.txt", b"x")
    (record,) = sink.wait_for(1, timeout=10)
    waited = time.monotonic() - started
    (entry,) = _logged(plan)
    assert entry["kind"] == "oss.event.delay" and record["oss"]["object"]["key"] == "in/late.txt"
    assert waited >= 2.0 * plan.share("oss.event.delay", entry["item"]) - 0.1

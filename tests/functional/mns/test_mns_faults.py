"""The fault plan in the local MNS's pushes: failed attempts the strategy retries, duplicates, delays.

SIMPLIFIED pushes carry the message as published, so a push's fault item is known in advance and
a test can pick the seed that hits the attempt it wants (`_seed_where`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mns.subscription import SubscriptionMeta
from mns.topic import Topic, TopicMessage, TopicMeta

from localcloud.core.faults import FaultPlan
from localcloud.mns.push import push_fault_item
from tests.support.mns import LocalMns, Receiver, start_mns


@pytest.fixture
def plan(tmp_path: Path) -> FaultPlan:
    return FaultPlan(seed=0, log_path=tmp_path / "faults.log")


@pytest.fixture
def faulty_mns(tmp_path: Path, plan: FaultPlan) -> Iterator[LocalMns]:
    yield from start_mns(tmp_path / "mns", faults=plan)


def _topic(local: LocalMns, receiver: Receiver, strategy: str = "BACKOFF_RETRY") -> Topic:
    topic = local.client().get_topic("t")
    topic.create(TopicMeta())
    meta = SubscriptionMeta(receiver.url, notify_content_format="SIMPLIFIED", notify_strategy=strategy)
    topic.get_subscription("s").subscribe(meta)
    return topic


def _logged(plan: FaultPlan) -> list[tuple[str, str]]:
    assert plan.log_path is not None
    return [(e["kind"], e["item"]) for e in map(json.loads, plan.log_path.read_text().splitlines())]


def _seed_where(kind: str, rate: float, wanted: Callable[[FaultPlan], bool]) -> int:
    for seed in range(1000):
        if wanted(FaultPlan(seed, {kind: rate})):  # no log path: probing logs nothing
            return seed
    raise AssertionError("no seed in 0..999 gives the wanted faults")


def test_a_failed_attempt_is_retried_by_the_strategy(
    faulty_mns: LocalMns, plan: FaultPlan, receiver: Receiver
) -> None:
    item = push_fault_item("t", "s", "hello")
    plan.seed = _seed_where(
        "mns.push.fail",
        0.5,
        lambda p: p.fires("mns.push.fail", f"{item}#0") and not p.fires("mns.push.fail", f"{item}#1"),
    )
    plan.rates["mns.push.fail"] = 0.5
    topic = _topic(faulty_mns, receiver)
    topic.publish_message(TopicMessage("hello"))
    assert faulty_mns.service.wait_for_deliveries(5)
    assert [p.body for p in receiver.pushes] == [b"hello"] and receiver.attempts == 1
    assert _logged(plan) == [("mns.push.fail", f"{item}#0")]


def test_a_push_failing_every_attempt_is_dropped_after_the_strategys_retries(
    faulty_mns: LocalMns, plan: FaultPlan, receiver: Receiver
) -> None:
    plan.rates["mns.push.fail"] = 1.0
    topic = _topic(faulty_mns, receiver)
    topic.publish_message(TopicMessage("doomed"))
    assert faulty_mns.service.wait_for_deliveries(5)
    item = push_fault_item("t", "s", "doomed")
    assert receiver.attempts == 0
    assert _logged(plan) == [("mns.push.fail", f"{item}#{n}") for n in range(4)]  # BACKOFF_RETRY: 3 retries


def test_a_duplicated_push_arrives_twice(faulty_mns: LocalMns, plan: FaultPlan, receiver: Receiver) -> None:
    plan.rates["mns.push.duplicate"] = 1.0
    topic = _topic(faulty_mns, receiver)
    topic.publish_message(TopicMessage("twice"))
    assert [p.body for p in receiver.wait_for(2)] == [b"twice", b"twice"]
    assert _logged(plan) == [("mns.push.duplicate", push_fault_item("t", "s", "twice"))]


def test_a_delayed_push_is_overtaken_by_a_later_one(
    faulty_mns: LocalMns, plan: FaultPlan, receiver: Receiver
) -> None:
    first, second = push_fault_item("t", "s", "first"), push_fault_item("t", "s", "second")
    kind = "mns.push.delay"
    plan.seed = _seed_where(
        kind, 0.5, lambda p: p.fires(kind, first) and not p.fires(kind, second) and p.share(kind, first) > 0.5
    )
    plan.rates[kind] = 0.5
    plan.settings["delay_seconds"] = 2.0
    topic = _topic(faulty_mns, receiver)
    started = time.monotonic()
    topic.publish_message(TopicMessage("first"))
    topic.publish_message(TopicMessage("second"))
    assert [p.body for p in receiver.wait_for(2)] == [b"second", b"first"]
    assert time.monotonic() - started >= 2.0 * plan.share(kind, first) - 0.1
    assert _logged(plan) == [(kind, first)]

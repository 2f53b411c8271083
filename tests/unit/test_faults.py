"""The local cloud's fault plan: parsed strictly, reproducible from its seed, logged."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from localcloud.core.faults import FAULT_KINDS, FaultPlan, FaultSpecError, stable_digest


def test_a_spec_reads_seed_and_rates() -> None:
    plan = FaultPlan.parse("seed=7, oss.event.duplicate=0.25,imm.throttle=1")
    assert (plan.seed, plan.rates) == (7, {"oss.event.duplicate": 0.25, "imm.throttle": 1.0})
    assert plan.active and not FaultPlan.parse("").active


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("oss.event.vanish=0.1", "unknown fault 'oss.event.vanish'"),
        ("imm.throttle=2", "from 0 to 1"),
        ("imm.throttle=often", "a probability is a number"),
        ("seed=x", "not an integer"),
        ("imm.throttle", "kind=probability"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(FaultSpecError, match=problem):
        FaultPlan.parse(spec)


def test_whether_a_fault_fires_depends_on_seed_kind_and_item_only() -> None:
    items = [f"bucket/key-{n}" for n in range(2000)]
    first = FaultPlan.parse("seed=3,oss.event.drop=0.1")
    again = FaultPlan.parse("seed=3,oss.event.drop=0.1")
    hit = [item for item in items if first.fires("oss.event.drop", item)]
    assert hit == [item for item in reversed(items) if again.fires("oss.event.drop", item)][::-1]
    assert 140 < len(hit) < 260  # about 10 %
    other_seed = FaultPlan.parse("seed=4,oss.event.drop=0.1")
    assert hit != [item for item in items if other_seed.fires("oss.event.drop", item)]
    assert not FaultPlan.parse("seed=3").fires("oss.event.drop", items[0])


def test_fired_faults_are_logged_and_counted_across_restarts(tmp_path: Path) -> None:
    plan = FaultPlan.for_state_dir(tmp_path, "seed=1,imm.throttle=1,fc.crash=0")
    assert plan.fires("imm.throttle", "call-1", "GetTask") and not plan.fires("fc.crash", "x")
    restarted = FaultPlan.for_state_dir(tmp_path)  # DIR/faults.json keeps the plan
    assert restarted.to_json() == {"seed": 1, "rates": {"fc.crash": 0.0, "imm.throttle": 1.0}}
    assert restarted.fires("imm.throttle", "call-2")
    assert restarted.counts() == {"imm.throttle": 2}
    logged = [json.loads(line) for line in (tmp_path / "faults.log").read_text().splitlines()]
    assert [(line["kind"], line["item"], line["detail"]) for line in logged] == [
        ("imm.throttle", "call-1", "GetTask"),
        ("imm.throttle", "call-2", ""),
    ]


def test_every_kind_says_what_it_does() -> None:
    assert all(kind.count(".") >= 1 and description for kind, description in FAULT_KINDS.items())


def _push_body(task_id: str, message_id: str, user_data: str) -> str:
    content = json.dumps({"TaskId": task_id, "StartTime": "2026-11-30T20:00:00Z", "UserData": user_data})
    envelope = json.dumps({"id": f"event-{task_id}", "time": "1764532800000", "content": content})
    return json.dumps({"Message": envelope, "MessageId": message_id, "PublishTime": "1764532800123"})


def test_a_stable_digest_leaves_out_made_up_ids_and_times_but_not_the_work() -> None:
    one = _push_body("Office-0b7d6f0e-1c1a-4c39-9a53-2a8f0d1c2e3f", "M1", '{"run":"r1"}')
    two = _push_body("Office-77777777-1c1a-4c39-9a53-2a8f0d1c2e3f", "M2", '{"run":"r1"}')
    other = _push_body("Office-0b7d6f0e-1c1a-4c39-9a53-2a8f0d1c2e3f", "M1", '{"run":"r2"}')
    assert stable_digest(one) == stable_digest(two)
    assert stable_digest(one) != stable_digest(other)
    as_xml = (
        "<?xml version='1.0'?><Notification><MessageId>{}</MessageId><Message>{}</Message></Notification>"
    )
    xml_one = as_xml.format("M1", html.escape(json.loads(one)["Message"]))
    xml_two = as_xml.format("M2", html.escape(json.loads(two)["Message"]))
    xml_other = as_xml.format("M1", html.escape(json.loads(other)["Message"]))
    assert stable_digest(xml_one) == stable_digest(xml_two) != stable_digest(xml_other)
    assert stable_digest(b"plain bytes") == stable_digest("plain bytes") != stable_digest("other")
    deep = "[" * 100_000 + "]" * 100_000  # nothing recursive can blow the stack
    assert stable_digest(deep) == stable_digest(deep)


def test_occurrences_tell_repeats_apart_and_a_token_keeps_its_number() -> None:
    plan = FaultPlan(seed=1)
    assert [plan.occurrence("call"), plan.occurrence("call"), plan.occurrence("other")] == [1, 2, 1]
    assert plan.occurrence("timer", "request-a") == 1
    assert plan.occurrence("timer", "request-b") == 2
    assert plan.occurrence("timer", "request-a") == 1  # the retry of request-a


def test_an_oss_event_from_another_run_has_the_same_stable_digest() -> None:
    """What an FC invocation from an OSS trigger is keyed by: the same upload in another state folder
    (another account id), at another time, with another request id, gives the same digest."""
    from localcloud.core.account import Account
    from localcloud.oss.events import ObjectFacts, build_event

    def event(account: Account, request_id: str, when: float, etag: str = "5D41402ABC4B2A76") -> bytes:
        facts = ObjectFacts("in/a.jpg", 5, etag, "image/jpeg", {})
        return build_event(
            "ObjectCreated:PutObject", "media", facts, 5,
            account=account, request_id=request_id, source_ip="127.0.0.1", rule_id="r", event_time=when,
        )  # fmt: skip

    first = event(Account.new(), "6752A2B3C4D5E6F708192A3B", 1_800_000_000.0)
    again = event(Account.new(), "6752A2B3C4D5E6F708192AFF", 1_800_000_777.5)
    other = event(Account.new(), "6752A2B3C4D5E6F708192A3B", 1_800_000_000.0, etag="0CC175B9C0F1B6A8")
    assert stable_digest(first) == stable_digest(again) != stable_digest(other)

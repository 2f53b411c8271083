"""reconcile: a notification that never came is replaced by GetTask; a task IMM does not know is Lost."""

from __future__ import annotations

from datetime import timedelta

import oss2
import pytest
from immflow.flow.reconcile import ReconcileError
from immflow.ledger import NewTask, claim_key, utcnow

from tests.support.handlers import PAST_RECONCILE_AFTER, Harness, oss_event
from tests.support.media import png
from tests.support.wait import wait_until


def test_a_missed_notification_is_settled_by_gettask(harness: Harness) -> None:
    key = harness.key("images", "quiet.png")
    [task_id] = harness.on_upload(harness.put(key, png("purple")))["started"]
    wait_until(lambda: harness.get_task("ImageSplicing", task_id).status != "Running", what="IMM task end")
    summary = harness.reconcile(later_by=PAST_RECONCILE_AFTER)
    assert task_id in summary["finished"]
    task = harness.ledger.task_by_id(task_id)
    assert task is not None and task.status == "Succeeded" and len(task.outputs) == 1
    [follow_up] = harness.ledger.children_of([task_id])
    assert follow_up.task_name == "pdf" and follow_up.status == "Running"
    # The notification arrives after all: nothing changes, no second follow-up.
    assert harness.on_task_done(harness.notification_for(task_id))["outcome"] == "duplicate"
    assert len(harness.ledger.children_of([task_id])) == 1


def test_a_task_imm_does_not_know_is_lost_and_its_run_completes(harness: Harness) -> None:
    key = harness.key("images", "ghost.png")
    [task_id] = harness.on_upload(harness.put(key, png("white")))["started"]
    run_id = harness.task(task_id).run_id
    body = harness.notification_for(task_id)  # taken from the queue and never delivered
    ghost = NewTask(
        claim_key=claim_key("ghost", run_id),
        run_id=run_id,
        rule="images",
        task_name="preview",
        task_type="ImageSplicing",
        action="CreateImageSplicingTask",
        parent_task_id=None,
        depth=1,
        sources=[f"oss://fn-media/{key}"],
        tags={},
        user_data="",
        request={},
    )
    now = utcnow()
    harness.ledger.claim_task(ghost, now=now, expires_at=now + timedelta(minutes=1))
    harness.ledger.mark_created(
        ghost.claim_key, task_id="ImageSplicing-00000000-0000-4000-8000-000000000000", now=now
    )
    harness.on_task_done(body)
    summary = harness.reconcile(later_by=PAST_RECONCILE_AFTER)
    assert summary["lost"] == ["ImageSplicing-00000000-0000-4000-8000-000000000000"]
    lost = harness.ledger.task_by_id("ImageSplicing-00000000-0000-4000-8000-000000000000")
    assert lost is not None and lost.status == "Lost" and "ResourceNotFound" in lost.message

    # The follow-up of the real task finishes too; reconcile settles it (its notification was dropped).
    def settled() -> bool:
        harness.reconcile(later_by=PAST_RECONCILE_AFTER)
        return harness.ledger.run_is_complete(run_id)

    wait_until(settled, what="run completion")
    run = harness.ledger.get_run(run_id)
    assert run is not None and run.status == "Done"


def test_a_task_whose_bucket_is_gone_does_not_block_the_others(harness: Harness) -> None:
    doomed = oss2.Bucket(harness.cloud.bucket.auth, harness.cloud.oss_url, f"fn-doomed-{harness.prefix}")
    doomed.create_bucket()
    key = harness.key("images", "doomed.png")
    doomed.put_object(key, png("gray"))
    event = oss_event(harness.cloud, key, png("gray"))
    event["events"][0]["oss"]["bucket"]["name"] = doomed.bucket_name
    [doomed_id] = harness.on_upload(event)["started"]
    [other_id] = harness.on_upload(harness.put(harness.key("images", "fine.png"), png("navy")))["started"]
    wait_until(
        lambda: all(harness.get_task("ImageSplicing", t).status != "Running" for t in (doomed_id, other_id)),
        what="IMM tasks end",
    )
    for listed in oss2.ObjectIterator(doomed):
        doomed.delete_object(listed.key)
    doomed.delete_bucket()

    # The oldest task fails (its outputs cannot be listed): logged, counted, and the invocation fails ...
    with pytest.raises(ReconcileError, match=doomed_id):
        harness.reconcile(later_by=PAST_RECONCILE_AFTER)
    # ... after the task behind it was settled.
    other = harness.ledger.task_by_id(other_id)
    assert other is not None and other.status == "Succeeded" and len(other.outputs) == 1
    stuck = harness.ledger.task_by_id(doomed_id)
    assert stuck is not None and stuck.status == "Running"

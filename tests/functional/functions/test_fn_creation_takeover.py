"""A task IMM accepted whose creator died before recording its TaskId: the delivery that takes the
claim over finds it with ListTasks and adopts it, so IMM holds one task per claim, not two."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_imm20200930 import models
from immflow.adapters import ServiceError
from immflow.adapters.imm import ImmAdapter
from immflow.flow.results import NotYetRecordedError
from immflow.ledger import Ledger, run_id_for

from tests.support.handlers import BUCKET, FAN_OUT_PIPELINE, PROJECT, Harness, expire_open_claims
from tests.support.media import png


@pytest.fixture
def crash_after_create(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Arms a crash: the next `Ledger.mark_created` fails, as if the instance died right after IMM
    accepted a task."""
    original = Ledger.mark_created

    def fail_once(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(Ledger, "mark_created", original)
        raise RuntimeError("the instance died")

    return lambda: monkeypatch.setattr(Ledger, "mark_created", fail_once)


def _imm_tasks(harness: Harness, run_id: str) -> list[models.ListTasksResponseBodyTasks]:
    request = models.ListTasksRequest(
        project_name=PROJECT, tag_selector=f"immflow:run={run_id}", request_definition=True
    )
    return list(harness.cloud.imm.list_tasks(request).body.tasks or [])


def test_a_redelivered_upload_adopts_the_task_imm_already_has(
    harness: Harness, crash_after_create: Callable[[], None]
) -> None:
    key = harness.key("images", "crash.png")
    event = harness.put(key, png("orange"))
    crash_after_create()
    with pytest.raises(RuntimeError, match="died"):
        harness.on_upload(event)
    [task] = harness.ledger.tasks_of_run(
        run_id_for(BUCKET, key, event["events"][0]["oss"]["object"]["eTag"], 1)
    )
    assert task.status == "Creating" and task.task_id is None
    [held] = _imm_tasks(harness, task.run_id)  # IMM did accept it

    expire_open_claims(harness, task.run_id)
    assert harness.on_upload(event)["started"] == [held.task_id]
    assert [t.task_id for t in _imm_tasks(harness, task.run_id)] == [held.task_id]
    [recorded] = harness.ledger.tasks_of_run(task.run_id)
    assert (recorded.status, recorded.task_id) == ("Running", held.task_id)
    # Its result takes the usual path.
    summary = harness.on_task_done(harness.notification_for(held.task_id))
    assert (summary["outcome"], summary["status"]) == ("recorded", "Succeeded")


def test_fan_out_siblings_sharing_user_data_are_told_apart_by_their_sources(
    harness: Harness, crash_after_create: Callable[[], None]
) -> None:
    Path(os.environ["IMMFLOW_PIPELINE"]).write_text(FAN_OUT_PIPELINE)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", png("red"))
        archive.writestr("b.png", png("green"))
    event = harness.put(harness.key("bundles", "pages.zip"), buffer.getvalue())
    [unzip_id] = harness.on_upload(event)["started"]
    unzip = harness.ledger.task_by_id(unzip_id)
    assert unzip is not None
    run_id = unzip.run_id
    notification = harness.notification_for(unzip_id)
    crash_after_create()  # while creating the first of the two follow-ups
    with pytest.raises(RuntimeError, match="died"):
        harness.on_task_done(notification)
    siblings = [t for t in harness.ledger.tasks_of_run(run_id) if t.task_name == "pdf"]
    assert [t.status for t in siblings] == ["Creating", "Creating"]
    assert siblings[0].user_data == siblings[1].user_data and siblings[0].sources != siblings[1].sources
    [first] = _imm_tasks(harness, run_id)  # the first sibling reached IMM, the second did not

    expire_open_claims(harness, run_id)
    assert harness.on_task_done(notification)["follow_ups"] == 2
    held = {t.task_id: t for t in _imm_tasks(harness, run_id)}
    assert len(held) == 2 and first.task_id in held
    for sibling in (t for t in harness.ledger.tasks_of_run(run_id) if t.task_name == "pdf"):
        assert sibling.status == "Running" and sibling.task_id in held
        definition = json.loads(held[sibling.task_id].task_request_definition)
        assert [source["URI"] for source in definition["Sources"]] == sibling.sources


def test_a_notification_records_a_task_its_creator_never_recorded(
    harness: Harness, crash_after_create: Callable[[], None]
) -> None:
    key = harness.key("images", "orphan.png")
    event = harness.put(key, png("olive"))
    crash_after_create()
    with pytest.raises(RuntimeError, match="died"):
        harness.on_upload(event)
    [task] = harness.ledger.tasks_of_run(
        run_id_for(BUCKET, key, event["events"][0]["oss"]["object"]["eTag"], 1)
    )
    assert task.status == "Creating" and task.task_id is None
    [held] = _imm_tasks(harness, task.run_id)  # IMM has the task, the ledger has no TaskId for it
    notification = harness.notification_for(held.task_id)
    # While the creator's claim is held it may still record the task: FC delivers the notification again.
    with pytest.raises(NotYetRecordedError):
        harness.on_task_done(notification)

    expire_open_claims(harness, task.run_id)  # the dead creator's timeout has passed
    summary = harness.on_task_done(notification)
    assert (summary["outcome"], summary["status"], summary["follow_ups"]) == ("recorded", "Succeeded", 1)
    recorded = harness.ledger.task_by_id(held.task_id)
    assert recorded is not None and recorded.claim_key == task.claim_key and len(recorded.outputs) == 1
    # The redelivered upload event then changes nothing; IMM holds the one task.
    assert harness.on_upload(event)["started"] == []
    assert [t.task_id for t in _imm_tasks(harness, task.run_id) if t.task_type == "ImageSplicing"] == [
        held.task_id
    ]


@pytest.mark.parametrize(
    ("code", "status", "adopted"),
    [("InternalError", 500, True), ("NetworkError", None, True), ("Throttling.User", 400, False)],
)
def test_a_create_task_whose_answer_was_lost_is_adopted_not_sent_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, code: str, status: int | None, adopted: bool
) -> None:
    """IMM carried the CreateTask out but its answer never came back (a 5xx or a broken connection,
    what the local cloud's imm.response.lost fault does): the retry finds the task with ListTasks
    instead of creating a second one. A throttled call was not carried out, so it is simply sent again."""
    original = ImmAdapter.create_task

    def answer_lost_once(self: ImmAdapter, action: str, request: Any) -> Any:
        monkeypatch.setattr(ImmAdapter, "create_task", original)
        if adopted:
            original(self, action, request)  # IMM has it; the caller is told it failed
        raise ServiceError("imm", action, code, "the answer was lost", status=status, retryable=True)

    monkeypatch.setattr(ImmAdapter, "create_task", answer_lost_once)
    key = harness.key("images", f"answer-lost-{code}.png")
    event = harness.put(key, png("teal"))
    started = harness.on_upload(event)["started"]
    run_id = run_id_for(BUCKET, key, event["events"][0]["oss"]["object"]["eTag"], 1)
    held = [t.task_id for t in _imm_tasks(harness, run_id)]
    assert len(held) == 1 and started == held
    [recorded] = harness.ledger.tasks_of_run(run_id)
    assert (recorded.status, recorded.task_id) == ("Running", held[0])

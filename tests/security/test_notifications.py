"""A forged IMM notification, published to the real local topic with the official MNS SDK by someone
allowed to publish there: it names a real TaskId and points the task's outputs at a private object.

on_task_done must confirm the task with GetTask, record only objects under the task's own targets,
start no follow-up on the forged object, and still record the genuine notification when it comes.
The functions run as FC runs them, against the local OSS, MNS and IMM (see tests/support/handlers.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

from alibabacloud_imm20200930 import models
from immflow.ledger import run_id_for
from mns.topic import TopicMessage

from tests.support.handlers import BUCKET, PROJECT, TOPIC, Harness, cloud, harness
from tests.support.media import png
from tests.support.wait import wait_until

__all__ = ["cloud", "harness"]  # the fixtures, for pytest


def _forge(harness: Harness, task_id: str, **content: Any) -> str:
    """Publish a notification for `task_id` as an attacker would (its lineage read from GetTask, which
    the attacker may also see), with `content` over the genuine-looking fields; returns the body."""
    held = harness.get_task("ImageSplicing", task_id)
    body = json.dumps(
        {
            "id": "F0R-GEDforgedforgedforgedforged00",
            "source": "acs.imm",
            "type": "imm:Task:ImageSplicing",
            "subject": "",
            "time": str(int(time.time() * 1000)),
            "content": json.dumps(
                {
                    "ProjectName": PROJECT,
                    "DatasetName": "",
                    "RequestId": "00000000-0000-0000-0000-000000000000",
                    "StartTime": held.start_time,
                    "EndTime": held.end_time,
                    "UserData": held.user_data,
                    "TaskType": "ImageSplicing",
                    "TaskId": task_id,
                    "Status": "Succeeded",
                    "Code": "",
                    "Message": "",
                    "EventSourceId": "",
                    **content,
                }
            ),
        }
    )
    harness.cloud.mns.get_topic(TOPIC).publish_message(TopicMessage(body))
    return body


def _both(harness: Harness, task_id: str, forged_marker: str) -> tuple[str, str]:
    """The forged and the genuine notification of `task_id`, as the topic delivered them."""
    forged = genuine = None
    deadline = time.monotonic() + 60
    while forged is None or genuine is None:
        assert time.monotonic() < deadline, "the forged or the genuine notification never came"
        for body in harness.next_notifications(timeout=deadline - time.monotonic()):
            if task_id not in body:
                continue
            if forged_marker in body:
                forged = body
            else:
                genuine = body
    return forged, genuine


def _start(harness: Harness, name: str) -> tuple[str, str]:
    key = harness.key("images", name)
    event = harness.put(key, png("teal"))
    [task_id] = harness.on_upload(event)["started"]
    wait_until(lambda: harness.get_task("ImageSplicing", task_id).status != "Running", what="IMM task end")
    return task_id, run_id_for(BUCKET, key, event["events"][0]["oss"]["object"]["eTag"], 1)


def test_a_forged_notification_cannot_choose_a_tasks_outputs(harness: Harness) -> None:
    secret_key = f"private/{harness.prefix}/secret.png"
    harness.cloud.bucket.put_object(secret_key, png("black"))
    secret = f"oss://{BUCKET}/{secret_key}"
    task_id, run_id = _start(harness, "victim.png")

    _forge(harness, task_id, TargetURI=secret)
    forged, genuine = _both(harness, task_id, secret)
    # The forged one first: nothing changes, and no follow-up reads the private object.
    summary = harness.on_task_done(forged)
    assert summary["outcome"] == "suspicious"
    task = harness.ledger.task_by_id(task_id)
    assert task is not None and (task.status, task.outputs) == ("Running", [])
    assert harness.ledger.children_of([task_id]) == []

    # The genuine one is then recorded, not dropped as a duplicate of the forged one.
    summary = harness.on_task_done(genuine)
    assert (summary["outcome"], summary["status"], summary["follow_ups"]) == ("recorded", "Succeeded", 1)
    preview = f"oss://{BUCKET}/processed/uploads/images/{harness.prefix}/victim/preview-small.jpg"
    task = harness.ledger.task_by_id(task_id)
    assert task is not None and task.outputs == [preview]
    [follow_up] = harness.ledger.children_of([task_id])
    assert follow_up.sources == [preview]

    harness.run_to_end(run_id)
    run = harness.ledger.get_run(run_id)
    assert run is not None and run.manifest_uri is not None
    manifest = harness.cloud.bucket.get_object(run.manifest_uri.split("/", 3)[3]).read().decode()
    assert preview in manifest and secret not in manifest
    # IMM never got a task reading the private object.
    listed = harness.cloud.imm.list_tasks(
        models.ListTasksRequest(
            project_name=PROJECT, tag_selector=f"immflow:run={run_id}", request_definition=True
        )
    )
    assert all(secret not in (info.task_request_definition or "") for info in listed.body.tasks or [])


def test_a_forged_failure_does_not_hide_the_genuine_success(harness: Harness) -> None:
    task_id, _ = _start(harness, "status.png")
    marker = "forged: the task failed"
    _forge(harness, task_id, Status="Failed", Code="InternalError", Message=marker)
    forged, genuine = _both(harness, task_id, marker)
    assert harness.on_task_done(forged)["outcome"] == "suspicious"
    task = harness.ledger.task_by_id(task_id)
    assert task is not None and task.status == "Running"
    summary = harness.on_task_done(genuine)
    assert (summary["outcome"], summary["status"]) == ("recorded", "Succeeded")

"""The fault plan in the local IMM: throttling and 500s on API calls, hanging tasks, lost notifications.

Each test starts its own IMM on the shared OSS and MNS with a plan whose rates it sets once the
project exists (the plan object is shared, so the service sees the change), then shows that the
fault happened, as the SDK sees it, and that it was logged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException

from localcloud.core.faults import FaultPlan
from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, TOPIC, Inbox, MakeImm, wait_task
from tests.support.wait import wait_until

if TYPE_CHECKING:
    pass


def _plan(tmp_path: Path) -> FaultPlan:
    return FaultPlan(seed=1, log_path=tmp_path / "faults.log")


def _logged(plan: FaultPlan) -> list[dict[str, str]]:
    assert plan.log_path is not None
    return [json.loads(line) for line in plan.log_path.read_text().splitlines()]


def _compress(cloud: Cloud, client: Client, key: str, notify: models.Notification | None = None) -> str:
    cloud.bucket.put_object(key, b"hello")
    request = models.CreateFileCompressionTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateFileCompressionTaskRequestSources(uri=cloud.uri(key))],
        target_uri=cloud.uri(f"faults-out/{key.replace('/', '-')}.zip"),
        notification=notify,
    )
    return str(client.create_file_compression_task(request).body.task_id)


def test_throttle_answers_throttling_user_with_retry_after(make_imm: MakeImm, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    plan.rates["imm.throttle"] = 1.0
    with pytest.raises(ThrottlingException) as info:
        extra.client.get_project(models.GetProjectRequest(project_name=PROJECT))
    assert info.value.code == "Throttling.User" and info.value.retry_after == 1
    assert [(e["kind"], e["detail"]) for e in _logged(plan)] == [("imm.throttle", "GetProject")]


def test_error_answers_500_internal_error_and_creates_nothing(
    cloud: Cloud, make_imm: MakeImm, tmp_path: Path
) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    plan.rates["imm.error"] = 1.0
    with pytest.raises(ServerException) as info:
        _compress(cloud, extra.client, "faults/error.txt")
    assert info.value.status_code == 500 and info.value.code == "InternalError"
    plan.rates["imm.error"] = 0.0
    listed = extra.client.list_tasks(models.ListTasksRequest(project_name=PROJECT, max_results=100))
    assert listed.body.tasks == []
    assert [e["kind"] for e in _logged(plan)] == ["imm.error"]


def test_a_repeated_call_is_a_new_item_so_a_retry_can_pass(make_imm: MakeImm, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    plan.rates["imm.throttle"] = 0.5
    outcomes = []
    for _ in range(40):
        try:
            extra.client.get_project(models.GetProjectRequest(project_name=PROJECT))
            outcomes.append("ok")
        except ThrottlingException:
            outcomes.append("throttled")
    assert 5 < outcomes.count("throttled") < 35  # about half, though every call is the same
    items = [e["item"] for e in _logged(plan)]
    assert len(set(items)) == len(items) == outcomes.count("throttled")


def test_hang_keeps_a_task_running_for_hang_seconds(cloud: Cloud, make_imm: MakeImm, tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    plan.rates["imm.hang"] = 1.0
    plan.settings["hang_seconds"] = 3.0
    started = time.monotonic()
    task_id = _compress(cloud, extra.client, "faults/hang.txt")
    assert plan.log_path is not None
    wait_until(plan.log_path.exists, 10, "the hang to start")
    request = models.GetTaskRequest(project_name=PROJECT, task_type="FileCompression", task_id=task_id)
    running = extra.client.get_task(request).body
    assert (running.status, running.progress) == ("Running", 0)
    assert wait_task(extra.client, "FileCompression", task_id).status == "Succeeded"
    assert time.monotonic() - started >= 3.0
    ((kind, item),) = [(e["kind"], e["item"]) for e in _logged(plan)]
    # keyed by the task's project, type and request, not by its TaskId (new in every run)
    assert kind == "imm.hang" and item.startswith(f"{PROJECT}/FileCompression:") and task_id not in item


def test_a_lost_notification_is_never_published_but_get_task_has_the_end(
    cloud: Cloud, make_imm: MakeImm, inbox: Inbox, tmp_path: Path
) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    notify = models.Notification(mns=models.MNS(topic_name=TOPIC))
    plan.rates["imm.notification.lost"] = 1.0
    lost = _compress(cloud, extra.client, "faults/lost.txt", notify)
    assert wait_task(extra.client, "FileCompression", lost).status == "Succeeded"
    plan.rates["imm.notification.lost"] = 0.0
    kept = _compress(cloud, extra.client, "faults/kept.txt", notify)
    inbox.wait(kept)  # published after the lost one would have been
    assert lost not in inbox.received
    ((kind, item, detail),) = [(e["kind"], e["item"], e["detail"]) for e in _logged(plan)]
    assert (kind, detail) == ("imm.notification.lost", f"{lost} on {TOPIC}")  # the detail names the task
    assert item.startswith(f"{PROJECT}/FileCompression:") and lost not in item


def test_without_a_plan_nothing_is_injected(make_imm: MakeImm) -> None:
    extra = make_imm()
    for _ in range(5):
        extra.client.get_project(models.GetProjectRequest(project_name=PROJECT))
    with pytest.raises(ClientException):  # an ordinary error is still itself
        extra.client.get_project(models.GetProjectRequest(project_name="no-such-project"))


def test_a_lost_response_hides_a_task_that_was_created(
    cloud: Cloud, make_imm: MakeImm, tmp_path: Path
) -> None:
    plan = _plan(tmp_path)
    extra = make_imm(faults=plan)
    plan.rates["imm.response.lost"] = 1.0
    with pytest.raises(ServerException) as info:
        _compress(cloud, extra.client, "faults/response-lost.txt")
    assert info.value.status_code == 500 and info.value.code == "InternalError"
    plan.rates["imm.response.lost"] = 0.0
    listed = extra.client.list_tasks(models.ListTasksRequest(project_name=PROJECT, max_results=100))
    (task,) = listed.body.tasks  # the task exists all the same
    assert [(e["kind"], e["detail"]) for e in _logged(plan)] == [
        ("imm.response.lost", "CreateFileCompressionTask")
    ]
    assert wait_task(extra.client, "FileCompression", task.task_id).status == "Succeeded"

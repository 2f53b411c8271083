"""Two function instances (separate processes, each with its own ledger client) handling the same event at
the same moment create every IMM task once: the ledger's claims decide, on Tablestore as on SQL."""

from __future__ import annotations

import json
import multiprocessing
from typing import TYPE_CHECKING, Any

import pytest
from alibabacloud_imm20200930 import models
from immflow.ledger import run_id_for

from tests.support.handlers import BUCKET, PROJECT, Harness, _load_handler, fc_context, mns_event
from tests.support.media import png

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from localcloud.core.account import Account

BOTH_LEDGERS = pytest.mark.parametrize(
    "harness", ["python3.10-tablestore", "python3.12-tablestore", "python3.12-sqlite"], indirect=True
)


def _instance(
    name: str, event: bytes, account: Account, runtime_name: str, start: Barrier, out: Queue[str]
) -> None:
    """One FC instance: a fresh process that loads the handler, then handles `event` once."""
    handler = _load_handler(name)
    context = fc_context(account, runtime_name, f"immflow-{name.replace('_', '-')}")
    start.wait(timeout=120)
    out.put(handler.handler(event, context))


def _in_two_instances(harness: Harness, name: str, event: bytes) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    out: Queue[str] = context.Queue()
    account, runtime_name = harness.cloud.account, harness.runtime_name
    processes = [
        context.Process(target=_instance, args=(name, event, account, runtime_name, start, out))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    results = [json.loads(out.get(timeout=180)) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return results


def _imm_task_ids(harness: Harness, run_id: str) -> list[str]:
    request = models.ListTasksRequest(project_name=PROJECT, tag_selector=f"immflow:run={run_id}")
    return sorted(task.task_id for task in harness.cloud.imm.list_tasks(request).body.tasks or [])


@BOTH_LEDGERS
def test_one_upload_delivered_to_two_instances_at_once_creates_its_task_once(harness: Harness) -> None:
    key = harness.key("images", "twice.png")
    event = harness.put(key, png("purple"))
    results = _in_two_instances(harness, "on_upload", json.dumps(event).encode())
    assert sorted(len(result["started"]) for result in results) == [0, 1]
    run_id = run_id_for(BUCKET, key, event["events"][0]["oss"]["object"]["eTag"], 1)
    [task] = harness.ledger.tasks_of_run(run_id)
    assert task.status == "Running" and _imm_task_ids(harness, run_id) == [task.task_id]


@BOTH_LEDGERS
def test_one_result_delivered_to_two_instances_at_once_starts_its_follow_up_once(harness: Harness) -> None:
    key = harness.key("images", "result-twice.png")
    [preview_id] = harness.on_upload(harness.put(key, png("teal")))["started"]
    notification = mns_event(harness.notification_for(preview_id), "JSON")
    _in_two_instances(harness, "on_task_done", notification)
    run_id = harness.task(preview_id).run_id
    tasks = harness.ledger.tasks_of_run(run_id)
    assert sorted(task.task_name for task in tasks) == ["pdf", "preview"]
    assert _imm_task_ids(harness, run_id) == sorted(str(task.task_id) for task in tasks)

"""ListTasks over a project with thousands of tasks: memory stays the size of a page, and the order,
filters and pages are the same as over a few (the soak's launcher grew with every ListTasks as the
project's history grew, since each one read every task of the project)."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.core.account import Account
from localcloud.imm import ImmService
from localcloud.imm.store import TASK_BATCH

PROJECT = "scale"
TASKS = 3000
NOW = 1_800_000_000.0


def _task(n: int) -> dict[str, Any]:
    """Task number n: every tenth still Running; start and end times in other orders than the ids."""
    running = n % 10 == 0
    return {
        "id": f"Task-{n:05d}",
        "type": "FileCompression" if n % 3 else "ImageToPDF",
        "status": "Running" if running else "Succeeded",
        "batch": f"b{n % 4}",
        "start": NOW - TASKS + (n * 7919 % TASKS),
        "end": None if running else NOW - TASKS + (n * 104729 % TASKS) + 0.5,
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ImmService]:
    account = Account.load_or_create(tmp_path)
    started = ImmService(
        tmp_path, account, oss_endpoint="http://127.0.0.1:9", mns_endpoint="http://127.0.0.1:9"
    )
    started.CreateProject({"ProjectName": PROJECT})
    started.close()
    # Finished tasks with a result of a few KB each (an archive inspection lists its files), written
    # straight into the store so that the engine has nothing to run.
    with sqlite3.connect(tmp_path / "imm" / "imm.sqlite3") as db:
        db.executemany(
            "INSERT INTO tasks (task_id, project, task_type, role, status, phase, tags, user_data, request, "
            "request_id, event_id, start_time, end_time, result) VALUES (?, ?, ?, '', ?, ?, ?, '', ?, '', '', ?, ?, ?)",
            [
                (
                    task["id"],
                    PROJECT,
                    task["type"],
                    task["status"],
                    "running" if task["status"] == "Running" else "done",
                    json.dumps({"batch": task["batch"]}),
                    json.dumps({"SourceURI": f"oss://b/in/{task['id']}"}),
                    task["start"],
                    task["end"],
                    json.dumps({"Files": [{"Name": f"file-{i}-{'x' * 40}"} for i in range(60)]}),
                )
                for task in map(_task, range(TASKS))
            ],
        )
    # No engine workers: the Running tasks stay as written (a worker would run them again).
    reopened = ImmService(
        tmp_path,
        account,
        oss_endpoint="http://127.0.0.1:9",
        mns_endpoint="http://127.0.0.1:9",
        clock=lambda: NOW,
        engine_concurrency=0,
    )
    yield reopened
    reopened.close()


def _all_pages(service: ImmService, **params: str) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        body: dict[str, Any] = service.ListTasks(
            {"ProjectName": PROJECT, "MaxResults": "100", **params, **({"NextToken": token} if token else {})}
        )
        ids += [task["TaskId"] for task in body["Tasks"]]
        token = body.get("NextToken", "")
        if not token:
            return ids


def test_a_list_tasks_page_takes_memory_for_a_page_not_for_the_project(service: ImmService) -> None:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        body = service.ListTasks({"ProjectName": PROJECT, "MaxResults": "1"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [task["TaskId"] for task in body["Tasks"]] == ["Task-00000"] and body["NextToken"]
    # A batch of TASK_BATCH rows with their results is about 1 MiB; all 3000 would be about 20 MiB.
    assert peak < 4 * 2**20, f"one ListTasks page took {peak / 2**20:.1f} MiB"


def test_order_filters_and_pages_across_batches(service: ImmService) -> None:
    assert TASKS > 2 * TASK_BATCH
    reference = {task["id"]: task for task in map(_task, range(TASKS))}
    assert _all_pages(service) == sorted(reference)
    by_start = sorted(reference, key=lambda t: (reference[t]["start"], t), reverse=True)
    assert _all_pages(service, Sort="StartTime", Order="desc") == by_start
    by_end = sorted(reference, key=lambda t: (reference[t]["end"] or float("inf"), t))
    assert _all_pages(service, Sort="EndTime", Order="asc") == by_end
    running_b1 = sorted(t for t, v in reference.items() if v["status"] == "Running" and v["batch"] == "b1")
    assert _all_pages(service, Status="Running", TagSelector="batch=b1") == running_b1
    images = sorted(t for t, v in reference.items() if v["type"] == "ImageToPDF")
    assert _all_pages(service, TaskTypes='["ImageToPDF"]') == images

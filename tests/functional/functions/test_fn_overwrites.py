"""Overwriting one key, through the real handlers and the local cloud, on both ledgers: A, B, A is three
runs; the same bytes again, or an event older than the key's latest run, start nothing; a run whose
outputs a newer run wrote over ends ``Superseded``, and each manifest keeps the ETags it saw."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_imm20200930 import models

from tests.support.handlers import PROJECT, Harness
from tests.support.media import png

BOTH_LEDGERS = pytest.mark.parametrize(
    "harness", ["python3.12-tablestore", "python3.10-sqlite"], indirect=True
)


def _imm_tasks_of_key(harness: Harness, run_ids: list[str]) -> int:
    count = 0
    for run_id in run_ids:
        request = models.ListTasksRequest(project_name=PROJECT, tag_selector=f"immflow:run={run_id}")
        count += len(harness.cloud.imm.list_tasks(request).body.tasks or [])
    return count


def _upload_and_finish(harness: Harness, key: str, data: bytes) -> tuple[dict[str, Any], str]:
    event = harness.put(key, data)
    [parent] = harness.on_upload(event)["started"]
    task = harness.ledger.task_by_id(parent)
    assert task is not None
    harness.run_to_end(task.run_id)
    return event, task.run_id


def _manifest(harness: Harness, run_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        harness.cloud.bucket.get_object(f"immflow/manifests/{run_id}.json").read()
    )
    return document


@BOTH_LEDGERS
def test_a_b_a_is_three_runs_and_only_the_latest_stands(harness: Harness) -> None:
    key = harness.key("images", "over.png")
    a, b = png("red"), png("green")
    _, run_a = _upload_and_finish(harness, key, a)

    # The same bytes again (a client's retry, an identical upload): joins the latest run, creates nothing.
    assert harness.on_upload(harness.put(key, a))["started"] == []

    event_b, run_b = _upload_and_finish(harness, key, b)
    _, run_a2 = _upload_and_finish(harness, key, a)
    assert len({run_a, run_b, run_a2}) == 3

    # B's event delivered again now, older than the latest run: it starts nothing.
    late = harness.on_upload(event_b)
    assert late["started"] == [] and late["skipped"] == [f"oss://fn-media/{key}"]
    assert _imm_tasks_of_key(harness, [run_a, run_b, run_a2]) == 6  # preview + pdf, per run

    runs = {run.run_id: run for run in harness.ledger.list_runs(source=f"oss://fn-media/{key}")}
    assert set(runs) == {run_a, run_b, run_a2}
    assert [(runs[r].sequence, runs[r].status, runs[r].superseded_by) for r in (run_a, run_b, run_a2)] == [
        (1, "Superseded", run_b),
        (2, "Superseded", run_a2),
        (3, "Done", None),
    ]
    latest = harness.ledger.latest_run(f"oss://fn-media/{key}")
    assert latest is not None and latest.run_id == run_a2

    # Each manifest records the outputs as they were when its run completed: B's preview differs from A's.
    previews = [_manifest(harness, r)["tasks"][0]["output_objects"] for r in (run_a, run_b, run_a2)]
    for objects in previews:
        [found] = objects
        assert found["exists"] and found["size"] > 0 and "partial" not in found
    uri = previews[0][0]["uri"]
    assert [objects[0]["uri"] for objects in previews] == [uri] * 3
    etags = [objects[0]["etag"] for objects in previews]
    assert etags[0] != etags[1] and etags[2] != etags[1]
    now = harness.cloud.bucket.head_object(uri.removeprefix("oss://fn-media/")).etag.strip('"')
    assert etags[2] == now
    assert _manifest(harness, run_a2)["supersedes"] == [run_b]

"""An image upload through on_upload and on_task_done: tasks, tags, lineage, follow-ups, manifest,
and what duplicate and late deliveries change (nothing)."""

from __future__ import annotations

import json

from alibabacloud_imm20200930 import models
from immflow.ledger import run_id_for

from tests.support.handlers import PROJECT, TOPIC, Harness
from tests.support.media import png


def test_an_upload_starts_its_tasks_once_with_tags_and_lineage(harness: Harness) -> None:
    key = harness.key("images", "cat.png")
    event = harness.put(key, png())
    first = harness.on_upload(event)
    assert len(first["started"]) == 1 and first["failed"] == 0
    [task] = harness.ledger.tasks_of_run(
        run_id_for("fn-media", key, event["events"][0]["oss"]["object"]["eTag"], 1)
    )
    assert (task.status, task.rule, task.task_name, task.depth, task.task_id) == (
        "Running",
        "images",
        "preview",
        1,
        first["started"][0],
    )

    held = harness.get_task("ImageSplicing", first["started"][0])
    assert held.tags == {
        "pipeline": "images",
        "profile": "small",
        "immflow:rule": "images",
        "immflow:task": "preview",
        "immflow:run": task.run_id,
    }
    lineage = json.loads(held.user_data)
    assert lineage == {
        "v": 1,
        "run": task.run_id,
        "src": f"oss://fn-media/{key}",
        "etag": event["events"][0]["oss"]["object"]["eTag"],
        "rule": "images",
        "task": "preview",
        "parent": None,
        "depth": 1,
    }
    # The same event again (FC redelivers): nothing new in the ledger or in IMM.
    again = harness.on_upload(event)
    assert again["started"] == []
    assert len(harness.ledger.tasks_of_run(task.run_id)) == 1
    listed = harness.cloud.imm.list_tasks(
        models.ListTasksRequest(project_name=PROJECT, tag_selector=f"immflow:run={task.run_id}")
    ).body.tasks
    assert len(listed) == 1


def test_the_pipeline_runs_to_its_manifest_and_ignores_redeliveries(harness: Harness) -> None:
    key = harness.key("images", "dog.png")
    event = harness.put(key, png("blue"))
    [parent_id] = harness.on_upload(event)["started"]
    run_id = harness.task(parent_id).run_id
    fed = harness.run_to_end(run_id)

    tasks = {t.task_name: t for t in harness.ledger.tasks_of_run(run_id)}
    preview, pdf = tasks["preview"], tasks["pdf"]
    folder = f"oss://fn-media/processed/uploads/images/{harness.prefix}/dog"
    assert (preview.status, preview.outputs) == ("Succeeded", [f"{folder}/preview-small.jpg"])
    assert (pdf.status, pdf.parent_task_id, pdf.depth) == ("Succeeded", parent_id, 2)
    assert pdf.sources == preview.outputs
    assert pdf.outputs == [f"{folder}/preview-small.pdf"]
    assert pdf.request["TargetURI"] == f"{folder}/preview-small.pdf"  # expanded by immflow for ImageToPDF
    assert json.loads(harness.get_task("ImageToPDF", pdf.task_id or "").user_data)["parent"] == parent_id

    run = harness.ledger.get_run(run_id)
    assert run is not None and run.status == "Done"
    assert run.manifest_uri == f"oss://fn-media/immflow/manifests/{run_id}.json"
    manifest = json.loads(harness.cloud.bucket.get_object(f"immflow/manifests/{run_id}.json").read())
    assert manifest["run"] == run_id and manifest["succeeded"] is True
    assert manifest["source"]["uri"] == f"oss://fn-media/{key}"
    assert [(t["task"], t["status"], t["outputs"]) for t in manifest["tasks"]] == [
        ("preview", "Succeeded", preview.outputs),
        ("pdf", "Succeeded", pdf.outputs),
    ]
    assert manifest["tasks"][1]["lineage"]["parent"] == parent_id

    # Every notification again, in reverse order (a follow-up's result before its parent's):
    # the ledger does not change and no follow-up starts twice.
    before = [(t.task_id, t.status, t.updated_at) for t in harness.ledger.tasks_of_run(run_id)]
    for body in reversed(fed):
        assert harness.on_task_done(body)["outcome"] == "duplicate"
    assert [(t.task_id, t.status, t.updated_at) for t in harness.ledger.tasks_of_run(run_id)] == before


def test_stream_format_notifications_are_handled_too(harness: Harness) -> None:
    key = harness.key("images", "stream.png")
    [task_id] = harness.on_upload(harness.put(key, png("green")))["started"]
    body = harness.notification_for(task_id)
    summary = harness.on_task_done(body, content_format="STREAM")
    assert (summary["outcome"], summary["status"], summary["follow_ups"]) == ("recorded", "Succeeded", 1)


def test_the_pipelines_own_outputs_are_not_uploads(harness: Harness) -> None:
    output = f"processed/uploads/images/{harness.prefix}/x/preview-small.jpg"
    summary = harness.on_upload(harness.put(output, b"jpeg"))
    assert summary["started"] == [] and summary["skipped"] == [f"oss://fn-media/{output}"]


def test_a_task_immflow_did_not_start_is_ignored(harness: Harness) -> None:
    source = harness.key("images", "foreign.png")
    harness.cloud.bucket.put_object(source, png())
    created = harness.cloud.imm.create_image_to_pdftask(
        models.CreateImageToPDFTaskRequest(
            project_name=PROJECT,
            sources=[models.CreateImageToPDFTaskRequestSources(uri=f"oss://fn-media/{source}")],
            target_uri=f"oss://fn-media/elsewhere/{harness.prefix}.pdf",
            notification=models.Notification(mns=models.MNS(topic_name=TOPIC)),
            user_data="someone else's",
        )
    ).body
    body = harness.notification_for(created.task_id)
    assert harness.on_task_done(body)["outcome"] == "foreign"
    assert harness.ledger.task_by_id(created.task_id) is None

"""Hand-written on_task_done: confirm the notified task with GetTask, start the thumbnail after a
preview, write a manifest of the task."""

import json
import os
from typing import Any

import oss2
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.models import Config

PROJECT = os.environ["IMMFLOW_PROJECT"]
KEY_ID = os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"]
KEY_SECRET = os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
imm = Client(
    Config(
        access_key_id=KEY_ID,
        access_key_secret=KEY_SECRET,
        endpoint=os.environ["IMMFLOW_IMM_ENDPOINT"],
        protocol="http",
        region_id="cn-hangzhou",
    )
)
auth = oss2.Auth(KEY_ID, KEY_SECRET)
buckets: dict[str, oss2.Bucket] = {}


def handler(event: bytes, context: Any) -> str:
    message = json.loads(json.loads(event)["Message"])
    result = json.loads(message["content"])
    task = imm.get_task(
        models.GetTaskRequest(project_name=PROJECT, task_type=result["TaskType"], task_id=result["TaskId"])
    ).body
    if task.status not in ("Succeeded", "Failed"):
        raise RuntimeError(f"task {task.task_id} is {task.status}")
    lineage = json.loads(task.user_data or "{}")
    source = lineage.get("src", "")
    bucket_name, _, key = source.removeprefix("oss://").partition("/")
    follow_up = None
    if task.status == "Succeeded" and lineage.get("task") == "preview":
        folder = key.rpartition("/")[0]
        follow_up = imm.create_image_splicing_task(
            models.CreateImageSplicingTaskRequest(
                project_name=PROJECT,
                sources=[models.CreateImageSplicingTaskRequestSources(uri=source)],
                target_uri=f"oss://{bucket_name}/{folder}/thumb.jpg",
                align=16,
                notification=models.Notification(mns=models.MNS(topic_name=os.environ["IMMFLOW_TOPIC"])),
                user_data=json.dumps({**lineage, "task": "thumb"}),
            )
        ).body.task_id
    if bucket_name not in buckets:
        buckets[bucket_name] = oss2.Bucket(auth, os.environ["IMMFLOW_OSS_ENDPOINT"], bucket_name)
    manifest = {"task": task.task_id, "status": task.status, "source": source, "follow_up": follow_up}
    buckets[bucket_name].put_object(
        f"immflow/manifests/{task.task_id}.json",
        json.dumps(manifest).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.dumps(manifest)

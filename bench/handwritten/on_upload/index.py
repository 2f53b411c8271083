"""Hand-written on_upload: start the bench pipeline's two IMM tasks for a new .png under uploads/."""

import json
import os
from typing import Any

from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.models import Config

PROJECT = os.environ["IMMFLOW_PROJECT"]
NOTIFY = models.Notification(mns=models.MNS(topic_name=os.environ["IMMFLOW_TOPIC"]))
imm = Client(
    Config(
        access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        endpoint=os.environ["IMMFLOW_IMM_ENDPOINT"],
        protocol="http",
        region_id="cn-hangzhou",
    )
)


def handler(event: bytes, context: Any) -> str:
    started = []
    for record in json.loads(event)["events"]:
        bucket, key = record["oss"]["bucket"]["name"], record["oss"]["object"]["key"]
        if not (key.startswith("uploads/") and key.endswith(".png")):
            continue
        folder, _, name = key.rpartition("/")
        stem = name.rsplit(".", 1)[0]
        source = f"oss://{bucket}/{key}"
        lineage = {"src": source, "etag": record["oss"]["object"]["eTag"]}
        preview = imm.create_image_splicing_task(
            models.CreateImageSplicingTaskRequest(
                project_name=PROJECT,
                sources=[models.CreateImageSplicingTaskRequestSources(uri=source)],
                target_uri=f"oss://{bucket}/processed/{folder}/{stem}/preview.jpg",
                align=32,
                notification=NOTIFY,
                user_data=json.dumps({**lineage, "task": "preview"}),
            )
        )
        pdf = imm.create_image_to_pdftask(
            models.CreateImageToPDFTaskRequest(
                project_name=PROJECT,
                sources=[models.CreateImageToPDFTaskRequestSources(uri=source)],
                target_uri=f"oss://{bucket}/processed/{folder}/{stem}/page.pdf",
                notification=NOTIFY,
                user_data=json.dumps({**lineage, "task": "pdf"}),
            )
        )
        started += [preview.body.task_id, pdf.body.task_id]
    return json.dumps({"started": started})

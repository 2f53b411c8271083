"""Hand-written reconcile: list the project's tasks still running since the last day (with no ledger,
IMM's ListTasks is where a user finds them) and settle each with GetTask."""

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.models import Config

PROJECT = os.environ["IMMFLOW_PROJECT"]
AFTER = timedelta(seconds=int(os.environ.get("IMMFLOW_RECONCILE_AFTER_SECONDS", "900")))
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
    now = datetime.now(timezone.utc)
    start = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now - AFTER).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = (
        imm.list_tasks(
            models.ListTasksRequest(
                project_name=PROJECT,
                status="Running",
                start_time_range=models.TimeRange(start=start, end=end),
            )
        ).body.tasks
        or []
    )
    settled = [
        imm.get_task(
            models.GetTaskRequest(project_name=PROJECT, task_type=t.task_type, task_id=t.task_id)
        ).body.status
        for t in stale
    ]
    return json.dumps({"settled": settled})

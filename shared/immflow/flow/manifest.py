"""The run manifest: one JSON document per upload, written to OSS when every task of the run has ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from immflow.flow.lineage import Lineage
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord, iso_time
from immflow.logging import logger
from immflow.ossuri import OssUri

MANIFEST_VERSION = 1


def build_manifest(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "run": run.run_id,
        "source": {
            "uri": run.source_uri,
            "etag": run.etag,
            "size": run.size,
            "content_type": run.content_type,
            "event": run.event_name,
            "upload_time": iso_time(run.upload_time),
        },
        "created_at": iso_time(run.created_at),
        "succeeded": all(task.status == "Succeeded" for task in tasks),
        "tasks": [
            {
                **task.to_json(),
                "lineage": lineage.model_dump()
                if (lineage := Lineage.from_user_data(task.user_data))
                else None,
            }
            for task in tasks
        ],
    }


def complete_run_if_done(call: Call, run_id: str) -> OssUri | None:
    """Write the manifest and mark the run done when none of its tasks is still open; else None.

    Two invocations finishing the last two tasks at once may both write it: the content is the same,
    and each commits its own result before looking, so at least one of them sees the run complete.
    """
    services = call.services
    if not services.ledger.run_is_complete(run_id):
        return None
    run = services.ledger.get_run(run_id)
    if run is None:
        return None
    tasks = services.ledger.tasks_of_run(run_id)
    uri = services.settings.manifest_for(OssUri(run.bucket, run.key), run_id)
    document = build_manifest(run, tasks)
    call.retry(lambda: services.oss.put_json(uri, document))
    services.ledger.finish_run(run_id, manifest_uri=str(uri), now=services.now())
    logger.info(
        "run complete; manifest written",
        extra={"manifest": str(uri), "tasks": len(tasks), "succeeded": document["succeeded"]},
    )
    return uri

"""The run manifest: one JSON document per run, written to OSS when every task of the run has ended.

Besides each task's result, the manifest records every output object as it was when the run completed
(``output_objects``: URI, ETag, size), so a manifest never silently describes bytes a later run wrote
over the same keys: compare an object's ETag with the manifest's. Objects a task left although it did
not succeed (IMM's extraction streams, and keeps what it wrote when a task fails midway: docs/imm.md
"Limits") are listed with ``"partial": true``.

A run's outputs are replaced when a newer run of the same key (a new upload's content) writes the same
objects: when that newer run completes, each earlier ``Done`` run of the key sharing an output with it
is marked ``Superseded`` in the ledger (`superseded_by` names the newer run), and the newer manifest
lists them under ``supersedes``. The earlier manifest is left as it was written: its ETags are the
record of what that run produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from immflow.adapters.oss import ObjectHead
from immflow.flow.lineage import Lineage
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord, iso_time
from immflow.logging import logger
from immflow.ossuri import OssUri

MANIFEST_VERSION = 1


def build_manifest(
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    objects: Mapping[str, ObjectHead | None],
    supersedes: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest of `run`; `objects` is what OSS said of each output when the run completed
    (None: gone already)."""
    return {
        "version": MANIFEST_VERSION,
        "run": run.run_id,
        "sequence": run.sequence,
        "status": "Done",
        "supersedes": list(supersedes),
        "source": {
            "uri": run.source_uri,
            "etag": run.etag,
            "size": run.size,
            "content_type": run.content_type,
            "event": run.event_name,
            "upload_time": iso_time(run.upload_time),
            "request_id": run.request_id,
            "version_id": run.version_id,
        },
        "created_at": iso_time(run.created_at),
        "succeeded": all(task.status == "Succeeded" for task in tasks),
        "tasks": [
            {
                **task.to_json(),
                "output_objects": [_object(uri, objects.get(uri), task) for uri in task.outputs],
                "lineage": lineage.model_dump()
                if (lineage := Lineage.from_user_data(task.user_data))
                else None,
            }
            for task in tasks
        ],
    }


def _object(uri: str, head: ObjectHead | None, task: TaskRecord) -> dict[str, Any]:
    found: dict[str, Any] = {"uri": uri, "etag": None, "size": None, "exists": head is not None}
    if head is not None:
        found.update(etag=head.etag.strip('"'), size=head.size)
    if task.status != "Succeeded":
        found["partial"] = True  # left by a task that did not succeed
    return found


def complete_run_if_done(call: Call, run_id: str) -> OssUri | None:
    """Write the manifest and mark the run done when none of its tasks is still open; else None.

    Two invocations finishing the last two tasks at once may both write it: the content is the same
    but for ETags read a moment apart, and each commits its own result before looking, so at least one
    of them sees the run complete.
    """
    services = call.services
    ledger = services.ledger
    if not ledger.run_is_complete(run_id):
        return None
    run = ledger.get_run(run_id)
    if run is None or run.status == "Superseded":
        return None  # its manifest stays as written: a newer run's bytes are in its outputs now
    tasks = ledger.tasks_of_run(run_id)
    outputs = list(dict.fromkeys(uri for task in tasks for uri in task.outputs))
    objects = {uri: call.retry(partial(services.oss.head, OssUri.parse(uri))) for uri in outputs}
    superseded = _earlier_runs_sharing_outputs(call, run, set(outputs))
    uri = services.settings.manifest_for(OssUri(run.bucket, run.key), run_id)
    document = build_manifest(run, tasks, objects, [earlier.run_id for earlier in superseded])
    call.retry(lambda: services.oss.put_json(uri, document))
    ledger.finish_run(run_id, manifest_uri=str(uri), now=services.now())
    for earlier in superseded:
        if ledger.supersede_run(earlier.run_id, by=run_id, now=services.now()):
            logger.info(
                "earlier run superseded: this run wrote over its outputs",
                extra={"superseded": earlier.run_id, "sequence": earlier.sequence},
            )
    logger.info(
        "run complete; manifest written",
        extra={"manifest": str(uri), "tasks": len(tasks), "succeeded": document["succeeded"]},
    )
    return uri


def _earlier_runs_sharing_outputs(call: Call, run: RunRecord, outputs: set[str]) -> list[RunRecord]:
    """The ``Done`` runs of the same object, earlier in its sequence, that wrote one of `outputs`."""
    if not outputs or run.sequence < 1:
        return []
    ledger = call.services.ledger
    return [
        earlier
        for earlier in ledger.list_runs(source=run.source_uri, status="Done")
        if 0 < earlier.sequence < run.sequence
        and any(uri in outputs for task in ledger.tasks_of_run(earlier.run_id) for uri in task.outputs)
    ]

"""An upload: from an OSS trigger event to the IMM tasks the pipeline's rules start for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from immflow.events.oss import OssEvent, OssEventRecord
from immflow.flow.creation import claim_planned, create_all
from immflow.flow.manifest import complete_run_if_done
from immflow.flow.requests import PlannedTask, plan_task
from immflow.flow.runtime import Call
from immflow.ledger import NewRun, claim_key
from immflow.logging import correlation, logger


@dataclass
class UploadSummary:
    started: list[str] = field(default_factory=list)
    """TaskIds created by this invocation."""
    failed: int = 0
    skipped: list[str] = field(default_factory=list)
    """``oss://`` URIs of records that started nothing, for the reason logged."""


def on_upload(call: Call, event: OssEvent) -> UploadSummary:
    summary = UploadSummary()
    for record in event.events:
        _upload(call, record, summary)
    return summary


def _upload(call: Call, record: OssEventRecord, summary: UploadSummary) -> None:
    services = call.services
    pipeline = services.pipeline
    bucket, key = record.bucket, record.key
    extra = {"object": record.source_uri, "event": record.eventName}
    if pipeline.is_pipeline_output(bucket, key) or _is_manifest(call, bucket, key):
        logger.info("loop guard: the object is written by the pipeline itself; ignored", extra=extra)
        summary.skipped.append(record.source_uri)
        return
    meta = record.oss.object.objectMeta
    rules = pipeline.match(
        bucket, key, record.eventName, record.oss.object.size, meta.mimeType if meta else None
    )
    if not rules:
        logger.info("no rule matches the object; ignored", extra=extra)
        summary.skipped.append(record.source_uri)
        return
    now = services.now()
    start = services.ledger.start_run(
        NewRun(
            run_id="",
            bucket=bucket,
            key=key,
            etag=record.etag or "",
            event_name=record.eventName,
            upload_time=record.eventTime,
            size=record.oss.object.size,
            content_type=meta.mimeType if meta else None,
            request_id=record.responseElements.requestId,
            version_id=record.oss.object.versionId,
        ),
        now=now,
    )
    if start.run is None:
        with correlation(run_id=start.latest):
            logger.warning(
                "upload event older than the key's latest run; ignored, so as not to overwrite newer outputs",
                extra={**extra, "event_time": record.eventTime.isoformat(), "etag": record.etag},
            )
        summary.skipped.append(record.source_uri)
        return
    run = start.run
    run_id = run.run_id
    with correlation(run_id=run_id):
        planned: list[PlannedTask] = [
            plan_task(
                services.settings,
                run=run,
                rule=rule,
                spec=spec,
                sources=[record.source_uri],
                claim=claim_key("upload", run_id, rule.name, spec.name),
                parent_task_id=None,
                depth=1,
                upload_time=record.eventTime,
                task_time=now,
            )
            for rule in rules
            for spec in rule.tasks
        ]
        claims = claim_planned(call, planned, new_run=start.outcome == "started")
        # One line per upload, a redelivery included: what it matched and which tasks it left alone.
        logger.info(
            "upload matches",
            extra={
                **extra,
                "rules": [rule.name for rule in rules],
                "run": start.outcome,
                "sequence": run.sequence,
                "skipped": claims.skipped,
            },
        )
        handled = create_all(call, claims)
        for task in handled:
            if task.task_id is not None and task.status == "Running":
                summary.started.append(task.task_id)
            elif task.status == "Failed":
                summary.failed += 1
        if any(task.is_final for task in handled):
            # Only a task this call ended (refused, for instance) can have finished the run here: a
            # task it created ends later, and whoever records that looks at the run then.
            complete_run_if_done(call, run_id)


def _is_manifest(call: Call, bucket: str, key: str) -> bool:
    folder = call.services.settings.manifest_for_bucket(bucket)
    return folder.bucket == bucket and key.startswith(folder.key)

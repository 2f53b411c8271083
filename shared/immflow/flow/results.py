"""A task's result, from a notification (``on_task_done``) or from GetTask (``reconcile``): record it,
find its outputs, start its follow-ups, finish the run.

Idempotent by a result claim keyed by TaskId + Status (`immflow.ledger`): a notification delivered
twice, or after reconcile already saw the result, changes nothing the second time; follow-ups have
their own create claims, so a redelivery after a crash half-way creates each one once.

A result for a TaskId the ledger does not know is either someone else's task on the same topic (no
immflow lineage in its UserData, or a run immflow never saw): logged and ignored; or one of ours that
finished before the invocation that created it recorded its TaskId (lineage names a known run): then
`NotYetRecordedError` is raised, so FC delivers it again a little later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from immflow.errors import ImmflowError
from immflow.events.imm import ImmNotification, ImmTaskResult
from immflow.flow.creation import claim_and_create
from immflow.flow.lineage import Lineage
from immflow.flow.manifest import complete_run_if_done
from immflow.flow.outputs import discover_outputs
from immflow.flow.requests import PlannedTask, plan_task
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord, claim_key
from immflow.logging import correlation, logger
from immflow.ossuri import OssUri
from immflow.pipeline import UnknownTaskError

Outcome = Literal["recorded", "duplicate", "in-progress", "foreign"]


class NotYetRecordedError(ImmflowError):
    """An immflow task's result arrived before its creator recorded it; a later delivery will find it."""


@dataclass(frozen=True)
class ResultSummary:
    task_id: str
    outcome: Outcome
    status: str
    outputs: int = 0
    follow_ups: int = 0
    manifest: str | None = None


def on_task_done(call: Call, notification: ImmNotification) -> ResultSummary:
    result = notification.content
    with correlation(task_id=result.TaskId):
        task = call.services.ledger.get_task(result.TaskId)
        if task is None:
            lineage = Lineage.from_user_data(result.UserData)
            if lineage is not None and call.services.ledger.get_run(lineage.run) is not None:
                raise NotYetRecordedError(
                    f"task {result.TaskId} ({lineage.rule}/{lineage.task} of run {lineage.run}) is not in the "
                    "ledger yet; its creator has probably not recorded it: retry later"
                )
            logger.info(
                "notification for a task immflow did not start; ignored",
                extra={"task_type": result.TaskType, "status": result.Status},
            )
            return ResultSummary(result.TaskId, "foreign", result.Status)
        return handle_result(call, task, result)


def handle_result(call: Call, task: TaskRecord, result: ImmTaskResult) -> ResultSummary:
    services = call.services
    ledger = services.ledger
    key = claim_key("result", result.TaskId, result.Status)
    with correlation(run_id=task.run_id, task_id=result.TaskId):
        now = services.now()
        state = ledger.claim_result(key, now=now, expires_at=call.claim_expiry(now))
        if state != "claimed":
            logger.info(
                "result already recorded"
                if state == "done"
                else "result being recorded by another invocation",
                extra={"status": result.Status},
            )
            return ResultSummary(
                result.TaskId, "duplicate" if state == "done" else "in-progress", result.Status
            )
        try:
            summary = _record(call, task, result)
        except BaseException:
            ledger.release_claim(key, now=services.now())
            raise
        ledger.finish_claim(key, now=services.now())
        return summary


def _record(call: Call, task: TaskRecord, result: ImmTaskResult) -> ResultSummary:
    services = call.services
    ledger = services.ledger
    run = ledger.get_run(task.run_id)
    if run is None:
        raise ImmflowError(f"the ledger has task {result.TaskId} but not its run {task.run_id}")
    outputs = discover_outputs(call, run, task, result)
    ledger.record_result(
        result.TaskId,
        status=result.Status,
        code=result.Code,
        message=result.Message,
        started_at=result.StartTime,
        ended_at=result.EndTime,
        outputs=outputs,
        now=services.now(),
    )
    recorded = ledger.get_task(result.TaskId) or task
    log = logger.info if recorded.status == "Succeeded" else logger.warning
    log(
        f"task {recorded.status.lower()}",
        extra={
            "rule": task.rule,
            "task": task.task_name,
            "code": recorded.code,
            "imm_message": recorded.message,
            "outputs": len(recorded.outputs),
        },
    )
    follow_ups = claim_and_create(call, plan_follow_ups(call, run, recorded))
    manifest = complete_run_if_done(call, task.run_id)
    return ResultSummary(
        result.TaskId,
        "recorded",
        recorded.status,
        len(recorded.outputs),
        len(follow_ups),
        str(manifest) if manifest else None,
    )


def plan_follow_ups(call: Call, run: RunRecord, parent: TaskRecord) -> list[PlannedTask]:
    """The tasks the pipeline starts after `parent` ended: once per kept output, or once per parent."""
    services = call.services
    pipeline = services.pipeline
    if parent.task_id is None or parent.status not in ("Succeeded", "Failed"):
        return []
    try:
        follow_ups = pipeline.follow_ups(parent.rule, parent.task_name, parent.status)
        rule = pipeline.rule(parent.rule)
    except UnknownTaskError as exc:
        logger.warning("no follow-ups: the pipeline no longer has this task", extra={"problem": str(exc)})
        return []
    depth = parent.depth + 1
    if follow_ups and depth > pipeline.max_depth:
        logger.warning(
            "follow-ups skipped: max_depth reached", extra={"max_depth": pipeline.max_depth, "depth": depth}
        )
        return []
    planned: list[PlannedTask] = []
    for follow_up in follow_ups:
        kept = [uri for uri in parent.outputs if follow_up.keeps(OssUri.parse(uri))]
        groups = [[uri] for uri in kept] if follow_up.for_each == "output" else ([kept] if kept else [])
        if not groups:
            logger.warning(
                "follow-up skipped: the parent has no output it accepts",
                extra={"after": follow_up.after, "on": follow_up.on, "outputs": len(parent.outputs)},
            )
        for spec in follow_up.tasks:
            for sources in groups:
                per_output = sources[0] if follow_up.for_each == "output" else ""
                planned.append(
                    plan_task(
                        services.settings,
                        run=run,
                        rule=rule,
                        spec=spec,
                        sources=sources,
                        claim=claim_key("follow-up", parent.task_id, spec.name, per_output),
                        parent_task_id=parent.task_id,
                        depth=depth,
                        upload_time=parent.ended_at or services.now(),
                        task_time=services.now(),
                    )
                )
    return planned

"""A task's result, from a notification (``on_task_done``) or from GetTask (``reconcile``): record it,
find its outputs, start its follow-ups, finish the run.

A notification is a hint, not the truth (docs/imm-notifications.md): anyone allowed to publish to the
topic can write one. So ``on_task_done`` asks IMM's GetTask (signed, authoritative) for the task's
final state and records that; a notification that disagrees with GetTask (status, code, type,
project, UserData), or names outputs outside the task's own targets (as the ledger kept its request),
is logged as suspicious with both versions and changes nothing. ``IMMFLOW_VERIFY_NOTIFICATIONS=false``
skips the GetTask for stacks whose topic only IMM can publish to; a notification cut short or without
the result's times is still completed with GetTask.

Idempotent by a result claim keyed by TaskId + the *confirmed* Status (`immflow.ledger`): a notification
delivered twice, or after reconcile already saw the result, changes nothing the second time (once the
ledger holds a final result, a notification for the task only goes on from it, without asking
GetTask); a forged one takes no claim, so the genuine one is not taken for a duplicate. Follow-ups have their own create
claims, so a redelivery after a crash half-way creates each one once.

A result for a TaskId the ledger does not know is either someone else's task on the same topic (no
immflow lineage in its UserData, or a run immflow never saw): logged and ignored; or one of ours whose
creator stopped between CreateTask and recording the TaskId. Its lineage names the run, rule and task:
the task IMM confirms is matched to that ``Creating`` claim by UserData and source URIs (as
`immflow.flow.creation` adopts), the claim is taken over and the result recorded at once. While the
creator may still be alive (its claim has not expired) `NotYetRecordedError` is raised, so FC delivers
the notification again a little later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from immflow.adapters import ServiceError
from immflow.errors import ImmflowError
from immflow.events.imm import GetTaskResponse, ImmNotification, ImmTaskResult, parse_get_task_response
from immflow.flow.creation import claim_and_create, claim_planned, create_all, imm_start_time, same_request
from immflow.flow.lineage import Lineage
from immflow.flow.manifest import complete_run_if_done
from immflow.flow.outputs import Target, discover_outputs, outside_targets, task_targets
from immflow.flow.requests import PlannedTask, plan_task
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord, claim_key
from immflow.logging import correlation, logger
from immflow.ossuri import OssUri
from immflow.pipeline import UnknownTaskError

Outcome = Literal["recorded", "duplicate", "in-progress", "foreign", "suspicious"]

NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFound.Task", "TaskNotFound"})
COMPARED_FIELDS = ("ProjectName", "TaskType", "Status", "Code", "UserData")
"""What a notification must say as GetTask does. Times are left out (the two may write them with
different precision), and so is ``Message`` (a human text): the ledger takes both from GetTask."""


class NotYetRecordedError(ImmflowError):
    """An immflow task's result arrived before its creator recorded it; a later delivery will find it."""


class NotYetFinalError(ImmflowError):
    """The notification says the task ended, GetTask says it is still running: early, or forged."""


@dataclass(frozen=True)
class ResultSummary:
    task_id: str
    outcome: Outcome
    status: str
    outputs: int = 0
    follow_ups: int = 0
    manifest: str | None = None


def on_task_done(call: Call, notification: ImmNotification) -> ResultSummary:
    claimed = notification.content
    with correlation(task_id=claimed.TaskId):
        task = call.services.ledger.task_by_id(claimed.TaskId)
        confirmed: ImmTaskResult | None
        if task is None:
            adopted = _adopt(call, notification)
            if isinstance(adopted, ResultSummary):
                return adopted
            task, confirmed = adopted
        elif task.is_final and task.status != "Lost":
            # Recorded already, from a confirmed result, which no notification can change: go on from
            # the ledger's result (a duplicate, or the redelivery after a crash half-way through the
            # follow-ups), without asking GetTask.
            return handle_result(call, task, _recorded_result(call, task))
        elif call.services.settings.verify_notifications or notification.lacks_result:
            confirmed = _confirm(call, task, notification)
        else:
            confirmed = claimed
        if confirmed is None:
            return ResultSummary(claimed.TaskId, "suspicious", claimed.Status)
        with correlation(run_id=task.run_id):
            run = _run_of(call, task)
            targets = task_targets(call, run, task, confirmed)
            named = claimed.output_uris()
            foreign = outside_targets(targets, named)
            if foreign:
                _suspicious(
                    notification, "it names outputs outside the task's targets", foreign_outputs=foreign
                )
                return ResultSummary(claimed.TaskId, "suspicious", claimed.Status)
            return handle_result(call, task, confirmed, named=named, targets=targets, run=run)


def _recorded_result(call: Call, task: TaskRecord) -> ImmTaskResult:
    assert task.task_id is not None and task.status in ("Succeeded", "Failed")
    return ImmTaskResult(
        ProjectName=call.services.settings.project,
        TaskType=task.task_type,
        TaskId=task.task_id,
        Status=task.status,
        Code=task.code,
        Message=task.message,
        StartTime=task.started_at,
        EndTime=task.ended_at,
        UserData=task.user_data,
    )


def _confirm(call: Call, task: TaskRecord, notification: ImmNotification) -> ImmTaskResult | None:
    """The task's final result as GetTask reports it, or None when the notification disagrees with it."""
    services = call.services
    assert task.task_id is not None  # found by the notification's TaskId
    task_id = task.task_id
    try:
        body = call.retry(lambda: services.imm.get_task(services.settings.project, task.task_type, task_id))
    except ServiceError as exc:
        if exc.code in NOT_FOUND_CODES:
            _suspicious(notification, f"GetTask answered {exc.code}")
            return None
        raise
    return _final_agreeing(notification, parse_get_task_response(body))


def _final_agreeing(notification: ImmNotification, answer: GetTaskResponse) -> ImmTaskResult | None:
    confirmed = answer.final_result()
    if confirmed is None:
        logger.warning(
            "suspicious notification: it says the task ended, GetTask says it is still running; "
            "changing nothing until a later delivery",
            extra={"notification": _dump(notification.content), "get_task": _dump(answer)},
        )
        raise NotYetFinalError(
            f"task {answer.TaskId} is still Running according to GetTask although a notification says "
            f"{notification.content.Status}: retry later"
        )
    if notification.truncated:
        return confirmed  # only its leading fields were readable: nothing more to compare
    disagreeing = [
        name
        for name in COMPARED_FIELDS
        if getattr(notification.content, name) != getattr(confirmed, name)
        # A field left out of a notification (IMM writes every common one) is no disagreement.
        and name in notification.content.model_fields_set
    ]
    if disagreeing:
        _suspicious(notification, "it disagrees with GetTask", fields=disagreeing, get_task=_dump(answer))
        return None
    return confirmed


def _adopt(call: Call, notification: ImmNotification) -> tuple[TaskRecord, ImmTaskResult] | ResultSummary:
    """Adopt the ``Creating`` claim the notification's task belongs to (see the module docstring), or
    say why not: a foreign task, a suspicious notification, or `NotYetRecordedError`."""
    services = call.services
    ledger = services.ledger
    claimed = notification.content
    lineage = Lineage.from_user_data(claimed.UserData)
    if lineage is None or ledger.get_run(lineage.run) is None:
        logger.info(
            "notification for a task immflow did not start; ignored",
            extra={"task_type": claimed.TaskType, "status": claimed.Status},
        )
        return ResultSummary(claimed.TaskId, "foreign", claimed.Status)
    with correlation(run_id=lineage.run):
        try:
            body = call.retry(
                lambda: services.imm.get_task(
                    services.settings.project, claimed.TaskType, claimed.TaskId, request_definition=True
                )
            )
        except ServiceError as exc:
            if exc.code in NOT_FOUND_CODES:
                _suspicious(notification, f"GetTask answered {exc.code}")
                return ResultSummary(claimed.TaskId, "suspicious", claimed.Status)
            raise
        answer = parse_get_task_response(body)
        confirmed = _final_agreeing(notification, answer)
        if confirmed is None:
            return ResultSummary(claimed.TaskId, "suspicious", claimed.Status)
        recorded = ledger.task_by_id(claimed.TaskId)
        if recorded is not None:  # its creator recorded it meanwhile
            return recorded, confirmed
        info = answer.model_dump()
        candidates = [
            task
            for task in ledger.tasks_of_run(lineage.run)
            if task.status == "Creating"
            and (task.rule, task.task_name) == (lineage.rule, lineage.task)
            and task.task_type == answer.TaskType
            and same_request(task.task_type, task.request)(info)
        ]
        if not candidates:
            if not answer.TaskRequestDefinition:
                raise NotYetRecordedError(
                    f"task {claimed.TaskId} ({lineage.rule}/{lineage.task} of run {lineage.run}) is not in "
                    "the ledger and IMM keeps no request definition to match it to its claim: retry later"
                )
            logger.warning(
                "notification for a task of a known run that matches none of its open claims; ignored",
                extra={"rule": lineage.rule, "task": lineage.task, "status": claimed.Status},
            )
            return ResultSummary(claimed.TaskId, "foreign", claimed.Status)
        claim = candidates[0]
        now = services.now()
        if not ledger.take_over_creation(claim, now=now, expires_at=call.claim_expiry(now)):
            raise NotYetRecordedError(
                f"task {claimed.TaskId} ({lineage.rule}/{lineage.task} of run {lineage.run}) is not in the "
                "ledger yet and its creator's claim is still held: retry later"
            )
        started = imm_start_time(info) or now
        task = ledger.mark_created(claim.claim_key, task_id=claimed.TaskId, now=started, known=claim)
        logger.warning(
            "task adopted from its notification (its creator stopped before recording it)",
            extra={"rule": claim.rule, "task": claim.task_name, "status": confirmed.Status},
        )
        return task, confirmed


def _suspicious(notification: ImmNotification, reason: str, **details: Any) -> None:
    logger.warning(
        f"suspicious notification ignored: {reason}",
        extra={"notification": _dump(notification.content), "envelope_id": notification.id, **details},
    )


def _dump(model: ImmTaskResult | GetTaskResponse) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def _run_of(call: Call, task: TaskRecord) -> RunRecord:
    run = call.services.ledger.get_run(task.run_id)
    if run is None:
        raise ImmflowError(f"the ledger has task {task.task_id} but not its run {task.run_id}")
    return run


def handle_result(
    call: Call,
    task: TaskRecord,
    result: ImmTaskResult,
    *,
    named: Sequence[str] = (),
    targets: Sequence[Target] | None = None,
    run: RunRecord | None = None,
) -> ResultSummary:
    """Record a confirmed `result` of `task` once. `named`: output URIs its notification gave, already
    checked against the task's `targets` (computed here when not given); `run`: the task's run, when
    the caller read it already."""
    services = call.services
    ledger = services.ledger
    key = claim_key("result", result.TaskId, result.Status)
    with correlation(run_id=task.run_id, task_id=result.TaskId):
        now = services.now()
        state = ledger.claim_result(key, now=now, expires_at=call.claim_expiry(now))
        recorded = ledger.task_by_id(result.TaskId) if state == "busy" else None
        if recorded is not None and recorded.status == result.Status:
            # The claim's holder recorded this result and may have died before its follow-ups and the
            # manifest (killed mid-invocation: its claim stays held until it expires, and nothing would
            # come back to the run). Both steps are idempotent, so this delivery finishes them.
            logger.warning(
                "result recorded by an invocation that still holds its claim; finishing its follow-ups and run",
                extra={"status": result.Status},
            )
            follow_ups, manifest = _after_record(call, _run_of(call, recorded), recorded)
            return ResultSummary(
                result.TaskId, "recorded", recorded.status, len(recorded.outputs), follow_ups, manifest
            )
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
            summary = _record(call, task, result, named, targets, run)
        except BaseException:
            ledger.release_claim(key, now=services.now())
            raise
        ledger.finish_claim(key, now=services.now())
        return summary


def _record(
    call: Call,
    task: TaskRecord,
    result: ImmTaskResult,
    named: Sequence[str],
    targets: Sequence[Target] | None,
    run: RunRecord | None,
) -> ResultSummary:
    services = call.services
    ledger = services.ledger
    if run is None:
        run = _run_of(call, task)
    if targets is None:
        targets = task_targets(call, run, task, result)
    outputs = discover_outputs(call, task, targets, named)
    # The follow-ups are claimed (as Creating tasks) before the result is recorded: otherwise another
    # invocation finishing the run's last other task could see every task final in between, and
    # write the manifest of a run whose follow-ups have not started.
    ending = task._replace(
        status=result.Status, code=result.Code, message=result.Message, outputs=list(outputs)
    )
    follow_up_claims = claim_planned(call, plan_follow_ups(call, run, ending))
    follow_up_claims.log_skipped()
    changed = ledger.record_result(
        result.TaskId,
        status=result.Status,
        code=result.Code,
        message=result.Message,
        started_at=result.StartTime,
        ended_at=result.EndTime,
        outputs=outputs,
        now=services.now(),
        known=task,
    )
    # Recorded: the row holds `ending`'s status, code, message and outputs (all this reads of it).
    recorded = ending if changed else ledger.task_by_id(result.TaskId) or task
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
    follow_ups = create_all(call, follow_up_claims)
    manifest = complete_run_if_done(call, task.run_id)
    return ResultSummary(
        result.TaskId,
        "recorded",
        recorded.status,
        len(recorded.outputs),
        len(follow_ups),
        str(manifest) if manifest else None,
    )


def _after_record(call: Call, run: RunRecord, recorded: TaskRecord) -> tuple[int, str | None]:
    """Start the follow-ups of a recorded result and finish its run if that was its last open task
    (the follow-ups first: they must be in the ledger before the run can look complete)."""
    follow_ups = claim_and_create(call, plan_follow_ups(call, run, recorded))
    manifest = complete_run_if_done(call, recorded.run_id)
    return len(follow_ups), str(manifest) if manifest else None


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

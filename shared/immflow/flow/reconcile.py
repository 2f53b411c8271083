"""The safety net for notifications that never came (docs/imm.md: GetTask within 7 days of the start).

Every ``Running`` task started more than ``IMMFLOW_RECONCILE_AFTER_SECONDS`` ago is asked for with
GetTask; a final answer goes down the same path as a notification (`handle_result`). A task IMM no
longer knows (``ResourceNotFound``) or that is older than IMM's 7-day retention is marked ``Lost``
with the reason, so its run can finish. A ``Creating`` task whose claim expired (its creator died
between claiming and recording, and no redelivery came) is created now from the request the ledger
kept, unless ListTasks shows the dead creator had in fact reached IMM: then that task is adopted
(`immflow.flow.creation.create_claimed`) with IMM's start time, and asked for at once if that is past
the wait.

Each task is handled on its own: one that fails (its bucket was deleted, IMM refuses a call) is logged
and counted, and the others go on; the invocation then fails, naming the failed tasks, so the failure
is visible (FC's metrics and failure destination) without blocking the tasks behind it.

What only a stale task needs (the result and creation paths, IMM's answer models) is imported when
one is found: most timer ticks find none, and their cold start skips it (docs/cold-start.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from immflow.adapters import ServiceError
from immflow.errors import ImmflowError
from immflow.flow.runtime import Call
from immflow.ledger import TaskRecord
from immflow.logging import correlation, logger

IMM_TASK_RETENTION = timedelta(days=7)


class ReconcileError(ImmflowError):
    """Some tasks could not be reconciled (each is logged); the others were."""


@dataclass
class ReconcileSummary:
    checked: int = 0
    finished: list[str] = field(default_factory=list)
    still_running: int = 0
    lost: list[str] = field(default_factory=list)
    created: int = 0
    failed: list[str] = field(default_factory=list)
    """TaskIds (ledger row numbers for tasks without one) that raised; each is logged."""


def reconcile(call: Call) -> ReconcileSummary:
    """Settle every stale task; raises `ReconcileError` at the end if any of them failed."""
    services = call.services
    now = services.now()
    started_before = now - timedelta(seconds=services.settings.reconcile_after_seconds)
    summary = ReconcileSummary()
    for task in services.ledger.stale_tasks(started_before=started_before, now=now):
        if call.invocation.remaining_seconds() <= 0:
            logger.warning(
                "reconcile stopped: out of time; the next run continues", extra={"checked": summary.checked}
            )
            break
        summary.checked += 1
        with correlation(run_id=task.run_id, task_id=task.task_id or ""):
            try:
                if task.status == "Creating":
                    _finish_creation(call, task, summary, started_before)
                else:
                    _check(call, task, summary)
            except Exception as exc:  # one task's failure must not block the others
                summary.failed.append(task.task_id or f"row {task.row_id}")
                logger.exception(
                    "task could not be reconciled; going on with the others",
                    extra={"rule": task.rule, "task": task.task_name, "problem": str(exc)},
                )
    if summary.failed:
        raise ReconcileError(
            f"{len(summary.failed)} of {summary.checked} stale tasks could not be reconciled "
            f"({', '.join(summary.failed)}); the others were: see the log lines of these tasks"
        )
    return summary


def _finish_creation(
    call: Call, task: TaskRecord, summary: ReconcileSummary, started_before: datetime
) -> None:
    from immflow.flow.creation import create_claimed
    from immflow.flow.manifest import complete_run_if_done

    services = call.services
    now = services.now()
    if not services.ledger.take_over_creation(task, now=now, expires_at=call.claim_expiry(now)):
        return
    logger.warning(
        "task claimed but never recorded as created (its creator stopped); creating it now",
        extra={"rule": task.rule, "task": task.task_name},
    )
    try:
        created = create_claimed(call, task, retaken=True)
    except ServiceError:
        services.ledger.release_claim(task.claim_key, now=services.now())
        raise
    summary.created += 1
    if created.is_final:
        complete_run_if_done(call, task.run_id)
    elif created.started_at is not None and created.started_at < started_before:
        _check(call, created, summary)  # adopted, and started long enough ago


def _check(call: Call, task: TaskRecord, summary: ReconcileSummary) -> None:
    from immflow.events.imm import parse_get_task_response
    from immflow.flow.results import NOT_FOUND_CODES, handle_result

    services = call.services
    assert task.task_id is not None  # a Running task always has IMM's TaskId
    task_id = task.task_id
    started = task.started_at or task.created_at
    if services.now() - started > IMM_TASK_RETENTION:
        _lose(
            call, task, "older than IMM's 7-day task retention; its result can no longer be fetched", summary
        )
        return
    try:
        body = call.retry(lambda: services.imm.get_task(services.settings.project, task.task_type, task_id))
    except ServiceError as exc:
        if exc.code in NOT_FOUND_CODES:
            _lose(call, task, f"IMM answered {exc.code} to GetTask: {exc.message}", summary)
            return
        raise
    result = parse_get_task_response(body).final_result()
    if result is None:
        summary.still_running += 1
        logger.info("task still running", extra={"rule": task.rule, "task": task.task_name})
        return
    logger.warning(
        "result found by GetTask (its notification never arrived)", extra={"status": result.Status}
    )
    handle_result(call, task, result)
    summary.finished.append(task_id)


def _lose(call: Call, task: TaskRecord, reason: str, summary: ReconcileSummary) -> None:
    from immflow.flow.manifest import complete_run_if_done

    services = call.services
    if services.ledger.mark_lost(task, reason=reason, now=services.now()):
        logger.error("task lost", extra={"rule": task.rule, "task": task.task_name, "reason": reason})
        summary.lost.append(task.task_id or str(task.row_id))
        complete_run_if_done(call, task.run_id)

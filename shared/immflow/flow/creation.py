"""Claiming and creating tasks: the one path every new IMM task takes (uploads, follow-ups, reconcile).

Every planned task of an event is claimed first, and only then created: a run counts as finished when
none of its tasks is ``Creating`` or ``Running``, so all of an event's tasks must be in the ledger
before the first one can finish and make a concurrent invocation look at the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from immflow.adapters import ServiceError
from immflow.flow.requests import INVALID_REQUEST, PlannedTask
from immflow.flow.runtime import Call
from immflow.ledger import TaskRecord
from immflow.logging import correlation, logger


def claim_and_create(call: Call, planned: Sequence[PlannedTask]) -> list[TaskRecord]:
    """Claim every planned task, then create the claimed ones; returns the tasks this call handled."""
    ledger = call.services.ledger
    now = call.services.now()
    expires = call.claim_expiry(now)
    to_create: list[TaskRecord] = []
    handled: list[TaskRecord] = []
    for plan in planned:
        claim = ledger.claim_task(plan.new, now=now, expires_at=expires)
        names = {"rule": plan.new.rule, "task": plan.new.task_name}
        if claim.state != "claimed":
            # done: an earlier delivery created it; busy: a concurrent one is creating it right now (if
            # that one dies, its claim expires and the next delivery or reconcile takes it over).
            logger.info(
                f"task already {'handled' if claim.state == 'done' else 'being created'}; skipped",
                extra=names,
            )
            continue
        if plan.problem is not None:
            failed = ledger.mark_create_failed(
                plan.new.claim_key, code=INVALID_REQUEST, message=plan.problem, now=now
            )
            logger.error(
                "task request cannot be built; recorded as failed", extra={**names, "problem": plan.problem}
            )
            handled.append(failed)
            continue
        to_create.append(claim.task)
    for index, task in enumerate(to_create):
        try:
            handled.append(create_claimed(call, task))
        except ServiceError:
            # Let the next delivery take over the tasks this call claimed but will not create.
            for waiting in to_create[index:]:
                ledger.release_claim(waiting.claim_key, now=call.services.now())
            raise
    return handled


def create_claimed(call: Call, task: TaskRecord) -> TaskRecord:
    """Send a claimed task's request to IMM. A permanent refusal is recorded as the task failing;
    a retryable error that outlasts the time budget is raised (the caller releases the claim)."""
    services = call.services
    extra = {"rule": task.rule, "task": task.task_name, "action": task.action}
    try:
        created = call.retry(lambda: services.imm.create_task(task.action, task.request))
    except ServiceError as exc:
        if exc.retryable:
            raise
        logger.error("IMM refused the task", extra={**extra, "code": exc.code, "imm_message": exc.message})
        return services.ledger.mark_create_failed(
            task.claim_key, code=exc.code, message=exc.message, now=services.now()
        )
    with correlation(task_id=created.task_id):
        logger.info("task created", extra={**extra, "imm_request_id": created.request_id})
    return services.ledger.mark_created(task.claim_key, task_id=created.task_id, now=services.now())

"""Claiming and creating tasks: the one path every new IMM task takes (uploads, follow-ups, reconcile).

Every planned task of an event is claimed first, and only then created: a run counts as finished when
none of its tasks is ``Creating`` or ``Running``, so all of an event's tasks must be in the ledger
before the first one can finish and make a concurrent invocation look at the run.

A FileUncompression task is created only when its source zip is within the task's archive limits
(`over_archive_limits`, `immflow.archives`); one over them is recorded ``Failed`` (`LIMIT_EXCEEDED`)
without reaching IMM.

A claim taken over from an earlier attempt (its creator stopped after claiming: maybe after IMM
accepted the task but before the TaskId was recorded) first asks IMM's ListTasks for that task, since
IMM has no idempotency token: a task of the same type started since the claim, with the claimed
request's ``UserData`` (the lineage) and the same source URIs (fan-out siblings share the lineage but
not the sources), is adopted instead of creating a second one. It is recorded ``Running`` even if it
already ended, with IMM's start time (so reconcile asks for it on time), and its result takes the one
result path: the notification (`immflow.flow.results` adopts it too), or reconcile's GetTask. A first
claim pays no ListTasks call.

The same check is made before a CreateTask is sent again after a 5xx or network error: the first
one may have created the task though its answer never came back (the local cloud's
``imm.response.lost`` fault, docs/faults.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, TypeAdapter

from immflow.adapters import ServiceError
from immflow.archives import (
    IMM_MAX_ENTRIES,
    IMM_MAX_ZIP_BYTES,
    LIMIT_EXCEEDED,
    ArchiveLimits,
    NotAZipError,
    over_limits,
    read_zip_directory,
)
from immflow.flow.requests import INVALID_REQUEST, PlannedTask
from immflow.flow.runtime import Call
from immflow.ledger import CLOCK_SKEW, CreateClaim, NotClaimed, TaskRecord
from immflow.logging import correlation, logger
from immflow.ossuri import OssUri
from immflow.parsing import UtcDatetime
from immflow.pipeline import UnknownTaskError
from immflow.tasks import TASK_TYPES

if TYPE_CHECKING:
    from immflow.adapters.imm import CreatedTask

# Built on first use: only adopting a task IMM already had (its creator stopped before recording it) needs it.
_START_TIME: TypeAdapter[UtcDatetime | None] = TypeAdapter(
    UtcDatetime | None, config=ConfigDict(defer_build=True)
)


@dataclass
class Claims:
    """What claiming an event's planned tasks came to."""

    to_create: list[CreateClaim] = field(default_factory=list)
    """Claimed by this call: to create now (`create_all`)."""
    handled: list[TaskRecord] = field(default_factory=list)
    """Settled here: a request that cannot be built is recorded failed at once."""
    skipped: dict[NotClaimed, list[str]] = field(default_factory=dict)
    """The ``rule/task`` of each task an earlier delivery created (``done``) or a concurrent one is
    creating (``busy``; if that one dies, its claim expires and the next delivery or reconcile takes
    it over). Not logged one by one: the caller says it in its own line."""

    def log_skipped(self) -> None:
        if self.skipped:
            logger.info("tasks already handled or being created; skipped", extra={"skipped": self.skipped})


def claim_and_create(
    call: Call, planned: Sequence[PlannedTask], *, new_run: bool = False
) -> list[TaskRecord]:
    """Claim every planned task, then create the claimed ones; returns the tasks this call handled.
    `new_run`: their run was started by this call (`immflow.ledger.Ledger.claim_task`)."""
    claims = claim_planned(call, planned, new_run=new_run)
    claims.log_skipped()
    return create_all(call, claims)


def claim_planned(call: Call, planned: Sequence[PlannedTask], *, new_run: bool = False) -> Claims:
    """Claim every planned task (`new_run` as for `claim_and_create`)."""
    ledger = call.services.ledger
    now = call.services.now()
    expires = call.claim_expiry(now)
    claims = Claims()
    for plan in planned:
        claim = ledger.claim_task(plan.new, now=now, expires_at=expires, new_run=new_run)
        if not isinstance(claim, CreateClaim):
            claims.skipped.setdefault(claim, []).append(f"{plan.new.rule}/{plan.new.task_name}")
            continue
        if plan.problem is not None:
            failed = ledger.mark_create_failed(
                plan.new.claim_key, code=INVALID_REQUEST, message=plan.problem, now=now, known=claim.task
            )
            logger.error(
                "task request cannot be built; recorded as failed",
                extra={"rule": plan.new.rule, "task": plan.new.task_name, "problem": plan.problem},
            )
            claims.handled.append(failed)
            continue
        claims.to_create.append(claim)
    return claims


def create_all(call: Call, claims: Claims) -> list[TaskRecord]:
    """Create the claimed tasks; returns the tasks settled here and these."""
    ledger = call.services.ledger
    handled = list(claims.handled)
    for index, claim in enumerate(claims.to_create):
        try:
            handled.append(create_claimed(call, claim.task, retaken=claim.retaken))
        except ServiceError:
            # Let the next delivery take over the tasks this call claimed but will not create.
            for waiting in claims.to_create[index:]:
                ledger.release_claim(waiting.task.claim_key, now=call.services.now())
            raise
    return handled


def create_claimed(call: Call, task: TaskRecord, *, retaken: bool) -> TaskRecord:
    """Send a claimed task's request to IMM, or for a `retaken` claim adopt the task IMM already has.
    A permanent refusal is recorded as the task failing; a retryable error that outlasts the time
    budget, or any ListTasks error, is raised (the caller releases the claim).

    A CreateTask that failed with a 5xx or a network error may have created the task all the same
    (its answer was lost): before sending it again, ListTasks is asked for it, as for a retaken claim,
    so a lost answer never makes a second task. A throttled call was not carried out: no check."""
    services = call.services
    extra = {"rule": task.rule, "task": task.task_name, "action": task.action}
    if retaken:
        found = call.retry(lambda: _find_created(call, task))
        if found is not None:
            return _adopt(call, task, found, extra, "its creator stopped before recording it")
    refusal = over_archive_limits(call, task)
    if refusal is not None:
        logger.error(
            "task not created: its archive is over the task's limits", extra={**extra, "problem": refusal}
        )
        return services.ledger.mark_create_failed(
            task.claim_key, code=LIMIT_EXCEEDED, message=refusal, now=services.now(), known=task
        )
    maybe_created = False

    def create() -> CreatedTask | dict[str, Any]:
        nonlocal maybe_created
        if maybe_created:
            found = _find_created(call, task)
            if found is not None:
                return found
        try:
            return services.imm.create_task(task.action, task.request)
        except ServiceError as exc:
            maybe_created = maybe_created or (exc.retryable and not exc.code.startswith("Throttling"))
            raise

    try:
        created = call.retry(create)
    except ServiceError as exc:
        if exc.retryable:
            raise
        logger.error("IMM refused the task", extra={**extra, "code": exc.code, "imm_message": exc.message})
        return services.ledger.mark_create_failed(
            task.claim_key, code=exc.code, message=exc.message, now=services.now(), known=task
        )
    if isinstance(created, dict):
        return _adopt(call, task, created, extra, "the answer to an earlier CreateTask was lost")
    with correlation(task_id=created.task_id):
        logger.info("task created", extra={**extra, "imm_request_id": created.request_id})
    return services.ledger.mark_created(
        task.claim_key, task_id=created.task_id, now=services.now(), known=task
    )


def _find_created(call: Call, task: TaskRecord) -> dict[str, Any] | None:
    """The task IMM already has for this claim (same type, lineage and sources), if any."""
    return call.services.imm.find_listed_task(
        call.services.settings.project,
        task.task_type,
        started_since=task.created_at - CLOCK_SKEW,
        matches=same_request(task.task_type, task.request),
    )


def _adopt(
    call: Call, task: TaskRecord, found: Mapping[str, Any], extra: dict[str, str], why: str
) -> TaskRecord:
    task_id = str(found["TaskId"])
    with correlation(task_id=task_id):
        logger.warning(
            f"IMM already had this task ({why}); adopted", extra={**extra, "imm_status": found.get("Status")}
        )
    # The ledger's start time is IMM's, not the adoption's: reconcile's wait counts from it.
    started = imm_start_time(found) or call.services.now()
    return call.services.ledger.mark_created(task.claim_key, task_id=task_id, now=started, known=task)


def over_archive_limits(call: Call, task: TaskRecord) -> str | None:
    """For a FileUncompression task, why its source zip must not be extracted (over the task's
    `limits`, or IMM's), read from the zip's central directory with ranged reads; else None. A source
    that is gone, or not a zip (rar, 7z, damaged), is left to IMM: it fails it with its own code."""
    services = call.services
    if task.task_type != "FileUncompression":
        return None
    try:
        limits = services.pipeline.task(task.rule, task.task_name).archive_limits or ArchiveLimits()
    except UnknownTaskError:
        limits = ArchiveLimits()  # a claim from an earlier pipeline: IMM's own limits still hold
    source = OssUri.parse(str(task.request.get("SourceURI") or task.sources[0]))
    head = call.retry(partial(services.oss.head, source))
    if head is None:
        return None

    def read(first: int, last: int) -> Iterator[bytes]:
        return services.oss.read_range(source, first, last)

    try:
        directory = call.retry(lambda: read_zip_directory(read, head.size, limits))
    except NotAZipError as exc:
        logger.info(
            "archive limits not checked: no zip directory to read (rar, 7z or damaged: IMM decides)",
            extra={"source": str(source), "reason": str(exc)},
        )
        return None
    problem = over_limits(directory, limits)
    if problem is None:
        return None
    return (
        f"{source} was not extracted: {problem}. Raise it in pipeline.yaml, rule {task.rule!r}, task "
        f"{task.task_name!r}: `limits: {{max_entries: N, max_uncompressed_size: SIZE}}` (IMM's own limits, "
        f"the most it allows: {IMM_MAX_ENTRIES:,} entries, {IMM_MAX_ZIP_BYTES // 1000**3} GB), or split the archive"
    )


def imm_start_time(info: Mapping[str, Any]) -> datetime | None:
    """The ``StartTime`` of a ListTasks ``TaskInfo`` or GetTask answer, or None if it has none readable."""
    try:
        return _START_TIME.validate_python(info.get("StartTime"))
    except ValueError:
        return None


def same_request(task_type: str, request: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a ListTasks ``TaskInfo`` (or GetTask answer) is the task of `request` (of `task_type`):
    same ``UserData`` and same source URIs. A task without ``TaskRequestDefinition`` cannot be told from
    a fan-out sibling: no match."""
    request_class = TASK_TYPES[task_type]

    def source_uris(request: Mapping[str, Any]) -> list[str]:
        return [field.uri for field in request_class.source_fields(_sources_as_list(request))]

    user_data, sources = request.get("UserData"), source_uris(request)

    def matches(info: Mapping[str, Any]) -> bool:
        if info.get("UserData") != user_data:
            return False
        try:
            definition = json.loads(info.get("TaskRequestDefinition") or "null")
        except ValueError:
            return False
        return isinstance(definition, dict) and source_uris(definition) == sources

    return matches


def _sources_as_list(request: Mapping[str, Any]) -> Mapping[str, Any]:
    """`request` with ``Sources`` as a list: it is accepted as JSON text too (whether IMM's
    TaskRequestDefinition nests it as an object or keeps the wire string is UNCONFIRMED)."""
    sources = request.get("Sources")
    if not isinstance(sources, str):
        return request
    try:
        return {**request, "Sources": json.loads(sources)}
    except ValueError:
        return {**request, "Sources": []}

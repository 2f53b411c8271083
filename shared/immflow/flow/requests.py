"""Turning a pipeline task into a complete Create*Task request, ready to be claimed and sent.

immflow fills in what the pipeline leaves out (docs/design.md#pipelineyaml): the source fields,
``ProjectName``, ``Notification`` (the topic of ``on_task_done``), ``Tags`` (the rule's and task's tags
plus ``immflow:rule``, ``immflow:task``, ``immflow:run``; none for the task types that refuse Tags,
whose tags are kept in the ledger only) and ``UserData`` (the lineage). TargetURI templates are sent as
templates to the types that document them (`TaskRequest.TEMPLATED_BY_IMM`: MediaConvert and
OfficeConversion); for the other types immflow expands them itself (docs/imm.md#targeturi-templates: whether IMM does is UNCONFIRMED), so the outputs are the same
in the cloud and locally.

A request that cannot be built (a template needing a tag the task lacks, parameters IMM would refuse,
lineage over 2048 bytes) is not an error of the invocation: the task is recorded ``Failed`` with code
`INVALID_REQUEST` and the reason, like a task IMM refused, and the run goes on.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from immflow.errors import ImmflowError
from immflow.flow.lineage import Lineage
from immflow.ledger import NewTask, RunRecord
from immflow.ossuri import OssUri
from immflow.parsing import parse_model
from immflow.pipeline import Rule, TaskSpec
from immflow.settings import Settings
from immflow.templates import expand

INVALID_REQUEST = "immflow.InvalidRequest"
TAG_RULE, TAG_TASK, TAG_RUN = "immflow:rule", "immflow:task", "immflow:run"


class PlannedTask(NamedTuple):
    new: NewTask
    problem: str | None = None
    """Why the request could not be built; the task is then recorded as failed, not sent."""


def plan_task(
    settings: Settings,
    *,
    run: RunRecord,
    rule: Rule,
    spec: TaskSpec,
    sources: Sequence[str],
    claim: str,
    parent_task_id: str | None,
    depth: int,
    upload_time: datetime,
    task_time: datetime,
) -> PlannedTask:
    """The request for task `spec` of `rule` reading `sources`, in IMM's field names."""
    tags: dict[str, Any] = {
        **rule.task_tags(spec),
        TAG_RULE: rule.name,
        TAG_TASK: spec.name,
        TAG_RUN: run.run_id,
    }
    lineage = Lineage(
        run=run.run_id,
        src=run.source_uri,
        etag=run.etag,
        rule=rule.name,
        task=spec.name,
        parent=parent_task_id,
        depth=depth,
    )
    request_class = spec.request_class
    params: dict[str, Any] = spec.with_sources(list(sources))
    problem = None
    try:
        if not request_class.TEMPLATED_BY_IMM:
            params = _expand_targets(spec, params, OssUri.parse(sources[0]), upload_time, task_time, tags)
        params.update(
            ProjectName=settings.project,
            Notification={"MNS": {"TopicName": settings.topic}},
            UserData=lineage.to_user_data(),
        )
        if request_class.accepts_tags():
            params["Tags"] = tags
        kind = f"{request_class.ACTION} request of task {rule.name}/{spec.name}"
        request: dict[str, Any] = parse_model(request_class, params, kind).model_dump(
            mode="json", exclude_none=True
        )
    except (ImmflowError, ValueError) as exc:
        problem = str(exc)
        request = params
    new = NewTask(
        claim_key=claim,
        run_id=run.run_id,
        rule=rule.name,
        task_name=spec.name,
        task_type=spec.type,
        action=request_class.ACTION,
        parent_task_id=parent_task_id,
        depth=depth,
        sources=list(sources),
        tags=tags,
        user_data=str(params.get("UserData", "")),
        request=request,
    )
    return PlannedTask(new, problem)


def _expand_targets(
    spec: TaskSpec,
    params: dict[str, Any],
    source: OssUri,
    upload_time: datetime,
    task_time: datetime,
    tags: Mapping[str, Any],
) -> dict[str, Any]:
    expanded = copy.deepcopy(params)
    for field in spec.target_fields():
        value = expand(
            field.template,
            source=source,
            upload_time=upload_time,
            task_time=task_time,
            tags=tags,
            task_type=spec.type,
        )
        holder: Any = expanded
        for part in field.path[:-1]:
            holder = holder[part]
        holder[field.path[-1]] = value
    return expanded

"""Output discovery: which objects a finished task wrote.

IMM does not list every file it writes (docs/imm.md#notifications: no page list for OfficeConversion, HLS
segments and numbered snapshots named by template), so for every target field of the request as sent
(the ledger keeps it), immflow lists OSS under the template's static prefix and keeps the keys its
pattern matches (`immflow.templates.output_pattern`). For MediaConvert, the URIs the notification names
(``Targets``) are added, as IMM reports them, but only those under one of the task's own targets: a
notification is not trusted to say where a task wrote (docs/imm-notifications.md).

The template variables must have the values IMM used: the source object's upload time is its
``Last-Modified`` (asked of OSS only when a template uses ``{year}``..``{sec}``), the task time is the
result's ``StartTime``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from immflow.events.imm import ImmTaskResult
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord
from immflow.logging import logger
from immflow.ossuri import OssUri
from immflow.tasks import TASK_TYPES, TargetField
from immflow.templates import UPLOAD_TIME_VARIABLES, TemplateError, output_pattern, parse


@dataclass(frozen=True)
class Target:
    """One target field of a task's request, with the objects it can produce."""

    field: TargetField
    prefix: OssUri
    """List this prefix ..."""
    pattern: re.Pattern[str]
    """... and keep the keys this matches."""

    def holds(self, uri: str) -> bool:
        """Whether `uri` is one of this target's outputs, or names the target itself (a notification
        echoes a folder target, or a template IMM expands, as it was requested)."""
        if uri == self.field.template:
            return True
        try:
            parsed = OssUri.parse(uri, allow_prefix=True)
        except ValueError:
            return False
        if parsed.bucket != self.prefix.bucket:
            return False
        folder = self.field.shape.layout == "folder" and parsed.key == self.prefix.key
        return folder or self.pattern.match(parsed.key) is not None


def task_targets(call: Call, run: RunRecord, task: TaskRecord, result: ImmTaskResult) -> list[Target]:
    """The targets of `task`'s request as the ledger kept it; a target whose outputs cannot be
    predicted is logged and left out."""
    services = call.services
    if not task.sources:
        return []
    source = OssUri.parse(task.sources[0])
    task_time = result.StartTime or task.started_at or services.now()
    fields = TASK_TYPES[task.task_type].target_fields(task.request)
    upload_time: datetime | None = None
    targets: list[Target] = []
    for field in fields:
        if upload_time is None:
            if parse(field.template).builtin_variables & UPLOAD_TIME_VARIABLES:
                upload_time = call.retry(lambda: services.oss.last_modified(source))
            else:
                upload_time = run.upload_time
        try:
            prefix, pattern = output_pattern(
                field.template,
                source=source,
                upload_time=upload_time,
                task_time=task_time,
                tags=task.tags,
                task_type=task.task_type,
                shape=field.shape,
            )
        except TemplateError as exc:
            logger.warning(
                "cannot predict the outputs of a target", extra={"field": field.field, "problem": str(exc)}
            )
            continue
        targets.append(Target(field, prefix, pattern))
    return targets


def outside_targets(targets: Sequence[Target], uris: Sequence[str]) -> list[str]:
    """The URIs in `uris` that none of `targets` can have written."""
    return [uri for uri in uris if not any(target.holds(uri) for target in targets)]


def discover_outputs(
    call: Call, task: TaskRecord, targets: Sequence[Target], named: Sequence[str] = ()
) -> list[str]:
    """The objects `task` wrote: OSS listed under each of its `targets`, plus, for the types whose
    notification names outputs (MediaConvert), the `named` URIs that one of its targets holds."""
    services = call.services
    found: list[str] = []
    for target in targets:
        listed = call.retry(partial(services.oss.list_objects, target.prefix))
        found.extend(str(item.uri) for item in listed if target.pattern.match(item.uri.key))
    if TASK_TYPES[task.task_type].NOTIFICATION_NAMES_OUTPUTS:
        found.extend(
            uri
            for uri in named
            if "{" not in uri and any(target.holds(uri) for target in targets) and uri not in found
        )
    return list(dict.fromkeys(found))

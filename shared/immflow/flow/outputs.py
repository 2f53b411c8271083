"""Output discovery: which objects a finished task wrote.

IMM does not list every file it writes (imm-facts-2.md §1–2: no page list for OfficeConversion, HLS
segments and numbered snapshots named by template), so for every target field of the request as sent
(the ledger keeps it), immflow lists OSS under the template's static prefix and keeps the keys its
pattern matches (`immflow.templates.output_pattern`). For MediaConvert, the URIs the result names
(``Targets``) are added, as IMM reports them.

The template variables must have the values IMM used: the source object's upload time is its
``Last-Modified`` (asked of OSS only when a template uses ``{year}``..``{sec}``), the task time is the
result's ``StartTime``.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from immflow.events.imm import ImmTaskResult
from immflow.flow.runtime import Call
from immflow.ledger import RunRecord, TaskRecord
from immflow.logging import logger
from immflow.ossuri import OssUri
from immflow.pipeline import TaskSpec
from immflow.templates import UPLOAD_TIME_VARIABLES, TemplateError, output_pattern, parse


def discover_outputs(call: Call, run: RunRecord, task: TaskRecord, result: ImmTaskResult) -> list[str]:
    services = call.services
    if not task.sources:
        return []
    source = OssUri.parse(task.sources[0])
    task_time = result.StartTime or task.started_at or services.now()
    fields = TaskSpec(name=task.task_name, type=task.task_type, params=task.request).target_fields()
    upload_time: datetime | None = None
    found: list[str] = []
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
        listed = call.retry(partial(services.oss.list_objects, prefix))
        found.extend(str(item.uri) for item in listed if pattern.match(item.uri.key))
    if task.task_type == "MediaConvert":
        found.extend(uri for uri in result.output_uris() if "{" not in uri)
    return list(dict.fromkeys(found))

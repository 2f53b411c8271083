"""CreateArchiveFileInspectionTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from immflow.tasks import TaskRequest


class ArchiveFileInspectionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ArchiveFileInspection"
    ACTION: ClassVar[str] = "CreateArchiveFileInspectionTask"
    READS_SOURCE_URI: ClassVar[bool] = True

    Password: str | None = None
    SourceURI: str | None = None

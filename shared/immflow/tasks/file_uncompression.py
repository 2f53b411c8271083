"""CreateFileUncompressionTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from immflow.tasks import OptionalList, TaskRequest


class FileUncompressionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "FileUncompression"
    ACTION: ClassVar[str] = "CreateFileUncompressionTask"
    READS_SOURCE_URI: ClassVar[bool] = True
    TARGET_URI_NAMES_A_FOLDER: ClassVar[bool] = True

    Password: str | None = None
    SelectedFiles: OptionalList[str] = None
    SourceURI: str = Field(min_length=1)
    TargetURI: str | None = None

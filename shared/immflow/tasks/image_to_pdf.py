"""CreateImageToPDFTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from immflow.tasks import RotatedSource, TagMap, TaskRequest


class ImageToPdfRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ImageToPDF"
    ACTION: ClassVar[str] = "CreateImageToPDFTask"

    Sources: list[RotatedSource] = Field(min_length=1)
    """The pages, in order."""
    Tags: TagMap | None = None
    TargetURI: str = Field(min_length=1)

"""CreateImageSplicingTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from immflow.tasks import RotatedSource, TagMap, TaskRequest


class ImageSplicingRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ImageSplicing"
    ACTION: ClassVar[str] = "CreateImageSplicingTask"

    Align: int | None = None
    BackgroundColor: str | None = None
    Direction: str | None = None
    ImageFormat: str | None = None
    Margin: int | None = None
    Padding: int | None = None
    Quality: int | None = None
    ScaleType: str | None = None
    Sources: list[RotatedSource] = Field(min_length=1)
    Tags: TagMap | None = None
    TargetURI: str = Field(min_length=1)

"""CreateOfficeConversionTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from immflow.tasks import (
    OptionalList,
    RotatedSource,
    TagMap,
    TaskRequest,
    TrimPolicySpec,
)


class OfficeConversionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "OfficeConversion"
    ACTION: ClassVar[str] = "CreateOfficeConversionTask"
    READS_SOURCE_URI: ClassVar[bool] = True
    TEMPLATED_BY_IMM: ClassVar[bool] = True
    TEMPLATE_VARIABLES: ClassVar[frozenset[str]] = frozenset({"index", "sheetname", "autoext"})

    EndPage: int | None = None
    FirstPage: bool | None = None
    FitToHeight: bool | None = None
    FitToWidth: bool | None = None
    HoldLineFeed: bool | None = None
    ImageDPI: int | None = None
    LongPicture: bool | None = None
    LongText: bool | None = None
    MaxSheetColumn: int | None = None
    MaxSheetRow: int | None = None
    Pages: str | None = None
    PaperHorizontal: bool | None = None
    PaperSize: str | None = None
    Password: str | None = None
    Quality: int | None = None
    ScalePercentage: int | None = None
    SheetCount: int | None = None
    SheetIndex: int | None = None
    ShowComments: bool | None = None
    SourceType: str | None = None
    SourceURI: str | None = None
    Sources: OptionalList[RotatedSource] = None
    """Sent in the form body, not the query (docs/imm.md#wire-protocol)."""
    StartPage: int | None = None
    Tags: TagMap | None = None
    TargetType: str = Field(min_length=1)
    TargetURI: str | None = None
    """A template (``{index}``, ``{autoext}``... see docs/imm.md#targeturi-templates)."""
    TargetURIPrefix: str | None = None
    TrimPolicy: TrimPolicySpec | None = None

    @model_validator(mode="after")
    def _one_source_one_target(self) -> OfficeConversionRequest:
        if self.SourceURI is None and self.Sources is None:
            raise ValueError("give SourceURI (the document to convert) or Sources (images)")
        if (self.TargetURI is None) == (self.TargetURIPrefix is None):
            raise ValueError("give exactly one of TargetURI (a template) and TargetURIPrefix")
        return self

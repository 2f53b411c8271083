"""CreateFileCompressionTask (docs/imm.md#tasks)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from immflow.tasks import OptionalList, TaskRequest, _Wire


class CompressionSource(_Wire):
    Alias: str | None = None
    """The path inside the archive; starts with ``/``."""
    Mode: str | None = None
    """``prefix`` (default: URI names a directory) or ``fullname``."""
    URI: str | None = None


#: CreateFileCompressionTask takes at most this many ``Sources`` rules (docs/imm.md#tasks).
MAX_COMPRESSION_SOURCES = 100


class FileCompressionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "FileCompression"
    ACTION: ClassVar[str] = "CreateFileCompressionTask"
    SOURCES_NAME_FOLDERS: ClassVar[bool] = True

    CompressedFormat: str | None = None
    SourceManifestURI: str | None = None
    Sources: OptionalList[CompressionSource] = None
    TargetURI: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source_list(self) -> FileCompressionRequest:
        if (self.Sources is None) == (self.SourceManifestURI is None):
            raise ValueError("give exactly one of Sources and SourceManifestURI")
        if self.Sources is not None and len(self.Sources) > MAX_COMPRESSION_SOURCES:
            raise ValueError(
                f"Sources holds {len(self.Sources)} rules, IMM takes at most {MAX_COMPRESSION_SOURCES}; "
                "put them in a JSON file and give its oss:// URI as SourceManifestURI (up to 80000 rules)"
            )
        return self

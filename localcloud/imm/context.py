"""What a task processor gets to work with: its request, a scratch folder, OSS, progress, templates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from immflow import templates
from immflow.ossuri import OssUri, OssUriError

from localcloud.imm.errors import TaskFailure
from localcloud.imm.ossio import OssAccess

if TYPE_CHECKING:
    from localcloud.imm.office import OfficePool


@dataclass
class TaskContext:
    task_id: str
    task_type: str
    #: The Create*Task parameters, JSON documents decoded (wire field names).
    request: dict[str, Any]
    tags: dict[str, Any] | None
    task_time: datetime
    oss: OssAccess
    workdir: Path
    report_progress: Callable[[float], None]
    #: Which engine worker runs the task (0-based): LibreOffice keeps one profile per worker.
    worker: int
    profile_root: Path
    #: The worker's warm LibreOffice.
    office: OfficePool
    office_timeout: float
    media_timeout: float
    _upload_times: dict[OssUri, datetime] = field(default_factory=dict)

    def fetch(self, uri: OssUri, name: str) -> Path:
        """Download ``uri`` into the scratch folder as ``name``, a plain file name: whatever part of
        it came from a request must not lead outside the task's scratch folder."""
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name for the scratch folder")
        path = self.workdir / name
        self._upload_times[uri] = self.oss.download(uri, path)
        return path

    def upload_time(self, uri: OssUri) -> datetime:
        return self._upload_times.get(uri, self.task_time)

    def target(
        self,
        template: str,
        source: OssUri,
        task_values: Mapping[str, str] | None = None,
        *,
        field: str = "TargetURI",
    ) -> OssUri:
        """Expand a TargetURI template for one output file and check the result is an OSS object URI.

        A key that starts with ``/`` (``{dirname}`` of a source at the bucket root) fails the task
        with ``InternalError``, as the cloud does (docs/imm.md#targeturi-templates), with the reason added.
        """
        try:
            text = templates.expand(
                template,
                source=source,
                upload_time=self.upload_time(source),
                task_time=self.task_time,
                tags=self.tags,
                task_type=self.task_type,
                task_values=task_values,
            )
        except templates.TemplateError as exc:
            raise TaskFailure("InvalidArgument", f"{field}: {exc}") from None
        try:
            return OssUri.parse(text, field=field)
        except OssUriError as exc:
            if text.startswith("oss://") and text[6:].partition("/")[2].startswith("/"):
                raise TaskFailure(
                    "InternalError",
                    f"unknown error: {field} {template!r} expands to {text!r} for source {source}, an object "
                    "key starting with '/' (an empty {dirname} for a source at the bucket root?). Drop "
                    "{dirname} from the template or move the source into a folder.",
                ) from None
            raise TaskFailure("InvalidArgument", str(exc)) from None

"""What the dashboard shows, read through the ledger and the OSS adapter the functions use.

Nothing here knows HTML: it turns ledger records into views (a run with its tasks, its state, its
outputs by kind) that the pages render, and decides which objects a page may show.
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from immflow.adapters.protocols import OssObjects
from immflow.ledger import Ledger, RunRecord, TaskQuery, TaskRecord, utcnow
from immflow.ossuri import OssUri

RunState = Literal["running", "succeeded", "failed", "stuck", "superseded"]
RUN_STATES: tuple[RunState, ...] = ("running", "succeeded", "failed", "stuck", "superseded")
OutputKind = Literal["image", "video", "audio", "pdf", "archive", "other"]

_KINDS: dict[str, OutputKind] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "gif", "bmp", "svg"), "image"),
    **dict.fromkeys(("mp4", "mov", "m4v", "webm"), "video"),
    **dict.fromkeys(("mp3", "aac", "m4a", "wav", "ogg", "flac", "opus"), "audio"),
    "pdf": "pdf",
    "zip": "archive",
}
#: How many runs the list shows; older ones are reached by searching for their key.
RUN_LIST_LIMIT = 200


def output_kind(uri: str) -> OutputKind:
    extension = posixpath.splitext(uri)[1].lower().lstrip(".")
    return _KINDS.get(extension, "other")


def content_type_for(uri: str, stored: str) -> str:
    """The type the browser needs: OSS often holds ``application/octet-stream`` for media."""
    guessed, _ = mimetypes.guess_type(posixpath.basename(uri))
    if stored and stored != "application/octet-stream":
        return stored
    return guessed or "application/octet-stream"


def safe_url(url: str) -> str:
    """A ledger URL fit to show: the password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@dataclass
class RunView:
    run: RunRecord
    tasks: list[TaskRecord]
    stuck_after: timedelta
    now: datetime = field(default_factory=utcnow)

    @property
    def rule(self) -> str:
        return self.tasks[0].rule if self.tasks else ""

    @property
    def counts(self) -> Counter[str]:
        return Counter(task.status for task in self.tasks)

    @property
    def stuck_tasks(self) -> list[TaskRecord]:
        """Tasks open longer than reconcile waits before it asks IMM about them."""
        return [
            task
            for task in self.tasks
            if not task.is_final and self.now - (task.started_at or task.created_at) > self.stuck_after
        ]

    @property
    def state(self) -> RunState:
        if self.run.status == "Superseded":
            return "superseded"  # a newer upload of the same key wrote over its outputs
        if self.run.status == "Done" or (self.tasks and all(task.is_final for task in self.tasks)):
            return "succeeded" if all(task.status == "Succeeded" for task in self.tasks) else "failed"
        return "stuck" if self.stuck_tasks else "running"

    @property
    def ended_at(self) -> datetime | None:
        ends = [task.ended_at for task in self.tasks if task.ended_at]
        return self.run.ended_at or (max(ends) if ends and self.state in ("succeeded", "failed") else None)

    @property
    def duration(self) -> float | None:
        end = self.ended_at
        return None if end is None else (end - self.run.created_at).total_seconds()

    def task_by_id(self, task_id: str) -> TaskRecord | None:
        return next((task for task in self.tasks if task.task_id == task_id), None)

    def shown_uris(self) -> set[str]:
        """The objects this run's page may show: its upload, its manifest, its tasks' outputs."""
        uris = {self.run.source_uri, *(uri for task in self.tasks for uri in task.outputs)}
        if self.run.manifest_uri:
            uris.add(self.run.manifest_uri)
        return uris


@dataclass(frozen=True)
class RunFilter:
    state: str = ""
    rule: str = ""
    tag: str = ""
    """``KEY=VALUE``: runs with a task carrying that tag."""
    since_hours: float | None = None
    key: str = ""
    """A part of the uploaded object's key (case-insensitive)."""

    def accepts(self, view: RunView) -> bool:
        if self.state and view.state != self.state:
            return False
        if self.rule and view.rule != self.rule:
            return False
        if self.since_hours is not None and view.run.created_at < view.now - timedelta(
            hours=self.since_hours
        ):
            return False
        return not self.key or self.key.lower() in view.run.key.lower()


class Dashboard:
    """The dashboard's window on one deployment: its ledger, its OSS, its pipeline file."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        ledger_url: str,
        oss: OssObjects,
        pipeline_path: Path | None,
        stuck_after: timedelta,
    ) -> None:
        self.ledger = ledger
        self.ledger_url = safe_url(ledger_url)
        self.oss = oss
        self.pipeline_path = pipeline_path
        self.stuck_after = stuck_after

    def runs(self, wanted: RunFilter) -> list[RunView]:
        tagged: set[str] | None = None
        if wanted.tag:
            key, _, value = wanted.tag.partition("=")
            tagged = {
                task.run_id for task in self.ledger.list_tasks(TaskQuery(tags={key.strip(): value.strip()}))
            }
        now = utcnow()
        views = []
        for run in self.ledger.list_runs(limit=RUN_LIST_LIMIT):
            if tagged is not None and run.run_id not in tagged:
                continue
            view = RunView(run, self.ledger.tasks_of_run(run.run_id), self.stuck_after, now)
            if wanted.accepts(view):
                views.append(view)
        return views

    def run(self, run_id: str) -> RunView | None:
        run = self.ledger.get_run(run_id)
        if run is None:
            return None
        return RunView(run, self.ledger.tasks_of_run(run_id), self.stuck_after)

    def rules(self) -> list[str]:
        from immflow.pipeline_file import load_pipeline

        if self.pipeline_path is None or not self.pipeline_path.exists():
            return []
        try:
            return [rule.name for rule in load_pipeline(self.pipeline_path).rules]
        except Exception:
            return []  # the pipeline page says what is wrong with it

    def object_uri(self, view: RunView, uri: str) -> OssUri | None:
        """``uri`` as an `OssUri` when the run's page may show it; None for anything else."""
        if uri not in view.shown_uris():
            return None
        return OssUri.parse(uri)

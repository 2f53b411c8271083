"""The flow with fake IMM and OSS adapters: idempotency, retries, permanent errors, follow-ups, reconcile."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from immflow.adapters import ServiceError
from immflow.adapters.imm import CreatedTask
from immflow.adapters.oss import ObjectHead, ObjectInfo
from immflow.adapters.protocols import ImmTasks, OssObjects
from immflow.events.imm import ImmTaskResult, parse_imm_notification
from immflow.events.oss import parse_oss_event
from immflow.fc import Invocation
from immflow.flow.lineage import Lineage
from immflow.flow.reconcile import ReconcileError, reconcile
from immflow.flow.requests import INVALID_REQUEST
from immflow.flow.results import (
    NotYetFinalError,
    NotYetRecordedError,
    ResultSummary,
    handle_result,
    on_task_done,
)
from immflow.flow.runtime import Call, Services
from immflow.flow.upload import on_upload
from immflow.ledger import Ledger, NewTask, RunRecord, TaskRecord, run_id_for
from immflow.logging import logger
from immflow.ossuri import OssUri
from immflow.pipeline import Pipeline
from immflow.settings import settings_from_env

EVENTS = Path(__file__).resolve().parents[1] / "events"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)

PIPELINE = {
    "version": 1,
    "max_depth": 2,
    "rules": [
        {
            "name": "images",
            "match": {"prefix": "in/", "suffixes": [".png"]},
            "tags": {"pipeline": "images"},
            "tasks": [
                {
                    "name": "preview",
                    "type": "ImageSplicing",
                    "params": {"TargetURI": "oss://{bucket}/out/{barename}-{tags.pipeline}.jpg"},
                },
                {
                    "name": "unzip",
                    "type": "FileUncompression",
                    "params": {"TargetURI": "oss://{bucket}/out/{barename}/"},
                },
            ],
            "then": [
                {
                    "after": "preview",
                    "on": "Succeeded",
                    "tasks": [
                        {
                            "name": "pdf",
                            "type": "ImageToPDF",
                            "params": {"TargetURI": "oss://{bucket}/pdf/{barename}.pdf"},
                        }
                    ],
                },
                {
                    "after": "pdf",
                    "on": "Succeeded",
                    "tasks": [
                        {
                            "name": "again",
                            "type": "ImageToPDF",
                            "params": {"TargetURI": "oss://{bucket}/pdf2/{barename}.pdf"},
                        }
                    ],
                },
            ],
        },
        {
            "name": "videos",
            "match": {"prefix": "videos/"},
            "tasks": [
                {
                    "name": "web",
                    "type": "MediaConvert",
                    "params": {"Targets": [{"Container": "mp4", "URI": "oss://{bucket}/v/{barename}/web"}]},
                }
            ],
        },
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - T0).total_seconds()


@dataclass
class FakeImm:
    created: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[ServiceError] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed: list[tuple[str, datetime]] = field(default_factory=list)
    list_failures: list[ServiceError] = field(default_factory=list)
    other_listed: list[dict[str, Any]] = field(default_factory=list)
    """TaskInfos ListTasks shows besides the created tasks."""
    got: list[str] = field(default_factory=list)
    """TaskIds asked for with GetTask."""
    get_failures: list[ServiceError] = field(default_factory=list)

    def use_credentials(self, credentials: object) -> None:
        pass

    def create_task(self, action: str, request: Mapping[str, Any]) -> CreatedTask:
        if self.failures:
            raise self.failures.pop(0)
        self.created.append((action, dict(request)))
        return CreatedTask(_fake_task_id(action, len(self.created)), "REQ", "EVT")

    def find_listed_task(
        self,
        project: str,
        task_type: str,
        *,
        started_since: datetime,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> dict[str, Any] | None:
        self.listed.append((task_type, started_since))
        if self.list_failures:
            raise self.list_failures.pop(0)
        created = [
            {
                "TaskId": _fake_task_id(action, number),
                "TaskType": _fake_task_id(action, number).split("-")[0],
                "Status": "Running",
                "StartTime": "2026-11-28T12:00:01Z",
                "UserData": request.get("UserData"),
                "TaskRequestDefinition": json.dumps(request),
            }
            for number, (action, request) in enumerate(self.created, 1)
        ]
        return next(
            (
                info
                for info in [*self.other_listed, *created]
                if info["TaskType"] == task_type and matches(info)
            ),
            None,
        )

    def get_task(
        self, project: str, task_type: str, task_id: str, *, request_definition: bool = False
    ) -> dict[str, Any]:
        self.got.append(task_id)
        if self.get_failures:
            raise self.get_failures.pop(0)
        if task_id not in self.tasks:
            raise ServiceError(
                "IMM",
                "GetTask",
                "ResourceNotFound",
                "The specified resource task is not found.",
                status=400,
                retryable=False,
            )
        answer = dict(self.tasks[task_id])
        if request_definition:
            number = int(task_id.rsplit("-", 1)[1])
            answer["TaskRequestDefinition"] = json.dumps(self.created[number - 1][1])
        return answer

    def finish(self, task_id: str, status: str = "Succeeded", **extra: Any) -> dict[str, Any]:
        """End a created task: GetTask reports it `status` from now on; returns its notification content."""
        number = int(task_id.rsplit("-", 1)[1])
        _, request = self.created[number - 1]
        self.tasks[task_id] = {
            "ProjectName": "p",
            "TaskType": task_id.split("-")[0],
            "TaskId": task_id,
            "Status": status,
            "UserData": request.get("UserData", ""),
            "StartTime": "2026-11-28T12:00:01Z",
            "EndTime": "2026-11-28T12:00:02Z",
            **extra,
        }
        return {name: value for name, value in self.tasks[task_id].items()}


def _fake_task_id(action: str, number: int) -> str:
    return f"{action.removeprefix('Create').removesuffix('Task')}-{number}"


@dataclass
class FakeOss:
    objects: dict[str, bytes] = field(default_factory=dict)

    def use_credentials(self, credentials: object) -> None:
        pass

    def list_objects(self, prefix: OssUri) -> list[ObjectInfo]:
        return [
            ObjectInfo(OssUri.parse(uri), len(data), "E")
            for uri, data in sorted(self.objects.items())
            if uri.startswith(str(prefix))
        ]

    def put_json(self, uri: OssUri, document: object) -> None:
        self.objects[str(uri)] = json.dumps(document).encode()

    def last_modified(self, uri: OssUri) -> datetime:
        return T0

    def head(self, uri: OssUri) -> ObjectHead | None:
        data = self.objects.get(str(uri))
        if data is None:
            return None
        return ObjectHead(len(data), hashlib.md5(data).hexdigest().upper(), "application/octet-stream")

    def read_range(self, uri: OssUri, first: int, last: int) -> Iterator[bytes]:
        yield self.objects[str(uri)][first : last + 1]


# mypy checks the fakes against the Protocols the flow code depends on (immflow.adapters.protocols).
_FAKE_IMM: ImmTasks = FakeImm()
_FAKE_OSS: OssObjects = FakeOss()


@dataclass
class World:
    services: Services
    imm: FakeImm
    oss: FakeOss
    ledger: Ledger
    clock: Clock
    sleeps: list[float]
    uploads: int = 0

    @property
    def call(self) -> Call:
        """A new invocation (a full time budget) starting now."""
        return Call(
            self.services, Invocation("req-1", "fn", 60.0, self.clock.monotonic(), self.clock.monotonic)
        )

    def task(self, task_id: str) -> TaskRecord:
        """The ledger's record of `task_id`, which the test expects to be there."""
        task = self.ledger.task_by_id(task_id)
        assert task is not None, f"no task {task_id} in the ledger"
        return task

    def run(self, run_id: str) -> RunRecord:
        run = self.ledger.get_run(run_id)
        assert run is not None, f"no run {run_id} in the ledger"
        return run

    def upload(
        self, key: str, etag: str = "ETAG1", event_name: str = "ObjectCreated:PutObject"
    ) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(
            (EVENTS / "oss" / "event-ObjectCreated-PutObject.json").read_text()
        )
        record = event["events"][0]
        record["eventName"] = event_name
        # Each upload is a new OSS request, a little later than the one before.
        self.uploads += 1
        record["eventTime"] = f"2026-11-28T12:00:{self.uploads:02d}.000Z"
        record["responseElements"]["requestId"] = f"REQ-{self.uploads}"
        record["oss"]["bucket"]["name"] = "media"
        record["oss"]["object"].update(key=key, eTag=etag)
        return event

    def result(self, task_id: str, status: str = "Succeeded", **extra: Any) -> ImmTaskResult:
        task = self.ledger.task_by_id(task_id)
        assert task is not None
        return ImmTaskResult.model_validate(
            {
                "ProjectName": "p",
                "TaskType": task.task_type,
                "TaskId": task_id,
                "Status": status,
                "UserData": task.user_data,
                **extra,
            }
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = settings_from_env(
        {
            "IMMFLOW_PROJECT": "p",
            "IMMFLOW_TOPIC": "t",
            "IMMFLOW_LEDGER_URL": f"sqlite:///{tmp_path / 'l.sqlite3'}",
        },
        code_dir=tmp_path,
    )
    clock = Clock()
    imm, oss = FakeImm(), FakeOss()
    ledger = Ledger(settings.ledger_url)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += timedelta(seconds=seconds)

    services = Services(
        settings,
        Pipeline.model_validate(PIPELINE),
        ledger,
        imm,
        oss,
        clock,
        sleep=sleep,
        jitter=lambda: 1.0,
    )
    return World(services, imm, oss, ledger, clock, sleeps)


def _upload(world: World, key: str = "in/cat.png", **kwargs: Any) -> Any:
    return on_upload(world.call, parse_oss_event(world.upload(key, **kwargs)))


def test_an_upload_creates_each_task_once(world: World) -> None:
    first = _upload(world)
    assert first.started == ["ImageSplicing-1", "FileUncompression-2"]
    assert _upload(world).started == []
    assert len(world.imm.created) == 2
    assert world.imm.listed == []  # first claims create at once: no ListTasks
    action, request = world.imm.created[0]
    assert action == "CreateImageSplicingTask"
    # immflow expands the template for types other than MediaConvert/OfficeConversion, and fills in the rest.
    assert request["TargetURI"] == "oss://media/out/cat-images.jpg"
    assert request["Sources"] == [{"URI": "oss://media/in/cat.png"}]
    assert request["Notification"] == {"MNS": {"TopicName": "t"}}
    assert request["Tags"] == {
        "pipeline": "images",
        "immflow:rule": "images",
        "immflow:task": "preview",
        "immflow:run": run_id_for("media", "in/cat.png", "ETAG1", 1),
    }
    assert Lineage.from_user_data(request["UserData"]) == Lineage(
        run=run_id_for("media", "in/cat.png", "ETAG1", 1),
        src="oss://media/in/cat.png",
        etag="ETAG1",
        rule="images",
        task="preview",
        depth=1,
    )
    # FileUncompression takes no Tags: the ledger keeps them.
    _, unzip = world.imm.created[1]
    assert "Tags" not in unzip and unzip["SourceURI"] == "oss://media/in/cat.png"
    assert world.task("FileUncompression-2").tags["pipeline"] == "images"
    # A new version of the object is a new run.
    assert len(_upload(world, etag="ETAG2").started) == 2


def test_a_redelivered_upload_logs_one_line_naming_the_tasks_it_skipped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(world)
    lines: list[tuple[str, str, dict[str, Any], str]] = []

    def record(level: str) -> Callable[..., None]:
        def log(message: str, *, extra: dict[str, Any] | None = None, **_: Any) -> None:
            lines.append((level, message, extra or {}, logger.get_current_keys().get("run_id", "")))

        return log

    for level in ("debug", "info", "warning", "error"):
        monkeypatch.setattr(logger, level, record(level))
    _upload(world)
    [(level, message, extra, run_id)] = lines
    assert (level, message, extra["run"]) == ("info", "upload matches", "joined")
    assert extra["skipped"] == {"done": ["images/preview", "images/unzip"]}
    assert run_id == run_id_for("media", "in/cat.png", "ETAG1", 1)


def test_mediaconvert_templates_are_sent_as_templates(world: World) -> None:
    _upload(world, "videos/clip.mov")
    [(_, request)] = world.imm.created
    assert request["Targets"][0]["URI"] == "oss://{bucket}/v/{barename}/web"


def test_removals_and_unmatched_keys_start_nothing(world: World) -> None:
    assert _upload(world, "in/cat.png", event_name="ObjectRemoved:DeleteObject").started == []
    assert _upload(world, "elsewhere/cat.png").skipped == ["oss://media/elsewhere/cat.png"]
    assert world.imm.created == []


def test_throttling_is_retried_with_backoff_then_succeeds(world: World) -> None:
    throttled = ServiceError(
        "IMM", "CreateImageSplicingTask", "Throttling.User", "slow down", status=400, retryable=True
    )
    world.imm.failures = [throttled, throttled]
    assert len(_upload(world).started) == 2
    assert world.sleeps == [0.2, 0.4]  # full jitter pinned to its maximum: 0.2 * 2**attempt


def test_retries_stop_at_the_time_budget_and_the_next_delivery_creates(world: World) -> None:
    world.imm.failures = [ServiceError("IMM", "X", "InternalError", "", status=503, retryable=True)] * 40
    with pytest.raises(ServiceError):
        _upload(world)
    assert sum(world.sleeps) < 60
    run_id = run_id_for("media", "in/cat.png", "ETAG1", 1)
    assert {t.status for t in world.ledger.tasks_of_run(run_id)} == {"Creating"}
    world.imm.failures = []
    world.clock.now += timedelta(seconds=1)
    assert len(_upload(world).started) == 2  # the claims were released, not left to expire


def test_a_claim_left_by_a_crash_is_taken_over_after_it_expires(world: World) -> None:
    event = parse_oss_event(world.upload("in/cat.png"))
    run_id = run_id_for("media", "in/cat.png", "ETAG1", 1)
    # Another invocation claimed both tasks and died before IMM answered.
    world.imm.failures = [ServiceError("IMM", "X", "Crash", "", retryable=True)] * 40
    with pytest.raises(ServiceError):
        on_upload(world.call, event)
    for task in world.ledger.tasks_of_run(run_id):
        world.ledger.claim_task(  # re-take them as the dead invocation held them (expiry 60 s ahead)
            NewTask(
                task.claim_key,
                run_id,
                task.rule,
                task.task_name,
                task.task_type,
                task.action,
                None,
                1,
                [],
                {},
                "",
                {},
            ),
            now=world.clock.now,
            expires_at=world.clock.now + timedelta(seconds=60),
        )
    world.imm.failures = []
    assert on_upload(world.call, event).started == []  # still held: a concurrent duplicate skips
    world.clock.now += timedelta(seconds=61)
    assert len(on_upload(world.call, event).started) == 2


def test_an_upload_that_only_created_tasks_does_not_look_at_its_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[str] = []
    real = world.ledger.run_is_complete

    def run_is_complete(run_id: str) -> bool:
        looked.append(run_id)
        return real(run_id)

    monkeypatch.setattr(world.ledger, "run_is_complete", run_is_complete)
    assert len(_upload(world).started) == 2
    # Both tasks are Running: whoever records their results looks at the run (the refusal test below
    # shows an upload that ended its tasks looking at it).
    assert looked == []


def test_a_permanent_refusal_fails_the_task_and_the_run_completes(world: World) -> None:
    world.imm.failures = [
        ServiceError("IMM", "X", "InvalidArgument", "bad Align", status=400, retryable=False)
    ] * 2
    summary = _upload(world)
    assert summary.failed == 2
    run_id = run_id_for("media", "in/cat.png", "ETAG1", 1)
    assert {(t.status, t.code, t.message) for t in world.ledger.tasks_of_run(run_id)} == {
        ("Failed", "InvalidArgument", "bad Align")
    }
    manifest = json.loads(world.oss.objects[f"oss://media/immflow/manifests/{run_id}.json"])
    assert manifest["succeeded"] is False and len(manifest["tasks"]) == 2


def test_a_request_that_cannot_be_built_is_recorded_failed(world: World) -> None:
    # A valid key (1008 bytes) whose JSON escaping doubles it: the lineage no longer fits in UserData.
    long_key = "in/" + '"' * 1000 + ".png"
    summary = _upload(world, long_key)
    assert summary.failed == 2 and world.imm.created == []
    task = world.ledger.tasks_of_run(run_id_for("media", long_key, "ETAG1", 1))[0]
    assert task.code == INVALID_REQUEST and "2048" in task.message


def test_results_outputs_follow_ups_and_max_depth(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    world.oss.objects["oss://media/out/cat-images.jpg.tmp/x"] = b"not an output"
    summary = handle_result(world.call, world.task("ImageSplicing-1"), world.result("ImageSplicing-1"))
    assert (summary.outcome, summary.outputs, summary.follow_ups) == ("recorded", 1, 1)
    [(action, request)] = world.imm.created[2:]
    assert action == "CreateImageToPDFTask" and request["Sources"] == [
        {"URI": "oss://media/out/cat-images.jpg"}
    ]
    pdf = world.ledger.task_by_id("ImageToPDF-3")
    assert pdf is not None and (pdf.parent_task_id, pdf.depth) == ("ImageSplicing-1", 2)
    # The same result again changes nothing.
    assert (
        handle_result(world.call, world.task("ImageSplicing-1"), world.result("ImageSplicing-1")).outcome
        == "duplicate"
    )
    # pdf's own follow-up would be depth 3 > max_depth 2.
    world.oss.objects["oss://media/pdf/cat-images.pdf"] = b"pdf"
    assert handle_result(world.call, pdf, world.result("ImageToPDF-3")).follow_ups == 0
    assert len(world.imm.created) == 3


def test_the_run_completes_with_a_manifest_once_every_task_ended(world: World) -> None:
    _upload(world)
    run_id = run_id_for("media", "in/cat.png", "ETAG1", 1)
    world.oss.objects["oss://media/out/cat/a.txt"] = b"a"
    handle_result(world.call, world.task("FileUncompression-2"), world.result("FileUncompression-2"))
    assert world.run(run_id).status == "Running"
    handle_result(
        world.call,
        world.task("ImageSplicing-1"),
        world.result("ImageSplicing-1", status="Failed", Code="InvalidArgument", Message="no"),
    )
    run = world.ledger.get_run(run_id)
    assert run is not None and run.status == "Done"
    manifest = json.loads(world.oss.objects[run.manifest_uri or ""])
    assert [(t["task"], t["status"], t["outputs"]) for t in manifest["tasks"]] == [
        ("preview", "Failed", []),
        ("unzip", "Succeeded", ["oss://media/out/cat/a.txt"]),
    ]


def _finish_run(world: World, first_task: int, data: bytes) -> str:
    """End the two tasks of the run whose TaskIds are numbered from `first_task`, the unzip writing
    `data`; returns the run id."""
    world.oss.objects["oss://media/out/cat/a.txt"] = data
    unzip = world.ledger.task_by_id(f"FileUncompression-{first_task + 1}")
    assert unzip is not None
    handle_result(world.call, unzip, world.result(unzip.task_id or ""))
    preview = world.ledger.task_by_id(f"ImageSplicing-{first_task}")
    assert preview is not None
    handle_result(world.call, preview, world.result(preview.task_id or ""))
    return unzip.run_id


def test_a_b_a_is_three_runs_and_each_manifest_records_the_bytes_it_saw(world: World) -> None:
    assert len(_upload(world, etag="A").started) == 2
    run_a = _finish_run(world, 1, b"from A")
    assert len(_upload(world, etag="A").started) == 0  # the same bytes again: joins the latest run
    assert len(_upload(world, etag="B").started) == 2
    run_b = _finish_run(world, 3, b"from B")
    assert len(_upload(world, etag="A").started) == 2  # A again after B: a new run
    run_a2 = _finish_run(world, 5, b"from A")
    runs = {run.run_id: run for run in world.ledger.list_runs(source="oss://media/in/cat.png")}
    assert len({run_a, run_b, run_a2}) == 3 == len(runs)
    assert [runs[r].sequence for r in (run_a, run_b, run_a2)] == [1, 2, 3]
    assert [runs[r].status for r in (run_a, run_b, run_a2)] == ["Superseded", "Superseded", "Done"]
    assert runs[run_a].superseded_by == run_b and runs[run_b].superseded_by == run_a2
    manifests = [json.loads(world.oss.objects[runs[r].manifest_uri or ""]) for r in (run_a, run_b, run_a2)]
    seen = [m["tasks"][1]["output_objects"] for m in manifests]
    md5 = [hashlib.md5(data).hexdigest().upper() for data in (b"from A", b"from B", b"from A")]
    assert seen == [
        [{"uri": "oss://media/out/cat/a.txt", "etag": etag, "size": 6, "exists": True}] for etag in md5
    ]
    assert [m["supersedes"] for m in manifests] == [[], [run_a], [run_b]]
    assert len(world.imm.created) == 6


def test_an_upload_event_older_than_the_latest_run_starts_nothing(world: World) -> None:
    older = world.upload("in/cat.png", etag="A")  # uploaded first, its event delivered last
    _upload(world, etag="B")
    summary = on_upload(world.call, parse_oss_event(older))
    assert summary.started == [] and summary.skipped == ["oss://media/in/cat.png"]
    assert [run.etag for run in world.ledger.list_runs(source="oss://media/in/cat.png")] == ["B"]
    assert len(world.imm.created) == 2


def test_a_failed_tasks_leftovers_are_partial_outputs_in_the_manifest(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat/a.txt"] = b"half"
    handle_result(
        world.call,
        world.task("FileUncompression-2"),
        world.result("FileUncompression-2", status="Failed", Code="InternalError", Message="midway"),
    )
    handle_result(world.call, world.task("ImageSplicing-1"), world.result("ImageSplicing-1"))
    run = world.ledger.get_run(run_id_for("media", "in/cat.png", "ETAG1", 1))
    assert run is not None and run.manifest_uri
    unzip = json.loads(world.oss.objects[run.manifest_uri])["tasks"][1]
    assert unzip["status"] == "Failed"
    assert unzip["output_objects"] == [
        {
            "uri": "oss://media/out/cat/a.txt",
            "etag": hashlib.md5(b"half").hexdigest().upper(),
            "size": 4,
            "exists": True,
            "partial": True,
        }
    ]


def test_no_moment_between_a_result_and_its_follow_ups_looks_like_a_finished_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another invocation ending the run's last other task must never see every task final while a
    parent's follow-ups are still to start (it would write the manifest of an unfinished run)."""
    _upload(world)
    run_id = run_id_for("media", "in/cat.png", "ETAG1", 1)
    world.oss.objects["oss://media/out/cat/a.txt"] = b"a"
    handle_result(world.call, world.task("FileUncompression-2"), world.result("FileUncompression-2"))
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    seen: list[bool] = []
    record_result = world.ledger.record_result

    def record_and_look(*args: Any, **kwargs: Any) -> bool:
        recorded = record_result(*args, **kwargs)
        seen.append(world.ledger.run_is_complete(run_id))  # what a concurrent invocation would see now
        return recorded

    monkeypatch.setattr(world.ledger, "record_result", record_and_look)
    summary = handle_result(world.call, world.task("ImageSplicing-1"), world.result("ImageSplicing-1"))
    assert summary.follow_ups == 1 and seen == [False]
    assert world.run(run_id).status == "Running"


def _notify(world: World, content: Mapping[str, Any]) -> ResultSummary:
    return on_task_done(world.call, parse_imm_notification(json.dumps(content)))


def test_notifications_for_unknown_tasks(world: World) -> None:
    foreign = {
        "ProjectName": "p",
        "TaskType": "MediaConvert",
        "TaskId": "MediaConvert-x",
        "Status": "Succeeded",
        "UserData": "theirs",
    }
    assert _notify(world, foreign).outcome == "foreign"
    _upload(world)
    lineage = Lineage(
        run=run_id_for("media", "in/cat.png", "ETAG1", 1),
        src="oss://media/in/cat.png",
        etag="ETAG1",
        rule="images",
        task="pdf",
        depth=2,
    )
    # Our lineage, but a task IMM does not know: someone wrote it.
    ours = {**foreign, "TaskType": "ImageToPDF", "TaskId": "ImageToPDF-9", "UserData": lineage.to_user_data()}
    assert _notify(world, ours).outcome == "suspicious"
    assert world.imm.got == ["ImageToPDF-9"]


def test_a_notification_is_confirmed_with_get_task_before_it_is_recorded(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    content = world.imm.finish("ImageSplicing-1")
    summary = _notify(world, {**content, "TargetURI": "oss://media/out/cat-images.jpg"})
    assert (summary.outcome, summary.outputs, summary.follow_ups) == ("recorded", 1, 1)
    assert world.imm.got == ["ImageSplicing-1"]
    task = world.ledger.task_by_id("ImageSplicing-1")
    assert task is not None and task.started_at == datetime(2026, 11, 28, 12, 0, 1, tzinfo=timezone.utc)
    assert _notify(world, content).outcome == "duplicate"


def test_a_notification_that_disagrees_with_get_task_changes_nothing(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    content = world.imm.finish("ImageSplicing-1")
    for forged in (
        {**content, "Status": "Failed", "Code": "InternalError"},
        {**content, "UserData": "{}"},
        {**content, "TargetURI": "oss://media/private/secret.png"},
    ):
        assert _notify(world, forged).outcome == "suspicious"
        task = world.ledger.task_by_id("ImageSplicing-1")
        assert task is not None and (task.status, task.outputs) == ("Running", [])
    assert len(world.imm.created) == 2  # no follow-up
    # The genuine one is not taken for a duplicate of any of them.
    summary = _notify(world, content)
    assert (summary.outcome, summary.status, summary.outputs) == ("recorded", "Succeeded", 1)


def test_a_notification_for_a_task_imm_still_runs_is_retried(world: World) -> None:
    _upload(world)
    content = world.imm.finish("ImageSplicing-1")
    world.imm.tasks["ImageSplicing-1"]["Status"] = "Running"
    with pytest.raises(NotYetFinalError):
        _notify(world, content)
    task = world.ledger.task_by_id("ImageSplicing-1")
    assert task is not None and task.status == "Running"
    world.imm.tasks["ImageSplicing-1"]["Status"] = "Succeeded"
    assert _notify(world, content).outcome == "recorded"


def test_mediaconvert_outputs_named_outside_its_targets_are_refused(world: World) -> None:
    _upload(world, "videos/clip.mov")
    content = world.imm.finish("MediaConvert-1")
    world.oss.objects["oss://media/v/clip/web.mp4"] = b"mp4"
    world.oss.objects["oss://media/private/secret.mp4"] = b"secret"
    forged = {**content, "Targets": [{"URI": "oss://media/private/secret.mp4"}]}
    assert _notify(world, forged).outcome == "suspicious"
    genuine = {**content, "Targets": [{"URI": "oss://media/v/clip/web.mp4"}]}
    assert _notify(world, genuine).outcome == "recorded"
    task = world.ledger.task_by_id("MediaConvert-1")
    assert task is not None and task.outputs == ["oss://media/v/clip/web.mp4"]


def test_without_verification_only_the_outputs_are_checked(world: World) -> None:
    world.services.settings = world.services.settings.model_copy(update={"verify_notifications": False})
    _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    content = world.imm.finish("ImageSplicing-1")
    assert _notify(world, {**content, "TargetURI": "oss://media/private/x.png"}).outcome == "suspicious"
    assert _notify(world, content).outcome == "recorded"
    assert world.imm.got == []
    # A notification without the result (cut short, or without its times) is completed by GetTask.
    world.imm.finish("FileUncompression-2", status="Failed", Code="InvalidArgument")
    bare = {"ProjectName": "p", "TaskType": "FileUncompression", "TaskId": "FileUncompression-2"}
    summary = _notify(world, {**bare, "Status": "Failed"})
    assert (summary.outcome, summary.status) == ("recorded", "Failed")
    assert world.imm.got == ["FileUncompression-2"]
    task = world.ledger.task_by_id("FileUncompression-2")
    assert task is not None and task.code == "InvalidArgument"


def test_a_cut_short_notification_is_completed_with_get_task(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat/a.txt"] = b"a"
    content = world.imm.finish("FileUncompression-2")
    body = json.dumps(content | {"Files": [{"Path": f"f{index}.txt"} for index in range(500)]})
    envelope = {"source": "acs.imm", "type": "imm:Task:FileUncompression", "content": body[:2000]}
    notification = parse_imm_notification(json.dumps(envelope))
    assert notification.truncated and notification.content.TaskId == "FileUncompression-2"
    summary = on_task_done(world.call, notification)
    assert (summary.outcome, summary.status, summary.outputs) == ("recorded", "Succeeded", 1)


def test_a_notification_adopts_the_task_whose_creator_died_before_recording_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_after_create(world, monkeypatch)
    with pytest.raises(RuntimeError):
        _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    content = world.imm.finish("ImageSplicing-1")
    # The creator's claim is held for its whole timeout: it may still record the task itself.
    with pytest.raises(NotYetRecordedError):
        _notify(world, content)
    world.clock.now += timedelta(seconds=61)
    summary = _notify(world, content)
    assert (summary.outcome, summary.outputs, summary.follow_ups) == ("recorded", 1, 1)
    assert [a for a, _ in world.imm.created] == ["CreateImageSplicingTask", "CreateImageToPDFTask"]
    task = world.ledger.task_by_id("ImageSplicing-1")
    assert task is not None and task.status == "Succeeded"
    assert task.started_at == datetime(2026, 11, 28, 12, 0, 1, tzinfo=timezone.utc)
    # The sibling IMM never got is still Creating, for the upload's redelivery or reconcile.
    [unzip] = [t for t in world.ledger.tasks_of_run(task.run_id) if t.task_name == "unzip"]
    assert unzip.status == "Creating"


def test_a_notification_matching_no_open_claim_of_its_run_is_ignored(world: World) -> None:
    _upload(world)
    world.imm.finish("ImageSplicing-1")
    lineage = Lineage.from_user_data(world.imm.tasks["ImageSplicing-1"]["UserData"])
    assert lineage is not None
    # IMM has a task with our lineage that no claim of ours stands for (IMM's twin of ImageSplicing-1).
    world.imm.created.append(world.imm.created[0])
    twin = world.imm.finish("ImageSplicing-3")
    assert _notify(world, twin).outcome == "foreign"
    assert world.ledger.task_by_id("ImageSplicing-3") is None


def test_reconcile_settles_lost_finished_and_stuck_tasks(world: World) -> None:
    _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    world.imm.tasks["ImageSplicing-1"] = {
        "ProjectName": "p",
        "TaskType": "ImageSplicing",
        "TaskId": "ImageSplicing-1",
        "Status": "Succeeded",
        "UserData": "",
    }
    world.clock.now += timedelta(seconds=901)
    summary = reconcile(world.call)
    assert summary.finished == ["ImageSplicing-1"] and summary.lost == ["FileUncompression-2"]
    lost = world.ledger.task_by_id("FileUncompression-2")
    assert lost is not None and lost.status == "Lost" and "ResourceNotFound" in lost.message
    # The follow-up started by the settled result is Running; 7 days later it is lost for good.
    world.clock.now += timedelta(days=8)
    assert reconcile(world.call).lost == ["ImageToPDF-3"]
    run = world.ledger.get_run(run_id_for("media", "in/cat.png", "ETAG1", 1))
    assert run is not None and run.status == "Done"


def test_reconcile_creates_a_task_whose_creator_died(world: World) -> None:
    world.imm.failures = [ServiceError("IMM", "X", "Crash", "", retryable=True)] * 40
    with pytest.raises(ServiceError):
        _upload(world)
    world.imm.failures = []
    world.clock.now += timedelta(seconds=901)
    assert reconcile(world.call).created == 2
    assert len(world.imm.created) == 2


def _crash_after_create(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next `mark_created` fails, as if the invocation died right after IMM accepted the task."""
    original = world.ledger.mark_created

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(world.ledger, "mark_created", original)
        raise RuntimeError("the instance died")

    monkeypatch.setattr(world.ledger, "mark_created", fail_once)


def test_a_redelivery_adopts_the_task_imm_accepted_before_its_creator_died(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_after_create(world, monkeypatch)
    with pytest.raises(RuntimeError):
        _upload(world)
    assert [a for a, _ in world.imm.created] == ["CreateImageSplicingTask"]
    assert _upload(world).started == []  # both claims are still held by the dead invocation
    world.clock.now += timedelta(seconds=61)
    assert _upload(world).started == ["ImageSplicing-1", "FileUncompression-2"]
    # preview was adopted, unzip (never sent) created: one IMM task each.
    assert [a for a, _ in world.imm.created] == ["CreateImageSplicingTask", "CreateFileUncompressionTask"]
    preview = world.ledger.task_by_id("ImageSplicing-1")
    assert preview is not None and preview.status == "Running"
    assert world.imm.listed == [
        ("ImageSplicing", preview.created_at - timedelta(minutes=1)),
        ("FileUncompression", preview.created_at - timedelta(minutes=1)),
    ]


def test_reconcile_adopts_the_task_imm_accepted_before_its_creator_died(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_after_create(world, monkeypatch)
    with pytest.raises(RuntimeError):
        _upload(world)
    world.clock.now += timedelta(seconds=901)
    assert reconcile(world.call).created == 2
    assert len(world.imm.created) == 2
    assert world.ledger.task_by_id("ImageSplicing-1") is not None


def test_reconcile_adopts_with_imms_start_time_and_asks_for_the_result_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_after_create(world, monkeypatch)
    with pytest.raises(RuntimeError):
        _upload(world)
    world.oss.objects["oss://media/out/cat-images.jpg"] = b"jpg"
    world.imm.finish("ImageSplicing-1")
    world.clock.now += timedelta(seconds=905)
    summary = reconcile(world.call)
    assert summary.created == 2 and summary.finished == ["ImageSplicing-1"]
    preview = world.ledger.task_by_id("ImageSplicing-1")
    assert preview is not None and preview.status == "Succeeded" and len(preview.outputs) == 1


def test_one_failing_task_does_not_block_reconcile(world: World) -> None:
    _upload(world)
    _upload(world, "in/dog.png")
    for task_id in ("ImageSplicing-1", "FileUncompression-2", "ImageSplicing-3", "FileUncompression-4"):
        world.imm.finish(task_id)
    # The oldest task's GetTask fails for good (say its project's role lost its permission).
    world.imm.get_failures = [
        ServiceError("IMM", "GetTask", "Forbidden.NoPermission", "no", status=403, retryable=False)
    ]
    world.clock.now += timedelta(seconds=901)
    with pytest.raises(ReconcileError, match=r"1 of 4 stale tasks .*ImageSplicing-1"):
        reconcile(world.call)
    statuses = {
        t: world.task(t).status for t in ("ImageSplicing-1", "FileUncompression-2", "ImageSplicing-3")
    }
    assert statuses == {
        "ImageSplicing-1": "Running",
        "FileUncompression-2": "Succeeded",
        "ImageSplicing-3": "Succeeded",
    }
    assert "ImageSplicing-1" in reconcile(world.call).finished  # the next run settles it


def test_only_a_listed_task_with_the_claims_user_data_and_sources_is_adopted(world: World) -> None:
    world.imm.failures = [ServiceError("IMM", "X", "Crash", "", retryable=True)] * 40
    with pytest.raises(ServiceError):
        _upload(world)
    world.imm.failures = []
    [preview, _] = world.ledger.tasks_of_run(run_id_for("media", "in/cat.png", "ETAG1", 1))
    listed = {"TaskType": "ImageSplicing", "UserData": preview.request["UserData"]}
    sibling = {**preview.request, "Sources": [{"URI": "oss://media/in/other.png"}]}
    # Its own request with Sources kept as the wire's JSON text (IMM's form is UNCONFIRMED).
    own = {**preview.request, "Sources": json.dumps(preview.request["Sources"])}
    world.imm.other_listed = [
        {**listed, "TaskId": "sibling", "TaskRequestDefinition": json.dumps(sibling)},  # a fan-out sibling
        {**listed, "TaskId": "unverifiable"},  # listed without its request definition
        {**listed, "TaskId": "other-run", "UserData": "{}", "TaskRequestDefinition": json.dumps(own)},
        {**listed, "TaskId": "mine", "TaskRequestDefinition": json.dumps(own)},
    ]
    world.clock.now += timedelta(seconds=1)
    assert _upload(world).started == ["mine", "FileUncompression-1"]
    assert [a for a, _ in world.imm.created] == ["CreateFileUncompressionTask"]


def test_a_failing_list_tasks_creates_nothing_and_releases_the_claims(world: World) -> None:
    world.imm.failures = [ServiceError("IMM", "X", "Crash", "", retryable=True)] * 40
    with pytest.raises(ServiceError):
        _upload(world)
    world.imm.failures = []
    world.imm.list_failures = [
        ServiceError("IMM", "ListTasks", "InternalError", "", status=503, retryable=True)
    ] * 40
    world.clock.now += timedelta(seconds=1)
    with pytest.raises(ServiceError):
        _upload(world)
    assert world.imm.created == []
    world.imm.list_failures = []
    world.clock.now += timedelta(seconds=1)
    assert len(_upload(world).started) == 2


def test_every_log_line_carries_the_correlation_ids(world: World) -> None:
    import io

    from immflow.logging import logger, start_invocation

    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    try:
        start_invocation("fc-req-42")
        _upload(world)
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines
    for line in lines:
        assert line["service"] == "immflow" and line["fc_request_id"] == "fc-req-42"
        assert re.fullmatch(r"[0-9a-f]{20}|", line["run_id"]) and "task_id" in line
    assert any(line["task_id"] == "ImageSplicing-1" for line in lines)

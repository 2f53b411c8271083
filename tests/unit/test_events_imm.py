"""IMM notifications in every documented form, GetTask answers, and the light import of the event modules."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from immflow.errors import PayloadError
from immflow.events.imm import (
    GET_TASK_KIND,
    KIND,
    ImmNotification,
    parse_get_task_response,
    parse_imm_notification,
)

FIXTURES = Path(__file__).parent.parent / "events" / "imm"
NOTIFICATIONS = sorted(path for path in FIXTURES.iterdir() if not path.name.startswith("get-task"))
DOC_EXAMPLE = FIXTURES / "doc-envelope-mediaconvert-succeeded.json"
UTC = timezone.utc


def doc_envelope() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DOC_EXAMPLE.read_text())
    return data


def doc_content() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(doc_envelope()["content"])
    return data


def with_content(**changes: Any) -> str:
    content = {**doc_content(), **changes}
    return json.dumps({**doc_envelope(), "content": json.dumps(content)})


@pytest.mark.parametrize("path", NOTIFICATIONS, ids=lambda path: path.name)
def test_every_notification_fixture_parses(path: Path) -> None:
    notification = parse_imm_notification(path.read_bytes())
    assert notification.content.Status in ("Succeeded", "Failed")
    assert notification.content.TaskId.startswith(notification.content.TaskType)


def test_the_documented_example_reads_field_by_field() -> None:
    notification = parse_imm_notification(DOC_EXAMPLE.read_text())
    assert notification.id == "3A1-2bXq9PzK7TtsUejT4UJ16EsAbCd"
    assert notification.source == "acs.imm"
    assert notification.type == "imm:Task:MediaConvert"
    assert notification.subject == "acs:imm:cn-hangzhou:1234567890123456:media-pipeline/imm:Task:MediaConvert"
    assert notification.time == datetime(2024, 11, 28, 10, 40, 0, 123000, tzinfo=UTC)
    result = notification.content
    assert result.ProjectName == "media-pipeline"
    assert result.DatasetName == ""
    assert result.RequestId == "CA995EFD-083D-4F40-BE8A-BDF75FFFE0B6"
    assert result.StartTime == datetime(2024, 11, 28, 10, 39, 55, 810000, tzinfo=UTC)
    assert result.EndTime == datetime(2024, 11, 28, 10, 40, 0, 100000, tzinfo=UTC)
    assert json.loads(result.UserData) == {"upload": "in/a.mp4"}
    assert result.TaskType == "MediaConvert"
    assert result.TaskId == "MediaConvert-adb1ee28-c4c9-42a7-9f54-3b8eadcb1234"
    assert result.succeeded
    assert (result.Code, result.Message, result.EventSourceId) == ("", "", "")
    assert result.Sources is not None and result.Sources[0].URI == "oss://in-bucket/in/a.mp4"
    assert result.Sources[0].SubtitleSources is None
    assert result.Targets is not None
    image = result.Targets[0].Image
    assert image is not None and image.Sprites is None and image.Animations is None
    assert result.output_uris() == ["oss://out-bucket/out/a.mp4", "oss://out-bucket/out/a-1.jpg"]


def test_a_failure_carries_code_and_message_and_no_outputs() -> None:
    result = parse_imm_notification((FIXTURES / "envelope-mediaconvert-failed.json").read_bytes()).content
    assert not result.succeeded
    assert result.Code == "InvalidArgument"
    assert "does not exist" in result.Message
    assert result.output_uris() == []


def test_the_older_form_is_the_content_itself() -> None:
    notification = parse_imm_notification((FIXTURES / "old-form-without-envelope.json").read_bytes())
    assert (notification.id, notification.source, notification.type, notification.time) == (None,) * 4
    result = notification.content
    plus_eight = timezone(timedelta(hours=8))
    assert result.StartTime == datetime(2023, 1, 4, 13, 17, 0, 270148, tzinfo=plus_eight)
    assert result.EndTime == datetime(2023, 1, 4, 13, 17, 3, 100000, tzinfo=plus_eight)
    assert result.output_uris() == ["oss://test-bucket/out/b.mp4"]


@pytest.mark.parametrize(
    "name", ["envelope-base64.txt", "envelope-content-object-int-time.json", "eventbridge-mediaconvert.json"]
)
def test_other_wrappings_read_like_the_documented_example(name: str) -> None:
    reference = parse_imm_notification(DOC_EXAMPLE.read_bytes())
    notification = parse_imm_notification((FIXTURES / name).read_bytes())
    assert notification.content == reference.content
    assert notification.time == reference.time


def test_the_eventbridge_form_keeps_its_cloudevents_fields() -> None:
    notification = parse_imm_notification((FIXTURES / "eventbridge-mediaconvert.json").read_text())
    assert notification.type == "imm:Task:MediaConvert"
    assert notification.model_extra is not None
    assert notification.model_extra["specversion"] == "1.0"
    assert notification.model_extra["aliyunregionid"] == "cn-hangzhou"


def test_base64_with_line_breaks_is_read() -> None:
    encoded = base64.encodebytes(DOC_EXAMPLE.read_bytes())
    assert b"\n" in encoded.strip()
    assert parse_imm_notification(encoded) == parse_imm_notification(DOC_EXAMPLE.read_bytes())


def test_other_task_types_name_their_outputs_by_target_uri() -> None:
    office = parse_imm_notification((FIXTURES / "envelope-office-conversion.json").read_bytes()).content
    assert office.SourceURI == "oss://in-bucket/docs/report.docx"
    assert office.output_uris() == ["oss://out-bucket/pages/report/{index}.png"]
    archive = parse_imm_notification((FIXTURES / "envelope-file-compression.json").read_bytes()).content
    assert archive.output_uris() == ["oss://out-bucket/bundles/run-1.zip"]
    assert archive.EndTime == datetime(2024, 11, 28, 10, 42, 1, tzinfo=UTC)


def test_unknown_content_fields_are_kept() -> None:
    result = parse_imm_notification(with_content(PageCount=7, Files=[{"URI": "oss://b/x"}])).content
    assert result.model_extra == {"PageCount": 7, "Files": [{"URI": "oss://b/x"}]}


def test_output_uris_skips_empty_and_repeated_names() -> None:
    targets = [
        {"URI": "oss://b/o.mp4", "Subtitle": {"Extract": {"URI": "oss://b/sub"}}, "Image": None},
        {
            "URI": "",
            "Image": {"Snapshots": [{"URI": "oss://b/s/{index}.jpg"}], "Sprites": [{"URI": "oss://b/o.mp4"}]},
        },
    ]
    result = parse_imm_notification(with_content(Targets=targets)).content
    assert result.output_uris() == ["oss://b/o.mp4", "oss://b/sub", "oss://b/s/{index}.jpg"]


def test_missing_strings_read_as_empty() -> None:
    content = {key: value for key, value in doc_content().items() if key not in ("UserData", "Code")}
    content["Message"] = None
    result = parse_imm_notification(json.dumps(content)).content
    assert (result.UserData, result.Code, result.Message) == ("", "", "")


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ("not json and not base64!", "", "neither JSON nor Base64"),
        (base64.b64encode(b"plain words").decode(), "", "neither JSON nor Base64"),
        (b"\xff\x00", "", "not UTF-8"),
        ("[1, 2]", "", "expected a JSON object, got an array"),
        (json.dumps({**doc_envelope(), "content": "{broken"}), "content", "not valid JSON"),
        (json.dumps({**doc_envelope(), "content": "[]"}), "content", "expected a JSON object"),
        (with_content(TaskId=None), "content.TaskId", "valid string"),
        (
            json.dumps({**doc_envelope(), "content": json.dumps({"TaskType": "MediaConvert"})}),
            "content.ProjectName",
            "field required (and 2 more problems)",
        ),
        (with_content(Status="Running"), "content.Status", "'Succeeded' or 'Failed'"),
        (with_content(StartTime="yesterday"), "content.StartTime", "datetime"),
        (with_content(Targets={"URI": "x"}), "content.Targets", "valid list"),
        (json.dumps({**doc_envelope(), "time": "noon"}), "time", "datetime"),
    ],
    ids=[
        "not-json-not-base64",
        "base64-of-text",
        "not-utf8",
        "array",
        "content-bad-json",
        "content-array",
        "task-id-null",
        "content-missing-fields",
        "running",
        "bad-time",
        "targets-not-list",
        "envelope-time",
    ],
)
def test_malformed_notifications_name_the_field(body: str | bytes, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_imm_notification(body)
    assert (caught.value.kind, caught.value.field) == (KIND, field)
    assert problem in caught.value.problem
    assert str(caught.value).startswith("malformed IMM notification")


def test_get_task_of_a_running_task_has_no_result_yet() -> None:
    response = parse_get_task_response((FIXTURES / "get-task-running.json").read_bytes())
    assert response.Status == "Running"
    assert response.Progress == 40
    assert response.EndTime is None
    assert response.final_result() is None


def test_get_task_of_a_finished_task_reads_like_its_notification() -> None:
    response = parse_get_task_response((FIXTURES / "get-task-succeeded.json").read_text())
    result = response.final_result()
    notified = parse_imm_notification(DOC_EXAMPLE.read_bytes()).content
    assert result is not None
    for field in ("ProjectName", "TaskType", "TaskId", "Status", "Code", "Message", "UserData", "EndTime"):
        assert getattr(result, field) == getattr(notified, field), field
    assert result.StartTime == datetime(2024, 11, 28, 10, 39, 55, 810060, tzinfo=UTC)
    assert result.Tags == {"run": "r-1", "n": 2}
    assert result.RequestId == ""
    assert result.output_uris() == []


def test_get_task_real_failure_shape_without_user_data() -> None:
    result = parse_get_task_response(
        (FIXTURES / "get-task-failed-real-shape.json").read_bytes()
    ).final_result()
    assert result is not None
    assert (result.Status, result.Code, result.Message, result.UserData) == (
        "Failed",
        "InternalError",
        "unknown error",
        "",
    )


def test_get_task_accepts_the_sdk_response_body_map() -> None:
    from alibabacloud_imm20200930 import models as imm_models

    body = imm_models.GetTaskResponseBody().from_map(
        json.loads((FIXTURES / "get-task-succeeded.json").read_text())
    )
    response = parse_get_task_response(body.to_map())
    assert response.Tags == {"run": "r-1", "n": 2}
    assert response.final_result() is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [({"Status": "Queued"}, "Status"), ({"TaskType": ""}, "TaskType"), ({"Progress": "half"}, "Progress")],
)
def test_malformed_get_task_responses_name_the_field(change: dict[str, object], field: str) -> None:
    body = {**json.loads((FIXTURES / "get-task-running.json").read_text()), **change}
    with pytest.raises(PayloadError) as caught:
        parse_get_task_response(body)
    assert (caught.value.kind, caught.value.field) == (GET_TASK_KIND, field)


def test_notifications_compare_by_value() -> None:
    assert isinstance(parse_imm_notification(DOC_EXAMPLE.read_bytes()), ImmNotification)
    assert parse_imm_notification(DOC_EXAMPLE.read_bytes()) == parse_imm_notification(DOC_EXAMPLE.read_text())


def test_event_and_task_modules_import_no_cloud_sdk() -> None:
    # FC cold start: the handlers import these modules, so they must not pull in the official SDKs.
    code = (
        "import sys\n"
        "import immflow.events.oss, immflow.events.mns, immflow.events.imm, immflow.tasks\n"
        "heavy = ('alibabacloud', 'darabonba', 'Tea', 'oss2', 'mns', 'fc2', 'requests')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

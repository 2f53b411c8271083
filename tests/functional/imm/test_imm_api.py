"""The local IMM's RPC surface through the official SDK: signatures, projects, validation, GetTask,
ListTasks, throttling, retention and actions that are not available locally."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from immflow.events.imm import parse_get_task_response

from tests.support.clock import ManualClock
from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox, MakeImm, wait_task


def _zip_task(cloud: Cloud, client: Client, key: str = "api/a.txt", **extra: Any) -> str:
    cloud.bucket.put_object(key, b"hello")
    request = models.CreateFileCompressionTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateFileCompressionTaskRequestSources(uri=cloud.uri(key), mode="fullname")],
        target_uri=cloud.uri(f"api-out/{key.replace('/', '-')}.zip"),
        **extra,
    )
    return str(client.create_file_compression_task(request).body.task_id)


def _error(call: Callable[[], object]) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


# signatures -----------------------------------------------------------------------------------------


def test_a_wrong_secret_is_refused(cloud: Cloud) -> None:
    error = _error(lambda: cloud.client(secret="not-the-secret").list_projects(models.ListProjectsRequest()))
    assert error.code == "SignatureDoesNotMatch"
    assert error.status_code == 400


def test_an_unknown_key_is_refused(cloud: Cloud) -> None:
    error = _error(lambda: cloud.client(key_id="LTAIunknown").list_projects(models.ListProjectsRequest()))
    assert error.code == "InvalidAccessKeyId.NotFound"


def test_the_v1_rpc_signature_is_accepted_and_checked(cloud: Cloud, imm: Client) -> None:
    body = (
        cloud.client(signature_algorithm="v2")
        .get_project(models.GetProjectRequest(project_name=PROJECT))
        .body
    )
    assert body.project.project_name == PROJECT
    error = _error(
        lambda: cloud.client(signature_algorithm="v2", secret="wrong").get_project(
            models.GetProjectRequest(project_name=PROJECT)
        )
    )
    assert error.code == "SignatureDoesNotMatch"


# projects -------------------------------------------------------------------------------------------


def test_project_lifecycle(cloud: Cloud) -> None:
    client = cloud.client()
    created = client.create_project(
        models.CreateProjectRequest(
            project_name="life-1",
            description="first",
            tag=[models.CreateProjectRequestTag(key="team", value="media")],
        )
    ).body.project
    assert created.service_role == "AliyunIMMDefaultRole"
    assert created.engine_concurrency == 2 and created.project_queries_per_second == 100
    assert created.tags[0].tag_key == "team" and created.tags[0].tag_value == "media"
    assert _error(lambda: client.create_project(models.CreateProjectRequest(project_name="life-1"))).code == (
        "ResourceAlreadyExists"
    )
    client.create_project(models.CreateProjectRequest(project_name="life-2", service_role="custom-role"))
    updated = client.update_project(
        models.UpdateProjectRequest(project_name="life-1", description="second")
    ).body
    assert updated.project.description == "second"
    assert (
        client.get_project(models.GetProjectRequest(project_name="life-1")).body.project.description
        == "second"
    )

    first = client.list_projects(models.ListProjectsRequest(prefix="life-", max_results=1)).body
    assert [p.project_name for p in first.projects] == ["life-1"] and first.next_token
    second = client.list_projects(
        models.ListProjectsRequest(prefix="life-", max_results=1, next_token=first.next_token)
    ).body
    assert [p.project_name for p in second.projects] == ["life-2"] and not second.next_token

    client.delete_project(models.DeleteProjectRequest(project_name="life-1"))
    error = _error(lambda: client.get_project(models.GetProjectRequest(project_name="life-1")))
    assert (error.code, error.status_code) == ("ResourceNotFound", 400)
    assert "The specified resource project is not found." in error.message
    bad_name = _error(
        lambda: client.create_project(models.CreateProjectRequest(project_name="9-starts-with-digit"))
    )
    assert bad_name.code == "InvalidArgument" and "ProjectName" in bad_name.message


def test_a_task_in_an_unknown_project_is_refused(cloud: Cloud) -> None:
    request = models.CreateFileUncompressionTaskRequest(
        project_name="no-such-project", source_uri=cloud.uri("a.zip")
    )
    error = _error(lambda: cloud.client().create_file_uncompression_task(request))
    assert error.code == "ResourceNotFound" and "project" in error.message


# validation at create time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (models.CreateFileUncompressionTaskRequest(project_name=PROJECT), "SourceURI"),
        (
            models.CreateFileUncompressionTaskRequest(
                project_name=PROJECT, source_uri="http://imm-media.oss-cn-hangzhou.aliyuncs.com/a.zip"
            ),
            "HTTP URL",
        ),
        (
            models.CreateFileUncompressionTaskRequest(
                project_name=PROJECT, source_uri="oss://imm-media.oss-cn-hangzhou.aliyuncs.com/a.zip"
            ),
            "endpoint host",
        ),
        (
            models.CreateOfficeConversionTaskRequest(
                project_name=PROJECT,
                source_uri="oss://imm-media/a.docx",
                target_type="pdf",
                target_uri="oss://{bucket}/{nope}.pdf",
            ),
            "{nope}",
        ),
        (
            models.CreateOfficeConversionTaskRequest(
                project_name=PROJECT,
                source_uri="oss://imm-media/a.docx",
                target_type="pdf",
                target_uri="oss://{bucket}/{tags.missing}.pdf",
            ),
            "missing",
        ),
        (
            models.CreateMediaConvertTaskRequest(
                project_name=PROJECT,
                sources=[models.CreateMediaConvertTaskRequestSources(uri="oss://imm-media/a.mp4")],
                targets=[
                    models.CreateMediaConvertTaskRequestTargets(container="bogus", uri="oss://imm-media/o")
                ],
            ),
            "Targets[0].Container",
        ),
        (
            models.CreateMediaConvertTaskRequest(
                project_name=PROJECT,
                sources=[models.CreateMediaConvertTaskRequestSources(uri="oss://imm-media/a.mp4")],
                targets=[models.CreateMediaConvertTaskRequestTargets(container="mp4")],
            ),
            "URI",
        ),
        (
            models.CreateOfficeConversionTaskRequest(
                project_name=PROJECT,
                source_uri="oss://imm-media/a.docx",
                target_type="gif",
                target_uri="oss://imm-media/a.gif",
            ),
            "TargetType",
        ),
        (
            models.CreateFileUncompressionTaskRequest(
                project_name=PROJECT,
                source_uri="oss://imm-media/a.zip",
                notification=models.Notification(rocket_mq=models.RocketMQ(instance_id="i", topic_name="t")),
            ),
            "RocketMQ notification is not available locally",
        ),
        (
            models.CreateFileUncompressionTaskRequest(
                project_name=PROJECT, source_uri="oss://imm-media/a.zip", user_data="x" * 2049
            ),
            "UserData",
        ),
    ],
)
def test_bad_requests_are_refused_before_a_task_exists(
    cloud: Cloud, imm: Client, request_: Any, named: str
) -> None:
    method = {
        models.CreateFileUncompressionTaskRequest: imm.create_file_uncompression_task,
        models.CreateOfficeConversionTaskRequest: imm.create_office_conversion_task,
        models.CreateMediaConvertTaskRequest: imm.create_media_convert_task,
    }[type(request_)]
    before = len(imm.list_tasks(models.ListTasksRequest(project_name=PROJECT)).body.tasks)
    error = _error(lambda: method(request_))
    assert (error.code, error.status_code) == ("InvalidArgument", 400)
    assert named in error.message
    assert len(imm.list_tasks(models.ListTasksRequest(project_name=PROJECT)).body.tasks) == before


def test_tasks_the_local_imm_cannot_do_say_so(imm: Client) -> None:
    with pytest.raises(ServerException) as info:
        imm.create_video_label_classification_task(
            models.CreateVideoLabelClassificationTaskRequest(
                project_name=PROJECT, source_uri="oss://imm-media/a.mp4"
            )
        )
    assert info.value.code == "NotImplemented"
    assert "CreateVideoLabelClassificationTask is not available in immflow's local IMM" in info.value.message
    with pytest.raises(ServerException) as other:
        imm.detect_image_labels(
            models.DetectImageLabelsRequest(project_name=PROJECT, source_uri="oss://imm-media/a.jpg")
        )
    assert other.value.code == "NotImplemented" and "DetectImageLabels" in other.value.message


# GetTask, ListTasks -----------------------------------------------------------------------------------


def test_get_task_reports_every_field(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    task_id = _zip_task(cloud, imm, "api/fields.txt", user_data='{"run":1}', notification=notify)
    inbox.wait(task_id)
    body = imm.get_task(
        models.GetTaskRequest(
            project_name=PROJECT, task_type="FileCompression", task_id=task_id, request_definition=True
        )
    ).body
    result = parse_get_task_response(body.to_map())
    assert result.Status == "Succeeded" and result.Progress == 100 and result.Code == ""
    assert result.UserData == '{"run":1}' and result.EventId == inbox.received[task_id][0].id
    assert result.StartTime is not None and result.EndTime is not None and result.StartTime <= result.EndTime
    assert body.end_time.endswith("Z") and len(body.end_time) == len("2024-04-01T06:05:40.278Z")
    definition = json.loads(body.task_request_definition)
    assert definition["TargetURI"] == cloud.uri("api-out/api-fields.txt.zip")
    assert definition["Sources"][0]["Mode"] == "fullname"
    error = _error(
        lambda: imm.get_task(
            models.GetTaskRequest(
                project_name=PROJECT, task_type="FileCompression", task_id="FileCompression-nope"
            )
        )
    )
    assert error.code == "ResourceNotFound" and "The specified resource task is not found." in error.message
    wrong_type = _error(
        lambda: imm.get_task(
            models.GetTaskRequest(project_name=PROJECT, task_type="MediaConvert", task_id=task_id)
        )
    )
    assert wrong_type.code == "ResourceNotFound"


def test_list_tasks_filters_sorts_and_pages(cloud: Cloud, make_imm: MakeImm) -> None:
    clock = ManualClock()
    client = make_imm(clock=clock).client
    image = b"P3\n1 1\n255\n255 0 0\n"
    cloud.bucket.put_object("list/a.ppm", image)
    ids = []
    for n in range(3):
        request = models.CreateImageToPDFTaskRequest(
            project_name=PROJECT,
            sources=[models.CreateImageToPDFTaskRequestSources(uri=cloud.uri("list/a.ppm"))],
            target_uri=cloud.uri(f"list/out-{n}.pdf"),
            tags={"batch": "b1" if n < 2 else "b2", "n": n},
        )
        ids.append(client.create_image_to_pdftask(request).body.task_id)
        clock.advance(1)  # each task starts a second after the one before
    ids.append(_zip_task(cloud, client, "list/z.txt"))
    for task_id in ids:
        wait_task(client, "ImageToPDF" if task_id.startswith("ImageToPDF") else "FileCompression", task_id)

    def listing(**options: Any) -> Any:
        return client.list_tasks(models.ListTasksRequest(project_name=PROJECT, **options)).body

    assert sorted(t.task_id for t in listing().tasks) == sorted(ids)
    assert [t.task_id for t in listing(task_types=["ImageToPDF"], tag_selector="batch=b1").tasks] == sorted(
        ids[:2]
    )
    assert [t.task_id for t in listing(tag_selector="n=2").tasks] == [ids[2]]
    assert listing(status="Failed").tasks == []
    by_start = [t.task_id for t in listing(sort="StartTime", order="DESC").tasks]
    assert by_start == list(reversed(ids))
    first_start = parse_get_task_response(
        client.get_task(
            models.GetTaskRequest(project_name=PROJECT, task_type="ImageToPDF", task_id=ids[1])
        ).body.to_map()
    ).StartTime
    assert first_start is not None
    since = first_start.astimezone(timezone(timedelta(hours=8))).isoformat(timespec="milliseconds")
    ranged = listing(start_time_range=models.TimeRange(start=since), sort="StartTime")
    assert [t.task_id for t in ranged.tasks] == ids[1:]
    pages, token = [], None
    while True:
        page = listing(max_results=1, sort="StartTime", order="asc", next_token=token)
        assert page.max_results == "1"
        pages += [t.task_id for t in page.tasks]
        token = page.next_token
        if not token:
            break
    assert pages == ids
    for bad in (
        {"next_token": "not-a-token"},
        {"next_token": base64.b64encode(b'["task","[1]"]').decode()},
        {"max_results": 101},
        {"tag_selector": "novalue"},
        {"sort": "Size"},
    ):
        assert _error(functools.partial(listing, **bad)).code == "InvalidArgument"


def test_expired_tasks_are_not_found(cloud: Cloud, make_imm: MakeImm) -> None:
    clock = ManualClock()
    extra = make_imm(clock=clock)
    task_id = _zip_task(cloud, extra.client, "api/old.txt")
    assert wait_task(extra.client, "FileCompression", task_id).status == "Succeeded"
    clock.advance(timedelta(days=7, seconds=1).total_seconds())
    error = _error(
        lambda: extra.client.get_task(
            models.GetTaskRequest(project_name=PROJECT, task_type="FileCompression", task_id=task_id)
        )
    )
    assert error.code == "ResourceNotFound" and "task" in error.message
    assert extra.client.list_tasks(models.ListTasksRequest(project_name=PROJECT)).body.tasks == []


def test_calls_over_the_project_qps_are_throttled(make_imm: MakeImm) -> None:
    clock = ManualClock()
    client = make_imm(project_qps=3, clock=clock).client
    request = models.GetProjectRequest(project_name=PROJECT)
    clock.advance(1)  # a second of its own: make_imm's CreateProject counted in the one before
    for _ in range(3):
        client.get_project(request)
    with pytest.raises(ThrottlingException) as info:
        client.get_project(request)
    assert info.value.code == "Throttling.User"
    assert info.value.message.startswith("code: 400, Request was denied due to user flow control.")
    clock.advance(1)
    assert client.get_project(request).body.project.project_name == PROJECT


def test_a_task_the_service_role_may_not_read_fails(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    client = cloud.client()
    client.create_project(
        models.CreateProjectRequest(project_name="restricted", service_role="reader-of-other")
    )
    policy = cloud.state_dir / "imm" / "policy.json"
    saved = policy.read_text()
    rules = json.loads(saved)
    rules["roles"]["reader-of-other"] = {"read": ["other-*"], "write": ["*"]}
    policy.write_text(json.dumps(rules))
    try:
        cloud.bucket.put_object("api/secret.txt", b"x")
        request = models.CreateFileCompressionTaskRequest(
            project_name="restricted",
            sources=[models.CreateFileCompressionTaskRequestSources(uri=cloud.uri("api/secret.txt"))],
            target_uri=cloud.uri("api-out/secret.zip"),
            notification=notify,
        )
        task_id = client.create_file_compression_task(request).body.task_id
        result = inbox.wait(task_id).content
    finally:
        policy.write_text(saved)
    assert (result.Status, result.Code, result.Message) == (
        "Failed",
        "InvalidArgument",
        "File access forbidden.",
    )
    assert not cloud.bucket.object_exists("api-out/secret.zip")


def test_a_missing_source_fails_the_task_naming_it(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    request = models.CreateFileUncompressionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri("api/none.zip"), notification=notify
    )
    task_id = imm.create_file_uncompression_task(request).body.task_id
    result = inbox.wait(task_id).content
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument")
    assert "File does not exist" in result.Message and cloud.uri("api/none.zip") in result.Message
    assert result.SourceURI == cloud.uri("api/none.zip")

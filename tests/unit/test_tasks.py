"""IMM task requests: the wire form matches the official SDK byte for byte, parses back, and errors name the parameter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
from immflow.errors import PayloadError
from immflow.tasks import (
    TASK_REQUESTS_BY_ACTION,
    TASK_TYPES,
    USER_DATA_MAX_BYTES,
    CredentialChainLink,
    CredentialConfigSpec,
    MnsSpec,
    NotificationSpec,
    RocketMqSpec,
    RotatedSource,
    TaskRequest,
    TrimPolicySpec,
)
from immflow.tasks.archive_file_inspection import ArchiveFileInspectionRequest
from immflow.tasks.file_compression import CompressionSource, FileCompressionRequest
from immflow.tasks.file_uncompression import FileUncompressionRequest
from immflow.tasks.image_splicing import ImageSplicingRequest
from immflow.tasks.image_to_pdf import ImageToPdfRequest
from immflow.tasks.media_convert import MediaConvertRequest
from immflow.tasks.office_conversion import OfficeConversionRequest

NOTIFY = NotificationSpec(MNS=MnsSpec(TopicName="imm-task-done"))


def media_convert() -> MediaConvertRequest:
    return MediaConvertRequest.model_validate(
        {
            "ProjectName": "media-pipeline",
            "AlignmentIndex": 0,
            "Sources": [
                {
                    "URI": "oss://in-bucket/in/my clip+1.mp4",
                    "StartTime": 1.5,
                    "Duration": 30.0,
                    "Subtitles": [{"URI": "oss://in-bucket/in/zh.srt", "Language": "chi", "TimeOffset": 0.5}],
                },
                {
                    "URI": "oss://in-bucket/in/music.mp3",
                    "Attached": True,
                    "AlignMode": "loop",
                    "DisableVideo": True,
                },
            ],
            "Targets": [
                {
                    "Container": "mp4",
                    "URI": "oss://out-bucket/{dirname}/{barename}-{resolution}.{autoext}",
                    "Video": {
                        "TranscodeVideo": {
                            "Codec": "h264",
                            "Resolution": "640x360",
                            "CRF": 23.0,
                            "AdaptiveResolutionDirection": True,
                        },
                        "FilterVideo": {
                            "Watermarks": [{"Type": "file", "URI": "oss://in-bucket/logo.png", "Dx": 10.0}],
                            "Delogos": [{"ReferPos": "topleft", "Width": 0.1}],
                        },
                        "Stream": [0],
                    },
                    "Audio": {
                        "TranscodeAudio": {"Codec": "aac", "Bitrate": 128000},
                        "FilterAudio": {"Mixing": False},
                    },
                    "Subtitle": {"ExtractSubtitle": {"Format": "webvtt", "URI": "oss://out-bucket/subs/a"}},
                    "Segment": {"Format": "hls", "Duration": 6.0, "StartNumber": 1},
                    "Speed": 1.0,
                    "StripMetadata": True,
                    "AttachedPicture": {"Stream": [-1]},
                    "Data": {"Stream": [-1]},
                },
                {
                    "Image": {
                        "Snapshots": [
                            {"Format": "jpg", "URI": "oss://out-bucket/snap/{index}.jpg", "Interval": 5.0}
                        ],
                        "Sprites": [
                            {"Format": "png", "URI": "oss://out-bucket/sprite/{index}.png", "TileWidth": 4}
                        ],
                        "Animations": [
                            {"Format": "gif", "URI": "oss://out-bucket/anim.gif", "FrameRate": 10.0}
                        ],
                    }
                },
            ],
            "TargetGroups": [
                {
                    "URI": "oss://out-bucket/hls/master.m3u8",
                    "Targets": [
                        {"Container": "ts", "URI": "oss://out-bucket/hls/360p", "Segment": {"Format": "hls"}}
                    ],
                }
            ],
            "Tags": {"run": "r-1", "n": 2, "nested": {"a": [1, True, None]}},
            "UserData": '{"run":"r-1","step":"transcode","source":"oss://in-bucket/in/my clip+1.mp4"}',
            "Notification": {
                "MNS": {"TopicName": "imm-task-done"},
                "ExtendedMessageURI": "oss://out-bucket/x.json",
            },
            "CredentialConfig": {
                "ServiceRole": "AliyunIMMDefaultRole",
                "Chain": [{"Role": "acs:ram::1:role/r", "RoleType": "user", "AssumeRoleFor": "1"}],
            },
        }
    )


def office_conversion() -> OfficeConversionRequest:
    return OfficeConversionRequest(
        ProjectName="media-pipeline",
        SourceURI="oss://in-bucket/docs/报告 v2.docx",
        TargetType="png",
        TargetURI="oss://out-bucket/pages/{barename}/{index}.{autoext}",
        LongPicture=True,
        FirstPage=False,
        ImageDPI=150,
        Pages="1,2-4",
        ScalePercentage=100,
        TrimPolicy=TrimPolicySpec(DisableDeleteEmptyCell=True),
        Tags={"run": "r-1"},
        UserData="u",
        Notification=NOTIFY,
    )


def office_images_to_pdf() -> OfficeConversionRequest:
    return OfficeConversionRequest(
        ProjectName="media-pipeline",
        Sources=[
            RotatedSource(URI="oss://in-bucket/scans/1.jpg", Rotate=90),
            RotatedSource(URI="oss://in-bucket/scans/2.jpg"),
        ],
        TargetType="pdf",
        TargetURIPrefix="oss://out-bucket/pdf/",
    )


def file_compression() -> FileCompressionRequest:
    return FileCompressionRequest(
        ProjectName="media-pipeline",
        CompressedFormat="zip",
        Sources=[
            CompressionSource(URI="oss://out-bucket/pages/report/", Mode="prefix", Alias="/pages/"),
            CompressionSource(URI="oss://in-bucket/docs/report.docx", Mode="fullname"),
        ],
        TargetURI="oss://out-bucket/bundles/report.zip",
        Notification=NotificationSpec(RocketMQ=RocketMqSpec(InstanceId="MQ_INST_1", TopicName="t")),
        CredentialConfig=CredentialConfigSpec(Chain=[CredentialChainLink(Role="r", RoleType="service")]),
    )


def file_uncompression() -> FileUncompressionRequest:
    return FileUncompressionRequest(
        ProjectName="media-pipeline",
        SourceURI="oss://in-bucket/in/archive.zip",
        TargetURI="oss://out-bucket/unzipped/",
        SelectedFiles=["/a.txt", "/dir/"],
        Password="secret",
        Notification=NOTIFY,
    )


def archive_inspection() -> ArchiveFileInspectionRequest:
    return ArchiveFileInspectionRequest(
        ProjectName="media-pipeline",
        SourceURI="oss://in-bucket/in/archive.7z",
        Notification=NotificationSpec(
            ExtendedMessageURI="oss://out-bucket/inspect/archive.json", MNS=NOTIFY.MNS
        ),
    )


def image_splicing() -> ImageSplicingRequest:
    return ImageSplicingRequest(
        ProjectName="media-pipeline",
        Sources=[
            RotatedSource(URI="oss://in-bucket/a.jpg"),
            RotatedSource(URI="oss://in-bucket/b.png", Rotate=180),
        ],
        TargetURI="oss://out-bucket/spliced.jpg",
        Direction="horizontal",
        Align=720,
        Padding=4,
        Margin=2,
        BackgroundColor="#FFFFFF",
        ImageFormat="jpg",
        Quality=80,
        ScaleType="fit",
        Tags={"k": "v"},
    )


def image_to_pdf() -> ImageToPdfRequest:
    return ImageToPdfRequest(
        ProjectName="media-pipeline",
        Sources=[
            RotatedSource(URI="oss://in-bucket/p1.jpg"),
            RotatedSource(URI="oss://in-bucket/p2.webp", Rotate=270),
        ],
        TargetURI="oss://out-bucket/book.pdf",
        Tags={"k": "v"},
        UserData="x",
    )


SAMPLES = [
    media_convert,
    office_conversion,
    office_images_to_pdf,
    file_compression,
    file_uncompression,
    archive_inspection,
    image_splicing,
    image_to_pdf,
]


@pytest.mark.parametrize("build", SAMPLES, ids=lambda build: build.__name__)
def test_wire_form_parses_back_to_the_same_request(build: Any) -> None:
    request: TaskRequest = build()
    assert type(request).from_wire(request.to_wire()) == request


def test_every_task_type_has_a_sample() -> None:
    assert {type(build()).TASK_TYPE for build in SAMPLES} == set(TASK_TYPES)


def test_to_wire_matches_the_captured_sdk_query() -> None:
    # docs/imm.md#wire-protocol, captured from SDK 5.0.3 (decoded query values).
    request = MediaConvertRequest.model_validate(
        {
            "ProjectName": "proj",
            "Notification": {"MNS": {"TopicName": "topicA"}},
            "Sources": [{"StartTime": 1.5, "URI": "oss://bkt/in/a b.mp4"}],
            "Tags": {"k1": "v1", "n": 2},
            "Targets": [
                {
                    "Container": "mp4",
                    "URI": "oss://bkt/out/{barename}.{autoext}",
                    "Image": {
                        "Snapshots": [
                            {
                                "Format": "jpg",
                                "Interval": 5.0,
                                "Number": 3,
                                "URI": "oss://bkt/snap/{index}.jpg",
                            }
                        ]
                    },
                    "Video": {"TranscodeVideo": {"Codec": "h264", "Resolution": "640x360"}},
                }
            ],
            "UserData": '{"x":1}',
        }
    )
    assert request.to_wire() == {
        "Notification": '{"MNS":{"TopicName":"topicA"}}',
        "ProjectName": "proj",
        "Sources": '[{"StartTime":1.5,"Subtitles":[],"URI":"oss://bkt/in/a b.mp4"}]',
        "Tags": '{"k1":"v1","n":2}',
        "Targets": '[{"Container":"mp4","Image":{"Animations":[],"Snapshots":[{"Format":"jpg","Interval":5.0,'
        '"Number":3,"URI":"oss://bkt/snap/{index}.jpg"}],"Sprites":[]},"URI":"oss://bkt/out/{barename}.{autoext}",'
        '"Video":{"TranscodeVideo":{"Codec":"h264","Resolution":"640x360"}}}]',
        "UserData": '{"x":1}',
    }


class _Recorder(BaseHTTPRequestHandler):
    """Loopback stand-in for IMM: records what the SDK sends and answers like a Create*Task."""

    captured: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        self.captured.append(
            {
                "action": self.headers["x-acs-action"],
                "query": dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True)),
                "body": dict(parse_qsl(body, keep_blank_values=True)),
            }
        )
        reply = json.dumps({"RequestId": "R", "TaskId": "T", "EventId": "E"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", _Recorder.captured
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


SDK_METHODS = {
    "CreateMediaConvertTask": "create_media_convert_task",
    "CreateOfficeConversionTask": "create_office_conversion_task",
    "CreateFileCompressionTask": "create_file_compression_task",
    "CreateFileUncompressionTask": "create_file_uncompression_task",
    "CreateArchiveFileInspectionTask": "create_archive_file_inspection_task",
    "CreateImageSplicingTask": "create_image_splicing_task",
    "CreateImageToPDFTask": "create_image_to_pdftask",
}


def _send_with_official_sdk(endpoint: str, request: TaskRequest) -> None:
    from alibabacloud_imm20200930 import models as imm_models
    from alibabacloud_imm20200930.client import Client
    from alibabacloud_tea_openapi import models as open_api_models
    from darabonba.runtime import RuntimeOptions

    client = Client(
        open_api_models.Config(
            access_key_id="test",
            access_key_secret="test",
            endpoint=endpoint,
            protocol="http",
            region_id="cn-hangzhou",
        )
    )
    sdk_request = getattr(imm_models, f"{request.ACTION}Request")().from_map(
        request.model_dump(exclude_none=True)
    )
    response = getattr(client, f"{SDK_METHODS[request.ACTION]}_with_options")(sdk_request, RuntimeOptions())
    assert response.body.task_id == "T"


@pytest.mark.parametrize("build", SAMPLES, ids=lambda build: build.__name__)
def test_to_wire_is_what_the_official_sdk_sends(
    build: Any, recorder: tuple[str, list[dict[str, Any]]]
) -> None:
    endpoint, captured = recorder
    request: TaskRequest = build()
    captured.clear()
    _send_with_official_sdk(endpoint, request)
    (sent,) = captured
    params = {**sent["query"], **sent["body"]}
    assert sent["action"] == request.ACTION
    # An SDK request built with from_map has every list initialised to [], so it also sends the lists the
    # caller left out as "[]"; to_wire leaves them out, and from_wire reads both alike.
    assert {name: text for name, text in params.items() if text != "[]"} == request.to_wire()
    assert type(request).from_wire(params) == request


def test_office_sources_travel_in_the_form_body(recorder: tuple[str, list[dict[str, Any]]]) -> None:
    endpoint, captured = recorder
    captured.clear()
    _send_with_official_sdk(endpoint, office_images_to_pdf())
    assert set(captured[0]["body"]) == {"Sources"}


def test_registry_actions_and_tags_follow_the_reference() -> None:
    assert {name: cls.ACTION for name, cls in TASK_TYPES.items()} == {
        "MediaConvert": "CreateMediaConvertTask",
        "OfficeConversion": "CreateOfficeConversionTask",
        "FileCompression": "CreateFileCompressionTask",
        "FileUncompression": "CreateFileUncompressionTask",
        "ArchiveFileInspection": "CreateArchiveFileInspectionTask",
        "ImageSplicing": "CreateImageSplicingTask",
        "ImageToPDF": "CreateImageToPDFTask",
    }
    assert {name for name, cls in TASK_TYPES.items() if not cls.accepts_tags()} == {
        "FileCompression",
        "FileUncompression",
        "ArchiveFileInspection",
    }
    assert {cls.ACTION: cls for cls in TASK_TYPES.values()} == TASK_REQUESTS_BY_ACTION


def _sources(request: TaskRequest) -> list[str]:
    return [field.uri for field in type(request).source_fields(request.model_dump(exclude_none=True))]


def _targets(request: TaskRequest) -> list[tuple[str, str, str]]:
    fields = type(request).target_fields(request.model_dump(exclude_none=True))
    return [(field.field, field.template, field.shape.layout) for field in fields]


def test_sources_and_targets_are_found_generically() -> None:
    request = media_convert()
    assert _sources(request) == ["oss://in-bucket/in/my clip+1.mp4", "oss://in-bucket/in/music.mp3"]
    assert _targets(request) == [
        ("Targets[0].URI", "oss://out-bucket/{dirname}/{barename}-{resolution}.{autoext}", "media"),
        ("Targets[0].Subtitle.ExtractSubtitle.URI", "oss://out-bucket/subs/a", "subtitle"),
        ("Targets[1].Image.Snapshots[0].URI", "oss://out-bucket/snap/{index}.jpg", "image"),
        ("Targets[1].Image.Sprites[0].URI", "oss://out-bucket/sprite/{index}.png", "image"),
        ("Targets[1].Image.Animations[0].URI", "oss://out-bucket/anim.gif", "image"),
        ("TargetGroups[0].URI", "oss://out-bucket/hls/master.m3u8", "file"),
        ("TargetGroups[0].Targets[0].URI", "oss://out-bucket/hls/360p", "media"),
    ]
    assert _sources(office_conversion()) == ["oss://in-bucket/docs/报告 v2.docx"]
    assert _targets(office_conversion()) == [
        ("TargetURI", "oss://out-bucket/pages/{barename}/{index}.{autoext}", "file")
    ]
    assert _sources(office_images_to_pdf()) == ["oss://in-bucket/scans/1.jpg", "oss://in-bucket/scans/2.jpg"]
    assert _targets(office_images_to_pdf()) == [("TargetURIPrefix", "oss://out-bucket/pdf/", "folder")]
    compression = type(file_compression()).source_fields(file_compression().model_dump(exclude_none=True))
    assert [(field.field, field.uri, field.folder) for field in compression] == [
        ("Sources[0].URI", "oss://out-bucket/pages/report/", True),
        ("Sources[1].URI", "oss://in-bucket/docs/report.docx", True),
    ]
    assert _targets(file_compression()) == [("TargetURI", "oss://out-bucket/bundles/report.zip", "file")]
    assert _sources(file_uncompression()) == ["oss://in-bucket/in/archive.zip"]
    assert _targets(file_uncompression()) == [("TargetURI", "oss://out-bucket/unzipped/", "folder")]
    assert _targets(archive_inspection()) == []
    assert _sources(image_splicing()) == ["oss://in-bucket/a.jpg", "oss://in-bucket/b.png"]
    assert _targets(image_to_pdf()) == [("TargetURI", "oss://out-bucket/book.pdf", "file")]


def wire_with(request: TaskRequest, **changes: str) -> dict[str, str]:
    return {**request.to_wire(), **changes}


def error_of(cls: type[TaskRequest], params: dict[str, str]) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        cls.from_wire(params)
    assert caught.value.kind == f"{cls.ACTION} request"
    return caught.value


def test_a_nested_member_of_the_wrong_type_is_named() -> None:
    targets = json.loads(media_convert().to_wire()["Targets"])
    targets[0]["Video"]["TranscodeVideo"]["Codec"] = 264
    error = error_of(MediaConvertRequest, wire_with(media_convert(), Targets=json.dumps(targets)))
    assert error.field == "Targets.0.Video.TranscodeVideo.Codec"
    assert "valid string" in error.problem


def test_json_members_keep_their_json_types() -> None:
    targets = json.loads(media_convert().to_wire()["Targets"])
    targets[1]["Image"]["Snapshots"][0]["Number"] = "3"
    error = error_of(MediaConvertRequest, wire_with(media_convert(), Targets=json.dumps(targets)))
    assert error.field == "Targets.1.Image.Snapshots.0.Number"


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"Target": "[]"}, "Target", "unknown parameter; CreateMediaConvertTask accepts AlignmentIndex"),
        ({"Targets": "[{"}, "Targets", "not valid JSON"),
        ({"AlignmentIndex": "first"}, "AlignmentIndex", "expected an integer"),
        ({"Tags": '["a"]'}, "Tags", "valid dictionary"),
        ({"Sources": '[{"StartTime": 1}]'}, "Sources.0.URI", "field required"),
        ({"Sources": "[]"}, "Sources", "field required"),
        ({"Targets": '[{"Container": "mp4"}]'}, "Targets.0", "Container is set but URI is not"),
        (
            {"Targets": '[{"Image": {"Snapshots": [{"URI": "oss://b/x.jpg"}]}}]'},
            "Targets.0.Image.Snapshots.0.Format",
            "field required",
        ),
        ({"UserData": "x" * (USER_DATA_MAX_BYTES + 1)}, "UserData", "at most 2048"),
        ({"Notification": '{"MNS": {"Topic": "t"}}'}, "Notification.MNS.Topic", "unknown field"),
    ],
)
def test_bad_media_convert_parameters_are_named(changes: dict[str, str], field: str, problem: str) -> None:
    error = error_of(MediaConvertRequest, wire_with(media_convert(), **changes))
    assert error.field == field
    assert problem in error.problem


def test_a_missing_required_parameter_is_named() -> None:
    params = office_conversion().to_wire()
    del params["TargetType"]
    assert error_of(OfficeConversionRequest, params).field == "TargetType"
    del params["ProjectName"]
    assert "field required" in error_of(OfficeConversionRequest, params).problem


def test_top_level_booleans_are_read_case_insensitively_and_strictly() -> None:
    for text, value in (("True", True), ("true", True), ("FALSE", False)):
        assert (
            OfficeConversionRequest.from_wire(wire_with(office_conversion(), LongPicture=text)).LongPicture
            is value
        )
    error = error_of(OfficeConversionRequest, wire_with(office_conversion(), LongPicture="yes"))
    assert (error.field, error.problem) == ("LongPicture", "expected true or false, got 'yes'")


def test_empty_lists_read_as_unset() -> None:
    request = MediaConvertRequest.from_wire(wire_with(media_convert(), Targets="[]", TargetGroups="[]"))
    assert (request.Targets, request.TargetGroups) == (None, None)
    sources = '[{"URI": "oss://b/a.mp4", "Subtitles": []}]'
    assert (
        MediaConvertRequest.from_wire(wire_with(media_convert(), Sources=sources)).Sources[0].Subtitles
        is None
    )
    assert (
        FileUncompressionRequest.from_wire(wire_with(file_uncompression(), SelectedFiles="[]")).SelectedFiles
        is None
    )


def test_tag_values_are_any_json_and_kept_as_given() -> None:
    tags = '{"list": [], "obj": {"a": 1.5}, "flag": false, "none": null}'
    request = MediaConvertRequest.from_wire(wire_with(media_convert(), Tags=tags))
    assert request.Tags == {"list": [], "obj": {"a": 1.5}, "flag": False, "none": None}


def test_a_legacy_mns_endpoint_is_accepted_and_ignored() -> None:
    notification = '{"MNS": {"Endpoint": "http://1.mns.cn-hangzhou.aliyuncs.com", "TopicName": "t"}}'
    request = FileUncompressionRequest.from_wire(wire_with(file_uncompression(), Notification=notification))
    assert request.Notification == NotificationSpec(MNS=MnsSpec(TopicName="t"))
    assert request.to_wire()["Notification"] == '{"MNS":{"TopicName":"t"}}'


@pytest.mark.parametrize(
    ("cls", "params", "problem"),
    [
        (
            OfficeConversionRequest,
            {"ProjectName": "p", "SourceURI": "oss://b/a.docx", "TargetType": "png"},
            "exactly one of TargetURI",
        ),
        (
            OfficeConversionRequest,
            {"ProjectName": "p", "TargetType": "pdf", "TargetURI": "oss://b/a.pdf"},
            "give SourceURI",
        ),
        (
            FileCompressionRequest,
            {"ProjectName": "p", "TargetURI": "oss://b/a.zip"},
            "exactly one of Sources",
        ),
        (
            FileUncompressionRequest,
            {"ProjectName": "p", "Tags": '{"a": "b"}', "SourceURI": "oss://b/a.zip"},
            "unknown parameter",
        ),
        (ImageToPdfRequest, {"ProjectName": "p", "Sources": '[{"URI": "oss://b/a.jpg"}]'}, "field required"),
    ],
)
def test_cross_field_rules(cls: type[TaskRequest], params: dict[str, str], problem: str) -> None:
    assert problem in error_of(cls, params).problem


def test_more_compression_sources_than_imm_takes_point_to_the_manifest() -> None:
    sources = json.dumps([{"URI": f"oss://b-1/in/{n}.jpg"} for n in range(101)])
    problem = error_of(
        FileCompressionRequest, {"ProjectName": "p", "TargetURI": "oss://b-1/out.zip", "Sources": sources}
    )
    assert "at most 100" in str(problem) and "SourceManifestURI" in str(problem)


def test_every_task_type_immflow_starts_runs_in_the_local_imm() -> None:
    from localcloud.imm.engine import PROCESSORS
    from localcloud.imm.service import LOCAL_TASKS

    assert set(PROCESSORS) == set(TASK_TYPES)
    assert LOCAL_TASKS == TASK_REQUESTS_BY_ACTION

"""The pipeline language (immflow.pipeline): schema, matching, follow-ups, the loop guard, trigger filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from immflow.ossuri import OssUri
from immflow.pipeline import (
    FollowUp,
    Match,
    Pipeline,
    TriggerFilter,
    UnknownTaskError,
)
from immflow.pipeline_file import load_pipeline
from immflow.validation import PipelineError, Report
from pydantic import ValidationError

#: What ObjectCreated:* means in a trigger: every finished object, written out (no multipart steps).
FINISHED = (
    "oss:ObjectCreated:AppendObject",
    "oss:ObjectCreated:CompleteMultipartUpload",
    "oss:ObjectCreated:CopyObject",
    "oss:ObjectCreated:PostObject",
    "oss:ObjectCreated:PutObject",
    "oss:ObjectCreated:PutSymlink",
)

ROOT = Path(__file__).resolve().parents[2]
PDF = {"name": "pdf", "type": "ImageToPDF", "params": {"TargetURI": "oss://{bucket}/processed/{key}.pdf"}}


def _rule(name: str = "r", tasks: list[dict[str, Any]] | None = None, **match: Any) -> dict[str, Any]:
    return {"name": name, "match": match, "tasks": tasks or [PDF]}


def _pipeline(*rules: dict[str, Any]) -> Pipeline:
    return Pipeline.model_validate({"version": 1, "rules": list(rules)})


# Matching


def test_bucket_prefix_and_defaults() -> None:
    match = Match(bucket="media-in", prefix="uploads/")
    assert match.accepts("media-in", "uploads/a.mp4", "ObjectCreated:PutObject")
    assert not match.accepts("media-out", "uploads/a.mp4", "ObjectCreated:PutObject")
    assert not match.accepts("media-in", "other/a.mp4", "ObjectCreated:PutObject")
    assert not match.accepts("media-in", "Uploads/a.mp4", "ObjectCreated:PutObject")  # prefixes are literal
    anywhere = Match()
    assert anywhere.accepts("any-bucket", "a.bin", "ObjectCreated:CompleteMultipartUpload")
    assert not anywhere.accepts("any-bucket", "a.bin", "ObjectRemoved:DeleteObject")


def test_suffixes_are_case_insensitive() -> None:
    match = Match(suffixes=[".jpg", ".PNG"])
    for key in ("a.jpg", "a.JPG", "a.Jpg", "a.png", "dir/b.PnG"):
        assert match.accepts("b-1", key, "ObjectCreated:PutObject"), key
    for key in ("a.jpeg", "a.jpg.txt", "jpg"):
        assert not match.accepts("b-1", key, "ObjectCreated:PutObject"), key


@pytest.mark.parametrize(
    ("events", "event", "expected"),
    [
        (["ObjectCreated:*"], "ObjectCreated:PutObject", True),
        (["ObjectCreated:*"], "oss:ObjectCreated:PostObject", True),
        (["oss:ObjectCreated:PutObject"], "ObjectCreated:PutObject", True),
        (["oss:ObjectCreated:PutObject"], "ObjectCreated:PostObject", False),
        (["ObjectRemoved:*"], "ObjectCreated:PutObject", False),
        (["ObjectRemoved:*"], "ObjectRemoved:DeleteObjects", True),
        (["*"], "ObjectModified:UpdateObjectMeta", True),
        (["Object*:Delete*"], "ObjectRemoved:DeleteObject", True),
        (["ObjectCreated:Put*", "ObjectCreated:Copy*"], "ObjectCreated:CopyObject", True),
    ],
)
def test_event_wildcards(events: list[str], event: str, expected: bool) -> None:
    assert Match(events=events).accepts("b-1", "k", event) is expected


def test_event_names_are_stored_without_the_oss_prefix() -> None:
    assert Match(events=["oss:ObjectCreated:*"]).events == ["ObjectCreated:*"]


@pytest.mark.parametrize("events", [["ObjectCreated:Put"], ["objectcreated:*"], ["ObjectReplication:*"], []])
def test_events_no_trigger_delivers_are_refused(events: list[str]) -> None:
    with pytest.raises(ValidationError):
        Match(events=events)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("video/mp4", True),
        ("VIDEO/QuickTime", True),
        ("image/png", True),
        ("image/jpeg", False),
        ("application/pdf; charset=binary", False),
        ("application/zip", True),
        (None, True),  # objectMeta.mimeType is optional in the event: not refused for its absence
        ("", True),
    ],
)
def test_content_types(content_type: str | None, expected: bool) -> None:
    match = Match(content_types=["video/*", "image/PNG", "application/zip"])
    assert match.accepts("b-1", "k", "ObjectCreated:PutObject", content_type=content_type) is expected


@pytest.mark.parametrize("bad", ["video", "video/", "*", "video/**"])
def test_bad_content_types_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="type/subtype"):
        Match(content_types=[bad])


def test_size_bounds_are_inclusive() -> None:
    match = Match(min_size=10, max_size=20)
    accepts = [size for size in (9, 10, 20, 21) if match.accepts("b-1", "k", "ObjectCreated:PutObject", size)]
    assert accepts == [10, 20]
    assert match.accepts("b-1", "k", "ObjectCreated:PutObject", None)
    with pytest.raises(ValidationError, match="min_size 5 is larger than max_size 4"):
        Match(min_size=5, max_size=4)
    with pytest.raises(ValidationError):
        Match(min_size=-1)


def test_bad_bucket_prefix_and_suffix_are_refused() -> None:
    with pytest.raises(ValidationError, match="bucket name"):
        Match(bucket="Media_In")
    with pytest.raises(ValidationError, match="must not start with '/'"):
        Match(prefix="/uploads/")
    with pytest.raises(ValidationError, match="must not be empty"):
        Match(suffixes=[""])
    with pytest.raises(ValidationError, match="contains '/'"):
        Match(suffixes=["a/.jpg"])


def test_pipeline_match_returns_every_matching_rule_in_file_order() -> None:
    pipeline = _pipeline(
        _rule("all-videos", prefix="uploads/", suffixes=[".mp4"]),
        _rule("images", prefix="uploads/images/"),
        _rule("big-videos", prefix="uploads/videos/", min_size=1000),
    )
    names = [
        rule.name
        for rule in pipeline.match("b-1", "uploads/videos/a.MP4", "oss:ObjectCreated:PutObject", 5000)
    ]
    assert names == ["all-videos", "big-videos"]
    assert [r.name for r in pipeline.match("b-1", "uploads/videos/a.mp4", "ObjectCreated:PutObject", 10)] == [
        "all-videos"
    ]
    assert pipeline.match("b-1", "elsewhere/a.mp4", "ObjectCreated:PutObject", 10) == []


# Schema


def test_unknown_keys_are_refused_everywhere() -> None:
    for bad in (
        {"version": 1, "rules": [_rule()], "extra": 1},
        {"version": 1, "rules": [{**_rule(), "extra": 1}]},
        {"version": 1, "rules": [_rule(sufixes=[".mp4"])]},
        {"version": 1, "rules": [_rule(tasks=[{**PDF, "extra": 1}])]},
    ):
        with pytest.raises(ValidationError, match="extra"):
            Pipeline.model_validate(bad)


@pytest.mark.parametrize("name", ["Videos", "-videos", "vid_eos", "", "a" * 64])
def test_rule_names(name: str) -> None:
    with pytest.raises(ValidationError):
        _pipeline(_rule(name))


def test_version_must_be_1_and_there_must_be_rules() -> None:
    with pytest.raises(ValidationError):
        Pipeline.model_validate({"version": 2, "rules": [_rule()]})
    with pytest.raises(ValidationError):
        Pipeline.model_validate({"version": 1, "rules": []})


def test_unknown_task_type_names_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"did you mean 'MediaConvert'.*OfficeConversion"):
        _pipeline(_rule(tasks=[{"name": "t", "type": "MediaConvrt"}]))


def test_follow_up_key_on_survives_a_yaml_1_1_loader() -> None:
    loaded = yaml.safe_load("after: web\non: Succeeded\ntasks: []\n")
    assert "on" not in loaded and loaded[True] == "Succeeded"  # YAML 1.1 reads the key `on` as a boolean
    follow_up = FollowUp.model_validate({**loaded, "tasks": [PDF]})
    assert follow_up.on == "Succeeded"
    assert follow_up.for_each == "output"


# Tasks, follow-ups and target fields


def _example() -> Pipeline:
    return load_pipeline(ROOT / "pipeline.yaml")


def test_the_example_pipeline_loads() -> None:
    pipeline = _example()
    assert [rule.name for rule in pipeline.rules] == ["videos", "documents", "images", "archives"]


def test_task_and_follow_ups() -> None:
    pipeline = _example()
    assert pipeline.task("videos", "sprites").type == "MediaConvert"
    (follow_up,) = pipeline.follow_ups("videos", "web", "Succeeded")
    assert [task.name for task in follow_up.tasks] == ["sprites"]
    assert follow_up.keeps(OssUri("b-1", "processed/x/web.MP4"))
    assert not follow_up.keeps(OssUri("b-1", "processed/x/poster-1.jpg"))
    assert pipeline.follow_ups("videos", "web", "Failed") == []
    assert pipeline.follow_ups("videos", "sprites", "Succeeded") == []
    assert pipeline.follow_ups("archives", "unzip", "Succeeded")[0].for_each == "parent"


def test_unknown_rule_or_task_names_what_exists() -> None:
    pipeline = _example()
    with pytest.raises(UnknownTaskError, match="videos, documents, images, archives"):
        pipeline.task("audio", "web")
    with pytest.raises(UnknownTaskError, match="web, sprites"):
        pipeline.follow_ups("videos", "thumbs", "Succeeded")


def test_target_templates_by_imm_field() -> None:
    task = Pipeline.model_validate(
        {
            "version": 1,
            "rules": [
                _rule(
                    tasks=[
                        {
                            "name": "all",
                            "type": "MediaConvert",
                            "params": {
                                "Targets": [
                                    {
                                        "Container": "ts",
                                        "URI": "oss://{bucket}/a/{key}",
                                        "Segment": {"Format": "HLS"},
                                        "Subtitle": {
                                            "ExtractSubtitle": {"Format": "srt", "URI": "oss://b-1/s/{key}"}
                                        },
                                    },
                                    {
                                        "Image": {
                                            "Snapshots": [
                                                {"URI": "oss://{bucket}/sn/{key}", "Format": "jpg"}
                                            ],
                                            "Sprites": [{"URI": "oss://{bucket}/sp/{key}", "Format": "png"}],
                                            "Animations": [
                                                {"URI": "oss://{bucket}/an/{key}.gif", "Format": "gif"}
                                            ],
                                        }
                                    },
                                ],
                                "TargetGroups": [
                                    {
                                        "URI": "oss://{bucket}/g/{key}.m3u8",
                                        "Targets": [{"URI": "oss://{bucket}/g/v"}],
                                    }
                                ],
                            },
                        }
                    ]
                )
            ],
        }
    ).task("r", "all")
    fields = {field.field: field for field in task.target_fields()}
    assert list(fields) == [
        "Targets[0].URI",
        "Targets[0].Subtitle.ExtractSubtitle.URI",
        "Targets[1].Image.Snapshots[0].URI",
        "Targets[1].Image.Sprites[0].URI",
        "Targets[1].Image.Animations[0].URI",
        "TargetGroups[0].URI",
        "TargetGroups[0].Targets[0].URI",
    ]
    assert fields["Targets[0].URI"].shape.segment_format == "hls"
    assert fields["Targets[0].URI"].shape.container == "ts"
    assert fields["Targets[1].Image.Sprites[0].URI"].shape.image_format == "png"
    assert fields["TargetGroups[0].Targets[0].URI"].shape.segment_format == "hls"
    assert task.target_templates()[0] == "oss://{bucket}/a/{key}"


def test_folder_targets() -> None:
    pipeline = _example()
    (unzip,) = pipeline.task("archives", "unzip").target_fields()
    assert unzip.shape.layout == "folder"
    prefix = Pipeline.model_validate(
        {
            "version": 1,
            "rules": [
                _rule(
                    tasks=[
                        {
                            "name": "pages",
                            "type": "OfficeConversion",
                            "params": {"TargetType": "png", "TargetURIPrefix": "oss://{bucket}/p/{key}/"},
                        }
                    ]
                )
            ],
        }
    ).task("r", "pages")
    assert [f.shape.layout for f in prefix.target_fields()] == ["folder"]
    assert pipeline.task("archives", "inspect").target_fields() == []


def test_with_sources_fills_the_source_fields() -> None:
    pipeline = _example()
    web = pipeline.task("videos", "web")
    assert web.with_sources(["oss://b-1/u/a.mp4"])["Sources"] == [{"URI": "oss://b-1/u/a.mp4"}]
    pdf = pipeline.task("documents", "pdf")
    params = pdf.with_sources(["oss://b-1/u/a.docx", "oss://b-1/u/b.docx"])
    assert params["SourceURI"] == "oss://b-1/u/a.docx"
    assert params["TargetType"] == "pdf"
    assert "SourceURI" not in pdf.params
    rule = Pipeline.model_validate(
        {"version": 1, "rules": [_rule(tasks=[{**PDF, "sources": {"Rotate": 90}}])]}
    ).task("r", "pdf")
    assert rule.with_sources(["oss://b-1/1.jpg", "oss://b-1/2.jpg"])["Sources"] == [
        {"Rotate": 90, "URI": "oss://b-1/1.jpg"},
        {"Rotate": 90, "URI": "oss://b-1/2.jpg"},
    ]
    with pytest.raises(ValueError, match="at least one source"):
        rule.with_sources([])


def test_task_tags_override_rule_tags() -> None:
    pipeline = _pipeline(
        {
            **_rule(tasks=[{**PDF, "tags": {"profile": "print", "n": 2}}]),
            "tags": {"profile": "web", "p": True},
        }
    )
    rule = pipeline.rule("r")
    assert rule.task_tags(rule.tasks[0]) == {"profile": "print", "p": True, "n": 2}


# The loop guard


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("processed/uploads/videos/clip/web.mp4", True),
        ("processed/uploads/videos/clip/poster-2.jpg", True),
        ("processed/uploads/videos/clip/sprites-1.jpg", True),
        ("processed/uploads/docs/report/report.pdf", True),
        ("processed/uploads/docs/report/pages/page-3.png", True),
        ("processed/uploads/images/cat/preview.jpg", True),
        ("processed/uploads/archives/holiday/deep/a.txt", True),
        ("processed/uploads/archives/holiday-contact-sheet.jpg", True),
        ("uploads/videos/clip.mp4", False),
        ("uploads/images/cat.jpg", False),
        ("processed/clip.mp4", False),
        ("processed/web.mp4", False),
        ("elsewhere/web.mp4", False),
    ],
)
def test_is_pipeline_output(key: str, expected: bool) -> None:
    # Every variable is a wildcard: the unzip folder processed/{dirname}/{barename}/ alone covers
    # every key at least three folders deep under processed/.
    assert _example().is_pipeline_output("media-in", key) is expected


def test_is_pipeline_output_in_a_fixed_bucket_and_with_tags() -> None:
    pipeline = _pipeline(
        {
            **_rule(
                tasks=[{**PDF, "params": {"TargetURI": "oss://results-bucket/{tags.profile}/{key}.pdf"}}]
            ),
            "tags": {"profile": "print"},
        }
    )
    assert pipeline.is_pipeline_output("results-bucket", "print/uploads/a.jpg.pdf")
    assert not pipeline.is_pipeline_output("other-bucket", "print/uploads/a.jpg.pdf")
    assert not pipeline.is_pipeline_output("results-bucket", "web/uploads/a.jpg.pdf")


# Trigger filters


def test_trigger_filters_of_the_example() -> None:
    assert _example().trigger_filters() == [
        TriggerFilter(None, FINISHED, "uploads/videos/", ""),
        TriggerFilter(None, FINISHED, "uploads/docs/", ""),
        TriggerFilter(None, FINISHED, "uploads/images/", ""),
        TriggerFilter(None, FINISHED, "uploads/archives/", ""),
    ]


def test_trigger_filters_are_one_per_prefix_whatever_the_suffixes() -> None:
    pipeline = _pipeline(_rule(prefix="in/", suffixes=[".jpg", ".png", ".JPG"]))
    assert pipeline.trigger_filters() == [TriggerFilter(None, FINISHED, "in/", "")]


def test_nested_prefixes_with_common_events_share_one_trigger() -> None:
    pipeline = _pipeline(
        _rule("a", prefix="uploads/", suffixes=[".mp4"]),
        _rule("b", prefix="uploads/videos/", suffixes=[".mov"], events=["ObjectCreated:PutObject"]),
        _rule("c", prefix="other/"),
    )
    assert pipeline.trigger_filters() == [
        TriggerFilter(None, FINISHED, "uploads/", ""),
        TriggerFilter(None, FINISHED, "other/", ""),
    ]


def test_nested_prefixes_with_disjoint_events_stay_apart() -> None:
    pipeline = _pipeline(
        _rule("created", prefix="uploads/"),
        _rule("removed", prefix="uploads/videos/", events=["ObjectRemoved:DeleteObject"]),
    )
    assert pipeline.trigger_filters() == [
        TriggerFilter(None, FINISHED, "uploads/", ""),
        TriggerFilter(None, ("oss:ObjectRemoved:DeleteObject",), "uploads/videos/", ""),
    ]


def test_merging_unions_the_events() -> None:
    pipeline = _pipeline(
        _rule("a", prefix="u/", events=["ObjectCreated:PutObject"]),
        _rule("b", prefix="u/x/", events=["ObjectCreated:PutObject", "ObjectRemoved:*"]),
    )
    (only,) = pipeline.trigger_filters()
    assert only == TriggerFilter(
        None,
        (
            "oss:ObjectCreated:PutObject",
            "oss:ObjectRemoved:AbortMultipartUpload",
            "oss:ObjectRemoved:DeleteObject",
            "oss:ObjectRemoved:DeleteObjects",
        ),
        "u/",
        "",
    )


def test_triggers_per_bucket_and_the_default_bucket() -> None:
    pipeline = _pipeline(_rule("any", prefix="u/"), _rule("named", prefix="u/x/", bucket="media-in"))
    assert pipeline.trigger_filters() == [
        TriggerFilter(None, FINISHED, "u/", ""),
        TriggerFilter("media-in", FINISHED, "u/x/", ""),
    ]
    assert pipeline.trigger_filters(default_bucket="media-in") == [
        TriggerFilter("media-in", FINISHED, "u/", "")
    ]
    assert pipeline.trigger_filters(default_bucket="other-bucket") == [
        TriggerFilter("other-bucket", FINISHED, "u/", ""),
        TriggerFilter("media-in", FINISHED, "u/x/", ""),
    ]


def test_trigger_filters_never_overlap() -> None:
    pipeline = _pipeline(
        _rule("a", prefix="a/b/"),
        _rule("b", prefix="c/"),
        _rule("c", prefix="a/b/c/", events=["ObjectRemoved:*"]),
        _rule("d", prefix="a/", events=["ObjectRemoved:DeleteObject", "ObjectCreated:CopyObject"]),
    )
    filters = pipeline.trigger_filters()
    for i, first in enumerate(filters):
        for second in filters[i + 1 :]:
            nested = first.prefix.startswith(second.prefix) or second.prefix.startswith(first.prefix)
            assert not (nested and set(first.events) & set(second.events)), (first, second)
    assert [f.prefix for f in filters] == ["a/", "c/"]


# Loading


def test_load_pipeline_refuses_a_file_with_errors(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "version: 1\nrules:\n  - name: r\n    match: {prefix: in/}\n    tasks: [{name: t, type: X}]\n"
    )
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    assert "pipeline.yaml:5:" in str(caught.value)
    assert "unknown task type 'X'" in str(caught.value)
    assert caught.value.problems[0].rule == "r"


def test_wildcards_never_match_the_steps_of_a_multipart_upload() -> None:
    match = Match.model_validate({"events": ["ObjectCreated:*"]})
    assert match.accepts("b-1", "a.mp4", "ObjectCreated:CompleteMultipartUpload")
    for step in ("InitiateMultipartUpload", "UploadPart", "UploadPartCopy"):
        assert not match.accepts("b-1", "a.mp4", f"ObjectCreated:{step}"), step
        assert f"ObjectCreated:{step}" not in match.trigger_events()


def test_naming_a_multipart_step_is_refused_with_the_event_to_use() -> None:
    with pytest.raises(ValueError, match="CompleteMultipartUpload"):
        Match.model_validate({"events": ["oss:ObjectCreated:UploadPart"]})


def test_the_local_oss_accepts_every_event_a_rule_can_put_in_a_trigger() -> None:
    from immflow.pipeline import TRIGGER_EVENT_NAMES

    from localcloud.oss.events import EVENT_NAMES

    assert set(TRIGGER_EVENT_NAMES) == set(EVENT_NAMES)


def test_the_checked_form_is_taken_only_for_the_yaml_it_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import immflow.validation
    from immflow.pipeline_file import CHECKED_SUFFIX, write_checked

    source = tmp_path / "pipeline.yaml"
    source.write_text((Path(__file__).parents[2] / "pipeline.yaml").read_text())
    checked = tmp_path / ("pipeline.yaml" + CHECKED_SUFFIX)
    written = write_checked(source, checked)
    validations: list[object] = []
    real = immflow.validation.validate_file

    def validate_file(path: str | Path) -> Report:
        validations.append(path)
        return real(path)

    monkeypatch.setattr(immflow.validation, "validate_file", validate_file)
    assert load_pipeline(source) == written
    assert validations == []  # taken as it was checked
    # The YAML is the source of truth: edited after packaging, it is validated again.
    depth = written.max_depth + 1
    source.write_text(source.read_text().replace(f"max_depth: {written.max_depth}", f"max_depth: {depth}", 1))
    assert load_pipeline(source).max_depth == depth
    assert validations == [source]
    # An unreadable checked form is ignored too.
    checked.write_bytes(b"not a pickle")
    assert load_pipeline(source).max_depth == depth
    assert len(validations) == 2


def test_packaging_refuses_a_pipeline_with_errors(tmp_path: Path) -> None:
    from immflow.pipeline_file import write_checked

    source = tmp_path / "pipeline.yaml"
    source.write_text((Path(__file__).parents[1] / "pipelines" / "unknown-follow-up.yaml").read_text())
    with pytest.raises(PipelineError):
        write_checked(source, tmp_path / "pipeline.yaml.checked")
    assert not (tmp_path / "pipeline.yaml.checked").exists()

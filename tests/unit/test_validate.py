"""`immflow validate`: one bad-pipeline fixture per defect under tests/pipelines/, and the good example."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from immflow.cli import main
from immflow.validation import validate_text

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "tests" / "pipelines"


def _validate(path: Path) -> Result:
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def _fixture(name: str) -> tuple[Result, str]:
    path = PIPELINES / name
    assert path.is_file(), path
    return _validate(path), str(path)


def _problem(output: str, location: str) -> str:
    """The whole message (problem line and fix line) that starts at ``location``."""
    start = output.index(location)
    lines = output[start:].splitlines()
    message = lines[0]
    if len(lines) > 1 and lines[1].startswith("    fix: "):
        message += "\n" + lines[1]
    return message


def _assert_error(name: str, line: int, rule: str | None, field: str, *phrases: str) -> str:
    result, file = _fixture(name)
    assert result.exit_code == 1, result.output
    message = _problem(result.output, f"{file}:{line}:")
    assert ": error: " in message
    if rule is not None:
        assert f"rule {rule!r}" in message
    assert field in message
    assert "\n    fix: " in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert result.output.rstrip().endswith("not valid")
    return message


def test_the_example_pipeline_is_valid() -> None:
    result = _validate(ROOT / "pipeline.yaml")
    assert result.exit_code == 0, result.output
    assert (
        "pipeline.yaml is valid: 4 rule(s), 9 task(s): 6 started by uploads, 3 by 3 follow-up(s)"
        in result.output
    )
    assert (
        "prefix uploads/videos/  suffix (any)  events oss:ObjectCreated:AppendObject, oss:ObjectCreated:Complete"
        in result.output
    )
    assert "warning" not in result.output


def test_default_file_is_pipeline_yaml_in_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pipeline.yaml is valid")


def test_yaml_syntax_error() -> None:
    result, file = _fixture("yaml-syntax.yaml")
    assert result.exit_code == 1
    message = _problem(result.output, f"{file}:7:10:")
    assert "YAML syntax error: expected ',' or ']'" in message
    assert "(while parsing a flow sequence, line 6, column 17)" in message
    assert "fix:" in message


def test_unknown_key() -> None:
    _assert_error("unknown-key.yaml", 6, "videos", "rules[0].match.sufixes", "did you mean 'suffixes'?")


def test_wrong_type() -> None:
    _assert_error(
        "wrong-type.yaml", 7, "videos", "rules[0].match.max_size", "'two gigabytes'", "whole number"
    )


def test_unknown_task_type() -> None:
    _assert_error(
        "unknown-task-type.yaml",
        8,
        "documents",
        "rules[0].tasks[0].type",
        "'OfficeConvert'",
        "OfficeConversion",
    )


def test_unknown_parameter() -> None:
    _assert_error(
        "unknown-parameter.yaml",
        16,
        "videos",
        "rules[0].tasks[0].params.Targets[0].Video.TranscodeVideo.Resolutoin",
        "did you mean 'Resolution'?",
    )


def test_unknown_template_variable() -> None:
    _assert_error(
        "unknown-variable.yaml",
        10,
        "images",
        "rules[0].tasks[0].params.TargetURI",
        "{barname}",
        "write {barename}",
    )


def test_variable_the_task_type_does_not_provide() -> None:
    _assert_error(
        "variable-not-provided.yaml",
        10,
        "images",
        "rules[0].tasks[0].params.TargetURI",
        "{index} is only provided by MediaConvert and OfficeConversion tasks, not ImageToPDF",
    )


def test_tag_the_task_does_not_set() -> None:
    _assert_error(
        "missing-tag.yaml", 12, "images", "rules[0].tasks[0].params.TargetURI", "{tags.profile}", "`tags:`"
    )


def test_tags_resolve_for_task_types_that_send_no_tags_to_imm() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: archives
    match: {prefix: uploads/archives/}
    tags: {pipeline: archives}
    tasks:
      - name: unzip
        type: FileUncompression
        tags: {kind: zip}
        params: {TargetURI: "oss://{bucket}/processed/{tags.pipeline}/{tags.kind}/{barename}/"}
"""
    )
    assert report.problems == []


def test_output_that_a_rule_takes_as_a_new_upload() -> None:
    message = _assert_error(
        "output-loop.yaml",
        12,
        "images",
        "rules[0].tasks[0].params.TargetURI",
        "oss://example-bucket/uploads/images/example.jpg",
        "oss://example-bucket/uploads/images/example-preview.jpg",
        "rule 'images' takes that as a new upload",
        "processed/",
    )
    assert message.count("error:") == 1


def test_loops_through_follow_ups_and_across_rules_are_found() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: videos
    match: {prefix: in/videos/, suffixes: [.mp4]}
    tasks:
      - name: web
        type: MediaConvert
        params:
          Targets: [{Container: mp4, URI: "oss://{bucket}/out/{barename}/web"}]
    then:
      - after: web
        on: Succeeded
        tasks:
          - name: posters
            type: MediaConvert
            params:
              Targets: [{Image: {Snapshots: [{URI: "oss://{bucket}/in/images/{barename}", Format: jpg}]}}]
  - name: images
    match: {prefix: in/images/, suffixes: [.JPG]}
    tasks:
      - name: pdf
        type: ImageToPDF
        params: {TargetURI: "oss://{bucket}/out/{key}.pdf"}
""",
        "loops.yaml",
    )
    (error,) = report.errors
    assert error.path == (
        "rules",
        0,
        "then",
        0,
        "tasks",
        0,
        "params",
        "Targets",
        0,
        "Image",
        "Snapshots",
        0,
        "URI",
    )
    assert error.line == 18
    assert "in/images/web_0_1.jpg" in error.message
    assert "through oss://example-bucket/out/example/web.mp4" in error.message
    assert "rule 'images'" in error.message


def test_outputs_that_no_rule_accepts_are_not_loops() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: videos
    match: {prefix: in/, suffixes: [.mp4]}
    tasks:
      - name: posters
        type: MediaConvert
        params:
          Targets: [{Image: {Snapshots: [{URI: "oss://{bucket}/in/{barename}-{index}.jpg", Format: jpg}]}}]
  - name: deletions
    match: {prefix: in/, events: ["ObjectRemoved:*"]}
    tasks:
      - name: pdf
        type: ImageToPDF
        params: {TargetURI: "oss://{bucket}/gone/{key}.pdf"}
"""
    )
    assert report.errors == []


def test_too_many_triggers_for_one_bucket() -> None:
    result, file = _fixture("too-many-triggers.yaml")
    assert result.exit_code == 1
    message = _problem(result.output, f"{file}:2:")
    assert "rules: the rules need 11 OSS triggers" in message
    assert "at most 10 per bucket" in message
    assert "'uploads/f11/'" in message
    assert "fix:" in message


def test_rules_that_take_the_same_upload_and_event() -> None:
    message = _assert_error(
        "overlapping-rules.yaml",
        10,
        "videos",
        "rules[1].match",
        "rules 'all-media' (rules[0]) and 'videos' both take the upload uploads/videos/example.mp4",
        "on oss:ObjectCreated:PutObject",
        "would run the tasks of both rules",
        "Cannot specify overlapping prefix and suffix with same event type.",
        "content_types, min_size and max_size do not keep them apart",
        "fix: make the prefixes or the suffixes of the two rules disjoint",
        "or merge them into one rule with several tasks",
    )
    assert message.count("error:") == 1


def test_nested_prefixes_with_disjoint_suffixes_are_valid_and_share_a_trigger() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: all-images
    match: {prefix: uploads/, suffixes: [.jpg]}
    tasks: [{name: pdf, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/out/{key}.pdf"}}]
  - name: videos
    match: {prefix: uploads/videos/, suffixes: [.mp4, .mov]}
    tasks: [{name: pdf, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/out2/{key}.pdf"}}]
"""
    )
    assert report.problems == []
    assert report.pipeline is not None
    assert [f.prefix for f in report.pipeline.trigger_filters()] == ["uploads/"]


_PDF_TASK = '[{name: pdf, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/out/{key}.pdf"}}]'


@pytest.mark.parametrize(
    ("first", "second", "example"),
    [
        ("{prefix: in/}", "{prefix: in/a/}", "in/a/example.dat on oss:ObjectCreated:PutObject"),
        (
            "{prefix: in/, suffixes: [.gz], events: ['oss:ObjectCreated:*']}",
            "{prefix: in/, suffixes: [.TAR.GZ], events: [ObjectCreated:Complete*]}",
            "in/example.tar.gz on oss:ObjectCreated:CompleteMultipartUpload",
        ),
        (
            "{bucket: media-in, prefix: in/, suffixes: [.mp4]}",
            "{prefix: in, events: ['*']}",
            "oss://media-in/in/example.mp4 on oss:ObjectCreated:PutObject",
        ),
        ("{prefix: in/, suffixes: [.mp4]}", "{prefix: in/, suffixes: [.MP4]}", "in/example.mp4"),
    ],
)
def test_overlap_cases(first: str, second: str, example: str) -> None:
    report = validate_text(
        f"""version: 1
rules:
  - {{name: a, match: {first}, tasks: {_PDF_TASK}}}
  - {{name: b, match: {second}, tasks: {_PDF_TASK.replace("out/", "out2/")}}}
"""
    )
    (error,) = report.errors
    assert (error.field, error.line, error.rule) == ("rules[1].match", 4, "b")
    assert example in error.message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{prefix: in/a/}", "{prefix: in/b/}"),
        ("{prefix: in/, suffixes: [.mp4]}", "{prefix: in/, suffixes: [.mov, .mp3]}"),
        ("{bucket: media-a, prefix: in/}", "{bucket: media-b, prefix: in/}"),
        ("{prefix: in/}", "{prefix: in/, events: ['ObjectRemoved:*']}"),
        ("{prefix: in/, events: [ObjectCreated:PutObject]}", "{prefix: in/, events: [ObjectCreated:Copy*]}"),
    ],
)
def test_rules_that_cannot_take_the_same_upload_and_event(first: str, second: str) -> None:
    report = validate_text(
        f"""version: 1
rules:
  - {{name: a, match: {first}, tasks: {_PDF_TASK}}}
  - {{name: b, match: {second}, tasks: {_PDF_TASK.replace("out/", "out2/")}}}
"""
    )
    assert report.problems == [], report.format()


def test_output_template_without_a_per_source_variable() -> None:
    _assert_error(
        "no-per-source-variable.yaml",
        12,
        "videos",
        "rules[0].tasks[0].params.Targets[0].URI",
        "every upload would write (and overwrite) the same object",
        "{dirname}/{barename}",
    )


def test_follow_up_after_an_unknown_task() -> None:
    _assert_error(
        "unknown-follow-up.yaml",
        13,
        "documents",
        "rules[0].then[0].after",
        "'pfd'",
        "did you mean 'pdf'?",
        "pdf, pages",
    )


def test_cycle_in_follow_ups() -> None:
    message = _assert_error(
        "follow-up-cycle.yaml",
        17,
        "videos",
        "rules[0].then[0].tasks[0].name",
        "cycle (shrink -> again -> shrink)",
    )
    result, _ = _fixture("follow-up-cycle.yaml")
    assert result.output.count("error:") == 1, message


def test_chain_deeper_than_max_depth() -> None:
    _assert_error(
        "too-deep.yaml",
        26,
        "documents",
        "rules[0].then[1].tasks[0].name",
        "depth 3 (pdf -> pages -> booklet), deeper than max_depth 2",
        "raise max_depth to 3",
    )


def test_dirname_at_the_bucket_root_is_a_warning() -> None:
    result, file = _fixture("dirname-at-root.yaml")
    assert result.exit_code == 0, result.output
    message = _problem(result.output, f"{file}:13:")
    assert ": warning: rule 'videos': rules[0].tasks[0].params.Targets[0].Image.Snapshots[0].URI" in message
    assert "'//'" in message
    assert "fix: set match.prefix to a folder" in message
    assert "is valid (1 warning)" in result.output


def test_several_problems_are_reported_in_one_run() -> None:
    result, file = _fixture("several-problems.yaml")
    assert result.exit_code == 1
    assert f"{file}:12:15: error: rule 'videos': rules[0].tasks[0].params.Targets[0].URI: {{sheetname}}" in (
        result.output
    )
    assert f"{file}:16:7: error: rule 'images': rules[1].match.colour: unknown key 'colour'" in result.output
    assert f"{file}:30:11: error: rule 'documents': rules[2].tasks[0].params.ProjectName" in result.output
    assert result.output.rstrip().endswith("3 errors; not valid")


# Smaller defects, without fixture files


def _single_error(text: str) -> str:
    report = validate_text(text, "p.yaml")
    assert len(report.errors) == 1, report.format()
    return report.errors[0].format("p.yaml")


def test_duplicate_key() -> None:
    message = _single_error(
        'version: 1\nrules:\n  - name: a\n    match: {prefix: x/, prefix: y/}\n    tasks: [{name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}]\n'
    )
    assert message.startswith(
        "p.yaml:4:25: error: rule 'a': rules[0].match.prefix: 'prefix' is written twice"
    )


def test_duplicate_rule_and_task_names() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks:
      - {name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}
      - {name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o2/{key}.pdf"}}
  - name: a
    match: {prefix: y/}
    tasks: [{name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o3/{key}.pdf"}}]
"""
    )
    assert [(e.line, e.field) for e in report.errors] == [
        (8, "rules[0].tasks[1].name"),
        (9, "rules[1].name"),
    ]


def test_parameters_immflow_fills_in() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks:
      - name: t
        type: ImageToPDF
        params:
          TargetURI: "oss://{bucket}/o/{key}.pdf"
          Sources: [{URI: "oss://b-1/x.jpg"}]
          Tags: {a: 1}
          UserData: hello
"""
    )
    fields = [e.field for e in report.errors]
    assert fields == [
        "rules[0].tasks[0].params.Sources",
        "rules[0].tasks[0].params.Tags",
        "rules[0].tasks[0].params.UserData",
    ]
    assert "`sources:`" in report.errors[0].fix


def test_sources_fields_are_checked_and_only_for_types_with_sources() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks:
      - {name: t, type: ImageToPDF, sources: {Rotat: 90}, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}
      - {name: u, type: OfficeConversion, sources: {Rotate: 90}, params: {TargetType: pdf, TargetURI: "oss://{bucket}/p/{key}.pdf"}}
"""
    )
    assert [(e.field, e.message) for e in report.errors] == [
        ("rules[0].tasks[0].sources.Rotat", "unknown key 'Rotat' (did you mean 'Rotate'?)"),
        (
            "rules[0].tasks[1].sources",
            "OfficeConversion reads one SourceURI; `sources:` sets fields of Sources[] entries, which it has none of",
        ),
    ]


def test_missing_required_parameter_and_model_rules() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks:
      - name: t
        type: OfficeConversion
        params:
          TargetURI: "oss://{bucket}/o/{key}.pdf"
      - name: u
        type: OfficeConversion
        params:
          TargetType: pdf
          TargetURI: "oss://{bucket}/o/{key}.pdf"
          TargetURIPrefix: "oss://{bucket}/o/{key}/"
"""
    )
    assert [(e.line, e.field, e.message) for e in report.errors] == [
        (9, "rules[0].tasks[0].params.TargetType", "'TargetType' is required here"),
        (13, "rules[0].tasks[1].params", "give exactly one of TargetURI (a template) and TargetURIPrefix"),
    ]


def test_folder_target_without_a_trailing_slash() -> None:
    message = _single_error(
        'version: 1\nrules:\n  - name: a\n    match: {prefix: x/}\n    tasks: [{name: t, type: FileUncompression, params: {TargetURI: "oss://{bucket}/o/{barename}"}}]\n'
    )
    assert "rules[0].tasks[0].params.TargetURI: TargetURI names a folder" in message
    assert "fix: add a trailing '/'" in message


def test_templates_that_are_not_oss_uris() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks:
      - {name: t, type: ImageToPDF, params: {TargetURI: "https://{bucket}/o/{key}.pdf"}}
      - {name: u, type: ImageToPDF, params: {TargetURI: "oss://My_Bucket/o/{key}.pdf"}}
      - {name: v, type: ImageToPDF, params: {TargetURI: "oss://{bucket}//o/{key}.pdf"}}
      - {name: w, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key.pdf"}}
"""
    )
    messages = [e.message for e in report.errors]
    assert "is not an OSS URI template" in messages[0]
    assert "'My_Bucket' is neither {bucket}" in messages[1]
    assert "starts with '/'" in messages[2]
    assert "unmatched '{'" in messages[3]


def test_reserved_tag_keys() -> None:
    message = _single_error(
        'version: 1\nrules:\n  - name: a\n    match: {prefix: x/}\n    tags: {"immflow:run": x}\n    tasks: [{name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}]\n'
    )
    assert "rules[0].tags.immflow:run: tag key 'immflow:run' is reserved" in message


def test_follow_up_after_a_task_without_outputs_is_a_warning() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tasks: [{name: inspect, type: ArchiveFileInspection}]
    then:
      - after: inspect
        on: Succeeded
        tasks: [{name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}]
"""
    )
    assert report.errors == []
    (warning,) = report.warnings
    assert warning.field == "rules[0].then[0].after"
    assert "writes no output files" in warning.message


def test_yaml_1_1_booleans_stay_strings() -> None:
    report = validate_text(
        """
version: 1
rules:
  - name: a
    match: {prefix: x/}
    tags: {approved: yes, flag: true}
    tasks: [{name: t, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/o/{key}.pdf"}}]
    then:
      - after: t
        on: Failed
        tasks: [{name: u, type: ImageToPDF, params: {TargetURI: "oss://{bucket}/f/{key}.pdf"}}]
"""
    )
    assert report.problems == []
    assert report.pipeline is not None
    assert report.pipeline.rules[0].tags == {"approved": "yes", "flag": True}
    assert report.pipeline.rules[0].then[0].on == "Failed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml: error: the file is empty"),
        ("- a\n- b\n", "p.yaml:1:1: error: the top level is a list, not a mapping"),
        ("version: 1\nrules: []\n", "p.yaml:2:1: error: rules: list should have at least 1 item"),
        (
            "version: 1\n---\nversion: 1\n",
            "p.yaml:2:1: error: YAML syntax error: found another document (expected a single document",
        ),
        (
            "version: 1\nrules: !!python/name:os.system\n",
            "p.yaml:2:8: error: YAML syntax error: could not determine",
        ),
    ],
)
def test_whole_file_problems(text: str, expected: str) -> None:
    report = validate_text(text, "p.yaml")
    assert report.errors
    assert report.format().startswith(expected), report.format()


def test_unreadable_files(tmp_path: Path) -> None:
    result = _validate(tmp_path / "missing.yaml")
    assert result.exit_code == 1
    assert "missing.yaml: error: cannot read the file: No such file or directory" in result.output
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("version: 1 # caf\xe9\n".encode("latin-1"))
    result = _validate(latin1)
    assert result.exit_code == 1
    assert "not UTF-8 text" in result.output


def test_a_bug_is_reported_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("immflow.cli.validate.validate_file", broken)
    result = CliRunner().invoke(main, ["validate", str(ROOT / "pipeline.yaml")])
    assert result.exit_code == 3
    assert "internal error while checking" in result.output
    assert "KeyError: 'oops'" in result.output
    assert "bug in immflow" in result.output
    assert "Traceback" not in result.output


def test_archive_limits_above_imms_or_on_another_task_type() -> None:
    _assert_error("archive-limits.yaml", 8, "archives", "rules[0].tasks[0].limits.max_entries", "80000")
    result, file = _fixture("archive-limits-wrong-type.yaml")
    assert result.exit_code == 1 and f"{file}:6:" in result.output, result.output
    assert (
        "FileUncompression tasks only" in result.output
        and "remove it from this ArchiveFileInspection" in result.output
    )


def test_archive_limits_within_imms_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text((PIPELINES / "archive-limits.yaml").read_text().replace("90000", "1000"))
    result = _validate(path)
    assert result.exit_code == 0, result.output

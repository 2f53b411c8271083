"""TargetURI templates: parsing, expansion, checks, and output patterns (immflow.templates)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from immflow.ossuri import OssUri
from immflow.tasks import OutputShape
from immflow.templates import (
    PUBLIC_VARIABLES,
    TASK_VARIABLE_EXAMPLES,
    TASK_VARIABLE_PATTERNS,
    TemplateError,
    allowed_variables,
    expand,
    output_pattern,
    parse,
    public_values,
    task_specific_variables,
    wildcard_pattern,
)

SOURCE = OssUri("test-bucket", "path1/path2/name.png")
UPLOAD = datetime(2022, 4, 22, 14, 38, 25, tzinfo=timezone.utc)
TASK = datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _expand(template: str, **kwargs: Any) -> str:
    options: dict[str, Any] = {"source": SOURCE, "upload_time": UPLOAD, "task_time": TASK}
    options.update(kwargs)
    return expand(template, **options)


# Parsing


def test_parse_splits_literals_and_variables() -> None:
    parsed = parse("oss://{bucket}/out/{tags.custom}/{dirname}/{barename}.{autoext}")
    assert parsed.variables == ("bucket", "tags.custom", "dirname", "barename", "autoext")
    assert parsed.builtin_variables == frozenset({"bucket", "dirname", "barename", "autoext"})
    assert parsed.parts[0] == "oss://"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{literal}}", "{literal}"),
        ("{{{bucket}}}", "{test-bucket}"),  # as Python's str.format reads it
        ("a}}b{{c", "a}b{c"),
        ("{{}}", "{}"),
    ],
)
def test_doubled_braces_are_literal(template: str, expected: str) -> None:
    assert _expand(template) == expected


@pytest.mark.parametrize(
    ("template", "position"),
    [("{", "character 1"), ("}", "character 1"), ("oss://{bucket/x", "character 7"), ("a}b", "character 2")],
)
def test_unmatched_brace_is_refused_with_its_position(template: str, position: str) -> None:
    with pytest.raises(TemplateError, match="unmatched") as caught:
        parse(template)
    assert position in str(caught.value)
    assert "for a literal brace" in str(caught.value)


@pytest.mark.parametrize(
    "template", ["{}", "{0}", "{bucket!r}", "{bucket:>9}", "{tags.}", "{tags.a b}", "{a-b}"]
)
def test_invalid_variable_names_are_refused(template: str) -> None:
    with pytest.raises(TemplateError, match="is not a variable name"):
        parse(template)


def test_spaces_around_a_name_are_ignored() -> None:
    assert parse("{ bucket }").variables == ("bucket",)


# Expansion: public variables


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("bucket", "test-bucket"),
        ("key", "path1/path2/name.png"),
        ("dirname", "path1/path2"),
        ("barename", "name"),
        ("basename", "name.png"),
        ("ext", "png"),
        ("year", "2022"),
        ("mon", "04"),
        ("day", "22"),
        ("hour", "14"),
        ("min", "38"),
        ("sec", "25"),
        ("t_year", "2023"),
        ("t_mon", "01"),
        ("t_day", "02"),
        ("t_hour", "03"),
        ("t_min", "04"),
        ("t_sec", "05"),
    ],
)
def test_every_public_variable(variable: str, value: str) -> None:
    assert variable in PUBLIC_VARIABLES
    assert _expand("{" + variable + "}") == value


def test_public_variables_are_exactly_the_documented_ones() -> None:
    source = {"bucket", "key", "dirname", "barename", "basename", "ext"}
    times = {"year", "mon", "day", "hour", "min", "sec"}
    assert source | times | {"t_" + name for name in times} == PUBLIC_VARIABLES
    assert set(public_values(SOURCE, upload_time=UPLOAD, task_time=TASK)) == PUBLIC_VARIABLES


def test_the_documented_example() -> None:
    template = "oss://{bucket}/{tags.custom}/{dirname}/{barename}.{autoext}"
    result = _expand(
        template, tags={"custom": "c"}, task_type="OfficeConversion", task_values={"autoext": "pdf"}
    )
    assert result == "oss://test-bucket/c/path1/path2/name.pdf"


def test_times_are_utc_whatever_the_offset() -> None:
    china = timezone(timedelta(hours=8))
    upload = datetime(2022, 4, 23, 2, 0, 0, tzinfo=china)  # 2022-04-22 18:00 UTC
    assert _expand("{year}{mon}{day}{hour}", upload_time=upload) == "2022042218"


def test_naive_times_are_read_as_utc() -> None:
    assert _expand("{t_hour}{t_min}", task_time=datetime(2024, 5, 6, 7, 8, 9)) == "0708"


def test_empty_dirname_gives_a_double_slash() -> None:
    root = OssUri("test-bucket", "name.png")
    assert _expand("oss://{bucket}/{dirname}/x.jpg", source=root) == "oss://test-bucket//x.jpg"


def test_ext_is_empty_without_extension() -> None:
    assert _expand("{barename}|{ext}", source=OssUri("test-bucket", "dir/README")) == "README|"


def test_ext_is_the_last_extension_as_written() -> None:
    source = OssUri("test-bucket", "dir/archive.TAR.GZ")
    assert _expand("{barename}|{ext}|{basename}", source=source) == "archive.TAR|GZ|archive.TAR.GZ"


def test_values_are_not_escaped() -> None:
    source = OssUri("test-bucket", "a b/c+d%41.png")
    assert _expand("{key}", source=source) == "a b/c+d%41.png"


# Task-specific variables


@pytest.mark.parametrize(("task_type", "names"), list(task_specific_variables().items()))
def test_task_specific_variables_only_for_their_types(task_type: str, names: frozenset[str]) -> None:
    for name in names:
        assert _expand("{" + name + "}", task_type=task_type, task_values={name: "v"}) == "v"
        for other in ("ImageToPDF", "FileCompression", None):
            with pytest.raises(TemplateError, match=name) as caught:
                _expand("{" + name + "}", task_type=other, task_values={name: "v"})
            assert caught.value.variable == name
            assert task_type in str(caught.value)


def test_the_documented_task_specific_variables() -> None:
    assert task_specific_variables()["MediaConvert"] == {"streamindex", "index", "resolution", "autoext"}
    assert task_specific_variables()["OfficeConversion"] == {"index", "sheetname", "autoext"}
    assert allowed_variables(None) == PUBLIC_VARIABLES
    assert allowed_variables("ImageSplicing") == PUBLIC_VARIABLES


def test_every_task_specific_variable_has_a_pattern_and_an_example_it_matches() -> None:
    provided = set().union(*task_specific_variables().values())
    assert set(TASK_VARIABLE_PATTERNS) == set(TASK_VARIABLE_EXAMPLES) == provided
    for name, example in TASK_VARIABLE_EXAMPLES.items():
        assert re.fullmatch(TASK_VARIABLE_PATTERNS[name], example), name


def test_task_specific_variable_without_a_value_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"no value for variable \{index\}"):
        _expand("{index}", task_type="MediaConvert")


def test_unknown_variable_is_named_in_the_error() -> None:
    with pytest.raises(TemplateError, match=r"unknown variable \{barname\}") as caught:
        _expand("oss://{bucket}/{barname}.jpg")
    assert caught.value.variable == "barname"
    assert caught.value.template == "oss://{bucket}/{barname}.jpg"


# Tags


@pytest.mark.parametrize(
    ("value", "text"),
    [("web", "web"), (2, "2"), (1.5, "1.5"), (True, "true"), (False, "false"), (0, "0")],
)
def test_tag_values_are_written_as_json_writes_them(value: object, text: str) -> None:
    assert _expand("{tags.v}", tags={"v": value}) == text


def test_tag_value_that_cannot_go_in_a_path() -> None:
    with pytest.raises(TemplateError, match="'v' is a list"):
        _expand("{tags.v}", tags={"v": [1]})


def test_missing_tag_is_named_in_the_error() -> None:
    with pytest.raises(TemplateError, match="'profile'") as caught:
        _expand("{tags.profile}", tags={"other": "x"})
    assert caught.value.variable == "tags.profile"
    with pytest.raises(TemplateError, match="'profile'"):
        _expand("{tags.profile}")


def test_tag_keys_may_hold_dots_and_colons() -> None:
    assert _expand("{tags.immflow:run}/{tags.a.b}", tags={"immflow:run": "r1", "a.b": "x"}) == "r1/x"


def test_check_refuses_tags_the_task_does_not_set_only_when_tags_are_given() -> None:
    parsed = parse("{tags.a}/{tags.b}")
    parsed.check(None)
    with pytest.raises(TemplateError, match="'b'"):
        parsed.check(None, {"a": 1})


def test_problems_lists_every_problem_in_order() -> None:
    parsed = parse("{foo}/{index}/{tags.x}/{foo}/{barename}")
    problems = parsed.problems("ImageToPDF", {})
    assert [problem.variable for problem in problems] == ["foo", "index", "tags.x"]


# Output patterns


def _pattern(template: str, **kwargs: Any) -> tuple[OssUri, re.Pattern[str]]:
    options: dict[str, Any] = {"source": SOURCE, "upload_time": UPLOAD, "task_time": TASK}
    options.update(kwargs)
    return output_pattern(template, **options)


def test_output_pattern_of_a_plain_file() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/out/{dirname}/{barename}.pdf",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="ImageToPDF",
    )
    assert prefix == OssUri("test-bucket", "out/path1/path2/name.pdf")
    assert pattern.match("out/path1/path2/name.pdf")
    assert not pattern.match("out/path1/path2/name.pdf.bak")
    assert not pattern.match("xout/path1/path2/name.pdf")


def test_output_pattern_of_snapshots_with_index() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/out/{barename}/snap-{index}.jpg",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("image", image_format="jpg"),
    )
    assert prefix == OssUri("test-bucket", "out/name/snap-")
    assert pattern.match("out/name/snap-1.jpg")
    assert pattern.match("out/name/snap-12.jpg")
    assert not pattern.match("out/name/snap-.jpg")
    assert not pattern.match("out/name/snap-a.jpg")
    assert not pattern.match("out/name/snap-1/x.jpg")


def test_output_pattern_of_snapshots_without_extension_accepts_a_sequence_suffix() -> None:
    _, pattern = output_pattern(
        "oss://{bucket}/out/{barename}/snap",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("image", image_format="jpg"),
    )
    assert pattern.match("out/name/snap_0_1.jpg")
    assert pattern.match("out/name/snap.jpg")
    assert not pattern.match("out/name/snap_0_1.png")
    assert not pattern.match("out/name/snap")


def test_output_pattern_of_office_pages() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/out/{dirname}/{barename}/{index}.{autoext}",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="OfficeConversion",
    )
    assert prefix == OssUri("test-bucket", "out/path1/path2/name/")
    for key in ("out/path1/path2/name/1.png", "out/path1/path2/name/10.jpg", "out/path1/path2/name/6_12.png"):
        assert pattern.match(key), key
    assert not pattern.match("out/path1/path2/name/1.png/2.png")
    assert not pattern.match("out/path1/path2/name/other.png")


def test_output_pattern_of_a_spreadsheet_sheet_name() -> None:
    _, pattern = _pattern("oss://{bucket}/out/{barename}-{sheetname}", task_type="OfficeConversion")
    assert pattern.match("out/name-Sheet 1")
    assert not pattern.match("out/name-a/b")


def test_output_pattern_of_media_without_extension_gets_the_container() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/out/{barename}/web",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("media", container="mp4"),
    )
    assert prefix == OssUri("test-bucket", "out/name/web")
    assert pattern.match("out/name/web.mp4")
    assert not pattern.match("out/name/web")
    assert not pattern.match("out/name/web.mkv")


def test_output_pattern_of_media_with_extension_is_exactly_that_name() -> None:
    _, pattern = output_pattern(
        "oss://{bucket}/out/{barename}.mp4",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("media", container="mp4"),
    )
    assert pattern.match("out/name.mp4")
    assert not pattern.match("out/name.mp4.mp4")


def test_output_pattern_of_media_with_autoext() -> None:
    _, pattern = output_pattern(
        "oss://{bucket}/out/{barename}-{resolution}.{autoext}",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("media", container="mp4"),
    )
    assert pattern.match("out/name-1280x720.mp4")
    assert not pattern.match("out/name-1280x720.mp4.mp4")


def test_output_pattern_of_hls_gets_the_playlist_and_segments() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/hls/{barename}/index",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="MediaConvert",
        shape=OutputShape("media", container="ts", segment_format="hls"),
    )
    assert prefix == OssUri("test-bucket", "hls/name/index")
    for key in ("hls/name/index.m3u8", "hls/name/index-0.ts", "hls/name/index0001.ts"):
        assert pattern.match(key), key
    assert not pattern.match("hls/name/index")
    assert not pattern.match("hls/name/index/0.ts")
    assert not pattern.match("hls/name/other.ts")


def test_output_pattern_of_a_folder_is_everything_under_it() -> None:
    prefix, pattern = output_pattern(
        "oss://{bucket}/unzipped/{barename}/",
        source=SOURCE,
        upload_time=UPLOAD,
        task_time=TASK,
        task_type="FileUncompression",
        shape=OutputShape("folder"),
    )
    assert prefix == OssUri("test-bucket", "unzipped/name/")
    assert pattern.match("unzipped/name/a.jpg")
    assert pattern.match("unzipped/name/deep/er/b.txt")
    assert not pattern.match("unzipped/name/")
    assert not pattern.match("unzipped/name2/a.jpg")


def test_output_pattern_of_a_folder_must_end_with_a_slash() -> None:
    with pytest.raises(TemplateError, match="must end with '/'"):
        _pattern("oss://{bucket}/unzipped/{barename}", shape=OutputShape("folder"))


def test_output_pattern_of_extracted_subtitles() -> None:
    _, pattern = _pattern(
        "oss://{bucket}/subs/{barename}", task_type="MediaConvert", shape=OutputShape("subtitle")
    )
    assert pattern.match("subs/name_0.srt")
    assert pattern.match("subs/name_12.vtt")
    assert not pattern.match("subs/name.srt")


def test_output_pattern_expands_tags_and_escapes_regex_characters() -> None:
    source = OssUri("test-bucket", "in/a+b (1).png")
    prefix, pattern = _pattern(
        "oss://{bucket}/{tags.p}/{basename}.{autoext}",
        source=source,
        tags={"p": "x.y"},
        task_type="MediaConvert",
    )
    assert prefix == OssUri("test-bucket", "x.y/a+b (1).png.")
    assert pattern.match("x.y/a+b (1).png.jpg")
    assert not pattern.match("xzy/a+b (1).png.jpg")
    assert not pattern.match("x.y/aab (1).png.jpg")


def test_output_pattern_in_a_fixed_bucket() -> None:
    prefix, _ = _pattern("oss://results-bucket/{key}.pdf")
    assert prefix == OssUri("results-bucket", "path1/path2/name.png.pdf")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://{bucket}/x/{key}", "oss://"),
        ("{index}/x", "oss://"),
        ("oss://Bad_Bucket/{key}", "bucket name"),
        ("oss://{bucket}", "task-specific"),
    ],
)
def test_output_pattern_refuses_what_is_not_an_object_uri(template: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        _pattern(template, task_type="MediaConvert")


def test_output_pattern_checks_variables_and_tags() -> None:
    with pytest.raises(TemplateError, match="index"):
        _pattern("oss://{bucket}/{key}-{index}.pdf", task_type="ImageToPDF")
    with pytest.raises(TemplateError, match="'p'"):
        _pattern("oss://{bucket}/{tags.p}/{key}.pdf")


def test_wildcard_pattern_matches_outputs_of_any_source() -> None:
    pattern = wildcard_pattern(
        "oss://{bucket}/processed/{dirname}/{barename}/web",
        task_type="MediaConvert",
        shape=OutputShape("media", container="mp4"),
    )
    assert pattern.match("oss://any-bucket/processed/uploads/videos/clip/web.mp4")
    assert pattern.match("oss://any-bucket/processed//clip/web.mp4")  # a root-level source
    assert not pattern.match("oss://any-bucket/uploads/videos/clip.mp4")
    assert not pattern.match("oss://any-bucket/processed/uploads/videos/clip/web.mov")


def test_wildcard_pattern_with_a_basename_may_or_may_not_add_the_container() -> None:
    pattern = wildcard_pattern(
        "oss://{bucket}/out/{basename}", task_type="MediaConvert", shape=OutputShape("media", container="mp4")
    )
    assert pattern.match("oss://b-1/out/clip.mov")  # the source had an extension: kept as is
    assert pattern.match("oss://b-1/out/README.mp4")  # it had none: IMM appended .mp4
    assert not pattern.match("oss://b-1/out/a/b.mov")


def test_wildcard_pattern_uses_known_tags_and_any_value_for_others() -> None:
    known = wildcard_pattern("oss://{bucket}/{tags.p}/{key}", tags={"p": "web"})
    assert known.match("oss://b-1/web/x.jpg")
    assert not known.match("oss://b-1/print/x.jpg")
    unknown = wildcard_pattern("oss://{bucket}/{tags.p}/{key}")
    assert unknown.match("oss://b-1/print/x.jpg")


def test_wildcard_pattern_of_time_variables_needs_digits() -> None:
    pattern = wildcard_pattern("oss://{bucket}/{year}/{mon}/{key}")
    assert pattern.match("oss://b-1/2024/05/x.jpg")
    assert not pattern.match("oss://b-1/24/05/x.jpg")
    assert not pattern.match("oss://b-1/2024/may/x.jpg")

"""Fuzzing every parser an event, a message or a pipeline goes through (hypothesis).

Whatever arrives, the only exception that may leave a parser is the one it documents (`PayloadError`
for events and messages, `TemplateError` for templates); `immflow validate` reports problems and
never raises. Deeply nested input must not blow the stack: a 100,000-deep JSON event is a payload
error like any other.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from immflow import templates
from immflow.errors import PayloadError
from immflow.events.imm import parse_get_task_response, parse_imm_notification
from immflow.events.mns import parse_mns_trigger_event
from immflow.events.oss import parse_oss_event
from immflow.ossuri import OssUri
from immflow.validation import validate_text

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)

# Near-valid shapes find more than random JSON: the right keys with wrong values.
oss_event_like = st.fixed_dictionaries(
    {
        "events": st.lists(
            st.fixed_dictionaries(
                {
                    "eventName": st.sampled_from(["ObjectCreated:PutObject", "x", ""]) | json_values,
                    "eventSource": st.just("acs:oss") | json_values,
                    "eventTime": st.sampled_from(["2026-11-30T10:00:00.000Z", "yesterday"]) | json_values,
                    "region": st.just("cn-hangzhou") | json_values,
                    "oss": st.fixed_dictionaries(
                        {
                            "bucket": st.fixed_dictionaries(
                                {"name": st.text(max_size=70), "arn": st.text(), "ownerIdentity": st.text()}
                            )
                            | json_values,
                            "object": st.fixed_dictionaries(
                                {
                                    "key": st.text(max_size=40),
                                    "size": st.integers() | json_values,
                                    "eTag": st.text(max_size=40) | json_values,
                                }
                            )
                            | json_values,
                        }
                    )
                    | json_values,
                }
            ),
            max_size=3,
        )
        | json_values
    }
)

imm_notification_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["imm:Task:MediaConvert", "imm:Task:Nope"]) | json_values,
        "content": st.text(max_size=60) | json_values.map(json.dumps),
        "time": json_values,
        "id": json_values,
    }
)


def _payload_or_nothing(parse: Any, data: Any) -> None:
    with contextlib.suppress(PayloadError):
        parse(data)


@FUZZ
@given(st.one_of(json_values, oss_event_like))
def test_oss_event_from_any_json_raises_only_payload_errors(data: Any) -> None:
    _payload_or_nothing(parse_oss_event, json.dumps(data))
    if isinstance(data, dict):
        _payload_or_nothing(parse_oss_event, data)


@FUZZ
@given(st.binary(max_size=200))
def test_oss_event_from_any_bytes_raises_only_payload_errors(data: bytes) -> None:
    _payload_or_nothing(parse_oss_event, data)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_mns_trigger_event_raises_only_payload_errors(data: bytes) -> None:
    for content_format in (None, "JSON", "STREAM"):
        _payload_or_nothing(lambda d: parse_mns_trigger_event(d, content_format), data)  # noqa: B023


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(json.dumps), imm_notification_like.map(json.dumps)))
def test_imm_notification_raises_only_payload_errors(data: bytes | str) -> None:
    _payload_or_nothing(parse_imm_notification, data)


@FUZZ
@given(
    st.one_of(
        json_values,
        st.dictionaries(st.sampled_from(["TaskId", "Status", "TaskType", "StartTime"]), json_values),
    )
)
def test_get_task_response_raises_only_payload_errors(data: Any) -> None:
    _payload_or_nothing(parse_get_task_response, json.dumps(data))


@FUZZ
@given(
    st.lists(
        st.sampled_from([*"{}ab._-/ ", "{tags.", "{index}", "{barename}", "{autoext}"]), max_size=12
    ).map("".join),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
def test_templates_raise_only_template_errors(text: str, tags: dict[str, Any]) -> None:
    moment = datetime(2026, 11, 30, tzinfo=timezone.utc)
    with contextlib.suppress(templates.TemplateError):
        templates.expand(
            text,
            source=OssUri("bucket", "in/dir/file.mp4"),
            upload_time=moment,
            task_time=moment,
            tags=tags,
            task_type="MediaConvert",
            task_values={"index": "1", "autoext": "mp4"},
        )


yaml_fragments = st.sampled_from(
    [
        "rules:\n",
        "  - name: r\n",
        "    match: {prefix: in/, suffixes: [.mp4]}\n",
        "    tasks:\n",
        "      - name: t\n        type: MediaConvert\n",
        "        params: {Targets: [{Container: mp4, URI: 'oss://{bucket}/out/{barename}.mp4'}]}\n",
        "    then:\n      - after: t\n        on: Succeeded\n        tasks: []\n",
        "[[[[",
        "&a [*a]\n",
        "key: !!python/object:os.system ls\n",
        "\t",
        "- ",
        ": :",
        "'unterminated\n",
    ]
)


@FUZZ
@given(st.lists(yaml_fragments, max_size=10).map("".join) | st.text(max_size=200))
def test_validate_reports_problems_and_never_raises(text: str) -> None:
    report = validate_text(text)
    assert report.pipeline is not None or report.errors


DEEP = 100_000


@pytest.mark.parametrize(
    "parse",
    [
        parse_oss_event,
        parse_imm_notification,
        lambda text: parse_mns_trigger_event(text, "JSON"),
        parse_get_task_response,
    ],
    ids=["oss", "imm", "mns-json", "get-task"],
)
def test_a_deeply_nested_payload_is_a_payload_error(parse: Any) -> None:
    with pytest.raises(PayloadError, match="nested"):
        parse("[" * DEEP + "]" * DEEP)
    with pytest.raises(PayloadError, match="nested"):
        parse('{"events": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}")


def test_a_deeply_nested_pipeline_is_a_problem_not_a_crash() -> None:
    report = validate_text("rules: " + "[" * DEEP + "]" * DEEP)
    assert report.errors


def test_a_deeply_nested_stream_body_is_kept_verbatim() -> None:
    """A STREAM trigger's body is the published message: deep JSON in it is data, not an error."""
    body = "{" + '"a": {' * DEEP + "}" * (DEEP + 1)
    assert parse_mns_trigger_event(body, "STREAM").body == body

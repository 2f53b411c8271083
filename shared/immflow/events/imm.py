"""IMM task results: the notification IMM publishes when an asynchronous task ends, and GetTask's answer.

Both become one `ImmTaskResult`, so the reconcile path (GetTask) and the notification path share all
code after parsing. Forms accepted by `parse_imm_notification` (docs/imm.md#notifications):

* the envelope ``{"id", "source": "acs.imm", "type": "imm:Task:<TaskType>", "subject", "time"
  (epoch ms as a string), "content" (the task result as a JSON *string*)}``; ``content`` already an
  object and ``time`` as an int are accepted too;
* the EventBridge CloudEvents form, the task result being the object in ``data``;
* the older form without an envelope: the body is the task result itself;
* any of these Base64-encoded (UNCONFIRMED whether IMM ever does this; JSON is tried first);
* an envelope whose ``content`` string was cut short (a result too big for one MNS message; whether
  IMM ever cuts it is UNCONFIRMED, docs/imm-notifications.md): the leading common fields are read
  from what is there and the notification is marked `ImmNotification.truncated`, so the functions
  read the result with GetTask.

The models keep IMM's field names and allow unknown fields: the content of task types other than
MediaConvert is UNCONFIRMED (docs/imm.md#notifications) and the local IMM echoes the request's ``SourceURI``,
``TargetURI``/``TargetURIPrefix`` and ``Sources``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from immflow.errors import PayloadError
from immflow.parsing import TOO_DEEP, EpochMsDatetime, UtcDatetime, expect_object, load_json, parse_model

KIND = "IMM notification"
GET_TASK_KIND = "IMM GetTask response"
TYPE_PREFIX = "imm:Task:"


def _none_to_empty(value: object) -> object:
    # GetTask leaves unset strings out entirely, and some producers write null.
    return "" if value is None else value


def _blank_to_none(value: object) -> object:
    return None if value == "" else value


Text = Annotated[str, BeforeValidator(_none_to_empty)]
OptionalTime = Annotated[UtcDatetime | None, BeforeValidator(_blank_to_none)]
#: A task's Status as IMM reports it (GetTask, ListTasks).
ImmTaskState = Literal["Running", "Succeeded", "Failed"]
#: The Status a notification carries: IMM notifies only a task that ended.
ImmFinalState = Literal["Succeeded", "Failed"]


class _CloudModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class OutputFile(_CloudModel):
    URI: Text = ""


class SubtitleExtract(_CloudModel):
    Extract: OutputFile | None = None


class TargetImageResult(_CloudModel):
    Sprites: list[OutputFile] | None = None
    Snapshots: list[OutputFile] | None = None
    Animations: list[OutputFile] | None = None


class TargetResult(_CloudModel):
    """One entry per requested MediaConvert target."""

    URI: Text = ""
    """The output media file; ``""`` when the target produced none (frame capture only)."""
    Subtitle: SubtitleExtract | None = None
    Image: TargetImageResult | None = None


class SourceResult(_CloudModel):
    URI: Text = ""
    SubtitleSources: list[JsonValue] | None = None


class ImmTaskResult(_CloudModel):
    """The ``content`` of a notification: the common fields (docs/imm.md#notifications) and the known task-specific
    ones. Only final states appear here; a running task has no result yet (see `GetTaskResponse`)."""

    ProjectName: str
    DatasetName: Text = ""
    RequestId: Text = ""
    """The RequestId of the Create*Task call; ``""`` when built from GetTask, whose own RequestId
    belongs to the GetTask call."""
    StartTime: OptionalTime = None
    EndTime: OptionalTime = None
    UserData: Text = ""
    TaskType: str = Field(min_length=1)
    TaskId: str = Field(min_length=1)
    Status: ImmFinalState
    Code: Text = ""
    Message: Text = ""
    EventSourceId: Text = ""
    Tags: dict[str, JsonValue] | None = None
    """In GetTask's answer; whether notifications carry it is UNCONFIRMED."""
    Sources: list[SourceResult] | None = None
    Targets: list[TargetResult] | None = None
    SourceURI: str | None = None
    TargetURI: str | None = None
    TargetURIPrefix: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.Status == "Succeeded"

    def output_uris(self) -> list[str]:
        """Every non-empty output URI the result names, in order, without duplicates.

        MediaConvert: each target's ``URI``, its extracted-subtitle URI and its snapshot, sprite and
        animation URIs; other tasks: ``TargetURI`` and ``TargetURIPrefix``. A multi-file output (HLS
        segments, N snapshots, office pages) may be named once, as a template (``{index}`` left in) or
        a prefix, rather than one entry per file (docs/imm.md#notifications, UNCONFIRMED in the cloud): list
        the OSS prefix when every file is needed.
        """
        uris: list[str] = []
        for target in self.Targets or ():
            uris.append(target.URI)
            if target.Subtitle is not None and target.Subtitle.Extract is not None:
                uris.append(target.Subtitle.Extract.URI)
            if target.Image is not None:
                for files in (target.Image.Snapshots, target.Image.Sprites, target.Image.Animations):
                    uris.extend(file.URI for file in files or ())
        uris.extend(uri for uri in (self.TargetURI, self.TargetURIPrefix) if uri is not None)
        return list(dict.fromkeys(uri for uri in uris if uri))


class ImmNotification(_CloudModel):
    """A task-finished notification. The envelope fields are None for the older form without one.

    Whatever it says is a claim by whoever published it; `immflow.flow.results` confirms it with GetTask.
    """

    id: str | None = None
    source: str | None = None
    type: str | None = None
    """``imm:Task:<TaskType>``."""
    subject: str | None = None
    time: EpochMsDatetime | None = None
    """Epoch ms (a string) in the MNS envelope, RFC 3339 in EventBridge's."""
    content: ImmTaskResult
    truncated: bool = False
    """``content`` was cut short: only its leading common fields were read (no outputs, no times)."""

    @property
    def lacks_result(self) -> bool:
        """Whether the task's result must be read with GetTask: the content was cut short or leaves out
        the times every IMM result carries."""
        return self.truncated or self.content.StartTime is None or self.content.EndTime is None


def parse_imm_notification(body: str | bytes) -> ImmNotification:
    """Parse an IMM notification body (for an MNS trigger: `MnsTopicMessage.body`)."""
    data = expect_object(_decode_body(body), KIND)
    if "content" in data:
        content = data["content"]
        truncated = False
        if isinstance(content, str):
            try:
                content = load_json(content, KIND, field="content")
            except PayloadError as exc:
                content, truncated = _leading_fields(content, data.get("type"), exc.problem), True
        envelope = {**data, "content": expect_object(content, KIND, field="content"), "truncated": truncated}
    elif isinstance(data.get("data"), dict) and ("specversion" in data or data.get("source") == "acs.imm"):
        envelope = {name: value for name, value in data.items() if name != "data"}
        envelope["content"] = data["data"]
    else:
        envelope = {"content": data}
    return parse_model(ImmNotification, envelope, KIND)


# The common fields IMM writes first in ``content`` (docs/imm-notifications.md), JSON string values only.
_LEADING_FIELD = re.compile(r'"(ProjectName|UserData|TaskType|TaskId|Status)"\s*:\s*("(?:[^"\\]|\\.)*")')


def _leading_fields(content: str, envelope_type: object, problem: str) -> dict[str, Any]:
    """The common fields of a ``content`` that is not whole JSON; a `PayloadError` unless the task's
    id, type, project and final status are all there."""
    fields: dict[str, Any] = {}
    for match in _LEADING_FIELD.finditer(content):
        fields.setdefault(match.group(1), json.loads(match.group(2)))
    if "TaskType" not in fields and isinstance(envelope_type, str) and envelope_type.startswith(TYPE_PREFIX):
        fields["TaskType"] = envelope_type[len(TYPE_PREFIX) :]
    missing = [name for name in ("ProjectName", "TaskType", "TaskId", "Status") if name not in fields]
    if missing:
        raise PayloadError(
            KIND, "content", f"{problem}, and not a cut-short result either (no {', '.join(missing)})"
        )
    return fields


def _decode_body(body: str | bytes) -> Any:
    text = body if isinstance(body, str) else _utf8(body)
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
        try:
            # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors.
            return json.loads(base64.b64decode("".join(text.split()), validate=True).decode("utf-8"))
        except ValueError:
            raise PayloadError(
                KIND, "", f"neither JSON nor Base64-encoded JSON (starts {text[:40]!r})"
            ) from None
    except RecursionError:
        raise PayloadError(KIND, "", TOO_DEEP) from None


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(KIND, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class GetTaskResponse(_CloudModel):
    """The body of GetTask's answer (docs/imm.md#gettask-listtasks-retention, Appendix B), e.g. the SDK's
    ``GetTaskResponseBody.to_map()``."""

    RequestId: Text = ""
    ProjectName: str
    TaskType: str = Field(min_length=1)
    TaskId: str = Field(min_length=1)
    Status: ImmTaskState
    Code: Text = ""
    Message: Text = ""
    StartTime: OptionalTime = None
    EndTime: OptionalTime = None
    Progress: int | None = None
    Tags: dict[str, JsonValue] | None = None
    UserData: Text = ""
    TaskRequestDefinition: Text = ""
    EventId: Text = ""

    def final_result(self) -> ImmTaskResult | None:
        """The task's result in the notification's shape, or None while it is still ``Running``.

        GetTask names no outputs (the 2020-09-30 API dropped them), so `ImmTaskResult.output_uris` of
        this result is empty; `TaskRequestDefinition` is left uninterpreted because it holds the
        request's *templates*, not the expanded output names.
        """
        if self.Status == "Running":
            return None
        return ImmTaskResult(
            ProjectName=self.ProjectName,
            StartTime=self.StartTime,
            EndTime=self.EndTime,
            UserData=self.UserData,
            TaskType=self.TaskType,
            TaskId=self.TaskId,
            Status=self.Status,
            Code=self.Code,
            Message=self.Message,
            Tags=self.Tags,
        )


def parse_get_task_response(body: Mapping[str, object] | str | bytes) -> GetTaskResponse:
    """Parse GetTask's response body (a mapping such as the SDK's ``body.to_map()``, or its JSON text)."""
    data = dict(body) if isinstance(body, Mapping) else load_json(body, GET_TASK_KIND)
    return parse_model(GetTaskResponse, expect_object(data, GET_TASK_KIND), GET_TASK_KIND)

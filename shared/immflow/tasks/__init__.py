"""The parameters of IMM's asynchronous Create*Task actions, as typed models, and their RPC wire form.

Field names are exactly the wire names of docs/imm.md#wire-protocol (generated from the official SDK
``alibabacloud_imm20200930`` 5.0.3); nothing else is accepted (``extra="forbid"``), so a misspelt or
invented parameter fails with its name. The same models serve both sides: immflow builds requests with
them, and the local IMM validates incoming requests with `TaskRequest.from_wire`.

Wire form (docs/imm.md#wire-protocol, checked against the SDK itself in the tests): every parameter is one
string; objects and arrays are compact JSON (keys in the SDK's order, which is ASCII order of the wire
names; ``ensure_ascii`` off); top-level booleans are rendered by Python's ``str`` (``True``), as the
Python SDK does. Inside JSON, the SDK writes every unset list of objects as ``[]``; ``to_wire`` does
the same, and parsing treats ``[]`` as unset.

The SDK itself is not imported here: FC handlers import this module and cold start matters. For the
same reason each task type's request model is a module of its own (``immflow.tasks.media_convert``...),
imported when `TASK_TYPES` is first asked for that type: a function defines the models of the types its
pipeline uses, not all seven.
"""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from immflow.errors import PayloadError
from immflow.parsing import load_json, parse_model

USER_DATA_MAX_BYTES = 2048  # docs/imm.md#limits

ItemT = TypeVar("ItemT")
RequestT = TypeVar("RequestT", bound="TaskRequest")


def _empty_list_is_unset(value: object) -> object:
    # The SDK sends [] for every list the caller did not set, so [] cannot mean anything else.
    return None if value == [] else value


OptionalList = Annotated[Union[list[ItemT], None], BeforeValidator(_empty_list_is_unset)]  # noqa: UP007
"""A list parameter that may be left out; ``[]`` reads as left out."""

TagMap = dict[str, JsonValue]
"""Tags: free-form: the Python SDK does not force values to strings (``{"k1":"v1","n":2}``)."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# Structs shared by every action (docs/imm.md#notifications). A struct's class name ends in "Spec" where the
# field holding it has the struct's own name: pydantic would resolve the annotation to the field instead.


class CredentialChainLink(_Wire):
    AssumeRoleFor: str | None = None
    Role: str | None = None
    RoleType: str | None = None


class CredentialConfigSpec(_Wire):
    Chain: OptionalList[CredentialChainLink] = None
    Policy: str | None = None
    ServiceRole: str | None = None


class MnsSpec(_Wire):
    TopicName: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_endpoint(cls, data: Any) -> Any:
        # Older IMM docs show MNS.Endpoint; the current API has no such member. Accepted, ignored.
        if isinstance(data, dict) and "Endpoint" in data:
            return {name: value for name, value in data.items() if name != "Endpoint"}
        return data


class RocketMqSpec(_Wire):
    InstanceId: str | None = None
    TopicName: str | None = None


class NotificationSpec(_Wire):
    ExtendedMessageURI: str | None = None
    """Not a channel: the OSS object where IMM writes a large result (archive listings)."""
    MNS: MnsSpec | None = None
    RocketMQ: RocketMqSpec | None = None


class TrimPolicySpec(_Wire):
    DisableDeleteEmptyCell: bool | None = None
    DisableDeleteRepeatedStyle: bool | None = None
    DisableDeleteUnusedPicture: bool | None = None
    DisableDeleteUnusedShape: bool | None = None


class TaskRequest(_Wire):
    """What every Create*Task request has; subclasses add the action's own parameters."""

    TASK_TYPE: ClassVar[str]
    """The TaskType of GetTask/ListTasks and of the notification's ``type``."""
    ACTION: ClassVar[str]
    """The RPC action (the SDK method is its snake_case form)."""
    READS_SOURCE_URI: ClassVar[bool] = False
    """Whether immflow gives the task its source as one ``SourceURI``; otherwise as a ``Sources`` list."""
    TEMPLATED_BY_IMM: ClassVar[bool] = False
    """Whether IMM expands TargetURI templates for this type (documented for MediaConvert and
    OfficeConversion only; for the others immflow expands them itself, docs/imm.md#targeturi-templates)."""
    TEMPLATE_VARIABLES: ClassVar[frozenset[str]] = frozenset()
    """The task-specific template variables the type provides, besides the public ones (docs/imm.md#targeturi-templates)."""
    NOTIFICATION_NAMES_OUTPUTS: ClassVar[bool] = False
    """Whether the notification of a finished task names the outputs it wrote (MediaConvert's ``Targets``)."""
    TARGET_URI_NAMES_A_FOLDER: ClassVar[bool] = False
    """Whether ``TargetURI`` names a folder (every object under it is an output) rather than an object."""
    SOURCES_NAME_FOLDERS: ClassVar[bool] = False
    """Whether a ``Sources[].URI`` may name a folder (a prefix) rather than an object."""

    CredentialConfig: CredentialConfigSpec | None = None
    Notification: NotificationSpec | None = None
    ProjectName: str = Field(min_length=1)
    UserData: str | None = None

    @field_validator("UserData")
    @classmethod
    def _user_data_fits(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode("utf-8")) > USER_DATA_MAX_BYTES:
            raise ValueError(
                f"UserData is {len(value.encode('utf-8'))} bytes; IMM accepts at most {USER_DATA_MAX_BYTES}"
            )
        return value

    @classmethod
    def accepts_tags(cls) -> bool:
        """FileCompression, FileUncompression and ArchiveFileInspection take no ``Tags`` (docs/imm.md#tasks)."""
        return "Tags" in cls.model_fields

    @classmethod
    def source_fields(cls, params: Mapping[str, Any]) -> list[SourceField]:
        """The objects the request asks the task to process, in request order: ``SourceURI``,
        ``SourceManifestURI`` and every ``Sources[].URI``. ``params`` is the request as a mapping,
        checked or not: members of the wrong type are skipped."""
        fields = [
            SourceField((name,), params[name])
            for name in ("SourceURI", "SourceManifestURI")
            if _text(params, name)
        ]
        for index, source in _items(params, "Sources"):
            if _text(source, "URI"):
                fields.append(SourceField(("Sources", index, "URI"), source["URI"], cls.SOURCES_NAME_FOLDERS))
        return fields

    @classmethod
    def target_fields(cls, params: Mapping[str, Any]) -> list[TargetField]:
        """Every output field ``params`` sets, with how IMM names the outputs (docs/imm.md#targeturi-templates):
        ``TargetURI`` (an object, or a folder for the types in `TARGET_URI_NAMES_A_FOLDER`) and
        ``TargetURIPrefix`` (a folder). Checked or not, as `source_fields`."""
        fields = []
        if isinstance(params.get("TargetURI"), str):
            shape = OutputShape("folder") if cls.TARGET_URI_NAMES_A_FOLDER else FILE
            fields.append(TargetField(("TargetURI",), params["TargetURI"], shape))
        if isinstance(params.get("TargetURIPrefix"), str):
            fields.append(TargetField(("TargetURIPrefix",), params["TargetURIPrefix"], OutputShape("folder")))
        return fields

    @classmethod
    def failure_echo(cls, request: Mapping[str, Any]) -> dict[str, Any]:
        """What the notification of a failed task repeats of its request: its source and target
        fields (only MediaConvert's notification fields are documented, docs/imm.md)."""
        return {name: request[name] for name in _ECHOED_WHEN_FAILED if name in request}

    @classmethod
    def with_sources(
        cls, params: Mapping[str, Any], uris: list[str], entry: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``params`` with the sources immflow fills in: ``SourceURI`` (the first of ``uris``) when the
        type `READS_SOURCE_URI`, else one ``Sources`` entry per URI (``entry`` plus its ``URI``)."""
        if cls.READS_SOURCE_URI:
            return {**params, "SourceURI": uris[0]}
        return {**params, "Sources": [{**entry, "URI": uri} for uri in uris]}

    def to_wire(self) -> dict[str, str]:
        """The RPC parameters exactly as the Python SDK sends them (query, and for OfficeConversion's
        ``Sources`` the form body: the split is the transport's business)."""
        params: dict[str, str] = {}
        for name in sorted(type(self).model_fields):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str):
                params[name] = value
            elif isinstance(value, (bool, int, float)):
                params[name] = str(value)
            else:
                params[name] = json.dumps(_json_ready(value), ensure_ascii=False, separators=(",", ":"))
        return params

    @classmethod
    def from_wire(cls: type[RequestT], params: Mapping[str, str]) -> RequestT:
        """Parse RPC parameters (query and form body merged). Raises `PayloadError` naming the parameter
        and, inside JSON parameters, the member (``Targets.0.Video.TranscodeVideo.Codec``).

        Top-level booleans are read case-insensitively (``True`` from Python, ``true`` from other SDKs);
        JSON members must have their JSON type (no ``"3"`` for a number); ``[]`` reads as unset.
        """
        kind = f"{cls.ACTION} request"
        data: dict[str, Any] = {}
        for name, text in params.items():
            field = cls.model_fields.get(name)
            if field is None:
                accepted = ", ".join(sorted(cls.model_fields))
                raise PayloadError(kind, name, f"unknown parameter; {cls.ACTION} accepts {accepted}")
            value = _from_wire_text(field.annotation, text, kind, name)
            if value != []:
                data[name] = value
        return parse_model(cls, data, kind, strict=True)


_ECHOED_WHEN_FAILED = ("SourceURI", "SourceManifestURI", "Sources", "TargetURI", "TargetURIPrefix")

#: The parameters that name what a task reads; immflow fills them in (`TaskRequest.with_sources`).
SOURCE_PARAMETERS = ("SourceURI", "Sources", "SourceManifestURI")

OutputLayout = Literal["file", "folder", "media", "image", "subtitle"]


@dataclass(frozen=True)
class OutputShape:
    """How IMM names the outputs of one target field (docs/imm.md#targeturi-templates, docs/imm.md#notifications).

    * ``file``: exactly the expanded template (TargetURI of OfficeConversion, ImageSplicing, ...).
    * ``folder``: every object under it (TargetURIPrefix, FileUncompression's TargetURI); the
      template must end with ``/``.
    * ``media``: MediaConvert ``Targets[].URI``: without an extension IMM appends ``.<container>``,
      and for ``Segment.Format`` hls (dash) writes ``<URI>.m3u8`` (``.mpd``) plus segment files
      whose names start with ``<URI>``; with an extension, exactly that name.
    * ``image``: a Snapshots/Sprites/Animations ``URI``: without an extension IMM appends a sequence
      suffix and ``.<format>`` (``_0_1.jpg``; the suffix's form is LIKELY, docs/imm.md#notifications, so any
      suffix is accepted).
    * ``subtitle``: ``ExtractSubtitle.URI`` is a prefix; outputs are ``<URI>_<index>.<ext>``.
    """

    layout: OutputLayout = "file"
    container: str | None = None
    segment_format: str | None = None
    image_format: str | None = None


FILE = OutputShape()


def dotted_path(path: tuple[str | int, ...]) -> str:
    """``("Targets", 0, "URI")`` as ``Targets[0].URI``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(frozen=True)
class TargetField:
    """One output field of a task's parameters: where it is, its TargetURI template and how IMM names outputs."""

    path: tuple[str | int, ...]
    template: str
    shape: OutputShape

    @property
    def field(self) -> str:
        """``Targets[0].Image.Snapshots[1].URI``."""
        return dotted_path(self.path)


@dataclass(frozen=True)
class SourceField:
    """One source field of a task's parameters: where it is and the OSS URI it names."""

    path: tuple[str | int, ...]
    uri: str
    folder: bool = False
    """The URI may name a folder (a prefix ending with ``/``)."""

    @property
    def field(self) -> str:
        return dotted_path(self.path)


def _text(container: Mapping[str, Any], name: str) -> bool:
    value = container.get(name)
    return isinstance(value, str) and bool(value)


def _items(container: Mapping[str, Any], name: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = container.get(name)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield index, item


def _non_none_args(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def _is_scalar(annotation: Any) -> bool:
    return all(arg in (str, bool, int, float) for arg in _non_none_args(annotation))


def _is_list_of_objects(annotation: Any) -> bool:
    for arg in _non_none_args(annotation):
        if get_origin(arg) is list:
            (item,) = get_args(arg)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return True
    return False


def _json_ready(value: object) -> object:
    if isinstance(value, BaseModel):
        result: dict[str, object] = {}
        for name, field in sorted(type(value).model_fields.items()):
            member = getattr(value, name)
            if member is not None:
                result[name] = _json_ready(member)
            elif _is_list_of_objects(field.annotation):
                result[name] = []
        return result
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


def _from_wire_text(annotation: Any, text: str, kind: str, name: str) -> object:
    (base,) = _non_none_args(annotation)
    if base is str:
        return text
    if base is bool:
        if text.lower() not in ("true", "false"):
            raise PayloadError(kind, name, f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if base in (int, float):
        try:
            return base(text)
        except ValueError:
            expected = "an integer" if base is int else "a number"
            raise PayloadError(kind, name, f"expected {expected}, got {text!r}") from None
    return load_json(text, kind, field=name)


# Shared by OfficeConversion (images to PDF), ImageSplicing and ImageToPDF.


class RotatedSource(_Wire):
    """An image source of OfficeConversion (images to PDF), ImageSplicing and ImageToPDF."""

    Rotate: int | None = None
    URI: str = Field(min_length=1)


# TaskType -> (module under immflow.tasks, request model); the model itself declares its type and action.
_TYPE_MODULES: dict[str, tuple[str, str]] = {
    "MediaConvert": ("media_convert", "MediaConvertRequest"),
    "OfficeConversion": ("office_conversion", "OfficeConversionRequest"),
    "FileCompression": ("file_compression", "FileCompressionRequest"),
    "FileUncompression": ("file_uncompression", "FileUncompressionRequest"),
    "ArchiveFileInspection": ("archive_file_inspection", "ArchiveFileInspectionRequest"),
    "ImageSplicing": ("image_splicing", "ImageSplicingRequest"),
    "ImageToPDF": ("image_to_pdf", "ImageToPdfRequest"),
}


class _TaskTypes(Mapping[str, type[TaskRequest]]):
    """TaskType -> its request model, the model's module imported when the type is first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, type[TaskRequest]] = {}

    def __getitem__(self, task_type: str) -> type[TaskRequest]:
        request = self._loaded.get(task_type)
        if request is None:
            module, name = _TYPE_MODULES[task_type]
            request = getattr(importlib.import_module(f"{__name__}.{module}"), name)
            self._loaded[task_type] = request
        return request

    def __iter__(self) -> Iterator[str]:
        return iter(_TYPE_MODULES)

    def __len__(self) -> int:
        return len(_TYPE_MODULES)


class _RequestsByAction(Mapping[str, type[TaskRequest]]):
    """Action -> request model, for the side that serves every type (the local IMM): loads them all."""

    @cached_property
    def _requests(self) -> dict[str, type[TaskRequest]]:
        return {request.ACTION: request for request in TASK_TYPES.values()}

    def __getitem__(self, action: str) -> type[TaskRequest]:
        return self._requests[action]

    def __iter__(self) -> Iterator[str]:
        return iter(self._requests)

    def __len__(self) -> int:
        return len(self._requests)


TASK_TYPES: Mapping[str, type[TaskRequest]] = _TaskTypes()
"""The task types immflow starts, keyed by TaskType."""

TASK_REQUESTS_BY_ACTION: Mapping[str, type[TaskRequest]] = _RequestsByAction()

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

The SDK itself is not imported here: FC handlers import this module and cold start matters.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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


# CreateMediaConvertTask (docs/imm.md#tasks, Appendix B)


class MediaConvertSubtitle(_Wire):
    Language: str | None = None
    TimeOffset: float | None = None
    URI: str | None = None


class MediaConvertSource(_Wire):
    AlignMode: str | None = None
    Attached: bool | None = None
    DisableAudio: bool | None = None
    DisableVideo: bool | None = None
    Duration: float | None = None
    StartTime: float | None = None
    Subtitles: OptionalList[MediaConvertSubtitle] = None
    URI: str = Field(min_length=1)


class TranscodeAudioSpec(_Wire):
    Bitrate: int | None = None
    BitrateOption: str | None = None
    BitsPerSample: int | None = None
    Channel: int | None = None
    Codec: str | None = None
    Quality: int | None = None
    SampleRate: int | None = None
    SampleRateOption: str | None = None


class FilterAudioSpec(_Wire):
    Mixing: bool | None = None


class TargetAudio(_Wire):
    DisableAudio: bool | None = None
    FilterAudio: FilterAudioSpec | None = None
    Stream: OptionalList[int] = None
    TranscodeAudio: TranscodeAudioSpec | None = None


class TranscodeVideoSpec(_Wire):
    AdaptiveResolutionDirection: bool | None = None
    BFrames: int | None = None
    Bitrate: int | None = None
    BitrateOption: str | None = None
    BufferSize: int | None = None
    CRF: float | None = None
    Codec: str | None = None
    FrameRate: float | None = None
    FrameRateOption: str | None = None
    GOPSize: int | None = None
    MaxBitrate: int | None = None
    PixelFormat: str | None = None
    Refs: int | None = None
    Resolution: str | None = None
    ResolutionOption: str | None = None
    Rotation: int | None = None
    ScaleType: str | None = None
    VideoSlim: int | None = None


class Delogo(_Wire):
    Duration: float | None = None
    Dx: float | None = None
    Dy: float | None = None
    Height: float | None = None
    ReferPos: str | None = None
    StartTime: float | None = None
    Width: float | None = None


class Blur(_Wire):
    """Face or licence-plate desensitization."""

    BlurRadius: int | None = None
    Confidence: float | None = None
    MinSize: int | None = None
    ScaleRatio: float | None = None
    Transparency: float | None = None


class DesensitizationSpec(_Wire):
    Face: Blur | None = None
    LicensePlate: Blur | None = None


class Watermark(_Wire):
    BorderColor: str | None = None
    BorderWidth: int | None = None
    Content: str | None = None
    Duration: float | None = None
    Dx: float | None = None
    Dy: float | None = None
    FontApha: float | None = None  # sic: the API's spelling
    FontColor: str | None = None
    FontName: str | None = None
    FontSize: int | None = None
    Height: float | None = None
    ReferPos: str | None = None
    StartTime: float | None = None
    Type: str | None = None
    URI: str | None = None
    Width: float | None = None


class FilterVideoSpec(_Wire):
    Delogos: OptionalList[Delogo] = None
    Desensitization: DesensitizationSpec | None = None
    Speed: float | None = None
    Watermarks: OptionalList[Watermark] = None


class TargetVideo(_Wire):
    DisableVideo: bool | None = None
    FilterVideo: FilterVideoSpec | None = None
    Stream: OptionalList[int] = None
    TranscodeVideo: TranscodeVideoSpec | None = None


class ExtractSubtitleSpec(_Wire):
    Format: str | None = None
    URI: str | None = None
    """A prefix: outputs are ``<URI>_<stream index>.<ext>``."""


class TargetSubtitle(_Wire):
    DisableSubtitle: bool | None = None
    ExtractSubtitle: ExtractSubtitleSpec | None = None
    Stream: OptionalList[int] = None


class Animation(_Wire):
    Format: str
    FrameRate: float | None = None
    Height: float | None = None
    Interval: float | None = None
    Number: int | None = None
    ScaleType: str | None = None
    StartTime: float | None = None
    URI: str = Field(min_length=1)
    Width: float | None = None


class Snapshot(_Wire):
    Format: str
    Height: float | None = None
    Interval: float | None = None
    Mode: str | None = None
    Number: int | None = None
    ScaleType: str | None = None
    StartTime: float | None = None
    Threshold: int | None = None
    URI: str = Field(min_length=1)
    Width: float | None = None


class Sprite(_Wire):
    Format: str
    Interval: float | None = None
    Margin: int | None = None
    Mode: str | None = None
    Number: int | None = None
    Pad: int | None = None
    ScaleHeight: float | None = None
    ScaleType: str | None = None
    ScaleWidth: float | None = None
    StartTime: float | None = None
    Threshold: int | None = None
    TileHeight: int | None = None
    TileWidth: int | None = None
    URI: str = Field(min_length=1)


class TargetImage(_Wire):
    Animations: OptionalList[Animation] = None
    Snapshots: OptionalList[Snapshot] = None
    Sprites: OptionalList[Sprite] = None


class SegmentSpec(_Wire):
    Duration: float | None = None
    Format: str | None = None
    StartNumber: int | None = None


class StreamSelection(_Wire):
    Stream: OptionalList[int] = None


class MediaConvertTarget(_Wire):
    AttachedPicture: StreamSelection | None = None
    Audio: TargetAudio | None = None
    Container: str | None = None
    Data: StreamSelection | None = None
    Image: TargetImage | None = None
    Segment: SegmentSpec | None = None
    Speed: float | None = None
    StripMetadata: bool | None = None
    Subtitle: TargetSubtitle | None = None
    URI: str | None = None
    Video: TargetVideo | None = None

    @model_validator(mode="after")
    def _container_with_uri(self) -> MediaConvertTarget:
        # docs/imm.md#tasks: both or neither (neither = only subtitles, frames, sprites or animations).
        if (self.Container is None) != (self.URI is None):
            given, missing = ("Container", "URI") if self.URI is None else ("URI", "Container")
            raise ValueError(
                f"{given} is set but {missing} is not; give both, or neither for image-only targets"
            )
        return self


class TargetGroupTarget(_Wire):
    Audio: TargetAudio | None = None
    Container: str | None = None
    Segment: SegmentSpec | None = None
    Speed: float | None = None
    StripMetadata: bool | None = None
    Subtitle: TargetSubtitle | None = None
    URI: str | None = None
    Video: TargetVideo | None = None


class TargetGroup(_Wire):
    Targets: OptionalList[TargetGroupTarget] = None
    URI: str | None = None
    """The master playlist (``.m3u8``)."""


class MediaConvertRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "MediaConvert"
    ACTION: ClassVar[str] = "CreateMediaConvertTask"
    TEMPLATED_BY_IMM: ClassVar[bool] = True
    TEMPLATE_VARIABLES: ClassVar[frozenset[str]] = frozenset(
        {"streamindex", "index", "resolution", "autoext"}
    )
    NOTIFICATION_NAMES_OUTPUTS: ClassVar[bool] = True

    AlignmentIndex: int | None = None
    Sources: list[MediaConvertSource] = Field(min_length=1)
    Tags: TagMap | None = None
    TargetGroups: OptionalList[TargetGroup] = None
    Targets: OptionalList[MediaConvertTarget] = None

    @classmethod
    def failure_echo(cls, request: Mapping[str, Any]) -> dict[str, Any]:
        """The documented ``Sources`` (``URI``, ``SubtitleSources``) only (docs/imm.md)."""
        sources = request.get("Sources", [])
        return {"Sources": [{"URI": source.get("URI", ""), "SubtitleSources": None} for source in sources]}

    @classmethod
    def target_fields(cls, params: Mapping[str, Any]) -> list[TargetField]:
        """``Targets[]`` and the ``TargetGroups[]`` (an HLS master playlist and its member targets)."""
        fields = super().target_fields(params)
        for index, target in _items(params, "Targets"):
            fields.extend(_media_target_fields(("Targets", index), target))
        for index, group in _items(params, "TargetGroups"):
            if isinstance(group.get("URI"), str):
                fields.append(TargetField(("TargetGroups", index, "URI"), group["URI"], FILE))
            for member_index, member in _items(group, "Targets"):
                path = ("TargetGroups", index, "Targets", member_index)
                fields.extend(_media_target_fields(path, member, "hls"))
        return fields


def _media_target_fields(
    path: tuple[str | int, ...], target: Mapping[str, Any], segment_format: str | None = None
) -> Iterator[TargetField]:
    segment = target.get("Segment")
    if isinstance(segment, Mapping) and isinstance(segment.get("Format"), str):
        segment_format = segment["Format"].lower()
    if isinstance(target.get("URI"), str):
        container = target.get("Container") if isinstance(target.get("Container"), str) else None
        yield TargetField((*path, "URI"), target["URI"], OutputShape("media", container, segment_format))
    image = target.get("Image")
    if isinstance(image, Mapping):
        for kind in ("Snapshots", "Sprites", "Animations"):
            for index, spec in _items(image, kind):
                if isinstance(spec.get("URI"), str):
                    image_format = spec.get("Format") if isinstance(spec.get("Format"), str) else None
                    shape = OutputShape("image", image_format=image_format)
                    yield TargetField((*path, "Image", kind, index, "URI"), spec["URI"], shape)
    subtitle = target.get("Subtitle")
    extract = subtitle.get("ExtractSubtitle") if isinstance(subtitle, Mapping) else None
    if isinstance(extract, Mapping) and isinstance(extract.get("URI"), str):
        yield TargetField(
            (*path, "Subtitle", "ExtractSubtitle", "URI"), extract["URI"], OutputShape("subtitle")
        )


# CreateOfficeConversionTask (docs/imm.md#tasks)


class RotatedSource(_Wire):
    """An image source of OfficeConversion (images to PDF), ImageSplicing and ImageToPDF."""

    Rotate: int | None = None
    URI: str = Field(min_length=1)


class OfficeConversionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "OfficeConversion"
    ACTION: ClassVar[str] = "CreateOfficeConversionTask"
    READS_SOURCE_URI: ClassVar[bool] = True
    TEMPLATED_BY_IMM: ClassVar[bool] = True
    TEMPLATE_VARIABLES: ClassVar[frozenset[str]] = frozenset({"index", "sheetname", "autoext"})

    EndPage: int | None = None
    FirstPage: bool | None = None
    FitToHeight: bool | None = None
    FitToWidth: bool | None = None
    HoldLineFeed: bool | None = None
    ImageDPI: int | None = None
    LongPicture: bool | None = None
    LongText: bool | None = None
    MaxSheetColumn: int | None = None
    MaxSheetRow: int | None = None
    Pages: str | None = None
    PaperHorizontal: bool | None = None
    PaperSize: str | None = None
    Password: str | None = None
    Quality: int | None = None
    ScalePercentage: int | None = None
    SheetCount: int | None = None
    SheetIndex: int | None = None
    ShowComments: bool | None = None
    SourceType: str | None = None
    SourceURI: str | None = None
    Sources: OptionalList[RotatedSource] = None
    """Sent in the form body, not the query (docs/imm.md#wire-protocol)."""
    StartPage: int | None = None
    Tags: TagMap | None = None
    TargetType: str = Field(min_length=1)
    TargetURI: str | None = None
    """A template (``{index}``, ``{autoext}``... see docs/imm.md#targeturi-templates)."""
    TargetURIPrefix: str | None = None
    TrimPolicy: TrimPolicySpec | None = None

    @model_validator(mode="after")
    def _one_source_one_target(self) -> OfficeConversionRequest:
        if self.SourceURI is None and self.Sources is None:
            raise ValueError("give SourceURI (the document to convert) or Sources (images)")
        if (self.TargetURI is None) == (self.TargetURIPrefix is None):
            raise ValueError("give exactly one of TargetURI (a template) and TargetURIPrefix")
        return self


# CreateFileCompressionTask (docs/imm.md#tasks)


class CompressionSource(_Wire):
    Alias: str | None = None
    """The path inside the archive; starts with ``/``."""
    Mode: str | None = None
    """``prefix`` (default: URI names a directory) or ``fullname``."""
    URI: str | None = None


#: CreateFileCompressionTask takes at most this many ``Sources`` rules (docs/imm.md#tasks).
MAX_COMPRESSION_SOURCES = 100


class FileCompressionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "FileCompression"
    ACTION: ClassVar[str] = "CreateFileCompressionTask"
    SOURCES_NAME_FOLDERS: ClassVar[bool] = True

    CompressedFormat: str | None = None
    SourceManifestURI: str | None = None
    Sources: OptionalList[CompressionSource] = None
    TargetURI: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source_list(self) -> FileCompressionRequest:
        if (self.Sources is None) == (self.SourceManifestURI is None):
            raise ValueError("give exactly one of Sources and SourceManifestURI")
        if self.Sources is not None and len(self.Sources) > MAX_COMPRESSION_SOURCES:
            raise ValueError(
                f"Sources holds {len(self.Sources)} rules, IMM takes at most {MAX_COMPRESSION_SOURCES}; "
                "put them in a JSON file and give its oss:// URI as SourceManifestURI (up to 80000 rules)"
            )
        return self


# CreateFileUncompressionTask and CreateArchiveFileInspectionTask (docs/imm.md#tasks)


class FileUncompressionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "FileUncompression"
    ACTION: ClassVar[str] = "CreateFileUncompressionTask"
    READS_SOURCE_URI: ClassVar[bool] = True
    TARGET_URI_NAMES_A_FOLDER: ClassVar[bool] = True

    Password: str | None = None
    SelectedFiles: OptionalList[str] = None
    SourceURI: str = Field(min_length=1)
    TargetURI: str | None = None


class ArchiveFileInspectionRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ArchiveFileInspection"
    ACTION: ClassVar[str] = "CreateArchiveFileInspectionTask"
    READS_SOURCE_URI: ClassVar[bool] = True

    Password: str | None = None
    SourceURI: str | None = None


# CreateImageSplicingTask and CreateImageToPDFTask (docs/imm.md#tasks)


class ImageSplicingRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ImageSplicing"
    ACTION: ClassVar[str] = "CreateImageSplicingTask"

    Align: int | None = None
    BackgroundColor: str | None = None
    Direction: str | None = None
    ImageFormat: str | None = None
    Margin: int | None = None
    Padding: int | None = None
    Quality: int | None = None
    ScaleType: str | None = None
    Sources: list[RotatedSource] = Field(min_length=1)
    Tags: TagMap | None = None
    TargetURI: str = Field(min_length=1)


class ImageToPdfRequest(TaskRequest):
    TASK_TYPE: ClassVar[str] = "ImageToPDF"
    ACTION: ClassVar[str] = "CreateImageToPDFTask"

    Sources: list[RotatedSource] = Field(min_length=1)
    """The pages, in order."""
    Tags: TagMap | None = None
    TargetURI: str = Field(min_length=1)


TASK_TYPES: dict[str, type[TaskRequest]] = {
    request.TASK_TYPE: request
    for request in (
        MediaConvertRequest,
        OfficeConversionRequest,
        FileCompressionRequest,
        FileUncompressionRequest,
        ArchiveFileInspectionRequest,
        ImageSplicingRequest,
        ImageToPdfRequest,
    )
}
"""The task types immflow starts, keyed by TaskType."""

TASK_REQUESTS_BY_ACTION: dict[str, type[TaskRequest]] = {
    request.ACTION: request for request in TASK_TYPES.values()
}

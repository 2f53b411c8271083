"""CreateMediaConvertTask (docs/imm.md#tasks, Appendix B): the request and its structs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from immflow.tasks import (
    FILE,
    OptionalList,
    OutputShape,
    TagMap,
    TargetField,
    TaskRequest,
    _items,
    _Wire,
)


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

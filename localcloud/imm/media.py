"""CreateMediaConvertTask, done with ffmpeg (docs/imm.md#tasks).

What is done locally:

* Sources: ``URI``, ``StartTime``, ``Duration``, ``DisableVideo``, ``DisableAudio``. Several sources
  are concatenated in list order (first re-encoded to one intermediate at the size and rate of
  the ``AlignmentIndex`` source, then processed like one source).
* Targets with ``Container`` + ``URI``: containers mp4, mkv, mov, ts, flv, avi, asf, webm (video)
  and mp3, aac, m4a, flac, oga, opus, ac3, wav (audio only). ``mxf`` is refused (this ffmpeg's
  MXF muxer only takes broadcast codecs). ``Segment`` ``hls`` (playlist + ``.ts``, or ``.m4s``
  for ``Container: mp4``); ``dash`` is refused.
  Video: ``Codec`` copy/h264/h265/vp9, ``Resolution`` (``WxH``, ``Wx``, ``xH``), ``ScaleType``
  (stretch, crop, fill, fit), ``FrameRate``, ``Bitrate`` or ``CRF`` (default CRF 23), ``MaxBitrate``,
  ``BufferSize``, ``GOPSize``, ``BFrames``, ``Refs``, ``PixelFormat``, ``Rotation``, ``Stream``,
  ``DisableVideo``. The ``*Option`` fields (adaptive, fall) are read as ``fixed``.
  Audio: ``Codec`` copy/aac/mp3/vorbis/flac/ac3/opus (``amr`` is refused: no encoder here),
  ``Bitrate`` or ``Quality``, ``SampleRate``, ``Channel``, ``BitsPerSample``, ``Stream``,
  ``DisableAudio``. ``StripMetadata``.
* Images: ``Snapshots`` (jpg, png, webp), ``Sprites`` (jpg, png) and ``Animations`` (gif, webp),
  with ``StartTime``, ``Interval``, ``Number``, ``Mode`` (interval, average, keyframe; ``dhash``
  is approximated with ffmpeg's scene-change score against ``Threshold``), ``Width``/``Height``
  (pixels, or a ratio in (0, 1]), ``ScaleType``; sprites ``TileWidth``, ``TileHeight``,
  ``ScaleWidth``, ``ScaleHeight``, ``Pad``, ``Margin``; animations ``FrameRate``.

Refused at create time with ``NotImplemented``: ``TargetGroups``, ``Sources[].Attached``,
``Sources[].Subtitles``, ``Subtitle.ExtractSubtitle``, ``FilterVideo``, ``FilterAudio``,
``Speed`` other than 1, ``AttachedPicture``, ``Data``.

Output names (docs/imm.md#targeturi-templates, docs/imm.md#notifications): a target ``URI`` is a template
(``{autoext}`` = the container's extension, ``{resolution}`` = the output ``WxH``,
``{streamindex}`` = ``0``, ``{index}`` = ``1``); without an extension ``.<container>`` is added;
HLS writes ``<URI>.m3u8`` and segments ``<URI>-<n>.ts`` (``n`` from ``StartNumber``), or with
``{index}`` in the URI the segments use ``index`` = n and the playlist ``index`` = ``index``.
Image outputs are numbered with ``{index}`` from 1; a URI with no ``{index}`` and no extension
gets ``_<streamindex>_<index>.<format>`` appended (OSS frame-capture style); a URI with an
extension but no ``{index}`` keeps only the last image, since every image would overwrite it.

Notification ``content`` (docs/imm.md#notifications leaves per-file listing open): ``Sources`` lists every
source; ``Targets`` has one entry per requested target whose ``URI`` is the media file written
(the playlist for HLS; segments are not listed, the playlist names them) and whose ``Image``
lists **every** snapshot, sprite and animation file written, one entry each.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from immflow.ossuri import OssUri

from localcloud.imm import ffmpeg, inputs
from localcloud.imm.context import TaskContext
from localcloud.imm.errors import TaskFailure, invalid_argument, not_available

ACTION = "CreateMediaConvertTask"

#: Container → (ffmpeg muxer, file extension, audio only).
CONTAINERS: Mapping[str, tuple[str, str, bool]] = {
    "mp4": ("mp4", "mp4", False),
    "mkv": ("matroska", "mkv", False),
    "mov": ("mov", "mov", False),
    "ts": ("mpegts", "ts", False),
    "flv": ("flv", "flv", False),
    "avi": ("avi", "avi", False),
    "asf": ("asf", "asf", False),
    "webm": ("webm", "webm", False),
    "mp3": ("mp3", "mp3", True),
    "aac": ("adts", "aac", True),
    "m4a": ("ipod", "m4a", True),
    "flac": ("flac", "flac", True),
    "oga": ("ogg", "oga", True),
    "opus": ("opus", "opus", True),
    "ac3": ("ac3", "ac3", True),
    "wav": ("wav", "wav", True),
}
VIDEO_ENCODERS: Mapping[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast"],
    "h265": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
}
AUDIO_ENCODERS: Mapping[str, str] = {
    "aac": "aac",
    "mp3": "libmp3lame",
    "vorbis": "libvorbis",
    "flac": "flac",
    "ac3": "ac3",
    "opus": "libopus",
}
SNAPSHOT_FORMATS = frozenset({"jpg", "png", "webp"})
SPRITE_FORMATS = frozenset({"jpg", "png"})
ANIMATION_FORMATS = frozenset({"gif", "webp"})
_RESOLUTION = re.compile(r"^(\d*)x(\d*)$")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


# ------------------------------------------------------------------------------------------------
# create-time checks of what this local IMM can do


def check_supported(params: Mapping[str, Any]) -> None:
    """Refuse, before a task exists, the parts of a request this local IMM cannot do."""
    if params.get("TargetGroups"):
        raise not_available(ACTION, "TargetGroups (HLS master playlists) are not supported locally.")
    sources = params.get("Sources") or []
    for index, source in enumerate(sources):
        if not isinstance(source, dict):
            continue
        if source.get("Attached"):
            raise not_available(
                ACTION, f"Sources[{index}].Attached (extra synchronized streams) is not supported."
            )
        if source.get("Subtitles"):
            raise not_available(ACTION, f"Sources[{index}].Subtitles (external subtitles) is not supported.")
    for index, target in enumerate(params.get("Targets") or []):
        if isinstance(target, dict):
            _check_target(target, f"Targets[{index}]")


def _check_target(target: Mapping[str, Any], where: str) -> None:
    container = target.get("Container")
    if container:
        if container == "mxf":
            raise not_available(ACTION, f"{where}.Container mxf is not supported by the local ffmpeg build.")
        if container not in CONTAINERS:
            raise invalid_argument(
                f"{where}.Container {container!r} is not one of {', '.join(sorted(CONTAINERS))}."
            )
    if bool(container) != bool(target.get("URI")):
        raise invalid_argument(f"{where}: Container and URI must be given together.")
    segment = target.get("Segment") or {}
    if segment:
        if segment.get("Format", "hls") != "hls":
            raise not_available(
                ACTION, f"{where}.Segment.Format {segment.get('Format')!r}: only hls is supported."
            )
        if container not in ("ts", "mp4"):
            raise invalid_argument(f"{where}.Segment (HLS) needs Container ts or mp4, not {container!r}.")
    speed = target.get("Speed")
    if speed not in (None, 1, 1.0):
        raise not_available(ACTION, f"{where}.Speed (default playback speed) is not supported.")
    for name in ("AttachedPicture", "Data"):
        if target.get(name):
            raise not_available(ACTION, f"{where}.{name} is not supported.")
    video = target.get("Video") or {}
    if video.get("FilterVideo"):
        raise not_available(ACTION, f"{where}.Video.FilterVideo (watermarks, delogo, blur) is not supported.")
    transcode = video.get("TranscodeVideo") or {}
    codec = transcode.get("Codec", "copy")
    if codec not in ("copy", *VIDEO_ENCODERS):
        raise invalid_argument(
            f"{where}.Video.TranscodeVideo.Codec {codec!r} is not one of copy, h264, h265, vp9."
        )
    if transcode.get("Resolution") and not _RESOLUTION.match(str(transcode["Resolution"])):
        raise invalid_argument(
            f"{where}.Video.TranscodeVideo.Resolution {transcode['Resolution']!r} is not WxH, Wx or xH."
        )
    audio = target.get("Audio") or {}
    if audio.get("FilterAudio"):
        raise not_available(ACTION, f"{where}.Audio.FilterAudio (track mixing) is not supported.")
    audio_codec = (audio.get("TranscodeAudio") or {}).get("Codec", "copy")
    if audio_codec == "amr":
        raise not_available(
            ACTION, f"{where}.Audio.TranscodeAudio.Codec amr: this ffmpeg has no AMR encoder."
        )
    if audio_codec not in ("copy", *AUDIO_ENCODERS):
        raise invalid_argument(f"{where}.Audio.TranscodeAudio.Codec {audio_codec!r} is not supported.")
    subtitle = target.get("Subtitle") or {}
    if subtitle.get("ExtractSubtitle"):
        raise not_available(ACTION, f"{where}.Subtitle.ExtractSubtitle is not supported.")
    image = target.get("Image") or {}
    for kind, formats in (
        ("Snapshots", SNAPSHOT_FORMATS),
        ("Sprites", SPRITE_FORMATS),
        ("Animations", ANIMATION_FORMATS),
    ):
        for index, spec in enumerate(image.get(kind) or []):
            fmt = str(spec.get("Format") or "").lower()
            if fmt not in formats:
                raise invalid_argument(
                    f"{where}.Image.{kind}[{index}].Format {spec.get('Format')!r} is not one of "
                    f"{', '.join(sorted(formats))}."
                )
            if not spec.get("URI"):
                raise invalid_argument(f"{where}.Image.{kind}[{index}].URI is required.")


# ------------------------------------------------------------------------------------------------
# the task


def run(ctx: TaskContext) -> dict[str, Any]:
    request = ctx.request
    sources = [OssUri.parse(s["URI"], field="Sources.URI") for s in request["Sources"]]
    targets = request.get("Targets") or []
    steps = 1 + (len(sources) > 1) + sum(_target_steps(t) for t in targets)
    done = 0

    def step_progress(fraction: float) -> None:
        ctx.report_progress((done + fraction) / steps)

    files = [ctx.fetch(uri, f"source-{i}{_suffix(uri)}") for i, uri in enumerate(sources)]
    done += 1
    infos = [ffmpeg.probe(path) for path in files]
    if len(files) > 1:
        source_file, info = _concatenate(ctx, request, files, infos, step_progress)
        input_options: list[str] = []
        done += 1
    else:
        source_file, info = files[0], infos[0]
        input_options = _trim_options(request["Sources"][0])
        info = _trimmed(info, request["Sources"][0])
    disable = _disabled_kinds(request["Sources"]) if len(files) == 1 else set()
    primary = sources[0]

    results = []
    for index, target in enumerate(targets):
        where = f"Targets[{index}]"
        result: dict[str, Any] = {"URI": "", "Subtitle": {"Extract": {"URI": ""}}}
        if target.get("Container"):
            result["URI"] = str(
                _transcode(
                    ctx, target, where, primary, source_file, input_options, info, disable, step_progress
                )
            )
            done += 1
        image_result: dict[str, Any] = {"Sprites": None, "Snapshots": None, "Animations": None}
        image = target.get("Image") or {}
        for kind in ("Snapshots", "Sprites", "Animations"):
            specs = image.get(kind) or []
            if not specs:
                continue
            written: list[dict[str, str]] = []
            for spec_index, spec in enumerate(specs):
                uris = _images(
                    ctx,
                    kind,
                    spec,
                    f"{where}.Image.{kind}[{spec_index}]",
                    primary,
                    source_file,
                    input_options,
                    info,
                )
                written.extend({"URI": str(uri)} for uri in uris)
                done += 1
                step_progress(0)
            image_result[kind] = written
        result["Image"] = image_result
        results.append(result)
    return {
        "Sources": [{"URI": str(uri), "SubtitleSources": None} for uri in sources],
        "Targets": results,
    }


def _target_steps(target: Mapping[str, Any]) -> int:
    image = target.get("Image") or {}
    return bool(target.get("Container")) + sum(
        len(image.get(k) or []) for k in ("Snapshots", "Sprites", "Animations")
    )


def _suffix(uri: OssUri) -> str:
    return f".{uri.ext}" if uri.ext and uri.ext.isalnum() else ""


def _number(spec: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    value = spec.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TaskFailure("InvalidArgument", f"{name} must be a number, not {value!r}.") from None


def _trim_options(source: Mapping[str, Any]) -> list[str]:
    options = []
    start = _number(source, "StartTime")
    duration = _number(source, "Duration")
    if start > 0:
        options += ["-ss", f"{start:g}"]
    if duration > 0:
        options += ["-t", f"{duration:g}"]
    return options


def _trimmed(info: ffmpeg.MediaInfo, source: Mapping[str, Any]) -> ffmpeg.MediaInfo:
    start = _number(source, "StartTime")
    duration = _number(source, "Duration")
    remaining = max(0.0, info.duration - start)
    if duration > 0:
        remaining = min(remaining, duration)
    return ffmpeg.MediaInfo(remaining, info.streams, info.format_name)


def _disabled_kinds(sources: list[Mapping[str, Any]]) -> set[str]:
    disabled = set()
    if sources[0].get("DisableVideo"):
        disabled.add("video")
    if sources[0].get("DisableAudio"):
        disabled.add("audio")
    return disabled


def _concatenate(
    ctx: TaskContext,
    request: Mapping[str, Any],
    files: list[Path],
    infos: list[ffmpeg.MediaInfo],
    progress: Any,
) -> tuple[Path, ffmpeg.MediaInfo]:
    """Join the sources in order into one intermediate file (a near-lossless H.264/FLAC Matroska)."""
    specs = request["Sources"]
    align = int(request.get("AlignmentIndex") or 0)
    if not 0 <= align < len(files):
        raise TaskFailure("InvalidArgument", f"AlignmentIndex {align} is not the index of a source.")
    reference = infos[align].video
    has_video = all(info.video for info in infos) and not any(s.get("DisableVideo") for s in specs)
    has_audio = all(info.audio for info in infos) and not any(s.get("DisableAudio") for s in specs)
    if not has_video and not has_audio:
        raise TaskFailure("InvalidArgument", "The sources share no video or audio stream to concatenate.")
    args: list[str] = []
    filters = []
    labels = []
    total = 0.0
    for index, (path, spec, info) in enumerate(zip(files, specs, infos, strict=True)):
        args += [*_trim_options(spec), "-i", str(path)]
        total += _trimmed(info, spec).duration
        if has_video and reference:
            fps = reference.fps or 25
            filters.append(
                f"[{index}:v:0]scale={reference.width}:{reference.height}:force_original_aspect_ratio=decrease,"
                f"pad={reference.width}:{reference.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps:g},format=yuv420p[v{index}]"
            )
            labels.append(f"[v{index}]")
        if has_audio:
            filters.append(f"[{index}:a:0]aresample=48000,aformat=channel_layouts=stereo[a{index}]")
            labels.append(f"[a{index}]")
    filters.append(
        f"{''.join(labels)}concat=n={len(files)}:v={int(has_video)}:a={int(has_audio)}"
        + ("[v]" if has_video else "")
        + ("[a]" if has_audio else "")
    )
    out = ctx.workdir / "joined.mkv"
    maps = (["-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12"] if has_video else []) + (
        ["-map", "[a]", "-c:a", "flac"] if has_audio else []
    )
    ffmpeg.run(
        [*args, "-filter_complex", ";".join(filters), *maps, str(out)],
        duration=total,
        on_progress=progress,
        timeout=ctx.media_timeout,
    )
    return out, ffmpeg.probe(out)


# ------------------------------------------------------------------------------------------------
# media targets


def _resolution(transcode: Mapping[str, Any], info: ffmpeg.MediaInfo) -> tuple[int, int] | None:
    text = str(transcode.get("Resolution") or "")
    match = _RESOLUTION.match(text)
    if not text or not match:
        return None
    width, height = (int(v) if v else 0 for v in match.groups())
    if transcode.get("AdaptiveResolutionDirection") and info.video and info.video.height > info.video.width:
        width, height = height, width
    return width, height


def _scale_filter(width: int, height: int, scale_type: str) -> list[str]:
    """ffmpeg filters for IMM's ScaleType; a 0 side keeps the aspect ratio (rounded to even)."""
    if not width or not height:
        return [f"scale={width or -2}:{height or -2}"]
    scale_type = (scale_type or "stretch").lower()
    if scale_type == "crop":
        return [f"scale={width}:{height}:force_original_aspect_ratio=increase", f"crop={width}:{height}"]
    if scale_type == "fill":
        return [
            f"scale={width}:{height}:force_original_aspect_ratio=decrease",
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2",
        ]
    if scale_type == "fit":
        return [f"scale={width}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2"]
    return [f"scale={width}:{height}", "setsar=1"]


def _stream_maps(kind: str, streams: list[int] | None, count: int) -> list[str]:
    letter = kind[0]
    if not streams:
        return ["-map", f"0:{letter}:0?"]
    if any(s > 100 for s in streams):
        return ["-map", f"0:{letter}?"]
    maps = []
    for stream in streams:
        if stream >= count:
            raise TaskFailure("InvalidArgument", f"The source has no {kind} stream {stream} ({count} found).")
        maps += ["-map", f"0:{letter}:{stream}"]
    return maps


def _video_args(target: Mapping[str, Any], info: ffmpeg.MediaInfo, where: str) -> tuple[list[str], str]:
    """Arguments for the video stream and the ``{resolution}`` of the output."""
    video = target.get("Video") or {}
    transcode = video.get("TranscodeVideo") or {}
    source = info.video
    resolution = f"{source.width}x{source.height}" if source else ""
    args = _stream_maps("video", video.get("Stream"), len(info.of_kind("video")))
    codec = transcode.get("Codec", "copy")
    if codec == "copy":
        return [*args, "-c:v", "copy"], resolution
    args += VIDEO_ENCODERS[codec]
    filters: list[str] = []
    rotation = int(transcode.get("Rotation") or 0)
    filters += {90: ["transpose=1"], 180: ["hflip", "vflip"], 270: ["transpose=2"]}.get(rotation, [])
    size = _resolution(transcode, info)
    if size:
        filters += _scale_filter(*size, str(transcode.get("ScaleType") or "stretch"))
        resolution = _output_resolution(size, source, rotation)
    if filters:
        args += ["-vf", ",".join(filters)]
    if transcode.get("FrameRate"):
        args += ["-r", f"{float(transcode['FrameRate']):g}"]
    if transcode.get("Bitrate"):
        args += ["-b:v", str(int(transcode["Bitrate"]))]
    else:
        crf = transcode.get("CRF", 23)
        args += ["-crf", f"{float(crf):g}"] + (["-b:v", "0"] if codec == "vp9" else [])
    for name, option in (
        ("MaxBitrate", "-maxrate"),
        ("BufferSize", "-bufsize"),
        ("GOPSize", "-g"),
        ("BFrames", "-bf"),
        ("Refs", "-refs"),
    ):
        if transcode.get(name) is not None:
            args += [option, str(int(transcode[name]))]
    args += ["-pix_fmt", str(transcode.get("PixelFormat") or "yuv420p")]
    if codec == "h265" and target.get("Container") in ("mp4", "mov"):
        args += ["-tag:v", "hvc1"]
    return args, resolution


def _output_resolution(size: tuple[int, int], source: ffmpeg.Stream | None, rotation: int) -> str:
    width, height = size
    if source and (not width or not height):
        src_w, src_h = (
            (source.height, source.width) if rotation in (90, 270) else (source.width, source.height)
        )
        if not width:
            width = 2 * round(src_w * height / src_h / 2)
        else:
            height = 2 * round(src_h * width / src_w / 2)
    return f"{width}x{height}"


def _audio_args(target: Mapping[str, Any], info: ffmpeg.MediaInfo) -> list[str]:
    audio = target.get("Audio") or {}
    transcode = audio.get("TranscodeAudio") or {}
    args = _stream_maps("audio", audio.get("Stream"), len(info.of_kind("audio")))
    codec = transcode.get("Codec", "copy")
    if codec == "copy" and target.get("Container") != "wav":
        return [*args, "-c:a", "copy"]
    # WAV holds PCM only: "copy" there means uncompressed audio, not a failed mux.
    args += ["-c:a", AUDIO_ENCODERS.get(codec, "pcm_s16le")]
    if transcode.get("Bitrate"):
        args += ["-b:a", str(int(transcode["Bitrate"]))]
    elif transcode.get("Quality") is not None and codec in ("mp3", "vorbis"):
        quality = int(transcode["Quality"])
        args += ["-q:a", f"{9 - quality * 9 // 100}" if codec == "mp3" else f"{quality / 10:g}"]
    if transcode.get("SampleRate"):
        args += ["-ar", str(int(transcode["SampleRate"]))]
    if transcode.get("Channel"):
        args += ["-ac", str(int(transcode["Channel"]))]
    if codec == "flac" and transcode.get("BitsPerSample"):
        args += ["-sample_fmt", "s16" if int(transcode["BitsPerSample"]) == 16 else "s32"]
    return args


def _transcode(
    ctx: TaskContext,
    target: Mapping[str, Any],
    where: str,
    primary: OssUri,
    source_file: Path,
    input_options: list[str],
    info: ffmpeg.MediaInfo,
    disable: set[str],
    progress: Any,
) -> OssUri:
    container = str(target["Container"])
    muxer, extension, audio_only = CONTAINERS[container]
    segment = target.get("Segment") or {}
    video = target.get("Video") or {}
    audio = target.get("Audio") or {}
    args = [*input_options, "-i", str(source_file)]
    resolution = ""
    if audio_only or video.get("DisableVideo") or "video" in disable or not info.video:
        args.append("-vn")
    else:
        video_args, resolution = _video_args(target, info, where)
        args += video_args
    if audio.get("DisableAudio") or "audio" in disable or not info.audio:
        args.append("-an")
    else:
        args += _audio_args(target, info)
    args += ["-sn", "-dn"]
    if target.get("StripMetadata"):
        args += ["-map_metadata", "-1"]
    values = {"autoext": extension, "resolution": resolution, "streamindex": "0", "index": "1"}
    template = str(target["URI"])
    if segment:
        return _hls(ctx, target, where, primary, args, info, values, progress)
    uri = ctx.target(template, primary, values, field=f"{where}.URI")
    if not _EXTENSION.search(uri.key):
        uri = uri.child(f"{uri.key}.{extension}")
    out = ctx.workdir / f"target-{where[8:-1]}.{extension}"
    if muxer in ("mp4", "mov", "ipod"):
        args += ["-movflags", "+faststart"]
    result = ffmpeg.run(
        [*args, "-f", muxer, str(out)],
        duration=info.duration,
        on_progress=progress,
        timeout=ctx.media_timeout,
    )
    _check_complete(result, info, args)
    ctx.oss.upload(uri, out)
    return uri


def _check_complete(result: ffmpeg.RunResult, info: ffmpeg.MediaInfo, args: list[str]) -> None:
    """Fail the task when the source turned out to be cut off (see `localcloud.imm.inputs`).

    The decoded length is compared with the stated one only when the output keeps every kind of
    stream the source has: a video track shorter than its audio is no defect of an audio-only output.
    """
    if result.truncated:
        raise TaskFailure(
            "InvalidArgument",
            f"The source is damaged or truncated: its data ends early (it decodes to {result.output_seconds:.2f} s "
            f"of the {info.duration:.2f} s its container states).",
        )
    dropped = ("-vn" in args and info.video) or ("-an" in args and info.audio)
    if not dropped:
        inputs.check_decoded_duration(info.duration, result.output_seconds)


def _hls(
    ctx: TaskContext,
    target: Mapping[str, Any],
    where: str,
    primary: OssUri,
    args: list[str],
    info: ffmpeg.MediaInfo,
    values: dict[str, str],
    progress: Any,
) -> OssUri:
    segment = target["Segment"]
    duration = _number(segment, "Duration", 10.0)
    start_number = int(segment.get("StartNumber") or 0)
    fmp4 = target["Container"] == "mp4"
    segment_ext = "m4s" if fmp4 else "ts"
    transcoding = ((target.get("Video") or {}).get("TranscodeVideo") or {}).get("Codec", "copy") != "copy"
    if transcoding:
        # Segments are cut at keyframes only; without this a 250-frame GOP gives one long segment.
        args += ["-force_key_frames", f"expr:gte(t,n_forced*{duration:g})"]
    folder = ctx.workdir / f"hls-{where[8:-1]}"
    folder.mkdir()
    args += [
        "-f",
        "hls",
        "-hls_time",
        f"{duration:g}",
        "-hls_playlist_type",
        "vod",
        "-start_number",
        str(start_number),
    ]
    args += ["-hls_segment_filename", str(folder / f"seg%d.{segment_ext}")]
    if fmp4:
        args += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"]
    result = ffmpeg.run(
        [*args, str(folder / "playlist.m3u8")],
        duration=info.duration,
        on_progress=progress,
        timeout=ctx.media_timeout,
    )
    _check_complete(result, info, args)

    template = str(target["URI"])
    if "{index}" in template.replace("{{", ""):
        playlist = ctx.target(
            template, primary, {**values, "autoext": "m3u8", "index": "index"}, field=f"{where}.URI"
        )

        def segment_uri(name: str, number: str, ext: str) -> OssUri:
            return ctx.target(
                template, primary, {**values, "autoext": ext, "index": number}, field=f"{where}.URI"
            )
    else:
        base = ctx.target(template, primary, {**values, "autoext": "m3u8"}, field=f"{where}.URI")
        stem = base.key[: -len(".m3u8")] if base.key.endswith(".m3u8") else base.key
        playlist = base.child(stem + ".m3u8")

        def segment_uri(name: str, number: str, ext: str) -> OssUri:
            return base.child(f"{stem}-{number}.{ext}")

    renamed: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name == "playlist.m3u8":
            continue
        number = "init" if path.name == "init.mp4" else path.stem[3:]
        uri = segment_uri(path.name, number, "mp4" if path.name == "init.mp4" else segment_ext)
        ctx.oss.upload(uri, path)
        renamed[path.name] = posixpath.relpath(uri.key, posixpath.dirname(playlist.key) or ".")
    text = (folder / "playlist.m3u8").read_text()
    text = re.sub(r"(seg\d+\.\w+|init\.mp4)", lambda m: renamed.get(m.group(1), m.group(1)), text)
    ctx.oss.write_bytes(playlist, text.encode(), "application/vnd.apple.mpegurl")
    return playlist


# ------------------------------------------------------------------------------------------------
# images


def _size(value: Any, source: int) -> int:
    """Pixels, or a ratio of the source in (0, 1]; 0 when unset. Rounded down to even for the encoders."""
    if value in (None, ""):
        return 0
    number = float(value)
    if number <= 0:
        return 0
    pixels = round(source * number) if number <= 1 else round(number)
    return max(2, pixels - pixels % 2)


def _frame_selection(
    spec: Mapping[str, Any], info: ffmpeg.MediaInfo, start: float
) -> tuple[list[str], list[str], int]:
    """(input options, filters, frame limit) choosing the frames of a snapshot/sprite/animation spec."""
    mode = str(spec.get("Mode") or "interval").lower()
    interval = _number(spec, "Interval")
    number = int(_number(spec, "Number", 0))
    remaining = max(0.001, info.duration - start)
    input_options: list[str] = []
    filters: list[str] = []
    if mode == "keyframe":
        input_options = ["-skip_frame", "nokey"]
    elif mode == "dhash":
        threshold = _number(spec, "Threshold", 0) / 100
        filters.append(f"select='eq(n\\,0)+gt(scene\\,{threshold:g})'")
    elif mode == "average" or (interval <= 0 and number > 1):
        count = number or 1
        filters.append(f"fps={count / remaining:.6f}")
    elif interval > 0:
        filters.append(f"fps=1/{interval:g}:start_time=0")
    elif number == 0:
        number = 1
    return input_options, filters, number


def _images(
    ctx: TaskContext,
    kind: str,
    spec: Mapping[str, Any],
    where: str,
    primary: OssUri,
    source_file: Path,
    input_options: list[str],
    info: ffmpeg.MediaInfo,
) -> list[OssUri]:
    if not info.video:
        raise TaskFailure("InvalidArgument", f"{where}: the source has no video stream to take images from.")
    fmt = str(spec["Format"]).lower()
    start = _number(spec, "StartTime")
    options, filters, number = _frame_selection(spec, info, start)
    args = [*input_options, *options]
    if start > 0:
        args += ["-ss", f"{start:g}"]
    args += ["-i", str(source_file), "-an", "-sn"]
    video = info.video
    folder = ctx.workdir / f"{kind}-{where.replace('.', '-').replace('[', '').replace(']', '')}"
    folder.mkdir()
    if kind == "Snapshots":
        width, height = _size(spec.get("Width"), video.width), _size(spec.get("Height"), video.height)
        if width or height:
            filters += _scale_filter(width, height, str(spec.get("ScaleType") or "stretch"))
        pattern = folder / f"%d.{fmt}"
        args += ["-fps_mode", "vfr"] + (["-vf", ",".join(filters)] if filters else [])
        args += (["-frames:v", str(number)] if number else []) + (["-q:v", "2"] if fmt == "jpg" else [])
        args += ["-f", "image2", str(pattern)]
    elif kind == "Sprites":
        columns = int(_number(spec, "TileWidth", 6))
        rows = int(_number(spec, "TileHeight", 6))
        width = _size(spec.get("ScaleWidth", 1), video.width)
        height = _size(spec.get("ScaleHeight", 1), video.height)
        pad = int(_number(spec, "Pad", 2))
        margin = int(_number(spec, "Margin", 2))
        # trim counts the frames that reach it, so Number limits tiles, not sprite images.
        chain = [*filters, *([f"trim=end_frame={number}"] if number else [])]
        chain += _scale_filter(width, height, str(spec.get("ScaleType") or "stretch"))
        chain.append(f"tile={columns}x{rows}:padding={pad}:margin={margin}")
        args += ["-fps_mode", "vfr", "-vf", ",".join(chain)]
        args += (["-q:v", "2"] if fmt == "jpg" else []) + ["-f", "image2", str(folder / f"%d.{fmt}")]
    else:
        width, height = _size(spec.get("Width"), video.width), _size(spec.get("Height"), video.height)
        frame_rate = _number(spec, "FrameRate", 10)
        if width or height:
            filters += _scale_filter(width, height, str(spec.get("ScaleType") or "stretch"))
        if not spec.get("Interval") and (spec.get("Mode") or "interval") == "interval":
            filters = [f"fps={frame_rate:g}", *[f for f in filters if not f.startswith("fps=")]]
        else:
            filters.append(f"setpts=N/({frame_rate:g}*TB)")
        limit = number or int(frame_rate * min(remaining_seconds(info, start), 10))
        args += ["-frames:v", str(limit)]
        if fmt == "gif":
            graph = ",".join([*filters, "split[a][b]"]) + ";[a]palettegen[p];[b][p]paletteuse"
            args += [
                "-filter_complex",
                graph,
                "-loop",
                "0",
                "-r",
                f"{frame_rate:g}",
                "-f",
                "gif",
                str(folder / "1.gif"),
            ]
        else:
            args += [
                "-vf",
                ",".join(filters),
                "-c:v",
                "libwebp",
                "-loop",
                "0",
                "-r",
                f"{frame_rate:g}",
                "-f",
                "webp",
                str(folder / "1.webp"),
            ]
    ffmpeg.run(args, timeout=ctx.media_timeout)
    produced = sorted(folder.iterdir(), key=lambda p: int(p.stem))
    if not produced:
        raise TaskFailure(
            "InvalidArgument",
            f"{where}: no image was produced (is StartTime {start:g} s past the end of the source?).",
        )
    return _upload_numbered(ctx, produced, str(spec["URI"]), fmt, primary, where)


def remaining_seconds(info: ffmpeg.MediaInfo, start: float) -> float:
    return max(0.1, info.duration - start)


def _upload_numbered(
    ctx: TaskContext, files: list[Path], template: str, fmt: str, primary: OssUri, where: str
) -> list[OssUri]:
    has_index = "{index}" in template.replace("{{", "")
    uris = []
    if not has_index:
        probe_uri = ctx.target(
            template, primary, {"autoext": fmt, "streamindex": "0", "index": "1"}, field=f"{where}.URI"
        )
        if _EXTENSION.search(probe_uri.key):
            # Every image would be written to the same object: only the last one stays, as in the cloud.
            ctx.oss.upload(probe_uri, files[-1])
            return [probe_uri]
    for number, path in enumerate(files, start=1):
        values = {"autoext": fmt, "streamindex": "0", "index": str(number)}
        uri = ctx.target(template, primary, values, field=f"{where}.URI")
        if not has_index:
            uri = uri.child(f"{uri.key}_0_{number}.{fmt}")
        ctx.oss.upload(uri, path)
        uris.append(uri)
    return uris

"""CreateMediaConvertTask for real: outputs are probed with the same ffmpeg, images opened with Pillow."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from immflow.events.imm import ImmTaskResult
from PIL import GifImagePlugin, Image

from localcloud.imm.ffmpeg import MediaInfo, probe
from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox, MakeImm, wait_task
from tests.support.media import make_video
from tests.support.wait import wait_until

pytestmark = pytest.mark.media

Source = models.CreateMediaConvertTaskRequestSources
Target: TypeAlias = models.CreateMediaConvertTaskRequestTargets


def _video(codec: str, resolution: str | None = None, **options: Any) -> models.TargetVideo:
    return models.TargetVideo(
        transcode_video=models.TargetVideoTranscodeVideo(codec=codec, resolution=resolution, **options)
    )


def _audio(codec: str, **options: Any) -> models.TargetAudio:
    return models.TargetAudio(transcode_audio=models.TargetAudioTranscodeAudio(codec=codec, **options))


def _convert(
    imm: Client,
    inbox: Inbox,
    notify: models.Notification,
    sources: list[str],
    targets: list[Target],
    **extra: Any,
) -> ImmTaskResult:
    request = models.CreateMediaConvertTaskRequest(
        project_name=PROJECT,
        sources=[Source(uri=s) for s in sources],
        targets=targets,
        notification=notify,
        **extra,
    )
    task_id = imm.create_media_convert_task(request).body.task_id
    return inbox.wait(task_id, timeout=120).content


def _probe(cloud: Cloud, uri: str, tmp_path: Path) -> MediaInfo:
    key = uri.removeprefix(f"oss://{cloud.bucket.bucket_name}/")
    local = tmp_path / key.replace("/", "_")
    cloud.bucket.get_object_to_file(key, str(local))
    return probe(local)


def _image(cloud: Cloud, uri: str) -> Image.Image:
    key = uri.removeprefix(f"oss://{cloud.bucket.bucket_name}/")
    return Image.open(io.BytesIO(cloud.bucket.get_object(key).read()))


def test_several_targets_in_one_task(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, video_key: str, tmp_path: Path
) -> None:
    result = _convert(
        imm,
        inbox,
        notify,
        [cloud.uri(video_key)],
        [
            Target(
                container="mp4",
                uri="oss://{bucket}/out/{dirname}/{barename}-{resolution}",
                video=_video("h264", "160x", crf=30, frame_rate=15),
                audio=_audio("aac", bitrate=64000, sample_rate=22050, channel=1),
            ),
            Target(
                container="mkv", uri="oss://{bucket}/out/{barename}.{autoext}", video=_video("h265", "x96")
            ),
            Target(
                container="webm",
                uri="oss://{bucket}/out/{barename}",
                video=_video("vp9", "128x96", scale_type="fill"),
                audio=_audio("opus"),
            ),
            Target(
                container="mp3", uri="oss://{bucket}/out/{barename}.mp3", audio=_audio("mp3", bitrate=96000)
            ),
            Target(
                container="wav",
                uri="oss://{bucket}/out/{barename}",
                audio=models.TargetAudio(transcode_audio=models.TargetAudioTranscodeAudio(sample_rate=8000)),
            ),
        ],
    )
    assert result.Status == "Succeeded", result.Message
    uris = [t.URI for t in result.Targets or []]
    assert uris == [
        cloud.uri("out/in/videos/clip-160x120.mp4"),
        cloud.uri("out/clip.mkv"),
        cloud.uri("out/clip.webm"),
        cloud.uri("out/clip.mp3"),
        cloud.uri("out/clip.wav"),
    ]
    mp4, mkv, webm, mp3, wav = (_probe(cloud, uri, tmp_path) for uri in uris)
    assert mp4.video and (mp4.video.codec, mp4.video.width, mp4.video.height, mp4.video.fps) == (
        "h264",
        160,
        120,
        15,
    )
    assert mp4.audio and (mp4.audio.codec, mp4.audio.sample_rate, mp4.audio.channels) == (
        "aac",
        22050,
        "mono",
    )
    assert abs(mp4.duration - 2.0) < 0.2
    assert mkv.video and (mkv.video.codec, mkv.video.width, mkv.video.height) == ("hevc", 128, 96)
    assert webm.video and webm.audio and (webm.video.codec, webm.audio.codec) == ("vp9", "opus")
    assert mp3.video is None and mp3.audio and mp3.audio.codec == "mp3"
    assert wav.audio and (wav.audio.codec, wav.audio.sample_rate) == ("pcm_s16le", 8000)
    assert result.Sources is not None and cloud.uri(video_key) == result.Sources[0].URI


def test_hls_segments_and_playlist(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, video_key: str
) -> None:
    result = _convert(
        imm,
        inbox,
        notify,
        [cloud.uri(video_key)],
        [
            Target(
                container="ts",
                uri="oss://{bucket}/hls/{barename}",
                segment=models.CreateMediaConvertTaskRequestTargetsSegment(format="hls", duration=0.5),
                video=_video("h264", "160x120"),
            )
        ],
    )
    assert result.Status == "Succeeded", result.Message
    assert result.Targets and cloud.uri("hls/clip.m3u8") == result.Targets[0].URI
    playlist = cloud.bucket.get_object("hls/clip.m3u8").read().decode()
    segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(segments) >= 3 and segments[0] == "clip-0.ts"
    for name in segments:
        assert cloud.bucket.object_exists(f"hls/{name}")


def test_snapshots_sprites_and_animations(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, video_key: str
) -> None:
    image = models.TargetImage(
        snapshots=[
            models.TargetImageSnapshots(
                format="jpg",
                uri="oss://{bucket}/img/{barename}/snap-{index}.jpg",
                start_time=0.2,
                interval=0.5,
                number=3,
                width=80,
            ),
            models.TargetImageSnapshots(
                format="png",
                uri="oss://{bucket}/img/{barename}/cover.png",
                number=1,
                width=64,
                height=64,
                scale_type="crop",
            ),
        ],
        sprites=[
            models.TargetImageSprites(
                format="jpg",
                uri="oss://{bucket}/img/{barename}/sprite-{index}.jpg",
                interval=0.25,
                number=6,
                tile_width=2,
                tile_height=2,
                scale_width=40,
                scale_height=30,
                pad=2,
                margin=3,
            )
        ],
        animations=[
            models.TargetImageAnimations(
                format="gif",
                uri="oss://{bucket}/img/{barename}/anim.{autoext}",
                number=8,
                frame_rate=8,
                width=64,
            )
        ],
    )
    result = _convert(imm, inbox, notify, [cloud.uri(video_key)], [Target(image=image)])
    assert result.Status == "Succeeded", result.Message
    assert result.Targets and result.Targets[0].URI == "" and result.Targets[0].Image
    written = result.Targets[0].Image
    assert [s.URI for s in written.Snapshots or []] == [
        cloud.uri(f"img/clip/snap-{n}.jpg") for n in (1, 2, 3)
    ] + [cloud.uri("img/clip/cover.png")]
    assert _image(cloud, cloud.uri("img/clip/snap-1.jpg")).size == (80, 60)
    assert _image(cloud, cloud.uri("img/clip/cover.png")).size == (64, 64)
    sprites = [s.URI for s in written.Sprites or []]
    assert sprites == [
        cloud.uri("img/clip/sprite-1.jpg"),
        cloud.uri("img/clip/sprite-2.jpg"),
    ]  # 6 frames, 4 per sprite
    assert _image(cloud, sprites[0]).size == (2 * 40 + 2 + 2 * 3, 2 * 30 + 2 + 2 * 3)
    animation = _image(cloud, cloud.uri("img/clip/anim.gif"))
    assert isinstance(animation, GifImagePlugin.GifImageFile)
    assert animation.n_frames == 8 and animation.size[0] == 64


def test_sources_are_concatenated(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, video_key: str, tmp_path: Path
) -> None:
    other = make_video(tmp_path / "other.mp4", seconds=1.0, size="160x120", rate=30)
    cloud.bucket.put_object_from_file("in/videos/other.mp4", str(other))
    result = _convert(
        imm,
        inbox,
        notify,
        [cloud.uri(video_key), cloud.uri("in/videos/other.mp4")],
        [
            Target(
                container="mp4",
                uri="oss://{bucket}/joined/{barename}.mp4",
                video=_video("h264"),
                audio=_audio("aac"),
            )
        ],
    )
    assert result.Status == "Succeeded", result.Message
    info = _probe(cloud, cloud.uri("joined/clip.mp4"), tmp_path)
    assert info.video and (info.video.width, info.video.height) == (320, 240)
    assert abs(info.duration - 3.0) < 0.25


def test_corrupt_media_fails_with_ffmpegs_reason(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object(
        "in/videos/broken.mp4", b"\x00\x00\x00\x18ftypmp42 this is not a video at all" * 10
    )
    result = _convert(
        imm,
        inbox,
        notify,
        [cloud.uri("in/videos/broken.mp4")],
        [Target(container="mp4", uri="oss://{bucket}/out/broken.mp4")],
    )
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument")
    assert "not media ffmpeg can read" in result.Message and "Invalid data" in result.Message


def test_empty_dirname_fails_like_the_cloud(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, tmp_path: Path
) -> None:
    cloud.bucket.put_object_from_file(
        "root.mp4", str(make_video(tmp_path / "root.mp4", seconds=0.5, audio=False))
    )
    result = _convert(
        imm,
        inbox,
        notify,
        [cloud.uri("root.mp4")],
        [Target(container="mp4", uri="oss://{bucket}/{dirname}/{barename}.mp4")],
    )
    assert (result.Status, result.Code) == ("Failed", "InternalError")
    assert "starting with '/'" in result.Message


def test_tasks_over_engine_concurrency_wait_running(cloud: Cloud, make_imm: MakeImm, tmp_path: Path) -> None:
    client = make_imm(engine_concurrency=1).client
    assert (
        client.get_project(models.GetProjectRequest(project_name=PROJECT)).body.project.engine_concurrency
        == 1
    )
    cloud.bucket.put_object_from_file(
        "in/videos/slow.mp4", str(make_video(tmp_path / "slow.mp4", seconds=3, size="640x360", audio=False))
    )
    request = models.CreateMediaConvertTaskRequest(
        project_name=PROJECT,
        sources=[Source(uri=cloud.uri("in/videos/slow.mp4"))],
        targets=[
            Target(container="mp4", uri="oss://{bucket}/slow/{barename}", video=_video("h265", "640x360"))
        ],
    )
    first, second = (client.create_media_convert_task(request).body.task_id for _ in range(2))

    def progress(task_id: str) -> int:
        return int(
            client.get_task(
                models.GetTaskRequest(project_name=PROJECT, task_type="MediaConvert", task_id=task_id)
            ).body.progress
        )

    wait_until(lambda: progress(first) > 0, 60, "the first task making progress")
    queued = client.get_task(
        models.GetTaskRequest(project_name=PROJECT, task_type="MediaConvert", task_id=second)
    ).body
    assert (queued.status, queued.progress) == ("Running", 0)
    done_first = wait_task(client, "MediaConvert", first, timeout=120)
    done_second = wait_task(client, "MediaConvert", second, timeout=120)
    assert (done_first.status, done_second.status) == ("Succeeded", "Succeeded")
    assert done_first.end_time < done_second.end_time

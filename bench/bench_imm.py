"""The local IMM's overhead on a transcode: CreateMediaConvertTask → notification received, against
the same ffmpeg command run directly.

A 10 s 1280x720 25 fps H.264/AAC source is made with ffmpeg, uploaded to a local OSS, and
transcoded to 1280x720 H.264 (CRF 23, veryfast) / AAC 128k MP4 through a local IMM with the
official SDK; the notification is read from an MNS queue subscribed to the task's topic. The
baseline is that ffmpeg command on local files. Each is run ``--runs`` times, alternating, after one
uncounted warm-up run of each; the medians are compared. Run: ``python bench/bench_imm.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import oss2
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from mns.account import Account as MnsAccount
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMeta

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.imm import ImmService
from localcloud.imm.ffmpeg import ffmpeg_exe
from localcloud.mns import MnsService
from localcloud.oss import OssService

BUCKET = "bench-media"
#: The arguments the local IMM gives ffmpeg for this target (localcloud/imm/media.py), minus progress reporting.
TRANSCODE = [
    "-map", "0:v:0?", "-c:v", "libx264", "-preset", "veryfast", "-vf", "scale=1280:720,setsar=1",
    "-crf", "23", "-pix_fmt", "yuv420p", "-map", "0:a:0?", "-c:a", "aac", "-b:a", "128000",
    "-sn", "-dn", "-movflags", "+faststart", "-f", "mp4",
]  # fmt: skip


def make_source(path: Path) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip


def direct(source: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-i",
            str(source),
            *TRANSCODE,
            str(out),
        ],
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        account = Account.new()
        oss_server = ServiceServer(OssService(state, account)).start()
        mns_service = MnsService(state, account)
        mns_server = ServiceServer(mns_service).start()
        imm_service = ImmService(state, account, oss_endpoint=oss_server.url, mns_endpoint=mns_server.url)
        imm_server = ServiceServer(imm_service).start()
        try:
            source = state / "source.mp4"
            make_source(source)
            bucket = oss2.Bucket(
                oss2.Auth(account.access_key_id, account.access_key_secret), oss_server.url, BUCKET
            )
            bucket.create_bucket()
            bucket.put_object_from_file("in/source.mp4", str(source))
            mns = MnsAccount(mns_server.url, account.access_key_id, account.access_key_secret)
            mns.get_topic("bench").create(TopicMeta())
            queue = mns.get_queue("bench")
            queue.create(QueueMeta())
            queue.set_encoding(False)
            endpoint = f"acs:mns:{account.region}:{account.account_id}:queues/bench"
            mns.get_topic("bench").get_subscription("bench").subscribe(
                SubscriptionMeta(endpoint, notify_content_format="SIMPLIFIED")
            )
            client = Client(
                open_api_models.Config(
                    access_key_id=account.access_key_id,
                    access_key_secret=account.access_key_secret,
                    endpoint=f"127.0.0.1:{imm_server.port}",
                    protocol="http",
                    region_id=account.region,
                )
            )
            client.create_project(models.CreateProjectRequest(project_name="bench"))
            request = models.CreateMediaConvertTaskRequest(
                project_name="bench",
                sources=[models.CreateMediaConvertTaskRequestSources(uri=f"oss://{BUCKET}/in/source.mp4")],
                targets=[
                    models.CreateMediaConvertTaskRequestTargets(
                        container="mp4",
                        uri=f"oss://{BUCKET}/out/source",
                        video=models.TargetVideo(
                            transcode_video=models.TargetVideoTranscodeVideo(
                                codec="h264", resolution="1280x720", crf=23
                            )
                        ),
                        audio=models.TargetAudio(
                            transcode_audio=models.TargetAudioTranscodeAudio(codec="aac", bitrate=128000)
                        ),
                    )
                ],
                notification=models.Notification(mns=models.MNS(topic_name="bench")),
            )
            through_imm, baseline = [], []
            # The first of each (cold page cache, first connections, imports) is not counted.
            for run in range(args.runs + 1):
                direct_seconds = direct(source, state / "direct.mp4")
                start = time.perf_counter()
                client.create_media_convert_task(request)
                message = queue.receive_message(30)
                imm_seconds = time.perf_counter() - start
                if run:
                    baseline.append(direct_seconds)
                    through_imm.append(imm_seconds)
                queue.delete_message(message.receipt_handle)
                status = json.loads(json.loads(message.message_body)["content"])["Status"]
                assert status == "Succeeded", message.message_body
        finally:
            imm_server.stop()
            imm_service.close()
            mns_server.stop()
            mns_service.close()
            oss_server.stop()
    imm_median, direct_median = statistics.median(through_imm), statistics.median(baseline)
    print(f"10 s 1280x720 H.264/AAC -> 1280x720 H.264 CRF 23 veryfast / AAC 128k MP4, {args.runs} runs each")
    print(
        f"ffmpeg directly:                     median {direct_median:.3f} s  {[round(t, 3) for t in baseline]}"
    )
    print(
        f"local IMM (create -> notification):  median {imm_median:.3f} s  {[round(t, 3) for t in through_imm]}"
    )
    print(f"overhead ratio: {imm_median / direct_median:.3f} (aim <= 1.10)")


if __name__ == "__main__":
    main()

"""kill -9 of the local IMM: running tasks run again, unsent notifications are sent, each exactly once;
its warm LibreOffice does not outlive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import docx
import pytest
from alibabacloud_imm20200930 import models

from tests.support.cloud import Cloud
from tests.support.imm import (
    PROJECT,
    Inbox,
    office_processes,
    subscribe_queue,
    wait_notifications_delivered,
    wait_task,
)
from tests.support.media import make_video
from tests.support.wait import wait_until

pytestmark = pytest.mark.media


class ImmProcess:
    def __init__(self, cloud: Cloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.imm",
                "--state-dir",
                str(self.state_dir),
                "--port",
                "0",
                "--oss-endpoint",
                self.cloud.oss_url,
                "--mns-endpoint",
                self.cloud.mns_url,
                "--engine-concurrency",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("imm listening on "), line
        self.endpoint = line.split()[-1]

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def imm_process(cloud: Cloud, tmp_path: Path) -> Iterator[ImmProcess]:
    state_dir = tmp_path / "imm-proc"
    state_dir.mkdir()
    (state_dir / "account.json").write_text(json.dumps(asdict(cloud.account)))
    process = ImmProcess(cloud, state_dir)
    process.start()
    yield process
    process.stop()


def test_kill_9_while_running_and_before_notifying(
    cloud: Cloud, imm_process: ImmProcess, tmp_path: Path
) -> None:
    client = cloud.client(endpoint=imm_process.endpoint)
    client.create_project(models.CreateProjectRequest(project_name=PROJECT))
    cloud.bucket.put_object_from_file(
        "restart/long.mp4", str(make_video(tmp_path / "long.mp4", seconds=4, size="640x360", audio=False))
    )
    cloud.bucket.put_object("restart/a.txt", b"a")
    late_topic = "imm-restart-late"
    compress = models.CreateFileCompressionTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateFileCompressionTaskRequestSources(uri=cloud.uri("restart/a.txt"))],
        target_uri=cloud.uri("restart/out/a.zip"),
        notification=models.Notification(mns=models.MNS(topic_name=late_topic)),
    )
    # Its topic does not exist yet: the notification waits in the outbox.
    unsent = client.create_file_compression_task(compress).body.task_id
    assert wait_task(client, "FileCompression", unsent).status == "Succeeded"
    convert = models.CreateMediaConvertTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateMediaConvertTaskRequestSources(uri=cloud.uri("restart/long.mp4"))],
        targets=[
            models.CreateMediaConvertTaskRequestTargets(
                container="mp4",
                uri="oss://{bucket}/restart/out/{barename}",
                video=models.TargetVideo(
                    transcode_video=models.TargetVideoTranscodeVideo(codec="h265", resolution="640x360")
                ),
            )
        ],
        notification=models.Notification(mns=models.MNS(topic_name=late_topic)),
    )
    running = client.create_media_convert_task(convert).body.task_id
    request = models.GetTaskRequest(project_name=PROJECT, task_type="MediaConvert", task_id=running)
    wait_until(lambda: client.get_task(request).body.progress > 0, 30, "the task started")
    imm_process.kill()
    assert not cloud.bucket.object_exists("restart/out/long.mp4")

    inbox = Inbox(subscribe_queue(cloud, late_topic))
    imm_process.start()
    client = cloud.client(endpoint=imm_process.endpoint)
    finished = wait_task(client, "MediaConvert", running, timeout=120)
    assert finished.status == "Succeeded", finished.message
    assert cloud.bucket.object_exists("restart/out/long.mp4")
    assert inbox.wait(unsent, timeout=90).content.Status == "Succeeded"
    assert inbox.wait(running, timeout=90).content.Status == "Succeeded"
    wait_notifications_delivered(cloud, imm_process.state_dir)
    assert inbox.count(unsent) == 1 and inbox.count(running) == 1


def test_kill_9_leaves_no_libreoffice_behind(cloud: Cloud, imm_process: ImmProcess, tmp_path: Path) -> None:
    client = cloud.client(endpoint=imm_process.endpoint)
    client.create_project(models.CreateProjectRequest(project_name=PROJECT))
    document = docx.Document()
    document.add_paragraph("A page for the warm LibreOffice.")
    document.save(str(tmp_path / "a.docx"))
    cloud.bucket.put_object_from_file("restart/a.docx", str(tmp_path / "a.docx"))
    request = models.CreateOfficeConversionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("restart/a.docx"),
        target_type="pdf",
        target_uri=cloud.uri("restart/out/a.pdf"),
    )
    task_id = client.create_office_conversion_task(request).body.task_id
    assert wait_task(client, "OfficeConversion", task_id).status == "Succeeded"
    processes = office_processes(imm_process.state_dir)
    assert len(processes) == 2  # uno_client.py and soffice.bin
    socket_dir = Path(next(c for c in processes.values() if "uno_client.py" in c).split()[3])
    imm_process.kill()
    wait_until(lambda: not office_processes(imm_process.state_dir), 10, "the warm LibreOffice gone")
    # Nobody was left to remove its socket folder: the next start does.
    assert (socket_dir / "uno").is_socket()
    imm_process.start()
    client = cloud.client(endpoint=imm_process.endpoint)
    task_id = client.create_office_conversion_task(request).body.task_id
    assert wait_task(client, "OfficeConversion", task_id).status == "Succeeded"
    assert not socket_dir.exists()

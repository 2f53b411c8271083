"""Helpers of the local IMM tests: the cloud handle, the notification inbox, small real media."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import oss2
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from immflow.events.imm import ImmNotification, parse_imm_notification
from mns.account import Account as MnsAccount
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMeta

from localcloud.core.account import Account
from localcloud.imm.ffmpeg import ffmpeg_exe

BUCKET = "imm-media"
PROJECT = "imm-tests"
TOPIC = "imm-done"


@dataclass
class Cloud:
    state_dir: Path
    account: Account
    oss_url: str
    mns_url: str
    imm_endpoint: str
    bucket: oss2.Bucket
    mns: MnsAccount

    def client(
        self,
        *,
        secret: str | None = None,
        key_id: str | None = None,
        endpoint: str | None = None,
        **config: Any,
    ) -> Client:
        return Client(
            open_api_models.Config(
                access_key_id=key_id or self.account.access_key_id,
                access_key_secret=secret or self.account.access_key_secret,
                endpoint=endpoint or self.imm_endpoint,
                protocol="http",
                region_id=self.account.region,
                read_timeout=30_000,
                **config,
            )
        )

    def uri(self, key: str) -> str:
        return f"oss://{BUCKET}/{key}"


@dataclass
class Inbox:
    """Every notification read from the queue, by TaskId."""

    queue: Any
    received: dict[str, list[ImmNotification]] = field(default_factory=dict)
    raw: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, task_id: str, timeout: float = 60.0) -> ImmNotification:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if task_id in self.received:
                    return self.received[task_id][0]
                self._drain(wait_seconds=1)
        raise AssertionError(f"no notification for {task_id} within {timeout} s")

    def _drain(self, wait_seconds: int) -> None:
        from mns.mns_exception import MNSExceptionBase

        try:
            messages = self.queue.batch_receive_message(16, wait_seconds)
        except MNSExceptionBase as exc:
            if getattr(exc, "type", "") == "MessageNotExist":
                return
            raise
        for message in messages:
            body = message.message_body
            notification = parse_imm_notification(body)
            self.received.setdefault(notification.content.TaskId, []).append(notification)
            self.raw.setdefault(notification.content.TaskId, []).append(body)
            self.queue.delete_message(message.receipt_handle)

    def count(self, task_id: str, settle: float = 1.5) -> int:
        """How many notifications ``task_id`` got, after waiting ``settle`` seconds for late ones."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self.lock:
                self._drain(wait_seconds=1)
        return len(self.received.get(task_id, []))


def subscribe_queue(cloud: Cloud, topic_name: str) -> Any:
    topic = cloud.mns.get_topic(topic_name)
    topic.create(TopicMeta())
    queue_name = f"q-{uuid.uuid4().hex[:12]}"
    queue = cloud.mns.get_queue(queue_name)
    queue.create(QueueMeta())
    queue.set_encoding(False)
    endpoint = f"acs:mns:{cloud.account.region}:{cloud.account.account_id}:queues/{queue_name}"
    topic.get_subscription(f"s-{queue_name}").subscribe(
        SubscriptionMeta(endpoint, notify_content_format="SIMPLIFIED")
    )
    return queue


def wait_task(
    client: Client, task_type: str, task_id: str, project: str = PROJECT, timeout: float = 60
) -> models.GetTaskResponseBody:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get_task(
            models.GetTaskRequest(project_name=project, task_type=task_type, task_id=task_id)
        ).body
        if body.status != "Running" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def make_video(
    path: Path, seconds: float = 1.0, size: str = "320x240", rate: int = 25, audio: bool = True
) -> Path:
    args = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-b:a", "64k"]
    args += [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(rate),
        "-shortest",
        str(path),
    ]
    subprocess.run(args, check=True)
    return path

"""Helpers of the local IMM tests: the notification inbox, a task waited for, another ImmService."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from immflow.events.imm import ImmNotification, parse_imm_notification
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMeta

from localcloud.imm import ImmService
from tests.support.cloud import Cloud
from tests.support.wait import wait_until

BUCKET = "imm-media"
PROJECT = "imm-tests"
TOPIC = "imm-done"


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

    def _drain(self, wait_seconds: int) -> int:
        from mns.mns_exception import MNSExceptionBase

        try:
            messages = self.queue.batch_receive_message(16, wait_seconds)
        except MNSExceptionBase as exc:
            if getattr(exc, "type", "") == "MessageNotExist":
                return 0
            raise
        for message in messages:
            body = message.message_body
            notification = parse_imm_notification(body)
            self.received.setdefault(notification.content.TaskId, []).append(notification)
            self.raw.setdefault(notification.content.TaskId, []).append(body)
            self.queue.delete_message(message.receipt_handle)
        return len(messages)

    def count(self, task_id: str) -> int:
        """How many notifications ``task_id`` got. Call it once delivery is over
        (:func:`wait_notifications_delivered`): it reads only what the queue holds already."""
        with self.lock:
            while self._drain(wait_seconds=0):
                pass
        return len(self.received.get(task_id, []))


def outbox_empty(imm_state_dir: Path) -> bool:
    """Whether the IMM keeping its state in ``imm_state_dir`` has handed MNS every notification it
    owes (a row stays in its outbox until MNS accepted it or refused it for good)."""
    with closing(sqlite3.connect(imm_state_dir / "imm" / "imm.sqlite3")) as db:
        pending: int = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return pending == 0


def wait_notifications_delivered(cloud: Cloud, imm_state_dir: Path, timeout: float = 30) -> None:
    """Until that IMM published every notification it owes and the test cloud's MNS delivered each to
    every subscribed queue: what a test waits for before it counts, or asserts that one never came."""
    wait_until(lambda: outbox_empty(imm_state_dir), timeout, "the IMM's notification outbox empty")
    assert cloud.mns_service.wait_for_deliveries(timeout), "MNS deliveries still pending"


def subscribe_queue(cloud: Cloud, topic_name: str) -> Any:
    """A new queue subscribed to `topic_name` (created if missing) that keeps the raw envelopes."""
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
    request = models.GetTaskRequest(project_name=project, task_type=task_type, task_id=task_id)

    def ended() -> models.GetTaskResponseBody | None:
        body = client.get_task(request).body
        return body if body.status != "Running" else None

    return wait_until(ended, timeout, f"{task_type} task {task_id} ended")


@dataclass
class ExtraImm:
    """Another ImmService (own state) on the test cloud's OSS and MNS, and a client of it."""

    client: Client
    service: ImmService
    state_dir: Path


#: The ``make_imm`` fixture: starts another ImmService with the given ImmService options.
MakeImm = Callable[..., ExtraImm]


def office_processes(state_dir: Path) -> dict[int, str]:
    """The warm LibreOffice processes (``soffice.bin`` and its ``uno_client.py``) of the IMM that
    keeps its state in ``state_dir``, by pid, with their command lines."""
    marker = state_dir.resolve().as_uri()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if marker in command and ("--accept=pipe" in command or "uno_client.py" in command):
            found[int(entry.name)] = command
    return found


def warm_office_pid(state_dir: Path) -> int:
    """The pid of that IMM's one warm ``soffice.bin``."""
    pids = [pid for pid, command in office_processes(state_dir).items() if "soffice.bin" in command]
    assert len(pids) == 1, f"one warm soffice.bin expected for {state_dir}, found {pids}"
    return pids[0]

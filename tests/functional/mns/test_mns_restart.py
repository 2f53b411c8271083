"""Nothing acknowledged is lost when the MNS process is killed with SIGKILL and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import mns.account
import pytest
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import TopicMessage, TopicMeta

from localcloud.core.ports import free_port

if TYPE_CHECKING:
    from tests.support.mns import Receiver


ROOT = Path(__file__).resolve().parents[3]


class MnsProcess:
    def __init__(self, state_dir: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.mns", "--state-dir", str(state_dir), "--port", str(port),
             "--time-scale", "0.001"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("mns listening on "), line
        self.url = line.split()[-1]
        keys = json.loads((state_dir / "account.json").read_text())
        self.keys = (keys["access_key_id"], keys["access_key_secret"])

    def client(self) -> mns.account.Account:
        return mns.account.Account(self.url, *self.keys)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def processes() -> Iterator[list[MnsProcess]]:
    started: list[MnsProcess] = []
    yield started
    for process in started:
        process.stop()


def test_kill_9_loses_no_acknowledged_message_or_push(
    tmp_path: Path, receiver: Receiver, processes: list[MnsProcess]
) -> None:
    port = free_port()
    first = MnsProcess(tmp_path, port)
    processes.append(first)
    account = first.client()
    queue = account.get_queue("jobs")
    queue.create(QueueMeta(vis_timeout=2))
    sent = {m.message_id for m in queue.batch_send_message([Message(f"job-{i}") for i in range(16)])}
    sent |= {queue.send_message(Message("job-16")).message_id}
    in_flight = queue.batch_receive_message(5, 0)

    receiver.statuses = [500] * 100_000  # the endpoint is down while MNS dies
    topic = account.get_topic("events")
    topic.create(TopicMeta())
    topic.get_subscription("hook").subscribe(
        SubscriptionMeta(receiver.url, "EXPONENTIAL_DECAY_RETRY", "SIMPLIFIED")
    )
    topic.publish_message(TopicMessage("pending push"))
    with receiver.arrived:
        assert receiver.arrived.wait_for(lambda: receiver.attempts >= 1, 5)
    first.kill()

    with receiver.arrived:
        receiver.statuses.clear()
    second = MnsProcess(tmp_path, port)
    processes.append(second)
    assert [p.body for p in receiver.wait_for(1, timeout=10)] == [b"pending push"]

    queue = second.client().get_queue("jobs")
    got: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while len(got) < len(sent) and time.monotonic() < deadline:
        try:
            for m in queue.batch_receive_message(16, 1):
                got[m.message_id] = m.dequeue_count
                queue.delete_message(m.receipt_handle)
        except MNSServerException as e:
            assert e.type == "MessageNotExist"
    assert set(got) == sent
    # The messages that were in flight came back after their visibility timeout, counted twice.
    assert {got[m.message_id] for m in in_flight} == {2}
    assert sum(count == 1 for count in got.values()) == len(sent) - len(in_flight)
    assert os.path.exists(tmp_path / "mns" / "mns.sqlite3")

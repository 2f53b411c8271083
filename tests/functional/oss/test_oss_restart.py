"""Acknowledged writes and queued events survive kill -9 of the OSS server process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
import requests
from oss2.models import PartInfo

from localcloud.core.account import Account
from localcloud.core.admin import admin_headers, load_or_create_token


class OssProcess:
    def __init__(self, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.oss",
                "--state-dir",
                str(state_dir),
                "--port",
                "0",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.url = line.split()[-1]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[OssProcess]]:
    started: list[OssProcess] = []
    yield started
    for p in started:
        p.stop()


def test_kill_9_keeps_objects_and_queued_events(
    tmp_path: Path, processes: list[OssProcess], sink: Any
) -> None:
    account = Account.load_or_create(tmp_path)
    auth = oss2.Auth(account.access_key_id, account.access_key_secret)
    first = OssProcess(tmp_path)
    processes.append(first)
    bucket = oss2.Bucket(auth, first.url, "durable", region=account.region)
    bucket.create_bucket()
    trigger = {
        "bucket": "durable",
        "events": ["oss:ObjectCreated:*"],
        "prefix": "",
        "suffix": "",
        "target": {"kind": "http", "url": sink.url},
    }
    admin = admin_headers(load_or_create_token(tmp_path))
    assert (
        requests.put(f"{first.url}/_localcloud/triggers/t1", json=trigger, headers=admin).status_code == 200
    )
    sink.fail_next = 10**6  # nothing gets through before the kill: every event is still queued

    written: dict[str, bytes] = {}
    for i in range(20):
        data = os.urandom(1000 + i)
        bucket.put_object(f"obj/{i} é+.bin", data)
        written[f"obj/{i} é+.bin"] = data
    bucket.put_object("obj/0 é+.bin", b"overwritten")
    written["obj/0 é+.bin"] = b"overwritten"
    bucket.append_object("app", 0, b"abc")
    bucket.append_object("app", 3, b"def")
    written["app"] = b"abcdef"
    upload_id = bucket.init_multipart_upload("mp").upload_id
    part = bucket.upload_part("mp", upload_id, 1, b"p" * 1000)
    first.kill9()
    assert sink.bodies == []
    sink.fail_next = 0

    second = OssProcess(tmp_path)
    processes.append(second)
    bucket = oss2.Bucket(auth, second.url, "durable", region=account.region)
    for key, data in written.items():
        got = bucket.get_object(key)
        assert got.read() == data, key
    assert [p.etag for p in bucket.list_parts("mp", upload_id).parts] == [part.etag]
    bucket.complete_multipart_upload("mp", upload_id, [PartInfo(1, part.etag)])
    assert bucket.get_object("mp").read() == b"p" * 1000
    listed = requests.get(f"{second.url}/_localcloud/triggers", headers=admin).json()["triggers"]
    assert [t["name"] for t in listed] == ["t1"]

    # 21 puts + 2 appends before the kill, 1 complete after it.
    records = sink.wait_for(24, timeout=30)
    assert len(records) == 24
    puts = [r["oss"]["object"] for r in records if r["eventName"] == "ObjectCreated:PutObject"]
    assert len(puts) == 21
    overwrite = next(o for o in puts if o["eTag"] == hashlib.md5(b"overwritten").hexdigest().upper())
    assert overwrite["key"] == "obj/0 é+.bin" and overwrite["deltaSize"] == len(b"overwritten") - 1000

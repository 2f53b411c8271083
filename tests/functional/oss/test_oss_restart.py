"""Acknowledged writes and queued events survive kill -9 of the OSS server process."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
import requests
from oss2.models import PartInfo

from localcloud.core import standalone
from localcloud.core.account import Account
from localcloud.core.admin import admin_headers, load_or_create_token
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService


class OssProcess:
    def __init__(self, state_dir: Path) -> None:
        self.proc, self.url = standalone.spawn("oss", state_dir, "--log-level", "WARNING")

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
    trigger: dict[str, Any] = {
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


def test_a_state_folder_from_before_storage_classes_and_tags_still_opens(tmp_path: Path) -> None:
    """Objects stored before the attribute columns existed read as Standard, untagged, default ACL."""
    state = tmp_path / "state"
    (state / "oss").mkdir(parents=True)
    old = sqlite3.connect(state / "oss" / "meta.sqlite")
    old.executescript(
        """
        CREATE TABLE buckets (name TEXT PRIMARY KEY, created REAL NOT NULL, storage_class TEXT NOT NULL,
            acl TEXT NOT NULL);
        CREATE TABLE objects (bucket TEXT NOT NULL, key TEXT NOT NULL, data_id TEXT NOT NULL,
            size INTEGER NOT NULL, etag TEXT NOT NULL, crc64 TEXT NOT NULL, content_type TEXT NOT NULL,
            stored_headers TEXT NOT NULL, object_type TEXT NOT NULL, last_modified REAL NOT NULL,
            PRIMARY KEY (bucket, key)) WITHOUT ROWID;
        CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
            initiated REAL NOT NULL, content_type TEXT NOT NULL, stored_headers TEXT NOT NULL);
        INSERT INTO buckets VALUES ('old-bucket', 0, 'Standard', 'private');
        INSERT INTO objects VALUES ('old-bucket', 'k', '00aa', 0, 'D41D8CD98F00B204E9800998ECF8427E', '0',
            'text/plain', '{}', 'Normal', 0);
        INSERT INTO uploads VALUES ('u1', 'old-bucket', 'k2', 0, 'text/plain', '{}');
        """
    )
    old.close()
    (state / "oss" / "data" / "00").mkdir(parents=True)
    (state / "oss" / "data" / "00" / "00aa").write_bytes(b"")
    account = Account.load_or_create(state)
    service = OssService(state, account)
    server = ServiceServer(service).start()
    try:
        bucket = oss2.Bucket(
            oss2.Auth(account.access_key_id, account.access_key_secret), server.url, "old-bucket"
        )
        head = bucket.head_object("k")
        assert head.headers["x-oss-storage-class"] == "Standard"
        assert bucket.get_object_tagging("k").tag_set.tagging_rule == {}
        assert bucket.get_object_acl("k").acl == "default"
        assert [u.upload_id for u in bucket.list_multipart_uploads().upload_list] == ["u1"]
    finally:
        server.stop()
        service.close()

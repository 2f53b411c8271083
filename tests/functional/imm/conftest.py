"""The test cloud (tests/support/cloud.py) for the local IMM tests, driven with the official SDKs.

Notifications are read from an MNS queue subscribed to the IMM topic (``set_encoding(False)``:
the queue holds the raw envelope) and parsed with immflow's own notification model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client

from localcloud.core.http import ServiceServer
from localcloud.imm import ImmService
from tests.support.cloud import Cloud, start_cloud
from tests.support.imm import BUCKET, PROJECT, TOPIC, ExtraImm, Inbox, MakeImm, subscribe_queue
from tests.support.media import make_video


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with start_cloud(tmp_path_factory.mktemp("cloud"), BUCKET) as started:
        yield started


@pytest.fixture(scope="session")
def inbox(cloud: Cloud) -> Inbox:
    return Inbox(subscribe_queue(cloud, TOPIC))


@pytest.fixture(scope="session")
def imm(cloud: Cloud) -> Client:
    cloud.imm.create_project(models.CreateProjectRequest(project_name=PROJECT))
    return cloud.imm


@pytest.fixture
def notify() -> models.Notification:
    return models.Notification(mns=models.MNS(topic_name=TOPIC))


@pytest.fixture(scope="session")
def video_key(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2.0)
    cloud.bucket.put_object_from_file("in/videos/clip.mp4", str(path))
    return "in/videos/clip.mp4"


Uploader = Callable[[str, bytes], str]


@pytest.fixture
def upload(cloud: Cloud) -> Uploader:
    def put(key: str, data: bytes) -> str:
        cloud.bucket.put_object(key, data)
        return cloud.uri(key)

    return put


@pytest.fixture
def make_imm(cloud: Cloud, tmp_path: Path) -> Iterator[MakeImm]:
    """Another ImmService (own state) on the same OSS and MNS, e.g. with a fake clock or a low QPS."""
    started: list[tuple[ServiceServer, ImmService]] = []

    def start(**options: Any) -> ExtraImm:
        state_dir = tmp_path / f"imm-{len(started)}"
        service = ImmService(
            state_dir,
            cloud.account,
            oss_endpoint=cloud.oss_url,
            mns_endpoint=cloud.mns_url,
            **options,
        )
        server = ServiceServer(service).start()
        started.append((server, service))
        client = cloud.client(endpoint=f"127.0.0.1:{server.port}")
        client.create_project(models.CreateProjectRequest(project_name=PROJECT))
        return ExtraImm(client, service, state_dir)

    yield start
    for server, service in started:
        server.stop()
        service.close()

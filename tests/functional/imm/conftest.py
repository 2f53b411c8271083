"""A real local OSS, MNS and IMM on free ports, driven with the official SDKs.

Notifications are read from an MNS queue subscribed to the IMM topic (``set_encoding(False)``:
the queue holds the raw envelope) and parsed with immflow's own notification model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oss2
import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from mns.account import Account as MnsAccount

from localcloud.core.http import ServiceServer
from localcloud.imm import ImmService
from localcloud.launcher import LocalCloud
from tests.support.imm import BUCKET, PROJECT, TOPIC, Cloud, Inbox, make_video, subscribe_queue


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with LocalCloud.start(tmp_path_factory.mktemp("cloud"), mns_time_scale=0.001) as local:
        endpoints, account = local.endpoints, local.account
        bucket = oss2.Bucket(
            oss2.Auth(account.access_key_id, account.access_key_secret), endpoints["oss"], BUCKET
        )
        bucket.create_bucket()
        mns = MnsAccount(endpoints["mns"], account.access_key_id, account.access_key_secret)
        yield Cloud(
            local.state_dir, account, endpoints["oss"], endpoints["mns"], endpoints["imm"], bucket, mns
        )


@pytest.fixture(scope="session")
def inbox(cloud: Cloud) -> Inbox:
    return Inbox(subscribe_queue(cloud, TOPIC))


@pytest.fixture(scope="session")
def imm(cloud: Cloud) -> Client:
    client = cloud.client()
    client.create_project(models.CreateProjectRequest(project_name=PROJECT))
    return client


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


@dataclass
class ExtraImm:
    client: Client
    service: ImmService


@pytest.fixture
def make_imm(cloud: Cloud, tmp_path: Path) -> Iterator[Callable[..., ExtraImm]]:
    """Another ImmService (own state) on the same OSS and MNS, e.g. with a fake clock or a low QPS."""
    started: list[tuple[ServiceServer, ImmService]] = []

    def start(**options: Any) -> ExtraImm:
        service = ImmService(
            tmp_path / f"imm-{len(started)}",
            cloud.account,
            oss_endpoint=cloud.oss_url,
            mns_endpoint=cloud.mns_url,
            **options,
        )
        server = ServiceServer(service).start()
        started.append((server, service))
        client = cloud.client(endpoint=f"127.0.0.1:{server.port}")
        client.create_project(models.CreateProjectRequest(project_name=PROJECT))
        return ExtraImm(client, service)

    yield start
    for server, service in started:
        server.stop()
        service.close()

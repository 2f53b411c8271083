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
from imm_support import BUCKET, PROJECT, TOPIC, Cloud, Inbox, make_video, subscribe_queue
from mns.account import Account as MnsAccount

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.imm import ImmService
from localcloud.mns import MnsService
from localcloud.oss import OssService


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    state_dir = tmp_path_factory.mktemp("cloud")
    account = Account.new()
    oss_server = ServiceServer(OssService(state_dir, account)).start()
    mns_service = MnsService(state_dir, account, 0.001)
    mns_server = ServiceServer(mns_service).start()
    imm = ImmService(state_dir, account, oss_endpoint=oss_server.url, mns_endpoint=mns_server.url)
    imm_server = ServiceServer(imm).start()
    bucket = oss2.Bucket(oss2.Auth(account.access_key_id, account.access_key_secret), oss_server.url, BUCKET)
    bucket.create_bucket()
    mns = MnsAccount(mns_server.url, account.access_key_id, account.access_key_secret)
    yield Cloud(
        state_dir, account, oss_server.url, mns_server.url, f"127.0.0.1:{imm_server.port}", bucket, mns
    )
    imm_server.stop()
    imm.close()
    mns_server.stop()
    mns_service.close()
    oss_server.stop()


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

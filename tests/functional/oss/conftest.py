"""Fixtures for the local OSS driven through oss2: a server on a free port, buckets, an event sink."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService
from tests.support.oss import EventSink, v2_config


# One server per test module (stopping one takes half a second); tests use their own buckets.
@pytest.fixture(scope="module")
def account() -> Account:
    return Account.new()


@pytest.fixture(scope="module")
def oss_service(tmp_path_factory: pytest.TempPathFactory, account: Account) -> Iterator[OssService]:
    # Fast retries so that a test can watch a failed delivery being retried.
    service = OssService(tmp_path_factory.mktemp("state"), account, retry_base=0.05, retry_cap=0.2)
    yield service
    service.close()


@pytest.fixture(scope="module")
def oss_server(oss_service: OssService) -> Iterator[ServiceServer]:
    server = ServiceServer(oss_service).start()
    yield server
    server.stop()


@pytest.fixture(params=["v1", "v4"])
def auth(request: pytest.FixtureRequest, account: Account) -> oss2.AuthBase:
    if request.param == "v1":
        return oss2.Auth(account.access_key_id, account.access_key_secret)
    return oss2.AuthV4(account.access_key_id, account.access_key_secret)


@pytest.fixture
def bucket(auth: oss2.AuthBase, oss_server: ServiceServer, account: Account) -> oss2.Bucket:
    b = oss2.Bucket(auth, oss_server.url, f"bkt-{secrets.token_hex(4)}", region=account.region)
    b.create_bucket()
    return b


@pytest.fixture
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


@pytest.fixture
def v2(account: Account, oss_server: ServiceServer) -> oss.Client:
    """An alibabacloud-oss-v2 client of the local OSS."""
    return oss.Client(v2_config(account, oss_server.url))

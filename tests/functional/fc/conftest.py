"""A local FC (with the local OSS and MNS it wires triggers into) on free ports, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.fc import FcService
from localcloud.mns import MnsService
from localcloud.oss import OssService
from tests.support.fc import FcCloud


@pytest.fixture
def fc_cloud(tmp_path: Path) -> Iterator[FcCloud]:
    account = Account.load_or_create(tmp_path)
    oss = OssService(tmp_path, account, retry_base=0.05)
    oss_server = ServiceServer(oss).start()
    mns = MnsService(tmp_path, account, time_scale=0.001)
    mns_server = ServiceServer(mns).start()
    fc = FcService(
        tmp_path,
        account,
        oss_endpoint=oss_server.url,
        mns_endpoint=mns_server.url,
        env_overrides={"IMMFLOW_OSS_ENDPOINT": oss_server.url},
        async_retry_delay=0.05,
    )
    fc_server = ServiceServer(fc)
    fc.start(fc_server.url)
    fc_server.start()
    try:
        yield FcCloud(
            tmp_path,
            account,
            fc,
            fc_server.url,
            oss_server.url,
            mns_server.url,
            tmp_path / "records",
            oss,
            mns,
        )
    finally:
        fc_server.stop()
        fc.close()
        mns_server.stop()
        mns.close()
        oss_server.stop()
        oss.close()

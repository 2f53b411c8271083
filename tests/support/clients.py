"""Official-SDK clients of a running local cloud, made as a user would make them from endpoints.json."""

from __future__ import annotations

from typing import Any

import oss2
from alibabacloud_imm20200930.client import Client as ImmClient
from alibabacloud_tea_openapi import models as open_api_models
from mns.account import Account as MnsAccount

from localcloud.launcher import LocalCloud


def imm_client(
    cloud: LocalCloud,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    endpoint: str | None = None,
    **config: Any,
) -> ImmClient:
    """An IMM client with the cloud's keys (or `key_id` / `secret`); `config` overrides any option."""
    options: dict[str, Any] = {
        "access_key_id": key_id or cloud.account.access_key_id,
        "access_key_secret": secret or cloud.account.access_key_secret,
        "endpoint": endpoint or cloud.endpoints["imm"],
        "protocol": "http",
        "region_id": cloud.account.region,
        "read_timeout": 30_000,
    }
    return ImmClient(open_api_models.Config(**{**options, **config}))


def mns_account(cloud: LocalCloud) -> MnsAccount:
    return MnsAccount(cloud.endpoints["mns"], cloud.account.access_key_id, cloud.account.access_key_secret)


def oss_bucket(cloud: LocalCloud, name: str) -> oss2.Bucket:
    auth = oss2.Auth(cloud.account.access_key_id, cloud.account.access_key_secret)
    return oss2.Bucket(auth, cloud.endpoints["oss"], name)

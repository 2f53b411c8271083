"""Clients of the attacked local cloud, made with the official SDKs as a user would make them."""

from __future__ import annotations

from typing import Any

from alibabacloud_imm20200930.client import Client as ImmClient
from alibabacloud_tea_openapi import models as open_api_models
from mns.account import Account as MnsAccount

from localcloud.launcher import LocalCloud


def imm_client(cloud: LocalCloud, *, endpoint: str | None = None, **config: Any) -> ImmClient:
    options: dict[str, Any] = {
        "access_key_id": cloud.account.access_key_id,
        "access_key_secret": cloud.account.access_key_secret,
        "endpoint": endpoint or cloud.endpoints["imm"],
        "protocol": "http",
        "region_id": cloud.account.region,
        "read_timeout": 30_000,
    }
    return ImmClient(open_api_models.Config(**{**options, **config}))


def mns_account(cloud: LocalCloud) -> MnsAccount:
    return MnsAccount(cloud.endpoints["mns"], cloud.account.access_key_id, cloud.account.access_key_secret)

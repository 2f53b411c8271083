"""Instances: ``immflow`` from the start, others through the token-guarded admin route."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from localcloud.core.admin import admin_headers, load_or_create_token
from tests.support.ots import create_table

if TYPE_CHECKING:
    from tests.support.ots import LocalOts


def test_the_admin_route_adds_an_instance_the_sdk_can_use(ots_server: LocalOts) -> None:
    headers = admin_headers(load_or_create_token(ots_server.state_dir))

    created = requests.put(f"{ots_server.url}/_localcloud/instances/ledger2", headers=headers, timeout=10)
    again = requests.put(f"{ots_server.url}/_localcloud/instances/ledger2", headers=headers, timeout=10)
    listed = requests.get(f"{ots_server.url}/_localcloud/instances", headers=headers, timeout=10)

    assert (created.status_code, again.status_code) == (201, 200)
    assert listed.json() == {"instances": ["immflow", "ledger2"]}
    client = ots_server.client(instance="ledger2")
    create_table(client, "t", [("k", "STRING")])
    assert client.list_table() == ("t",)
    assert ots_server.client().list_table() == ()


def test_the_admin_route_needs_the_token(ots_server: LocalOts) -> None:
    missing = requests.put(f"{ots_server.url}/_localcloud/instances/x", timeout=10)
    wrong = requests.put(
        f"{ots_server.url}/_localcloud/instances/x", headers=admin_headers("guess"), timeout=10
    )

    assert (missing.status_code, wrong.status_code) == (401, 403)
    headers = admin_headers(load_or_create_token(ots_server.state_dir))
    assert requests.get(f"{ots_server.url}/_localcloud/instances", headers=headers, timeout=10).json() == {
        "instances": ["immflow"]
    }


def test_an_invalid_instance_name_is_refused(ots_server: LocalOts) -> None:
    headers = admin_headers(load_or_create_token(ots_server.state_dir))

    response = requests.put(f"{ots_server.url}/_localcloud/instances/bad-name!", headers=headers, timeout=10)

    assert (response.status_code, response.json()["Code"]) == (400, "OTSParameterInvalid")

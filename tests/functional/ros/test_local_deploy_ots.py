"""The local ROS creates template.yml's Tablestore tables on the local Tablestore with the official SDK."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from localcloud.core.admin import load_or_create_token
from localcloud.ros import RosError, deploy

if TYPE_CHECKING:
    from tests.support.ots import LocalOts

ROOT = Path(__file__).resolve().parents[3]


def _ledger_template(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """template.yml's parameters and its OTS resources only (the rest needs the other services)."""
    document = yaml.safe_load((ROOT / "template.yml").read_text())
    resources = {n: r for n, r in document["Resources"].items() if r["Type"].startswith("ALIYUN::OTS::")}
    path = tmp_path / "ledger.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "ROSTemplateFormatVersion": "2015-09-01",
                "Parameters": document["Parameters"],
                "Resources": resources,
            }
        )
    )
    return path, resources


def _endpoints(ots: LocalOts) -> dict[str, str]:
    return {
        "ots": ots.url,
        "admin_token": load_or_create_token(ots.state_dir),
        "ots_instance": ots.instance,
        "region": "cn-hangzhou",
        "account_id": ots.account.account_id,
        "access_key_id": ots.account.access_key_id,
        "access_key_secret": ots.account.access_key_secret,
    }


def test_the_ledger_tables_are_created_with_their_primary_keys(ots_server: LocalOts, tmp_path: Path) -> None:
    path, resources = _ledger_template(tmp_path)
    created = deploy(path, _endpoints(ots_server), tmp_path, {"CodeBucket": "unused"})
    statuses = {entry.logical_id: entry.status for entry in created}
    assert statuses.pop("LedgerInstance") == "exists"
    assert set(statuses.values()) == {"created"}
    client = ots_server.client(retry=False)
    tables = [r["Properties"] for r in resources.values() if r["Type"] == "ALIYUN::OTS::Table"]
    assert sorted(client.list_table()) == sorted(t["TableName"] for t in tables)
    for table in tables:
        described = client.describe_table(table["TableName"])
        assert [tuple(k) for k in described.table_meta.schema_of_primary_key] == [
            (k["Name"], k["Type"]) for k in table["PrimaryKey"]
        ]
        assert described.table_options.time_to_live == table["TimeToLive"]
    again = deploy(path, _endpoints(ots_server), tmp_path, {"CodeBucket": "unused"})
    assert {entry.status for entry in again} == {"exists"}


def test_another_instance_is_created_through_the_admin_route(ots_server: LocalOts, tmp_path: Path) -> None:
    path, _ = _ledger_template(tmp_path)
    created = deploy(
        path, _endpoints(ots_server), tmp_path, {"CodeBucket": "unused", "LedgerInstanceName": "ledger-2"}
    )
    assert {e.logical_id: e.status for e in created}["LedgerInstance"] == "created"
    assert "immflow_runs" in ots_server.client(instance="ledger-2", retry=False).list_table()
    assert not ots_server.client(retry=False).list_table()  # nothing in the default instance


def test_an_instance_name_tablestore_refuses_is_named(ots_server: LocalOts, tmp_path: Path) -> None:
    path, _ = _ledger_template(tmp_path)
    with pytest.raises(RosError, match=r"LedgerInstance.*refused instance '9-bad'.*3-16 letters"):
        deploy(
            path, _endpoints(ots_server), tmp_path, {"CodeBucket": "unused", "LedgerInstanceName": "9-bad"}
        )

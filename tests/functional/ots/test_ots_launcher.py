"""The launcher starts the local Tablestore beside the others and names it in endpoints.json."""

from __future__ import annotations

import json
from pathlib import Path

import tablestore
from tablestore import Row

from localcloud.launcher import LocalCloud
from tests.support.ots import create_table


def test_endpoints_json_names_the_tablestore_and_its_instance(tmp_path: Path) -> None:
    with LocalCloud.start(tmp_path) as cloud:
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        client = tablestore.OTSClient(
            endpoints["ots"],
            endpoints["access_key_id"],
            endpoints["access_key_secret"],
            endpoints["ots_instance"],
        )
        create_table(client, "t", [("k", "STRING")])
        client.put_row("t", Row([("k", "a")], [("v", 1)]))

        assert endpoints["ots"] == cloud.servers["ots"].url
        assert endpoints["ots_instance"] == "immflow"
        # The launcher makes no table of its own: the ledger's are immflow's to make (immflow local up).
        assert client.list_table() == ("t",)

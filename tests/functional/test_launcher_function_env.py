"""The launcher gives every function the environment its caller hands it, endpoints filled in, and
nothing of its own; immflow's CLI hands it what immflow's functions need and makes their ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
import tablestore
from immflow.cli.local import create_ledger, function_env, function_paths
from immflow.ledger import local_ledger
from immflow.ledger.tablestore import TABLES
from immflow.settings import DEFAULT_LEDGER_URL, settings_from_env

from localcloud.launcher import LaunchError, LocalCloud

ROOT = Path(__file__).resolve().parents[2]


def test_the_functions_get_what_the_cli_hands_the_launcher(tmp_path: Path) -> None:
    with LocalCloud.start(tmp_path, function_env=function_env()) as cloud:
        overrides = cloud.fc.env_overrides
        endpoints = cloud.endpoints
        create_ledger(tmp_path)
        client = tablestore.OTSClient(
            endpoints["ots"],
            endpoints["access_key_id"],
            endpoints["access_key_secret"],
            endpoints["ots_instance"],
        )
        assert set(client.list_table()) == {table.name for table in TABLES}
        assert local_ledger(tmp_path).list_runs() == []
    # As a local function instance reads it (FC_INSTANCE_ID set).
    environ = {**overrides, "IMMFLOW_PROJECT": "p", "IMMFLOW_TOPIC": "t", "FC_INSTANCE_ID": "i-1"}
    settings = settings_from_env(environ, code_dir=tmp_path)
    assert settings.oss_endpoint == endpoints["oss"]
    assert settings.imm_endpoint == endpoints["imm"]
    assert settings.ledger_url == DEFAULT_LEDGER_URL == f"tablestore://{endpoints['ots_instance']}"
    assert overrides["IMMFLOW_OTS_ENDPOINT"] == endpoints["ots"]


def test_without_a_function_env_the_functions_get_nothing_from_the_launcher(tmp_path: Path) -> None:
    with LocalCloud.start(tmp_path) as cloud:
        assert cloud.fc.env_overrides == {}


def test_an_unknown_placeholder_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"\{oss\}, \{mns\}, \{imm\}, \{ots\}"):
        LocalCloud.start(tmp_path, function_env={"X": "{nope}"})


def test_the_cli_hands_the_local_fc_the_projects_shared_folder_for_bare_code_folders(tmp_path: Path) -> None:
    """The local FC does not look for immflow itself: the CLI's deploy names the folder that holds it."""
    assert function_paths(ROOT / "s.yaml") == [str(ROOT / "shared")]
    (tmp_path / "s.yaml").write_text("edition: 3.0.0\n")
    assert function_paths(tmp_path / "s.yaml") == []

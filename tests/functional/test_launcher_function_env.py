"""The launcher gives every function the environment its caller hands it, endpoints filled in, and
nothing of its own; immflow's CLI hands it what immflow's functions need."""

from __future__ import annotations

from pathlib import Path

import pytest
from immflow.cli.local import function_env
from immflow.ledger import default_cli_ledger_url
from immflow.settings import settings_from_env

from localcloud.launcher import LaunchError, LocalCloud


def test_the_functions_get_what_the_caller_hands_the_launcher(tmp_path: Path) -> None:
    state_dir = tmp_path / "odd {braces}"
    with LocalCloud.start(state_dir, function_env=function_env(state_dir)) as cloud:
        overrides = cloud.fc.env_overrides
        endpoints = cloud.endpoints
    # As a local function instance reads it (FC_INSTANCE_ID set): a SQLite ledger is accepted only
    # because the hand-off says the instances share this machine's disk.
    environ = {**overrides, "IMMFLOW_PROJECT": "p", "IMMFLOW_TOPIC": "t", "FC_INSTANCE_ID": "i-1"}
    settings = settings_from_env(environ, code_dir=tmp_path)
    assert settings.oss_endpoint == endpoints["oss"]
    assert settings.imm_endpoint == endpoints["imm"]
    assert settings.ledger_url == default_cli_ledger_url(state_dir)


def test_without_a_function_env_the_functions_get_nothing_from_the_launcher(tmp_path: Path) -> None:
    with LocalCloud.start(tmp_path) as cloud:
        assert cloud.fc.env_overrides == {}


def test_an_unknown_placeholder_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"\{oss\}, \{mns\}, \{imm\}, \{ots\}"):
        LocalCloud.start(tmp_path, function_env={"X": "{nope}"})

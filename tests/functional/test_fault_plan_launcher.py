"""`LocalCloud.start(faults=...)` / `immflow local up --faults`: the plan reaches every service, is
kept in the state folder for a restart, and `immflow local status` shows it with the fault counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ThrottlingException
from click.testing import CliRunner
from immflow.cli import main

from localcloud.launcher import LocalCloud


def _imm(cloud: LocalCloud) -> Client:
    endpoints = cloud.endpoints
    return Client(
        open_api_models.Config(
            access_key_id=endpoints["access_key_id"],
            access_key_secret=endpoints["access_key_secret"],
            endpoint=endpoints["imm"],
            protocol="http",
            region_id=endpoints["region"],
        )
    )


def test_the_plan_is_kept_for_a_restart_and_shown_by_status(tmp_path: Path) -> None:
    with (
        LocalCloud.start(tmp_path, faults="seed=9,imm.throttle=1,delay_seconds=2") as cloud,
        pytest.raises(ThrottlingException),
    ):
        _imm(cloud).list_projects(models.ListProjectsRequest())
    assert json.loads((tmp_path / "faults.json").read_text()) == {
        "seed": 9,
        "rates": {"imm.throttle": 1.0},
        "settings": {"delay_seconds": 2.0},
    }
    with LocalCloud.start(tmp_path) as cloud:  # no SPEC: the saved plan again
        assert cloud.faults.to_json()["seed"] == 9
        with pytest.raises(ThrottlingException):
            _imm(cloud).list_projects(models.ListProjectsRequest())
    result = CliRunner().invoke(main, ["local", "status", "--state-dir", str(tmp_path), "--json"])
    assert result.exit_code == 1  # not running
    assert json.loads(result.output)["faults"] == {
        "seed": 9,
        "rates": {"imm.throttle": 1.0},
        "settings": {"delay_seconds": 2.0},
        "injected": {"imm.throttle": 2},
    }
    text = CliRunner().invoke(main, ["local", "status", "--state-dir", str(tmp_path)]).output
    assert "fault plan: seed 9, imm.throttle=1" in text and "faults injected: imm.throttle 2" in text
    with LocalCloud.start(tmp_path, faults="") as cloud:  # an empty SPEC turns them off
        _imm(cloud).list_projects(models.ListProjectsRequest())


def test_a_bad_spec_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["local", "up", "--state-dir", str(tmp_path), "--faults", "imm.nap=1"])
    assert result.exit_code == 2 and "unknown fault 'imm.nap'" in result.output
    assert not (tmp_path / "faults.json").exists()

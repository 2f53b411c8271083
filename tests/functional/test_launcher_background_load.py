"""``LocalCloud.start(load_in_background=True)`` (what ``immflow local up`` runs): IMM and Tablestore
are imported and built on threads of their own while their ports already answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tablestore
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from alibabacloud_tea_openapi.models import Config
from immflow.cli.local import spawn, stop, wait_ready

from localcloud.core.ports import free_port_base
from localcloud.launcher import SERVICES, LaunchError, LocalCloud
from tests.support.ots import create_table


def test_requests_made_at_once_wait_for_the_services_being_loaded(tmp_path: Path) -> None:
    with LocalCloud.start(tmp_path, load_in_background=True) as cloud:
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        ots = tablestore.OTSClient(
            endpoints["ots"],
            endpoints["access_key_id"],
            endpoints["access_key_secret"],
            endpoints["ots_instance"],
        )
        imm = Client(
            Config(access_key_id=endpoints["access_key_id"], access_key_secret=endpoints["access_key_secret"],
                   endpoint=endpoints["imm"], protocol="http", region_id=endpoints["region"])
        )  # fmt: skip

        create_table(ots, "t", [("k", "STRING")])
        imm.create_project(models.CreateProjectRequest(project_name="p", service_role="AliyunIMMDefaultRole"))

        assert ots.list_table() == ("t",)
        assert imm.get_project(models.GetProjectRequest(project_name="p")).body.project.project_name == "p"
        cloud.wait_loaded()
        assert type(cloud.services["ots"]).__name__ == "OtsService"


def test_a_service_that_cannot_load_is_reported_by_wait_loaded(tmp_path: Path) -> None:
    (tmp_path / "ots").write_text("not a folder")  # the local Tablestore keeps its state in DIR/ots/

    with LocalCloud.start(tmp_path, load_in_background=True) as cloud, pytest.raises(LaunchError) as raised:
        cloud.wait_loaded()

    assert "the local ots could not start" in str(raised.value)


def test_the_launcher_keeps_what_no_service_calls_off_its_start(tmp_path: Path) -> None:
    """The launcher runs with the functions' import diet (`immflow.imports`): once IMM and Tablestore
    have loaded and answered, the modules their SDKs import for calls no service makes (numpy for
    Tablestore's time series, aiohttp for the SDKs' async clients) are not in the process."""
    starting = spawn(tmp_path, free_port_base(len(SERVICES)))
    try:
        endpoints = wait_ready(starting)
        ots = tablestore.OTSClient(
            endpoints["ots"],
            endpoints["access_key_id"],
            endpoints["access_key_secret"],
            endpoints["ots_instance"],
        )
        create_table(ots, "t", [("k", "STRING")])
        imm = Client(
            Config(access_key_id=endpoints["access_key_id"], access_key_secret=endpoints["access_key_secret"],
                   endpoint=endpoints["imm"], protocol="http", region_id=endpoints["region"])
        )  # fmt: skip
        imm.create_project(models.CreateProjectRequest(project_name="p", service_role="AliyunIMMDefaultRole"))
        mapped = Path(f"/proc/{starting.process.pid}/maps").read_text()
    finally:
        stop(tmp_path)

    assert "/numpy" not in mapped and "/aiohttp/" not in mapped

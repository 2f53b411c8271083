"""`immflow local deploy template.yml` on a fresh local cloud creates the stack, and an upload with
oss2 then runs the pipeline to its manifest; `immflow local deploy s.yaml` on a fresh cloud names what
is missing instead of failing on it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oss2
import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client as ImmClient
from alibabacloud_tea_openapi.models import Config
from click.testing import CliRunner
from immflow.cli import main
from immflow.cli.local import create_ledger, function_env
from immflow.ledger import run_id_for
from mns.account import Account as MnsAccount
from PIL import Image

from localcloud.launcher import LocalCloud
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fresh_cloud(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    state_dir = tmp_path / "state"
    # What `immflow local up` does: the functions' environment, and the ledger's tables.
    cloud = LocalCloud.start(state_dir, fc_options={"async_retry_delay": 0.2}, function_env=function_env())
    create_ledger(state_dir)
    try:
        yield state_dir, json.loads((state_dir / "endpoints.json").read_text())
    finally:
        cloud.stop()


def _deploy(file: str, state_dir: Path) -> Any:
    return CliRunner().invoke(
        main, ["local", "deploy", str(ROOT / file), "--state-dir", str(state_dir), "--json"]
    )


def _media(endpoints: dict[str, str]) -> oss2.Bucket:
    auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
    return oss2.Bucket(auth, endpoints["oss"], "immflow-media")


@pytest.mark.e2e
def test_template_yml_creates_the_stack_and_an_upload_runs_to_its_manifest(
    fresh_cloud: tuple[Path, dict[str, str]],
) -> None:
    state_dir, endpoints = fresh_cloud
    result = _deploy("template.yml", state_dir)
    assert result.exit_code == 0, result.output
    resources = {r["logical_id"]: r for r in json.loads(result.stdout)["resources"]}
    for name in ("MediaBucket", "ResultsTopic", "FailedEventsQueue", "ImmServiceRole", "ImmProject"):
        assert resources[name]["status"] == "created", resources[name]
    for name in ("OnUpload", "OnTaskDone", "Reconcile", "OnTaskDoneTrigger", "ReconcileAsyncConfig"):
        assert resources[name]["status"] == "deployed", resources[name]
    # The ledger's instance is the local Tablestore's own, and `immflow local up` created the ledger's
    # tables when it started the cloud (its functions run on that ledger): the template finds each of them.
    assert resources["LedgerInstance"]["status"] == "exists"
    tables = [r for r in resources.values() if r["type"] == "ALIYUN::OTS::Table"]
    assert tables and {r["status"] for r in tables} == {"exists"}
    assert resources["FunctionLogstore"]["status"] == "skipped"

    # Each resource is there, seen through the services' own SDKs.
    mns = MnsAccount(endpoints["mns"], endpoints["access_key_id"], endpoints["access_key_secret"])
    assert mns.get_topic("immflow-imm-results").get_attributes().topic_name == "immflow-imm-results"
    assert mns.get_queue("immflow-failed-events").get_attributes().message_retention_period == 604800
    imm = ImmClient(
        Config(
            access_key_id=endpoints["access_key_id"],
            access_key_secret=endpoints["access_key_secret"],
            endpoint=endpoints["imm"],
            protocol="http",
            region_id=endpoints["region"],
        )
    )
    project = imm.get_project(models.GetProjectRequest(project_name="immflow")).body.project
    assert project.service_role == "immflow-imm-service"
    # The service role may read and write the media bucket, and nothing else.
    roles = json.loads((state_dir / "imm" / "policy.json").read_text())["roles"]
    assert roles["immflow-imm-service"] == {"read": ["immflow-media"], "write": ["immflow-media"]}

    # The code came from the zips in the code bucket, as ROS's Code.OssBucketName/OssObjectName says.
    auth = oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"])
    code = [o.key for o in oss2.ObjectIterator(oss2.Bucket(auth, endpoints["oss"], "immflow-code"))]
    assert sorted(code) == [f"immflow/code/{f}.zip" for f in ("on_task_done", "on_upload", "reconcile")]

    image = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 30, 30)).save(image, "JPEG")
    bucket = _media(endpoints)
    put = bucket.put_object(
        "uploads/images/ros/red.jpg", image.getvalue(), headers={"Content-Type": "image/jpeg"}
    )
    run_id = run_id_for("immflow-media", "uploads/images/ros/red.jpg", put.etag.strip('"').upper(), 1)
    key = f"immflow/manifests/{run_id}.json"
    wait_until(lambda: bucket.object_exists(key), 120, f"the manifest {key}")
    manifest = json.loads(bucket.get_object(key).read())
    outputs = [o for task in manifest["tasks"] for o in task.get("outputs", [])]
    assert outputs, manifest
    for output in outputs:
        assert bucket.object_exists(output.removeprefix("oss://immflow-media/"))

    # Step two: s.yaml updates the functions the template created.
    updated = _deploy("s.yaml", state_dir)
    assert updated.exit_code == 0, updated.output
    names = {f["name"] for f in json.loads(updated.stdout)["functions"]}
    assert names == {"immflow-on-upload", "immflow-on-task-done", "immflow-reconcile"}

    # A second deploy finds everything in place.
    again = {r["logical_id"]: r for r in json.loads(_deploy("template.yml", state_dir).stdout)["resources"]}
    assert again["MediaBucket"]["status"] == again["ImmProject"]["status"] == "exists"


def test_s_yaml_on_a_fresh_cloud_names_what_is_missing_and_how_to_create_it(
    fresh_cloud: tuple[Path, dict[str, str]],
) -> None:
    state_dir, _ = fresh_cloud
    result = _deploy("s.yaml", state_dir)
    assert result.exit_code == 1
    for expected in (
        "bucket 'immflow-media' (for OSS trigger uploads-videos of immflow-on-upload",
        "MNS topic 'immflow-imm-results' (for trigger imm-results of immflow-on-task-done)",
        "MNS queue 'immflow-failed-events'",
        "IMM project 'immflow' (for IMMFLOW_PROJECT of immflow-on-upload, immflow-on-task-done, immflow-reconcile)",
        "immflow local deploy template.yml",
    ):
        assert expected in result.output
    assert "NoSuchBucket" not in result.output
    # Nothing was deployed.
    assert not (state_dir / "fc" / "code").exists()

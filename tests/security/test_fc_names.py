"""Function and trigger names are names: a deploy that names a path is refused before any file is touched.

A whole local cloud runs on free ports; each s.yaml goes through the authenticated deploy route, as
``immflow local deploy`` sends it (an s.yaml from a repository the user did not write is the
attacker here). A refused deploy leaves nothing registered and nothing on disk, across all the
s.yaml's functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localcloud.core.admin import admin_headers
from localcloud.launcher import LocalCloud
from tests.support.cloud import start_local_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with start_local_cloud(tmp_path_factory.mktemp("state") / "cloud") as started:
        yield started


def _function(name: str, code: Path, triggers: list[dict[str, Any]] | None = None) -> str:
    return (
        f"  r{abs(hash(name))}:\n    component: fc3\n    props:\n      region: cn-hangzhou\n"
        f"      functionName: {json.dumps(name)}\n      runtime: python3.10\n      handler: index.handler\n"
        f"      code: {code}\n      triggers: {json.dumps(triggers or [])}\n"
    )


def _s_yaml(tmp_path: Path, *functions: str, body: str = "'ran'") -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "index.py").write_text(f"def handler(event, context):\n    return {body}\n")
    path = tmp_path / "s.yaml"
    text = "edition: 3.0.0\nname: x\naccess: default\nresources:\n" + "".join(functions)
    path.write_text(text.replace("CODE", str(code)))
    return path


def _deploy(cloud: LocalCloud, s_yaml: Path) -> requests.Response:
    return requests.post(
        cloud.endpoints["fc"] + "/_localcloud/deploy",
        json={"s_yaml": str(s_yaml)},
        headers=admin_headers(cloud.admin_token),
        timeout=60,
    )


def _registered(cloud: LocalCloud) -> set[str]:
    response = requests.get(
        cloud.endpoints["fc"] + "/_localcloud/functions", headers=admin_headers(cloud.admin_token), timeout=10
    )
    return {f["name"] for f in response.json()["functions"]}


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


BAD_FUNCTION_NAMES = [
    "../../../pwned-fc",
    "../pwned-fc",
    "/tmp/pwned-fc-absolute",
    "pwned\x00fc",
    "a" * 65,
    "1-starts-with-a-digit",
    "-starts-with-a-dash",
    "has/slash",
    "has.dot",
    "",
]


@pytest.mark.parametrize("name", BAD_FUNCTION_NAMES)
def test_a_function_name_that_is_not_fcs_is_refused_untouched(
    cloud: LocalCloud, tmp_path: Path, name: str
) -> None:
    before_registered = _registered(cloud)
    before_files = _files(cloud.state_dir.parent)
    response = _deploy(cloud, _s_yaml(tmp_path, _function(name, Path("CODE"))))
    assert response.status_code == 400
    assert response.json()["ErrorCode"] == "InvalidArgument"
    assert "functionName" in response.json()["ErrorMessage"]
    assert _registered(cloud) == before_registered
    assert _files(cloud.state_dir.parent) == before_files
    assert not Path("/tmp/pwned-fc-absolute").exists()


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "nul\x00here", "t" * 129, "9lives"])
def test_a_trigger_name_that_is_not_fcs_is_refused(cloud: LocalCloud, tmp_path: Path, name: str) -> None:
    timer = {"triggerName": name, "triggerType": "timer", "triggerConfig": {"cronExpression": "@every 1h"}}
    before_files = _files(cloud.state_dir.parent)
    response = _deploy(cloud, _s_yaml(tmp_path, _function("timed", Path("CODE"), [timer])))
    assert response.status_code == 400
    assert "triggerName" in response.json()["ErrorMessage"]
    assert "timed" not in _registered(cloud)
    assert _files(cloud.state_dir.parent) == before_files


def test_the_longest_names_fc_allows_deploy(cloud: LocalCloud, tmp_path: Path) -> None:
    name = "_" + "a" * 63
    timer = {
        "triggerName": "T" * 128,
        "triggerType": "timer",
        "triggerConfig": {"cronExpression": "@every 1h"},
    }
    response = _deploy(cloud, _s_yaml(tmp_path, _function(name, Path("CODE"), [timer])))
    assert response.status_code == 200, response.text
    assert name in _registered(cloud)


def test_one_bad_name_refuses_the_whole_s_yaml(cloud: LocalCloud, tmp_path: Path) -> None:
    before_files = _files(cloud.state_dir.parent)
    s_yaml = _s_yaml(tmp_path, _function("innocent", Path("CODE")), _function("../pwned-fc", Path("CODE")))
    assert _deploy(cloud, s_yaml).status_code == 400
    assert "innocent" not in _registered(cloud)
    assert _files(cloud.state_dir.parent) == before_files


def test_a_refused_trigger_leaves_nothing_registered_or_on_disk(cloud: LocalCloud, tmp_path: Path) -> None:
    """The second function's OSS trigger names a bucket that does not exist: the local OSS refuses it."""
    oss = {
        "triggerName": "uploads",
        "triggerType": "oss",
        "sourceArn": "acs:oss:cn-hangzhou:123:no-such-bucket",
        "triggerConfig": {"events": ["oss:ObjectCreated:*"]},
    }
    code_root = cloud.state_dir / "fc" / "code"
    before = _files(code_root) if code_root.exists() else set()
    s_yaml = _s_yaml(tmp_path, _function("first-ok", Path("CODE")), _function("second", Path("CODE"), [oss]))
    response = _deploy(cloud, s_yaml)
    assert response.status_code == 400
    assert "no-such-bucket" in response.json()["ErrorMessage"]
    assert not {"first-ok", "second"} & _registered(cloud)
    assert (_files(code_root) if code_root.exists() else set()) == before


def test_a_refused_redeploy_keeps_the_running_version(cloud: LocalCloud, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    first = _s_yaml(tmp_path / "v1", _function("keeper", Path("CODE")))
    assert _deploy(cloud, first).status_code == 200
    listed = requests.get(
        cloud.endpoints["fc"] + "/_localcloud/functions", headers=admin_headers(cloud.admin_token), timeout=10
    ).json()["functions"]
    version = next(f["version"] for f in listed if f["name"] == "keeper")
    (tmp_path / "v2").mkdir()
    second = _s_yaml(
        tmp_path / "v2", _function("keeper", Path("CODE")), _function("bad name", Path("CODE")), body="'v2'"
    )
    assert _deploy(cloud, second).status_code == 400
    listed = requests.get(
        cloud.endpoints["fc"] + "/_localcloud/functions", headers=admin_headers(cloud.admin_token), timeout=10
    ).json()["functions"]
    assert next(f["version"] for f in listed if f["name"] == "keeper") == version

"""Each function runs on its runtime's Python, isolated from the local cloud's packages; a missing
interpreter is reported and the function falls back to the local cloud's Python."""

from __future__ import annotations

import ast
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localcloud.fc import protocol, runtimes, service, worker
from tests.support.fc import FcCloud, probe_function

PYTHON_310 = runtimes.find_python(3, 10)
PYTHON_312 = runtimes.find_python(3, 12)


@pytest.fixture
def deployed(fc_cloud: FcCloud) -> tuple[FcCloud, dict[str, dict[str, str]]]:
    summaries = fc_cloud.fc.deploy(
        fc_cloud.write_s_yaml(probe_function("probe310") + probe_function("probe312", runtime="python3.12"))
    )
    return fc_cloud, {summary["name"]: summary for summary in summaries}


@pytest.mark.parametrize(
    ("function", "version", "found"), [("probe310", "3.10", PYTHON_310), ("probe312", "3.12", PYTHON_312)]
)
def test_a_function_runs_on_its_runtimes_python_with_only_its_code_and_the_standard_library(
    deployed: tuple[FcCloud, dict[str, dict[str, str]]],
    function: str,
    version: str,
    found: tuple[str, str] | None,
) -> None:
    cloud, described = deployed
    if found is None and sys.version_info[:2] != tuple(map(int, version.split("."))):
        pytest.skip(f"no Python {version} on this machine (python{version} on PATH, pyenv or uv)")
    record = json.loads(cloud.client().invoke_function("s", function, payload=b"{}").data)

    assert record["python"] == version
    assert record["sys_path"][0] == record["cwd"]
    assert not any("site-packages" in path for path in record["sys_path"]), record["sys_path"]
    assert described[function]["python"].startswith(f"python{version}: Python {version}.")


def test_a_missing_interpreter_is_said_once_and_the_function_falls_back(
    fc_cloud: FcCloud, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtimes, "_resolved", {})
    monkeypatch.setattr(runtimes, "find_python", lambda major, minor: None)
    caplog.set_level(logging.WARNING, logger="localcloud.fc")
    [described] = fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("probe312", runtime="python3.12")))
    client = fc_cloud.client()
    records = [json.loads(client.invoke_function("s", "probe312", payload=b"{}").data) for _ in range(2)]

    assert all(r["python"] == "{}.{}".format(*sys.version_info[:2]) for r in records)
    warnings = [r.getMessage() for r in caplog.records if "no Python 3.12" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "install Python 3.12" in warnings[0]
    assert "no Python 3.12 on this machine" in described["python"]


def test_a_deploy_looks_for_its_runtimes_interpreter_while_it_snapshots_the_code(
    fc_cloud: FcCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking for an interpreter runs each candidate Python (~0.1 s each): not after the snapshots."""
    moments: dict[str, float] = {}
    scan_code = service._scan_code

    def slow_scan(folder: Path) -> Any:
        time.sleep(0.3)
        moments.setdefault("first snapshot scanned", time.monotonic())
        return scan_code(folder)

    def find_python(major: int, minor: int) -> None:
        moments["interpreter looked for"] = time.monotonic()

    monkeypatch.setattr(runtimes, "_resolved", {})
    monkeypatch.setattr(runtimes, "find_python", find_python)
    monkeypatch.setattr(service, "_scan_code", slow_scan)
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("probe312", runtime="python3.12")))

    assert moments["interpreter looked for"] < moments["first snapshot scanned"]


def test_the_worker_keeps_to_the_oldest_runtimes_grammar() -> None:
    """The worker and its frame codec run on every runtime's Python, 3.9 the oldest."""
    for module in (worker, protocol):
        ast.parse(Path(module.__file__ or "").read_text(), feature_version=(3, 9))


def test_a_deployers_extra_paths_follow_the_code_folder_on_sys_path(
    fc_cloud: FcCloud, tmp_path: Path
) -> None:
    """The local FC knows no application's layout: whoever deploys names the folders a function imports from."""
    library = tmp_path / "library"
    library.mkdir()
    fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("probe")), extra_paths=[str(library)])
    record = json.loads(fc_cloud.client().invoke_function("s", "probe", payload=b"{}").data)

    assert record["sys_path"][:2] == [record["cwd"], str(library)]


@pytest.mark.parametrize("extra_paths", [["relative/folder"], ["/no/such/folder"], "/a/string"])
def test_extra_paths_must_be_existing_folders(fc_cloud: FcCloud, extra_paths: Any) -> None:
    with pytest.raises(ValueError, match="extra_paths"):
        fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("probe")), extra_paths=extra_paths)
    assert fc_cloud.fc.deploy(fc_cloud.write_s_yaml(probe_function("probe")))[0]["name"] == "probe"

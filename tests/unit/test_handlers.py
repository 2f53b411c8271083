"""The handlers: thin, light to import, and failing loudly on a malformed event."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from immflow.errors import PayloadError

ROOT = Path(__file__).resolve().parents[2]
SDK_MODULES = ("alibabacloud_imm20200930", "alibabacloud_tea_openapi", "oss2", "boto3", "mns", "fc2")


def _handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"unit_{name}_index", ROOT / "functions" / name / "index.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["on_upload", "on_task_done", "reconcile"])
def test_importing_a_handler_imports_no_cloud_sdk(name: str) -> None:
    probe = (
        "import sys, runpy; sys.path.insert(0, sys.argv[1]); import index; "
        f"print([m for m in {SDK_MODULES!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "functions" / name)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_a_handler_builds_no_pipeline_model_and_imports_only_the_task_types_it_looks_up(
    tmp_path: Path,
) -> None:
    from immflow.pipeline_file import CHECKED_SUFFIX, write_checked

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "version: 1\nrules:\n  - name: images\n    match: {prefix: in/}\n    tasks:\n"
        "      - {name: strip, type: ImageSplicing, params: {TargetURI: 'oss://{bucket}/out/{barename}.jpg'}}\n"
    )
    write_checked(pipeline, pipeline.with_name(pipeline.name + CHECKED_SUFFIX))
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import index\n"
        "from immflow.pipeline import Pipeline\n"
        "from immflow.pipeline_file import load_pipeline\n"
        "from immflow.tasks import TaskRequest\n"
        "load_pipeline(sys.argv[2]).rules[0].tasks[0].request_class\n"
        "print(sorted(cls.__name__ for cls in TaskRequest.__subclasses__()), Pipeline.__pydantic_complete__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "functions" / "on_upload"), str(pipeline)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "['ImageSplicingRequest'] False"


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("on_upload", b"not json"),
        ("on_upload", b'{"events": []}'),
        ("on_task_done", b'{"TopicOwner":"1","Message":"{}","MessageId":"m"}'),
    ],
)
def test_a_malformed_event_raises_before_anything_happens(name: str, event: bytes) -> None:
    with pytest.raises(PayloadError):
        _handler(name).handler(event, SimpleNamespace(request_id="r"))


def test_handlers_are_thin() -> None:
    for name in ("on_upload", "on_task_done", "reconcile"):
        source = (ROOT / "functions" / name / "index.py").read_text()
        body = source.split("def handler", 1)[1]
        assert len([line for line in body.splitlines() if line.strip()]) <= 4, name
        assert "except" not in source


def test_handlers_return_json_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from immflow.flow import runtime
    from immflow.settings import load_settings

    (tmp_path / "pipeline.yaml").write_text((ROOT / "pipeline.yaml").read_text())
    for variable, value in {
        "IMMFLOW_PROJECT": "p",
        "IMMFLOW_TOPIC": "t",
        "IMMFLOW_PIPELINE": str(tmp_path / "pipeline.yaml"),
        "IMMFLOW_LEDGER_URL": f"sqlite:///{tmp_path / 'l.sqlite3'}",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
    }.items():
        monkeypatch.setenv(variable, value)
    load_settings.cache_clear()
    runtime._services.clear()
    try:
        # Nothing is stale in an empty ledger, so reconcile calls no cloud service.
        result = _handler("reconcile").handler(
            b"{}", SimpleNamespace(request_id="r", function=SimpleNamespace(name="f", timeout=30))
        )
        assert json.loads(result) == {
            "checked": 0,
            "finished": [],
            "still_running": 0,
            "lost": [],
            "created": 0,
            "failed": [],
        }
    finally:
        load_settings.cache_clear()
        runtime._services.clear()

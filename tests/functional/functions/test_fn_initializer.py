"""The functions' FC initializer (s.yaml, template.yml): it sets up, once per instance, what the first
event would, and the first event then uses it; when it fails, the handler still works."""

from __future__ import annotations

from pathlib import Path

import pytest
from immflow.adapters.imm import ImmAdapter
from immflow.adapters.oss import OssAdapter
from immflow.flow import runtime

from tests.support.handlers import ROOT, Harness
from tests.support.media import png

ONE_SHAPE = pytest.mark.parametrize("harness", ["python3.10-tablestore", "python3.12-sqlite"], indirect=True)


def _code_dir(name: str) -> Path:
    return ROOT / "functions" / name


@ONE_SHAPE
def test_the_initializer_sets_up_what_the_first_event_then_uses(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMMFLOW_MANIFEST_URI", "oss://fn-media/immflow/manifests/")
    harness.initialize("on_upload")
    harness.initialize("on_task_done")

    prepared = {name: runtime._services[_code_dir(name)] for name in ("on_upload", "on_task_done")}
    for services in prepared.values():
        assert isinstance(services.imm, ImmAdapter) and isinstance(services.oss, OssAdapter)
        assert services.ledger._backend is not None and services.imm._client is not None
    oss = prepared["on_task_done"].oss
    assert isinstance(oss, OssAdapter) and oss._buckets  # on_task_done lists outputs at every event

    built: list[object] = []
    monkeypatch.setattr(runtime.Services, "from_settings", lambda *args: built.append(args))
    summary = harness.on_upload(harness.put(harness.key("images", "warm.png"), png()))

    assert len(summary["started"]) == 1 and not built  # the initializer's services, not new ones
    assert runtime._services[_code_dir("on_upload")] is prepared["on_upload"]


@ONE_SHAPE
def test_reconcile_initializes_only_the_ledger(harness: Harness) -> None:
    harness.initialize("reconcile")

    services = runtime._services[_code_dir("reconcile")]
    assert isinstance(services.imm, ImmAdapter)
    assert services.ledger._backend is not None and services.imm._client is None


@ONE_SHAPE
def test_a_failing_initializer_does_not_fail_and_the_first_event_sets_up_itself(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the ledger is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.Services, "from_settings", broken)
        harness.initialize("on_upload")  # logs the failure instead of raising

    summary = harness.on_upload(harness.put(harness.key("images", "cold.png"), png()))

    assert len(summary["started"]) == 1

"""`immflow.cli.local.cached_build`: the demo's function package is built once per set of inputs and
reused while they are unchanged; any change to what goes into it builds a new one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from immflow.cli import local

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what a build reads (handlers, shared/immflow, pipeline.yaml), with its own cache folder."""
    copy = tmp_path / "project"
    for name in ("on_upload", "on_task_done", "reconcile"):
        (copy / "functions" / name).mkdir(parents=True)
        shutil.copy2(REPO / "functions" / name / "index.py", copy / "functions" / name / "index.py")
    shutil.copytree(REPO / "shared" / "immflow", copy / "shared" / "immflow",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy2(REPO / "pipeline.yaml", copy / "pipeline.yaml")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return copy


def _builds(project: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records each build `cached_build` asks for; the build itself (immflow.package, tested in
    test_package.py) is replaced by one that copies the handlers: it takes a minute on a busy machine."""
    made: list[Path] = []

    def build(project_dir: Path, out: Path, runtime: str | None, say: object = None) -> None:
        made.append(out)
        for name in ("on_upload", "on_task_done", "reconcile"):
            (out / name).mkdir(parents=True)
            shutil.copy2(project_dir / "functions" / name / "index.py", out / name / "index.py")

    monkeypatch.setattr(local, "build_for_local_fc", build)
    return made


def test_unchanged_inputs_reuse_the_build(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _builds(project, monkeypatch)

    first = local.cached_build(project, None)
    second = local.cached_build(project, None)

    assert first == second and len(made) == 1
    assert (first / "on_upload" / "index.py").exists()
    assert not list(first.parent.glob(".*.tmp"))  # built aside, then renamed


@pytest.mark.parametrize(
    "edit", ["pipeline.yaml", "functions/on_task_done/index.py", "shared/immflow/package.py"]
)
def test_a_changed_input_builds_anew(project: Path, monkeypatch: pytest.MonkeyPatch, edit: str) -> None:
    made = _builds(project, monkeypatch)
    first = local.cached_build(project, None)
    with open(project / edit, "a") as handle:
        handle.write("\n# changed\n")

    second = local.cached_build(project, None)

    assert second != first and len(made) == 2
    assert (second / "on_task_done" / "index.py").exists()
    assert first.is_dir()  # a deploy may still be reading the earlier one

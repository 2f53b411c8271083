"""`immflow package`: the folders it builds, and that each handler imports from its folder alone.

The build here uses ``--no-deps`` (fast, offline): the folder then holds the handler, immflow and
pipeline.yaml, and the import check adds this test's own site-packages for the third-party packages.
The full build with dependencies (``pip install --platform manylinux2014_x86_64 --python-version
3.10``) needs the package index; its pip commands are checked below with a recording runner, and it is
run for real only when ``IMMFLOW_TEST_PACKAGE_DEPS=1`` (it downloads about 40 MB).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from immflow.cli import main
from immflow.package import FUNCTIONS, PackageError, build

ROOT = Path(__file__).resolve().parents[2]


def test_no_deps_build_imports_each_handler_from_its_folder_alone(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["package", "--no-deps", "--out", str(tmp_path / "fc"), "--project", str(ROOT)]
    )
    assert result.exit_code == 0, result.output
    for name in FUNCTIONS:
        folder = tmp_path / "fc" / name
        assert {p.name for p in folder.iterdir()} == {"index.py", "immflow", "pipeline.yaml"}
        assert not (folder / "immflow" / "cli").exists()
        # As s deploy would: zip the folder, unpack it somewhere empty, import from there.
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in folder.rglob("*"):
                zipped.write(path, path.relative_to(folder))
        unpacked = tmp_path / "unpacked" / name
        zipfile.ZipFile(archive).extractall(unpacked)
        third_party = sysconfig.get_paths()["purelib"]
        probe = (
            "import sys; sys.path[:] = [sys.argv[1], sys.argv[2]] + [p for p in sys.path if 'python3' in p and 'site-packages' not in p]; "
            "import index, immflow; assert immflow.__file__.startswith(sys.argv[1]), immflow.__file__; print('ok')"
        )
        done = subprocess.run(
            [sys.executable, "-S", "-c", probe, str(unpacked), third_party],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ""},
        )
        assert done.stdout.strip() == "ok", done.stderr


def test_the_dependency_install_targets_fc_and_builds_source_only_packages_here(tmp_path: Path) -> None:
    commands: list[Sequence[str]] = []
    build(ROOT, tmp_path / "fc", runtime="python3.10", run=commands.append)
    platform_installs = [c for c in commands if "--platform" in c]
    assert platform_installs and all(
        {"manylinux2014_x86_64", "3.10", "--only-binary=:all:"} <= set(c) for c in platform_installs
    )
    wanted = " ".join(platform_installs[0])
    # SQLAlchemy 2.1 needs Python 3.11: for python3.10 the declared range is used, not the installed pin.
    assert "SQLAlchemy<3,>=2.0" in wanted or "SQLAlchemy==2.0" in wanted
    assert (
        "pydantic==" in wanted
        and "crcmod" not in wanted
        and "oss2" not in wanted.split("--only-binary=:all:")[1]
    )
    [source_build] = [c for c in commands if "--platform" not in c]
    assert {"--no-deps"} <= set(source_build) and any(a.startswith("oss2==") for a in source_build)
    assert any(a.startswith("crcmod==") for a in source_build)


def test_an_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=re.escape("python3.10, python3.12")):
        build(ROOT, tmp_path, runtime="python3.9", dependencies=False)


@pytest.mark.skipif(
    not os.environ.get("IMMFLOW_TEST_PACKAGE_DEPS"),
    reason="set IMMFLOW_TEST_PACKAGE_DEPS=1 to run the full build (downloads ~40 MB)",
)
def test_full_build_installs_fc_wheels(tmp_path: Path) -> None:
    [upload, *_] = build(ROOT, tmp_path / "fc", runtime="python3.10")
    names = {p.name for p in upload.path.iterdir()}
    assert {"oss2", "crcmod", "sqlalchemy", "pydantic_core", "alibabacloud_imm20200930"} <= names
    assert any(
        p.name.endswith("cpython-310-x86_64-linux-gnu.so") for p in (upload.path / "pydantic_core").iterdir()
    )

"""`immflow package`: the folders it builds, and that each handler imports from its folder alone.

The build here uses ``--no-deps`` (fast, offline): the folder then holds the handler, immflow and
pipeline.yaml, and the import check adds this test's own site-packages for the third-party packages.
The full build with dependencies needs the package index; its pip commands are checked below with a
recording runner, and it is run for real only when ``IMMFLOW_TEST_PACKAGE_DEPS=1`` (CI sets it; it
downloads about 40 MB per runtime): then each runtime's package is unpacked and imported by that
runtime's own Python, with nothing else on ``sys.path``.
"""

from __future__ import annotations

import ast
import json
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
from immflow import package
from immflow.cli import main
from immflow.package import FUNCTIONS, PackageError, build, missing_for_target, target_python

ROOT = Path(__file__).resolve().parents[2]


def _zip_and_unpack(folder: Path, unpacked: Path) -> Path:
    """As s deploy does: zip the folder, then unpack it somewhere empty."""
    archive = unpacked.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in folder.rglob("*"):
            zipped.write(path, path.relative_to(folder))
    zipfile.ZipFile(archive).extractall(unpacked)
    return unpacked


def test_no_deps_build_imports_each_handler_from_its_folder_alone(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["package", "--no-deps", "--out", str(tmp_path / "fc"), "--project", str(ROOT)]
    )
    assert result.exit_code == 0, result.output
    for name in FUNCTIONS:
        folder = tmp_path / "fc" / name
        assert {p.name for p in folder.iterdir()} - {"__pycache__"} == {
            "index.py",
            "immflow",
            "pipeline.yaml",
            "pipeline.yaml.checked",
        }
        assert not {"cli", "demo", "ui", "package.py"} & {p.name for p in (folder / "immflow").iterdir()}
        (tmp_path / "unpacked").mkdir(exist_ok=True)
        unpacked = _zip_and_unpack(folder, tmp_path / "unpacked" / name)
        third_party = sysconfig.get_paths()["purelib"]
        probe = (
            "import sys; sys.path[:] = [sys.argv[1], sys.argv[2]] + [p for p in sys.path if 'python3' in p and 'site-packages' not in p]; "
            "import index, immflow; assert immflow.__file__.startswith(sys.argv[1]), immflow.__file__; "
            # the instance takes the checked pipeline without validating it again
            "from immflow.pipeline_file import _load_checked; from pathlib import Path; "
            "assert _load_checked(Path(sys.argv[1]) / 'pipeline.yaml') is not None; "
            "assert 'immflow.validation' not in sys.modules and 'yaml' not in sys.modules; print('ok')"
        )
        done = subprocess.run(
            [sys.executable, "-S", "-c", probe, str(unpacked), third_party],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ""},
        )
        assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("python", ["/opt/python3.10/bin/python3.10", None])
def test_the_dependency_install_targets_fc_and_builds_source_only_packages_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python: str | None
) -> None:
    monkeypatch.setattr(package, "target_python", lambda runtime: python)
    commands: list[Sequence[str]] = []
    [upload, *_] = build(ROOT, tmp_path / "fc", runtime="python3.10", run=commands.append)
    pips = [c for c in commands if c[1:3] == ["-m", "pip"]]
    assert pips and all(c[0] == (python or sys.executable) and "--no-compile" in c for c in pips)
    platform_installs = [c for c in pips if "--platform" in c]
    assert platform_installs and all(
        {"manylinux2014_x86_64", "manylinux_2_28_x86_64", "3.10", "--only-binary=:all:"} <= set(c)
        and "manylinux_2_29_x86_64" not in c  # newer than the glibc of python3.10's Debian 10
        for c in platform_installs
    )
    wanted = " ".join(platform_installs[0])
    # SQLAlchemy 2.1 needs Python 3.11: for python3.10 the declared range is used, not the installed pin.
    assert "SQLAlchemy<3,>=2.0" in wanted or "SQLAlchemy==2.0" in wanted
    assert (
        "pydantic==" in wanted
        and "crcmod" not in wanted
        and "oss2" not in wanted.split("--only-binary=:all:")[1]
    )
    [source_build] = [c for c in pips if "--platform" not in c]
    assert {"--no-deps"} <= set(source_build) and any(a.startswith("oss2==") for a in source_build)
    assert any(a.startswith("crcmod==") for a in source_build)
    compiles = [c for c in commands if c[1:3] == ["-m", "compileall"]]
    if python is None:
        assert compiles == [] and upload.python is None
    else:  # the dependencies once, then the handlers and immflow
        assert len(compiles) == 2 and all(c[0] == python and "unchecked-hash" in c for c in compiles)


def _distribution(site: Path, name: str, *requires: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        "Version: 1.0",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_requirements_whose_markers_select_the_target_python_are_found_missing(tmp_path: Path) -> None:
    _distribution(
        tmp_path,
        "aiohttp",
        'async-timeout<6.0,>=4.0; python_version < "3.11"',
        "yarl>=1.17",
        'brotli; platform_python_implementation == "CPython" and extra == "speedups"',
        'pywin32; sys_platform == "win32"',
    )
    _distribution(tmp_path, "yarl")

    assert missing_for_target(tmp_path, "3.10") == ["async-timeout<6.0,>=4.0"]
    assert missing_for_target(tmp_path, "3.12") == []


def test_an_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=re.escape("python3.10, python3.12")):
        build(ROOT, tmp_path, runtime="python3.9", dependencies=False)


def _imported_modules(library: Path) -> list[str]:
    """Every module immflow's code imports, at the top or lazily inside a function (the SDK clients)."""
    found: set[str] = set()
    for source in library.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return sorted(m for m in found if m.split(".")[0] not in ("immflow", "__future__"))


#: Run by the runtime's Python with only the unpacked package on sys.path: import the handler, then
#: every third-party module immflow imports and the SQL drivers the ledger URL selects; print where
#: each came from and the interpreter's bytecode magic number.
_IMPORT_PROBE = """
import importlib, importlib.util, json, sys
folder, modules = sys.argv[1], json.loads(sys.argv[2])
sys.path[:] = [folder] + [p for p in sys.path if p and not p.startswith(folder)]
import index
origins = {"index": index.__file__}
for name in modules:
    if name.split(".")[0] not in sys.stdlib_module_names:
        origins[name] = importlib.import_module(name).__file__
print(json.dumps({"origins": origins, "magic": importlib.util.MAGIC_NUMBER.hex(), "path": sys.path}))
"""


@pytest.mark.skipif(
    not os.environ.get("IMMFLOW_TEST_PACKAGE_DEPS"),
    reason="set IMMFLOW_TEST_PACKAGE_DEPS=1 to run the full build (downloads ~40 MB per runtime)",
)
@pytest.mark.parametrize(
    ("runtime", "by_target"),
    [("python3.10", True), ("python3.12", True), ("python3.10", False)],
    ids=["python3.10", "python3.12", "python3.10-built-without-it"],
)
def test_each_runtimes_package_imports_every_handler_on_that_runtimes_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str, by_target: bool
) -> None:
    python = target_python(runtime)
    if python is None:
        version = runtime.removeprefix("python")
        pytest.skip(f"no Python {version} on this machine (python{version} on PATH, pyenv or uv)")
    if not by_target:  # as on a machine without it: this Python's pip, the markers evaluated here
        monkeypatch.setattr(package, "target_python", lambda runtime: None)
    built = build(ROOT, tmp_path / "fc", runtime=runtime, cache_dir=tmp_path / "cache")
    tag = runtime.removeprefix("python").replace(".", "")
    for function in built:
        assert function.python == (python if by_target else None)
        names = {p.name for p in function.path.iterdir()}
        assert {"oss2", "crcmod", "sqlalchemy", "pydantic_core", "alibabacloud_imm20200930"} <= names
        assert any(n.startswith("async_timeout-") for n in names) == (runtime == "python3.10"), names
        assert any(
            p.name.endswith(f"cpython-{tag}-x86_64-linux-gnu.so")
            for p in (function.path / "pydantic_core").iterdir()
        )
        assert bool(list((function.path / "crcmod").glob("*.so"))) == by_target
        unpacked = _zip_and_unpack(function.path, tmp_path / function.name)
        modules = [*_imported_modules(unpacked / "immflow"), "psycopg", "pymysql"]
        done = subprocess.run(
            [python, "-E", "-S", "-B", "-c", _IMPORT_PROBE, str(unpacked), json.dumps(modules)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        outside = {m: f for m, f in report["origins"].items() if f and not f.startswith(str(unpacked))}
        assert not outside, outside
        assert "alibabacloud_imm20200930.client" in report["origins"] and "oss2" in report["origins"]
        # Every .pyc is the target's (its magic number) and unchecked-hash (flags 0b01): usable as is
        # from FC's read-only code folder. Built without the target, there are none.
        if not by_target:
            assert list(unpacked.rglob("*.pyc")) == []
            continue
        compiled = list(unpacked.rglob(f"*.cpython-{tag}.pyc"))
        assert len(compiled) > 1000 and set(unpacked.rglob("*.pyc")) == set(compiled)
        for pyc in compiled:
            header = pyc.read_bytes()[:8]
            assert header[:4].hex() == report["magic"] and int.from_bytes(header[4:8], "little") == 1, pyc

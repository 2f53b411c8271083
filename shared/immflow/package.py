"""``immflow package``: the code folder of each function, ready for ``s deploy`` (``build/fc/<function>/``).

Each folder holds the handler (``index.py``), the ``immflow`` library (without the CLI, the demo
and the local cloud, which no function imports), ``pipeline.yaml``, and the functions' third-party
dependencies, pinned to the versions installed here (the versions the tests ran with), installed
for FC's platform: ``pip install --target --platform manylinux2014_x86_64 --python-version 3.10
--implementation cp --only-binary=:all:``.

oss2 and crcmod (which oss2 needs) are published only as source, so pip cannot install them for
another platform. They are built on this machine instead: oss2 is pure Python, and crcmod's
pure-Python module works on every Python. crcmod's C extension works only when this machine's Python
is the runtime's (then it is kept); otherwise it is left out and oss2 computes CRC-64 in pure Python
(slower on large objects; immflow only lists objects and writes small manifests).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from immflow.errors import ImmflowError

FUNCTIONS = ("on_upload", "on_task_done", "reconcile")
RUNTIMES = {"python3.10": "3.10", "python3.12": "3.12"}
PLATFORM = "manylinux2014_x86_64"
#: What the functions import at run time (the CLI's click and rich, the local cloud's media tools are not).
RUNTIME_DEPENDENCIES = (
    "pydantic",
    "aws-lambda-powertools",
    "alibabacloud-imm20200930",
    "oss2",
    "PyYAML",
    "SQLAlchemy",
    "psycopg[binary]",
    "PyMySQL",
)
SOURCE_ONLY = ("oss2", "crcmod")
CRC_EXTENSION_PACKAGE = "crcmod"
_LIBRARY_EXCLUDES = ("cli", "demo", "__pycache__", "*.pyc")

Runner = Callable[[Sequence[str]], None]


class PackageError(ImmflowError):
    pass


@dataclass(frozen=True)
class BuiltFunction:
    name: str
    path: Path
    dependencies: bool


def pinned(requirement: str, python_version: str) -> str:
    """``name==<installed version>`` (extras kept): the version this environment was tested with.

    When that version does not support the runtime's Python (SQLAlchemy 2.1 needs 3.11, FC's
    python3.10 has 3.10), the range immflow declares for it is used instead, and pip picks the
    newest version in it that does.
    """
    name, _, extras = requirement.partition("[")
    try:
        installed = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise PackageError(
            f"{name} is not installed here, so its tested version is unknown: pip install {name}"
        ) from None
    # `.get_all`, not `[...]`: on Python 3.12 a missing header through `[...]` warns (and will raise).
    supported = SpecifierSet((installed.metadata.get_all("Requires-Python") or [""])[0])
    if supported.contains(f"{python_version}.0") or not supported:
        return f"{name}{'[' + extras if extras else ''}=={installed.version}"
    return _declared_range(name)


def _declared_range(name: str) -> str:
    wanted = canonicalize_name(name)
    for text in metadata.requires("immflow") or []:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == wanted:
            return str(requirement).split(";")[0].strip()
    raise PackageError(
        f"the installed {name} does not support the runtime's Python and immflow declares no range for it"
    )


def _run(command: Sequence[str]) -> None:
    completed = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise PackageError(f"{' '.join(command[:6])} ... failed:\n{completed.stderr.strip()[-3000:]}")


def build(
    project_dir: Path,
    out: Path,
    *,
    runtime: str = "python3.10",
    dependencies: bool = True,
    run: Runner = _run,
) -> list[BuiltFunction]:
    """Build every function into ``out/<function>``; `dependencies` False leaves the third-party packages out."""
    if runtime not in RUNTIMES:
        raise PackageError(f"runtime {runtime!r} is not supported; use one of {', '.join(RUNTIMES)}")
    library = project_dir / "shared" / "immflow"
    pipeline = project_dir / "pipeline.yaml"
    for needed in (library, pipeline, *(project_dir / "functions" / name / "index.py" for name in FUNCTIONS)):
        if not needed.exists():
            raise PackageError(
                f"{needed} is missing: run immflow package from the project folder (the one with s.yaml)"
            )
    site: Path | None = None
    if dependencies:
        site = out / ".site-packages"
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir(parents=True)
        _install_dependencies(site, RUNTIMES[runtime], run)
    built = []
    for name in FUNCTIONS:
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        if site is not None:
            shutil.copytree(site, target)
        else:
            target.mkdir(parents=True)
        shutil.copy2(project_dir / "functions" / name / "index.py", target / "index.py")
        shutil.copytree(library, target / "immflow", ignore=shutil.ignore_patterns(*_LIBRARY_EXCLUDES))
        shutil.copy2(pipeline, target / "pipeline.yaml")
        built.append(BuiltFunction(name, target, dependencies))
    if site is not None:
        shutil.rmtree(site)
    return built


def _install_dependencies(site: Path, python_version: str, run: Runner) -> None:
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(site),
    ]
    platform = [
        "--platform",
        PLATFORM,
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]
    oss2_requirements = [
        Requirement(text)
        for text in metadata.requires("oss2") or []
        if canonicalize_name(Requirement(text).name) not in SOURCE_ONLY
    ]
    wanted = [pinned(name, python_version) for name in RUNTIME_DEPENDENCIES if name not in SOURCE_ONLY]
    run([*pip, *platform, *wanted, *(str(requirement) for requirement in oss2_requirements)])
    # The source-only ones, built here, without dependencies (installed above for the right platform).
    run([*pip, "--no-deps", *(pinned(name, python_version) for name in SOURCE_ONLY)])
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != python_version:
        for extension in (site / CRC_EXTENSION_PACKAGE).glob("*.so"):
            extension.unlink()

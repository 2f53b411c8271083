"""``immflow package``: the code folder of each function, ready for ``s deploy`` (``build/fc/<function>/``).

Each folder holds the handler (``index.py``), the ``immflow`` library (without the CLI, the demo,
the dashboard and this module, which no function imports), ``pipeline.yaml`` with its checked form
(validated here: :mod:`immflow.pipeline`), and the functions' third-party
dependencies, pinned to the versions installed here (the versions the tests ran with). Everything
is built for the runtime named, not for the Python running this build:

- **The runtime's own interpreter installs the dependencies** when this machine has one (found as
  the local FC finds it: :mod:`localcloud.fc.runtimes`). pip evaluates environment markers with
  the interpreter it runs on, even under ``--python-version``, so only the target's own pip gets
  ``async-timeout; python_version < "3.11"`` (which aiohttp, under the IMM SDK, needs on 3.10)
  right. Without it, this machine's pip installs them and the markers of every installed
  distribution are then evaluated for the target here, and what they add is installed too.
- **Wheels for FC's Linux**: ``--platform`` with manylinux2014 and every ``manylinux_2_N`` up to
  the glibc of the runtime's Debian (docs/fc-runtimes.md), ``--implementation cp``,
  ``--python-version``, ``--only-binary=:all:``, so a wheel built for a newer glibc than FC's is
  never picked, even on a build machine that has one.
- **Source-only packages** (oss2 and crcmod, which oss2 needs) are built on this machine, by the
  target interpreter when there is one: oss2 is pure Python, and crcmod's C extension then fits
  the runtime. Built by another Python, the extension is left out and oss2 computes CRC-64 in pure
  Python (slower on large objects; immflow only lists objects and writes small manifests).
- **Bytecode from the target interpreter** (``compileall --invalidation-mode unchecked-hash``):
  FC's code folder is read-only, so a runtime that finds no usable ``.pyc`` compiles every module
  again on every cold start; unchecked-hash ``.pyc`` files are used without a look at the source's
  timestamp (which a zip does not keep). Without the target interpreter, no ``.pyc`` is shipped
  (one made by another Python would be ignored) and :func:`bytecode_notice` says what that costs.

The dependencies are installed once per runtime, interpreter and requirement set into a cache
folder (``~/.cache/immflow/packages/<key>``) and hard-linked into each function's folder; delete
that folder to resolve them again.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from immflow.pipeline_file import CHECKED_SUFFIX, write_checked

FUNCTIONS = ("on_upload", "on_task_done", "reconcile")
RUNTIMES = {"python3.10": "3.10", "python3.12": "3.12"}
#: The glibc minor version of each runtime's OS: python3.10 runs on Debian 10 (glibc 2.28),
#: python3.12 on Debian 11 (glibc 2.31) (docs/fc-runtimes.md).
RUNTIME_GLIBC = {"python3.10": 28, "python3.12": 31}
#: What the functions import at run time (the CLI's click and rich, the local cloud's media tools are not).
RUNTIME_DEPENDENCIES = (
    "pydantic",
    "aws-lambda-powertools",
    "alibabacloud-imm20200930",
    "oss2",
    "PyYAML",
    "SQLAlchemy",
    "tablestore",
    "psycopg[binary]",
    "PyMySQL",
)
SOURCE_ONLY = ("oss2", "crcmod")
CRC_EXTENSION_PACKAGE = "crcmod"
_LIBRARY_EXCLUDES = ("cli", "demo", "ui", "package.py", "__pycache__", "*.pyc")
#: Bumped when the layout of a cached dependency folder changes.
_CACHE_FORMAT = 2

Runner = Callable[[Sequence[str]], None]


class PackageError(ImmflowError):
    pass


@dataclass(frozen=True)
class BuiltFunction:
    name: str
    path: Path
    dependencies: bool
    #: The interpreter that compiled the bytecode, None when the runtime's Python is missing here.
    python: str | None


def platforms(runtime: str) -> list[str]:
    """The wheel platform tags FC's runtime accepts, oldest first."""
    newest = RUNTIME_GLIBC[runtime]
    return ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, newest + 1))]


def target_python(runtime: str) -> str | None:
    """The path of an interpreter of ``runtime``'s Python version on this machine, or None."""
    from localcloud.fc.runtimes import RUNTIME_PYTHON, find_python

    wanted = RUNTIME_PYTHON[runtime]
    if sys.version_info[:2] == wanted:
        return sys.executable
    found = find_python(*wanted)
    return found[0] if found else None


def bytecode_notice(runtime: str) -> str:
    """What a package built without ``runtime``'s interpreter lacks, and how to get it."""
    version = RUNTIMES[runtime]
    return (
        f"no Python {version} on this machine (python{version} on PATH, pyenv or uv): the package has "
        f"no .pyc files, so on FC's read-only code folder every cold start compiles each imported "
        f"module again (on_upload's imports: 3.4-5.3 s instead of 1.3-3.0 s on a shared 2-core "
        "machine), and crcmod's C extension is left out; "
        f"install Python {version} (pyenv install {version}, uv python install {version}, or your "
        "system's package) and build again"
    )


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


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "immflow" / "packages"


def build(
    project_dir: Path,
    out: Path,
    *,
    runtime: str = "python3.10",
    dependencies: bool = True,
    run: Runner = _run,
    cache_dir: Path | None = None,
) -> list[BuiltFunction]:
    """Build every function into ``out/<function>``; `dependencies` False leaves the third-party packages out.

    With a ``cache_dir`` the dependencies are installed there once per key (runtime, interpreter,
    requirements) and reused; without one they are installed afresh into ``out``.
    """
    if runtime not in RUNTIMES:
        raise PackageError(f"runtime {runtime!r} is not supported; use one of {', '.join(RUNTIMES)}")
    library = project_dir / "shared" / "immflow"
    pipeline = project_dir / "pipeline.yaml"
    for needed in (library, pipeline, *(project_dir / "functions" / name / "index.py" for name in FUNCTIONS)):
        if not needed.exists():
            raise PackageError(
                f"{needed} is missing: run immflow package from the project folder (the one with s.yaml)"
            )
    python = target_python(runtime)
    site = _dependencies(out, runtime, python, run, cache_dir) if dependencies else None
    built = []
    for name in FUNCTIONS:
        target = out / name
        shutil.rmtree(target, ignore_errors=True)
        if site is not None:
            shutil.copytree(site, target, copy_function=_link_or_copy)
        else:
            target.mkdir(parents=True)
        shutil.copy2(project_dir / "functions" / name / "index.py", target / "index.py")
        shutil.copytree(library, target / "immflow", ignore=shutil.ignore_patterns(*_LIBRARY_EXCLUDES))
        shutil.copy2(pipeline, target / "pipeline.yaml")
        # Validated once here, so that no instance validates it again (immflow.pipeline: the checked form).
        write_checked(target / "pipeline.yaml", target / ("pipeline.yaml" + CHECKED_SUFFIX))
        built.append(BuiltFunction(name, target, dependencies, python))
    if python is not None:
        _compile(python, [p for f in built for p in (f.path / "index.py", f.path / "immflow")], run)
    if site is not None and cache_dir is None:
        shutil.rmtree(site)
    return built


def _link_or_copy(source: str, destination: str) -> None:
    """Hard-link a cached file (no copy of ~100 MB per function), copying across file systems."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _compile(python: str, paths: Sequence[Path], run: Runner) -> None:
    run([python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", *map(str, paths)])


def _requirements(python_version: str) -> tuple[list[str], list[str]]:
    """The requirements installed for FC's platform, and the source-only ones built here."""
    oss2_requirements = [
        str(Requirement(text))
        for text in metadata.requires("oss2") or []
        if canonicalize_name(Requirement(text).name) not in SOURCE_ONLY
    ]
    wanted = [pinned(name, python_version) for name in RUNTIME_DEPENDENCIES if name not in SOURCE_ONLY]
    return [*wanted, *oss2_requirements], [pinned(name, python_version) for name in SOURCE_ONLY]


def _dependencies(out: Path, runtime: str, python: str | None, run: Runner, cache_dir: Path | None) -> Path:
    """The folder with the runtime's dependencies: from the cache, or installed now."""
    binary, source_only = _requirements(RUNTIMES[runtime])
    if cache_dir is None:
        final = out / ".site-packages"
    else:
        interpreter = _interpreter_version(python) if python else f"none (built by {sys.version.split()[0]})"
        key = hashlib.sha256(
            json.dumps(
                [_CACHE_FORMAT, runtime, interpreter, platforms(runtime), binary, source_only]
            ).encode()
        ).hexdigest()[:16]
        final = cache_dir / f"{runtime}-{key}"
        if final.is_dir():
            return final
    staging = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _install(staging, runtime, python, binary, source_only, run)
    # Bytecode a wheel ships (numpy's has some) is neither the target's nor unchecked-hash: drop it.
    for shipped in list(staging.rglob("__pycache__")):
        shutil.rmtree(shipped)
    if python is not None:
        _compile(python, [staging], run)
    if cache_dir is None:
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(staging, final)
    except OSError:  # another build of the same key finished first: its folder is as good
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _interpreter_version(python: str) -> str:
    done = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
    return done.stdout.strip()


def _install(
    site: Path, runtime: str, python: str | None, binary: list[str], source_only: list[str], run: Runner
) -> None:
    python_version = RUNTIMES[runtime]
    pip = [
        python or sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # the bytecode is compiled afterwards, unchecked-hash, by the target
        "--target",
        str(site),
    ]
    for_fc = [
        *(arg for tag in platforms(runtime) for arg in ("--platform", tag)),
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]
    run([*pip, *for_fc, *binary])
    if python is None:
        for _ in range(5):  # each round may bring distributions with marker-selected requirements
            missing = missing_for_target(site, python_version)
            if not missing:
                break
            run([*pip, *for_fc, *missing])
    # The source-only ones, built here, without dependencies (installed above for the right platform).
    run([*pip, "--no-deps", *source_only])
    if python is None:
        for extension in (site / CRC_EXTENSION_PACKAGE).glob("*.so"):
            extension.unlink()


def missing_for_target(site: Path, python_version: str) -> list[str]:
    """Requirements of the distributions in ``site`` that apply on FC's ``python_version`` but are absent.

    pip decides them by its own interpreter's markers; this evaluates them for the target's.
    Requirements behind an ``extra`` are left to pip (it evaluates those the same on every Python).
    """
    environment = {
        "implementation_name": "cpython",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": f"{python_version}.0",
        "python_version": python_version,
        "sys_platform": "linux",
        "extra": "",
    }
    distributions = list(metadata.distributions(path=[str(site)]))
    present = {canonicalize_name(d.metadata["Name"]) for d in distributions}
    missing: dict[str, str] = {}
    for distribution in distributions:
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            name = canonicalize_name(requirement.name)
            if name not in present:
                requirement.marker = None
                missing[name] = str(requirement)
    return sorted(missing.values())

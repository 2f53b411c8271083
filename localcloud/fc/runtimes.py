"""Which Python runs a function: the CPython version of its FC runtime, found on this machine.

FC's Python runtimes are fixed CPython versions (docs/fc-runtimes.md): python3.9 is 3.9,
python3.10 is 3.10, python3.12 is 3.12. A function runs locally on an interpreter of that
version, so code that only works on the local cloud's own Python (3.11 syntax, a wheel built for
3.11, a dependency pip left out because its marker was evaluated for 3.11) fails here as it would
in the cloud. Interpreters are looked for, in this order:

1. the local cloud's own Python, when it is the runtime's version (it then keeps its packages);
2. ``pythonX.Y`` on ``PATH`` (the system's, a venv's, a pyenv shim that resolves);
3. pyenv's installs, ``$PYENV_ROOT/versions/X.Y.*`` (``~/.pyenv`` by default; the newest patch);
4. uv's managed interpreters, through ``uv python find X.Y`` (which never downloads).

Every candidate is run once to confirm its version: a pyenv shim for a version not selected in the
shell exists on ``PATH`` but fails. When none is found, the function falls back to the local
cloud's Python; that is logged once per runtime and reported by ``GET /_localcloud/functions``
(``python``), which ``immflow local status`` prints. FC's ``python3`` runtime (Python 3.6) has no
local interpreter: the worker needs 3.7 or newer, so such functions always fall back.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("localcloud.fc")

#: FC runtime identifier -> the CPython (major, minor) it runs (docs/fc-runtimes.md).
RUNTIME_PYTHON: dict[str, tuple[int, int]] = {
    "python3.9": (3, 9),
    "python3.10": (3, 10),
    "python3.12": (3, 12),
}
_VERSION_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


@dataclass(frozen=True)
class Interpreter:
    """A Python that runs a runtime's functions; ``host`` when it is the local cloud's own."""

    runtime: str
    path: str
    version: str
    host: bool
    notice: str = ""

    def describe(self) -> str:
        where = "the local cloud's Python" if self.host else self.path
        return f"{self.runtime}: Python {self.version} ({where})" + (
            f"; {self.notice}" if self.notice else ""
        )


def _probe(candidate: str) -> str | None:
    """The X.Y.Z version ``candidate`` reports, or None when it does not run."""
    try:
        done = subprocess.run(
            [candidate, "-E", "-s", "-c", _VERSION_PROBE], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _candidates(major: int, minor: int) -> list[str]:
    name = f"python{major}.{minor}"
    found: list[str] = []
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    installs = glob.glob(os.path.join(pyenv_root, "versions", f"{major}.{minor}.*", "bin", name))

    def patch(path: str) -> int:
        text = Path(path).parents[1].name.split(".")[2]
        return int(text) if text.isdigit() else -1  # 3.10.0rc1, 3.13t builds: last resort

    found.extend(sorted(installs, key=patch, reverse=True))
    uv = shutil.which("uv")
    if uv:
        try:
            done = subprocess.run(
                [uv, "python", "find", "--no-config", f"{major}.{minor}"],
                capture_output=True,
                text=True,
                timeout=20,
                env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            found.append(done.stdout.strip())
    return found


def find_python(major: int, minor: int) -> tuple[str, str] | None:
    """``(path, X.Y.Z)`` of a CPython ``major.minor`` on this machine other than the host's, or None."""
    for candidate in _candidates(major, minor):
        version = _probe(candidate)
        if version and tuple(int(part) for part in version.split(".")[:2]) == (major, minor):
            return candidate, version
    return None


def _host_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _resolve(runtime: str) -> Interpreter:
    wanted = RUNTIME_PYTHON.get(runtime)
    if wanted is None:
        return Interpreter(
            runtime,
            sys.executable,
            _host_version(),
            True,
            f"the local FC has no interpreter for {runtime} (FC's Python 3.6): it runs on the local "
            "cloud's Python instead, which the cloud's runtime is not",
        )
    if sys.version_info[:2] == wanted:
        return Interpreter(runtime, sys.executable, _host_version(), True)
    found = find_python(*wanted)
    if found:
        return Interpreter(runtime, found[0], found[1], False)
    version = f"{wanted[0]}.{wanted[1]}"
    return Interpreter(
        runtime,
        sys.executable,
        _host_version(),
        True,
        f"no Python {version} on this machine (looked for python{version} on PATH, in pyenv and uv): "
        f"functions of this runtime run on the local cloud's Python {_host_version()} instead, so code "
        f"that needs {version} is not checked; install Python {version} (pyenv install {version}, "
        f"uv python install {version}, or your system's package) and restart the local cloud",
    )


_resolved: dict[str, Interpreter] = {}
_lock = threading.Lock()


def interpreter_for(runtime: str) -> Interpreter:
    """The interpreter for ``runtime``, found once per process; a fallback is logged that one time."""
    with _lock:
        interpreter = _resolved.get(runtime)
        if interpreter is None:
            interpreter = _resolve(runtime)
            _resolved[runtime] = interpreter
            if interpreter.notice:
                log.warning("%s", interpreter.describe())
            else:
                log.info("%s", interpreter.describe())
        return interpreter

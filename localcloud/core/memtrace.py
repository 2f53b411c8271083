"""Allocation snapshots of the local cloud's process, for finding what makes its memory grow.

Off unless ``LOCALCLOUD_TRACEMALLOC=N`` is in the launcher's environment (N frames kept per
allocation; tracing slows the process down, so it is never on by default). When on, SIGUSR2 makes
the launcher write ``DIR/tracemalloc/<count>.snap`` (a :mod:`tracemalloc` snapshot); the soak
sends it at the end of each round and prints what grew between the last two (``bench/soak.py
--tracemalloc``). :func:`top_growth` diffs two snapshots.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import json
import os
import signal
import threading
import tracemalloc
from collections import Counter
from pathlib import Path

ENV = "LOCALCLOUD_TRACEMALLOC"
SNAPSHOT_DIR = "tracemalloc"


def install(state_dir: Path) -> bool:
    """Start tracing and the SIGUSR2 handler when ``LOCALCLOUD_TRACEMALLOC`` asks (main thread only)."""
    frames = os.environ.get(ENV, "").strip()
    if not frames:
        return False
    tracemalloc.start(max(1, int(frames)))
    folder = state_dir / SNAPSHOT_DIR
    folder.mkdir(exist_ok=True)
    numbers = itertools.count(len(list(folder.glob("*.snap"))) + 1)

    def dump(*_: object) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        )
        path = folder / f"{next(numbers):03d}.snap"
        path.with_suffix(".json").write_text(json.dumps(figures()))
        snapshot.dump(str(path.with_suffix(".part")))
        os.replace(path.with_suffix(".part"), path)  # the soak waits for the whole file

    signal.signal(signal.SIGUSR2, dump)
    return True


def figures() -> dict[str, object]:
    """What the process holds besides the traced Python objects: RSS, SQLite's own heap, threads,
    and the most numerous object types (gc)."""
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    traced, peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()  # the next snapshot's peak is the next round's
    rss = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {
        "rss": rss,
        "traced": traced,
        "traced_peak": peak,
        "sqlite_heap": _sqlite_memory_used(),
        "threads": threading.active_count(),
        "objects": dict(counts.most_common(25)),
    }


def _sqlite_memory_used() -> int:
    """``sqlite3_memory_used()`` of the library the :mod:`sqlite3` module is linked with (-1 if unknown)."""
    import _sqlite3

    try:
        library = ctypes.CDLL(_sqlite3.__file__)
        function = library.sqlite3_memory_used
    except (OSError, AttributeError):
        return -1
    function.restype = ctypes.c_int64
    return int(function())


def top_growth(before: Path, after: Path, limit: int = 15, key: str = "traceback") -> list[str]:
    """The allocation sites that grew most from snapshot ``before`` to ``after``, one line each."""
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    lines = []
    for stat in new.compare_to(old, key)[:limit]:
        frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(stat.traceback)[:6])
        lines.append(f"{stat.size_diff / 2**10:+9.0f} KiB {stat.count_diff:+7d} blocks  {frames}")
    return lines

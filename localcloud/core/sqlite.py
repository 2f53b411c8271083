"""One SQLite file per service, shared by all of its threads, with writes that survive kill -9.

The database runs in WAL mode with ``synchronous=FULL``: a transaction that
:meth:`Database.transaction` has committed is on disk (the WAL is fsynced at every commit), so a
service may acknowledge the request that made it. ``NORMAL`` would survive a process kill but
could lose the last commits on power loss; it saves about 0.25 ms per commit on an ext4 disk,
which no service here notices next to its HTTP round trips.

Rows are :class:`sqlite3.Row`: they index by name and by position, and unpack like tuples.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Database:
    """One connection, guarded by :attr:`lock`; :attr:`changed` is notified after each commit
    that changed rows, so that threads can wait for new work without polling."""

    def __init__(self, path: Path, schema: str, *, synchronous: str = "FULL") -> None:
        """``synchronous="NORMAL"`` is for state whose last commits may be lost on power loss
        (never on a process kill): see the module docstring."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(f"PRAGMA synchronous={synchronous}")
        self._connection.executescript(schema)
        # SQLite serialises writers anyway; one lock also keeps a reader's several statements
        # (look up a row, then open its file) from interleaving with a writer.
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._depth = 0
        self._changes_before = 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The whole block commits (durably) or none of it does.

        A transaction opened inside another joins it: only the outermost one commits, and an
        exception that leaves the outermost block rolls everything back.
        """
        with self.lock:
            self._depth += 1
            if self._depth == 1:
                self._changes_before = self._connection.total_changes
                self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._connection.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._connection.execute("COMMIT")
                # A commit that changed nothing (an empty poll) must not wake the waiters: they
                # would poll again, commit nothing, and wake each other in a loop.
                if self._connection.total_changes != self._changes_before:
                    self.changed.notify_all()

    def one(self, sql: str, *args: object) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self._connection.execute(sql, args).fetchone()
            return row

    def all(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self.lock:
            return self._connection.execute(sql, args).fetchall()

    def close(self) -> None:
        with self.lock:
            self._connection.close()

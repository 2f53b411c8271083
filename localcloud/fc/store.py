"""The local FC's durable state in one SQLite file: deployed functions and every invocation.

An async invocation is committed (WAL, ``synchronous=FULL``) before the 202 goes out, so an
accepted invocation survives kill -9; one that was running when the process died runs again
after the restart (at-least-once, as FC's own async queue delivers). Sync invocations are
recorded too, for ``GET /_localcloud/invocations``; one cut short by a crash is marked failed.

Invocation states: ``queued`` (async, waiting or between retries), ``running``, ``succeeded``,
``failed``.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.core.sqlite import Database
from localcloud.fc.syaml import FunctionSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, code_path TEXT NOT NULL, extra_paths TEXT NOT NULL,
    version TEXT NOT NULL, deployed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS invocations (
    request_id TEXT PRIMARY KEY, function TEXT NOT NULL, mode TEXT NOT NULL, source TEXT NOT NULL,
    state TEXT NOT NULL, payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, next_at REAL NOT NULL, updated REAL NOT NULL,
    error_type TEXT NOT NULL DEFAULT '', error_message TEXT NOT NULL DEFAULT '',
    destination_error TEXT NOT NULL DEFAULT '', started REAL);
CREATE INDEX IF NOT EXISTS invocations_due ON invocations (state, next_at);
CREATE TABLE IF NOT EXISTS function_times (
    name TEXT PRIMARY KEY, created REAL NOT NULL, modified REAL NOT NULL);
CREATE TABLE IF NOT EXISTS async_configs (
    function TEXT PRIMARY KEY, created REAL NOT NULL, modified REAL NOT NULL);
"""

STATES = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True)
class Deployed:
    spec: FunctionSpec
    code_path: Path
    extra_paths: tuple[str, ...]
    version: str


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation as the local FC records it (its queue row): the async queue and the invocations list."""

    request_id: str
    function: str
    mode: str
    source: str
    state: str
    payload: bytes
    attempts: int
    created: float
    updated: float
    error_type: str
    error_message: str
    destination_error: str
    #: When the first attempt began running (epoch seconds); None while queued.
    started: float | None

    def summary(self, with_payload: bool = False) -> dict[str, Any]:
        payload = {"payload": self.payload.decode("utf-8", "replace")} if with_payload else {}
        return payload | {
            "request_id": self.request_id,
            "function": self.function,
            "mode": self.mode,
            "source": self.source,
            "state": self.state,
            "attempts": self.attempts,
            "created": self.created,
            "started": self.started,
            "updated": self.updated,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "destination_error": self.destination_error,
        }


_COLUMNS = (
    "request_id, function, mode, source, state, payload, attempts, created, updated, "
    "error_type, error_message, destination_error, started"
)


class Store:
    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA)
        #: The database's lock as a condition, notified after every commit that changed rows.
        self.lock = self._db.changed
        with self._db.transaction() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(invocations)")}
            if "started" not in columns:  # a state folder from before invocations recorded their start
                db.execute("ALTER TABLE invocations ADD COLUMN started REAL")
            db.execute(
                "UPDATE invocations SET state='queued', next_at=? WHERE state='running' AND mode='async'",
                (time.time(),),
            )
            db.execute(
                "UPDATE invocations SET state='failed', error_type='InternalServerError', "
                "error_message='the local FC stopped while this invocation ran' "
                "WHERE state='running' AND mode='sync'"
            )

    def close(self) -> None:
        self._db.close()

    # functions

    def put_functions(self, deployed: list[Deployed], configured_async: set[str]) -> None:
        """Register ``deployed`` in one transaction (a deploy is all or nothing).

        ``configured_async`` names the functions whose s.yaml has an ``asyncInvokeConfig``; the
        others have none afterwards, as after ``s deploy`` (GetAsyncInvokeConfig answers 404).
        """
        now = time.time()
        with self._db.transaction() as db:
            for one in deployed:
                name = one.spec.name
                db.execute(
                    "INSERT OR REPLACE INTO functions VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        one.spec.to_json(),
                        str(one.code_path),
                        "\n".join(one.extra_paths),
                        one.version,
                        now,
                    ),
                )
                self._touch(db, "function_times", "name", name, now)
                if name in configured_async:
                    self._touch(db, "async_configs", "function", name, now)
                else:
                    db.execute("DELETE FROM async_configs WHERE function=?", (name,))

    def put_async_config(self, deployed: Deployed) -> None:
        """Store a function whose async config was just put (PutAsyncInvokeConfig)."""
        now = time.time()
        with self._db.transaction() as db:
            db.execute(
                "UPDATE functions SET spec=? WHERE name=?", (deployed.spec.to_json(), deployed.spec.name)
            )
            self._touch(db, "async_configs", "function", deployed.spec.name, now)

    @staticmethod
    def _touch(db: sqlite3.Connection, table: str, key: str, name: str, now: float) -> None:
        db.execute(
            f"INSERT INTO {table} ({key}, created, modified) VALUES (?, ?, ?) "
            f"ON CONFLICT({key}) DO UPDATE SET modified=excluded.modified",
            (name, now, now),
        )

    def function_times(self, name: str) -> tuple[float, float]:
        """When function ``name`` was first deployed and last changed (epoch seconds)."""
        row = self._db.one("SELECT created, modified FROM function_times WHERE name=?", name)
        if row is None:  # deployed by a local cloud from before these times were kept
            row = self._db.one("SELECT deployed_at, deployed_at FROM functions WHERE name=?", name)
        return (float(row[0]), float(row[1])) if row else (0.0, 0.0)

    def async_config_times(self, function: str) -> tuple[float, float] | None:
        """When ``function``'s async config was set and last changed; None when it has none."""
        row = self._db.one("SELECT created, modified FROM async_configs WHERE function=?", function)
        return (float(row[0]), float(row[1])) if row else None

    def functions(self) -> dict[str, Deployed]:
        rows = self._db.all("SELECT spec, code_path, extra_paths, version FROM functions")
        result = {}
        for spec, code_path, extra_paths, version in rows:
            deployed = Deployed(
                FunctionSpec.from_json(spec),
                Path(code_path),
                tuple(p for p in extra_paths.split("\n") if p),
                version,
            )
            result[deployed.spec.name] = deployed
        return result

    # invocations

    def add(self, request_id: str, function: str, mode: str, source: str, payload: bytes, state: str) -> None:
        now = time.time()
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO invocations (request_id, function, mode, source, state, payload, attempts, created,"
                " next_at, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    function,
                    mode,
                    source,
                    state,
                    payload,
                    1 if state == "running" else 0,
                    now,
                    now,
                    now,
                ),
            )

    def claim_due(self) -> InvocationRecord | None:
        """Mark the oldest due async invocation running and return it, or ``None``."""
        with self._db.transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM invocations WHERE state='queued' AND next_at<=? ORDER BY next_at LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute(
                "UPDATE invocations SET state='running', attempts=attempts+1, updated=?, started=COALESCE(started, ?)"
                " WHERE request_id=?",
                (now, now, row[0]),
            )
        invocation = InvocationRecord(*row)
        return dataclasses.replace(
            invocation, state="running", attempts=invocation.attempts + 1, started=invocation.started or now
        )

    def next_due_in(self) -> float | None:
        row = self._db.one("SELECT MIN(next_at) FROM invocations WHERE state='queued'")
        return None if row is None or row[0] is None else max(0.0, row[0] - time.time())

    def finish(self, request_id: str, state: str, error_type: str = "", error_message: str = "") -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE invocations SET state=?, error_type=?, error_message=?, updated=? WHERE request_id=?",
                (state, error_type, error_message, time.time(), request_id),
            )

    def retry_later(self, request_id: str, delay: float, error_type: str, error_message: str) -> None:
        now = time.time()
        with self._db.transaction() as db:
            db.execute(
                "UPDATE invocations SET state='queued', next_at=?, error_type=?, error_message=?, updated=?"
                " WHERE request_id=?",
                (now + delay, error_type, error_message, now, request_id),
            )

    def set_destination_error(self, request_id: str, message: str) -> None:
        with self._db.transaction() as db:
            db.execute("UPDATE invocations SET destination_error=? WHERE request_id=?", (message, request_id))

    def list(
        self, state: str | None = None, function: str | None = None, limit: int = 1000
    ) -> list[InvocationRecord]:
        clauses, args = [], []
        if state:
            clauses.append("state=?")
            args.append(state)
        if function:
            clauses.append("function=?")
            args.append(function)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.all(
            f"SELECT {_COLUMNS} FROM invocations {where} ORDER BY created DESC LIMIT ?", *args, limit
        )
        return [InvocationRecord(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db.all("SELECT state, COUNT(*) FROM invocations GROUP BY state")
        return {state: 0 for state in STATES} | {state: count for state, count in rows}

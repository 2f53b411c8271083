"""The local IMM's durable state: projects, tasks and the notification outbox, in one SQLite file.

A task's final state and its notification are written in the same transaction (:meth:`finish`),
so after a crash either both exist or neither does; the outbox row is deleted only once MNS has
accepted the message. Times are epoch seconds (floats) here and formatted at the edge.

``phase`` is the engine's view of a task whose public ``Status`` is ``Running``: ``queued``
(waiting for a free engine slot) or ``running``; ``done`` for ``Succeeded``/``Failed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.core.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT UNIQUE NOT NULL,
    project TEXT NOT NULL,
    task_type TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    tags TEXT,
    user_data TEXT,
    request TEXT NOT NULL,
    request_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks(project, task_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class TaskRow:
    seq: int
    task_id: str
    project: str
    task_type: str
    role: str
    status: str
    phase: str
    progress: int
    code: str
    message: str
    tags: dict[str, Any] | None
    user_data: str | None
    request: dict[str, Any]
    request_id: str
    event_id: str
    start_time: float
    end_time: float | None
    result: dict[str, Any] | None


#: How many task rows a ListTasks reads from SQLite at a time.
TASK_BATCH = 200
INFINITY = float("inf")


@dataclass(frozen=True)
class TaskQuery:
    """What ListTasks asks for (docs/imm.md#gettask-listtasks-retention); ``sort`` is TaskId,
    StartTime or EndTime, ``after`` the sort key (value, TaskId) of the last task already given."""

    project: str
    not_before: float
    sort: str = "TaskId"
    descending: bool = False
    task_types: tuple[str, ...] = ()
    status: str = ""
    start_range: tuple[float | None, float | None] = (None, None)
    end_range: tuple[float | None, float | None] = (None, None)
    after: tuple[float, str] | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    task_id: str
    topic: str
    body: str
    attempts: int


_TASK_COLUMNS = (
    "seq, task_id, project, task_type, role, status, phase, progress, code, message, tags, user_data, "
    "request, request_id, event_id, start_time, end_time, result"
)


def _task(row: Iterable[Any]) -> TaskRow:
    values = list(row)
    for index in (10, 12, 17):
        values[index] = None if values[index] is None else json.loads(values[index])
    return TaskRow(*values)


class Store:
    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    # projects -----------------------------------------------------------------------------------

    def get_project(self, name: str) -> dict[str, Any] | None:
        row = self._db.one("SELECT data FROM projects WHERE name = ?", name)
        return None if row is None else dict(json.loads(row[0]))

    def insert_project(self, name: str, data: dict[str, Any], created: float) -> bool:
        """Insert; ``False`` when a project of that name exists already."""
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone():
                return False
            db.execute("INSERT INTO projects VALUES (?, ?, ?)", (name, json.dumps(data), created))
        return True

    def update_project(self, name: str, data: dict[str, Any]) -> None:
        with self._db.transaction() as db:
            db.execute("UPDATE projects SET data = ? WHERE name = ?", (json.dumps(data), name))

    def delete_project(self, name: str) -> bool:
        with self._db.transaction() as db:
            return db.execute("DELETE FROM projects WHERE name = ?", (name,)).rowcount > 0

    def list_projects(self, prefix: str, after: str, limit: int) -> list[dict[str, Any]]:
        rows = self._db.all(
            "SELECT data FROM projects WHERE substr(name, 1, ?) = ? AND name > ? ORDER BY name LIMIT ?",
            len(prefix),
            prefix,
            after,
            limit,
        )
        return [dict(json.loads(row[0])) for row in rows]

    # tasks --------------------------------------------------------------------------------------

    def insert_task(
        self,
        *,
        task_id: str,
        project: str,
        task_type: str,
        role: str,
        tags: dict[str, Any] | None,
        user_data: str | None,
        request: dict[str, Any],
        request_id: str,
        event_id: str,
        start_time: float,
    ) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT INTO tasks (task_id, project, task_type, role, status, phase, tags, user_data, request, "
                "request_id, event_id, start_time) VALUES (?, ?, ?, ?, 'Running', 'queued', ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    project,
                    task_type,
                    role,
                    None if tags is None else json.dumps(tags),
                    user_data,
                    json.dumps(request),
                    request_id,
                    event_id,
                    start_time,
                ),
            )

    def task_row(self, project: str, task_id: str) -> TaskRow | None:
        row = self._db.one(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE project = ? AND task_id = ?", project, task_id
        )
        return None if row is None else _task(row)

    def query_tasks(self, query: TaskQuery) -> Iterator[TaskRow]:
        """The project's tasks that match ``query``, in its order, after its cursor, read
        :data:`TASK_BATCH` rows at a time: memory stays the size of a batch however many tasks the
        project has (reading them all made every ListTasks as big as the project's history)."""
        sort = {"TaskId": "0.0", "StartTime": "start_time", "EndTime": "COALESCE(end_time, ?)"}[query.sort]
        # A Running task has no EndTime: it sorts after every finished one in ascending order.
        sort_args: list[object] = [INFINITY] if query.sort == "EndTime" else []
        where = ["project = ?", "start_time >= ?"]
        args: list[object] = [query.project, query.not_before]
        if query.task_types:
            where.append(f"task_type IN ({', '.join('?' * len(query.task_types))})")
            args.extend(query.task_types)
        if query.status:
            where.append("status = ?")
            args.append(query.status)
        for column, (start, end) in (("start_time", query.start_range), ("end_time", query.end_range)):
            # Stored times keep microseconds, while a range given in milliseconds includes its edge.
            if start is not None:
                where.append(f"{column} >= ?")
                args.append(start - 0.0005)
            if end is not None:
                where.append(f"{column} <= ?")
                args.append(end + 0.0005)
        direction, beyond = ("DESC", "<") if query.descending else ("ASC", ">")
        cursor = query.after
        while True:
            after_sql, after_args = "", []
            if cursor is not None:
                after_sql = f" AND ({sort}, task_id) {beyond} (?, ?)"
                after_args = [*sort_args, *cursor]
            rows = self._db.all(
                f"SELECT {_TASK_COLUMNS}, {sort} FROM tasks WHERE {' AND '.join(where)}{after_sql} "
                f"ORDER BY {sort} {direction}, task_id {direction} LIMIT ?",
                *sort_args,
                *args,
                *after_args,
                *sort_args,
                TASK_BATCH,
            )
            for row in rows:
                yield _task(list(row)[:-1])
            if len(rows) < TASK_BATCH:
                return
            cursor = (float(rows[-1][-1]), str(rows[-1]["task_id"]))

    def claim_next(self, engine_limits: dict[str, int]) -> TaskRow | None:
        """Move the oldest queued task whose project has a free engine slot to ``running``."""
        with self._db.transaction() as db:
            running = dict(
                db.execute("SELECT project, COUNT(*) FROM tasks WHERE phase = 'running' GROUP BY project")
            )
            for row in db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE phase = 'queued' ORDER BY seq"):
                task = _task(row)
                if running.get(task.project, 0) < engine_limits.get(task.project, 1):
                    db.execute("UPDATE tasks SET phase = 'running' WHERE seq = ?", (task.seq,))
                    return task
        return None

    def requeue_interrupted(self) -> list[str]:
        """After a restart: tasks that were running when the process died go back to the queue."""
        with self._db.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT task_id FROM tasks WHERE phase = 'running'")]
            db.execute("UPDATE tasks SET phase = 'queued', progress = 0 WHERE phase = 'running'")
        return ids

    def set_progress(self, task_id: str, progress: int) -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE tasks SET progress = ? WHERE task_id = ? AND phase = 'running'", (progress, task_id)
            )

    def finish(
        self,
        task_id: str,
        *,
        status: str,
        code: str,
        message: str,
        end_time: float,
        result: dict[str, Any],
        notification: tuple[str, str] | None,
    ) -> None:
        """Record the final state and, in the same transaction, queue its notification (topic, body)."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE tasks SET status = ?, phase = 'done', progress = ?, code = ?, message = ?, "
                "end_time = ?, result = ? WHERE task_id = ?",
                (
                    status,
                    100 if status == "Succeeded" else 0,
                    code,
                    message,
                    end_time,
                    json.dumps(result),
                    task_id,
                ),
            )
            if notification is not None:
                db.execute(
                    "INSERT INTO outbox (task_id, topic, body) VALUES (?, ?, ?)", (task_id, *notification)
                )

    def purge_tasks(self, started_before: float) -> int:
        with self._db.transaction() as db:
            return db.execute(
                "DELETE FROM tasks WHERE start_time < ? AND phase = 'done'", (started_before,)
            ).rowcount

    # outbox -------------------------------------------------------------------------------------

    def due_notifications(self, now: float, limit: int = 20) -> list[OutboxRow]:
        rows = self._db.all(
            "SELECT id, task_id, topic, body, attempts FROM outbox WHERE next_attempt <= ? ORDER BY id LIMIT ?",
            now,
            limit,
        )
        return [OutboxRow(*row) for row in rows]

    def next_notification_time(self) -> float | None:
        row = self._db.one("SELECT MIN(next_attempt) FROM outbox")
        return None if row is None or row[0] is None else float(row[0])

    def notification_sent(self, outbox_id: int) -> None:
        self._delete_notification(outbox_id)

    def notification_dropped(self, outbox_id: int) -> None:
        """Give a notification up (MNS refuses it for good, or after a day of retries)."""
        self._delete_notification(outbox_id)

    def _delete_notification(self, outbox_id: int) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))

    def notification_failed(self, outbox_id: int, next_attempt: float, error: str) -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?",
                (next_attempt, error[:500], outbox_id),
            )

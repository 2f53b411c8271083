"""The ledger on Tablestore (OTS), through the official ``tablestore`` SDK.

Tables: `TABLES` below is the one list of every table and its primary key; ``template.yml`` creates
exactly these (a test compares them), and `TablestoreLedger.create_schema` creates the missing ones
for a local cloud or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING = "STRING"
INTEGER = "INTEGER"


@dataclass(frozen=True)
class TableSpec:
    """One Tablestore table: its name and its primary key, in order (the first column is the partition key)."""

    name: str
    primary_key: tuple[tuple[str, str], ...]
    """``(column, type)`` pairs; type is Tablestore's ``STRING`` or ``INTEGER``."""
    holds: str


RUNS = TableSpec("immflow_runs", (("run_id", STRING),), "one row per run")
RUNS_BY_SOURCE = TableSpec(
    "immflow_runs_by_source",
    (("source_uri", STRING), ("created_at", INTEGER), ("run_id", STRING)),
    "index: the runs of an object, oldest first",
)
RUNS_BY_TIME = TableSpec(
    "immflow_runs_by_time", (("created_at", INTEGER), ("run_id", STRING)), "index: every run by creation time"
)
TASKS = TableSpec(
    "immflow_tasks", (("claim_key", STRING),), "one row per task, with its create claim's state and expiry"
)
TASK_BY_ID = TableSpec("immflow_task_by_id", (("task_id", STRING),), "index: IMM TaskId -> task")
TASK_BY_ROW = TableSpec("immflow_task_by_row", (("row_id", INTEGER),), "index: ledger row number -> task")
TASKS_BY_RUN = TableSpec(
    "immflow_tasks_by_run",
    (("run_id", STRING), ("created_at", INTEGER), ("row_id", INTEGER)),
    "index: the tasks of a run",
)
TASKS_BY_STATUS = TableSpec(
    "immflow_tasks_by_status",
    (("status", STRING), ("created_at", INTEGER), ("row_id", INTEGER)),
    "index: tasks by status (reconcile's stale tasks, immflow tasks list --status)",
)
TASKS_BY_TAG = TableSpec(
    "immflow_tasks_by_tag",
    (("tag_key", STRING), ("tag_value", STRING), ("created_at", INTEGER), ("row_id", INTEGER)),
    "index: tasks by tag (immflow tasks list --tag K=V)",
)
TASKS_BY_PARENT = TableSpec(
    "immflow_tasks_by_parent",
    (("parent_task_id", STRING), ("row_id", INTEGER)),
    "index: the follow-up tasks of a task",
)
TASKS_BY_TIME = TableSpec(
    "immflow_tasks_by_time",
    (("created_at", INTEGER), ("row_id", INTEGER)),
    "index: every task by creation time",
)
CLAIMS = TableSpec("immflow_claims", (("claim_key", STRING),), "result claims (TaskId + Status)")
COUNTERS = TableSpec("immflow_counters", (("name", STRING),), "the task row-number sequence")

TABLES: tuple[TableSpec, ...] = (
    RUNS,
    RUNS_BY_SOURCE,
    RUNS_BY_TIME,
    TASKS,
    TASK_BY_ID,
    TASK_BY_ROW,
    TASKS_BY_RUN,
    TASKS_BY_STATUS,
    TASKS_BY_TAG,
    TASKS_BY_PARENT,
    TASKS_BY_TIME,
    CLAIMS,
    COUNTERS,
)
"""Every table the Tablestore ledger uses; ``template.yml`` must create exactly these."""

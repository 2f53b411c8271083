"""The results ledger: every run (one per uploaded object version) and every IMM task immflow started.

SQLAlchemy Core over SQLite (the default: one file, WAL), PostgreSQL (the cloud: FC instances are
many and short-lived, so they need a shared server) or MySQL/MariaDB, chosen by URL.

Idempotency is kept here, in unique constraints, rather than with Powertools' idempotency utility:
that utility cannot even be imported without boto3 (+36 MB in the deployment package, +~200 ms on
every cold start, packages.md §2–3) and keeps its records apart from the rows they protect. With the
claims in the same database, a claim and the task row it protects are written in one transaction:

* A **create claim** (key: bucket/key/ETag/rule/task for an upload's task; parent TaskId/task/output
  for a follow-up) is inserted together with the task row, in state ``Creating``, *before* IMM is
  called, so two deliveries of one event cannot both create it: the second finds the claim. A claim
  has an in-progress expiry; a delivery that finds an expired claim (the first one crashed before
  it recorded IMM's TaskId) takes it over with a compare-and-set, and creates the task unless IMM
  already has it (`immflow.flow.creation`).
* A **result claim** (key: TaskId + Status) is taken before a result is recorded and marked done
  after its follow-ups are claimed, so a notification delivered twice, or delivered again after
  reconcile saw the same result through GetTask, changes the ledger once.

Times are stored as UTC without a zone (portable across the three databases) and read back as
timezone-aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import DateTime as SaDateTime
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from immflow.errors import ImmflowError

TaskStatus = Literal["Creating", "Running", "Succeeded", "Failed", "Lost"]
FINAL_STATUSES: frozenset[str] = frozenset({"Succeeded", "Failed", "Lost"})
OPEN_STATUSES: frozenset[str] = frozenset({"Creating", "Running"})
RunStatus = Literal["Running", "Done"]

DEFAULT_STATE_DIR = Path(".immflow")
LEDGER_FILE_NAME = "ledger.sqlite3"


def default_cli_ledger_url(state_dir: Path = DEFAULT_STATE_DIR) -> str:
    """The local cloud's ledger: what the local FC gives its functions as ``IMMFLOW_LEDGER_URL``."""
    return f"sqlite:///{state_dir.resolve() / LEDGER_FILE_NAME}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def claim_key(*parts: str | None) -> str:
    """A fixed-length key for a claim: SHA-256 of the parts (None written as "")."""
    return hashlib.sha256("\x1f".join(part or "" for part in parts).encode("utf-8")).hexdigest()


class LedgerError(ImmflowError):
    pass


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, stored as naive UTC everywhere."""

    impl = SaDateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise LedgerError(f"naive datetime {value!r} given to the ledger; use timezone-aware UTC times")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class JsonText(TypeDecorator[Any]):
    """JSON kept as text: the same on SQLite, PostgreSQL and MariaDB (whose JSON is LONGTEXT anyway)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


@dataclass(frozen=True)
class Tables:
    metadata: MetaData
    runs: Table
    tasks: Table
    task_tags: Table
    claims: Table


def _tables(schema: str | None) -> Tables:
    metadata = MetaData(schema=schema)
    runs = Table(
        "immflow_runs",
        metadata,
        Column("run_id", String(64), primary_key=True),
        Column("source_uri", String(1100), nullable=False),
        Column("bucket", String(63), nullable=False),
        Column("object_key", String(1023), nullable=False),
        Column("etag", String(128), nullable=False),
        Column("event_name", String(64), nullable=False),
        Column("upload_time", UtcDateTime, nullable=False),
        Column("size", Integer),
        Column("content_type", String(255)),
        Column("status", String(16), nullable=False),
        Column("manifest_uri", String(1100)),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("ended_at", UtcDateTime),
        # MySQL limits an index to 3072 bytes (768 utf8mb4 characters): a prefix of the URI is enough.
        Index("ix_immflow_runs_source", "source_uri", mysql_length={"source_uri": 700}),
        Index("ix_immflow_runs_created", "created_at"),
    )
    claims = Table(
        "immflow_claims",
        metadata,
        Column("claim_key", String(64), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    )
    tasks = Table(
        "immflow_tasks",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("claim_key", String(64), ForeignKey(claims.c.claim_key), nullable=False, unique=True),
        Column("task_id", String(128), unique=True),
        Column("run_id", String(64), ForeignKey(runs.c.run_id), nullable=False),
        Column("rule", String(128), nullable=False),
        Column("task_name", String(128), nullable=False),
        Column("task_type", String(64), nullable=False),
        Column("action", String(64), nullable=False),
        Column("parent_task_id", String(128)),
        Column("depth", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("code", String(128), nullable=False, default=""),
        Column("message", Text, nullable=False, default=""),
        Column("sources", JsonText, nullable=False),
        Column("outputs", JsonText, nullable=False),
        Column("tags", JsonText, nullable=False),
        Column("user_data", Text, nullable=False),
        Column("request", JsonText, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("started_at", UtcDateTime),
        Column("ended_at", UtcDateTime),
        Column("updated_at", UtcDateTime, nullable=False),
        Index("ix_immflow_tasks_run", "run_id"),
        Index("ix_immflow_tasks_status", "status"),
        Index("ix_immflow_tasks_created", "created_at"),
        Index("ix_immflow_tasks_parent", "parent_task_id"),
    )
    task_tags = Table(
        "immflow_task_tags",
        metadata,
        Column("task_row", Integer, ForeignKey(tasks.c.id), primary_key=True),
        Column("tag_key", String(128), primary_key=True),
        Column("tag_value", String(512), nullable=False),
        Index("ix_immflow_task_tags_kv", "tag_key", "tag_value"),
    )
    return Tables(metadata, runs, tasks, task_tags, claims)


@dataclass(frozen=True)
class NewRun:
    run_id: str
    bucket: str
    key: str
    etag: str
    event_name: str
    upload_time: datetime
    size: int | None = None
    content_type: str | None = None

    @property
    def source_uri(self) -> str:
        return f"oss://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    source_uri: str
    bucket: str
    key: str
    etag: str
    event_name: str
    upload_time: datetime
    size: int | None
    content_type: str | None
    status: RunStatus
    manifest_uri: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> RunRecord:
        return cls(
            run_id=row["run_id"],
            source_uri=row["source_uri"],
            bucket=row["bucket"],
            key=row["object_key"],
            etag=row["etag"],
            event_name=row["event_name"],
            upload_time=row["upload_time"],
            size=row["size"],
            content_type=row["content_type"],
            status=row["status"],
            manifest_uri=row["manifest_uri"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            ended_at=row["ended_at"],
        )


@dataclass(frozen=True)
class NewTask:
    """A task immflow is about to create: everything but IMM's TaskId, including the full request."""

    claim_key: str
    run_id: str
    rule: str
    task_name: str
    task_type: str
    action: str
    parent_task_id: str | None
    depth: int
    sources: Sequence[str]
    tags: Mapping[str, Any]
    user_data: str
    request: Mapping[str, Any]


def iso_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``, as the cloud writes times; ``None`` stays ``None``."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TaskRecord:
    row_id: int
    claim_key: str
    task_id: str | None
    run_id: str
    rule: str
    task_name: str
    task_type: str
    action: str
    parent_task_id: str | None
    depth: int
    status: TaskStatus
    code: str
    message: str
    sources: list[str]
    outputs: list[str]
    tags: dict[str, Any]
    user_data: str
    request: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime
    claim_expires_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The task as JSON, as the manifest and ``immflow tasks`` show it."""
        return {
            "task_id": self.task_id,
            "rule": self.rule,
            "task": self.task_name,
            "type": self.task_type,
            "parent": self.parent_task_id,
            "depth": self.depth,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "sources": self.sources,
            "outputs": self.outputs,
            "tags": self.tags,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "ended_at": iso_time(self.ended_at),
        }

    @classmethod
    def from_row(cls, row: RowMapping) -> TaskRecord:
        return cls(
            row_id=row["id"],
            claim_key=row["claim_key"],
            task_id=row["task_id"],
            run_id=row["run_id"],
            rule=row["rule"],
            task_name=row["task_name"],
            task_type=row["task_type"],
            action=row["action"],
            parent_task_id=row["parent_task_id"],
            depth=row["depth"],
            status=row["status"],
            code=row["code"],
            message=row["message"],
            sources=list(row["sources"]),
            outputs=list(row["outputs"]),
            tags=dict(row["tags"]),
            user_data=row["user_data"],
            request=dict(row["request"]),
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            updated_at=row["updated_at"],
            claim_expires_at=row.get("expires_at"),
        )


ClaimState = Literal["claimed", "done", "busy"]


@dataclass(frozen=True)
class CreateClaim:
    """The outcome of claiming a task: ``claimed`` (create it now), ``done`` (already created or
    failed: skip it) or ``busy`` (another invocation is creating it right now)."""

    state: ClaimState
    task: TaskRecord
    retaken: bool = False
    """Claimed by taking over an earlier attempt's expired or released claim: that attempt may have
    reached IMM before it stopped, so look for its task before creating another."""


@dataclass(frozen=True)
class TaskQuery:
    run_id: str | None = None
    source: str | None = None
    """An ``oss://bucket/key``: the tasks of every run of that object."""
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


@cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"isolation_level": None, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            # pysqlite's own transactions are deferred: a read followed by a write can then fail at once
            # with "database is locked" under concurrency instead of waiting. Taking the write lock at
            # BEGIN makes concurrent writers queue on busy_timeout (the SQLAlchemy-documented recipe).
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Ledger:
    def __init__(self, url: str, *, schema: str | None = None) -> None:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = _engine(url)
        self.t = _tables(schema)
        self._schema_ready = False

    def create_schema(self) -> None:
        if not self._schema_ready:
            self.t.metadata.create_all(self.engine, checkfirst=True)
            self._schema_ready = True

    def drop_schema(self) -> None:
        self.t.metadata.drop_all(self.engine)
        self._schema_ready = False

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        self.create_schema()
        with self.engine.begin() as connection:
            yield connection

    # ---- runs

    def ensure_run(self, run: NewRun, *, now: datetime) -> RunRecord:
        """The run's record, inserting it the first time this object version is seen."""
        found = self.get_run(run.run_id)
        if found is not None:
            return found
        runs = self.t.runs
        try:
            with self._begin() as db:
                db.execute(
                    runs.insert().values(
                        run_id=run.run_id,
                        source_uri=run.source_uri,
                        bucket=run.bucket,
                        object_key=run.key,
                        etag=run.etag,
                        event_name=run.event_name,
                        upload_time=run.upload_time,
                        size=run.size,
                        content_type=run.content_type,
                        status="Running",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            pass  # a concurrent delivery inserted it first
        found = self.get_run(run.run_id)
        if found is None:
            raise LedgerError(f"run {run.run_id} could not be recorded")
        return found

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._begin() as db:
            row = db.execute(select(self.t.runs).where(self.t.runs.c.run_id == run_id)).mappings().first()
        return None if row is None else RunRecord.from_row(row)

    def list_runs(
        self, *, source: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        runs = self.t.runs
        query = select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id)
        if source is not None:
            query = query.where(runs.c.source_uri == source)
        if status is not None:
            query = query.where(runs.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self._begin() as db:
            return [RunRecord.from_row(row) for row in db.execute(query).mappings()]

    def finish_run(self, run_id: str, *, manifest_uri: str, now: datetime) -> None:
        runs = self.t.runs
        with self._begin() as db:
            db.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status="Done", manifest_uri=manifest_uri, ended_at=now, updated_at=now)
            )

    def run_is_complete(self, run_id: str) -> bool:
        """True when the run has tasks and none of them is still being created or running."""
        tasks = self.t.tasks
        with self._begin() as db:
            counts = db.execute(
                select(tasks.c.status, func.count()).where(tasks.c.run_id == run_id).group_by(tasks.c.status)
            ).all()
        return bool(counts) and not any(status in OPEN_STATUSES for status, _ in counts)

    # ---- create claims

    def claim_task(self, new: NewTask, *, now: datetime, expires_at: datetime) -> CreateClaim:
        """Insert the task in state ``Creating`` with its claim, or report what is already there.

        An existing claim that expired while still ``Creating`` (its creator crashed) is taken over.
        """
        t = self.t
        existing = self._find_by_claim(new.claim_key)
        if existing is not None and existing.status != "Creating":
            return CreateClaim("done", existing)  # the common redelivery: one read, no failed insert
        try:
            with self._begin() as db:
                db.execute(
                    t.claims.insert().values(
                        claim_key=new.claim_key,
                        kind="create",
                        status="in_progress",
                        expires_at=expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                )
                inserted = db.execute(
                    t.tasks.insert().values(
                        claim_key=new.claim_key,
                        run_id=new.run_id,
                        rule=new.rule,
                        task_name=new.task_name,
                        task_type=new.task_type,
                        action=new.action,
                        parent_task_id=new.parent_task_id,
                        depth=new.depth,
                        status="Creating",
                        code="",
                        message="",
                        sources=list(new.sources),
                        outputs=[],
                        tags=dict(new.tags),
                        user_data=new.user_data,
                        request=dict(new.request),
                        created_at=now,
                        updated_at=now,
                    )
                ).inserted_primary_key
                row_id = inserted[0] if inserted else None
                if new.tags:
                    db.execute(
                        t.task_tags.insert(),
                        [
                            {"task_row": row_id, "tag_key": key, "tag_value": _tag_text(value)}
                            for key, value in new.tags.items()
                        ],
                    )
            return CreateClaim("claimed", self._task_by_claim(new.claim_key))
        except IntegrityError:
            existing = self._task_by_claim(new.claim_key)
        if existing.status != "Creating":
            return CreateClaim("done", existing)
        if self._take_over(new.claim_key, now=now, expires_at=expires_at):
            return CreateClaim("claimed", self._task_by_claim(new.claim_key), retaken=True)
        return CreateClaim("busy", existing)

    def take_over_creation(self, task: TaskRecord, *, now: datetime, expires_at: datetime) -> bool:
        """Claim an expired ``Creating`` task (for reconcile); False when someone else holds it."""
        return self._take_over(task.claim_key, now=now, expires_at=expires_at)

    def _take_over(self, key: str, *, now: datetime, expires_at: datetime) -> bool:
        claims = self.t.claims
        with self._begin() as db:
            result = db.execute(
                update(claims)
                .where(claims.c.claim_key == key, claims.c.status == "in_progress", claims.c.expires_at < now)
                .values(expires_at=expires_at, updated_at=now)
            )
        return result.rowcount == 1

    def mark_created(self, claim: str, *, task_id: str, now: datetime) -> TaskRecord:
        t = self.t
        with self._begin() as db:
            db.execute(
                update(t.tasks)
                .where(t.tasks.c.claim_key == claim, t.tasks.c.status == "Creating")
                .values(task_id=task_id, status="Running", started_at=now, updated_at=now)
            )
            self._close_claim(db, claim, now)
        return self._task_by_claim(claim)

    def mark_create_failed(self, claim: str, *, code: str, message: str, now: datetime) -> TaskRecord:
        """IMM refused to create the task (a permanent error): the task ends ``Failed`` with IMM's code."""
        t = self.t
        with self._begin() as db:
            db.execute(
                update(t.tasks)
                .where(t.tasks.c.claim_key == claim, t.tasks.c.status == "Creating")
                .values(status="Failed", code=code, message=message, ended_at=now, updated_at=now)
            )
            self._close_claim(db, claim, now)
        return self._task_by_claim(claim)

    # ---- result claims

    def claim_result(self, key: str, *, now: datetime, expires_at: datetime) -> ClaimState:
        """``claimed``: record this result now; ``done``: already recorded; ``busy``: being recorded."""
        claims = self.t.claims
        with self._begin() as db:
            status = db.execute(select(claims.c.status).where(claims.c.claim_key == key)).scalar()
        if status == "done":
            return "done"  # the common redelivery: one read
        try:
            with self._begin() as db:
                db.execute(
                    claims.insert().values(
                        claim_key=key,
                        kind="result",
                        status="in_progress",
                        expires_at=expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return "claimed"
        except IntegrityError:
            pass
        with self._begin() as db:
            status = db.execute(select(claims.c.status).where(claims.c.claim_key == key)).scalar_one()
        if status == "done":
            return "done"
        return "claimed" if self._take_over(key, now=now, expires_at=expires_at) else "busy"

    def release_claim(self, key: str, *, now: datetime) -> None:
        """Give an in-progress claim up (this invocation is about to fail), so the next delivery takes it."""
        claims = self.t.claims
        with self._begin() as db:
            db.execute(
                update(claims)
                .where(claims.c.claim_key == key, claims.c.status == "in_progress")
                .values(expires_at=now, updated_at=now)
            )

    def finish_claim(self, key: str, *, now: datetime) -> None:
        with self._begin() as db:
            self._close_claim(db, key, now)

    def _close_claim(self, db: Connection, key: str, now: datetime) -> None:
        claims = self.t.claims
        db.execute(update(claims).where(claims.c.claim_key == key).values(status="done", updated_at=now))

    # ---- results

    def record_result(
        self,
        task_id: str,
        *,
        status: str,
        code: str,
        message: str,
        started_at: datetime | None,
        ended_at: datetime | None,
        outputs: Sequence[str],
        now: datetime,
    ) -> bool:
        """Record a task's final state; False when the task is unknown or already had a final result.

        ``Lost`` (reconcile gave up on it) may still be replaced by a real result that arrives late.
        """
        tasks = self.t.tasks
        values: dict[str, Any] = {
            "status": status,
            "code": code,
            "message": message,
            "outputs": list(outputs),
            "ended_at": ended_at or now,
            "updated_at": now,
        }
        if started_at is not None:
            values["started_at"] = started_at
        with self._begin() as db:
            result = db.execute(
                update(tasks)
                .where(tasks.c.task_id == task_id, tasks.c.status.in_(("Creating", "Running", "Lost")))
                .values(**values)
            )
        return result.rowcount == 1

    def mark_lost(self, task: TaskRecord, *, reason: str, now: datetime) -> bool:
        t = self.t
        with self._begin() as db:
            result = db.execute(
                update(t.tasks)
                .where(t.tasks.c.id == task.row_id, t.tasks.c.status.in_(tuple(OPEN_STATUSES)))
                .values(status="Lost", code="Lost", message=reason, ended_at=now, updated_at=now)
            )
            self._close_claim(db, task.claim_key, now)
        return result.rowcount == 1

    # ---- reading tasks

    def _task_select(self) -> Any:
        t = self.t
        return select(t.tasks, t.claims.c.expires_at).join(
            t.claims, t.claims.c.claim_key == t.tasks.c.claim_key
        )

    def _find_by_claim(self, key: str) -> TaskRecord | None:
        with self._begin() as db:
            row = db.execute(self._task_select().where(self.t.tasks.c.claim_key == key)).mappings().first()
        return None if row is None else TaskRecord.from_row(row)

    def _task_by_claim(self, key: str) -> TaskRecord:
        found = self._find_by_claim(key)
        if found is None:
            raise LedgerError(f"no task holds claim {key}")
        return found

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._begin() as db:
            row = db.execute(self._task_select().where(self.t.tasks.c.task_id == task_id)).mappings().first()
        return None if row is None else TaskRecord.from_row(row)

    def find_task(self, identifier: str) -> TaskRecord | None:
        """A task by IMM TaskId, or by ledger row number (tasks IMM refused have no TaskId)."""
        found = self.get_task(identifier)
        if found is None and identifier.isdigit():
            with self._begin() as db:
                row = (
                    db.execute(self._task_select().where(self.t.tasks.c.id == int(identifier)))
                    .mappings()
                    .first()
                )
            found = None if row is None else TaskRecord.from_row(row)
        return found

    def tasks_of_run(self, run_id: str) -> list[TaskRecord]:
        return self.list_tasks(TaskQuery(run_id=run_id))

    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        t = self.t
        statement = self._task_select().order_by(t.tasks.c.created_at, t.tasks.c.id)
        if query.run_id is not None:
            statement = statement.where(t.tasks.c.run_id == query.run_id)
        if query.source is not None:
            statement = statement.where(
                t.tasks.c.run_id.in_(select(t.runs.c.run_id).where(t.runs.c.source_uri == query.source))
            )
        for key, value in query.tags.items():
            statement = statement.where(
                t.tasks.c.id.in_(
                    select(t.task_tags.c.task_row).where(
                        and_(t.task_tags.c.tag_key == key, t.task_tags.c.tag_value == value)
                    )
                )
            )
        if query.status is not None:
            statement = statement.where(t.tasks.c.status == query.status)
        if query.since is not None:
            statement = statement.where(t.tasks.c.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(t.tasks.c.created_at < query.until)
        if query.limit is not None:
            statement = statement.limit(query.limit)
        with self._begin() as db:
            return [TaskRecord.from_row(row) for row in db.execute(statement).mappings()]

    def stale_tasks(self, *, started_before: datetime, now: datetime) -> list[TaskRecord]:
        """Tasks reconcile should look at: ``Running`` since before `started_before`, and ``Creating``
        ones whose claim expired (their creator crashed and no redelivery came)."""
        t = self.t
        statement = (
            self._task_select()
            .where(
                or_(
                    and_(t.tasks.c.status == "Running", t.tasks.c.started_at < started_before),
                    and_(t.tasks.c.status == "Creating", t.claims.c.expires_at < now),
                )
            )
            .order_by(t.tasks.c.created_at, t.tasks.c.id)
        )
        with self._begin() as db:
            return [TaskRecord.from_row(row) for row in db.execute(statement).mappings()]

    def children_of(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        ids = list(task_ids)
        if not ids:
            return []
        t = self.t
        statement = self._task_select().where(t.tasks.c.parent_task_id.in_(ids)).order_by(t.tasks.c.id)
        with self._begin() as db:
            return [TaskRecord.from_row(row) for row in db.execute(statement).mappings()]


def _tag_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)

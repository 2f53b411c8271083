"""The ledger on SQL, through SQLAlchemy Core: SQLite (one file, WAL: the local default), PostgreSQL or
MySQL/MariaDB, chosen by URL.

A claim and the row it protects are written in one transaction, and uniqueness is the database's: a
second insert of a claim key fails with an integrity error. Times are stored as UTC without a zone
(portable across the three databases) and read back as timezone-aware UTC datetimes. Only the dialect
the URL names is loaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
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
    bindparam,
    create_engine,
    event,
    or_,
    select,
    update,
)
from sqlalchemy import DateTime as SaDateTime
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from immflow.fc import Credentials
from immflow.ledger.contract import (
    Claim,
    ClaimKind,
    EventOrder,
    LedgerBackend,
    NewRun,
    NewTask,
    RunHead,
    RunRecord,
    TaskQuery,
    TaskRecord,
    aware,
    source_digest,
    tag_text,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_READ_ONLY = "immflow_read_only"
"""A connection's execution option: its statement only reads (`SqlBackend._read`)."""


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, stored as naive UTC everywhere."""

    impl = SaDateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else aware(value).replace(tzinfo=None)

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
    run_heads: Table


def _tables(schema: str | None, dialect: str) -> Tables:
    metadata = MetaData(schema=schema)
    # MySQL limits an index to 3072 bytes (768 utf8mb4 characters): a prefix of the URI is enough. The
    # option is given only on MySQL, since naming it makes SQLAlchemy load the MySQL dialect.
    source_prefix: dict[str, Any] = (
        {"mysql_length": {"source_uri": 700}} if dialect in {"mysql", "mariadb"} else {}
    )
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
        Column("sequence", Integer, nullable=False, default=0),
        Column("request_id", String(128), nullable=False, default=""),
        Column("version_id", String(255)),
        Column("superseded_by", String(64)),
        Index("ix_immflow_runs_source", "source_uri", **source_prefix),
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
    # The latest run of each object key, changed only by compare-and-set on `revision`
    # (`Ledger.start_run`). Keyed by the URI's SHA-256: MySQL cannot key on 1100 characters. Event
    # times are integers (microseconds): MySQL's DATETIME would drop the milliseconds that order them.
    run_heads = Table(
        "immflow_run_heads",
        metadata,
        Column("source_key", String(64), primary_key=True),
        Column("source_uri", String(1100), nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("sequence", Integer, nullable=False),
        Column("etag", String(128), nullable=False),
        Column("event_micros", BigInteger, nullable=False),
        Column("event_identity", String(255), nullable=False),
        Column("revision", Integer, nullable=False),
    )
    return Tables(metadata, runs, tasks, task_tags, claims, run_heads)


def _run_record(row: RowMapping) -> RunRecord:
    return RunRecord(
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
        sequence=row["sequence"],
        request_id=row["request_id"],
        version_id=row["version_id"],
        superseded_by=row["superseded_by"],
    )


def _task_record(row: RowMapping) -> TaskRecord:
    return TaskRecord(
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


SQLITE_BUSY_SECONDS = 30


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode. Switching a new file to WAL needs an exclusive lock, and SQLite asks
    for it once without waiting on the busy timeout: a process opening a fresh ledger while another
    is creating its tables failed at once with "database is locked". So wait here as long as any
    other statement would."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


@cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"isolation_level": None, "timeout": SQLITE_BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            # pysqlite's own transactions are deferred: a read followed by a write can then fail at once
            # with "database is locked" under concurrency instead of waiting. Taking the write lock at
            # BEGIN makes concurrent writers queue on busy_timeout (the SQLAlchemy-documented recipe).
            # A single SELECT needs no transaction (SQLite runs it on one snapshot), nor the write lock.
            if not connection.get_execution_options().get(_READ_ONLY):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class SqlBackend(LedgerBackend):
    """The SQL backend: the tables are created on first use (``create_schema``, idempotent)."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = _engine(url)
        self.t = _tables(schema, self.engine.dialect.name)
        self._schema_ready = False
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        # The statements a redelivered event runs, built once: building one costs as much as running
        # it on SQLite.
        t = self.t
        self._run_by_id = select(t.runs).where(t.runs.c.run_id == bindparam("key"))
        self._head_by_key = select(t.run_heads).where(t.run_heads.c.source_key == bindparam("key"))
        self._claim_by_key = select(t.claims.c.status, t.claims.c.expires_at).where(
            t.claims.c.claim_key == bindparam("key")
        )
        self._task_by_claim = self._task_select().where(t.tasks.c.claim_key == bindparam("key"))

    def use_credentials(self, credentials: Credentials) -> None:
        """A database URL carries its own credentials."""

    def create_schema(self) -> None:
        if not self._schema_ready:
            self.t.metadata.create_all(self.engine, checkfirst=True)
            self._add_run_columns()
            self._schema_ready = True

    def _add_run_columns(self) -> None:
        """Add the runs table's columns that came with run numbering to a ledger made before them (the
        values a run recorded then would have had: sequence 0, no request id)."""
        from sqlalchemy import inspect

        runs = self.t.runs
        present = {
            column["name"] for column in inspect(self.engine).get_columns(runs.name, schema=runs.schema)
        }
        missing = [column for column in runs.columns if column.name not in present]
        if not missing:
            return
        preparer = self.engine.dialect.identifier_preparer
        with self.engine.begin() as db:
            for column in missing:
                kind = column.type.compile(dialect=self.engine.dialect)
                default = {"sequence": " NOT NULL DEFAULT 0", "request_id": " NOT NULL DEFAULT ''"}
                db.exec_driver_sql(
                    f"ALTER TABLE {preparer.format_table(runs)} ADD COLUMN {preparer.quote(column.name)} "
                    f"{kind}{default.get(column.name, '')}"
                )

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        self.create_schema()
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for one SELECT: on SQLite without a transaction, so without the write lock."""
        self.create_schema()
        with self._reader.connect() as connection:
            yield connection

    # ---- runs

    def insert_run(self, run: NewRun, *, now: datetime) -> bool:
        try:
            with self._begin() as db:
                db.execute(
                    self.t.runs.insert().values(
                        run_id=run.run_id,
                        source_uri=run.source_uri,
                        bucket=run.bucket,
                        object_key=run.key,
                        etag=run.etag,
                        event_name=run.event_name,
                        upload_time=run.upload_time,
                        size=run.size,
                        content_type=run.content_type,
                        sequence=run.sequence,
                        request_id=run.request_id,
                        version_id=run.version_id,
                        status="Running",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read() as db:
            row = db.execute(self._run_by_id, {"key": run_id}).mappings().first()
        return None if row is None else _run_record(row)

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
        with self._read() as db:
            return [_run_record(row) for row in db.execute(query).mappings()]

    def finish_run(self, run_id: str, *, manifest_uri: str, now: datetime) -> None:
        runs = self.t.runs
        with self._begin() as db:
            db.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.status != "Superseded")
                .values(status="Done", manifest_uri=manifest_uri, ended_at=now, updated_at=now)
            )

    def read_head(self, source_uri: str) -> RunHead | None:
        with self._read() as db:
            row = db.execute(self._head_by_key, {"key": source_digest(source_uri)}).mappings().first()
        if row is None:
            return None
        order = EventOrder(_EPOCH + row["event_micros"] * _MICROSECOND, row["event_identity"])
        return RunHead(row["source_uri"], row["run_id"], row["sequence"], row["etag"], order, row["revision"])

    def write_head(self, head: RunHead, *, expect_revision: int | None) -> bool:
        heads = self.t.run_heads
        values = {
            "source_uri": head.source_uri,
            "run_id": head.run_id,
            "sequence": head.sequence,
            "etag": head.etag,
            "event_micros": (aware(head.order.time) - _EPOCH) // _MICROSECOND,
            "event_identity": head.order.identity,
            "revision": head.revision,
        }
        key = source_digest(head.source_uri)
        try:
            with self._begin() as db:
                if expect_revision is None:
                    db.execute(heads.insert().values(source_key=key, **values))
                    return True
                result = db.execute(
                    update(heads)
                    .where(heads.c.source_key == key, heads.c.revision == expect_revision)
                    .values(**values)
                )
        except IntegrityError:
            return False
        return result.rowcount == 1

    def supersede_run(self, run_id: str, *, by: str, now: datetime) -> bool:
        runs = self.t.runs
        with self._begin() as db:
            result = db.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.status == "Done")
                .values(status="Superseded", superseded_by=by, updated_at=now)
            )
        return result.rowcount == 1

    def statuses_of_run(self, run_id: str) -> Collection[str]:
        tasks = self.t.tasks
        with self._read() as db:
            return set(
                db.execute(select(tasks.c.status).where(tasks.c.run_id == run_id).distinct()).scalars()
            )

    # ---- claims

    def read_claim(self, kind: ClaimKind, key: str) -> Claim | None:
        with self._read() as db:
            row = db.execute(self._claim_by_key, {"key": key}).first()
        return None if row is None else Claim(row.status, row.expires_at)

    def insert_claim(
        self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime, new: NewTask | None
    ) -> bool:
        t = self.t
        try:
            with self._begin() as db:
                db.execute(
                    t.claims.insert().values(
                        claim_key=key,
                        kind=kind,
                        status="in_progress",
                        expires_at=expires_at,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if new is not None:
                    self._insert_task(db, new, now)
        except IntegrityError:
            return False
        return True

    def _insert_task(self, db: Connection, new: NewTask, now: datetime) -> None:
        t = self.t
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
                    {"task_row": row_id, "tag_key": key, "tag_value": tag_text(value)}
                    for key, value in new.tags.items()
                ],
            )

    def take_over(self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime) -> bool:
        claims = self.t.claims
        with self._begin() as db:
            result = db.execute(
                update(claims)
                .where(claims.c.claim_key == key, claims.c.status == "in_progress", claims.c.expires_at < now)
                .values(expires_at=expires_at, updated_at=now)
            )
        return result.rowcount == 1

    def release_claim(self, key: str, *, now: datetime) -> None:
        claims = self.t.claims
        with self._begin() as db:
            db.execute(
                update(claims)
                .where(claims.c.claim_key == key, claims.c.status == "in_progress")
                .values(expires_at=now, updated_at=now)
            )

    def finish_result_claim(self, key: str, *, now: datetime) -> None:
        with self._begin() as db:
            self._close_claim(db, key, now)

    def _close_claim(self, db: Connection, key: str, now: datetime) -> None:
        claims = self.t.claims
        db.execute(update(claims).where(claims.c.claim_key == key).values(status="done", updated_at=now))

    # ---- tasks

    def update_task(
        self, task: TaskRecord, *, expect: frozenset[str], changes: Mapping[str, Any], close_claim: bool
    ) -> bool:
        tasks = self.t.tasks
        with self._begin() as db:
            result = db.execute(
                update(tasks)
                .where(tasks.c.claim_key == task.claim_key, tasks.c.status.in_(sorted(expect)))
                .values(**changes)
            )
            if close_claim:
                self._close_claim(db, task.claim_key, changes["updated_at"])
        return result.rowcount == 1

    def _task_select(self) -> Any:
        t = self.t
        return select(t.tasks, t.claims.c.expires_at).join(
            t.claims, t.claims.c.claim_key == t.tasks.c.claim_key
        )

    def _one_task(self, statement: Any, parameters: Mapping[str, Any] | None = None) -> TaskRecord | None:
        with self._read() as db:
            row = db.execute(statement, parameters).mappings().first()
        return None if row is None else _task_record(row)

    def task_by_claim(self, key: str) -> TaskRecord | None:
        return self._one_task(self._task_by_claim, {"key": key})

    def task_by_row(self, row_id: int) -> TaskRecord | None:
        return self._one_task(self._task_select().where(self.t.tasks.c.id == row_id))

    def task_by_id(self, task_id: str) -> TaskRecord | None:
        return self._one_task(self._task_select().where(self.t.tasks.c.task_id == task_id))

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
        with self._read() as db:
            return [_task_record(row) for row in db.execute(statement).mappings()]

    def stale_tasks(self, *, started_before: datetime, now: datetime) -> list[TaskRecord]:
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
        with self._read() as db:
            return [_task_record(row) for row in db.execute(statement).mappings()]

    def children_of(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        ids = list(task_ids)
        if not ids:
            return []
        t = self.t
        statement = self._task_select().where(t.tasks.c.parent_task_id.in_(ids)).order_by(t.tasks.c.id)
        with self._read() as db:
            return [_task_record(row) for row in db.execute(statement).mappings()]

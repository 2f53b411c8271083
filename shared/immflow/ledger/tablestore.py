"""The ledger on Tablestore (OTS), through the official ``tablestore`` SDK: the default for deployed
functions (serverless, reached with the function's RAM role, created by the stack).

URL: ``tablestore://<instance>``. Endpoint: ``IMMFLOW_OTS_ENDPOINT`` when set (the local cloud sets it),
else the instance's public endpoint ``https://<instance>.<region>.ots.aliyuncs.com``, which a function
without a VPC reaches. The other forms (docs/ledger.md, from Tablestore's "Endpoints" page) are the VPC
endpoint ``https://<instance>.<region>.vpc.tablestore.aliyuncs.com`` (for a function with ``vpcConfig``
in a VPC bound to the instance), the classic-network ``https://<instance>.<region>.ots-internal.aliyuncs.com``
and the dual-stack ``https://<instance>.<region>.tablestore.aliyuncs.com``. Keys: the invocation's
(`Ledger.use_credentials`), else ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``SECRET``/``SECURITY_TOKEN``; an STS
token goes to the SDK as ``sts_token``.

Tables: `TABLES` below is the one list of every table and its primary key; ``template.yml`` creates
exactly these (a test compares them), and `TablestoreBackend.create_schema` creates the missing ones
for a local cloud or the CLI. A function whose tables are missing fails with the table's name.

How the contract maps onto rows (no cross-row transactions in Tablestore, so every step is one
conditional row write):

* A task's row (``immflow_tasks``, keyed by its claim key) carries its create claim: ``claim_status``,
  ``claim_expires_at``. Claiming is one ``PutRow`` with ``EXPECT_NOT_EXIST``; a take-over is one
  ``UpdateRow`` whose column condition is ``claim_status == in_progress AND claim_expires_at < now``; a
  status change is an ``UpdateRow`` conditioned on the status read just before (compare-and-set, retried
  on conflict). Result claims are rows of ``immflow_claims`` with the same three columns.
* Queries go through index tables this module maintains (by TaskId, row number, run, status, tag,
  parent, time; runs by source and time). An index row is written *before* the task or run row it
  points to, and a reader keeps an index row only when the row it points to still has the indexed
  values. So an invocation that stops half-way leaves at worst an index row that readers skip, never a
  task that no query finds; an index row left behind by a status change is deleted after it.
* Row numbers (``#N`` in ``immflow tasks``) come from a counter row, advanced by compare-and-set.

Times are integers (microseconds since the epoch, UTC), JSON values are strings.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from typing import Any, NamedTuple, TypeVar

import tablestore
from tablestore import (
    INF_MAX,
    INF_MIN,
    BatchGetRowRequest,
    BatchWriteRowRequest,
    CapacityUnit,
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    DeleteRowItem,
    LogicalOperator,
    OTSClient,
    OTSServiceError,
    PutRowItem,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableInBatchGetRowItem,
    TableInBatchWriteRowItem,
    TableMeta,
    TableOptions,
)

from immflow.fc import Credentials, credentials_from_env
from immflow.ledger.contract import (
    CLOCK_SKEW,
    TABLESTORE_SCHEME,
    Claim,
    ClaimKind,
    EventOrder,
    LedgerBackend,
    LedgerError,
    NewRun,
    NewTask,
    RunHead,
    RunRecord,
    TaskQuery,
    TaskRecord,
    tag_text,
)
from immflow.settings import OTS_ENDPOINT_VARIABLE, region_from_env

STRING = "STRING"
INTEGER = "INTEGER"


class TableSpec(NamedTuple):
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
RUN_HEADS = TableSpec(
    "immflow_run_heads",
    (("source_uri", STRING),),
    "the latest run of each object key, changed by compare-and-set on its revision",
)
CLAIMS = TableSpec("immflow_claims", (("claim_key", STRING),), "result claims (TaskId + Status)")
COUNTERS = TableSpec("immflow_counters", (("name", STRING),), "the task row-number sequence")

TABLES: tuple[TableSpec, ...] = (
    RUNS,
    RUNS_BY_SOURCE,
    RUNS_BY_TIME,
    RUN_HEADS,
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

TASK_ROW_COUNTER = "task_row"
CONDITION_FAILED = "OTSConditionCheckFail"
TABLE_MISSING = "OTSObjectNotExist"
_MAX_KEY_BYTES = 1000
"""Tablestore caps a STRING primary-key column at 1 KB: longer source URIs and tag values are indexed by
their SHA-256 (a reader compares the real values on the row, so a shared digest only costs a skip)."""
_CAS_ATTEMPTS = 20
_CONNECTIONS = 8
"""The client's connection pool: a function instance sends one request at a time, the dashboard a few.
(The SDK's default, 500, costs ~0.4 ms of CPU on the first request: urllib3 fills its pool with one
placeholder per connection.)"""
_BATCH_READ = 100
"""Rows per BatchGetRow (Tablestore's limit)."""
_BATCH_WRITE = 200
"""Rows per BatchWriteRow (Tablestore's limit)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

Key = list[tuple[str, Any]]
T = TypeVar("T")


def default_endpoint(instance: str, region: str) -> str:
    """The instance's public endpoint (Tablestore "Endpoints": ``https://<instance>.<region>.ots.aliyuncs.com``)."""
    return f"https://{instance}.{region}.ots.aliyuncs.com"


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + micros * _MICROSECOND


def _key_text(value: str) -> str:
    if len(value.encode("utf-8")) <= _MAX_KEY_BYTES:
        return value
    return "sha256:" + sha256(value.encode("utf-8")).hexdigest()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _cell(value: Any) -> Any:
    """A record's value as a Tablestore attribute: times as microseconds, lists and dicts as JSON."""
    if isinstance(value, datetime):
        return _micros(value)
    if isinstance(value, list | dict):
        return _json(value)
    return value


def _as_read(value: Any) -> Any:
    """A value as writing it (`_cell`) and reading it back (`_task_record`) gives it."""
    if isinstance(value, datetime):
        return _time(_micros(value))
    if isinstance(value, list | dict):
        return json.loads(_json(value))
    return value


def _columns(row: Any) -> dict[str, Any]:
    found = {name: value for name, value in row.primary_key}
    found.update({column[0]: column[1] for column in row.attribute_columns})
    return found


def _equal(column: str, value: Any) -> Any:
    return SingleColumnCondition(column, value, ComparatorType.EQUAL, pass_if_missing=False)


def _all_of(*conditions: Any) -> Any:
    combined = CompositeColumnCondition(LogicalOperator.AND)
    for condition in conditions:
        combined.add_sub_condition(condition)
    return combined


def _run_record(cols: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=cols["run_id"],
        source_uri=cols["source_uri"],
        bucket=cols["bucket"],
        key=cols["object_key"],
        etag=cols["etag"],
        event_name=cols["event_name"],
        upload_time=_required_time(cols, "upload_time"),
        size=cols.get("size"),
        content_type=cols.get("content_type"),
        status=cols["status"],
        manifest_uri=cols.get("manifest_uri"),
        created_at=_required_time(cols, "created_at"),
        updated_at=_required_time(cols, "updated_at"),
        ended_at=_time(cols.get("ended_at")),
        sequence=cols.get("sequence", 0),
        request_id=cols.get("request_id", ""),
        version_id=cols.get("version_id"),
        superseded_by=cols.get("superseded_by"),
    )


def _task_record(cols: Mapping[str, Any]) -> TaskRecord:
    return TaskRecord(
        row_id=cols["row_id"],
        claim_key=cols["claim_key"],
        task_id=cols.get("task_id"),
        run_id=cols["run_id"],
        rule=cols["rule"],
        task_name=cols["task_name"],
        task_type=cols["task_type"],
        action=cols["action"],
        parent_task_id=cols.get("parent_task_id"),
        depth=cols["depth"],
        status=cols["status"],
        code=cols.get("code", ""),
        message=cols.get("message", ""),
        sources=json.loads(cols["sources"]),
        outputs=json.loads(cols["outputs"]),
        tags=json.loads(cols["tags"]),
        user_data=cols.get("user_data", ""),
        request=json.loads(cols["request"]),
        created_at=_required_time(cols, "created_at"),
        started_at=_time(cols.get("started_at")),
        ended_at=_time(cols.get("ended_at")),
        updated_at=_required_time(cols, "updated_at"),
        claim_expires_at=_time(cols.get("claim_expires_at")),
    )


def _required_time(cols: Mapping[str, Any], name: str) -> datetime:
    found = _time(cols.get(name))
    if found is None:
        raise LedgerError(f"ledger row {cols} has no {name}")
    return found


class _ConditionFailed(Exception):
    """A conditional write found the row not as expected (``OTSConditionCheckFail``)."""


class _CurrentKeys(tablestore.CredentialsProvider):  # type: ignore[misc]
    """Hands the SDK the ledger's keys of the moment, so new invocation keys need no new client."""

    def __init__(self, ledger: TablestoreBackend) -> None:
        self._ledger = ledger

    def get_credentials(self) -> Any:
        keys = self._ledger.credentials()
        return tablestore.credentials.Credentials(
            keys.access_key_id, keys.access_key_secret, keys.security_token
        )


class TablestoreBackend(LedgerBackend):
    def __init__(
        self, url: str, *, endpoint: str | None = None, credentials: Credentials | None = None
    ) -> None:
        instance = url.removeprefix(TABLESTORE_SCHEME).strip("/")
        if not instance or "/" in instance or "?" in instance:
            raise LedgerError(f"ledger URL {url!r} should be tablestore://<instance name>")
        self.url = url
        self.instance = instance
        self.endpoint = (
            endpoint
            or os.environ.get(OTS_ENDPOINT_VARIABLE)
            or default_endpoint(instance, region_from_env(os.environ))
        )
        self._credentials = credentials
        self._client: Any = None
        self._last_row_id: int | None = None
        self._inserted: dict[str, TaskRecord] = {}
        # The last run inserted and task updated, as written (one each: only the next call asks).
        self._inserted_run: RunRecord | None = None
        self._updated_task: TaskRecord | None = None

    # ---- the SDK

    def use_credentials(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def credentials(self) -> Credentials:
        found = self._credentials or credentials_from_env(os.environ)
        if found is None:
            raise LedgerError(
                f"no keys for the Tablestore ledger {self.url}: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS keys), or give the "
                "function a RAM role"
            )
        return found

    @property
    def client(self) -> Any:
        if self._client is None:
            # The SDK formats every request and response for its DEBUG lines (protobuf's text_format, ~0.1
            # ms each, and ~8 ms to import it) whenever its logger's own level is unset, printed or not:
            # set it to the level in effect, so the lines are formatted only when they would be printed.
            sdk_logger = logging.getLogger(OTSClient.DEFAULT_LOGGER_NAME)
            if sdk_logger.level == logging.NOTSET:
                sdk_logger.setLevel(sdk_logger.getEffectiveLevel())
            self._client = OTSClient(
                self.endpoint,
                instance_name=self.instance,
                credentials_provider=_CurrentKeys(self),
                max_connection=_CONNECTIONS,
            )
        return self._client

    def _call(self, table: TableSpec, action: str, *args: Any) -> Any:
        """``client.<action>(table name, *args)``; the batch actions take their request alone."""
        try:
            if action.startswith("batch_"):
                return getattr(self.client, action)(*args)
            return getattr(self.client, action)(table.name, *args)
        except OTSServiceError as error:
            code = error.get_error_code()
            if code == CONDITION_FAILED:
                raise _ConditionFailed from None
            if code == TABLE_MISSING:
                raise self._missing(table) from error
            raise

    def _missing(self, table: TableSpec) -> LedgerError:
        return LedgerError(
            f"the ledger's Tablestore table {table.name} does not exist in instance {self.instance} "
            f"({self.endpoint}): deploy template.yml, which creates every ledger table (for a local "
            "or test instance, Ledger.create_schema() creates them)"
        )

    def _get(self, table: TableSpec, key: Key) -> dict[str, Any] | None:
        _, row, _ = self._call(table, "get_row", key, None, None, 1)
        return None if row is None else _columns(row)

    def _get_many(self, table: TableSpec, keys: Sequence[Key]) -> list[dict[str, Any] | None]:
        """Rows by primary key, in `keys`' order, one BatchGetRow per `_BATCH_READ` keys."""
        found: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        unique = list({tuple(key): key for key in keys}.values())
        for start in range(0, len(unique), _BATCH_READ):
            request = BatchGetRowRequest()
            request.add(
                TableInBatchGetRowItem(table.name, unique[start : start + _BATCH_READ], max_version=1)
            )
            for key, item in zip(
                unique[start : start + _BATCH_READ],
                self._call(table, "batch_get_row", request).get_result_by_table(table.name),
                strict=True,
            ):
                if not item.is_ok:
                    if item.error_code == TABLE_MISSING:
                        raise self._missing(table)
                    raise LedgerError(f"reading {table.name} {key}: {item.error_code} {item.error_message}")
                found[tuple(key)] = (
                    None if item.row is None or not item.row.primary_key else _columns(item.row)
                )
        return [found[tuple(key)] for key in keys]

    def _put(self, table: TableSpec, key: Key, columns: Mapping[str, Any], *, only_new: bool = False) -> bool:
        """Write the row whole; with `only_new`, only if it does not exist (False when it does)."""
        expect = RowExistenceExpectation.EXPECT_NOT_EXIST if only_new else RowExistenceExpectation.IGNORE
        attributes = [(name, _cell(value)) for name, value in columns.items() if value is not None]
        try:
            self._call(table, "put_row", Row(key, attributes), Condition(expect))
        except _ConditionFailed:
            return False
        return True

    def _update(self, table: TableSpec, key: Key, columns: Mapping[str, Any], condition: Any = None) -> bool:
        """Change the columns of an existing row when `condition` (a column condition) holds; False otherwise."""
        changes = {"put": [(name, _cell(value)) for name, value in columns.items()]}
        try:
            self._call(
                table,
                "update_row",
                Row(key, changes),
                Condition(RowExistenceExpectation.EXPECT_EXIST, condition),
            )
        except _ConditionFailed:
            return False
        return True

    def _write_index(self, rows: Sequence[tuple[TableSpec, Key]], columns: Mapping[str, Any] | None) -> None:
        """Put index rows with `columns` (None: delete them), one BatchWriteRow per `_BATCH_WRITE` rows.
        Not atomic, and it need not be: readers check every index row against its task or run."""
        for start in range(0, len(rows), _BATCH_WRITE):
            by_table: dict[str, list[Any]] = {}
            for table, key in rows[start : start + _BATCH_WRITE]:
                ignore = Condition(RowExistenceExpectation.IGNORE)
                item = (
                    DeleteRowItem(Row(key), ignore)
                    if columns is None
                    else PutRowItem(
                        Row(key, [(name, _cell(value)) for name, value in columns.items()]), ignore
                    )
                )
                by_table.setdefault(table.name, []).append(item)
            request = BatchWriteRowRequest()
            for name, items in by_table.items():
                request.add(TableInBatchWriteRowItem(name, items))
            response = self._call(rows[start][0], "batch_write_row", request)
            failed = response.get_failed_of_put() + response.get_failed_of_delete()
            for item in failed:
                if item.error_code == TABLE_MISSING:
                    raise self._missing(next(table for table in TABLES if table.name == item.table_name))
            if failed:
                raise LedgerError(
                    "writing the ledger's index rows failed: "
                    + "; ".join(
                        f"{item.table_name}: {item.error_code} {item.error_message}" for item in failed
                    )
                )

    def _delete(self, table: TableSpec, key: Key) -> None:
        self._call(table, "delete_row", Row(key), Condition(RowExistenceExpectation.IGNORE))

    def _scan(
        self,
        table: TableSpec,
        prefix: Key,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        newest_first: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The rows whose primary key starts with `prefix`, in key order; when the next key column is
        ``created_at``, only those created in [since, until)."""
        rest = [name for name, _ in table.primary_key[len(prefix) :]]
        low: Key = list(prefix)
        high: Key = list(prefix)
        for index, name in enumerate(rest):
            bounded = index == 0 and name == "created_at"
            low.append((name, _micros(since) if bounded and since is not None else INF_MIN))
            if index == 0:
                high.append((name, _micros(until) if bounded and until is not None else INF_MAX))
            else:
                high.append((name, INF_MIN))
        direction, start, end = ("BACKWARD", high, low) if newest_first else ("FORWARD", low, high)
        while start:
            _, start, rows, _ = self._call(table, "get_range", direction, start, end, None, None)
            for row in rows:
                yield _columns(row)

    def create_schema(self) -> None:
        existing = set(self.client.list_table())
        for table in TABLES:
            if table.name not in existing:
                self.client.create_table(
                    TableMeta(table.name, list(table.primary_key)),
                    TableOptions(time_to_live=-1, max_version=1),
                    ReservedThroughput(CapacityUnit(0, 0)),
                )

    # ---- runs

    def insert_run(self, run: NewRun, *, now: datetime) -> bool:
        created = _micros(now)
        index: list[tuple[TableSpec, Key]] = [
            (
                RUNS_BY_SOURCE,
                [("source_uri", _key_text(run.source_uri)), ("created_at", created), ("run_id", run.run_id)],
            ),
            (RUNS_BY_TIME, [("created_at", created), ("run_id", run.run_id)]),
        ]
        self._write_index(index, {})
        row = {
            "source_uri": run.source_uri,
            "bucket": run.bucket,
            "object_key": run.key,
            "etag": run.etag,
            "event_name": run.event_name,
            "upload_time": run.upload_time,
            "size": run.size,
            "content_type": run.content_type,
            "sequence": run.sequence,
            "request_id": run.request_id,
            "version_id": run.version_id,
            "status": "Running",
            "created_at": now,
            "updated_at": now,
        }
        if self._put(RUNS, [("run_id", run.run_id)], row, only_new=True):
            # What reading the row back would give: the same cells through the same decoding.
            stored = {name: _cell(value) for name, value in row.items() if value is not None}
            self._inserted_run = _run_record({**stored, "run_id": run.run_id})
            return True
        winner = self.get_run(run.run_id)
        if winner is None or _micros(winner.created_at) != created:
            self._write_index(index, None)  # ours, not the winner's: it was created at another time
        return False

    def get_run(self, run_id: str) -> RunRecord | None:
        found = self._get(RUNS, [("run_id", run_id)])
        return None if found is None else _run_record(found)

    def list_runs(
        self, *, source: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        if source is not None:
            entries = self._scan(RUNS_BY_SOURCE, [("source_uri", _key_text(source))], newest_first=True)
        else:
            entries = self._scan(RUNS_BY_TIME, [], newest_first=True)
        found: list[RunRecord] = []
        for entry, row in (
            (entry, row)
            for chunk in _chunks(entries, _BATCH_READ)
            for entry, row in zip(
                chunk, self._get_many(RUNS, [[("run_id", e["run_id"])] for e in chunk]), strict=True
            )
        ):
            run = None if row is None else _run_record(row)
            if (
                run is None
                or _micros(run.created_at) != entry["created_at"]
                or (source is not None and run.source_uri != source)
                or (status is not None and run.status != status)
            ):
                continue
            found.append(run)
            if limit is not None and len(found) >= limit:
                break
        return sorted(found, key=lambda run: (-_micros(run.created_at), run.run_id))

    def finish_run(self, run_id: str, *, manifest_uri: str, now: datetime) -> None:
        changes = {"status": "Done", "manifest_uri": manifest_uri, "ended_at": now, "updated_at": now}
        not_superseded = SingleColumnCondition(
            "status", "Superseded", ComparatorType.NOT_EQUAL, pass_if_missing=True
        )
        self._update(RUNS, [("run_id", run_id)], changes, not_superseded)

    def read_head(self, source_uri: str) -> RunHead | None:
        found = self._get(RUN_HEADS, [("source_uri", _key_text(source_uri))])
        if found is None or found["real_source_uri"] != source_uri:
            return None  # a longer URI sharing the digest would be another key: never in practice
        order = EventOrder(_required_time(found, "event_time"), found["event_identity"])
        return RunHead(
            source_uri, found["run_id"], found["sequence"], found["etag"], order, found["revision"]
        )

    def write_head(self, head: RunHead, *, expect_revision: int | None) -> bool:
        key: Key = [("source_uri", _key_text(head.source_uri))]
        columns = {
            "real_source_uri": head.source_uri,
            "run_id": head.run_id,
            "sequence": head.sequence,
            "etag": head.etag,
            "event_time": head.order.time,
            "event_identity": head.order.identity,
            "revision": head.revision,
        }
        if expect_revision is None:
            return self._put(RUN_HEADS, key, columns, only_new=True)
        return self._update(RUN_HEADS, key, columns, _equal("revision", expect_revision))

    def supersede_run(self, run_id: str, *, by: str, now: datetime) -> bool:
        changes = {"status": "Superseded", "superseded_by": by, "updated_at": now}
        return self._update(RUNS, [("run_id", run_id)], changes, _equal("status", "Done"))

    def statuses_of_run(self, run_id: str) -> Collection[str]:
        return [task.status for task in self.list_tasks(TaskQuery(run_id=run_id))]

    # ---- claims

    @staticmethod
    def _claims_of(kind: ClaimKind) -> TableSpec:
        return TASKS if kind == "create" else CLAIMS

    def read_claim(self, kind: ClaimKind, key: str) -> Claim | None:
        found = self._get(self._claims_of(kind), [("claim_key", key)])
        if found is None:
            return None
        return Claim(found["claim_status"], _required_time(found, "claim_expires_at"))

    def insert_claim(
        self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime, new: NewTask | None
    ) -> bool:
        claim = {
            "claim_status": "in_progress",
            "claim_expires_at": expires_at,
            "created_at": now,
            "updated_at": now,
        }
        if new is None:
            return self._put(CLAIMS, [("claim_key", key)], {**claim, "kind": kind}, only_new=True)
        row_id = self._next_row_id()
        index = self._task_index(key, row_id, new.run_id, _micros(now), new.tags, new.parent_task_id)
        index.append(self._status_entry("Creating", _micros(now), row_id))
        self._write_index(index, {"claim_key": key})
        row = {
            **claim,
            "row_id": row_id,
            "run_id": new.run_id,
            "rule": new.rule,
            "task_name": new.task_name,
            "task_type": new.task_type,
            "action": new.action,
            "parent_task_id": new.parent_task_id,
            "depth": new.depth,
            "status": "Creating",
            "code": "",
            "message": "",
            "sources": list(new.sources),
            "outputs": [],
            "tags": dict(new.tags),
            "user_data": new.user_data,
            "request": dict(new.request),
        }
        if self._put(TASKS, [("claim_key", key)], row, only_new=True):
            # What reading the row back would give: the same cells through the same decoding.
            stored = {name: _cell(value) for name, value in row.items() if value is not None}
            self._inserted[key] = _task_record({**stored, "claim_key": key})
            return True
        self._write_index(index, None)  # keyed by our row number: nobody else's
        return False

    def inserted_task(self, key: str) -> TaskRecord | None:
        return self._inserted.pop(key, None)

    def updated_task(self, key: str) -> TaskRecord | None:
        found, self._updated_task = self._updated_task, None
        return found if found is not None and found.claim_key == key else None

    def inserted_run(self, run_id: str) -> RunRecord | None:
        found, self._inserted_run = self._inserted_run, None
        return found if found is not None and found.run_id == run_id else None

    def take_over(self, kind: ClaimKind, key: str, *, now: datetime, expires_at: datetime) -> bool:
        expired = SingleColumnCondition(
            "claim_expires_at", _micros(now), ComparatorType.LESS_THAN, pass_if_missing=False
        )
        return self._update(
            self._claims_of(kind),
            [("claim_key", key)],
            {"claim_expires_at": expires_at, "updated_at": now},
            _all_of(_equal("claim_status", "in_progress"), expired),
        )

    def release_claim(self, key: str, *, now: datetime) -> None:
        # The key does not say its kind: a result claim's row is in immflow_claims, a create claim's in
        # immflow_tasks; the conditional update finds no row in the other table.
        for table in (CLAIMS, TASKS):
            if self._update(
                table,
                [("claim_key", key)],
                {"claim_expires_at": now, "updated_at": now},
                _equal("claim_status", "in_progress"),
            ):
                return

    def finish_result_claim(self, key: str, *, now: datetime) -> None:
        self._update(CLAIMS, [("claim_key", key)], {"claim_status": "done", "updated_at": now})

    def _next_row_id(self) -> int:
        """Advance the counter by compare-and-set, from the value this instance last left it at when
        it has one (usually still current: one write instead of a read and a write), else as read."""
        key: Key = [("name", TASK_ROW_COUNTER)]
        last = self._last_row_id
        for _ in range(_CAS_ATTEMPTS):
            if last is None:
                found = self._get(COUNTERS, key)
                if found is None:
                    if self._put(COUNTERS, key, {"value": 1}, only_new=True):
                        self._last_row_id = 1
                        return 1
                    continue
                last = int(found["value"])
            if self._update(COUNTERS, key, {"value": last + 1}, _equal("value", last)):
                self._last_row_id = last + 1
                return last + 1
            last = None  # another writer advanced it: read it
        raise LedgerError(
            f"could not take a task row number from {COUNTERS.name}: too many concurrent writers"
        )

    # ---- tasks

    @staticmethod
    def _status_entry(status: str, created: int, row_id: int) -> tuple[TableSpec, Key]:
        return TASKS_BY_STATUS, [("status", status), ("created_at", created), ("row_id", row_id)]

    @staticmethod
    def _task_index(
        key: str, row_id: int, run_id: str, created: int, tags: Mapping[str, Any], parent: str | None
    ) -> list[tuple[TableSpec, Key]]:
        """The index rows of a task but its status's."""
        entries: list[tuple[TableSpec, Key]] = [
            (TASK_BY_ROW, [("row_id", row_id)]),
            (TASKS_BY_RUN, [("run_id", run_id), ("created_at", created), ("row_id", row_id)]),
            (TASKS_BY_TIME, [("created_at", created), ("row_id", row_id)]),
        ]
        entries += [
            (
                TASKS_BY_TAG,
                [
                    ("tag_key", _key_text(name)),
                    ("tag_value", _key_text(tag_text(value))),
                    ("created_at", created),
                    ("row_id", row_id),
                ],
            )
            for name, value in tags.items()
        ]
        if parent is not None:
            entries.append((TASKS_BY_PARENT, [("parent_task_id", parent), ("row_id", row_id)]))
        return entries

    def update_task(
        self, task: TaskRecord, *, expect: frozenset[str], changes: Mapping[str, Any], close_claim: bool
    ) -> bool:
        key: Key = [("claim_key", task.claim_key)]
        current: TaskRecord | None = task
        for _ in range(_CAS_ATTEMPTS):
            if current is None:
                return False
            if current.status not in expect:
                if close_claim:
                    self._update(TASKS, key, {"claim_status": "done", "updated_at": changes["updated_at"]})
                return False
            status = changes.get("status", current.status)
            created = _micros(current.created_at)
            index = [self._status_entry(status, created, current.row_id)] if status != current.status else []
            if changes.get("task_id"):
                index.append((TASK_BY_ID, [("task_id", changes["task_id"])]))
            if index:
                self._write_index(index, {"claim_key": task.claim_key})
            columns = {**changes, "claim_status": "done"} if close_claim else dict(changes)
            if self._update(TASKS, key, columns, _equal("status", current.status)):
                if status != current.status:
                    self._delete(*self._status_entry(current.status, created, current.row_id))
                self._updated_task = current._replace(
                    **{name: _as_read(value) for name, value in changes.items()}
                )
                return True
            current = self.task_by_claim(task.claim_key)  # changed since it was read: look again
        raise LedgerError(f"task {task.claim_key} kept changing while it was being updated")

    def task_by_claim(self, key: str) -> TaskRecord | None:
        found = self._get(TASKS, [("claim_key", key)])
        return None if found is None else _task_record(found)

    def _task_via(self, table: TableSpec, key: Key) -> TaskRecord | None:
        entry = self._get(table, key)
        return None if entry is None else self.task_by_claim(entry["claim_key"])

    def task_by_id(self, task_id: str) -> TaskRecord | None:
        found = self._task_via(TASK_BY_ID, [("task_id", task_id)])
        return found if found is not None and found.task_id == task_id else None

    def task_by_row(self, row_id: int) -> TaskRecord | None:
        found = self._task_via(TASK_BY_ROW, [("row_id", row_id)])
        return found if found is not None and found.row_id == row_id else None

    def _tasks_at(self, entries: Iterable[Mapping[str, Any]]) -> Iterator[TaskRecord]:
        """The tasks index rows point to, skipping those whose task is gone or no longer at that key."""
        for chunk in _chunks(entries, _BATCH_READ):
            rows = self._get_many(TASKS, [[("claim_key", entry["claim_key"])] for entry in chunk])
            for entry, row in zip(chunk, rows, strict=True):
                task = None if row is None else _task_record(row)
                if task is None or task.row_id != entry["row_id"]:
                    continue
                if "created_at" in entry and _micros(task.created_at) != entry["created_at"]:
                    continue
                yield task

    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        runs: set[str] | None = None
        if query.source is not None:
            runs = {run.run_id for run in self.list_runs(source=query.source)}
        entries: Iterable[Mapping[str, Any]]
        if query.run_id is not None:
            entries = self._scan(
                TASKS_BY_RUN, [("run_id", query.run_id)], since=query.since, until=query.until
            )
        elif runs is not None:
            entries = sorted(
                (
                    entry
                    for run in runs
                    for entry in self._scan(
                        TASKS_BY_RUN, [("run_id", run)], since=query.since, until=query.until
                    )
                ),
                key=lambda entry: (entry["created_at"], entry["row_id"]),
            )
        elif query.tags:
            name, value = next(iter(query.tags.items()))
            entries = self._scan(
                TASKS_BY_TAG,
                [("tag_key", _key_text(name)), ("tag_value", _key_text(value))],
                since=query.since,
                until=query.until,
            )
        elif query.status is not None:
            entries = self._scan(
                TASKS_BY_STATUS, [("status", query.status)], since=query.since, until=query.until
            )
        else:
            entries = self._scan(TASKS_BY_TIME, [], since=query.since, until=query.until)
        found: list[TaskRecord] = []
        for task in self._tasks_at(entries):
            if not query.matches(task) or (runs is not None and task.run_id not in runs):
                continue
            found.append(task)
            if query.limit is not None and len(found) >= query.limit:
                break
        return found

    def stale_tasks(self, *, started_before: datetime, now: datetime) -> list[TaskRecord]:
        # A task starts after its claim, give or take CLOCK_SKEW (IMM's clock): a Running task created
        # since `started_before` + CLOCK_SKEW cannot have started before `started_before`, so only the
        # index rows of older ones are read through to their tasks.
        running_entries = self._scan(
            TASKS_BY_STATUS, [("status", "Running")], until=started_before + CLOCK_SKEW
        )
        running = [
            task
            for task in self._tasks_at(running_entries)
            if task.status == "Running" and task.started_at is not None and task.started_at < started_before
        ]
        creating = [
            task
            for task in self._tasks_at(self._scan(TASKS_BY_STATUS, [("status", "Creating")]))
            if task.status == "Creating" and task.claim_expires_at is not None and task.claim_expires_at < now
        ]
        return sorted(running + creating, key=lambda task: (task.created_at, task.row_id))

    def children_of(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        found = [
            task
            for parent in dict.fromkeys(task_ids)
            for task in self._tasks_at(self._scan(TASKS_BY_PARENT, [("parent_task_id", parent)]))
            if task.parent_task_id == parent
        ]
        return sorted(found, key=lambda task: task.row_id)

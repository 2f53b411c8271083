"""The local Tablestore server: routing, authentication and the API actions.

Every call is ``POST /<ApiName>`` with a protobuf body (``table_store.proto``, API version
2015-12-31); :meth:`OtsService.handle` checks the signature and the instance, then calls the
method named like the SDK's (``PutRow`` -> :meth:`OtsService.put_row`). Every answer carries
``x-ots-contentmd5``, ``x-ots-requestid``, ``x-ots-date`` and ``x-ots-contenttype`` and, once the
caller's key is known, the ``Authorization: OTS id:signature`` the SDK verifies. Errors are the
protobuf ``Error {code, message}`` with the cloud's HTTP status (docs/tablestore-local.md).

What the local Tablestore keeps is said once here and in the actions' docstrings:

- Versions: only the latest version of each cell is kept, whatever ``max_versions`` the table
  was created with (the behaviour of ``max_versions=1``): a write with an older timestamp than
  the kept one is ignored for that cell, GetRow/GetRange return at most one version.
- TTL and ``max_time_deviation`` are stored and described back, not enforced.
- Capacity units are reported as 1 read per row read and 1 write per row written, not sized
  by 4 KB; there are no throughput limits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError, Message
from tablestore.protobuf import table_store_pb2 as pb
from tablestore.protocol import OTSProtocol

from localcloud.core.account import Account
from localcloud.core.admin import ADMIN_PREFIX, AdminGuard
from localcloud.core.http import Request, Response
from localcloud.ots import auth, conditions, plainbuffer
from localcloud.ots.errors import (
    OtsError,
    auth_failed,
    condition_check_fail,
    not_implemented,
    parameter_invalid,
    table_already_exist,
    table_not_exist,
)
from localcloud.ots.plainbuffer import INF_MAX, INF_MIN, Bound, CellOp, ParsedRow, PkValue, Value
from localcloud.ots.store import Store, StoredRow, TableRecord, sort_key

#: The SDK's API names the local Tablestore answers, and the method that serves each.
ACTIONS = {
    "CreateTable": "create_table",
    "DescribeTable": "describe_table",
    "ListTable": "list_table",
    "DeleteTable": "delete_table",
    "PutRow": "put_row",
    "GetRow": "get_row",
    "UpdateRow": "update_row",
    "DeleteRow": "delete_row",
    "BatchGetRow": "batch_get_row",
    "BatchWriteRow": "batch_write_row",
    "GetRange": "get_range",
}
#: API names Tablestore has that the local one refuses with OTSUnsupportOperation (HTTP 501):
#: every name the SDK can call (its ``OTSProtocol.api_list``) and the stream and bulk APIs of
#: ``table_store.proto`` that the Python SDK does not call, less those served here.
NOT_IMPLEMENTED = (
    frozenset(OTSProtocol.api_list)
    | {"ListStream", "DescribeStream", "GetShardIterator", "GetStreamRecord", "ComputeSplitPointsBySize",
       "BulkImport", "BulkExport"}
) - ACTIONS.keys()  # fmt: skip

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
#: Tablestore instance names: 3-16 letters, digits and hyphens, starting with a letter, not ending with a hyphen.
INSTANCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,14}[A-Za-z0-9]\Z")
MAX_PRIMARY_KEY_COLUMNS = 4
MAX_BATCH_GET_ROWS = 100
MAX_BATCH_WRITE_ROWS = 200
#: GetRange returns at most this many rows per call, then a next_start_primary_key.
MAX_RANGE_ROWS = 5000
#: Tablestore's size limits (docs/tablestore-local.md, "Limits").
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_PRIMARY_KEY_VALUE_BYTES = 1024
MAX_ATTRIBUTE_VALUE_BYTES = 2 * 1024 * 1024
MAX_COLUMNS_PER_WRITE = 1024
MAX_COLUMNS_TO_GET = 128
DEFAULT_TIME_TO_LIVE = -1
DEFAULT_MAX_VERSIONS = 1
DEFAULT_DEVIATION_SECONDS = 86400
PK_TYPES: dict[int, type] = {pb.INTEGER: int, pb.STRING: str, pb.BINARY: bytes}
PK_TYPE_NAMES = {pb.INTEGER: "INTEGER", pb.STRING: "STRING", pb.BINARY: "BINARY"}


class OtsService:
    """Tablestore tables and rows for ``tablestore.OTSClient(endpoint, id, secret, instance)``.

    Instances are made in the console in the cloud; locally ``immflow`` exists from the start and
    others are added by the admin route ``PUT /_localcloud/instances/<name>`` (``GET
    /_localcloud/instances`` lists them), which takes the local cloud's admin token
    (:mod:`localcloud.core.admin`).
    """

    name = "ots"

    def __init__(self, state_dir: Path, account: Account) -> None:
        self.account = account
        self.admin_guard = AdminGuard.for_state_dir(state_dir)
        self._store = Store(state_dir / "ots")

    def close(self) -> None:
        self._store.close()

    def create_instance(self, name: str) -> bool:
        """Add an instance (False when it exists); ``immflow`` exists from the start."""
        if not INSTANCE_NAME.match(name):
            raise parameter_invalid(
                f"Invalid instance name {name!r}: use 3-16 letters, digits and hyphens, starting with a "
                "letter and not ending with a hyphen."
            )
        return self._store.create_instance(name)

    # --- routing ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.raw_path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        request_id = secrets.token_hex(16)
        key: bytes | None = None
        try:
            if len(request.body) > MAX_BODY_BYTES:
                raise OtsError(
                    413,
                    "OTSRequestBodyTooLarge",
                    f"The size of POST data is too large: {len(request.body)} bytes.",
                )
            key = auth.check(request, self.account)
            instance = request.headers["x-ots-instancename"]
            if not self._store.instance_exists(instance):
                key = None  # the cloud answers an unknown instance as an authentication failure
                raise auth_failed(
                    f"The instance is not found: {instance!r}. The local Tablestore has "
                    f"{', '.join(self._store.instance_names())}; pass one of them to OTSClient."
                )
            api = request.path.strip("/")
            if api in ACTIONS:
                action: Callable[[str, bytes], Message] = getattr(self, ACTIONS[api])
                message = action(instance, request.body)
                status, body = 200, message.SerializeToString()
            elif api in NOT_IMPLEMENTED:
                raise not_implemented(api)
            else:
                raise parameter_invalid(f"Unsupported operation: '{api}'.")
        except OtsError as error:
            if error.code == "OTSAuthFailed":
                key = None
            status = error.status
            body = pb.Error(code=error.code, message=error.message).SerializeToString()
        headers = {
            "x-ots-contentmd5": base64.b64encode(hashlib.md5(body).digest()).decode(),
            "x-ots-requestid": request_id,
            "x-ots-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "x-ots-contenttype": "protocol buffer",
        }
        if key is not None:
            signature = auth.response_signature(key, headers, request.raw_path)
            headers["Authorization"] = f"OTS {self.account.access_key_id}:{signature}"
        headers["Content-Type"] = "application/x-protobuf"
        return Response(status, headers, body)

    def _admin(self, request: Request) -> Response:
        refusal = self.admin_guard.refusal(request)
        if refusal is not None:
            return _json(refusal.status, {"Code": refusal.code, "Message": refusal.message})
        parts = request.path[len(ADMIN_PREFIX) :].strip("/").split("/")
        if parts == ["instances"] and request.method == "GET":
            return _json(200, {"instances": self._store.instance_names()})
        if len(parts) == 2 and parts[0] == "instances" and request.method == "PUT":
            try:
                created = self.create_instance(parts[1])
            except OtsError as error:
                return _json(error.status, {"Code": error.code, "Message": error.message})
            return _json(201 if created else 200, {"instance": parts[1], "created": created})
        return _json(
            405,
            {
                "Code": "MethodNotAllowed",
                "Message": f"{request.method} {request.path}: use GET {ADMIN_PREFIX}instances or "
                f"PUT {ADMIN_PREFIX}instances/<name>.",
            },
        )

    # --- tables -----------------------------------------------------------------------------

    def create_table(self, instance: str, body: bytes) -> pb.CreateTableResponse:
        """CreateTable: 1-4 primary key columns of INTEGER, STRING or BINARY.

        Refused locally with OTSParameterInvalid: auto-increment primary keys, secondary
        indexes, streams and server-side encryption. Pre-split ``partitions`` are accepted and
        ignored (one local partition holds everything).
        """
        request = _parse(pb.CreateTableRequest, body, "CreateTable")
        meta = request.table_meta
        _check_name(meta.table_name, "table")
        columns = list(meta.primary_key)
        if not 1 <= len(columns) <= MAX_PRIMARY_KEY_COLUMNS:
            raise parameter_invalid(
                f"The number of primary key columns must be in range: [1, 4], got {len(columns)}."
            )
        seen: set[str] = set()
        for column in columns:
            _check_name(column.name, "primary key column")
            if column.name in seen:
                raise parameter_invalid(f"Duplicated primary key name: '{column.name}'.")
            seen.add(column.name)
            if column.type not in PK_TYPES:
                raise parameter_invalid(
                    f"Primary key column {column.name!r} has type {column.type}; the local Tablestore "
                    "takes INTEGER, STRING and BINARY."
                )
            if column.HasField("option"):
                raise parameter_invalid(
                    f"Primary key column {column.name!r} is AUTO_INCREMENT, which the local Tablestore "
                    "does not support; generate the key in the client."
                )
        for defined in meta.defined_column:
            _check_name(defined.name, "defined column")
        if request.index_metas:
            raise parameter_invalid("Secondary indexes are not supported by the local Tablestore.")
        if request.HasField("stream_spec") and request.stream_spec.enable_stream:
            raise parameter_invalid("Streams are not supported by the local Tablestore.")
        if request.HasField("sse_spec") and request.sse_spec.enable:
            raise parameter_invalid("Server-side encryption is not supported by the local Tablestore.")
        options = _table_options(request.table_options if request.HasField("table_options") else None)
        cu = request.reserved_throughput.capacity_unit
        record = TableRecord(
            name=meta.table_name,
            meta=meta.SerializeToString(),
            options=options.SerializeToString(),
            read_cu=cu.read,
            write_cu=cu.write,
            create_time=int(time.time()),
        )
        if not self._store.create_table(instance, record):
            raise table_already_exist(meta.table_name)
        return pb.CreateTableResponse()

    def describe_table(self, instance: str, body: bytes) -> pb.DescribeTableResponse:
        """DescribeTable: the schema, options and reserved throughput the table was created with."""
        request = _parse(pb.DescribeTableRequest, body, "DescribeTable")
        record = self._table(instance, request.table_name).record
        response = pb.DescribeTableResponse()
        response.table_meta.ParseFromString(record.meta)
        response.table_options.ParseFromString(record.options)
        details = response.reserved_throughput_details
        details.capacity_unit.read = record.read_cu
        details.capacity_unit.write = record.write_cu
        details.last_increase_time = record.create_time
        response.sse_details.enable = False
        return response

    def list_table(self, instance: str, body: bytes) -> pb.ListTableResponse:
        _parse(pb.ListTableRequest, body, "ListTable")
        return pb.ListTableResponse(table_names=self._store.table_names(instance))

    def delete_table(self, instance: str, body: bytes) -> pb.DeleteTableResponse:
        """DeleteTable: the table and all its rows, at once."""
        request = _parse(pb.DeleteTableRequest, body, "DeleteTable")
        if not self._store.delete_table(instance, request.table_name):
            raise table_not_exist(request.table_name)
        return pb.DeleteTableResponse()

    def _table(self, instance: str, name: str) -> _Table:
        record = self._store.table(instance, name)
        if record is None:
            raise table_not_exist(name)
        return _Table(record)

    # --- single rows ------------------------------------------------------------------------

    def put_row(self, instance: str, body: bytes) -> pb.PutRowResponse:
        """PutRow: replace the whole row, under its condition."""
        request = _parse(pb.PutRowRequest, body, "PutRow")
        _no_transaction(request)
        with self._store.write() as db:  # the table is looked up inside: DeleteTable cannot interleave
            table = self._table(instance, request.table_name)
            row = self._write(
                db, instance, table, pb.PUT, request.row, request.condition, request.return_content
            )
        return pb.PutRowResponse(consumed=_consumed(write=1), row=row)

    def update_row(self, instance: str, body: bytes) -> pb.UpdateRowResponse:
        """UpdateRow: put, delete (one version or all) and increment columns, under a condition.

        A DELETE of one version without a timestamp deletes the column's kept (latest) version.
        A row stays, with its primary key only, when an update deletes all its columns.
        """
        request = _parse(pb.UpdateRowRequest, body, "UpdateRow")
        _no_transaction(request)
        with self._store.write() as db:
            table = self._table(instance, request.table_name)
            row = self._write(
                db, instance, table, pb.UPDATE, request.row_change, request.condition, request.return_content
            )
        return pb.UpdateRowResponse(consumed=_consumed(write=1), row=row)

    def delete_row(self, instance: str, body: bytes) -> pb.DeleteRowResponse:
        """DeleteRow: remove the row, under its condition (EXPECT_NOT_EXIST is refused)."""
        request = _parse(pb.DeleteRowRequest, body, "DeleteRow")
        _no_transaction(request)
        with self._store.write() as db:
            table = self._table(instance, request.table_name)
            row = self._write(
                db, instance, table, pb.DELETE, request.primary_key, request.condition, request.return_content
            )
        return pb.DeleteRowResponse(consumed=_consumed(write=1), row=row)

    def get_row(self, instance: str, body: bytes) -> pb.GetRowResponse:
        """GetRow: the row's primary key and the columns asked for, if it passes the filter.

        The filter is evaluated on the whole stored row, whatever ``columns_to_get`` names. The
        primary key is always returned whole; a row none of whose asked-for columns exist is
        answered as no row.
        """
        request = _parse(pb.GetRowRequest, body, "GetRow")
        _no_transaction(request)
        table = self._table(instance, request.table_name)
        primary_key = table.primary_key(plainbuffer.read_row(request.primary_key, "primary key").primary_key)
        read = _ReadOptions.of(request, "GetRow")
        with self._store.lock:
            stored = self._store.get_row(
                self._store.read(), instance, table.name, sort_key(_values(primary_key))
            )
        return pb.GetRowResponse(consumed=_consumed(read=1), row=read.render(stored))

    # --- batches ----------------------------------------------------------------------------

    def batch_get_row(self, instance: str, body: bytes) -> pb.BatchGetRowResponse:
        """BatchGetRow: up to 100 rows over any tables; a missing table fails its rows only."""
        request = _parse(pb.BatchGetRowRequest, body, "BatchGetRow")
        total = sum(len(t.primary_key) for t in request.tables)
        if total > MAX_BATCH_GET_ROWS:
            raise parameter_invalid(f"Rows count exceeds the upper limit: {MAX_BATCH_GET_ROWS}, got {total}.")
        _unique_tables([t.table_name for t in request.tables], "BatchGetRow")
        response = pb.BatchGetRowResponse()
        for table_request in request.tables:
            out = response.tables.add(table_name=table_request.table_name)
            record = self._store.table(instance, table_request.table_name)
            if record is None:
                missing = table_not_exist(table_request.table_name)
                for _ in table_request.primary_key:
                    out.rows.add(is_ok=False, error=pb.Error(code=missing.code, message=missing.message))
                continue
            table = _Table(record)
            read = _ReadOptions.of(table_request, "BatchGetRow")
            for raw in table_request.primary_key:
                primary_key = table.primary_key(plainbuffer.read_row(raw, "primary key").primary_key)
                with self._store.lock:
                    stored = self._store.get_row(
                        self._store.read(), instance, table.name, sort_key(_values(primary_key))
                    )
                out.rows.add(is_ok=True, consumed=_consumed(read=1), row=read.render(stored))
        return response

    def batch_write_row(self, instance: str, body: bytes) -> pb.BatchWriteRowResponse:
        """BatchWriteRow: up to 200 puts, updates and deletes, each with its own result.

        Each row succeeds or fails on its own (a failed condition fails that row only), as in
        the cloud; all rows that succeed are committed together, once.
        """
        request = _parse(pb.BatchWriteRowRequest, body, "BatchWriteRow")
        if request.HasField("transaction_id"):
            raise not_implemented("BatchWriteRow in a local transaction")
        total = sum(len(t.rows) for t in request.tables)
        if total > MAX_BATCH_WRITE_ROWS:
            raise parameter_invalid(
                f"Rows count exceeds the upper limit: {MAX_BATCH_WRITE_ROWS}, got {total}."
            )
        _unique_tables([t.table_name for t in request.tables], "BatchWriteRow")
        response = pb.BatchWriteRowResponse()
        with self._store.write() as db:
            for table_request in request.tables:
                out = response.tables.add(table_name=table_request.table_name)
                record = self._store.table(instance, table_request.table_name)
                table = None if record is None else _Table(record)
                if table is not None:
                    keys = [
                        sort_key(
                            _values(table.primary_key(plainbuffer.read_row(r.row_change, "row").primary_key))
                        )
                        for r in table_request.rows
                    ]
                    if len(set(keys)) != len(keys):
                        raise parameter_invalid(
                            f"The input parameter is invalid: BatchWriteRow names a row of table "
                            f"{table.name!r} more than once; write each row once per batch."
                        )
                for row_request in table_request.rows:
                    try:
                        if table is None:
                            raise table_not_exist(table_request.table_name)
                        row = self._write(
                            db, instance, table, row_request.type, row_request.row_change,
                            row_request.condition, row_request.return_content,
                        )  # fmt: skip
                    except OtsError as error:
                        out.rows.add(is_ok=False, error=pb.Error(code=error.code, message=error.message))
                    else:
                        out.rows.add(is_ok=True, consumed=_consumed(write=1), row=row)
        return response

    # --- ranges -----------------------------------------------------------------------------

    def get_range(self, instance: str, body: bytes) -> pb.GetRangeResponse:
        """GetRange: rows between two primary keys, FORWARD or BACKWARD, a page at a time.

        At most ``limit`` rows (and never more than 5000 rows scanned) per call; when rows
        remain, ``next_start_primary_key`` is where the next call starts. Rows the filter drops
        count towards the 5000 scanned, not towards ``limit``.
        """
        request = _parse(pb.GetRangeRequest, body, "GetRange")
        _no_transaction(request)
        table = self._table(instance, request.table_name)
        start = table.primary_key(
            plainbuffer.read_row(request.inclusive_start_primary_key, "start key").primary_key, bounds=True
        )
        end = table.primary_key(
            plainbuffer.read_row(request.exclusive_end_primary_key, "end key").primary_key, bounds=True
        )
        start_key, end_key = sort_key(_values(start)), sort_key(_values(end))
        forward = request.direction == pb.FORWARD
        if forward and not start_key < end_key:
            raise parameter_invalid("Begin key must less than end key in FORWARD.")
        if not forward and not start_key > end_key:
            raise parameter_invalid("Begin key must more than end key in BACKWARD.")
        limit = MAX_RANGE_ROWS
        if request.HasField("limit"):
            if request.limit <= 0:
                raise parameter_invalid(f"The limit must be greater than 0, got {request.limit}.")
            limit = min(request.limit, MAX_RANGE_ROWS)
        read = _ReadOptions.of(request, "GetRange")
        # Without a filter every scanned row is returned, so limit + 1 rows tell whether more remain.
        scan_limit = MAX_RANGE_ROWS + 1 if read.filter is not None else limit + 1
        scanned = self._store.scan(
            instance, table.name, start_key, end_key, forward=forward, limit=scan_limit
        )
        rows: list[tuple[list[tuple[str, PkValue]], list[plainbuffer.Cell]]] = []
        next_start: StoredRow | None = None
        for index, stored in enumerate(scanned):
            if len(rows) == limit or index == MAX_RANGE_ROWS:
                next_start = stored
                break
            selected = read.select(stored)
            if selected is not None:
                rows.append(selected)
        response = pb.GetRangeResponse(
            consumed=_consumed(read=max(1, len(rows))), rows=plainbuffer.write_rows(rows)
        )
        if next_start is not None:
            response.next_start_primary_key = plainbuffer.write_row(next_start.primary_key)
        return response

    # --- the write every put, update and delete shares ----------------------------------------

    def _write(
        self,
        db: Any,
        instance: str,
        table: _Table,
        operation: int,
        row_change: bytes,
        condition: Any,
        return_content: Any,
    ) -> bytes:
        """Check the condition against the stored row, apply the change; the row to return."""
        change = plainbuffer.read_row(row_change, "row")
        primary_key = table.primary_key(change.primary_key)
        _check_change(operation, change)
        key = sort_key(_values(primary_key))
        current = self._store.get_row(db, instance, table.name, key)
        expectation = condition.row_existence
        if operation == pb.DELETE and expectation == pb.EXPECT_NOT_EXIST:
            raise parameter_invalid("Invalid condition: EXPECT_NOT_EXIST while deleting row.")
        if expectation == pb.EXPECT_EXIST and current is None:
            raise condition_check_fail()
        if expectation == pb.EXPECT_NOT_EXIST and current is not None:
            raise condition_check_fail()
        if condition.HasField("column_condition") and condition.column_condition:
            column_condition = conditions.parse(condition.column_condition, "the column condition")
            if not column_condition.passes({} if current is None else current.values()):
                raise condition_check_fail()
        now = int(time.time() * 1000)
        modified: dict[str, tuple[Value, int]] = {}
        if operation == pb.DELETE:
            self._store.delete_row(db, instance, table.name, key)
        else:
            row = StoredRow(
                primary_key, {} if current is None or operation == pb.PUT else dict(current.columns)
            )
            for cell in change.cells:
                _apply(row, cell, now, modified)
            self._store.put_row(db, instance, table.name, key, row)
        return _return_row(primary_key, return_content, modified)


class _Table:
    """A table's schema, for checking the primary keys requests name."""

    def __init__(self, record: TableRecord) -> None:
        meta = pb.TableMeta()
        meta.ParseFromString(record.meta)
        self.record = record
        self.name = record.name
        self.schema = [(c.name, c.type) for c in meta.primary_key]

    def primary_key(
        self, sent: list[tuple[str, PkValue]], *, bounds: bool = False
    ) -> list[tuple[str, PkValue]]:
        """``sent`` checked against the schema (names, order, types; INF_MIN/INF_MAX if ``bounds``)."""
        if len(sent) != len(self.schema):
            raise parameter_invalid(
                f"Validate PK size fail. Input: {len(sent)}, Meta: {len(self.schema)}. Table {self.name!r} "
                f"has the primary key {[n for n, _ in self.schema]}."
            )
        for (name, value), (schema_name, schema_type) in zip(sent, self.schema, strict=True):
            if name != schema_name:
                raise parameter_invalid(
                    f"Validate PK name fail. Input: {name}, Meta: {schema_name}. Table {self.name!r} has "
                    f"the primary key {[n for n, _ in self.schema]}, in that order."
                )
            if isinstance(value, Bound):
                if bounds and value in (INF_MIN, INF_MAX):
                    continue
                raise parameter_invalid(
                    f"Primary key column {name!r} holds {value.name}, which only a GetRange bound may."
                )
            if type(value) is not PK_TYPES[schema_type]:
                raise parameter_invalid(
                    f"Validate PK type fail. Input: {_type_name(value)}, Meta: {PK_TYPE_NAMES[schema_type]} "
                    f"(column {name!r} of table {self.name!r}). The Python SDK sends str as STRING and "
                    "bytearray as BINARY."
                )
            if _size(value) > MAX_PRIMARY_KEY_VALUE_BYTES:
                raise parameter_invalid(
                    f"The primary key column {name!r} is {_size(value)} bytes; Tablestore takes at most "
                    f"{MAX_PRIMARY_KEY_VALUE_BYTES}."
                )
        return sent


class _ReadOptions:
    """What a read returns of a row: ``columns_to_get``, a column range, a time range, a filter."""

    def __init__(self, request: Any, api: str) -> None:
        self.columns = set(request.columns_to_get)
        if len(request.columns_to_get) > MAX_COLUMNS_TO_GET:
            raise parameter_invalid(
                f"{api}: columns_to_get names {len(request.columns_to_get)} columns; Tablestore takes at most "
                f"{MAX_COLUMNS_TO_GET}."
            )
        self.start_column = request.start_column if request.HasField("start_column") else None
        self.end_column = request.end_column if request.HasField("end_column") else None
        self.time_range = request.time_range if request.HasField("time_range") else None
        if request.HasField("max_versions") and request.max_versions <= 0:
            raise parameter_invalid(
                f"{api}: max_versions must be greater than 0, got {request.max_versions}."
            )
        if not request.HasField("max_versions") and self.time_range is None:
            raise parameter_invalid(f"{api}: either max_versions or time_range must be given.")
        self.filter = (
            conditions.parse(request.filter, f"the column filter of {api}")
            if request.HasField("filter") and request.filter
            else None
        )

    @classmethod
    def of(cls, request: Any, api: str) -> _ReadOptions:
        return cls(request, api)

    def _in_time_range(self, timestamp: int) -> bool:
        window = self.time_range
        if window is None:
            return True
        if window.HasField("specific_time"):
            return bool(timestamp == window.specific_time)
        start = window.start_time if window.HasField("start_time") else 0
        end = window.end_time if window.HasField("end_time") else 2**63 - 1
        return bool(start <= timestamp < end)

    def select(
        self, stored: StoredRow | None
    ) -> tuple[list[tuple[str, PkValue]], list[plainbuffer.Cell]] | None:
        if stored is None:
            return None
        if self.filter is not None and not self.filter.passes(stored.values()):
            return None
        cells = [
            cell
            for cell in stored.cells()
            if (not self.columns or cell.name in self.columns)
            and (self.start_column is None or cell.name >= self.start_column)
            and (self.end_column is None or cell.name < self.end_column)
            and self._in_time_range(cell.timestamp or 0)
        ]
        asks_for_key = any(name in self.columns for name, _ in stored.primary_key)
        if self.columns and not cells and not asks_for_key:
            return None
        return stored.primary_key, cells

    def render(self, stored: StoredRow | None) -> bytes:
        selected = self.select(stored)
        return b"" if selected is None else plainbuffer.write_row(*selected)


def _json(status: int, value: object) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(value).encode())


def _parse(message_type: Callable[[], Any], body: bytes, api: str) -> Any:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as error:
        raise parameter_invalid(f"The {api} request body is not a valid protobuf message: {error}.") from None
    return message


def _check_name(name: str, what: str) -> None:
    if not NAME.match(name):
        raise parameter_invalid(
            f"Invalid {what} name: {name!r}. Names are 1-255 letters, digits and underscores, not "
            "starting with a digit."
        )


def _no_transaction(request: Any) -> None:
    if request.HasField("transaction_id"):
        raise not_implemented("Local transactions (transaction_id)")


def _unique_tables(names: list[str], api: str) -> None:
    if len(set(names)) != len(names):
        raise parameter_invalid(f"{api} names a table more than once; put all rows of a table in one entry.")


def _table_options(sent: Any) -> pb.TableOptions:
    options = pb.TableOptions(
        time_to_live=DEFAULT_TIME_TO_LIVE,
        max_versions=DEFAULT_MAX_VERSIONS,
        deviation_cell_version_in_sec=DEFAULT_DEVIATION_SECONDS,
        allow_update=True,
    )
    if sent is not None:
        options.MergeFrom(sent)
    if options.time_to_live != -1 and options.time_to_live < 86400:
        raise parameter_invalid(
            f"time_to_live must be -1 or at least 86400 seconds, got {options.time_to_live}."
        )
    if options.max_versions < 1:
        raise parameter_invalid(f"max_versions must be at least 1, got {options.max_versions}.")
    return options


def _values(primary_key: list[tuple[str, PkValue]]) -> list[PkValue]:
    return [value for _, value in primary_key]


def _type_name(value: object) -> str:
    return {int: "INTEGER", str: "STRING", bytes: "BINARY", bool: "BOOLEAN", float: "DOUBLE"}.get(
        type(value), type(value).__name__
    )


def _size(value: Value) -> int:
    if isinstance(value, str):
        return len(value.encode())
    return len(value) if isinstance(value, bytes) else 8


def _consumed(*, read: int = 0, write: int = 0) -> pb.ConsumedCapacity:
    return pb.ConsumedCapacity(capacity_unit=pb.CapacityUnit(read=read, write=write))


def _check_change(operation: int, change: ParsedRow) -> None:
    if operation == pb.DELETE:
        if change.cells:
            raise parameter_invalid("A DeleteRow change must not carry attribute columns.")
        return
    if operation not in (pb.PUT, pb.UPDATE):
        raise parameter_invalid(f"Unknown row operation type {operation}.")
    if change.delete_marker:
        raise parameter_invalid("A put or update must not carry a delete-row marker.")
    if len(change.cells) > MAX_COLUMNS_PER_WRITE:
        raise parameter_invalid(
            f"A row change holds {len(change.cells)} columns; Tablestore takes at most {MAX_COLUMNS_PER_WRITE}."
        )
    names: set[str] = set()
    for cell in change.cells:
        _check_name(cell.name, "attribute column")
        if cell.value is not None and _size(cell.value) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise parameter_invalid(
                f"Column {cell.name!r} is {_size(cell.value)} bytes; Tablestore takes at most "
                f"{MAX_ATTRIBUTE_VALUE_BYTES} per value."
            )
        if operation == pb.PUT and (cell.op is not CellOp.PUT or cell.value is None):
            raise parameter_invalid(f"PutRow column {cell.name!r} must have a value and no update type.")
        if operation == pb.UPDATE and cell.op in (CellOp.PUT, CellOp.INCREMENT) and cell.value is None:
            raise parameter_invalid(f"UpdateRow column {cell.name!r} is put without a value.")
        if cell.op is CellOp.INCREMENT and (type(cell.value) is not int or cell.timestamp is not None):
            raise parameter_invalid(f"INCREMENT of column {cell.name!r} takes an integer and no timestamp.")
        if operation == pb.PUT and cell.name in names:
            raise parameter_invalid(f"Duplicated attribute column name: {cell.name!r}.")
        names.add(cell.name)


def _apply(row: StoredRow, cell: plainbuffer.Cell, now: int, modified: dict[str, tuple[Value, int]]) -> None:
    """Apply one cell of a change that :func:`_check_change` has passed."""
    kept = row.columns.get(cell.name)
    if cell.op is CellOp.PUT:
        assert cell.value is not None  # a put without a value was refused by _check_change
        timestamp = now if cell.timestamp is None else cell.timestamp
        if kept is None or timestamp >= kept[1]:  # only the latest version is kept
            row.columns[cell.name] = (cell.value, timestamp)
    elif cell.op is CellOp.DELETE_ALL_VERSIONS:
        row.columns.pop(cell.name, None)
    elif cell.op is CellOp.DELETE_ONE_VERSION:
        if kept is not None and (cell.timestamp is None or cell.timestamp == kept[1]):
            del row.columns[cell.name]
    else:  # INCREMENT
        if kept is not None and type(kept[0]) is not int:
            raise parameter_invalid(
                f"INCREMENT of column {cell.name!r}, which holds a {_type_name(kept[0])}."
            )
        assert isinstance(cell.value, int)  # a non-integer increment was refused by _check_change
        total = (0 if kept is None else int(kept[0])) + cell.value
        row.columns[cell.name] = modified[cell.name] = (total, now)


def _return_row(
    primary_key: list[tuple[str, PkValue]], return_content: Any, modified: Mapping[str, tuple[Value, int]]
) -> bytes:
    kind = return_content.return_type if return_content.HasField("return_type") else pb.RT_NONE
    if kind == pb.RT_PK:
        return plainbuffer.write_row(primary_key)
    if kind == pb.RT_AFTER_MODIFY:
        wanted = set(return_content.return_column_names)
        cells = [
            plainbuffer.Cell(name, value, ts)
            for name, (value, ts) in sorted(modified.items())
            if not wanted or name in wanted
        ]
        return plainbuffer.write_row(primary_key, cells)
    return b""

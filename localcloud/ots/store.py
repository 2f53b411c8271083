"""The local Tablestore's state in one SQLite file: instances, tables and rows.

Every change is committed (WAL, ``synchronous=FULL``, see :mod:`localcloud.core.sqlite`) before
the request that made it is answered, so an acknowledged write survives kill -9.

A row is kept as its PlainBuffer bytes (primary key and attribute cells with their timestamps)
under a sort key built from its primary key so that SQLite's byte order is Tablestore's row
order: per column, INTEGER as signed 64-bit, STRING and BINARY by their bytes, earlier columns
first. Each column is encoded as ``0x01`` + an order-preserving payload, so a range bound that
is INF_MIN at column *i* is the prefix + ``0x00`` and INF_MAX the prefix + ``0x02``.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from localcloud.core.sqlite import Database
from localcloud.ots import plainbuffer
from localcloud.ots.plainbuffer import INF_MAX, INF_MIN, Bound, Cell, PkValue, Value

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    name TEXT PRIMARY KEY,
    create_time INTEGER NOT NULL
);
-- meta and options are the protobuf TableMeta and TableOptions the table was created with.
CREATE TABLE IF NOT EXISTS tables (
    instance TEXT NOT NULL,
    name TEXT NOT NULL,
    meta BLOB NOT NULL,
    options BLOB NOT NULL,
    read_cu INTEGER NOT NULL,
    write_cu INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (instance, name)
);
CREATE TABLE IF NOT EXISTS rows (
    instance TEXT NOT NULL,
    table_name TEXT NOT NULL,
    sort_key BLOB NOT NULL,
    row BLOB NOT NULL,
    PRIMARY KEY (instance, table_name, sort_key)
) WITHOUT ROWID;
"""

#: The instance every local Tablestore has from the start (endpoints.json's ``ots_instance``).
DEFAULT_INSTANCE = "immflow"


@dataclass
class StoredRow:
    """A row as kept: its primary key in schema order and the latest version of each column."""

    primary_key: list[tuple[str, PkValue]]
    #: column name -> (value, timestamp in ms)
    columns: dict[str, tuple[Value, int]] = field(default_factory=dict)

    def values(self) -> dict[str, Value]:
        """What a column condition or filter sees: primary key and attribute columns by name."""
        values: dict[str, Value] = {name: value for name, (value, _) in self.columns.items()}
        values.update((name, value) for name, value in self.primary_key if not isinstance(value, Bound))
        return values

    def cells(self) -> list[Cell]:
        return [Cell(name, value, ts) for name, (value, ts) in sorted(self.columns.items())]


@dataclass(frozen=True)
class TableRecord:
    name: str
    meta: bytes
    options: bytes
    read_cu: int
    write_cu: int
    create_time: int


def _encode_column(value: PkValue) -> bytes:
    if isinstance(value, Bound):
        return b"\x00" if value is INF_MIN else b"\x02"
    if isinstance(value, int):
        return b"\x01" + struct.pack(">Q", value + (1 << 63))
    raw = value.encode() if isinstance(value, str) else value
    return b"\x01" + raw.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def sort_key(values: list[PkValue]) -> bytes:
    """The byte string whose order is the row order; a bound stops the key at its column."""
    out = bytearray()
    for value in values:
        out += _encode_column(value)
        if value is INF_MIN or value is INF_MAX:
            break
    return bytes(out)


class Store(Database):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "ots.sqlite3", SCHEMA)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO instances VALUES (?, ?)", (DEFAULT_INSTANCE, int(time.time())))

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self.transaction() as db:
            yield db

    def read(self) -> sqlite3.Connection:
        """The connection for reads; hold :attr:`lock` while using it."""
        return self._connection

    # --- instances --------------------------------------------------------------------------

    def instance_exists(self, name: str) -> bool:
        return self.one("SELECT 1 FROM instances WHERE name = ?", name) is not None

    def instance_names(self) -> list[str]:
        return [r[0] for r in self.all("SELECT name FROM instances ORDER BY name")]

    def create_instance(self, name: str) -> bool:
        """Add an instance; False when it already exists."""
        with self.transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO instances VALUES (?, ?)", (name, int(time.time())))
            return cursor.rowcount == 1

    # --- tables -----------------------------------------------------------------------------

    def table(self, instance: str, name: str) -> TableRecord | None:
        row = self.one(
            "SELECT name, meta, options, read_cu, write_cu, create_time FROM tables "
            "WHERE instance = ? AND name = ?",
            instance,
            name,
        )
        return None if row is None else TableRecord(*row)

    def table_names(self, instance: str) -> list[str]:
        return [r[0] for r in self.all("SELECT name FROM tables WHERE instance = ? ORDER BY name", instance)]

    def create_table(self, instance: str, record: TableRecord) -> bool:
        """False when a table of that name exists."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO tables VALUES (?, ?, ?, ?, ?, ?, ?)",
                (instance, record.name, record.meta, record.options, record.read_cu, record.write_cu,
                 record.create_time),
            )  # fmt: skip
            return cursor.rowcount == 1

    def delete_table(self, instance: str, name: str) -> bool:
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM tables WHERE instance = ? AND name = ?", (instance, name))
            db.execute("DELETE FROM rows WHERE instance = ? AND table_name = ?", (instance, name))
            return cursor.rowcount == 1

    # --- rows -------------------------------------------------------------------------------

    def get_row(self, db: sqlite3.Connection, instance: str, table: str, key: bytes) -> StoredRow | None:
        found = db.execute(
            "SELECT row FROM rows WHERE instance = ? AND table_name = ? AND sort_key = ?",
            (instance, table, key),
        ).fetchone()
        return None if found is None else _decode(found[0])

    def put_row(self, db: sqlite3.Connection, instance: str, table: str, key: bytes, row: StoredRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
            (instance, table, key, plainbuffer.write_row(row.primary_key, row.cells())),
        )

    def delete_row(self, db: sqlite3.Connection, instance: str, table: str, key: bytes) -> None:
        db.execute(
            "DELETE FROM rows WHERE instance = ? AND table_name = ? AND sort_key = ?", (instance, table, key)
        )

    def scan(
        self, instance: str, table: str, start: bytes, end: bytes, *, forward: bool, limit: int
    ) -> list[StoredRow]:
        """Rows from ``start`` (inclusive) towards ``end`` (exclusive), at most ``limit``."""
        if forward:
            sql = "sort_key >= ? AND sort_key < ? ORDER BY sort_key ASC"
        else:
            sql = "sort_key <= ? AND sort_key > ? ORDER BY sort_key DESC"
        found = self.all(
            f"SELECT row FROM rows WHERE instance = ? AND table_name = ? AND {sql} LIMIT ?",
            instance,
            table,
            start,
            end,
            limit,
        )
        return [_decode(r[0]) for r in found]


def _decode(data: bytes) -> StoredRow:
    parsed = plainbuffer.read_row(data, "stored row")
    columns = {c.name: (c.value, c.timestamp or 0) for c in parsed.cells if c.value is not None}
    return StoredRow(parsed.primary_key, columns)

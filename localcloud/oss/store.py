"""Durable OSS state: object bytes in id-named files, everything else in one SQLite database.

Layout under ``state_dir/"oss"``: ``meta.sqlite`` (WAL, ``synchronous=FULL``) and
``data/<2 hex>/<32 hex>`` files. File names are random ids, never derived from keys, so no key
can name a path outside ``data``. A write is acknowledged only after its bytes are in a
temporary file that was fsynced and renamed into place (folder fsynced too) *and* the metadata
row pointing at it is committed; the event rows of that write are committed in the same
transaction. A crash in between leaves at most an unreferenced file, which :meth:`Store.sweep`
removes on the next start.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import BinaryIO

from localcloud.core.durable import fsync_dir
from localcloud.core.sqlite import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, created REAL NOT NULL, storage_class TEXT NOT NULL, acl TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, data_id TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, crc64 TEXT NOT NULL, content_type TEXT NOT NULL, stored_headers TEXT NOT NULL,
    object_type TEXT NOT NULL, last_modified REAL NOT NULL,
    PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, initiated REAL NOT NULL,
    content_type TEXT NOT NULL, stored_headers TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, data_id TEXT NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, crc64 TEXT NOT NULL, last_modified REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number));
CREATE TABLE IF NOT EXISTS triggers (
    name TEXT PRIMARY KEY, bucket TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, trigger_name TEXT NOT NULL, target TEXT NOT NULL,
    payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
    created REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '');
"""


#: Columns added after the first release, with their defaults: a state folder made before them
#: gets them on open (``ALTER TABLE ... ADD COLUMN``), its objects reading as the defaults say.
_ADDED_COLUMNS = {
    "objects": {
        "storage_class": "TEXT NOT NULL DEFAULT 'Standard'",
        # JSON object of the tags, in the order they were set.
        "tags": "TEXT NOT NULL DEFAULT '{}'",
        "acl": "TEXT NOT NULL DEFAULT 'default'",
        # The target key of a symlink (object_type 'Symlink'); NULL for every other object.
        "symlink_target": "TEXT",
        # RestoreObject of an Archive/ColdArchive object: when the restored copy becomes readable
        # and when it expires again (epoch seconds); NULL when no restore was asked for.
        "restore_ready": "REAL",
        "restore_expiry": "REAL",
    },
    "uploads": {
        "storage_class": "TEXT NOT NULL DEFAULT 'Standard'",
        "tags": "TEXT NOT NULL DEFAULT '{}'",
        "acl": "TEXT NOT NULL DEFAULT 'default'",
    },
}

#: Every column of ``objects``, in the order :meth:`Store.put_object_row` takes them.
OBJECT_COLUMNS = (
    "bucket",
    "key",
    "data_id",
    "size",
    "etag",
    "crc64",
    "content_type",
    "stored_headers",
    "object_type",
    "last_modified",
    *_ADDED_COLUMNS["objects"],
)


class Store(Database):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(root / "meta.sqlite", _SCHEMA)
        with self.transaction() as db:
            for table, columns in _ADDED_COLUMNS.items():
                present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
                for name, definition in columns.items():
                    if name not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    # --- rows ---------------------------------------------------------------------------------

    def put_object_row(self, row: dict[str, object]) -> None:
        """Insert or replace one ``objects`` row; ``row`` names every column of OBJECT_COLUMNS."""
        marks = ", ".join("?" * len(OBJECT_COLUMNS))
        self._execute(
            f"INSERT OR REPLACE INTO objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({marks})",
            *(row[name] for name in OBJECT_COLUMNS),
        )

    def _execute(self, sql: str, *args: object) -> int:
        """Run one write statement (inside the caller's :meth:`transaction`); the rows it changed."""
        with self.lock:
            return self._connection.execute(sql, args).rowcount

    # --- buckets ------------------------------------------------------------------------------

    def bucket_row(self, name: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM buckets WHERE name = ?", name)

    def list_buckets(self, prefix: str, marker: str, limit: int) -> list[sqlite3.Row]:
        return self.all(
            "SELECT * FROM buckets WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
            marker,
            len(prefix),
            prefix,
            limit,
        )

    def add_bucket(self, name: str, created: float, storage_class: str, acl: str) -> None:
        self._execute("INSERT INTO buckets VALUES (?, ?, ?, ?)", name, created, storage_class, acl)

    def bucket_in_use(self, name: str) -> bool:
        """Whether the bucket holds objects or multipart uploads."""
        return (
            self.one(
                "SELECT 1 FROM objects WHERE bucket = ? UNION ALL SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1",
                name,
                name,
            )
            is not None
        )

    def remove_bucket(self, name: str) -> None:
        """The bucket and its triggers (deleting a bucket deletes its notification rules)."""
        self._execute("DELETE FROM buckets WHERE name = ?", name)
        self._execute("DELETE FROM triggers WHERE bucket = ?", name)

    def set_bucket_acl(self, name: str, acl: str) -> bool:
        return self._execute("UPDATE buckets SET acl = ? WHERE name = ?", acl, name) > 0

    # --- triggers and deliveries --------------------------------------------------------------

    def trigger_configs(self) -> list[sqlite3.Row]:
        return self.all("SELECT name, config FROM triggers")

    def put_trigger(self, name: str, bucket: str, config: str) -> None:
        self._execute("INSERT OR REPLACE INTO triggers VALUES (?, ?, ?)", name, bucket, config)

    def remove_trigger(self, name: str) -> bool:
        return self._execute("DELETE FROM triggers WHERE name = ?", name) > 0

    def add_delivery(self, trigger_name: str, target: str, payload: bytes, now: float) -> None:
        self._execute(
            "INSERT INTO deliveries (trigger_name, target, payload, next_attempt, created) VALUES (?, ?, ?, ?, ?)",
            trigger_name,
            target,
            payload,
            now,
            now,
        )

    def count_deliveries(self) -> int:
        row = self.one("SELECT COUNT(*) FROM deliveries")
        return int(row[0]) if row else 0

    def next_delivery(self, now: float, busy: list[int]) -> sqlite3.Row | None:
        """The queued event due first, leaving out those being sent (``busy`` ids)."""
        marks = ",".join("?" * len(busy))
        return self.one(
            f"SELECT * FROM deliveries WHERE next_attempt <= ? AND id NOT IN ({marks}) "
            "ORDER BY next_attempt, id LIMIT 1",
            now,
            *busy,
        )

    def next_attempt_time(self, busy: list[int]) -> float | None:
        marks = ",".join("?" * len(busy))
        row = self.one(f"SELECT MIN(next_attempt) FROM deliveries WHERE id NOT IN ({marks})", *busy)
        return None if row is None or row[0] is None else float(row[0])

    def remove_delivery(self, delivery_id: int) -> None:
        self._execute("DELETE FROM deliveries WHERE id = ?", delivery_id)

    def retry_delivery(self, delivery_id: int, attempts: int, next_attempt: float, error: str) -> None:
        self._execute(
            "UPDATE deliveries SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?",
            attempts,
            next_attempt,
            error,
            delivery_id,
        )

    # --- objects ------------------------------------------------------------------------------

    def object_row(self, bucket: str, key: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM objects WHERE bucket = ? AND key = ?", bucket, key)

    def remove_object(self, bucket: str, key: str) -> None:
        self._execute("DELETE FROM objects WHERE bucket = ? AND key = ?", bucket, key)

    def objects_from(self, bucket: str, bound: str, inclusive: bool, limit: int) -> list[sqlite3.Row]:
        """Up to ``limit`` objects of the bucket from ``bound`` on, in key order."""
        op = ">=" if inclusive else ">"
        return self.all(
            f"SELECT * FROM objects WHERE bucket = ? AND key {op} ? ORDER BY key LIMIT ?",
            bucket,
            bound,
            limit,
        )

    # --- multipart uploads --------------------------------------------------------------------

    def upload_row(
        self, upload_id: str, bucket: str | None = None, key: str | None = None
    ) -> sqlite3.Row | None:
        """The upload, if it exists (and, when given, belongs to ``bucket``/``key``)."""
        row = self.one("SELECT * FROM uploads WHERE upload_id = ?", upload_id)
        if row is None or (bucket is not None and (row["bucket"], row["key"]) != (bucket, key)):
            return None
        return row

    def add_upload(self, row: dict[str, object]) -> None:
        columns = list(row)
        self._execute(
            f"INSERT INTO uploads ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            *row.values(),
        )

    def remove_upload(self, upload_id: str) -> list[str]:
        """Forget the upload and its parts; the parts' data ids, for the caller to remove."""
        part_ids = [
            r["data_id"] for r in self.all("SELECT data_id FROM parts WHERE upload_id = ?", upload_id)
        ]
        self._execute("DELETE FROM parts WHERE upload_id = ?", upload_id)
        self._execute("DELETE FROM uploads WHERE upload_id = ?", upload_id)
        return part_ids

    def part_row(self, upload_id: str, number: int) -> sqlite3.Row | None:
        return self.one("SELECT * FROM parts WHERE upload_id = ? AND part_number = ?", upload_id, number)

    def put_part(
        self, upload_id: str, number: int, data_id: str, size: int, etag: str, crc: int, now: float
    ) -> None:
        self._execute(
            "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)",
            upload_id,
            number,
            data_id,
            size,
            etag,
            str(crc),
            now,
        )

    def parts(self, upload_id: str, after: int = 0, limit: int = -1) -> list[sqlite3.Row]:
        """The upload's parts numbered above ``after``, in order (``limit`` -1: all)."""
        return self.all(
            "SELECT * FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            upload_id,
            after,
            limit,
        )

    def list_uploads(self, bucket: str, prefix: str, key_marker: str, id_marker: str) -> list[sqlite3.Row]:
        """A bucket's multipart uploads after the markers, by key and then by upload id."""
        return self.all(
            "SELECT * FROM uploads WHERE bucket = ? AND substr(key, 1, ?) = ? "
            "AND (key > ? OR (key = ? AND ? != '' AND upload_id > ?)) ORDER BY key, upload_id",
            bucket,
            len(prefix),
            prefix,
            key_marker,
            key_marker,
            id_marker,
            id_marker,
        )

    def set_object_columns(self, bucket: str, key: str, **values: object) -> None:
        """Change some of an object's attribute columns (tags, acl, restore times) in place."""
        allowed = {"tags", "acl", "restore_ready", "restore_expiry"}
        if not values or set(values) - allowed:
            raise ValueError(f"only {sorted(allowed)} can be changed in place, not {sorted(values)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.transaction():
            self._execute(
                f"UPDATE objects SET {assignments} WHERE bucket = ? AND key = ?",
                *values.values(),
                bucket,
                key,
            )

    # --- object bytes -------------------------------------------------------------------------

    def data_path(self, data_id: str) -> Path:
        return self.data_dir / data_id[:2] / data_id

    def new_data(self) -> NewData:
        """A data file to write in pieces; see :class:`NewData`."""
        return NewData(self, self.data_dir / f".tmp-{secrets.token_hex(8)}")

    def _install(self, tmp: Path) -> str:
        data_id = secrets.token_hex(16)
        final = self.data_path(data_id)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return data_id

    def write_data(self, data: bytes) -> str:
        """Store ``data`` durably under a new id and return the id."""
        with self.new_data() as new:
            new.write(data)
            return new.install()

    def concat_data(self, sources: list[tuple[BinaryIO, int]]) -> str:
        """A new data file holding ``size`` bytes of each open source in turn (multipart, copy)."""
        with self.new_data() as new:
            for src, size in sources:
                new.copy_from(src, size)
            return new.install()

    def open_data(self, data_id: str) -> BinaryIO:
        with self.lock:
            return open(self.data_path(data_id), "rb")

    def append_data(self, data_id: str, committed_size: int, source: BinaryIO, size: int) -> None:
        """Append ``size`` bytes of ``source`` in place after ``committed_size`` bytes.

        Bytes past the committed size are leftovers of an append whose metadata never committed
        (crash); they are cut off first. Readers never read past the committed size.
        """
        with open(self.data_path(data_id), "r+b") as f:
            f.truncate(committed_size)
            f.seek(committed_size)
            _copy(source, f, size)
            f.flush()
            os.fsync(f.fileno())

    def remove_data(self, data_ids: list[str]) -> None:
        # Under the lock so that a reader between "look up the row" and "open the file" (see
        # open_object) never finds the file gone; an open file stays readable after unlink.
        with self.lock:
            for data_id in data_ids:
                self.data_path(data_id).unlink(missing_ok=True)

    def open_object(self, bucket: str, key: str) -> tuple[sqlite3.Row, BinaryIO] | None:
        with self.lock:
            row = self.object_row(bucket, key)
            if row is None:
                return None
            return row, open(self.data_path(row["data_id"]), "rb")

    def sweep(self) -> int:
        """Remove data files no row refers to (left by a crash between write and commit)."""
        referenced = {
            row[0] for row in self.all("SELECT data_id FROM objects UNION SELECT data_id FROM parts")
        }
        removed = 0
        for path in self.data_dir.rglob("*"):
            if path.is_file() and path.name not in referenced:
                path.unlink()
                removed += 1
        return removed


class NewData:
    """A data file being written: a temporary file in the store's folder that becomes a data id
    only through :meth:`install` (fsync, rename, folder fsync), so a crash or a refused body
    leaves no visible object; leaving the ``with`` block without installing removes it (what a
    crash leaves behind, :meth:`Store.sweep` removes)."""

    def __init__(self, store: Store, path: Path) -> None:
        self._store = store
        self.path = path
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 (closed by install/discard)
        self.size = 0

    def write(self, data: bytes, *, sync: bool = False) -> None:
        """Append ``data``; ``sync`` flushes it to disk too (the last piece, so that the fsync
        runs beside the caller's hashing instead of after it, in :meth:`install`)."""
        assert self._file is not None, "write after install or discard"
        self._file.write(data)
        self.size += len(data)
        if sync:
            self._file.flush()
            os.fsync(self._file.fileno())

    def copy_from(self, source: BinaryIO, size: int) -> None:
        assert self._file is not None, "write after install or discard"
        _copy(source, self._file, size)
        self.size += size

    def reader(self) -> BinaryIO:
        """The bytes written so far, from the start (before :meth:`install` or :meth:`discard`)."""
        assert self._file is not None, "read after install or discard"
        self._file.flush()
        return open(self.path, "rb")

    def install(self) -> str:
        """Make the file durable under a new data id and return the id."""
        assert self._file is not None, "install twice or after discard"
        file, self._file = self._file, None
        with file:
            file.flush()
            os.fsync(file.fileno())
        return self._store._install(self.path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> NewData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _copy(source: BinaryIO, out: BinaryIO, size: int) -> None:
    remaining = size
    while remaining:
        chunk = source.read(min(remaining, 1 << 20))
        if not chunk:
            raise OSError(f"data file ended {remaining} bytes early")
        out.write(chunk)
        remaining -= len(chunk)

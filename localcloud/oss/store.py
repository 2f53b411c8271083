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

    @staticmethod
    def put_object_row(db: sqlite3.Connection, row: dict[str, object]) -> None:
        """Insert or replace one ``objects`` row; ``row`` names every column of OBJECT_COLUMNS."""
        marks = ", ".join("?" * len(OBJECT_COLUMNS))
        db.execute(
            f"INSERT OR REPLACE INTO objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({marks})",
            tuple(row[name] for name in OBJECT_COLUMNS),
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
        with self.transaction() as db:
            db.execute(
                f"UPDATE objects SET {assignments} WHERE bucket = ? AND key = ?",
                (*values.values(), bucket, key),
            )

    # --- object bytes -------------------------------------------------------------------------

    def data_path(self, data_id: str) -> Path:
        return self.data_dir / data_id[:2] / data_id

    def _install(self, tmp: Path) -> str:
        data_id = secrets.token_hex(16)
        final = self.data_path(data_id)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return data_id

    def _tmp_path(self) -> Path:
        return self.data_dir / f".tmp-{secrets.token_hex(8)}"

    def write_data(self, data: bytes) -> str:
        """Store ``data`` durably under a new id and return the id."""
        tmp = self._tmp_path()
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return self._install(tmp)

    def concat_data(self, sources: list[tuple[BinaryIO, int]]) -> str:
        """A new data file holding ``size`` bytes of each open source in turn (multipart, copy)."""
        tmp = self._tmp_path()
        with open(tmp, "wb") as out:
            for src, size in sources:
                remaining = size
                while remaining:
                    chunk = src.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise OSError(f"data file ended {remaining} bytes early")
                    out.write(chunk)
                    remaining -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return self._install(tmp)

    def open_data(self, data_id: str) -> BinaryIO:
        with self.lock:
            return open(self.data_path(data_id), "rb")

    def append_data(self, data_id: str, committed_size: int, data: bytes) -> None:
        """Append in place after ``committed_size`` bytes.

        Bytes past the committed size are leftovers of an append whose metadata never committed
        (crash); they are cut off first. Readers never read past the committed size.
        """
        with open(self.data_path(data_id), "r+b") as f:
            f.truncate(committed_size)
            f.seek(committed_size)
            f.write(data)
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
            row = self.one("SELECT * FROM objects WHERE bucket = ? AND key = ?", bucket, key)
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

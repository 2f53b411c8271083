"""The MNS state in one SQLite file, shared by queues, topics and pushes.

Every change is committed (WAL, ``synchronous=FULL``) before the request that made it is
answered, so an acknowledged message survives kill -9. One lock guards the connection; its
condition variable :attr:`~localcloud.core.sqlite.Database.changed` wakes long polls and the push
dispatcher whenever anything changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from localcloud.core.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    visibility_timeout INTEGER NOT NULL,
    maximum_message_size INTEGER NOT NULL,
    message_retention_period INTEGER NOT NULL,
    delay_seconds INTEGER NOT NULL,
    polling_wait_seconds INTEGER NOT NULL,
    logging_enabled INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    last_modify_time INTEGER NOT NULL
);
-- Times in epoch ms. A message is visible when visible_at <= now; receipt_handle is the
-- handle of its latest receive (NULL before the first).
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    body_md5 TEXT NOT NULL,
    priority INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    user_properties TEXT NOT NULL,
    enqueue_time INTEGER NOT NULL,
    first_dequeue_time INTEGER NOT NULL,
    dequeue_count INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receipt_handle TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, priority, seq);
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    maximum_message_size INTEGER NOT NULL,
    logging_enabled INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    last_modify_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS topic_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    body_md5 TEXT NOT NULL,
    tag TEXT NOT NULL,
    attributes TEXT NOT NULL,
    user_properties TEXT NOT NULL,
    publish_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS topic_messages_by_topic ON topic_messages (topic, publish_time);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    filter_tag TEXT NOT NULL,
    notify_strategy TEXT NOT NULL,
    notify_content_format TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    last_modify_time INTEGER NOT NULL,
    PRIMARY KEY (topic, name)
);
-- A push not yet accepted by its endpoint; rendered at publish time, retried from here.
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    subscription TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    notify_strategy TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at, id);
CREATE TABLE IF NOT EXISTS account_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store(Database):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "mns.sqlite3", SCHEMA)

    def read(self) -> sqlite3.Connection:
        """The connection for reads; hold :attr:`lock` while using it."""
        return self._connection

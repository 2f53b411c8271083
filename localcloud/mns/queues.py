"""Queues and their messages: visibility, delay, priority, retention and long polling.

Semantics (MNS docs and docs/mns.md):
- Receive hands out the visible message with the lowest Priority number (1..16, default 8),
  oldest first within a priority, makes it invisible for the queue's VisibilityTimeout, counts
  the dequeue and issues a new receipt handle. A message leaves the queue only by DeleteMessage
  or when it is older than MessageRetentionPeriod.
- A receipt handle is valid only until the message's NextVisibleTime and only if it is the
  latest one issued: an older or expired handle gets 404 MessageNotExist (as the cloud answers
  "message not exist" for a handle used after the visibility timeout), a handle that is not
  one of ours at all gets 400 ReceiptHandleError.
- Long polling waits on the store's condition variable until a message can be handed out,
  waking for new messages and at the next time a delayed or invisible one becomes visible.

Bodies are stored exactly as sent (the SDK base64-encodes them by default); MessageBodyMD5 is
taken over that stored text.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from localcloud.mns.errors import (
    MnsError,
    invalid_argument,
    message_not_exist,
    queue_not_exist,
    receipt_handle_error,
)
from localcloud.mns.store import Store
from localcloud.mns.wire import body_md5

#: Queue names: a letter or digit, then letters, digits or hyphens, at most 120 characters.
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
MAX_QUEUE_NAME_LENGTH = 120
#: Documented ranges of the queue attributes, by their wire names.
ATTRIBUTE_RANGES = {
    "VisibilityTimeout": (1, 43200),
    "MaximumMessageSize": (1024, 65536),
    "MessageRetentionPeriod": (60, 604800),
    "DelaySeconds": (0, 604800),
    "PollingWaitSeconds": (0, 30),
}
DEFAULT_PRIORITY = 8
MAX_BATCH = 16
MAX_WAIT_SECONDS = 30
_RECEIPT_HANDLE = re.compile(r"(\d+)-[A-Za-z0-9_-]{16}")


@dataclass(frozen=True)
class QueueAttributes:
    visibility_timeout: int = 30
    maximum_message_size: int = 65536
    message_retention_period: int = 345600
    delay_seconds: int = 0
    polling_wait_seconds: int = 0
    logging_enabled: bool = False

    def updated(self, changes: dict[str, int | bool]) -> QueueAttributes:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class QueueInfo:
    name: str
    attributes: QueueAttributes
    create_time: int
    last_modify_time: int
    active_messages: int
    inactive_messages: int
    delay_messages: int


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    delay_seconds: int | None = None
    priority: int | None = None
    group_id: str = ""
    user_properties: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    body: str
    body_md5: str
    priority: int
    group_id: str
    user_properties: list[dict[str, str]]
    enqueue_time: int
    first_dequeue_time: int
    dequeue_count: int
    #: Set by receive, ``None`` for peek.
    receipt_handle: str | None
    next_visible_time: int | None


def check_queue_name(name: str) -> None:
    if len(name) > MAX_QUEUE_NAME_LENGTH:
        raise MnsError(
            400, "QueueNameLengthError", f"The queue name is {len(name)} characters, more than 120: {name!r}."
        )
    if not QUEUE_NAME.fullmatch(name):
        raise MnsError(
            400,
            "InvalidQueueName",
            f"The queue name {name!r} is invalid: use letters, digits and hyphens, starting with a letter or digit.",
        )


class Queues:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- queues -----------------------------------------------------------------------------

    def create(self, name: str, changes: dict[str, int | bool]) -> bool:
        """Create the queue; ``False`` if it already exists with exactly these attributes."""
        check_queue_name(name)
        wanted = QueueAttributes().updated(changes)
        with self._store.transaction() as db:
            row = db.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if _attributes(row) == wanted:
                    return False
                raise MnsError(
                    409,
                    "QueueAlreadyExist",
                    f"The queue {name!r} already exists with other attributes; use SetQueueAttributes to change them.",
                )
            now = int(self._clock())
            db.execute(
                "INSERT INTO queues VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, *_attribute_values(wanted), now, now),
            )
        return True

    def set_attributes(self, name: str, changes: dict[str, int | bool]) -> None:
        with self._store.transaction() as db:
            attributes = _attributes(self._queue_row(db, name)).updated(changes)
            db.execute(
                "UPDATE queues SET visibility_timeout = ?, maximum_message_size = ?, "
                "message_retention_period = ?, delay_seconds = ?, polling_wait_seconds = ?, "
                "logging_enabled = ?, last_modify_time = ? WHERE name = ?",
                (*_attribute_values(attributes), int(self._clock()), name),
            )

    def get(self, name: str) -> QueueInfo:
        with self._store.transaction() as db:
            row = self._queue_row(db, name)
            self._expire(db, row)
            return self._info(db, row)

    def delete(self, name: str) -> None:
        with self._store.transaction() as db:
            self._queue_row(db, name)
            db.execute("DELETE FROM messages WHERE queue = ?", (name,))
            db.execute("DELETE FROM queues WHERE name = ?", (name,))

    def list_queues(self, prefix: str, marker: str, limit: int) -> tuple[list[QueueInfo], str]:
        """Queues by name from ``marker`` on; the marker returned is the next name, or ``""``."""
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT * FROM queues WHERE name >= ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
                (marker, len(prefix), prefix, limit + 1),
            ).fetchall()
            infos = [self._info(db, row) for row in rows[:limit]]
        return infos, rows[limit]["name"] if len(rows) > limit else ""

    # --- messages ---------------------------------------------------------------------------

    def send(self, name: str, messages: list[OutgoingMessage]) -> list[tuple[str, str]]:
        """Enqueue all of ``messages`` or none; return their (MessageId, MessageBodyMD5)."""
        with self._store.transaction() as db:
            attributes = _attributes(self._queue_row(db, name))
            for index, message in enumerate(messages):
                _check_message(message, attributes, index if len(messages) > 1 else None)
            now = self._now_ms()
            sent = []
            for message in messages:
                delay = attributes.delay_seconds if message.delay_seconds is None else message.delay_seconds
                message_id = uuid.uuid4().hex.upper()
                md5 = body_md5(message.body)
                db.execute(
                    "INSERT INTO messages (queue, message_id, body, body_md5, priority, group_id, "
                    "user_properties, enqueue_time, first_dequeue_time, dequeue_count, visible_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
                    (
                        name,
                        message_id,
                        message.body,
                        md5,
                        message.priority or DEFAULT_PRIORITY,
                        message.group_id,
                        json.dumps(list(message.user_properties)),
                        now,
                        now + delay * 1000,
                    ),
                )
                sent.append((message_id, md5))
        return sent

    def receive(self, name: str, count: int, wait_seconds: int | None) -> list[QueueMessage]:
        """Take up to ``count`` visible messages, long-polling up to ``wait_seconds``
        (the queue's PollingWaitSeconds when ``None``); 404 MessageNotExist if none came."""
        _check_count(count)
        if wait_seconds is not None and not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise invalid_argument(
                f"The value of waitseconds should be between 0 and 30, got {wait_seconds}."
            )
        started = time.monotonic()
        with self._store.lock:
            while True:
                with self._store.transaction() as db:
                    row = self._queue_row(db, name)
                    self._expire(db, row)
                    taken = self._take(db, row, count)
                if taken:
                    return taken
                wait = row["polling_wait_seconds"] if wait_seconds is None else wait_seconds
                remaining = started + wait - time.monotonic()
                if remaining <= 0:
                    raise message_not_exist()
                self._store.changed.wait(min(remaining, self._until_next_visible(name)))

    def peek(self, name: str, count: int) -> list[QueueMessage]:
        _check_count(count)
        with self._store.transaction() as db:
            row = self._queue_row(db, name)
            self._expire(db, row)
            rows = db.execute(
                "SELECT * FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY priority, seq LIMIT ?",
                (name, self._now_ms(), count),
            ).fetchall()
        if not rows:
            raise message_not_exist()
        return [_message(r, None, None) for r in rows]

    def delete_messages(self, name: str, handles: list[str]) -> list[tuple[str, MnsError]]:
        """Delete by receipt handle; return the handles that failed, with their error."""
        failures = []
        with self._store.transaction() as db:
            self._queue_row(db, name)
            for handle in handles:
                try:
                    seq = self._held_message(db, name, handle)
                except MnsError as e:
                    failures.append((handle, e))
                    continue
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
        return failures

    def change_visibility(self, name: str, handle: str, visibility_timeout: int) -> tuple[str, int]:
        low, high = ATTRIBUTE_RANGES["VisibilityTimeout"]
        if not low <= visibility_timeout <= high:
            raise invalid_argument(
                f"The value of VisibilityTimeout should be between {low} and {high} seconds, got {visibility_timeout}."
            )
        with self._store.transaction() as db:
            self._queue_row(db, name)
            seq = self._held_message(db, name, handle)
            new_handle = _new_handle(seq)
            next_visible = self._now_ms() + visibility_timeout * 1000
            db.execute(
                "UPDATE messages SET receipt_handle = ?, visible_at = ? WHERE seq = ?",
                (new_handle, next_visible, seq),
            )
        return new_handle, next_visible

    # --- internals --------------------------------------------------------------------------

    def _queue_row(self, db: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise queue_not_exist(name)
        return row  # type: ignore[no-any-return]

    def _expire(self, db: sqlite3.Connection, queue: sqlite3.Row) -> None:
        cutoff = self._now_ms() - queue["message_retention_period"] * 1000
        db.execute("DELETE FROM messages WHERE queue = ? AND enqueue_time <= ?", (queue["name"], cutoff))

    def _take(self, db: sqlite3.Connection, queue: sqlite3.Row, count: int) -> list[QueueMessage]:
        now = self._now_ms()
        rows = db.execute(
            "SELECT * FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY priority, seq LIMIT ?",
            (queue["name"], now, count),
        ).fetchall()
        taken = []
        next_visible = now + queue["visibility_timeout"] * 1000
        for row in rows:
            handle = _new_handle(row["seq"])
            first_dequeue = row["first_dequeue_time"] or now
            db.execute(
                "UPDATE messages SET dequeue_count = dequeue_count + 1, first_dequeue_time = ?, "
                "visible_at = ?, receipt_handle = ? WHERE seq = ?",
                (first_dequeue, next_visible, handle, row["seq"]),
            )
            taken.append(
                dataclasses.replace(
                    _message(row, handle, next_visible),
                    dequeue_count=row["dequeue_count"] + 1,
                    first_dequeue_time=first_dequeue,
                )
            )
        return taken

    def _until_next_visible(self, name: str) -> float:
        """Seconds until the next hidden message of the queue becomes visible (or a long time)."""
        now = self._now_ms()
        row = (
            self._store.read()
            .execute("SELECT MIN(visible_at) FROM messages WHERE queue = ? AND visible_at > ?", (name, now))
            .fetchone()
        )
        return MAX_WAIT_SECONDS if row[0] is None else max((row[0] - now) / 1000, 0.001)

    def _held_message(self, db: sqlite3.Connection, name: str, handle: str) -> int:
        """The seq of the message ``handle`` currently holds invisible, or the MNS error."""
        match = _RECEIPT_HANDLE.fullmatch(handle)
        if match is None:
            raise receipt_handle_error(handle)
        row = db.execute(
            "SELECT seq FROM messages WHERE seq = ? AND queue = ? AND receipt_handle = ? AND visible_at > ?",
            (int(match.group(1)), name, handle, self._now_ms()),
        ).fetchone()
        if row is None:
            raise message_not_exist()
        return int(row["seq"])

    def _info(self, db: sqlite3.Connection, row: sqlite3.Row) -> QueueInfo:
        counts = db.execute(
            "SELECT SUM(visible_at <= :now), SUM(visible_at > :now AND dequeue_count > 0), "
            "SUM(visible_at > :now AND dequeue_count = 0) FROM messages WHERE queue = :queue",
            {"now": self._now_ms(), "queue": row["name"]},
        ).fetchone()
        return QueueInfo(
            name=row["name"],
            attributes=_attributes(row),
            create_time=row["create_time"],
            last_modify_time=row["last_modify_time"],
            active_messages=counts[0] or 0,
            inactive_messages=counts[1] or 0,
            delay_messages=counts[2] or 0,
        )


def _new_handle(seq: int) -> str:
    # URL-safe only: the SDK puts the handle into the query string without encoding it.
    return f"{seq}-{secrets.token_urlsafe(12)}"


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_BATCH:
        raise invalid_argument(
            f"The value of numOfMessages should be between 1 and {MAX_BATCH}, got {count}."
        )


def _check_message(message: OutgoingMessage, attributes: QueueAttributes, index: int | None) -> None:
    where = "" if index is None else f" (message {index} of the batch)"
    if not message.body:
        raise invalid_argument(f"The MessageBody is empty{where}.")
    size = len(message.body.encode())
    if size > attributes.maximum_message_size:
        raise invalid_argument(
            f"The message body is {size} bytes{where}, more than the queue's MaximumMessageSize "
            f"{attributes.maximum_message_size}."
        )
    if message.priority is not None and not 1 <= message.priority <= 16:
        raise invalid_argument(
            f"The value of Priority should be between 1 and 16, got {message.priority}{where}."
        )
    if message.delay_seconds is not None and not 0 <= message.delay_seconds <= 604800:
        raise invalid_argument(
            f"The value of DelaySeconds should be between 0 and 604800, got {message.delay_seconds}{where}."
        )


def _attributes(row: sqlite3.Row) -> QueueAttributes:
    return QueueAttributes(
        visibility_timeout=row["visibility_timeout"],
        maximum_message_size=row["maximum_message_size"],
        message_retention_period=row["message_retention_period"],
        delay_seconds=row["delay_seconds"],
        polling_wait_seconds=row["polling_wait_seconds"],
        logging_enabled=bool(row["logging_enabled"]),
    )


def _attribute_values(a: QueueAttributes) -> tuple[int, ...]:
    return (
        a.visibility_timeout,
        a.maximum_message_size,
        a.message_retention_period,
        a.delay_seconds,
        a.polling_wait_seconds,
        int(a.logging_enabled),
    )


def _message(row: sqlite3.Row, handle: str | None, next_visible: int | None) -> QueueMessage:
    return QueueMessage(
        message_id=row["message_id"],
        body=row["body"],
        body_md5=row["body_md5"],
        priority=row["priority"],
        group_id=row["group_id"],
        user_properties=json.loads(row["user_properties"]),
        enqueue_time=row["enqueue_time"],
        first_dequeue_time=row["first_dequeue_time"],
        dequeue_count=row["dequeue_count"],
        receipt_handle=handle,
        next_visible_time=next_visible,
    )

"""Topics, subscriptions and publishing.

Publishing stores the message and, in the same transaction, one pending delivery per matching
subscription (FilterTag: exact match with the MessageTag; an empty FilterTag takes everything),
rendered in the subscription's NotifyContentFormat. The push dispatcher then delivers them, so a
published message's pushes survive a crash right after PublishMessage was answered.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from localcloud.core.account import Account
from localcloud.mns.errors import (
    MnsError,
    invalid_argument,
    not_implemented,
    subscription_not_exist,
    topic_not_exist,
)
from localcloud.mns.notifications import CONTENT_TYPES, FORMATS, Notification, render
from localcloud.mns.queues import check_queue_name
from localcloud.mns.store import Store
from localcloud.mns.wire import body_md5

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
#: Topic and subscription names: at most 255 characters (MNS console limit).
MAX_NAME_LENGTH = 255
STRATEGIES = ("BACKOFF_RETRY", "EXPONENTIAL_DECAY_RETRY")
DEFAULT_TOPIC_MAXIMUM_MESSAGE_SIZE = 65536
#: Topics keep messages for one day; the attribute cannot be changed.
TOPIC_MESSAGE_RETENTION_PERIOD = 86400
MAX_TAG_LENGTH = 16


@dataclass(frozen=True)
class TopicInfo:
    name: str
    maximum_message_size: int
    logging_enabled: bool
    create_time: int
    last_modify_time: int
    message_count: int


@dataclass(frozen=True)
class SubscriptionInfo:
    topic: str
    name: str
    endpoint: str
    filter_tag: str
    notify_strategy: str
    notify_content_format: str
    create_time: int
    last_modify_time: int


@dataclass(frozen=True)
class TopicMessageIn:
    body: str
    tag: str = ""
    #: MessageAttributes children (DirectMail, DirectSMS, Extend) as sent.
    attributes: tuple[tuple[str, str], ...] = ()
    user_properties: tuple[dict[str, str], ...] = ()


def check_topic_name(name: str) -> None:
    _check_name("topic", name)


def check_subscription_name(name: str) -> None:
    _check_name("subscription", name)


def _check_name(kind: str, name: str) -> None:
    code = {"topic": "Topic", "subscription": "Subscription"}[kind]
    if len(name) > MAX_NAME_LENGTH:
        raise MnsError(
            400, f"{code}NameLengthError", f"The {kind} name is more than 255 characters: {name!r}."
        )
    if not NAME.fullmatch(name):
        raise MnsError(
            400,
            f"Invalid{code}Name",
            f"The {kind} name {name!r} is invalid: use letters, digits and hyphens, starting with a letter or digit.",
        )


def queue_endpoint(endpoint: str) -> tuple[str, str, str] | None:
    """``acs:mns:<region>:<account>:queues/<queue>`` as (region, account, queue), else ``None``."""
    match = re.fullmatch(r"acs:mns:([^:]+):([^:]+):queues/(.+)", endpoint)
    return (match.group(1), match.group(2), match.group(3)) if match else None


class Topics:
    def __init__(self, store: Store, account: Account, clock: Callable[[], float]) -> None:
        self._store = store
        self._account = account
        self._clock = clock

    # --- topics -----------------------------------------------------------------------------

    def create(self, name: str, maximum_message_size: int | None, logging_enabled: bool | None) -> bool:
        """Create the topic; ``False`` if it already exists with exactly these attributes."""
        _check_name("topic", name)
        size = DEFAULT_TOPIC_MAXIMUM_MESSAGE_SIZE if maximum_message_size is None else maximum_message_size
        logging = bool(logging_enabled)
        with self._store.transaction() as db:
            row = db.execute("SELECT * FROM topics WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if (row["maximum_message_size"], bool(row["logging_enabled"])) == (size, logging):
                    return False
                raise MnsError(
                    409,
                    "TopicAlreadyExist",
                    f"The topic {name!r} already exists with other attributes; use SetTopicAttributes to change them.",
                )
            now = int(self._clock())
            db.execute("INSERT INTO topics VALUES (?, ?, ?, ?, ?)", (name, size, int(logging), now, now))
        return True

    def set_attributes(
        self, name: str, maximum_message_size: int | None, logging_enabled: bool | None
    ) -> None:
        with self._store.transaction() as db:
            row = self._topic_row(db, name)
            db.execute(
                "UPDATE topics SET maximum_message_size = ?, logging_enabled = ?, last_modify_time = ? "
                "WHERE name = ?",
                (
                    row["maximum_message_size"] if maximum_message_size is None else maximum_message_size,
                    row["logging_enabled"] if logging_enabled is None else int(logging_enabled),
                    int(self._clock()),
                    name,
                ),
            )

    def get(self, name: str) -> TopicInfo:
        with self._store.transaction() as db:
            return self._info(db, self._topic_row(db, name))

    def delete(self, name: str) -> None:
        with self._store.transaction() as db:
            self._topic_row(db, name)
            for table in ("topic_messages", "subscriptions", "deliveries"):
                db.execute(f"DELETE FROM {table} WHERE topic = ?", (name,))
            db.execute("DELETE FROM topics WHERE name = ?", (name,))

    def list_topics(self, prefix: str, marker: str, limit: int) -> tuple[list[TopicInfo], str]:
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT * FROM topics WHERE name >= ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
                (marker, len(prefix), prefix, limit + 1),
            ).fetchall()
            infos = [self._info(db, row) for row in rows[:limit]]
        return infos, rows[limit]["name"] if len(rows) > limit else ""

    # --- subscriptions ----------------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        name: str,
        endpoint: str,
        filter_tag: str,
        strategy: str | None,
        notify_format: str | None,
    ) -> bool:
        """Subscribe; ``False`` if the subscription already exists with exactly these attributes."""
        _check_name("subscription", name)
        self._check_endpoint(endpoint)
        if len(filter_tag) > MAX_TAG_LENGTH:
            raise invalid_argument(f"The FilterTag must be at most 16 characters, got {filter_tag!r}.")
        strategy = strategy or "BACKOFF_RETRY"
        notify_format = notify_format or "XML"
        _check_choice("NotifyStrategy", strategy, STRATEGIES)
        _check_choice("NotifyContentFormat", notify_format, FORMATS)
        with self._store.transaction() as db:
            self._topic_row(db, topic)
            row = db.execute(
                "SELECT * FROM subscriptions WHERE topic = ? AND name = ?", (topic, name)
            ).fetchone()
            wanted = (endpoint, filter_tag, strategy, notify_format)
            if row is not None:
                existing = (
                    row["endpoint"],
                    row["filter_tag"],
                    row["notify_strategy"],
                    row["notify_content_format"],
                )
                if existing == wanted:
                    return False
                raise MnsError(
                    409,
                    "SubscriptionAlreadyExist",
                    f"The subscription {name!r} of topic {topic!r} already exists with other attributes; "
                    "unsubscribe first or use SetSubscriptionAttributes.",
                )
            now = int(self._clock())
            db.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (topic, name, *wanted, now, now)
            )
        return True

    def set_subscription_attributes(self, topic: str, name: str, strategy: str | None) -> None:
        if strategy is not None:
            _check_choice("NotifyStrategy", strategy, STRATEGIES)
        with self._store.transaction() as db:
            row = self._subscription_row(db, topic, name)
            db.execute(
                "UPDATE subscriptions SET notify_strategy = ?, last_modify_time = ? WHERE topic = ? AND name = ?",
                (strategy or row["notify_strategy"], int(self._clock()), topic, name),
            )

    def get_subscription(self, topic: str, name: str) -> SubscriptionInfo:
        with self._store.transaction() as db:
            return _subscription(self._subscription_row(db, topic, name))

    def unsubscribe(self, topic: str, name: str) -> None:
        with self._store.transaction() as db:
            self._subscription_row(db, topic, name)
            db.execute("DELETE FROM subscriptions WHERE topic = ? AND name = ?", (topic, name))
            # A deleted subscription receives nothing more, retries included.
            db.execute("DELETE FROM deliveries WHERE topic = ? AND subscription = ?", (topic, name))

    def list_subscriptions(self, topic: str, prefix: str, marker: str, limit: int) -> tuple[list[str], str]:
        with self._store.transaction() as db:
            self._topic_row(db, topic)
            rows = db.execute(
                "SELECT name FROM subscriptions WHERE topic = ? AND name >= ? AND substr(name, 1, ?) = ? "
                "ORDER BY name LIMIT ?",
                (topic, marker, len(prefix), prefix, limit + 1),
            ).fetchall()
        names = [row["name"] for row in rows]
        return names[:limit], names[limit] if len(names) > limit else ""

    # --- publishing -------------------------------------------------------------------------

    def publish(self, topic: str, message: TopicMessageIn) -> tuple[str, str]:
        """Store the message and its pending deliveries; return (MessageId, MessageBodyMD5)."""
        if not message.body:
            raise invalid_argument("The MessageBody is empty.")
        if len(message.tag) > MAX_TAG_LENGTH:
            raise invalid_argument(f"The MessageTag must be at most 16 characters, got {message.tag!r}.")
        with self._store.transaction() as db:
            row = self._topic_row(db, topic)
            size = len(message.body.encode())
            if size > row["maximum_message_size"]:
                raise invalid_argument(
                    f"The message body is {size} bytes, more than the topic's MaximumMessageSize "
                    f"{row['maximum_message_size']}."
                )
            message_id = uuid.uuid4().hex.upper()
            md5 = body_md5(message.body)
            publish_time = int(self._clock() * 1000)
            db.execute(
                "INSERT INTO topic_messages (topic, message_id, body, body_md5, tag, attributes, "
                "user_properties, publish_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    topic,
                    message_id,
                    message.body,
                    md5,
                    message.tag,
                    json.dumps(dict(message.attributes)),
                    json.dumps(list(message.user_properties)),
                    publish_time,
                ),
            )
            subscriptions = db.execute(
                "SELECT * FROM subscriptions WHERE topic = ? AND (filter_tag = '' OR filter_tag = ?)",
                (topic, message.tag),
            ).fetchall()
            for sub in subscriptions:
                notification = Notification(
                    topic_owner=self._account.account_id,
                    topic_name=topic,
                    subscriber=self._account.account_id,
                    subscription_name=sub["name"],
                    message_id=message_id,
                    message=message.body,
                    message_md5=md5,
                    message_tag=message.tag,
                    publish_time=publish_time,
                )
                body, headers = render(notification, sub["notify_content_format"])
                db.execute(
                    "INSERT INTO deliveries (topic, subscription, endpoint, notify_strategy, content_type, "
                    "headers, body, attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
                    (
                        topic,
                        sub["name"],
                        sub["endpoint"],
                        sub["notify_strategy"],
                        CONTENT_TYPES[sub["notify_content_format"]],
                        json.dumps(headers),
                        body,
                    ),
                )
        return message_id, md5

    # --- internals --------------------------------------------------------------------------

    def _check_endpoint(self, endpoint: str) -> None:
        if endpoint.startswith(("http://", "https://")):
            return
        if endpoint.startswith(("mail:directmail:", "sms:directsms:")):
            raise not_implemented("Pushing to DirectMail and DirectSMS endpoints")
        parsed = queue_endpoint(endpoint)
        if parsed is None:
            raise MnsError(
                400,
                "InvalidEndpoint",
                f"The endpoint {endpoint!r} is invalid: use http(s)://… or acs:mns:<region>:<account>:queues/<queue>.",
            )
        region, account_id, queue = parsed
        check_queue_name(queue)
        if (region, account_id) != (self._account.region, self._account.account_id):
            raise MnsError(
                400,
                "InvalidEndpoint",
                f"The queue endpoint {endpoint!r} is not in this local account; use "
                f"acs:mns:{self._account.region}:{self._account.account_id}:queues/<queue>.",
            )

    def _topic_row(self, db: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise topic_not_exist(name)
        return row  # type: ignore[no-any-return]

    def _subscription_row(self, db: sqlite3.Connection, topic: str, name: str) -> sqlite3.Row:
        self._topic_row(db, topic)
        row = db.execute("SELECT * FROM subscriptions WHERE topic = ? AND name = ?", (topic, name)).fetchone()
        if row is None:
            raise subscription_not_exist(topic, name)
        return row  # type: ignore[no-any-return]

    def _info(self, db: sqlite3.Connection, row: sqlite3.Row) -> TopicInfo:
        cutoff = int(self._clock() * 1000) - TOPIC_MESSAGE_RETENTION_PERIOD * 1000
        db.execute("DELETE FROM topic_messages WHERE topic = ? AND publish_time <= ?", (row["name"], cutoff))
        count = db.execute("SELECT COUNT(*) FROM topic_messages WHERE topic = ?", (row["name"],)).fetchone()[
            0
        ]
        return TopicInfo(
            name=row["name"],
            maximum_message_size=row["maximum_message_size"],
            logging_enabled=bool(row["logging_enabled"]),
            create_time=row["create_time"],
            last_modify_time=row["last_modify_time"],
            message_count=count,
        )


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise invalid_argument(f"The value of {field} must be one of {', '.join(choices)}, got {value!r}.")


def _subscription(row: sqlite3.Row) -> SubscriptionInfo:
    return SubscriptionInfo(
        topic=row["topic"],
        name=row["name"],
        endpoint=row["endpoint"],
        filter_tag=row["filter_tag"],
        notify_strategy=row["notify_strategy"],
        notify_content_format=row["notify_content_format"],
        create_time=row["create_time"],
        last_modify_time=row["last_modify_time"],
    )

"""The local MNS server: routing, request parsing and response bodies (docs/mns.md).

Every response carries a lower-case ``x-mns-request-id`` (the SDK reads it from a
case-sensitive dict); creates answer 201, or 204 when the resource already exists with the same
attributes, both with ``Location``; errors are the four-field ``<Error>`` document. The query
string is parsed by hand without turning ``+`` into a space, because the SDK does not encode
the values it puts there.

The path is split on ``/`` before its segments are percent-decoded, so an encoded ``/`` stays
inside the name it was sent in (and is refused there) instead of re-routing the request; every
queue, topic and subscription name in a path is checked against MNS's naming rules before any
state is read or written (:func:`_check_names`). The cloud's answer to a malformed name on a
read or delete is not documented: the local MNS answers the same ``Invalid*Name`` /
``*NameLengthError`` as a create would.
"""

from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan
from localcloud.core.http import Request, Response
from localcloud.mns import auth, wire
from localcloud.mns.errors import MnsError, invalid_argument, not_implemented
from localcloud.mns.push import Pusher
from localcloud.mns.queues import (
    ATTRIBUTE_RANGES,
    MAX_BATCH,
    OutgoingMessage,
    QueueInfo,
    QueueMessage,
    Queues,
    check_queue_name,
)
from localcloud.mns.store import Store
from localcloud.mns.topics import (
    TOPIC_MESSAGE_RETENTION_PERIOD,
    TopicInfo,
    TopicMessageIn,
    Topics,
    check_subscription_name,
    check_topic_name,
)
from localcloud.mns.wire import Field

QUEUE_FIELDS = {
    "VisibilityTimeout": "visibility_timeout",
    "MaximumMessageSize": "maximum_message_size",
    "MessageRetentionPeriod": "message_retention_period",
    "DelaySeconds": "delay_seconds",
    "PollingWaitSeconds": "polling_wait_seconds",
}
TOPIC_MESSAGE_SIZE_RANGE = (1024, 65536)
MAX_LIST = 1000


class MnsService:
    """MNS queues and topics for ``mns.account.Account(url, id, secret)``.

    ``time_scale`` multiplies every push retry wait (e.g. 0.001 in tests). ``clock`` gives the
    time queues and topics see (epoch seconds); tests inject one to age messages without waiting.
    """

    name = "mns"

    def __init__(
        self,
        state_dir: Path,
        account: Account,
        time_scale: float = 1.0,
        *,
        clock: Callable[[], float] = time.time,
        faults: FaultPlan | None = None,
    ) -> None:
        self.account = account
        self._store = Store(state_dir / "mns")
        self._queues = Queues(self._store, clock)
        self._topics = Topics(self._store, account, clock)
        self._pusher = Pusher(self._store, self._queues, time_scale, faults)
        self._pusher.start()

    def wait_for_deliveries(self, timeout: float) -> bool:
        """Wait until every pending push (retries included) is delivered or dropped."""
        return self._pusher.wait_idle(timeout)

    def close(self) -> None:
        self._pusher.close()
        self._store.close()

    def handle(self, request: Request) -> Response:
        request_id = secrets.token_hex(12).upper()
        host = request.headers.get("host", "127.0.0.1")
        try:
            auth.check(request, self.account)
            response = self._route(request, f"http://{host}")
        except MnsError as e:
            body = wire.document(
                "Error",
                [
                    ("Code", e.code),
                    ("Message", e.message),
                    ("RequestId", request_id),
                    ("HostId", f"http://{host}"),
                ],
            )
            response = Response(e.status, {"Content-Type": "text/xml;charset=utf-8"}, body)
        response.headers["x-mns-request-id"] = request_id
        response.headers["x-mns-version"] = "2015-06-06"
        return response

    # --- routing ----------------------------------------------------------------------------

    def _route(self, request: Request, base_url: str) -> Response:
        parts = [unquote(p) for p in request.raw_path.split("/") if p]
        _check_names(parts)
        query = request.query(plus_is_space=False)
        method = request.method
        match parts:
            case [] if "accountmeta" in query and method == "GET":
                return _xml(200, "Account", [("LoggingBucket", self._logging_bucket())])
            case [] if "accountmeta" in query and method == "PUT":
                return self._set_account_attributes(request)
            case ["commonbuy", "openservice"]:
                raise not_implemented("OpenService")
            case ["queues"] if method == "GET":
                return self._list_queues(request, base_url)
            case ["queues", queue] if method == "PUT" and query.get("metaoverride") == "true":
                self._queues.set_attributes(queue, _queue_changes(request.body))
                return Response(204)
            case ["queues", queue] if method == "PUT":
                created = self._queues.create(queue, _queue_changes(request.body))
                return Response(201 if created else 204, {"Location": f"{base_url}/queues/{queue}"})
            case ["queues", queue] if method == "GET":
                return _xml(200, "Queue", _queue_fields(self._queues.get(queue)))
            case ["queues", queue] if method == "DELETE":
                self._queues.delete(queue)
                return Response(204)
            case ["queues", queue, "messages"]:
                return self._messages(request, queue, query)
            case ["topics"] if method == "GET":
                return self._list_topics(request, base_url)
            case ["topics", topic] if method == "PUT":
                size, logging = _topic_attributes(request.body)
                if query.get("metaoverride") == "true":
                    self._topics.set_attributes(topic, size, logging)
                    return Response(204)
                created = self._topics.create(topic, size, logging)
                return Response(201 if created else 204, {"Location": f"{base_url}/topics/{topic}"})
            case ["topics", topic] if method == "GET":
                return _xml(200, "Topic", _topic_fields(self._topics.get(topic)))
            case ["topics", topic] if method == "DELETE":
                self._topics.delete(topic)
                return Response(204)
            case ["topics", topic, "messages"] if method == "POST":
                message_id, md5 = self._topics.publish(topic, _topic_message(request.body))
                return _xml(201, "Message", [("MessageId", message_id), ("MessageBodyMD5", md5)])
            case ["topics", topic, "subscriptions"] if method == "GET":
                return self._list_subscriptions(request, topic, base_url)
            case ["topics", topic, "subscriptions", name]:
                return self._subscription(request, topic, name, query, base_url)
        raise MnsError(400, "InvalidRequestURL", f"{method} {request.path} is not an MNS operation.")

    def _messages(self, request: Request, queue: str, query: dict[str, str]) -> Response:
        method = request.method
        if method == "POST":
            root, element = wire.parse(request.body, ("Message", "Messages"))
            if root == "Message":
                [(message_id, md5)] = self._queues.send(queue, [_queue_message(element)])
                return _xml(201, "Message", [("MessageId", message_id), ("MessageBodyMD5", md5)])
            entries = wire.items(element, "Message")
            if not 1 <= len(entries) <= MAX_BATCH:
                raise invalid_argument(f"A batch must hold 1 to {MAX_BATCH} messages, got {len(entries)}.")
            sent = self._queues.send(queue, [_queue_message(e) for e in entries])
            return _xml(
                201,
                "Messages",
                [("Message", [("MessageId", mid), ("MessageBodyMD5", md5)]) for mid, md5 in sent],
            )
        if method == "GET":
            count = _int_query(query, "numOfMessages")
            if query.get("peekonly") == "true":
                peeked = self._queues.peek(queue, count or 1)
                return _messages_response(peeked, batch=count is not None)
            received = self._queues.receive(queue, count or 1, _int_query(query, "waitseconds"))
            return _messages_response(received, batch=count is not None)
        if method == "DELETE":
            if "ReceiptHandle" in query:
                for _, error in self._queues.delete_messages(queue, [query["ReceiptHandle"]]):
                    raise error
                return Response(204)
            if not request.body:
                raise MnsError(
                    400, "MissingReceiptHandle", "Pass ?ReceiptHandle=… or a <ReceiptHandles> body."
                )
            _, element = wire.parse(request.body, ("ReceiptHandles",))
            handles = [(e.text or "").strip() for e in wire.items(element, "ReceiptHandle")]
            if not 1 <= len(handles) <= MAX_BATCH:
                raise invalid_argument(
                    f"A batch must hold 1 to {MAX_BATCH} receipt handles, got {len(handles)}."
                )
            failures = self._queues.delete_messages(queue, handles)
            if not failures:
                return Response(204)
            status = 404 if any(e.code == "MessageNotExist" for _, e in failures) else 400
            errors: list[Field] = [
                ("Error", [("ErrorCode", e.code), ("ErrorMessage", e.message), ("ReceiptHandle", h)])
                for h, e in failures
            ]
            return _xml(status, "Errors", errors)
        if method == "PUT":
            if "ReceiptHandle" not in query:
                raise MnsError(400, "MissingReceiptHandle", "ChangeMessageVisibility needs ?ReceiptHandle=….")
            timeout = _int_query(query, "VisibilityTimeout")
            if timeout is None:
                raise MnsError(
                    400, "MissingVisibilityTimeout", "ChangeMessageVisibility needs &VisibilityTimeout=N."
                )
            handle, next_visible = self._queues.change_visibility(queue, query["ReceiptHandle"], timeout)
            return _xml(
                200, "ChangeVisibility", [("ReceiptHandle", handle), ("NextVisibleTime", next_visible)]
            )
        raise MnsError(400, "InvalidRequestURL", f"{method} {request.path} is not an MNS operation.")

    def _subscription(
        self, request: Request, topic: str, name: str, query: dict[str, str], base_url: str
    ) -> Response:
        if request.method == "PUT":
            _, element = wire.parse(request.body, ("Subscription",))
            fields = wire.text_fields(element)
            if query.get("metaoverride") == "true":
                self._topics.set_subscription_attributes(topic, name, fields.get("NotifyStrategy"))
                return Response(204)
            if not fields.get("Endpoint"):
                raise MnsError(400, "InvalidEndpoint", "Subscribe needs an <Endpoint>.")
            created = self._topics.subscribe(
                topic,
                name,
                fields["Endpoint"],
                fields.get("FilterTag", ""),
                fields.get("NotifyStrategy"),
                fields.get("NotifyContentFormat"),
            )
            location = f"{base_url}/topics/{topic}/subscriptions/{name}"
            return Response(201 if created else 204, {"Location": location})
        if request.method == "GET":
            s = self._topics.get_subscription(topic, name)
            fields_out: list[Field] = [
                ("TopicOwner", self.account.account_id),
                ("TopicName", s.topic),
                ("SubscriptionName", s.name),
                ("Endpoint", s.endpoint),
                ("NotifyStrategy", s.notify_strategy),
                ("NotifyContentFormat", s.notify_content_format),
                ("CreateTime", s.create_time),
                ("LastModifyTime", s.last_modify_time),
            ]
            if s.filter_tag:
                fields_out.append(("FilterTag", s.filter_tag))
            return _xml(200, "Subscription", fields_out)
        if request.method == "DELETE":
            self._topics.unsubscribe(topic, name)
            return Response(204)
        raise MnsError(400, "InvalidRequestURL", f"{request.method} {request.path} is not an MNS operation.")

    # --- lists and account ------------------------------------------------------------------

    def _list_queues(self, request: Request, base_url: str) -> Response:
        prefix, marker, limit, with_meta = _list_headers(request)
        infos, next_marker = self._queues.list_queues(prefix, marker, limit)
        items: list[Field] = []
        for info in infos:
            fields: list[Field] = [("QueueURL", f"{base_url}/queues/{info.name}")]
            if with_meta:
                fields += _queue_fields(info)
            items.append(("Queue", fields))
        return _xml(200, "Queues", items + _next_marker(next_marker))

    def _list_topics(self, request: Request, base_url: str) -> Response:
        prefix, marker, limit, with_meta = _list_headers(request)
        infos, next_marker = self._topics.list_topics(prefix, marker, limit)
        items: list[Field] = []
        for info in infos:
            fields: list[Field] = [("TopicURL", f"{base_url}/topics/{info.name}")]
            if with_meta:
                fields += _topic_fields(info)
            items.append(("Topic", fields))
        return _xml(200, "Topics", items + _next_marker(next_marker))

    def _list_subscriptions(self, request: Request, topic: str, base_url: str) -> Response:
        prefix, marker, limit, _ = _list_headers(request)
        names, next_marker = self._topics.list_subscriptions(topic, prefix, marker, limit)
        items: list[Field] = [
            ("Subscription", [("SubscriptionURL", f"{base_url}/topics/{topic}/subscriptions/{n}")])
            for n in names
        ]
        return _xml(200, "Subscriptions", items + _next_marker(next_marker))

    def _logging_bucket(self) -> str:
        with self._store.lock:
            row = (
                self._store.read()
                .execute("SELECT value FROM account_meta WHERE name = 'LoggingBucket'")
                .fetchone()
            )
        return "" if row is None else str(row[0])

    def _set_account_attributes(self, request: Request) -> Response:
        _, element = wire.parse(request.body, ("Account",))
        fields = wire.text_fields(element)
        if "LoggingBucket" in fields:
            with self._store.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO account_meta VALUES ('LoggingBucket', ?)",
                    (fields["LoggingBucket"],),
                )
        return Response(204)


# --- parsing ------------------------------------------------------------------------------------


def _check_names(parts: list[str]) -> None:
    """Refuse a queue, topic or subscription name in the path that MNS would not accept."""
    match parts:
        case ["queues", queue, *_]:
            check_queue_name(queue)
        case ["topics", topic, "subscriptions", subscription, *_]:
            check_topic_name(topic)
            check_subscription_name(subscription)
        case ["topics", topic, *_]:
            check_topic_name(topic)


def _int_query(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise invalid_argument(
            f"The query parameter {name} must be an integer, got {query[name]!r}."
        ) from None


def _list_headers(request: Request) -> tuple[str, str, int, bool]:
    headers = request.headers
    raw_limit = headers.get("x-mns-ret-number", str(MAX_LIST))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST:
        raise invalid_argument(
            f"The x-mns-ret-number header should be between 1 and 1000, got {raw_limit!r}."
        )
    with_meta = headers.get("x-mns-with-meta", "false").lower() == "true"
    return headers.get("x-mns-prefix", ""), headers.get("x-mns-marker", ""), int(raw_limit), with_meta


def _queue_changes(body: bytes) -> dict[str, int | bool]:
    if not body.strip():
        return {}
    _, element = wire.parse(body, ("Queue",))
    fields = wire.text_fields(element)
    changes: dict[str, int | bool] = {}
    for wire_name, attribute in QUEUE_FIELDS.items():
        value = wire.int_field(fields, wire_name, *ATTRIBUTE_RANGES[wire_name])
        if value is not None:
            changes[attribute] = value
    logging = wire.bool_field(fields, "LoggingEnabled")
    if logging is not None:
        changes["logging_enabled"] = logging
    return changes


def _topic_attributes(body: bytes) -> tuple[int | None, bool | None]:
    if not body.strip():
        return None, None
    _, element = wire.parse(body, ("Topic",))
    fields = wire.text_fields(element)
    return wire.int_field(fields, "MaximumMessageSize", *TOPIC_MESSAGE_SIZE_RANGE), wire.bool_field(
        fields, "LoggingEnabled"
    )


def _queue_message(element: ET.Element) -> OutgoingMessage:
    fields = wire.text_fields(element)
    return OutgoingMessage(
        body=fields.get("MessageBody", ""),
        delay_seconds=wire.int_field(fields, "DelaySeconds", 0, 604800),
        priority=wire.int_field(fields, "Priority", 1, 16),
        group_id=fields.get("MessageGroupId", ""),
        user_properties=tuple(wire.properties(wire.children(element).get("UserProperties"))),
    )


def _topic_message(body: bytes) -> TopicMessageIn:
    _, element = wire.parse(body, ("Message",))
    fields = wire.text_fields(element)
    children = wire.children(element)
    attributes = children.get("MessageAttributes")
    return TopicMessageIn(
        body=fields.get("MessageBody", ""),
        tag=fields.get("MessageTag", ""),
        attributes=tuple(wire.text_fields(attributes).items()) if attributes is not None else (),
        user_properties=tuple(wire.properties(children.get("UserProperties"))),
    )


# --- responses ----------------------------------------------------------------------------------


def _xml(status: int, root: str, fields: list[Field]) -> Response:
    return Response(status, {"Content-Type": "text/xml;charset=utf-8"}, wire.document(root, fields))


def _next_marker(marker: str) -> list[Field]:
    # An empty <NextMarker/> breaks the SDK's list decoders (they strip() the text).
    return [("NextMarker", marker)] if marker else []


def _queue_fields(info: QueueInfo) -> list[Field]:
    a = info.attributes
    return [
        ("QueueName", info.name),
        ("CreateTime", info.create_time),
        ("LastModifyTime", info.last_modify_time),
        ("VisibilityTimeout", a.visibility_timeout),
        ("MaximumMessageSize", a.maximum_message_size),
        ("MessageRetentionPeriod", a.message_retention_period),
        ("DelaySeconds", a.delay_seconds),
        ("PollingWaitSeconds", a.polling_wait_seconds),
        ("ActiveMessages", info.active_messages),
        ("InactiveMessages", info.inactive_messages),
        ("DelayMessages", info.delay_messages),
        ("LoggingEnabled", "True" if a.logging_enabled else "False"),
    ]


def _topic_fields(info: TopicInfo) -> list[Field]:
    return [
        ("TopicName", info.name),
        ("CreateTime", info.create_time),
        ("LastModifyTime", info.last_modify_time),
        ("MaximumMessageSize", info.maximum_message_size),
        ("MessageRetentionPeriod", TOPIC_MESSAGE_RETENTION_PERIOD),
        ("MessageCount", info.message_count),
        ("LoggingEnabled", "True" if info.logging_enabled else "False"),
    ]


def _message_fields(m: QueueMessage) -> list[Field]:
    fields: list[Field] = [("MessageId", m.message_id)]
    if m.receipt_handle is not None:
        fields.append(("ReceiptHandle", m.receipt_handle))
    fields += [
        ("MessageBodyMD5", m.body_md5),
        ("MessageBody", m.body),
        ("EnqueueTime", m.enqueue_time),
        ("FirstDequeueTime", m.first_dequeue_time),
        ("DequeueCount", m.dequeue_count),
        ("Priority", m.priority),
    ]
    if m.next_visible_time is not None:
        fields.append(("NextVisibleTime", m.next_visible_time))
    if m.group_id:
        fields.append(("MessageGroupId", m.group_id))
    if m.user_properties:
        fields += wire.properties_field(m.user_properties)
    return fields


def _messages_response(messages: list[QueueMessage], *, batch: bool) -> Response:
    if batch:
        return _xml(200, "Messages", [("Message", _message_fields(m)) for m in messages])
    return _xml(200, "Message", _message_fields(messages[0]))

"""Queue actions and semantics, driven through aliyun-mns-sdk."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import mns.account
import pytest
from mns.message_property import MessagePropertyValue
from mns.mns_exception import MNSServerException
from mns.queue import Message, Queue, QueueMeta

if TYPE_CHECKING:
    from tests.support.clock import ManualClock
    from tests.support.mns import LocalMns


def _counts(queue: Queue) -> tuple[int, int, int]:
    """(active, inactive, delayed); the SDK marks these getters deprecated but still fills them."""
    meta = queue.get_attributes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return meta.active_messages, meta.inactive_messages, meta.delay_messages


def _error(call: Callable[..., object], *args: object) -> MNSServerException:
    with pytest.raises(MNSServerException) as info:
        call(*args)
    return info.value


def test_create_is_idempotent_only_with_identical_attributes(account: mns.account.Account) -> None:
    queue = account.get_queue("orders")
    url = queue.create(QueueMeta(vis_timeout=60))
    assert url.endswith("/queues/orders")
    assert queue.create(QueueMeta(vis_timeout=60)) == url  # 204 with Location
    assert _error(queue.create, QueueMeta(vis_timeout=61)).type == "QueueAlreadyExist"


def test_attributes_round_trip_and_defaults(account: mns.account.Account) -> None:
    queue = account.get_queue("attrs")
    queue.create(QueueMeta())
    meta = queue.get_attributes()
    assert (meta.visibility_timeout, meta.maximum_message_size, meta.message_retention_period) == (
        30,
        65536,
        345600,
    )
    assert (meta.delay_seconds, meta.polling_wait_seconds, meta.logging_enabled) == (0, 0, False)
    assert meta.queue_name == "attrs" and abs(meta.create_time - time.time()) < 5

    queue.set_attributes(QueueMeta(vis_timeout=45, delay_sec=2, polling_wait_sec=3, logging_enabled=True))
    meta = queue.get_attributes()
    assert (meta.visibility_timeout, meta.delay_seconds, meta.polling_wait_seconds) == (45, 2, 3)
    assert meta.logging_enabled is True
    assert meta.maximum_message_size == 65536  # untouched attributes stay

    assert _error(queue.set_attributes, QueueMeta(vis_timeout=50000)).type == "InvalidArgument"


def test_delete_and_missing_queue(account: mns.account.Account) -> None:
    queue = account.get_queue("gone")
    queue.create(QueueMeta())
    queue.send_message(Message("x"))
    queue.delete()
    for call, args in [
        (queue.get_attributes, ()),
        (queue.send_message, (Message("x"),)),
        (queue.receive_message, (0,)),
        (queue.delete, ()),
    ]:
        assert _error(call, *args).type == "QueueNotExist"


def test_invalid_queue_name(account: mns.account.Account) -> None:
    assert _error(account.get_queue("bad_name").create, QueueMeta()).type == "InvalidQueueName"
    assert _error(account.get_queue("a" * 121).create, QueueMeta()).type == "QueueNameLengthError"


def test_list_queue_with_prefix_and_paging(account: mns.account.Account) -> None:
    for name in ["job-1", "job-2", "job-3", "other"]:
        account.get_queue(name).create(QueueMeta())
    urls, marker = account.list_queue(prefix="job-", ret_number=2)
    assert [u.rsplit("/", 1)[1] for u in urls] == ["job-1", "job-2"] and marker
    urls, marker = account.list_queue(prefix="job-", ret_number=2, marker=marker)
    assert [u.rsplit("/", 1)[1] for u in urls] == ["job-3"] and marker == ""


def test_send_receive_delete_stores_the_body_as_sent(account: mns.account.Account) -> None:
    queue = account.get_queue("q")
    queue.create(QueueMeta())
    sent = queue.send_message(Message("hello world"))
    wire_body = base64.b64encode(b"hello world").decode()
    assert sent.message_body_md5 == hashlib.md5(wire_body.encode()).hexdigest().upper()

    received = queue.receive_message(wait_seconds=1)
    assert received.message_body == b"hello world"
    assert (received.message_id, received.dequeue_count, received.priority) == (sent.message_id, 1, 8)
    assert received.first_dequeue_time >= received.enqueue_time > 0
    assert not set(received.receipt_handle) & set("+&%# ")
    queue.set_encoding(False)
    queue.send_message(Message("raw {text}"))
    assert queue.peek_message().message_body == "raw {text}"

    queue.delete_message(received.receipt_handle)
    assert _error(queue.delete_message, received.receipt_handle).type == "MessageNotExist"


def test_batch_send_receive_peek_delete(account: mns.account.Account) -> None:
    queue = account.get_queue("batch")
    queue.create(QueueMeta())
    sent = queue.batch_send_message([Message(f"m{i}") for i in range(5)])
    assert len({m.message_id for m in sent}) == 5

    peeked = queue.batch_peek_message(10)
    assert [m.message_body for m in peeked] == [f"m{i}".encode() for i in range(5)]
    assert all(m.dequeue_count == 0 for m in peeked)

    received = queue.batch_receive_message(3, wait_seconds=1)
    assert [m.message_body for m in received] == [b"m0", b"m1", b"m2"]
    handles = [m.receipt_handle for m in received]
    queue.batch_delete_message(handles[:2])

    error = _error(queue.batch_delete_message, [handles[2], handles[0], "not-a-handle"])
    assert error.type == "MessageNotExist"
    assert [(e["ReceiptHandle"], e["ErrorCode"]) for e in error.sub_errors] == [
        (handles[0], "MessageNotExist"),
        ("not-a-handle", "ReceiptHandleError"),
    ]
    assert _counts(queue)[0] == 2  # m3, m4; m2 was deleted in the failing batch


def test_empty_queue_and_bad_receipt_handle(account: mns.account.Account) -> None:
    queue = account.get_queue("empty")
    queue.create(QueueMeta())
    error = _error(queue.receive_message, 0)
    assert (error.type, error.message) == ("MessageNotExist", "Message not exist.")
    assert _error(queue.batch_receive_message, 4, 0).type == "MessageNotExist"
    assert _error(queue.peek_message).type == "MessageNotExist"
    assert _error(queue.delete_message, "garbage").type == "ReceiptHandleError"
    assert _error(queue.batch_receive_message, 17).type == "InvalidArgument"


def test_visibility_timeout_redelivery_and_dequeue_count(clocked_mns: LocalMns, clock: ManualClock) -> None:
    queue = clocked_mns.client().get_queue("vis")
    queue.create(QueueMeta(vis_timeout=30))
    queue.send_message(Message("job"))
    first = queue.receive_message(0)
    assert first.next_visible_time == first.first_dequeue_time + 30_000
    assert _error(queue.receive_message, 0).type == "MessageNotExist"
    assert _counts(queue) == (0, 1, 0)

    clock.advance(31)
    second = queue.receive_message(0)
    assert (second.message_id, second.dequeue_count) == (first.message_id, 2)
    assert second.first_dequeue_time == first.first_dequeue_time
    # The first handle expired with the visibility timeout and was replaced by a new receive.
    assert _error(queue.delete_message, first.receipt_handle).type == "MessageNotExist"

    changed = queue.change_message_visibility(second.receipt_handle, 100)
    assert changed.receipt_handle != second.receipt_handle
    assert _error(queue.delete_message, second.receipt_handle).type == "MessageNotExist"
    clock.advance(50)
    assert _error(queue.receive_message, 0).type == "MessageNotExist"
    queue.delete_message(changed.receipt_handle)
    clock.advance(100)
    assert _error(queue.receive_message, 0).type == "MessageNotExist"


def test_handle_expires_when_visibility_timeout_passes(clocked_mns: LocalMns, clock: ManualClock) -> None:
    queue = clocked_mns.client().get_queue("expire")
    queue.create(QueueMeta(vis_timeout=10))
    queue.send_message(Message("job"))
    handle = queue.receive_message(0).receipt_handle
    clock.advance(11)
    assert _error(queue.delete_message, handle).type == "MessageNotExist"
    assert _error(queue.change_message_visibility, handle, 5).type == "MessageNotExist"


def test_delay_queue_default_and_per_message(clocked_mns: LocalMns, clock: ManualClock) -> None:
    queue = clocked_mns.client().get_queue("delay")
    queue.create(QueueMeta(delay_sec=10))
    queue.send_message(Message("queue-delay"))
    queue.send_message(Message("own-delay", delay_seconds=60))
    queue.send_message(Message("no-delay", delay_seconds=0))
    assert _counts(queue) == (1, 0, 2)
    for expected, wait in [(b"no-delay", 0), (b"queue-delay", 10), (b"own-delay", 50)]:
        if wait:
            assert _error(queue.receive_message, 0).type == "MessageNotExist"
        clock.advance(wait)
        received = queue.receive_message(0)
        assert received.message_body == expected
        queue.delete_message(received.receipt_handle)


def test_priority_lower_number_first_then_fifo(account: mns.account.Account) -> None:
    queue = account.get_queue("prio")
    queue.create(QueueMeta())
    for body, priority in [("p8-a", None), ("p16", 16), ("p1", 1), ("p8-b", 8), ("p3", 3)]:
        queue.send_message(Message(body, priority=priority))
    received = queue.batch_receive_message(5, 0)
    assert [m.message_body for m in received] == [b"p1", b"p3", b"p8-a", b"p8-b", b"p16"]
    assert [m.priority for m in received] == [1, 3, 8, 8, 16]
    assert _error(queue.send_message, Message("x", priority=17)).type == "InvalidArgument"


def test_retention_expiry(clocked_mns: LocalMns, clock: ManualClock) -> None:
    queue = clocked_mns.client().get_queue("ttl")
    queue.create(QueueMeta(msg_ttl=60, vis_timeout=5))
    queue.send_message(Message("old"))
    queue.receive_message(0)  # in flight does not protect it from retention
    clock.advance(30)
    queue.send_message(Message("young"))
    clock.advance(31)
    assert _counts(queue) == (1, 0, 0)
    assert queue.receive_message(0).message_body == b"young"


def test_maximum_message_size(account: mns.account.Account) -> None:
    queue = account.get_queue("small")
    queue.create(QueueMeta(max_msg_size=1024))
    queue.set_encoding(False)
    queue.send_message(Message("x" * 1024))
    error = _error(queue.send_message, Message("x" * 1025))
    assert error.type == "InvalidArgument" and "1025" in error.message
    error = _error(queue.batch_send_message, [Message("ok"), Message("y" * 2000)])
    assert error.type == "InvalidArgument" and "message 1" in error.message
    assert _counts(queue)[0] == 1  # the failed batch stored nothing


def test_user_properties_round_trip(account: mns.account.Account) -> None:
    queue = account.get_queue("props")
    queue.create(QueueMeta())
    message = Message("with props")
    message.add_user_property("taskType", MessagePropertyValue.create_string("MediaConvert"))
    message.add_user_property("size", MessagePropertyValue.create_number(42))
    queue.send_message(message)
    received = queue.receive_message(0)
    props = received.get_user_properties()
    assert props["taskType"].get_string_value_by_type() == "MediaConvert"
    assert props["size"].get_string_value_by_type() == "42"


def test_long_poll_returns_as_soon_as_a_message_arrives(local_mns: LocalMns) -> None:
    queue = local_mns.client().get_queue("poll")
    queue.create(QueueMeta())
    sender = local_mns.client().get_queue("poll")
    timer = threading.Timer(0.3, lambda: sender.send_message(Message("late")))
    started = time.monotonic()
    timer.start()
    received = queue.receive_message(wait_seconds=10)
    elapsed = time.monotonic() - started
    timer.join()
    assert received.message_body == b"late"
    assert 0.25 < elapsed < 2


def test_long_poll_times_out_and_uses_queue_polling_wait(local_mns: LocalMns) -> None:
    queue = local_mns.client().get_queue("wait")
    queue.create(QueueMeta(polling_wait_sec=1))
    started = time.monotonic()
    assert _error(queue.receive_message).type == "MessageNotExist"  # no waitseconds: the queue's 1 s
    assert 0.9 < time.monotonic() - started < 3
    assert _error(queue.receive_message, 31).type == "InvalidArgument"


def test_long_poll_wakes_when_a_delayed_message_becomes_visible(local_mns: LocalMns) -> None:
    queue = local_mns.client().get_queue("delayed-poll")
    queue.create(QueueMeta())
    queue.send_message(Message("soon", delay_seconds=1))
    started = time.monotonic()
    assert queue.receive_message(wait_seconds=5).message_body == b"soon"
    assert 0.9 < time.monotonic() - started < 2.5

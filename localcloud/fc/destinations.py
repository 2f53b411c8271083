"""Async invocation destinations: the record FC sends on success or failure, and where it goes.

The record follows FC's "result callback" documentation (异步调用目标的事件内容):
``{"timestamp", "requestContext": {"requestId", "functionArn", "condition",
"approximateInvokeCount"}, "requestPayload", "responseContext": {"statusCode",
"functionError"}, "responsePayload"}``. ``timestamp`` is ISO-8601 UTC with milliseconds, as in
that page's example. ``condition`` is ``""`` on success and the error type otherwise
(``UnhandledInvocationError``, ``FunctionTimeoutError`` or ``EventAgeExceeded`` when an event
outlived ``maxAsyncEventAgeInSeconds``: the last name is UNCONFIRMED).

Destination ARNs (docs/fc.md): ``acs:fc:<region>:<uid>:functions/<fn>`` (the FC 2.0
form ``...:services/<svc>[.<qualifier>]/functions/<fn>`` too) invokes that function
asynchronously with the record as its event; ``acs:mns:<region>:<uid>:/queues/<q>/messages``
sends the record to the queue and ``acs:mns:<region>:<uid>:/topics/<t>/messages`` publishes it,
both through aliyun-mns-sdk with the account's keys. The queue message body is the record as
plain text (not base64): how the cloud encodes it is UNCONFIRMED, and plain text is what a
consumer reading with ``set_encoding(False)`` expects.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from localcloud.core.account import Account

_FC_ARN = re.compile(r"^acs:fc:[^:]*:[^:]*:(?:services/[^/]+/)?functions/([^/]+)$")
_MNS_ARN = re.compile(r"^acs:mns:[^:]*:[^:]*:/(queues|topics)/([^/]+)/messages$")


class DestinationError(ValueError):
    pass


def check_arn(arn: str) -> None:
    if not (_FC_ARN.match(arn) or _MNS_ARN.match(arn)):
        raise DestinationError(
            f"destination {arn!r} is not supported locally: use acs:fc:<region>:<uid>:functions/<fn>, "
            "acs:mns:<region>:<uid>:/queues/<q>/messages or acs:mns:<region>:<uid>:/topics/<t>/messages"
        )


def record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    payload: bytes,
    status_code: int,
    response: bytes,
) -> bytes:
    now = time.time()
    return json.dumps(
        {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}Z",
            "requestContext": {
                "requestId": request_id,
                "functionArn": function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": payload.decode("utf-8", "replace"),
            "responseContext": {"statusCode": status_code, "functionError": condition},
            "responsePayload": response.decode("utf-8", "replace"),
        }
    ).encode()


def deliver(
    arn: str,
    body: bytes,
    *,
    account: Account,
    mns_endpoint: str,
    invoke_async: Callable[[str, bytes], Any],
) -> None:
    """Send one record; raises with the reason when the destination does not take it."""
    fc = _FC_ARN.match(arn)
    if fc:
        invoke_async(fc.group(1), body)
        return
    mns = _MNS_ARN.match(arn)
    if not mns:
        raise DestinationError(f"unsupported destination {arn!r}")
    if not mns_endpoint:
        raise DestinationError(f"destination {arn!r} needs the local MNS, and none is configured")
    from mns.account import Account as MnsAccount
    from mns.queue import Message
    from mns.topic import TopicMessage

    client = MnsAccount(mns_endpoint, account.access_key_id, account.access_key_secret)
    kind, name = mns.groups()
    if kind == "queues":
        queue = client.get_queue(name)
        queue.set_encoding(False)
        queue.send_message(Message(body.decode()))
    else:
        client.get_topic(name).publish_message(TopicMessage(body.decode()))

"""MNS errors: the code, HTTP status and message the service answers with.

Codes and statuses follow the MNS error table (docs/mns.md); messages add where the
problem is and how to fix it, since that is what a user of the local cloud reads.
"""

from __future__ import annotations


class MnsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid_argument(message: str) -> MnsError:
    return MnsError(400, "InvalidArgument", message)


def malformed_xml(message: str) -> MnsError:
    return MnsError(400, "MalformedXML", message)


def queue_not_exist(name: str) -> MnsError:
    return MnsError(404, "QueueNotExist", f"The queue name you provided is not exist: {name!r}.")


def topic_not_exist(name: str) -> MnsError:
    return MnsError(404, "TopicNotExist", f"The topic name you provided is not exist: {name!r}.")


def subscription_not_exist(topic: str, name: str) -> MnsError:
    return MnsError(
        404, "SubscriptionNotExist", f"The subscription {name!r} of topic {topic!r} does not exist."
    )


def message_not_exist() -> MnsError:
    return MnsError(404, "MessageNotExist", "Message not exist.")


def receipt_handle_error(handle: str) -> MnsError:
    return MnsError(
        400,
        "ReceiptHandleError",
        f"The receipt handle you provide is not valid: {handle!r}; pass the ReceiptHandle "
        "returned by the latest ReceiveMessage or ChangeMessageVisibility.",
    )


def not_implemented(what: str) -> MnsError:
    return MnsError(501, "NotImplemented", f"{what} is not implemented locally.")

"""Tablestore errors: the code, HTTP status and message the service answers with.

The body of an error response is the protobuf ``Error {code, message}``; codes and statuses
follow Tablestore's error-code table (docs/tablestore-local.md, "Errors"). Messages start like
the cloud's and add what was wrong and how to fix it.
"""

from __future__ import annotations


class OtsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def parameter_invalid(message: str) -> OtsError:
    return OtsError(400, "OTSParameterInvalid", message)


def auth_failed(message: str) -> OtsError:
    return OtsError(403, "OTSAuthFailed", message)


def condition_check_fail() -> OtsError:
    return OtsError(403, "OTSConditionCheckFail", "Condition check failed.")


def table_not_exist(table: str) -> OtsError:
    return OtsError(404, "OTSObjectNotExist", f"Requested table does not exist: {table!r}.")


def table_already_exist(table: str) -> OtsError:
    return OtsError(409, "OTSObjectAlreadyExist", f"Requested table already exists: {table!r}.")


def not_implemented(api: str) -> OtsError:
    """An action the SDK knows that the local Tablestore does not serve.

    The cloud names an operation it does not offer ``OTSUnsupportOperation``; the local one
    answers it with HTTP 501, which the SDK's retry policy never retries.
    """
    return OtsError(
        501,
        "OTSUnsupportOperation",
        f"{api} is not implemented by the local Tablestore; it serves table, row, batch and "
        "range operations only (docs/tablestore-local.md).",
    )

"""IMM errors: the HTTP status, ``Code`` and ``Message`` of an RPC error answer (docs/imm.md#errors).

Request-level errors (bad parameter, unknown project, bad signature, throttling) are raised as
:class:`ImmError` and become the JSON error body. Task-level failures are not HTTP errors: they
end a task ``Failed`` with a ``Code``/``Message`` (:class:`TaskFailure`).
"""

from __future__ import annotations


class ImmError(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        #: Seconds for the ``x-acs-retry-after`` header, which makes the SDK raise ``ThrottlingException``.
        self.retry_after = retry_after


class TaskFailure(Exception):
    """Ends a running task ``Failed`` with this ``Code`` and ``Message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Interrupted(Exception):
    """The engine stopped under a running task: it stays ``Running`` and runs again at the next
    start, as after a kill."""


def invalid_argument(message: str) -> ImmError:
    return ImmError(400, "InvalidArgument", message)


def missing_parameter(name: str) -> ImmError:
    return invalid_argument(f"The parameter {name} is required but not provided.")


def resource_not_found(resource: str) -> ImmError:
    return ImmError(400, "ResourceNotFound", f"The specified resource {resource} is not found.")


def resource_already_exists(resource: str) -> ImmError:
    return ImmError(400, "ResourceAlreadyExists", f"The specified resource {resource} already exists.")


def not_available(action: str, why: str = "") -> ImmError:
    """An action (or a feature of one) this local IMM does not implement: never a pretend success."""
    detail = f" {why}" if why else ""
    return ImmError(
        501,
        "NotImplemented",
        f"{action} is not available in immflow's local IMM.{detail} Run it against the real IMM service.",
    )


def throttled() -> ImmError:
    return ImmError(400, "Throttling.User", "Request was denied due to user flow control.", retry_after=1)


def internal_error() -> ImmError:
    """What IMM answers when the service itself failed; a client retries it."""
    return ImmError(
        500,
        "InternalError",
        "The request processing has failed due to some unknown error, exception or failure.",
    )


def task_failed_file_missing(uri: str) -> TaskFailure:
    return TaskFailure("InvalidArgument", f"File does not exist: {uri}.")


def task_failed_forbidden() -> TaskFailure:
    return TaskFailure("InvalidArgument", "File access forbidden.")

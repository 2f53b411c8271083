"""FC API errors: an HTTP status, an ``ErrorCode`` and an ``ErrorMessage``, sent as JSON.

Codes, statuses and message texts are the ones in FC's error-code table (help "Error codes",
FC 2.0 API). The body uses ``ErrorCode``/``ErrorMessage`` because that is what ``fc2`` reads
(``fc2/client.py`` ``__gen_request_err``); it also calls ``r.json()`` on every 4xx/5xx, so a
non-JSON error body would surface as a ``JSONDecodeError`` instead of ``fc2.FcError``.
"""

from __future__ import annotations

import json

from localcloud.core.http import Response


class FcApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self, request_id: str) -> Response:
        body = json.dumps({"ErrorCode": self.code, "ErrorMessage": self.message}).encode()
        return Response(
            self.status,
            {"Content-Type": "application/json", "X-Fc-Request-Id": request_id},
            body,
        )


def invalid_argument(message: str) -> FcApiError:
    return FcApiError(400, "InvalidArgument", message)


def missing_header(name: str) -> FcApiError:
    return FcApiError(400, "MissingRequiredHeader", f"required HTTP header {name} was not specified")


def path_not_supported(method: str, path: str) -> FcApiError:
    return FcApiError(
        400,
        "PathNotSupported",
        f"'{method}' against '{path}' is not supported by the local FC (it serves InvokeFunction "
        "of the FC 2.0 API, POST /2016-08-15/services/{service}/functions/{function}/invocations, "
        "and its /_localcloud admin endpoints)",
    )


def entity_too_large(limit: int) -> FcApiError:
    return FcApiError(400, "EntityTooLarge", f"payload size exceeds maximum allowed size ({limit} bytes)")


def function_not_found(name: str) -> FcApiError:
    return FcApiError(
        404,
        "FunctionNotFound",
        f"function '{name}' does not exist. Deploy it first: `immflow local deploy s.yaml` "
        "(or POST /_localcloud/deploy).",
    )

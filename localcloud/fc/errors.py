"""FC API errors: an HTTP status, a code and a message, sent as JSON in each API's own shape.

Codes, statuses and message texts are the ones in FC's error-code tables (help "Error codes",
FC 2.0 API, and "api-fc-2023-03-30-errorcodes"); ``docs/fc-api.md`` lists them with their sources.

- FC 2.0 (:meth:`FcApiError.response`): ``{"ErrorCode", "ErrorMessage"}``, because that is what
  ``fc2`` reads (``fc2/client.py`` ``__gen_request_err``); it also calls ``r.json()`` on every
  4xx/5xx, so a non-JSON error body would surface as a ``JSONDecodeError`` instead of ``fc2.FcError``.
- FC 3.0 (:meth:`FcApiError.response_v3`): ``{"Code", "Message", "RequestId"}``, what
  ``alibabacloud_tea_openapi`` reads into ``ClientException.code``/``message``/``request_id``
  (with ``ErrorCode`` it reports ``code=None``).
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

    def response_v3(self, request_id: str) -> Response:
        body = json.dumps({"Code": self.code, "Message": self.message, "RequestId": request_id}).encode()
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
        f"'{method}' against '{path}' is not supported by the local FC (it serves FC 2.0's "
        "InvokeFunction, ListFunctions and GetFunction under /2016-08-15/services/{service}/functions, "
        "FC 3.0's actions under /2023-03-30 listed in docs/local-cloud-compatibility.md, and its "
        "/_localcloud admin endpoints)",
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


def request_time_too_skewed(problem: str) -> FcApiError:
    """A ``Date`` (2.0) or ``x-acs-date`` (3.0) more than 15 minutes off the server's clock.

    FC answers 403 with "the difference between the request time '...' and the current time
    '...' is too large"; the code name is not in FC's tables (see ``docs/fc-api.md``).
    """
    return FcApiError(403, "RequestTimeTooSkewed", problem)


def not_implemented_v3(action: str, method: str, path: str) -> FcApiError:
    return FcApiError(
        501,
        "NotImplemented",
        f"{action or 'this action'} ('{method}' against '{path}') is an FC 3.0 action the local FC does not "
        "serve; docs/local-cloud-compatibility.md lists the ones it does",
    )


def trigger_not_found(function: str, trigger: str) -> FcApiError:
    return FcApiError(404, "TriggerNotFound", f"trigger '{trigger}' of function '{function}' does not exist")


def async_config_not_exists(function: str) -> FcApiError:
    return FcApiError(
        404,
        "AsyncConfigNotExists",
        f"function '{function}' has no async invoke config (set asyncInvokeConfig in s.yaml, or "
        "PutAsyncInvokeConfig)",
    )

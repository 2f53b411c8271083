"""IMM over ``alibabacloud_imm20200930``: create a task (Create*Task), get a task (GetTask), find a task
already created (ListTasks, `find_listed_task`).

Requests travel as IMM's wire-named dicts (what `immflow.tasks` models produce with ``to_wire()``),
turned into the SDK's request models with ``from_map``; the SDK then does the JSON "shrink" encoding
and the ACS3 signature. Error classes (docs/imm.md#wire-protocol, docs/imm.md#errors): ``ThrottlingException``,
any ``Throttling*`` code, 5xx answers and network failures are retryable; every other 4xx
(``InvalidArgument``, ``ResourceNotFound``, ...) is permanent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from immflow.adapters import ServiceError, local_endpoint
from immflow.fc import Credentials

SERVICE = "IMM"


class CreatedTask(NamedTuple):
    task_id: str
    request_id: str
    event_id: str


class ImmAdapter:
    def __init__(
        self,
        *,
        endpoint: str,
        region: str,
        credentials: Credentials | None = None,
        client: Any = None,
    ) -> None:
        self._endpoint = endpoint
        self._region = region
        self._credentials = credentials
        self._client = client
        self._client_given = client is not None

    def use_credentials(self, credentials: Credentials) -> None:
        """Call with these keys from now on (a new client is built only if they changed)."""
        if credentials != self._credentials:
            self._credentials = credentials
            if not self._client_given:
                self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        from alibabacloud_imm20200930.client import Client
        from alibabacloud_tea_openapi.models import Config

        if self._credentials is None:
            raise ServiceError(
                SERVICE, "connect", "MissingCredentials", "no credentials given", retryable=False
            )
        endpoint = self._endpoint
        scheme, _, host = endpoint.rpartition("://")
        protocol = scheme or ("http" if local_endpoint(endpoint) else "https")
        return Client(
            Config(
                access_key_id=self._credentials.access_key_id,
                access_key_secret=self._credentials.access_key_secret,
                security_token=self._credentials.security_token,
                endpoint=host,
                protocol=protocol,
                region_id=self._region,
            )
        )

    def create_task(self, action: str, request: Mapping[str, Any]) -> CreatedTask:
        """Call ``action`` (e.g. ``CreateMediaConvertTask``) with `request` in IMM's field names."""
        body = self._call(action, request)
        return CreatedTask(
            task_id=str(body.get("TaskId") or ""),
            request_id=str(body.get("RequestId") or ""),
            event_id=str(body.get("EventId") or ""),
        )

    def get_task(
        self, project: str, task_type: str, task_id: str, *, request_definition: bool = False
    ) -> dict[str, Any]:
        """GetTask's response body in IMM's field names (``GetTaskResponseBody.to_map()``); with
        `request_definition`, ``TaskRequestDefinition`` holds the create request as JSON text (for the
        task types IMM keeps it for, docs/imm-notifications.md)."""
        request: dict[str, Any] = {"ProjectName": project, "TaskType": task_type, "TaskId": task_id}
        if request_definition:
            request["RequestDefinition"] = True
        return self._call("GetTask", request)

    def find_listed_task(
        self,
        project: str,
        task_type: str,
        *,
        started_since: datetime,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> dict[str, Any] | None:
        """The first task of `task_type` started since `started_since` for which `matches` is true, or
        None. Each candidate is a ListTasks ``TaskInfo`` dict including ``TaskRequestDefinition`` (the
        create request as JSON text); pages are followed until a match or the last page."""
        request: dict[str, Any] = {
            "ProjectName": project,
            "TaskTypes": [task_type],
            # RFC 3339 with whole seconds, as the documented example (docs/imm.md#gettask-listtasks-retention).
            "StartTimeRange": {
                "Start": started_since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            },
            "RequestDefinition": True,
        }
        while True:
            body = self._call("ListTasks", request)
            for task in body.get("Tasks") or []:
                if matches(task):
                    return dict(task)
            if not body.get("NextToken"):
                return None
            request["NextToken"] = body["NextToken"]

    def _call(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        from alibabacloud_imm20200930 import models

        sdk_request = getattr(models, f"{action}Request")().from_map(dict(request))
        method = getattr(self.client, _method_name(type(self.client), action))
        try:
            response = method(sdk_request)
        except Exception as exc:
            raise _service_error(action, exc) from exc
        body: dict[str, Any] = response.body.to_map()
        return body


_METHODS: dict[tuple[type, str], str] = {}


def _method_name(client_class: type, action: str) -> str:
    # The SDK's snake_case is not derivable by rule (CreateImageToPDFTask -> create_image_to_pdftask),
    # so find the method whose name, without underscores, is the action's.
    if (client_class, action) in _METHODS:
        return _METHODS[client_class, action]
    wanted = action.lower()
    for name in dir(client_class):
        if name.replace("_", "") == wanted:
            _METHODS[client_class, action] = name
            return name
    raise ServiceError(
        SERVICE, action, "UnknownAction", f"the IMM SDK has no method for {action}", retryable=False
    )


def _service_error(action: str, exc: Exception) -> ServiceError:
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
    from Tea.exceptions import UnretryableException

    if isinstance(exc, AlibabaCloudException):
        code = str(exc.code or "")
        status = exc.status_code
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("Message") or exc.message or "")
        throttled = isinstance(exc, ThrottlingException) or code.startswith("Throttling")
        retryable = throttled or (status is not None and status >= 500)
        retry_after = float(exc.retry_after) if getattr(exc, "retry_after", None) else None
        return ServiceError(
            SERVICE,
            action,
            code or "Unknown",
            message,
            status=status,
            retryable=retryable,
            retry_after=retry_after,
        )
    if isinstance(exc, (UnretryableException, OSError)):
        return ServiceError(SERVICE, action, "NetworkError", str(exc), retryable=True)
    return ServiceError(SERVICE, action, type(exc).__name__, str(exc), retryable=False)

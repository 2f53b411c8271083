"""The RPC wire format of IMM 2020-09-30 as the official SDK speaks it (docs/imm.md#wire-protocol).

* Every action is ``POST /``; the action comes from ``x-acs-action`` (ACS3) or ``Action`` (v1).
* Parameters come from the query string and from an ``application/x-www-form-urlencoded`` body
  (``CreateOfficeConversionTask`` sends ``Sources`` there); the query wins on a clash.
* Nested objects and arrays travel as one JSON string per parameter (:data:`JSON_PARAMETERS`);
  ``[]`` means "not set", because the SDK sends unset list fields as empty arrays.
* Answers are JSON; errors are ``{RequestId, HostId, Code, Message, Recommend}``.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from localcloud.core.http import Request, Response
from localcloud.imm.errors import ImmError, invalid_argument, missing_parameter

#: Parameters whose value is a JSON document (docs/imm.md#wire-protocol, every action of SDK 5.0.3).
JSON_PARAMETERS = frozenset(
    {
        "CredentialConfig",
        "Notification",
        "Sources",
        "Tags",
        "TargetGroups",
        "Targets",
        "TrimPolicy",
        "SelectedFiles",
        "Scenes",
        "TaskTypes",
        "StartTimeRange",
        "EndTimeRange",
        "Tag",
        "KdtreeOption",
        "OctreeOption",
        "PointCloudFields",
        "Froms",
        "DateOptions",
        "LocationOptions",
        "Edit",
        "Highlight",
        "Output",
    }
)
#: Parameters of the RPC v1 signature; they are not action parameters.
V1_SIGNATURE_PARAMETERS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "Timestamp",
        "SignatureNonce",
        "SignatureMethod",
        "SignatureVersion",
        "AccessKeyId",
        "SecurityToken",
        "Signature",
        "RegionId",
    }
)
_BASE62 = string.digits + string.ascii_letters


def form_params(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded" or not request.body:
        return {}
    try:
        return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise invalid_argument("The form body is not UTF-8 text.") from None


def action_of(request: Request, query: Mapping[str, str]) -> str:
    return request.headers.get("x-acs-action") or query.get("Action", "")


def decode_params(raw: Mapping[str, str]) -> dict[str, Any]:
    """Action parameters with JSON documents decoded and ``[]`` (the SDK's unset list) dropped."""
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if name in V1_SIGNATURE_PARAMETERS:
            continue
        if name in JSON_PARAMETERS:
            try:
                decoded = json.loads(value)
            except json.JSONDecodeError as exc:
                raise invalid_argument(
                    f"The parameter {name} is not valid JSON ({exc.msg} at character {exc.pos + 1})."
                ) from None
            if decoded == []:
                continue
            params[name] = decoded
        else:
            params[name] = value
    return params


def text(params: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_parameter(name)
        return default
    if not isinstance(value, str):
        raise invalid_argument(f"The parameter {name} must be a string.")
    return value


def boolean(params: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """``True``/``true``/``TRUE`` and the like: the Python SDK renders booleans with ``str()``."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise invalid_argument(f"The parameter {name} must be true or false, not {value!r}.")


def integer(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise invalid_argument(f"The parameter {name} must be an integer, not {value!r}.") from None
    if not low <= number <= high:
        raise invalid_argument(f"The parameter {name} must be between {low} and {high}, not {number}.")
    return number


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def new_event_id() -> str:
    """``<3 hex>-<27 base62>``, the shape of the EventId IMM returns (docs/imm.md#notifications)."""
    return f"{secrets.token_hex(2)[:3].upper()}-" + "".join(secrets.choice(_BASE62) for _ in range(27))


def rfc3339(epoch_seconds: float | None) -> str:
    """UTC with milliseconds and ``Z``, as GetTask shows times (``2024-04-01T06:05:40.278Z``)."""
    if epoch_seconds is None:
        return ""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str, field: str) -> float:
    """An RFC 3339 time with ``Z`` or an offset (``2016-12-31T00:00:00+08:00``); no offset means UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid_argument(
            f"The parameter {field} must be an RFC 3339 time such as 2024-01-31T08:00:00Z, not {value!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def json_response(body: Mapping[str, Any], request_id: str) -> Response:
    return Response(
        200,
        {"Content-Type": "application/json;charset=utf-8", "x-acs-request-id": request_id},
        json.dumps(body, ensure_ascii=False).encode(),
    )


def error_response(error: ImmError, request_id: str, host: str) -> Response:
    body = {
        "RequestId": request_id,
        "HostId": host,
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"https://next.api.aliyun.com/troubleshoot?q={error.code}&product=imm",
    }
    headers = {"Content-Type": "application/json;charset=utf-8", "x-acs-request-id": request_id}
    if error.retry_after is not None:
        headers["x-acs-retry-after"] = str(error.retry_after)
    return Response(error.status, headers, json.dumps(body, ensure_ascii=False).encode())

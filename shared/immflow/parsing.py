"""Turn raw payloads into typed models, failing with a `PayloadError` that names the payload and the field.

Every edge that parses something from the cloud goes through here, so a user meets one kind of error
("malformed OSS trigger event at events.0.oss.object.key: field required"), never a `KeyError`, a
`json.JSONDecodeError` or a page-long pydantic dump.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError

from immflow.errors import PayloadError

ModelT = TypeVar("ModelT", bound=BaseModel)

# pydantic's own wording for these is either vague ("Extra inputs are not permitted") or long.
_SHORT_PROBLEMS = {
    "missing": "field required",
    "extra_forbidden": "unknown field (not accepted here)",
}
_INPUT_PREVIEW_CHARS = 80
TOO_DEEP = "nested too deeply to parse (no payload of the cloud nests more than a few levels)"
"""The problem of a payload whose nesting would exhaust Python's stack (json and pydantic recurse)."""


def _assume_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_assume_utc)]
"""An RFC 3339 time as the cloud writes it: any number of fraction digits (nanoseconds are truncated to
microseconds), ``Z`` or a numeric offset. A time without an offset is read as UTC, because every
Alibaba Cloud API involved documents its times as UTC; the result is therefore always timezone-aware."""


def _from_epoch_ms(value: object) -> object:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return value


EpochMsDatetime = Annotated[UtcDatetime, BeforeValidator(_from_epoch_ms)]
"""A time written as Unix epoch milliseconds, an int or a digit string (MNS ``PublishTime``, the IMM
envelope's ``time``); any other value is read as RFC 3339, as `UtcDatetime`."""


def parse_model(model_cls: type[ModelT], data: object, kind: str, *, strict: bool = False) -> ModelT:
    """Validate `data` as `model_cls`; on failure raise `PayloadError(kind, <dotted path>, <problem>)`.

    The first error is reported (its location as a dotted path, list indexes as numbers:
    ``events.0.oss.object.key``); the count of further errors is appended so nothing is hidden.
    `strict=True` disables pydantic's type coercion (``"3"`` is then not an int), for payloads whose
    producer is typed, such as the JSON-string parameters of an IMM request.
    """
    try:
        return model_cls.model_validate(data, strict=strict)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    except RecursionError:
        raise PayloadError(kind, "", TOO_DEEP) from None
    first = errors[0]
    problem = _problem(first)
    if len(errors) > 1:
        others = len(errors) - 1
        problem += f" (and {others} more problem{'s' if others > 1 else ''})"
    raise PayloadError(kind, ".".join(str(part) for part in first["loc"]), problem)


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind in _SHORT_PROBLEMS:
        return _SHORT_PROBLEMS[kind]
    message: str = error["msg"]
    if kind == "value_error":
        # Our own validators already write a complete sentence; pydantic prefixes it with "Value error, ".
        return message.removeprefix("Value error, ")
    if kind == "literal_error":
        # Lead with the bad value: the list of accepted ones can be long.
        return f"unknown value {_preview(error.get('input'))}; expected {error['ctx']['expected']}"
    message = message[:1].lower() + message[1:]
    return f"{message} (got {_preview(error.get('input'))})"


def _preview(value: object) -> str:
    text = repr(value)
    if len(text) > _INPUT_PREVIEW_CHARS:
        text = text[: _INPUT_PREVIEW_CHARS - 3] + "..."
    return text


def load_json(text: str | bytes, kind: str, field: str = "") -> Any:
    """`json.loads` that raises `PayloadError` naming the payload (and `field`, for JSON nested in a string)."""
    try:
        # Decoded here rather than by json.loads, which would also guess UTF-16/32 from the first bytes.
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise PayloadError(kind, field, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            kind, field, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise PayloadError(kind, field, TOO_DEEP) from None


def expect_object(value: object, kind: str, field: str = "") -> dict[str, Any]:
    """`value` if it is a JSON object, else a `PayloadError` saying what it was instead."""
    if not isinstance(value, dict):
        raise PayloadError(kind, field, f"expected a JSON object, got {_json_type_name(value)}")
    return value


def _json_type_name(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

"""FC's rules for function and trigger names, checked before a deploy touches any file.

From the FC 3.0 API (CreateFunction ``functionName``, CreateTrigger ``triggerName``; the same
text is in ``alibabacloud_fc20230330/models``): letters, digits, ``_`` and ``-``, not starting
with a digit or ``-``; functions 1-64 characters, triggers 1-128. A name that passes can never
hold ``/``, ``..``, NUL or an absolute path, so the folders named after it stay inside the
state folder. See ``docs/fc-api.md``.
"""

from __future__ import annotations

import re

FUNCTION_NAME_MAX = 64
TRIGGER_NAME_MAX = 128
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class InvalidName(ValueError):
    """A function or trigger name FC would refuse; the message names the field and the rule."""


def _check(kind: str, name: object, limit: int, where: str) -> None:
    if not isinstance(name, str) or not name or len(name) > limit or not _NAME.fullmatch(name):
        raise InvalidName(
            f"{where}: {kind} name {name!r} is invalid: FC accepts 1 to {limit} letters, digits, '_' "
            "and '-', starting with a letter or '_'"
        )


def check_function_name(name: object, where: str = "functionName") -> None:
    _check("function", name, FUNCTION_NAME_MAX, where)


def check_trigger_name(name: object, where: str = "triggerName") -> None:
    _check("trigger", name, TRIGGER_NAME_MAX, where)

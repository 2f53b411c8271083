"""TargetURI templates: one implementation for the functions (to predict outputs) and the local IMM (to name them).

Syntax (imm-api.md §2): ``{name}`` placeholders, ``{tags.KEY}`` for a value of the task's ``Tags``,
``{{`` and ``}}`` for literal braces. Choices where the docs are silent (imm-facts-2.md §3):

* An unknown variable, a variable the task type does not provide, or a tag the task does not set
  is an error that names it, never an empty string or the literal text.
* ``{dirname}`` of an object at the bucket root is ``""``, as in the cloud, so
  ``oss://{bucket}/{dirname}/x.jpg`` gives ``oss://b//x.jpg``, a key starting with ``/`` that IMM
  refuses. ``immflow validate`` warns about rules where that can happen.
* Date variables (upload time ``year``..``sec``, task time ``t_year``..``t_sec``) are in UTC.
* ``ext`` is the source key's extension as written (no MIME sniffing), ``""`` when it has none.
* Values are inserted as they are, without escaping; tag values that are numbers or booleans are
  written as JSON writes them (``2``, ``true``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from immflow.errors import ImmflowError
from immflow.ossuri import OssUri

SOURCE_VARIABLES = frozenset({"bucket", "key", "dirname", "barename", "basename", "ext"})
UPLOAD_TIME_VARIABLES = frozenset({"year", "mon", "day", "hour", "min", "sec"})
TASK_TIME_VARIABLES = frozenset({"t_" + name for name in UPLOAD_TIME_VARIABLES})
PUBLIC_VARIABLES = SOURCE_VARIABLES | UPLOAD_TIME_VARIABLES | TASK_TIME_VARIABLES

#: Variables only some task types provide, for the outputs they name (imm-api.md §2.3).
TASK_SPECIFIC_VARIABLES: Mapping[str, frozenset[str]] = {
    "MediaConvert": frozenset({"streamindex", "index", "resolution", "autoext"}),
    "OfficeConversion": frozenset({"index", "sheetname", "autoext"}),
}
TAGS_PREFIX = "tags."

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")
_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|tags\.[^{}\s]+)$")


class TemplateError(ImmflowError, ValueError):
    """A TargetURI template cannot be used: bad syntax, an unknown variable or a missing tag."""

    def __init__(self, template: str, problem: str, variable: str = "") -> None:
        self.template = template
        self.variable = variable
        self.problem = problem
        super().__init__(f"TargetURI template {template!r}: {problem}")


def allowed_variables(task_type: str | None) -> frozenset[str]:
    """The built-in variables a template of ``task_type`` may use (``None``: public variables only)."""
    return PUBLIC_VARIABLES | TASK_SPECIFIC_VARIABLES.get(task_type or "", frozenset())


@dataclass(frozen=True)
class Template:
    text: str
    #: Literal text and variable names, alternating: even items are literals, odd items names.
    parts: tuple[str, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names as written, in order (``tags.custom`` included)."""
        return self.parts[1::2]

    @property
    def tag_keys(self) -> frozenset[str]:
        return frozenset(v[len(TAGS_PREFIX) :] for v in self.variables if v.startswith(TAGS_PREFIX))

    @property
    def builtin_variables(self) -> frozenset[str]:
        return frozenset(v for v in self.variables if not v.startswith(TAGS_PREFIX))

    def check(self, task_type: str | None, tags: Mapping[str, Any] | None = None) -> None:
        """Refuse variables ``task_type`` does not provide, and (when ``tags`` is given) tags it does not set."""
        allowed = allowed_variables(task_type)
        for name in self.builtin_variables:
            if name not in allowed:
                raise TemplateError(self.text, _unknown_variable_problem(name, task_type), name)
        if tags is not None:
            for key in sorted(self.tag_keys):
                if key not in tags:
                    raise TemplateError(
                        self.text,
                        f"{{tags.{key}}} uses tag {key!r}, which the task does not set",
                        f"tags.{key}",
                    )

    def expand(self, values: Mapping[str, str], tags: Mapping[str, Any] | None = None) -> str:
        out: list[str] = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
            elif part.startswith(TAGS_PREFIX):
                key = part[len(TAGS_PREFIX) :]
                if tags is None or key not in tags:
                    raise TemplateError(self.text, f"the task sets no tag {key!r} for {{{part}}}", part)
                out.append(_tag_text(self.text, key, tags[key]))
            elif part in values:
                out.append(values[part])
            else:
                raise TemplateError(self.text, f"no value for variable {{{part}}}", part)
        return "".join(out)


def _unknown_variable_problem(name: str, task_type: str | None) -> str:
    providers = sorted(t for t, names in TASK_SPECIFIC_VARIABLES.items() if name in names)
    if providers:
        return (
            f"{{{name}}} is only provided by {' and '.join(providers)} tasks, not {task_type or 'this task'}"
        )
    known = ", ".join(sorted(PUBLIC_VARIABLES))
    return f"unknown variable {{{name}}}; the variables are {known}, the task-specific ones and {{tags.KEY}}"


def _tag_text(template: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(
        template, f"tag {key!r} is a {type(value).__name__}, which cannot go in a path", f"tags.{key}"
    )


@cache
def parse(text: str) -> Template:
    """Parse ``text``; raise :class:`TemplateError` on an unmatched brace or an empty/invalid name."""
    parts: list[str] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif match.group(1) is None:
            raise TemplateError(
                text,
                f"unmatched {token!r} at character {match.start() + 1}; write {token * 2} for a literal brace",
            )
        else:
            name = match.group(1).strip()
            if not _NAME.match(name):
                raise TemplateError(text, f"{{{match.group(1)}}} is not a variable name", name)
            parts.append("".join(literal))
            parts.append(name)
            literal = []
    literal.append(text[position:])
    parts.append("".join(literal))
    return Template(text, tuple(parts))


def _time_parts(moment: datetime, prefix: str = "") -> dict[str, str]:
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return {
        prefix + "year": f"{utc.year:04d}",
        prefix + "mon": f"{utc.month:02d}",
        prefix + "day": f"{utc.day:02d}",
        prefix + "hour": f"{utc.hour:02d}",
        prefix + "min": f"{utc.minute:02d}",
        prefix + "sec": f"{utc.second:02d}",
    }


def public_values(source: OssUri, *, upload_time: datetime, task_time: datetime) -> dict[str, str]:
    """The public variables for ``source`` (its bucket and key, upload time) and the task's creation time."""
    values = {
        "bucket": source.bucket,
        "key": source.key,
        "dirname": source.dirname,
        "barename": source.barename,
        "basename": source.basename,
        "ext": source.ext,
    }
    values.update(_time_parts(upload_time))
    values.update(_time_parts(task_time, "t_"))
    return values


def expand(
    template: str,
    *,
    source: OssUri,
    upload_time: datetime,
    task_time: datetime,
    tags: Mapping[str, Any] | None = None,
    task_type: str | None = None,
    task_values: Mapping[str, str] | None = None,
) -> str:
    """Expand ``template`` for one output of a task.

    ``task_values`` are the task-specific variables of this output (``index``, ``autoext``...);
    using one ``task_type`` does not provide is an error even when a value is given.
    """
    parsed = parse(template)
    parsed.check(task_type)
    values = public_values(source, upload_time=upload_time, task_time=task_time)
    if task_values:
        values.update(task_values)
    return parsed.expand(values, tags)

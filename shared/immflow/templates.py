"""TargetURI templates: one implementation for the functions (to predict outputs) and the local IMM (to name them).

Syntax (docs/imm.md#targeturi-templates): ``{name}`` placeholders, ``{tags.KEY}`` for a value of the task's ``Tags``,
``{{`` and ``}}`` for literal braces. Choices where the docs are silent (docs/imm.md#targeturi-templates):

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from immflow.errors import ImmflowError
from immflow.ossuri import SCHEME, OssUri, check_bucket_name
from immflow.tasks import FILE, TASK_TYPES, OutputShape

SOURCE_VARIABLES = frozenset({"bucket", "key", "dirname", "barename", "basename", "ext"})
UPLOAD_TIME_VARIABLES = frozenset({"year", "mon", "day", "hour", "min", "sec"})
TASK_TIME_VARIABLES = frozenset({"t_" + name for name in UPLOAD_TIME_VARIABLES})
PUBLIC_VARIABLES = SOURCE_VARIABLES | UPLOAD_TIME_VARIABLES | TASK_TIME_VARIABLES

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


@cache
def task_specific_variables() -> Mapping[str, frozenset[str]]:
    """Variables only some task types provide, for the outputs they name (`TaskRequest.TEMPLATE_VARIABLES`),
    by task type. It loads every type's model: for checks and error messages, not for a function's
    own templates (`allowed_variables`)."""
    return {
        task_type: request.TEMPLATE_VARIABLES
        for task_type, request in TASK_TYPES.items()
        if request.TEMPLATE_VARIABLES
    }


def allowed_variables(task_type: str | None) -> frozenset[str]:
    """The built-in variables a template of ``task_type`` may use (``None``: public variables only)."""
    if task_type is None or task_type not in TASK_TYPES:
        return PUBLIC_VARIABLES
    return PUBLIC_VARIABLES | TASK_TYPES[task_type].TEMPLATE_VARIABLES


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
    def builtin_variables(self) -> frozenset[str]:
        return frozenset(v for v in self.variables if not v.startswith(TAGS_PREFIX))

    def check(self, task_type: str | None, tags: Mapping[str, Any] | None = None) -> None:
        """Refuse variables ``task_type`` does not provide, and (when ``tags`` is given) tags it does not set."""
        problems = self.problems(task_type, tags)
        if problems:
            raise problems[0]

    def problems(self, task_type: str | None, tags: Mapping[str, Any] | None = None) -> list[TemplateError]:
        """Every reason `check` would refuse the template, in the order the variables are written."""
        allowed = allowed_variables(task_type)
        found: list[TemplateError] = []
        for name in dict.fromkeys(self.variables):
            if name.startswith(TAGS_PREFIX):
                key = name[len(TAGS_PREFIX) :]
                if tags is not None and key not in tags:
                    problem = f"{{tags.{key}}} uses tag {key!r}, which the task does not set"
                    found.append(TemplateError(self.text, problem, name))
            elif name not in allowed:
                found.append(TemplateError(self.text, _unknown_variable_problem(name, task_type), name))
        return found

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
    providers = sorted(t for t, names in task_specific_variables().items() if name in names)
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


# Output patterns: which objects a task wrote, found by listing OSS (IMM does not list every output it
# writes, docs/imm.md#notifications), and which objects are some task's output (the loop guard).

#: What IMM may put where a task-specific variable stands (docs/imm.md#targeturi-templates): ``index`` is ``6_12`` for
#: spreadsheet images; ``sheetname`` is a worksheet name, which Excel forbids to contain ``/``.
TASK_VARIABLE_PATTERNS: Mapping[str, str] = {
    "index": r"[0-9]+(?:_[0-9]+)?",
    "streamindex": r"[0-9]+",
    "resolution": r"[0-9]*x[0-9]*",
    "autoext": r"[A-Za-z0-9]+",
    "sheetname": r"[^/]+",
}
#: A value IMM could put where each task-specific variable stands, for checks that expand a template
#: without a real output (the local IMM's create-time check, `immflow validate`'s loop examples).
TASK_VARIABLE_EXAMPLES: Mapping[str, str] = {
    "index": "1",
    "streamindex": "0",
    "resolution": "1280x720",
    "autoext": "dat",
    "sheetname": "Sheet1",
}
#: What any source can put where a public variable stands (see `OssUri` for the parts of a key).
PUBLIC_VARIABLE_PATTERNS: Mapping[str, str] = {
    "bucket": r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
    "key": r".+",
    "dirname": r".*",
    "basename": r"[^/]+",
    "barename": r"[^/]+",
    "ext": r"[^/.]*",
    **{name: r"[0-9]{4}" if name.endswith("year") else r"[0-9]{2}" for name in UPLOAD_TIME_VARIABLES},
    **{name: r"[0-9]{4}" if name.endswith("year") else r"[0-9]{2}" for name in TASK_TIME_VARIABLES},
}
#: Variables whose value may contain a dot, so that a file name ending with one may or may not have
#: an extension (``ext`` never holds a dot; a tag value unknown to the pattern may).
_MAY_HOLD_A_DOT = frozenset({"key", "dirname", "basename", "barename", "sheetname"})


@dataclass(frozen=True)
class _Piece:
    """Literal text, or (``wildcard``) a regex standing for a value the pattern does not know."""

    text: str
    wildcard: bool = False
    may_hold_dot: bool = False

    @property
    def regex(self) -> str:
        return self.text if self.wildcard else re.escape(self.text)


def output_pattern(
    template: str,
    *,
    source: OssUri,
    upload_time: datetime,
    task_time: datetime,
    tags: Mapping[str, Any] | None = None,
    task_type: str | None = None,
    shape: OutputShape = FILE,
) -> tuple[OssUri, re.Pattern[str]]:
    """The outputs one target template of a task for ``source`` can produce.

    Returns ``(list_prefix, key_pattern)``: list the objects of ``list_prefix.bucket`` whose key
    starts with ``list_prefix.key`` and keep those ``key_pattern`` matches (it is anchored at both
    ends, so ``match`` and ``fullmatch`` agree). Public and ``{tags.*}`` variables are expanded;
    task-specific variables (``index``, ``autoext``...) become wildcards; the list prefix is the
    static text before the first wildcard. Raises `TemplateError` for a variable the task type does
    not provide, a tag missing from ``tags``, or a template that cannot name an object in a bucket.
    """
    parsed = parse(template)
    parsed.check(task_type, tags if tags is not None else {})
    values = public_values(source, upload_time=upload_time, task_time=task_time)

    def resolve(name: str) -> _Piece:
        if name.startswith(TAGS_PREFIX):
            key = name[len(TAGS_PREFIX) :]
            return _Piece(_tag_text(template, key, (tags or {})[key]))
        if name in values:
            return _Piece(values[name])
        return _Piece(TASK_VARIABLE_PATTERNS[name], wildcard=True, may_hold_dot=name in _MAY_HOLD_A_DOT)

    pieces = _with_tail(template, _pieces(parsed, resolve), shape)
    static = "" if pieces[0].wildcard else pieces[0].text
    if not static.startswith(SCHEME):
        raise TemplateError(template, f"it does not expand to an {SCHEME}<bucket>/<key> URI")
    bucket, slash, key_prefix = static[len(SCHEME) :].partition("/")
    if not slash:
        raise TemplateError(template, "the bucket must not depend on a task-specific variable")
    problem = check_bucket_name(bucket)
    if problem is not None:
        raise TemplateError(template, problem)
    rest = "".join(piece.regex for piece in pieces[1:])
    return OssUri(bucket, key_prefix), re.compile(rf"\A{re.escape(key_prefix)}{rest}\Z", re.DOTALL)


def wildcard_pattern(
    template: str,
    *,
    tags: Mapping[str, Any] | None = None,
    task_type: str | None = None,
    shape: OutputShape = FILE,
) -> re.Pattern[str]:
    """A pattern for the whole URI (``oss://bucket/key``) of every output ``template`` can name, for any source.

    Every variable is a wildcard, except the ``{tags.*}`` given in ``tags`` (a task's tags are known
    from the pipeline). The runtime loop guard uses it: an upload that matches is some task's output.
    """
    parsed = parse(template)
    parsed.check(task_type)

    def resolve(name: str) -> _Piece:
        if name.startswith(TAGS_PREFIX):
            key = name[len(TAGS_PREFIX) :]
            if tags is not None and key in tags:
                return _Piece(_tag_text(template, key, tags[key]))
            return _Piece(r".*", wildcard=True, may_hold_dot=True)
        regex = PUBLIC_VARIABLE_PATTERNS.get(name) or TASK_VARIABLE_PATTERNS[name]
        return _Piece(regex, wildcard=True, may_hold_dot=name in _MAY_HOLD_A_DOT)

    pieces = _with_tail(template, _pieces(parsed, resolve), shape)
    return re.compile(rf"\A{''.join(piece.regex for piece in pieces)}\Z", re.DOTALL)


def _pieces(parsed: Template, resolve: Callable[[str], _Piece]) -> list[_Piece]:
    """The template as literal text and wildcards, adjacent texts merged."""
    pieces: list[_Piece] = []
    for index, part in enumerate(parsed.parts):
        piece = _Piece(part) if index % 2 == 0 else resolve(part)
        if pieces and not piece.wildcard and not pieces[-1].wildcard:
            pieces[-1] = _Piece(pieces[-1].text + piece.text)
        elif piece.wildcard or piece.text:
            pieces.append(piece)
    return pieces or [_Piece("")]


def _with_tail(template: str, pieces: list[_Piece], shape: OutputShape) -> list[_Piece]:
    """``pieces`` plus what IMM adds to the name for ``shape`` (see `OutputShape`)."""
    if shape.layout == "file":
        return pieces
    if shape.layout == "folder":
        if pieces[-1].wildcard or not pieces[-1].text.endswith("/"):
            raise TemplateError(template, "a folder target must end with '/'")
        return [*pieces, _Piece(r".+", wildcard=True)]
    if shape.layout == "subtitle":
        return [*pieces, _Piece(r"_[0-9]+\.[A-Za-z0-9]+", wildcard=True)]
    if shape.layout == "media":
        if shape.segment_format in ("hls", "dash"):
            playlist = "m3u8" if shape.segment_format == "hls" else "mpd"
            tail = rf"(?:\.{playlist}|[^/]*\.[A-Za-z0-9]+)"
        else:
            tail = r"\." + (re.escape(shape.container) if shape.container else "[A-Za-z0-9]+")
    else:
        tail = r"[^/]*\." + (re.escape(shape.image_format) if shape.image_format else "[A-Za-z0-9]+")
    has_extension = _has_extension(pieces)
    if has_extension is True:
        return pieces
    return [*pieces, _Piece(tail if has_extension is False else f"(?:{tail})?", wildcard=True)]


def _has_extension(pieces: list[_Piece]) -> bool | None:
    """Whether the file name (the last path segment) has an extension; ``None`` when a wildcard decides.

    As `OssUri.ext` reads it: a dot that is not the name's first character, with something after it.
    """
    name: list[_Piece] = []
    for piece in reversed(pieces):
        if not piece.wildcard and "/" in piece.text:
            name.insert(0, _Piece(piece.text.rsplit("/", 1)[1]))
            break
        name.insert(0, piece)
    before_dot = False
    for position, piece in enumerate(name):
        if not piece.wildcard:
            dot = piece.text.rfind(".")
            followed = dot < len(piece.text) - 1 or position < len(name) - 1
            if dot >= 0 and (dot > 0 or before_dot) and followed:
                return True
        before_dot = before_dot or bool(piece.text)
    return None if any(piece.wildcard and piece.may_hold_dot for piece in name) else False

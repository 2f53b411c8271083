"""The pipeline language: ``pipeline.yaml`` as typed models, and the questions the functions ask of it.

Schema (docs/design.md#pipelineyaml): ``version``, ``max_depth`` and ``rules``; a rule has a
``name``, a ``match`` (which uploads), ``tags``, ``tasks`` (IMM tasks started for the upload) and
``then`` (follow-up tasks started when one of the rule's tasks ends). Every mapping refuses unknown
keys, so a misspelt key is an error, not a silently ignored line.

Choices where the cloud is silent or the language had to decide:

* ``match.suffixes`` and ``match.content_types`` are case-insensitive (cameras write ``.JPG``);
  ``match.prefix`` is literal and case-sensitive, as OSS trigger prefixes are.
* ``match.events`` are OSS event names with or without the ``oss:`` prefix, ``*`` matching any
  run of characters (``ObjectCreated:*``); each must name at least one event an OSS trigger can
  deliver.
* ``match.content_types`` is compared with ``objectMeta.mimeType`` only when the event carries it
  (its presence is UNCONFIRMED, docs/events.md#oss-trigger-event): an event without it is not refused for it.

The models alone check only the schema; `immflow.validation` checks the rest (templates, parameters,
loops, follow-ups); `immflow.pipeline_file.load_pipeline` reads a file, refusing one with any error
`immflow validate` reports.
"""

from __future__ import annotations

import builtins
import difflib
import re
from functools import cached_property
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from immflow.archives import ArchiveLimits
from immflow.errors import ImmflowError
from immflow.events.oss import OSS_EVENT_NAMES
from immflow.ossuri import OssUri, check_bucket_name, check_object_key
from immflow.tasks import TASK_TYPES, TargetField, TaskRequest
from immflow.templates import wildcard_pattern

OSS_EVENT_PREFIX = "oss:"
DEFAULT_EVENTS = ("ObjectCreated:*",)
#: The events an OSS trigger can be configured for: the fc3 schema's enum (docs/fc.md) has
#: no ObjectReplication events, although the FC 2.0 SDK names them as deliverable.
TRIGGER_EVENT_NAMES = tuple(
    sorted(name for name in OSS_EVENT_NAMES if not name.startswith("ObjectReplication:"))
)
CREATED_WILDCARD = "ObjectCreated:*"
#: Steps of a multipart upload: they fire before the object exists as a whole, so no rule may start
#: media work on them; ``ObjectCreated:*`` in a rule means every *finished* object.
PARTIAL_UPLOAD_EVENTS = frozenset(
    {"ObjectCreated:InitiateMultipartUpload", "ObjectCreated:UploadPart", "ObjectCreated:UploadPartCopy"}
)
#: The events a rule can listen to.
RULE_EVENT_NAMES = tuple(name for name in TRIGGER_EVENT_NAMES if name not in PARTIAL_UPLOAD_EVENTS)
#: OSS accepts at most this many native triggers per bucket (docs/events.md#oss-trigger-event).
MAX_TRIGGERS_PER_BUCKET = 10

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63)]
TagValue = str | bool | int | float
Tags = dict[str, TagValue]
#: The task endings a ``then:`` rule can follow (``on:``); a Lost task starts no follow-up.
FollowedOutcome = Literal["Succeeded", "Failed"]


class UnknownTaskError(ImmflowError, LookupError):
    """A rule or task name that the pipeline does not define (a ledger entry from an older pipeline?)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _event_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


def without_oss_prefix(event_name: str) -> str:
    return event_name.removeprefix(OSS_EVENT_PREFIX)


def _suffix_list(value: list[str]) -> list[str]:
    for suffix in value:
        if not suffix:
            raise ValueError("a suffix must not be empty; leave suffixes out to accept every key")
        if "/" in suffix:
            raise ValueError(f"suffix {suffix!r} contains '/'; a suffix is the end of a file name, like .mp4")
    return value


class Match(_Model):
    """Which uploads start the rule's tasks."""

    bucket: str | None = None
    prefix: str = ""
    suffixes: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)
    content_types: list[str] = Field(default_factory=list)
    min_size: NonNegativeInt | None = None
    max_size: NonNegativeInt | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        problem = None if value is None else check_bucket_name(value)
        if problem is not None:
            raise ValueError(f"{problem}; leave bucket out to accept the bucket the OSS trigger is on")
        return value

    @field_validator("prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        problem = check_object_key(value, allow_prefix=True)
        if problem is not None:
            raise ValueError(f"prefix {value!r}: {problem}; write a folder like uploads/videos/")
        return value

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, value: list[str]) -> list[str]:
        return _suffix_list(value)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        names = [without_oss_prefix(name) for name in value]
        for name in names:
            if name in PARTIAL_UPLOAD_EVENTS:
                raise ValueError(
                    f"event {name!r} is a step of a multipart upload, not a finished object; "
                    "use ObjectCreated:CompleteMultipartUpload (or ObjectCreated:*)"
                )
            if not any(_event_regex(name).match(known) for known in RULE_EVENT_NAMES):
                raise ValueError(
                    f"event {name!r} names no event an OSS trigger delivers; use ObjectCreated:* or one of "
                    + ", ".join(RULE_EVENT_NAMES)
                )
        return names

    @field_validator("content_types")
    @classmethod
    def _media_types(cls, value: list[str]) -> list[str]:
        for media_type in value:
            if not re.fullmatch(r"[\w.+-]+/(?:[\w.+-]+|\*)|\*/\*", media_type):
                raise ValueError(f"content type {media_type!r} is not type/subtype or type/* (like video/*)")
        return [media_type.lower() for media_type in value]

    @model_validator(mode="after")
    def _size_bounds(self) -> Match:
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise ValueError(
                f"min_size {self.min_size} is larger than max_size {self.max_size}; swap them or drop one"
            )
        return self

    def trigger_events(self) -> frozenset[str]:
        """The concrete OSS event names (without ``oss:``) the rule listens to."""
        return frozenset(
            known for known in RULE_EVENT_NAMES if any(_event_regex(p).match(known) for p in self.events)
        )

    def accepts_event(self, event_name: str) -> bool:
        name = without_oss_prefix(event_name)
        return name in self.trigger_events()

    def accepts_key(self, key: str) -> bool:
        return key.startswith(self.prefix) and has_suffix(key, self.suffixes)

    def accepts(
        self,
        bucket: str,
        key: str,
        event_name: str,
        size: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Whether an OSS event for ``oss://bucket/key`` starts this rule (see the module docstring)."""
        if self.bucket is not None and bucket != self.bucket:
            return False
        if not self.accepts_key(key) or not self.accepts_event(event_name):
            return False
        if size is not None:
            if self.min_size is not None and size < self.min_size:
                return False
            if self.max_size is not None and size > self.max_size:
                return False
        if content_type and self.content_types:
            media_type = content_type.split(";", 1)[0].strip().lower()
            major = media_type.split("/", 1)[0]
            return any(wanted in (media_type, f"{major}/*", "*/*") for wanted in self.content_types)
        return True


def has_suffix(key: str, suffixes: list[str]) -> bool:
    """Case-insensitive; an empty list accepts every key."""
    lowered = key.lower()
    return not suffixes or any(lowered.endswith(suffix.lower()) for suffix in suffixes)


class TaskSpec(_Model):
    """One IMM task: its ``params`` are the Create*Task parameters without the fields immflow fills in."""

    name: Name
    type: str
    tags: Tags = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, Any] = Field(default_factory=dict)
    """Extra fields for each ``Sources[]`` entry, for the task types that read ``Sources``."""
    limits: ArchiveLimits | None = None
    """FileUncompression only: entry count and uncompressed size the source zip may declare, checked
    before the task is created (`immflow.archives`); unset, IMM's own limits."""

    @model_validator(mode="after")
    def _limits_only_for_uncompression(self) -> TaskSpec:
        if self.limits is not None and self.type != "FileUncompression":
            raise ValueError(
                f"limits: applies to FileUncompression tasks only (an archive's entries and uncompressed "
                f"size); remove it from this {self.type} task"
            )
        return self

    @property
    def archive_limits(self) -> ArchiveLimits | None:
        """The limits to check before creating the task: its own, or IMM's for every FileUncompression."""
        if self.type != "FileUncompression":
            return None
        return self.limits or ArchiveLimits()

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TASK_TYPES:
            close = difflib.get_close_matches(value, list(TASK_TYPES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown task type {value!r}{hint}; use one of {', '.join(TASK_TYPES)}")
        return value

    @property
    def request_class(self) -> builtins.type[TaskRequest]:
        return TASK_TYPES[self.type]

    def with_sources(self, uris: list[str]) -> dict[str, Any]:
        """``params`` with the source fields filled in (`TaskRequest.with_sources`).

        ProjectName, Notification, Tags and UserData are still left to the caller.
        """
        if not uris:
            raise ValueError(f"task {self.name!r} needs at least one source")
        return self.request_class.with_sources(self.params, uris, self.sources)

    def target_fields(self) -> list[TargetField]:
        """Every output field its ``params`` set (`TaskRequest.target_fields`)."""
        return self.request_class.target_fields(self.params)

    def target_templates(self) -> list[str]:
        return [field.template for field in self.target_fields()]


class OutputFilter(_Model):
    """Which of the parent's outputs become sources of the follow-up tasks."""

    suffixes: list[str] = Field(default_factory=list)

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, value: list[str]) -> list[str]:
        return _suffix_list(value)


class FollowUp(_Model):
    """Tasks started when the rule's task ``after`` ends with status ``on``.

    ``for_each: output`` starts the tasks once per (kept) output of the parent; ``parent`` once, with
    every kept output as a source (the first one for task types that read one ``SourceURI``).
    """

    after: Name
    on: FollowedOutcome
    for_each: Literal["output", "parent"] = "output"
    outputs: OutputFilter = Field(default_factory=OutputFilter)
    tasks: list[TaskSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, data: Any) -> Any:
        # A YAML 1.1 loader (yaml.safe_load) reads the key `on` as the boolean True.
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    def keeps(self, output: OssUri) -> bool:
        return has_suffix(output.key, self.outputs.suffixes)


class Rule(_Model):
    name: Name
    match: Match
    tags: Tags = Field(default_factory=dict)
    tasks: list[TaskSpec] = Field(min_length=1)
    then: list[FollowUp] = Field(default_factory=list)

    def all_tasks(self) -> list[TaskSpec]:
        """The initial tasks, then the follow-up tasks in file order."""
        return [*self.tasks, *(task for follow_up in self.then for task in follow_up.tasks)]

    def task_tags(self, task: TaskSpec) -> dict[str, TagValue]:
        """The user tags of ``task``: the rule's, overridden by the task's own."""
        return {**self.tags, **task.tags}


class TriggerFilter(NamedTuple):
    """One OSS trigger: ``bucket`` None means the bucket the deploy file names."""

    bucket: str | None
    events: tuple[str, ...]
    """Event names with the ``oss:`` prefix, as the trigger config writes them."""
    prefix: str
    suffix: str


class Pipeline(_Model):
    version: Literal[1]
    max_depth: int = Field(default=3, ge=1, le=20)
    rules: list[Rule] = Field(min_length=1)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise UnknownTaskError(f"the pipeline has no rule {name!r}; its rules are {self._rule_names()}")

    def _rule_names(self) -> str:
        return ", ".join(rule.name for rule in self.rules)

    def match(
        self,
        bucket: str,
        key: str,
        event_name: str,
        size: int | None = None,
        content_type: str | None = None,
    ) -> list[Rule]:
        """The rules an OSS event starts, in file order (``event_name`` with or without ``oss:``)."""
        return [
            rule for rule in self.rules if rule.match.accepts(bucket, key, event_name, size, content_type)
        ]

    def task(self, rule_name: str, task_name: str) -> TaskSpec:
        rule = self.rule(rule_name)
        for task in rule.all_tasks():
            if task.name == task_name:
                return task
        names = ", ".join(task.name for task in rule.all_tasks())
        raise UnknownTaskError(f"rule {rule_name!r} has no task {task_name!r}; its tasks are {names}")

    def follow_ups(self, rule_name: str, task_name: str, status: str) -> list[FollowUp]:
        """What to start when task ``task_name`` of rule ``rule_name`` ended with ``status``."""
        self.task(rule_name, task_name)
        return [f for f in self.rule(rule_name).then if f.after == task_name and f.on == status]

    @cached_property
    def _output_patterns(self) -> list[re.Pattern[str]]:
        return [
            wildcard_pattern(
                field.template, tags=rule.task_tags(task), task_type=task.type, shape=field.shape
            )
            for rule in self.rules
            for task in rule.all_tasks()
            for field in task.target_fields()
        ]

    def is_pipeline_output(self, bucket: str, key: str) -> bool:
        """The loop guard: whether ``oss://bucket/key`` could be an output of some task of the pipeline.

        Every template variable is a wildcard (any source, any time, any index), the rule's and
        task's tags are their values; an upload that matches is not a new upload.
        """
        uri = f"oss://{bucket}/{key}"
        return any(pattern.match(uri) for pattern in self._output_patterns)

    def trigger_filters(self, default_bucket: str | None = None) -> list[TriggerFilter]:
        """The OSS triggers that deliver every upload some rule matches, and nothing OSS would refuse.

        A trigger takes one literal prefix and one literal, case-sensitive suffix, OSS refuses two
        triggers on a bucket whose prefixes and suffixes overlap for a common event, and it allows
        at most 10 per bucket. So the filters are per rule prefix, not per suffix: every suffix is
        ``""`` (``on_upload`` checks the rule's suffixes itself, case-insensitively, so a camera's
        ``.JPG`` still reaches a ``.jpg`` rule), and rules whose prefixes nest (one a prefix of the
        other) and whose events overlap share one trigger with the shorter prefix and the union of
        their events. The result never overlaps. Rules without ``bucket`` get ``default_bucket`` (the
        bucket the deploy file names; None keeps them apart, under bucket None).
        """
        groups: dict[str | None, list[tuple[str, frozenset[str]]]] = {}
        for rule in self.rules:
            bucket = rule.match.bucket or default_bucket
            groups.setdefault(bucket, []).append((rule.match.prefix, rule.match.trigger_events()))
        filters: list[TriggerFilter] = []
        for bucket, wanted in groups.items():
            for prefix, events in _merge_overlapping(wanted):
                filters.append(TriggerFilter(bucket, _trigger_event_names(events), prefix, ""))
        return filters


def _merge_overlapping(filters: list[tuple[str, frozenset[str]]]) -> list[tuple[str, frozenset[str]]]:
    merged = list(filters)
    changed = True
    while changed:
        changed = False
        for i, (prefix_a, events_a) in enumerate(merged):
            for j in range(i + 1, len(merged)):
                prefix_b, events_b = merged[j]
                nested = prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)
                if nested and events_a & events_b:
                    merged[i] = (min(prefix_a, prefix_b, key=len), events_a | events_b)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _trigger_event_names(events: frozenset[str]) -> tuple[str, ...]:
    # Written out, never as oss:ObjectCreated:*, which would also deliver every part of a multipart upload.
    return tuple(OSS_EVENT_PREFIX + name for name in sorted(events))

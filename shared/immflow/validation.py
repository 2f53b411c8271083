"""`immflow validate`: every problem of a pipeline file, each with its file, line, rule and field, and a fix.

All problems are collected in one run. A rule whose schema is broken is reported and left out of the
checks that need a whole rule (templates, parameters, follow-ups, loops); the others are still checked.

The YAML is read as YAML 1.2 reads booleans (only ``true``/``false``), so the follow-up key ``on`` and a
tag value ``yes`` stay strings, where a YAML 1.1 loader would turn them into booleans.

Loop detection is by example, so that every report is provable: for each rule, immflow makes up
uploads the rule accepts (its prefix, its suffixes or every suffix any rule names, a few file names,
including the folder names other rules' prefixes use), predicts the outputs each task would write for
them (and for the outputs of its parent task, down the follow-up chain), and reports an output that a
rule's match accepts, with the upload and the output as the example. A loop that needs an unusual
file name can be missed; the runtime loop guard (`Pipeline.is_pipeline_output`) still stops it.
"""

from __future__ import annotations

import difflib
import mimetypes
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from immflow.errors import ImmflowError
from immflow.ossuri import SCHEME, OssUri, check_bucket_name
from immflow.pipeline import (
    MAX_TRIGGERS_PER_BUCKET,
    FollowUp,
    Match,
    Pipeline,
    Rule,
    TaskSpec,
    TriggerFilter,
)
from immflow.tasks import SOURCE_PARAMETERS, OutputShape, dotted_path
from immflow.templates import (
    TASK_VARIABLE_EXAMPLES,
    TemplateError,
    allowed_variables,
    parse,
    public_values,
    task_specific_variables,
)

Severity = Literal["error", "warning"]
Path_ = tuple[str | int, ...]

#: Variables that differ between two uploads, so that outputs of different uploads do not collide.
PER_SOURCE_VARIABLES = frozenset({"key", "dirname", "barename", "basename"})
#: Parameters immflow sets on every request itself (docs/design.md#pipelineyaml).
IMMFLOW_PARAMETERS = {
    "ProjectName": "immflow sets the IMM project from IMMFLOW_PROJECT",
    "Notification": "immflow points every task at the MNS topic of IMMFLOW_TOPIC",
    "UserData": "immflow puts the task's lineage there",
    "Tags": "write the task's tags under `tags:` of the rule or of the task",
}
RESERVED_TAG_PREFIXES = ("immflow:", "immflow_")
_PLACEHOLDER_SOURCE = "oss://immflow-example/source"
_EXAMPLE_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
_EXAMPLE_BUCKET = "example-bucket"
#: The events IMM's writes cause: a PutObject, or a multipart upload for a large output.
_OUTPUT_EVENTS = ("ObjectCreated:PutObject", "ObjectCreated:CompleteMultipartUpload")
_MAX_EXAMPLES_PER_TASK = 400
_USUAL_UPLOAD_EVENT = "ObjectCreated:PutObject"


@dataclass(frozen=True)
class Problem:
    severity: Severity
    path: Path_
    """Where in the document, as keys and list indexes (``("rules", 0, "match", "prefix")``)."""
    message: str
    fix: str = ""
    rule: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def field(self) -> str:
        return dotted_path(self.path)

    def format(self, file: str) -> str:
        where = file + "".join(f":{number}" for number in (self.line, self.column) if number)
        context = [f"rule {self.rule!r}"] if self.rule else []
        if self.path:
            context.append(self.field)
        head = f"{where}: {self.severity}: " + "".join(f"{part}: " for part in context) + self.message
        return head + (f"\n    fix: {self.fix}" if self.fix else "")


@dataclass
class Report:
    file: str
    problems: list[Problem] = field(default_factory=list)
    pipeline: Pipeline | None = None
    """The pipeline when its schema is valid (there may still be errors in ``problems``)."""

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "warning"]

    def format(self) -> str:
        return "\n".join(problem.format(self.file) for problem in self.problems)


class PipelineError(ImmflowError, ValueError):
    """A pipeline file immflow cannot run; ``problems`` are the errors `immflow validate` reports."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        listing = "\n".join(problem.format(file) for problem in problems)
        super().__init__(f"{file} has {len(problems)} error(s); run `immflow validate {file}`:\n{listing}")


def validate_file(path: str | Path) -> Report:
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        return Report(file, [Problem("error", (), f"cannot read the file: {exc.strerror or exc}")])
    except UnicodeDecodeError as exc:
        return Report(
            file,
            [Problem("error", (), f"not UTF-8 text ({exc.reason} at byte {exc.start})", "save it as UTF-8")],
        )
    return validate_text(text, file)


def validate_text(text: str, file: str = "pipeline.yaml") -> Report:
    report = Report(file)
    loaded = _load_yaml(text, report)
    if loaded is None:
        return report
    data, positions, duplicates = loaded
    checker = _Checker(data, positions, report)
    for path, mark in duplicates:
        message = f"{path[-1]!r} is written twice in the same mapping; YAML would keep only the last one"
        checker.add("error", path, message, "remove one of them", mark)
    checker.run()
    report.problems.sort(key=lambda problem: (problem.line or 0, problem.column or 0))
    return report


# YAML with positions


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: ``on``, ``yes``, ``no``, ``off`` stay strings."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_Loaded = tuple[Any, dict[Path_, yaml.Mark], list[tuple[Path_, yaml.Mark]]]


def _load_yaml(text: str, report: Report) -> _Loaded | None:
    """The document, where each key and item starts, and the keys written twice (with where)."""
    try:
        loader = _Yaml12Loader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as exc:
        report.problems.append(_yaml_problem(exc))
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            report.problems.append(
                Problem("error", (), "the file is empty", "start with `version: 1` and a list of `rules:`")
            )
            return None
        positions: dict[Path_, yaml.Mark] = {(): node.start_mark}
        duplicates: list[tuple[Path_, yaml.Mark]] = []
        _record_positions(loader, node, (), positions, duplicates)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        report.problems.append(_yaml_problem(exc))
        return None
    except RecursionError:
        report.problems.append(
            Problem(
                "error",
                (),
                "the YAML is nested too deeply to read",
                "a pipeline nests a few levels, not thousands",
            )
        )
        return None
    finally:
        loader.dispose()
    return data, positions, duplicates


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    mark: yaml.Mark | None = getattr(exc, "problem_mark", None)
    context_mark: yaml.Mark | None = getattr(exc, "context_mark", None)
    problem = (getattr(exc, "problem", None) or str(exc)).removeprefix("but ")
    context = getattr(exc, "context", None)
    if context and context_mark is not None and context_mark is not mark:
        problem += f" ({context}, line {context_mark.line + 1}, column {context_mark.column + 1})"
    elif context:
        problem += f" ({context})"
    mark = mark or context_mark
    return Problem(
        "error",
        (),
        f"YAML syntax error: {problem}",
        "check the brackets, the indentation (spaces, not tabs), and quote values that contain ': ', '{' or '#'",
        line=mark.line + 1 if mark else None,
        column=mark.column + 1 if mark else None,
    )


def _record_positions(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path_,
    positions: dict[Path_, yaml.Mark],
    duplicates: list[tuple[Path_, yaml.Mark]],
) -> None:
    """Record where each mapping key and list item starts, and report keys written twice."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (
                loader.construct_object(key_node, deep=True)
                if isinstance(key_node, yaml.ScalarNode)
                else None
            )
            if key is None or isinstance(key, (list, dict)):
                continue
            if key in seen:
                duplicates.append(((*path, key), key_node.start_mark))
            seen.add(key)
            positions[(*path, key)] = key_node.start_mark
            _record_positions(loader, value_node, (*path, key), positions, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            positions[(*path, index)] = item.start_mark
            _record_positions(loader, item, (*path, index), positions, duplicates)


# The checks


@dataclass(frozen=True)
class _TaskEntry:
    rule_index: int
    rule: Rule
    task: TaskSpec
    path: Path_
    follow_up: FollowUp | None = None


class _Checker:
    def __init__(self, data: Any, positions: dict[Path_, yaml.Mark], report: Report) -> None:
        self.data = data
        self.positions = positions
        self.report = report

    def add(
        self, severity: Severity, path: Path_, message: str, fix: str = "", mark: yaml.Mark | None = None
    ) -> None:
        mark = mark or self._mark(path)
        self.report.problems.append(
            Problem(
                severity,
                path,
                message,
                fix,
                rule=self._rule_name(path),
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        )

    def _mark(self, path: Path_) -> yaml.Mark | None:
        for length in range(len(path), -1, -1):
            mark = self.positions.get(path[:length])
            if mark is not None:
                return mark
        return None

    def _rule_name(self, path: Path_) -> str | None:
        if len(path) < 2 or path[0] != "rules" or not isinstance(path[1], int):
            return None
        rules = self.data.get("rules") if isinstance(self.data, dict) else None
        if isinstance(rules, list) and path[1] < len(rules) and isinstance(rules[path[1]], dict):
            name = rules[path[1]].get("name")
            if isinstance(name, str):
                return name
        return f"#{path[1] + 1}"

    def run(self) -> None:
        if not isinstance(self.data, dict):
            self.add(
                "error",
                (),
                f"the top level is {_kind(self.data)}, not a mapping",
                "write `version: 1`, `max_depth: 3` and `rules:` at the top level",
            )
            return
        rules = self._schema()
        max_depth = self.report.pipeline.max_depth if self.report.pipeline else _max_depth(self.data)
        self._rule_names(rules)
        for rule_index, rule in rules:
            self._tags(rule_index, rule)
            entries = self._task_entries(rule_index, rule)
            self._follow_ups(rule_index, rule, entries, max_depth)
            for entry in entries:
                self._task(entry)
        self._loops(rules)
        self._overlapping_rules(rules)
        self._trigger_count(rules)

    # Schema

    def _schema(self) -> list[tuple[int, Rule]]:
        """Report schema errors; return the rules whose own schema is valid, with their index."""
        try:
            self.report.pipeline = Pipeline.model_validate(self.data)
            return list(enumerate(self.report.pipeline.rules))
        except ValidationError as exc:
            self._validation_errors(exc, Pipeline, self.data)
        rules: list[tuple[int, Rule]] = []
        raw_rules = self.data.get("rules")
        for index, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
            try:
                rules.append((index, Rule.model_validate(raw)))
            except ValidationError:
                continue  # already reported above
        return rules

    def _validation_errors(
        self,
        exc: ValidationError,
        model: type[BaseModel],
        data: Any,
        relocate: Callable[[Path_], Path_] = lambda loc: loc,
    ) -> None:
        """Report each pydantic error at its place in the document.

        ``data`` is what was validated; ``relocate`` maps a location in it to the document path.
        """
        reported: set[Path_] = set()
        for error in exc.errors(include_url=False):
            inner, rest = _split_loc(data, tuple(error["loc"]))
            path = relocate(inner)
            if error["type"] == "missing" and len(rest) == 1:
                path = (*path, rest[0])
            if path in reported:
                continue  # one bad value fails each member of a union: report it once
            reported.add(path)
            self.add("error", path, *_schema_message(error, inner, rest, model))

    # Rules and tags

    def _rule_names(self, rules: list[tuple[int, Rule]]) -> None:
        first: dict[str, int] = {}
        for index, rule in rules:
            if rule.name in first:
                self.add(
                    "error",
                    ("rules", index, "name"),
                    f"rule name {rule.name!r} is already used by rules[{first[rule.name]}]",
                    "give each rule its own name (it is recorded with every task the rule starts)",
                )
            first.setdefault(rule.name, index)

    def _tags(self, rule_index: int, rule: Rule) -> None:
        tag_maps: list[tuple[Path_, Mapping[str, Any]]] = [(("rules", rule_index, "tags"), rule.tags)]
        for entry in self._task_entries(rule_index, rule):
            tag_maps.append(((*entry.path, "tags"), entry.task.tags))
        for path, tags in tag_maps:
            for key in tags:
                if key.startswith(RESERVED_TAG_PREFIXES) or not key:
                    self.add(
                        "error",
                        (*path, key),
                        f"tag key {key!r} is reserved: immflow sets immflow:rule, immflow:task and immflow:run",
                        "choose another tag key",
                    )

    # Tasks and follow-ups

    def _task_entries(self, rule_index: int, rule: Rule) -> list[_TaskEntry]:
        base: Path_ = ("rules", rule_index)
        entries = [
            _TaskEntry(rule_index, rule, task, (*base, "tasks", index))
            for index, task in enumerate(rule.tasks)
        ]
        for follow_index, follow_up in enumerate(rule.then):
            for index, task in enumerate(follow_up.tasks):
                path = (*base, "then", follow_index, "tasks", index)
                entries.append(_TaskEntry(rule_index, rule, task, path, follow_up))
        return entries

    def _follow_ups(self, rule_index: int, rule: Rule, entries: list[_TaskEntry], max_depth: int) -> None:
        defined: dict[str, _TaskEntry] = {}
        for entry in entries:
            if entry.task.name in defined:
                self.add(
                    "error",
                    (*entry.path, "name"),
                    f"task name {entry.task.name!r} is already used in this rule "
                    f"({dotted_path(defined[entry.task.name].path)})",
                    "give every task of a rule, follow-ups included, its own name",
                )
            defined.setdefault(entry.task.name, entry)
        outputs_by_task = {entry.task.name: entry.task.target_fields() for entry in entries}
        for follow_index, follow_up in enumerate(rule.then):
            path: Path_ = ("rules", rule_index, "then", follow_index, "after")
            if follow_up.after not in defined:
                names = ", ".join(defined)
                self.add(
                    "error",
                    path,
                    f"no task named {follow_up.after!r} in rule {rule.name!r}"
                    + _did_you_mean(follow_up.after, defined),
                    f"name one of this rule's tasks: {names}",
                )
            elif not outputs_by_task[follow_up.after]:
                self.add(
                    "warning",
                    path,
                    f"task {follow_up.after!r} writes no output files, so these follow-up tasks never get a source",
                    "follow a task that has a target (TargetURI, Targets...)",
                )
        parent = {
            name: entry.follow_up.after for name, entry in defined.items() if entry.follow_up is not None
        }
        reported_cycles: set[frozenset[str]] = set()
        for name, entry in defined.items():
            if entry.follow_up is None:
                continue
            chain = [name]  # this task, its parent, its grand-parent...
            while chain[-1] in parent and parent[chain[-1]] not in chain:
                chain.append(parent[chain[-1]])
            if chain[-1] in parent:
                cycle = chain[chain.index(parent[chain[-1]]) :]
                if name in cycle and frozenset(cycle) not in reported_cycles:
                    reported_cycles.add(frozenset(cycle))
                    loop = " -> ".join([*reversed(cycle), cycle[-1]])
                    self.add(
                        "error",
                        (*entry.path, "name"),
                        f"the follow-ups form a cycle ({loop}): task {name!r} would start itself again",
                        "a follow-up must lead away from the upload's tasks; remove the follow-up that closes the cycle",
                    )
            elif chain[-1] in defined and len(chain) > max_depth:
                self.add(
                    "error",
                    (*entry.path, "name"),
                    f"task {name!r} is at depth {len(chain)} ({' -> '.join(reversed(chain))}), "
                    f"deeper than max_depth {max_depth}",
                    f"raise max_depth to {len(chain)} or shorten the chain of follow-ups",
                )

    def _task(self, entry: _TaskEntry) -> None:
        task = entry.task
        params_path = (*entry.path, "params")
        for name, why in IMMFLOW_PARAMETERS.items():
            if name in task.params:
                self.add("error", (*params_path, name), f"{name} is set by immflow: {why}", f"remove {name}")
        for name in SOURCE_PARAMETERS:
            if name in task.params:
                self.add(
                    "error",
                    (*params_path, name),
                    f"immflow fills in the sources (the upload, or the parent task's outputs), not {name}",
                    f"remove {name}; put extra fields for each Sources[] entry under the task's `sources:`",
                )
        if task.sources and task.request_class.READS_SOURCE_URI:
            self.add(
                "error",
                (*entry.path, "sources"),
                f"{task.type} reads one SourceURI; `sources:` sets fields of Sources[] entries, which it has none of",
                "remove `sources:`",
            )
        self._parameters(entry)
        for target in task.target_fields():
            self._template(entry, (*params_path, *target.path), target.template, target.shape.layout)

    def _parameters(self, entry: _TaskEntry) -> None:
        """Validate ``params`` (and ``sources``) with the task type's request model, sources filled in."""
        task = entry.task
        ignored = {*IMMFLOW_PARAMETERS, *SOURCE_PARAMETERS}
        params = {name: value for name, value in task.params.items() if name not in ignored}
        request = task.model_copy(update={"params": params}).with_sources([_PLACEHOLDER_SOURCE])
        request["ProjectName"] = "immflow-example"

        def relocate(loc: Path_) -> Path_:
            if len(loc) >= 3 and loc[0] == "Sources" and loc[2] in task.sources:
                return (*entry.path, "sources", *loc[2:])
            return (*entry.path, "params", *loc)

        try:
            task.request_class.model_validate(request)
        except ValidationError as exc:
            self._validation_errors(exc, task.request_class, request, relocate)

    def _template(self, entry: _TaskEntry, path: Path_, template: str, layout: str) -> None:
        rule, task = entry.rule, entry.task
        try:
            parsed = parse(template)
        except TemplateError as exc:
            self.add(
                "error", path, exc.problem, "write {name} for a variable and {{ or }} for a literal brace"
            )
            return
        tags = rule.task_tags(task)
        for problem in parsed.problems(task.type, tags):
            self.add("error", path, problem.problem, _template_fix(problem, task.type))
        location = template[len(SCHEME) :] if template.startswith(SCHEME) else None
        bucket, slash, key = (location or "").partition("/")
        if location is None or not slash:
            self.add(
                "error",
                path,
                f"{template!r} is not an OSS URI template",
                "write it as oss://{bucket}/processed/{dirname}/{barename}.<ext> (or a bucket name for {bucket})",
            )
            return
        if bucket != "{bucket}" and ("{" in bucket or check_bucket_name(bucket) is not None):
            self.add(
                "error",
                path,
                f"the bucket part {bucket!r} is neither {{bucket}} (the source's bucket) nor a bucket name",
                "write oss://{bucket}/... or oss://<bucket-name>/...",
            )
        if key.startswith("/") or not key:
            self.add(
                "error", path, "the object key is empty or starts with '/'", "write one '/' after the bucket"
            )
        if layout == "folder" and not template.endswith("/"):
            self.add(
                "error",
                path,
                f"{dotted_path(path[-1:])} names a folder (every object under it is an output) but does not end with '/'",
                "add a trailing '/'",
            )
        if not parsed.builtin_variables & PER_SOURCE_VARIABLES:
            self.add(
                "error",
                path,
                "the template has no per-source variable, so every upload would write (and overwrite) the same object",
                "put the source's name in the path, e.g. processed/{dirname}/{barename}/...",
            )
        if entry.follow_up is None and "/" not in rule.match.prefix and _dirname_after_slash(parsed.parts):
            self.add(
                "warning",
                path,
                "an upload at the bucket root has an empty {dirname}, so the key gets '//' (or starts with '/'), "
                "which IMM refuses (docs/imm.md#targeturi-templates)",
                "set match.prefix to a folder (like uploads/) or drop '/{dirname}'",
            )

    # Loops and triggers

    def _loops(self, rules: list[tuple[int, Rule]]) -> None:
        all_rules = [rule for _, rule in rules]
        for rule_index, rule in rules:
            examples: dict[str, list[tuple[OssUri, OssUri]]] = {}
            uploads = _example_uploads(rule, all_rules)
            # Parents come before their follow-ups only if written so; resolve in dependency order.
            pending = self._task_entries(rule_index, rule)
            while pending:
                progressed = False
                for entry in list(pending):
                    parent = entry.follow_up.after if entry.follow_up else None
                    if parent is not None and parent not in examples:
                        continue
                    pending.remove(entry)
                    progressed = True
                    if parent is None:
                        sources = [(upload, upload) for upload in uploads]
                    else:
                        follow_up = entry.follow_up
                        assert follow_up is not None
                        sources = [(up, out) for up, out in examples[parent] if follow_up.keeps(out)]
                    examples[entry.task.name] = self._task_loops(entry, sources, all_rules)
                if not progressed:
                    break  # the rest are in cycles or follow unknown tasks, both reported already

    def _task_loops(
        self, entry: _TaskEntry, sources: list[tuple[OssUri, OssUri]], all_rules: list[Rule]
    ) -> list[tuple[OssUri, OssUri]]:
        """Report outputs some rule takes as uploads; return (upload, output) examples for the follow-ups."""
        outputs: list[tuple[OssUri, OssUri]] = []
        suffixes = _all_suffixes(all_rules)
        for target in entry.task.target_fields():
            reported: set[str] = set()
            for upload, source in sources:
                for output in _example_outputs(entry, target.template, target.shape, source, suffixes):
                    if len(outputs) < _MAX_EXAMPLES_PER_TASK:
                        outputs.append((upload, output))
                    for other in all_rules:
                        if other.name in reported or not _takes_as_upload(other, output):
                            continue
                        reported.add(other.name)
                        via = "" if source == upload else f" (through {source})"
                        self.add(
                            "error",
                            (*entry.path, "params", *target.path),
                            f"an upload {upload}{via} makes this task write {output}, and rule {other.name!r} "
                            "takes that as a new upload: the pipeline would process its own outputs, in a loop",
                            "write outputs where no rule's match looks (e.g. under processed/, outside every "
                            f"rule's prefix) or narrow the match of rule {other.name!r}; to process an output "
                            "further, use a follow-up (`then:`)",
                        )
        return outputs

    def _overlapping_rules(self, rules: list[tuple[int, Rule]]) -> None:
        """Report pairs of rules that one upload and one event would both start.

        `Pipeline.trigger_filters` could still deploy such a pair (one merged trigger), but the
        overlap is almost always a mistake: each such upload pays for both rules' tasks.
        """
        for position, (first_index, first) in enumerate(rules):
            for second_index, second in rules[position + 1 :]:
                overlap = _overlap(first.match, second.match)
                if overlap is None:
                    continue
                key, event = overlap
                bucket = first.match.bucket or second.match.bucket
                where = f"oss://{bucket}/{key}" if bucket else key
                self.add(
                    "error",
                    ("rules", second_index, "match"),
                    f"rules {first.name!r} (rules[{first_index}]) and {second.name!r} both take the upload "
                    f"{where} on oss:{event}: every such upload would run the tasks of both rules, and with "
                    'one OSS trigger per rule OSS would refuse the pair ("Cannot specify overlapping prefix '
                    'and suffix with same event type."). content_types, min_size and max_size do not keep '
                    "them apart: OSS triggers cannot filter on them",
                    "make the prefixes or the suffixes of the two rules disjoint (e.g. uploads/videos/ and "
                    "uploads/images/), or merge them into one rule with several tasks",
                )

    def _trigger_count(self, rules: list[tuple[int, Rule]]) -> None:
        pipeline = Pipeline.model_construct(version=1, max_depth=3, rules=[rule for _, rule in rules])
        if not rules:
            return
        buckets = sorted({rule.match.bucket for _, rule in rules if rule.match.bucket})
        for bucket in [None, *buckets]:
            filters = [f for f in pipeline.trigger_filters(default_bucket=bucket) if f.bucket == bucket]
            if len(filters) > MAX_TRIGGERS_PER_BUCKET:
                where = f"bucket {bucket!r}" if bucket else "the deployed bucket"
                self.add(
                    "error",
                    ("rules",),
                    f"the rules need {len(filters)} OSS triggers on {where}, and OSS allows at most "
                    f"{MAX_TRIGGERS_PER_BUCKET} per bucket (prefixes: {_prefixes(filters)})",
                    "group rules under fewer folders: rules whose prefixes nest share one trigger",
                )


def _split_loc(data: Any, loc: Path_) -> tuple[Path_, Path_]:
    """Split a pydantic ``loc`` into the part that exists in ``data`` and the rest."""
    current = data
    for position, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
            continue
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            continue
        return loc[:position], loc[position:]
    return loc, ()


#: The names pydantic gives the members of a union in an error's location (tag values).
_UNION_MEMBERS = frozenset({"str", "bool", "int", "float"})


#: How to fix a value of the wrong type, by the start of pydantic's error type.
_TYPE_FIXES = {
    "int": "write a whole number",
    "float": "write a number",
    "bool": "write true or false",
    "string": "write a text (quote it if it contains ': ' or starts with a special character)",
    "list": "write a list, like [a, b] or one '- item' per line",
    "dict": "write a mapping: one 'key: value' per line",
    "model": "write a mapping: one 'key: value' per line",
    "literal": "use one of the values listed",
    "greater": "write a larger number",
    "less": "write a smaller number",
    "too": "change the number of items",
}


def _schema_message(error: Any, inner: Path_, rest: Path_, model: type[BaseModel]) -> tuple[str, str]:
    """(problem, fix) for one pydantic error."""
    kind: str = error["type"]
    if kind == "missing":
        name = rest[0] if rest else (inner[-1] if inner else "")
        return f"{name!r} is required here", f"add `{name}:`"
    if kind == "extra_forbidden":
        name = str(inner[-1])
        fields = _fields_at(model, inner[:-1])
        suggestion = _did_you_mean(name, fields)
        return (
            f"unknown key {name!r}{suggestion}",
            f"remove it or correct its spelling; the keys here are {', '.join(fields)}"
            if fields
            else "remove it",
        )
    message: str = error["msg"]
    if kind == "value_error":
        # Our validators write "what is wrong; how to fix it".
        problem, _, fix = message.removeprefix("Value error, ").partition("; ")
        return problem, fix
    got = _preview(error.get("input"))
    fix = _TYPE_FIXES.get(kind.split("_", 1)[0], "")
    if rest and isinstance(rest[0], str) and rest[0] in _UNION_MEMBERS:
        return f"{got} has the wrong type", "write a text, a number or true/false"
    return f"{message[:1].lower()}{message[1:]} (got {got})", fix


def _fields_at(model: type[BaseModel], path: Path_) -> list[str]:
    current: type[BaseModel] | None = model
    for part in path:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _nested_model(info.annotation) if info is not None else None
    return list(current.model_fields) if current is not None else []


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (list, Union, types.UnionType, Annotated):
        for arg in get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    return "empty" if value is None else f"a {type(value).__name__}"


def _max_depth(data: Mapping[str, Any]) -> int:
    value = data.get("max_depth", 3)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 3


def _template_fix(problem: TemplateError, task_type: str) -> str:
    name = problem.variable
    if name.startswith("tags."):
        key = name[len("tags.") :]
        return f"add `{key}: <value>` to the rule's or the task's `tags:`, or remove {{{name}}}"
    if any(name in names for names in task_specific_variables().values()):
        return f"remove {{{name}}}; {task_type} tasks provide only the public variables and {{tags.KEY}}"
    close = difflib.get_close_matches(name, sorted(allowed_variables(task_type)), n=1, cutoff=0.6)
    return f"write {{{close[0]}}}" if close else "correct the variable's name"


def _dirname_after_slash(parts: tuple[str, ...]) -> bool:
    return any(parts[i] == "dirname" and parts[i - 1].endswith("/") for i in range(1, len(parts), 2))


# Examples for loop detection


def _all_suffixes(rules: list[Rule]) -> list[str]:
    return sorted({suffix.lower() for rule in rules for suffix in rule.match.suffixes})


def _example_uploads(rule: Rule, rules: list[Rule]) -> list[OssUri]:
    match = rule.match
    if match.bucket:
        buckets = [match.bucket]
    else:
        buckets = [*sorted({other.match.bucket for other in rules if other.match.bucket}), _EXAMPLE_BUCKET]
    suffixes = match.suffixes or [*_all_suffixes(rules), ".dat"]
    folders = sorted({part for other in rules for part in other.match.prefix.split("/") if part})
    names = ["example", "sub/example", *folders]
    uploads = [
        OssUri(bucket, f"{match.prefix}{name}{suffix}")
        for bucket in buckets
        for name in names
        for suffix in suffixes
        if match.accepts_key(f"{match.prefix}{name}{suffix}")
    ]
    return uploads[:_MAX_EXAMPLES_PER_TASK]


def _example_outputs(
    entry: _TaskEntry, template: str, shape: OutputShape, source: OssUri, suffixes: list[str]
) -> Iterator[OssUri]:
    task = entry.task
    autoext = shape.container or shape.image_format or task.params.get("TargetType") or "dat"
    task_values = {**TASK_VARIABLE_EXAMPLES, "autoext": str(autoext).lower()}
    values = public_values(source, upload_time=_EXAMPLE_TIME, task_time=_EXAMPLE_TIME) | task_values
    try:
        text = parse(template).expand(values, entry.rule.task_tags(task))
    except TemplateError:
        return  # reported by the template checks
    candidates = [text]
    if shape.layout == "folder":
        candidates = [f"{text}example{suffix}" for suffix in [*suffixes, ".dat"]]
    elif shape.layout == "subtitle":
        candidates = [f"{text}_0.srt"]
    elif shape.layout in ("media", "image") and not _file_extension(text):
        if shape.segment_format == "hls":
            candidates = [f"{text}.m3u8", f"{text}-0.ts"]
        elif shape.segment_format == "dash":
            candidates = [f"{text}.mpd", f"{text}-0.m4s"]
        elif shape.layout == "media":
            candidates = [f"{text}.{shape.container or 'mp4'}"]
        else:
            candidates = [f"{text}_0_1.{shape.image_format or 'jpg'}"]
    for candidate in candidates:
        try:
            yield OssUri.parse(candidate)
        except ValueError:
            continue  # an output IMM would refuse cannot be taken as an upload


def _file_extension(uri: str) -> str:
    name = uri.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot + 1 :] if dot > 0 else ""


def _takes_as_upload(rule: Rule, output: OssUri) -> bool:
    content_type = mimetypes.guess_type(output.key)[0]
    return any(
        rule.match.accepts(output.bucket, output.key, event, None, content_type) for event in _OUTPUT_EVENTS
    )


def _overlap(first: Match, second: Match) -> tuple[str, str] | None:
    """(a key, an event) that both matches take in the same bucket, or None when none exists.

    Bucket, key and event only, as an OSS trigger sees an upload; suffixes compare case-insensitively.
    """
    if first.bucket and second.bucket and first.bucket != second.bucket:
        return None
    events = first.trigger_events() & second.trigger_events()
    if not events:
        return None
    shorter, prefix = sorted((first.prefix, second.prefix), key=len)
    if not prefix.startswith(shorter):
        return None
    suffix = _common_suffix(first.suffixes, second.suffixes)
    if suffix is None:
        return None
    event = _USUAL_UPLOAD_EVENT if _USUAL_UPLOAD_EVENT in events else min(events)
    return f"{prefix}example{suffix}", event


def _common_suffix(first: list[str], second: list[str]) -> str | None:
    """A suffix that a key accepted by both suffix lists can end with (an empty list accepts every key)."""
    if not first or not second:
        return (first or second or [".dat"])[0].lower()
    for one in first:
        for other in second:
            longer, shorter = sorted((one.lower(), other.lower()), key=len, reverse=True)
            if longer.endswith(shorter):
                return longer
    return None


def _prefixes(filters: list[TriggerFilter]) -> str:
    return ", ".join(repr(f.prefix) for f in filters)

"""Layouts the pages draw as SVG: a run's task tree, its timeline, and the pipeline's rules.

A tree is laid out in columns by depth; each node takes the next free row, after its parent's, so
that a parent's children sit beside it and edges do not cross within one parent.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from immflow.ledger import TaskRecord
from immflow.pipeline import Pipeline

NODE_WIDTH = 230
NODE_HEIGHT = 74
COLUMN_GAP = 70
ROW_GAP = 16


@dataclass(frozen=True)
class Node:
    key: str
    x: int
    y: int
    title: str
    subtitle: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""

    def path(self, nodes: dict[str, Node]) -> str:
        a, b = nodes[self.source], nodes[self.target]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
        x2, y2 = b.x, b.y + NODE_HEIGHT // 2
        middle = (x1 + x2) // 2
        return f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"


@dataclass(frozen=True)
class Graph:
    nodes: dict[str, Node]
    edges: list[Edge]

    @property
    def width(self) -> int:
        return max((n.x for n in self.nodes.values()), default=0) + NODE_WIDTH + 2

    @property
    def height(self) -> int:
        return max((n.y for n in self.nodes.values()), default=0) + NODE_HEIGHT + 2


def task_key(task: TaskRecord) -> str:
    """A node's key: IMM's TaskId, or the ledger row for a task IMM refused (it has none)."""
    return task.task_id or f"row-{task.row_id}"


def _duration(task: TaskRecord, now: datetime) -> str:
    start = task.started_at or task.created_at
    seconds = ((task.ended_at or now) - start).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def task_tree(tasks: Sequence[TaskRecord], now: datetime) -> Graph:
    by_parent: dict[str | None, list[TaskRecord]] = {}
    known = {task.task_id for task in tasks if task.task_id}
    for task in tasks:
        parent = task.parent_task_id if task.parent_task_id in known else None
        by_parent.setdefault(parent, []).append(task)
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    next_row = [0]

    def place(task: TaskRecord, column: int) -> None:
        key = task_key(task)
        row = next_row[0]
        next_row[0] += 1
        failure = f"{task.code}: {task.message}" if task.status in ("Failed", "Lost") else ""
        nodes[key] = Node(
            key,
            column * (NODE_WIDTH + COLUMN_GAP),
            row * (NODE_HEIGHT + ROW_GAP),
            f"{task.task_name} · {task.task_type}",
            f"{task.status} · {_duration(task, now)}",
            task.status,
            failure or (task.task_id or "not created"),
        )
        children = by_parent.get(task.task_id, []) if task.task_id else []
        for child in children:
            # Per-output follow-ups differ by their source: name it on the edge.
            label = posixpath.basename(child.sources[0]) if len(children) > 1 and child.sources else ""
            edges.append(Edge(key, task_key(child), label))
            place(child, column + 1)
        if children:
            next_row[0] = max(next_row[0], row + 1)

    for root in by_parent.get(None, []):
        place(root, 0)
    return Graph(nodes, edges)


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    state: str
    left: float
    """Percent of the run's span where the task starts."""
    width: float


def timeline(tasks: Sequence[TaskRecord], start: datetime, now: datetime) -> tuple[list[Bar], float]:
    """One bar per task over the run's span; the span in seconds."""
    end = max([task.ended_at or now for task in tasks] or [now])
    span = max((end - start).total_seconds(), 0.001)
    bars = []
    for task in tasks:
        begin = ((task.started_at or task.created_at) - start).total_seconds()
        finish = ((task.ended_at or now) - start).total_seconds()
        bars.append(
            Bar(
                task_key(task),
                task.task_name,
                task.status,
                100 * max(begin, 0) / span,
                max(100 * (finish - max(begin, 0)) / span, 0.5),
            )
        )
    return bars, span


def pipeline_graph(pipeline: Pipeline) -> Graph:
    """Each rule's match, then its tasks, then each follow-up's tasks beside the task it follows."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    row = 0
    for rule in pipeline.rules:
        match = rule.match
        suffixes = ", ".join(match.suffixes) or "any suffix"
        match_key = f"{rule.name}:match"
        first_row = row
        task_rows: dict[str, int] = {}
        task_columns: dict[str, int] = {}
        for task in rule.tasks:
            task_rows[task.name] = row
            task_columns[task.name] = 1
            nodes[f"{rule.name}:{task.name}"] = _spec_node(rule.name, task.name, task.type, 1, row)
            edges.append(Edge(match_key, f"{rule.name}:{task.name}"))
            row += 1
        for follow_up in rule.then:
            parent_column = task_columns.get(follow_up.after, 1)
            follow_row = task_rows.get(follow_up.after, row)
            for task in follow_up.tasks:
                task_rows[task.name] = follow_row
                task_columns[task.name] = parent_column + 1
                key = f"{rule.name}:{task.name}"
                nodes[key] = _spec_node(rule.name, task.name, task.type, parent_column + 1, follow_row)
                label = f"on {follow_up.on}, per {follow_up.for_each}"
                edges.append(Edge(f"{rule.name}:{follow_up.after}", key, label))
                follow_row += 1
            row = max(row, follow_row)
        nodes[match_key] = Node(
            match_key,
            0,
            first_row * (NODE_HEIGHT + ROW_GAP),
            f"rule {rule.name}",
            f"{match.bucket or '(deploy bucket)'}/{match.prefix}*",
            "rule",
            suffixes,
        )
        row = max(row, first_row + 1)
    return Graph(nodes, edges)


def _spec_node(rule: str, name: str, task_type: str, column: int, row: int) -> Node:
    return Node(
        f"{rule}:{name}",
        column * (NODE_WIDTH + COLUMN_GAP),
        row * (NODE_HEIGHT + ROW_GAP),
        name,
        task_type,
        "task",
    )

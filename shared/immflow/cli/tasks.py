"""``immflow tasks list|show`` and ``immflow runs list|show``: read the ledger.

The ledger is ``IMMFLOW_LEDGER_URL`` when set (a ``tablestore://`` one reached as the functions reach it:
``IMMFLOW_OTS_ENDPOINT`` or the region's endpoint, keys from ``ALIBABA_CLOUD_*``), else the local cloud's,
the one its FC gives the functions (``endpoints.json`` names it). Tables and trees for people; ``--json``
for scripts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from immflow.cli import main
from immflow.ledger import (
    DEFAULT_STATE_DIR,
    Ledger,
    LedgerError,
    RunRecord,
    TaskQuery,
    TaskRecord,
    iso_time,
    local_ledger,
)

STATUS_STYLES = {
    "Succeeded": "green",
    "Failed": "red",
    "Lost": "red",
    "Running": "yellow",
    "Creating": "yellow",
    "Done": "green",
    "Superseded": "dim",
}

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="The local cloud's folder, whose ledger is read when IMMFLOW_LEDGER_URL is not set.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _ledger(state_dir: Path) -> Ledger:
    url = os.environ.get("IMMFLOW_LEDGER_URL")
    if url is None:
        try:
            return local_ledger(state_dir)
        except LedgerError as error:
            raise click.ClickException(str(error)) from None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise click.ClickException(f"no ledger at {url} (IMMFLOW_LEDGER_URL): no such file")
    return Ledger(url)


def task_json(task: TaskRecord) -> dict[str, Any]:
    return {**task.to_json(), "row": task.row_id, "run_id": task.run_id, "user_data": task.user_data}


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "source": run.source_uri,
        "etag": run.etag,
        "status": run.status,
        "sequence": run.sequence,
        "superseded_by": run.superseded_by,
        "request_id": run.request_id,
        "version_id": run.version_id,
        "manifest": run.manifest_uri,
        "upload_time": iso_time(run.upload_time),
        "created_at": iso_time(run.created_at),
        "ended_at": iso_time(run.ended_at),
    }


def _status(text: str) -> str:
    return f"[{STATUS_STYLES.get(text, 'white')}]{text}[/]"


def _parse_tags(values: Iterable[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--tag")
        tags[key] = wanted
    return tags


@main.group()
def tasks() -> None:
    """The IMM tasks immflow started, from the ledger."""


@tasks.command("list")
@click.option(
    "--tag",
    "tag_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only tasks with this tag (repeatable: all must match).",
)
@click.option(
    "--status",
    type=click.Choice(["Creating", "Running", "Succeeded", "Failed", "Lost"]),
    help="Only tasks in this state.",
)
@click.option("--run", "run_id", help="Only the tasks of this run.")
@click.option("--limit", type=int, default=None, help="At most this many tasks.")
@json_option
@state_dir_option
def list_tasks(
    tag_values: tuple[str, ...],
    status: str | None,
    run_id: str | None,
    limit: int | None,
    as_json: bool,
    state_dir: Path,
) -> None:
    """List tasks, oldest first."""
    found = _ledger(state_dir).list_tasks(
        TaskQuery(run_id=run_id, tags=_parse_tags(tag_values), status=status, limit=limit)
    )
    if as_json:
        click.echo(json.dumps([task_json(task) for task in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no task matches" if (tag_values or status or run_id) else "the ledger has no task yet")
        return
    console = Console()
    for task in found:
        # One line per task, never a table: TaskIds and URIs stay whole at any terminal width.
        console.print(
            f"{task.task_id or f'#{task.row_id}'}  {task.rule}/{task.task_name}  {task.task_type}  "
            f"{_status(task.status)}  {len(task.outputs)} output(s)  {iso_time(task.created_at) or ''}",
            soft_wrap=True,
        )


@tasks.command("show")
@click.argument("task_id")
@json_option
@state_dir_option
def show_task(task_id: str, as_json: bool, state_dir: Path) -> None:
    """One task: its state, sources, outputs, tags and lineage (TASK_ID: IMM's TaskId, or #row for a task IMM refused)."""
    task = _ledger(state_dir).task_by_id_or_row(task_id.removeprefix("#"))
    if task is None:
        raise click.ClickException(
            f"no task {task_id} in the ledger; `immflow tasks list` shows the known ones"
        )
    data = task_json(task)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    table = Table(show_header=False)
    for name, value in data.items():
        text = (
            _status(value)
            if name == "status"
            else (json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value))
        )
        table.add_row(name, text)
    Console().print(table)


@main.group()
def runs() -> None:
    """Runs: one per change of an object's content (A, B, A is three), with every task it started."""


@runs.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "--status",
    type=click.Choice(["Running", "Done", "Superseded"]),
    help="Only runs in this state (Superseded: a newer upload of the same key wrote over its outputs).",
)
@json_option
@state_dir_option
def list_runs(limit: int, status: str | None, as_json: bool, state_dir: Path) -> None:
    """List runs, newest first."""
    ledger = _ledger(state_dir)
    found = ledger.list_runs(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([run_json(run) for run in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("the ledger has no run yet: upload a file the pipeline matches, or run immflow demo")
        return
    console = Console()
    for run in found:
        superseded = f"  by {run.superseded_by}" if run.superseded_by else ""
        console.print(
            f"{run.run_id}  {_status(run.status)}{superseded}  run #{run.sequence} of its key  "
            f"{len(ledger.tasks_of_run(run.run_id))} task(s)  {iso_time(run.created_at) or ''}",
            soft_wrap=True,
        )
        console.print(f"  {run.source_uri}", soft_wrap=True, highlight=False)


@runs.command("show")
@click.argument("run_id")
@json_option
@state_dir_option
def show_run(run_id: str, as_json: bool, state_dir: Path) -> None:
    """A run as a tree: each task, then its follow-ups, with states and outputs."""
    ledger = _ledger(state_dir)
    run = ledger.get_run(run_id)
    if run is None:
        raise click.ClickException(f"no run {run_id} in the ledger; `immflow runs list` shows the known ones")
    found = ledger.tasks_of_run(run_id)
    children: dict[str | None, list[TaskRecord]] = {}
    for task in found:
        children.setdefault(task.parent_task_id, []).append(task)

    def nested(task: TaskRecord) -> dict[str, Any]:
        return {
            **task_json(task),
            "follow_ups": [nested(child) for child in children.get(task.task_id, []) if task.task_id],
        }

    if as_json:
        click.echo(
            json.dumps(
                {**run_json(run), "tasks": [nested(task) for task in children.get(None, [])]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    # Printed line by line rather than as a rich Tree: a tree wraps a long URI into indented
    # fragments, which neither copy nor grep well. Every URI is whole, on a line of its own.
    console = Console()

    def say(indent: int, text: str) -> None:
        console.print("  " * indent + text, soft_wrap=True, highlight=False)

    superseded = f" by {run.superseded_by}" if run.superseded_by else ""
    say(0, f"run {run.run_id}  {_status(run.status)}{superseded}  (run #{run.sequence} of its key)")
    say(1, run.source_uri)

    def add(depth: int, task: TaskRecord) -> None:
        label = f"{task.rule}/{task.task_name} ({task.task_type}) {_status(task.status)}  {task.task_id or f'#{task.row_id}'}"
        say(depth, label)
        if task.code:
            say(depth + 1, f"[red]{task.code}: {task.message}[/]")
        for output in task.outputs:
            say(depth + 1, f"[cyan]{output}[/]")
        for child in children.get(task.task_id, []) if task.task_id else []:
            add(depth + 1, child)

    for task in children.get(None, []):
        add(1, task)
    if run.manifest_uri:
        say(1, "manifest:")
        say(2, run.manifest_uri)

"""``immflow demo``: the whole pipeline on the local cloud, from sample media to checked outputs.

See :mod:`immflow.demo.runner` for what each step does and the choices behind it. Exits 0 only
when every task succeeded, every output it recorded is in OSS with a size above zero, the
follow-ups ran and every run's manifest was written.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from immflow import imports
from immflow.cli import main
from immflow.cli.local import (
    create_ledger,
    deploy,
    deploy_environ,
    is_running,
    read_endpoints,
    spawn,
    state_dir_option,
    wait_ready,
)
from localcloud.core.account import Account
from localcloud.core.ports import DEFAULT_PORT_BASE

if TYPE_CHECKING:
    from immflow.demo.runner import RunProgress

DEFAULT_TIMEOUT_SECONDS = 900


def _progress_table(progress: list[RunProgress], invocations: dict[str, Any], started: float) -> Group:
    table = Table(
        title=f"immflow demo: following {len(progress)} uploads ({time.monotonic() - started:.0f} s)"
    )
    for column in ("upload", "rule", "running", "succeeded", "failed", "follow-ups", "run"):
        table.add_column(
            column, justify="right" if column in ("running", "succeeded", "failed", "follow-ups") else "left"
        )
    for item in progress:
        state = "done" if item.done else ("running" if item.run else "waiting for on_upload")
        table.add_row(
            item.upload.uri.basename,
            item.upload.rule,
            str(item.count("Creating", "Running")),
            str(item.count("Succeeded")),
            str(item.count("Failed", "Lost")),
            str(item.follow_ups),
            state,
        )
    counts = invocations.get("counts", {})
    footer = Text(
        "FC invocations: "
        + ", ".join(f"{name} {counts.get(name, 0)}" for name in ("queued", "running", "succeeded", "failed")),
        style="red" if counts.get("failed") else "dim",
    )
    failures = [Text(f"  {line}", style="red") for line in _failed_invocations(invocations)[:3]]
    return Group(table, footer, *failures)


def _failed_invocations(invocations: dict[str, Any]) -> list[str]:
    return [
        f"{i['function']} ({i['source']}) failed after {i['attempts']} attempt(s): {i['error_type']}: {i['error_message']}"
        for i in invocations.get("invocations", [])
        if i["state"] == "failed"
    ]


def _still_running(progress: list[RunProgress]) -> list[str]:
    lines = []
    for item in progress:
        if item.done:
            continue
        if item.run is None:
            lines.append(f"{item.upload.uri}: no run yet (on_upload has not recorded it)")
        for task in item.tasks:
            if not task.is_final:
                lines.append(
                    f"{item.upload.uri}: {task.rule}/{task.task_name} {task.task_id or ''} is {task.status}"
                )
        if item.run is not None and all(task.is_final for task in item.tasks):
            lines.append(f"{item.upload.uri}: every task ended but the manifest is not written yet")
    return lines


def _print_results(
    console: Console, reports: list[dict[str, Any]], problems: list[str], state_dir: Path
) -> None:
    def say(indent: int, text: str) -> None:
        # soft_wrap: a URI is never cut into fragments, whatever the terminal's width.
        console.print("  " * indent + text, soft_wrap=True, highlight=False)

    for report in reports:
        console.print()
        say(0, f"[bold]{report['source']}[/bold]")
        say(1, f"rule {report['rule']}, run {report['run_id']}")
        for task in report["tasks"]:
            depth = task["depth"]
            say(depth, f"{task['task']}  {task['type']}  {task['status']}")
            if not task["outputs"]:
                say(depth + 1, "(no output files)")
            for output in task["outputs"]:
                size = "" if output["size"] is None else f"  ({output['size']:,} bytes)"
                say(depth + 1, f"{output['uri']}{size}")
        manifest = report["manifest"]
        say(1, "manifest:")
        say(
            2, (manifest["uri"] or "(none)") + (f"  ({manifest['size']:,} bytes)" if manifest["size"] else "")
        )
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s):[/bold red]")
        for problem in problems:
            console.print(f"  [red]- {problem}[/red]")
    else:
        console.print(
            f"[bold green]every output the pipeline promised exists ({len(reports)} uploads)[/bold green]"
        )
    console.print(
        f"The local cloud keeps running: `immflow tasks list`, `immflow local status --state-dir {state_dir}`; "
        f"stop it with `immflow local down --state-dir {state_dir}`."
    )


def _default_project() -> Path:
    """The current folder when it has s.yaml, else the checkout immflow runs from (editable install)."""
    if (Path.cwd() / "s.yaml").exists():
        return Path.cwd()
    import immflow

    return Path(immflow.__file__).resolve().parents[2]


@main.command()
@state_dir_option
@click.option("--project", "project_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with s.yaml and pipeline.yaml (default: this folder, else the immflow checkout).")  # fmt: skip
@click.option("--port-base", type=int, default=DEFAULT_PORT_BASE, show_default=True,
              help="Ports for the local cloud if the demo starts it.")  # fmt: skip
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, show_default=True,
              help="Seconds to wait for every run to finish.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (no live display).")
@click.option("--ui", "with_ui", is_flag=True, help="Then serve the dashboard until Ctrl-C.")
def demo(
    state_dir: Path, project_dir: Path | None, port_base: int, timeout: float, as_json: bool, with_ui: bool
) -> None:
    """Run the pipeline end to end on the local cloud with sample media it makes itself."""
    begun = time.monotonic()
    console = Console(stderr=as_json, quiet=as_json)
    project = (project_dir or _default_project()).resolve()
    # The account first, before the launcher that takes it from the state folder: s.yaml is read with it
    # while the cloud starts.
    account = Account.load_or_create(state_dir)
    # The local cloud is started first: it takes seconds, and the imports below (about as many) and
    # the steps that follow run meanwhile, until they need its endpoints.
    starting = None
    if not is_running(state_dir):
        console.print(f"starting the local cloud on {state_dir} (ports {port_base}-{port_base + 4})")
        starting = spawn(state_dir, port_base)
    # The SDKs the demo calls (oss2, MNS, IMM, Tablestore for the ledger) import what their synchronous
    # calls never use, ~0.25 s of CPU while the local cloud starts on the same cores: the functions'
    # import diet leaves it out (`immflow.imports`); the collector runs as usual in a command that lasts.
    imports.install()
    imports.resume_collection()
    # The package check (its digest, the runtime's interpreter, a build only when the inputs changed)
    # needs only the project's files: it starts now, beside the demo's own imports below.
    checking = ThreadPoolExecutor(1)
    building = checking.submit(deploy_environ, project / "s.yaml", state_dir, console.print)
    checking.shutdown(wait=False)
    from immflow.demo import runner
    from immflow.demo.media import cached_samples
    from immflow.demo.runner import DemoError, RunProgress
    from immflow.package import default_cache_dir

    clock = runner.PhaseClock(begun)
    try:
        s_yaml, pipeline = runner.load_inputs(project)
        with ThreadPoolExecutor(4) as aside:
            # Set-up steps that wait on other processes run side by side: the samples (ffmpeg, mostly;
            # made once, then taken from the cache) while the local cloud starts (and the package is
            # checked, above), and the ledger's tables and the IMM project while the functions deploy
            # (the local cloud loads its IMM and Tablestore meanwhile).
            making = aside.submit(cached_samples, default_cache_dir().parent / "samples")
            reading = aside.submit(lambda: runner.read_deployment(s_yaml, account, building.result()))
            if starting is None:
                endpoints = read_endpoints(state_dir)
                console.print(f"using the local cloud already running on {state_dir}")
                tables = None
            else:
                endpoints = wait_ready(starting)
                tables = aside.submit(create_ledger, state_dir)
            clock.mark("cloud_start")
            environ = building.result()
            clock.mark("package_build")
            deployment = reading.result()
            runner.create_triggers_resources(endpoints, deployment)
            # The IMM project, like the ledger's tables, is first needed by the first upload.
            project_created = aside.submit(runner.create_project, endpoints, deployment)
            deploy(endpoints, s_yaml, environ)
            project_created.result()
            if tables is not None:
                tables.result()
            clock.mark("deploy")
            console.print(
                f"deployed {', '.join(deployment.functions)}; buckets {', '.join(deployment.buckets)}; "
                f"IMM project {deployment.project}"
            )
            samples = making.result()
            clock.mark("samples_wait")
            planned = runner.plan_uploads(samples, pipeline, deployment.buckets[0], runner.demo_folder())
            if not planned:
                raise DemoError(f"no rule of {project / 'pipeline.yaml'} takes any of the sample files")
            uploads = runner.upload(endpoints, planned)
            clock.mark("uploads")
        console.print(f"uploaded {len(uploads)} files with oss2")
        progress = [RunProgress(u) for u in uploads]
        ledger = runner.ledger_for(state_dir)
        started = time.monotonic()
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            last: dict[str, Any] = {}

            def tick(invocations: dict[str, Any]) -> None:
                last.update(invocations)
                live.update(_progress_table(progress, invocations, started))

            finished = runner.wait(endpoints, ledger, progress, timeout, tick)
        clock.mark("follow")
        console.print()
        elapsed = time.monotonic() - started
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    problems: list[str] = []
    if not finished:
        problems.append(f"timed out after {timeout:.0f} s; still running:")
        problems.extend(f"  {line}" for line in _still_running(progress))
        failed = _failed_invocations(last)
        if failed:
            problems.append(
                "FC invocations that failed for good (the function logs are in <state-dir>/fc/logs/):"
            )
            problems.extend(f"  {line}" for line in failed)
    reports = []
    for item in progress:
        report, found = runner.verify(endpoints, pipeline, item)
        reports.append(report)
        problems.extend(found if finished or item.done else [])
    if as_json:
        extra = {
            "state_dir": str(state_dir.resolve()),
            "elapsed_seconds": round(elapsed, 2),
            "timed_out": not finished,
            "phases": clock.follow_phases(progress),
        }
        click.echo(runner.summary_json(reports, problems, extra))
    else:
        _print_results(console, reports, problems, state_dir)
    # The dashboard's port is the local cloud's base + 9 (whatever base the running cloud has).
    ui_port = int(endpoints["oss"].rsplit(":", 1)[1]) + 9
    if with_ui:
        from immflow.cli.ui import build_dashboard, serve

        serve(
            build_dashboard(state_dir, None, project / "pipeline.yaml"),
            "127.0.0.1",
            ui_port,
            None,
            open_browser=False,
        )
    elif not as_json:
        console.print(
            f"See the runs, their outputs and the pipeline in the dashboard: "
            f"`immflow ui --state-dir {state_dir} --port {ui_port}`, then open http://127.0.0.1:{ui_port}/ "
            "(or run the demo with --ui).",
            soft_wrap=True,
        )
    if problems:
        sys.exit(1)

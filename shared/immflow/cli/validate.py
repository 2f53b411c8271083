"""``immflow validate [FILE]``: check a pipeline file before deploy.

Exit status: 0 when the pipeline has no errors (warnings are printed but do not fail), 1 when it has
errors, 3 when immflow itself failed (a bug: the message says so; no traceback reaches the user).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from immflow.cli import main
from immflow.pipeline import Pipeline
from immflow.validation import Report, validate_file

EXIT_INVALID = 1
EXIT_BUG = 3


@main.command("validate")
@click.argument("file", default="pipeline.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def validate_command(ctx: click.Context, file: Path) -> None:
    """Check FILE (default: pipeline.yaml): schema, task parameters, templates, loops and follow-ups."""
    try:
        report = validate_file(file)
        text = _render(report)
    except Exception as exc:  # the CLI boundary: a bug in immflow must not print a traceback
        click.echo(
            f"immflow validate: internal error while checking {file} ({type(exc).__name__}: {exc}). "
            "This is a bug in immflow; please report it with the pipeline file.",
            err=True,
        )
        ctx.exit(EXIT_BUG)
    click.echo(text)
    ctx.exit(EXIT_INVALID if report.errors else 0)


def _render(report: Report) -> str:
    lines = [problem.format(report.file) for problem in report.problems]
    counts = Counter(problem.severity for problem in report.problems)
    tally = ", ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in sorted(counts.items()))
    if report.errors or report.pipeline is None:
        lines.append(f"{report.file}: {tally}; not valid")
        return "\n".join(lines)
    lines.append(
        f"{report.file} is valid" + (f" ({tally})" if tally else "") + ": " + _summary(report.pipeline)
    )
    return "\n".join(lines)


def _summary(pipeline: Pipeline) -> str:
    initial = sum(len(rule.tasks) for rule in pipeline.rules)
    follow_ups = [follow_up for rule in pipeline.rules for follow_up in rule.then]
    later = sum(len(follow_up.tasks) for follow_up in follow_ups)
    lines = [
        f"{len(pipeline.rules)} rule(s), {initial + later} task(s): {initial} started by uploads, "
        f"{later} by {len(follow_ups)} follow-up(s); max_depth {pipeline.max_depth}.",
        "OSS triggers to deploy (one per filter; bucket '-' is the bucket s.yaml names):",
    ]
    for trigger in pipeline.trigger_filters():
        lines.append(
            f"  bucket {trigger.bucket or '-'}  prefix {trigger.prefix or '(any)'!s}  "
            f"suffix {trigger.suffix or '(any)'}  events {', '.join(trigger.events)}"
        )
    return "\n".join(lines)

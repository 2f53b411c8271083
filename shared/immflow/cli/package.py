"""``immflow package``: build each function's deployable code folder (see `immflow.package`)."""

from __future__ import annotations

from pathlib import Path

import click

from immflow.cli import main
from immflow.package import RUNTIMES, build, bytecode_notice, default_cache_dir


@main.command("package")
@click.option(
    "--runtime",
    type=click.Choice(sorted(RUNTIMES)),
    default="python3.10",
    show_default=True,
    help="The FC runtime s.yaml names.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build/fc"),
    show_default=True,
    help="Where the function folders go (s.yaml's IMMFLOW_CODE_DIR).",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder: functions/, shared/immflow, pipeline.yaml.",
)
@click.option(
    "--no-deps",
    is_flag=True,
    help="Leave the third-party packages out (for a quick look, not for deploying).",
)
def package(runtime: str, out: Path, project: Path, no_deps: bool) -> None:
    """Build build/fc/<function>/: the handler, immflow, pipeline.yaml and the pinned dependencies.

    Dependencies and bytecode are for RUNTIME's Python, built by that Python when this machine has
    it; the dependencies are cached (see `immflow.package`).
    """
    cache = default_cache_dir()
    built = build(project.resolve(), out, runtime=runtime, dependencies=not no_deps, cache_dir=cache)
    for function in built:
        click.echo(
            f"{function.name}: {function.path}{'' if function.dependencies else ' (without dependencies)'}"
        )
    if built[0].python:
        click.echo(f"built by {built[0].python} (dependencies cached in {cache})")
    else:
        click.echo(f"warning: {bytecode_notice(runtime)}", err=True)
    click.echo(f"deploy with: IMMFLOW_CODE_DIR={out} s deploy")

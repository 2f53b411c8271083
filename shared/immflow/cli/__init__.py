"""The ``immflow`` command."""

from __future__ import annotations

import click

from immflow import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="immflow")
def main() -> None:
    """Upload-triggered media pipelines on Alibaba Cloud IMM, and a local cloud to run them offline."""


# Each command lives in its own module and registers itself here.
from immflow.cli import backfill as _backfill  # noqa: E402,F401
from immflow.cli import demo as _demo  # noqa: E402,F401
from immflow.cli import events as _events  # noqa: E402,F401
from immflow.cli import invoke as _invoke  # noqa: E402,F401
from immflow.cli import local as _local  # noqa: E402,F401
from immflow.cli import package as _package  # noqa: E402,F401
from immflow.cli import tasks as _tasks  # noqa: E402,F401
from immflow.cli import validate as _validate  # noqa: E402,F401

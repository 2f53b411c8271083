"""The ``immflow`` command.

Each command lives in its own module, which registers it on :data:`main` when imported. The
modules are imported only when their command runs (or for ``--help``): ``immflow validate``
should not pay for the SDKs and the media stack that ``immflow demo`` needs.
"""

from __future__ import annotations

import importlib

import click

from immflow import __version__

#: Command name -> the module that defines it.
COMMAND_MODULES = {
    "backfill": "immflow.cli.backfill",
    "demo": "immflow.cli.demo",
    "events": "immflow.cli.events",
    "invoke": "immflow.cli.invoke",
    "local": "immflow.cli.local",
    "package": "immflow.cli.package",
    "runs": "immflow.cli.tasks",
    "tasks": "immflow.cli.tasks",
    "ui": "immflow.cli.ui",
    "validate": "immflow.cli.validate",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(COMMAND_MODULES[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="immflow")
def main() -> None:
    """Upload-triggered media pipelines on Alibaba Cloud IMM, and a local cloud to run them offline."""

"""FC handler behind the timer trigger: settle the tasks whose notification never came.

The timer's event (trigger time and payload) carries nothing reconcile needs, so it is not read.
"""

import json
from dataclasses import asdict
from pathlib import Path

from immflow import imports

imports.install()  # first: it decides how the SDKs load (docs/cold-start.md)

from immflow.flow.reconcile import reconcile  # noqa: E402
from immflow.flow.runtime import begin, initialize  # noqa: E402

CODE_DIR = Path(__file__).resolve().parent


def initializer(context: object) -> None:
    """FC's initializer (s.yaml, template.yml): the ledger only (GetTask is for stale tasks, which
    most runs of reconcile have none of)."""
    initialize(context, CODE_DIR)


@imports.cold_start
def handler(event: bytes, context: object) -> str:
    summary = reconcile(begin(context, CODE_DIR))
    return json.dumps(asdict(summary))

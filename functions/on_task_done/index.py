"""FC handler behind the MNS topic trigger: record an IMM task's result and start its follow-ups.

Accepts both trigger formats (``notifyContentFormat`` JSON, which s.yaml uses, and STREAM).
Raises on failure so FC retries; a notification delivered again changes nothing.
"""

import json
from dataclasses import asdict
from pathlib import Path

from immflow import imports

imports.install()  # first: it decides how the SDKs load (docs/cold-start.md)

from immflow.events.imm import parse_imm_notification  # noqa: E402
from immflow.events.mns import parse_mns_trigger_event  # noqa: E402
from immflow.flow.results import on_task_done  # noqa: E402
from immflow.flow.runtime import begin, initialize  # noqa: E402

CODE_DIR = Path(__file__).resolve().parent


def initializer(context: object) -> None:
    """FC's initializer (s.yaml, template.yml): the ledger, IMM (GetTask confirms each notification)
    and OSS (each task's outputs are listed)."""
    initialize(context, CODE_DIR, imm=True, oss=True)


@imports.cold_start
def handler(event: bytes, context: object) -> str:
    notification = parse_imm_notification(parse_mns_trigger_event(event).body)
    summary = on_task_done(begin(context, CODE_DIR), notification)
    return json.dumps(asdict(summary))

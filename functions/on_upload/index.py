"""FC handler behind the OSS trigger: start the pipeline's IMM tasks for each uploaded object.

Raises on failure (a malformed event, a ledger or IMM error that outlasts the retries), so FC's
asynchronous retries and failure destination take over; a redelivered event creates nothing twice.
"""

import json
from dataclasses import asdict
from pathlib import Path

from immflow import imports

imports.install()  # first: it decides how the SDKs load (docs/cold-start.md)

from immflow.events.oss import parse_oss_event  # noqa: E402
from immflow.flow.runtime import begin, initialize  # noqa: E402
from immflow.flow.upload import on_upload  # noqa: E402

CODE_DIR = Path(__file__).resolve().parent


def initializer(context: object) -> None:
    """FC's initializer (s.yaml, template.yml): the ledger and IMM (every upload a rule matches starts
    a run and creates tasks)."""
    initialize(context, CODE_DIR, imm=True)


@imports.cold_start
def handler(event: bytes, context: object) -> str:
    upload = parse_oss_event(event)
    summary = on_upload(begin(context, CODE_DIR), upload)
    return json.dumps(asdict(summary))

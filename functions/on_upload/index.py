"""FC handler behind the OSS trigger: start the pipeline's IMM tasks for each uploaded object.

Raises on failure (a malformed event, a ledger or IMM error that outlasts the retries), so FC's
asynchronous retries and failure destination take over; a redelivered event creates nothing twice.
"""

import json
from dataclasses import asdict
from pathlib import Path

from immflow.events.oss import parse_oss_event
from immflow.flow.runtime import begin
from immflow.flow.upload import on_upload

CODE_DIR = Path(__file__).resolve().parent


def handler(event: bytes, context: object) -> str:
    upload = parse_oss_event(event)
    summary = on_upload(begin(context, CODE_DIR), upload)
    return json.dumps(asdict(summary))

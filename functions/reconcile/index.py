"""FC handler behind the timer trigger: settle the tasks whose notification never came.

The timer's event (trigger time and payload) carries nothing reconcile needs, so it is not read.
"""

import json
from dataclasses import asdict
from pathlib import Path

from immflow.flow.reconcile import reconcile
from immflow.flow.runtime import begin

CODE_DIR = Path(__file__).resolve().parent


def handler(event: bytes, context: object) -> str:
    summary = reconcile(begin(context, CODE_DIR))
    return json.dumps(asdict(summary))

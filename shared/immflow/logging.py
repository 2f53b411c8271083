"""immflow's logger: Powertools ``Logger`` (service ``immflow``), one JSON object per line on stdout.

FC collects stdout into the function's SLS logstore (docs/fc.md#the-python-runtime), so the lines are searchable
by their keys. Every line carries the three correlation ids, ``""`` while unknown (Powertools drops
keys whose value is None, and a key that is sometimes missing cannot be searched for reliably):

* ``fc_request_id``: the FC invocation (``context.request_id``);
* ``run_id``: the upload the line is about (one run per change of its content, docs/design.md "Lineage");
* ``task_id``: the IMM task the line is about.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger

CORRELATION_KEYS = ("fc_request_id", "run_id", "task_id")

logger = Logger(service="immflow")


def start_invocation(request_id: str) -> None:
    """Reset the correlation ids for a new invocation (FC reuses the process, and so the logger)."""
    logger.append_keys(fc_request_id=request_id, run_id="", task_id="")


@contextmanager
def correlation(*, run_id: str | None = None, task_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines carry these ids; the previous ones come back afterwards."""
    current = logger.get_current_keys()
    previous = {name: current.get(name, "") for name in ("run_id", "task_id")}
    updates = {name: value for name, value in (("run_id", run_id), ("task_id", task_id)) if value is not None}
    logger.append_keys(**updates)
    try:
        yield
    finally:
        logger.append_keys(**previous)

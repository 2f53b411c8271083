"""The results ledger: one contract (`immflow.ledger.contract`) and its backends, `immflow.ledger.sql`
(SQLAlchemy) and `immflow.ledger.tablestore` (Tablestore). ``Ledger(url)`` opens the one `url` names;
importing this package loads neither backend.
"""

import json
from collections.abc import Mapping
from pathlib import Path

from immflow.fc import Credentials
from immflow.ledger.contract import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    TABLESTORE_SCHEME,
    CreateClaim,
    Ledger,
    LedgerError,
    NewRun,
    NewTask,
    RunRecord,
    TaskQuery,
    TaskRecord,
    claim_key,
    iso_time,
    utcnow,
)

DEFAULT_STATE_DIR = Path(".immflow")


def local_ledger(state_dir: Path = DEFAULT_STATE_DIR) -> Ledger:
    """The local cloud's ledger, the one its FC gives the functions: ``endpoints.json`` names it."""
    path = state_dir / "endpoints.json"
    try:
        endpoints = json.loads(path.read_text())
    except FileNotFoundError:
        raise LedgerError(
            f"no local cloud in {state_dir} ({path} is missing): start one with "
            f"`immflow local up --detach --state-dir {state_dir}`, or set IMMFLOW_LEDGER_URL"
        ) from None
    if not isinstance(endpoints.get("ledger"), str):
        raise LedgerError(f"{path} names no ledger: restart the local cloud with `immflow local up`")
    return endpoints_ledger(endpoints)


def endpoints_ledger(endpoints: Mapping[str, str]) -> Ledger:
    """The ledger ``endpoints`` (a local cloud's ``endpoints.json``) names (``ledger``), reached with its
    Tablestore endpoint and key pair."""
    url = endpoints["ledger"]
    if not url.startswith(TABLESTORE_SCHEME):
        return Ledger(url)
    keys = Credentials(endpoints["access_key_id"], endpoints["access_key_secret"])
    return Ledger(url, endpoint=endpoints["ots"], credentials=keys)


__all__ = [
    "DEFAULT_STATE_DIR",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "CreateClaim",
    "Ledger",
    "LedgerError",
    "NewRun",
    "NewTask",
    "RunRecord",
    "TaskQuery",
    "TaskRecord",
    "claim_key",
    "endpoints_ledger",
    "iso_time",
    "local_ledger",
    "utcnow",
]

"""The results ledger: one contract (`immflow.ledger.contract`) and its backends, `immflow.ledger.sql`
(SQLAlchemy) and `immflow.ledger.tablestore` (Tablestore). ``Ledger(url)`` opens the one `url` names;
importing this package loads neither backend.
"""

import json
from pathlib import Path

from immflow.fc import Credentials
from immflow.ledger.contract import (
    CLOCK_SKEW,
    LEDGER_FINAL_STATES,
    LEDGER_OPEN_STATES,
    CreateClaim,
    EventOrder,
    Ledger,
    LedgerError,
    NewRun,
    NewTask,
    NotClaimed,
    RunHead,
    RunRecord,
    RunStart,
    TaskQuery,
    TaskRecord,
    claim_key,
    iso_time,
    run_id_for,
    utcnow,
)
from immflow.settings import DEFAULT_LEDGER_URL

DEFAULT_STATE_DIR = Path(".immflow")


def local_ledger(state_dir: Path = DEFAULT_STATE_DIR) -> Ledger:
    """The local cloud's ledger, the one ``immflow local up`` gives its functions: the default ledger
    (`immflow.settings.DEFAULT_LEDGER_URL`) in the local Tablestore, which ``endpoints.json`` names with
    the key pair to reach it."""
    path = state_dir / "endpoints.json"
    try:
        endpoints = json.loads(path.read_text())
    except FileNotFoundError:
        raise LedgerError(
            f"no local cloud in {state_dir} ({path} is missing): start one with "
            f"`immflow local up --detach --state-dir {state_dir}`, or set IMMFLOW_LEDGER_URL"
        ) from None
    keys = Credentials(endpoints["access_key_id"], endpoints["access_key_secret"])
    return Ledger(DEFAULT_LEDGER_URL, endpoint=endpoints["ots"], credentials=keys)


__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_STATE_DIR",
    "LEDGER_FINAL_STATES",
    "LEDGER_OPEN_STATES",
    "CreateClaim",
    "EventOrder",
    "Ledger",
    "LedgerError",
    "NewRun",
    "NewTask",
    "NotClaimed",
    "RunHead",
    "RunRecord",
    "RunStart",
    "TaskQuery",
    "TaskRecord",
    "claim_key",
    "iso_time",
    "local_ledger",
    "run_id_for",
    "utcnow",
]

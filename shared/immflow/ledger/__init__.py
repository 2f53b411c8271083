"""The results ledger: one contract (`immflow.ledger.contract`) and its backends, `immflow.ledger.sql`
(SQLAlchemy) and `immflow.ledger.tablestore` (Tablestore). ``Ledger(url)`` opens the one `url` names;
importing this package loads neither backend.
"""

from pathlib import Path

from immflow.ledger.contract import (
    FINAL_STATUSES,
    OPEN_STATUSES,
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
LEDGER_FILE_NAME = "ledger.sqlite3"


def default_cli_ledger_url(state_dir: Path = DEFAULT_STATE_DIR) -> str:
    """The local cloud's ledger: what the local FC gives its functions as ``IMMFLOW_LEDGER_URL``."""
    return f"sqlite:///{state_dir.resolve() / LEDGER_FILE_NAME}"


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
    "default_cli_ledger_url",
    "iso_time",
    "utcnow",
]
